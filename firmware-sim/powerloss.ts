// A littlefs-style linear power-loss schedule over a long, mixed lock workload.
//
// The reference run drives a real Lock (sessions, signatures, keypad state machine, audit
// ring) through a seeded workload: deltas (journal appends and, past the journal's
// thresholds, compactions into the other table region), snapshots, card swipes (grants and
// coalesced refusals), keypad lockouts, right codes, nonce-bound signed time that moves the
// persisted anchors, audit anchors and boots. Every boot starts an *epoch*: the flash image
// is kept, and every storage call the lock makes until the next boot is recorded with the
// model after it (state fingerprint, version floor, audit head and chain hash).
//
// Then power is cut after operation 1, 2, 3 … of the whole run. A cut inside an epoch is
// replayed from that epoch's image, not from the start: mount (what the lock's boot does),
// re-issue the recorded storage calls with the cut armed, reboot, and check the model:
// - the state is exactly the one before or after the interrupted call — never a mix;
// - the version floor is not below the one before the call;
// - the audit head lies between the heads before and after the call, and its chain hash is
//   the reference run's at that seq (so every acknowledged record is there, byte for byte,
//   back to the oldest the ring retains); a commit that landed has its audit record too;
// - the boot is bounded: the mount issues at most MOUNT_MAX_OPS flash operations and
//   reads at most MOUNT_MAX_READ_FACTOR × the device size;
// - the replay reproduced the reference: the cut fell in the call the reference says.
// Every `lockBootEvery`-th cut also boots the whole Lock on the recovered flash.

import { performance } from 'node:perf_hooks';
import { type Op, type Update, SeededRandom, bytesEqual, chainAudit, decodeMessage, encodeMessage, makeAuditAnchor, tableDigest, toHex } from '../protocol';
import { NorFlash, PowerCut, type PowerLossMode } from './flash';
import { Lock } from './lock';
import { type AuditAppend, type DurableState, LockStorage } from './storage';
import { FakeClock } from './time';
import { TestAuthority, createTestRig, type TestRig } from './test-authority';
import type { LayoutParams } from './storage';

/**
 * A small device, so that everything that moves data around happens every few dozen
 * operations: metadata-slot compaction (one block per slot), table compaction (4-block
 * regions) and audit-ring recycling (2 blocks, 126 slots, with anchors, recordsLost and refusalsNotLogged).
 * A small ring also keeps each mount cheap, which is what sets the cuts per second.
 */
export const POWERLOSS_GEOMETRY = Object.freeze({ blockSize: 4096, blockCount: 13, progSize: 16 });
export const POWERLOSS_LAYOUT: Readonly<LayoutParams> = Object.freeze({ metaSlotBlocks: 1, tableRegionBlocks: 4, auditBlocks: 2 });
/** An epoch (boot to boot) ends after this many flash operations at most: a cut replays half of one on average. */
export const EPOCH_MAX_OPS = 160;

/** Roll-forward of a commit's audit record at mount: erase + block header + body + trailer. */
export const MOUNT_MAX_OPS = 4;
/** A mount reads the metadata slots, the table region in force and the audit ring; fallbacks re-read. */
export const MOUNT_MAX_READ_FACTOR = 2;

export interface PowerLossOptions {
  seed?: string | number;
  /** The workload grows until its flash operations (= cut points) reach this. */
  cuts: number;
  mode?: PowerLossMode;
  /** Every Nth cut also boots the whole Lock on the recovered flash (0 = never). */
  lockBootEvery?: number;
  /** Called now and then with cuts done and the total. */
  onProgress?: (done: number, total: number) => void;
}

export interface PowerLossReport {
  seed: string;
  mode: PowerLossMode;
  cuts: number;
  /** Cuts after which the interrupted call's state was in force / the previous one. */
  landedNew: number;
  landedOld: number;
  steps: number;
  epochs: number;
  stepKinds: Record<string, number>;
  /** Storage calls of the reference run by kind. */
  calls: { commits: number; auditAppends: number; auditFlushes: number };
  tableWrites: { bases: number; journalRecords: number };
  fullLockBoots: number;
  maxMountOps: number;
  maxMountBytesRead: number;
  referenceSeconds: number;
  cutSeconds: number;
  cutsPerSecond: number;
  /** CPU time of the cut phase (user + system) and cuts per CPU second: the figure a loaded machine does not distort. */
  cutCpuSeconds: number;
  cutsPerCpuSecond: number;
}

export class PowerLossFailure extends Error {
  override readonly name = 'PowerLossFailure';
  constructor(
    readonly where: string,
    detail: string,
  ) {
    super(`${where}: ${detail}`);
  }
}

type Call =
  | { kind: 'commit'; next: DurableState; tableChanged: boolean; audit: AuditAppend | undefined; ops: readonly Op[] | undefined }
  | { kind: 'append'; rec: AuditAppend; refusal: boolean }
  | { kind: 'flush'; time: number }
  /** The lock erased the next audit block ahead while idle (only recorded when it erased). */
  | { kind: 'eraseAhead' };

interface Mark {
  fp: string;
  floor: number;
  auditSeq: number;
  /** Flash operations issued in the epoch up to this mark. */
  ops: number;
}

interface Epoch {
  index: number;
  /** The device as the epoch's boot found it, and its storage as that boot mounted it. */
  flash: NorFlash;
  mounted: LockStorage;
  /** The device's bytes at the epoch's end, in the reference run. */
  endImage?: Uint8Array;
  calls: Call[];
  /** marks[0]: after the boot's mount; marks[i + 1]: after calls[i]. */
  marks: Mark[];
}

/** What identifies a committed state (everything a commit record carries that can change). */
function fingerprint(s: DurableState, digest?: string): string {
  const ts = s.tableState;
  const k = s.keypad;
  return [
    ts.head?.version ?? 0,
    digest ?? toHex(tableDigest(ts.table)),
    ts.versionFloor,
    ts.newestIssuedAt,
    ts.leaseAnchor,
    ts.trust.certFloor,
    `${k.wrongCount}/${k.lockoutActive ? 1 : 0}/${k.lockoutLevel}`,
    s.singleUse.map((u) => `${u.date}:${u.slot}:${u.firstUseS}`).join(','),
    s.auditAnchoredSeq ?? 0,
    s.signedHead === null ? '-' : toHex(s.signedHead.signature),
  ].join('|');
}

const uid = (i: number): Uint8Array => new Uint8Array([0x04, i & 0xff, (i >> 8) & 0xff, 0x5a]);
const RIGHT_CODE = '2468013';

/**
 * The reference run: a real lock through a seeded mixed workload until its flash has done
 * `targetOps` operations; epochs begin at each boot.
 */
function referenceRun(seed: string, targetOps: number): { epochs: Epoch[]; stepKinds: Record<string, number>; steps: number; hashAt: Map<number, Uint8Array>; rig: TestRig; calls: PowerLossReport['calls']; tableWrites: PowerLossReport['tableWrites'] } {
  const rig = createTestRig({ seed: `powerloss/${seed}`, geometry: POWERLOSS_GEOMETRY, layout: POWERLOSS_LAYOUT });
  const a = rig.auth;
  const rng = new SeededRandom(`powerloss/${seed}/workload`);
  const epochs: Epoch[] = [];
  const head0 = rig.lock.storage.auditHead();
  const hashAt = new Map<number, Uint8Array>([[head0.seq, head0.hash]]);
  const stepKinds: Record<string, number> = {};
  const callCounts = { commits: 0, auditAppends: 0, auditFlushes: 0 };
  const tableWrites = { bases: 0, journalRecords: 0 };
  let current: Epoch | null = null;
  let epochStartOps = 0;

  let lastSeq = head0.seq;
  const mark = (st: LockStorage, ops = rig.flash.operations - epochStartOps): Mark => {
    const head = st.auditHead();
    // The reference chain hash at every seq written since the last mark.
    if (head.seq > lastSeq) {
      let h = hashAt.get(lastSeq) as Uint8Array;
      for (const b of st.exportAudit(lastSeq + 1, head.seq - lastSeq).records) {
        h = chainAudit(h, b);
        hashAt.set(++lastSeq, h);
      }
      if (lastSeq !== head.seq || toHex(h) !== toHex(head.hash)) throw new PowerLossFailure('reference', `audit chain bookkeeping lost track at seq ${lastSeq}`);
    }
    return { fp: fingerprint(st.state), floor: st.state.tableState.versionFloor, auditSeq: head.seq, ops };
  };

  // Record every storage call the lock makes (including those its boot makes).
  const proto = LockStorage.prototype;
  const orig = { commit: proto.commit, appendAudit: proto.appendAudit, flushAudit: proto.flushAudit, eraseAuditAhead: proto.eraseAuditAhead };
  proto.commit = function (this: LockStorage, next, auditAfter, tableOps) {
    const call: Call = { kind: 'commit', next, tableChanged: next.tableState.table !== this.state.tableState.table, audit: auditAfter, ops: tableOps };
    const before = { ...this.tableWrites };
    const r = orig.commit.call(this, next, auditAfter, tableOps);
    tableWrites.bases += this.tableWrites.bases - before.bases;
    tableWrites.journalRecords += this.tableWrites.journalRecords - before.journalRecords;
    callCounts.commits++;
    current?.calls.push(call);
    current?.marks.push(mark(this));
    return r;
  };
  proto.appendAudit = function (this: LockStorage, rec, opts) {
    const r = orig.appendAudit.call(this, rec, opts);
    callCounts.auditAppends++;
    current?.calls.push({ kind: 'append', rec, refusal: opts?.refusal === true });
    current?.marks.push(mark(this));
    return r;
  };
  proto.eraseAuditAhead = function (this: LockStorage) {
    const erased = orig.eraseAuditAhead.call(this);
    if (erased) {
      current?.calls.push({ kind: 'eraseAhead' });
      current?.marks.push(mark(this));
    }
    return erased;
  };
  proto.flushAudit = function (this: LockStorage, time) {
    const r = orig.flushAudit.call(this, time);
    callCounts.auditFlushes++;
    current?.calls.push({ kind: 'flush', time });
    current?.marks.push(mark(this));
    return r;
  };

  let lock = rig.lock;
  const session = (msg: Uint8Array): string => {
    const s = lock.openSession();
    const out = s.handle(msg)[0] as Uint8Array;
    s.close();
    return decodeMessage(out).type;
  };
  const boot = (): void => {
    // The epoch starts from the image before the boot's mount, which every replay repeats;
    // marks[0] is the state that mount yields, before the boot's own calls (if any).
    if (current !== null) current.endImage = rig.flash.image();
    const flash = rig.flash.clone();
    epochStartOps = rig.flash.operations;
    const mounted = LockStorage.mount(flash.clone());
    current = { index: epochs.length, flash, mounted, calls: [], marks: [mark(mounted, 0)] };
    epochs.push(current);
    lock.shutdown();
    lock = Lock.boot({ flash: rig.flash, clock: rig.clock, timers: rig.clock, random: rig.random, rtc: { continueAtMs: lock.rtc.nowMs(), trusted: true } });
    rig.lock = lock;
  };

  let nextId = 1;
  const live: number[] = [];
  let steps = 0;
  try {
    // Setup: a right doorcode, so keypad lockouts can be cleared and escalation stays bounded.
    expect(session(TestAuthority.message(a.delta([{ op: 'put', entry: a.doorcodeEntry(60_000, RIGHT_CODE) }]))), 'receipt', 'setup');
    boot();
    const firstEpochOps = rig.flash.operations;
    while (rig.flash.operations - firstEpochOps < targetOps) {
      const r = rng.int(0, 99);
      const epochOps = rig.flash.operations - epochStartOps;
      let kind: string;
      if (epochOps > EPOCH_MAX_OPS - 40 || r < 4) {
        kind = 'boot';
        boot();
      } else if (r < 16) {
        kind = 'delta';
        const ops: Op[] = [];
        const removals = live.length > 24 ? rng.int(1, 8) : live.length > 10 && r < 7 ? 1 : 0;
        for (let i = 0; i < removals; i++) ops.push({ op: 'remove', credId: live.splice(rng.int(0, live.length - 1), 1)[0] as number });
        for (let i = rng.int(removals > 0 ? 0 : 1, 8); i > 0; i--) {
          live.push(nextId);
          ops.push({ op: 'put', entry: a.keycardEntry(nextId, uid(nextId)) });
          nextId++;
        }
        expect(session(TestAuthority.message(a.delta(ops))), 'receipt', kind);
      } else if (r < 18) {
        kind = 'snapshot';
        for (let i = 0; i < 3; i++) {
          live.push(nextId);
          a.delta([{ op: 'put', entry: a.keycardEntry(nextId, uid(nextId)) }]);
          nextId++;
        }
        expect(session(TestAuthority.message(a.snapshot() as Update)), 'receipt', kind);
      } else if (r < 60) {
        kind = 'card';
        // Mostly known cards; some unknown (refusals, coalesced when repeated).
        const id = live.length > 0 && rng.int(0, 3) > 0 ? (live[rng.int(0, live.length - 1)] as number) : 50_000 + rng.int(0, 3);
        lock.presentCard(uid(id));
        rig.clock.advance(6_000);
      } else if (r < 68) {
        kind = 'lockout';
        for (let i = 0; i < lock.policy.wrongCodeLimit && lock.machine.mode.kind !== 'keypadLockout'; i++) {
          lock.enterCode(String(rng.int(0, 9_999_999)).padStart(7, '0'));
          rig.clock.advance(1_000);
        }
        for (let i = 0; i < 20 && lock.machine.mode.kind === 'keypadLockout'; i++) rig.clock.advance(lock.policy.lockoutSeconds * 1000);
      } else if (r < 76) {
        kind = 'code';
        lock.enterCode(RIGHT_CODE);
        rig.clock.advance(6_000);
      } else if (r < 86) {
        kind = 'time';
        // Far enough on that the anchors are persisted (a signed-time commit).
        a.now = Math.max(a.now, Math.floor(rig.clock.nowMs() / 1000)) + rng.int(600, 4_000);
        const s = lock.openSession();
        const t = decodeMessage(s.handle(a.signedTime(s.nonce))[0] as Uint8Array).type;
        s.close();
        expect(t, 'timeAck', kind);
      } else {
        kind = 'anchor';
        const head = lock.storage.flushAudit(lock.rtc.nowS());
        const anchorSeq = Math.max(0, head.seq - rng.int(0, 40));
        const h = lock.storage.auditChainHashAt(anchorSeq);
        if (h !== undefined && anchorSeq > 0) {
          expect(session(encodeAnchor(a, lock.lockId, anchorSeq, h)), 'auditAnchored', kind);
        }
      }
      stepKinds[kind] = (stepKinds[kind] ?? 0) + 1;
      steps++;
    }
    if (current !== null) (current as Epoch).endImage = rig.flash.image();
  } finally {
    Object.assign(proto, orig);
  }
  return { epochs, stepKinds, steps, hashAt, rig, calls: callCounts, tableWrites };
}

function encodeAnchor(a: TestAuthority, lockId: string, seq: number, hash: Uint8Array): Uint8Array {
  return encodeMessage(makeAuditAnchor({ lockId, seq, hash, keyId: a.signer.keyId }, a.signer.secretKey));
}

function expect(got: string, want: string, what: string): void {
  if (got !== want) throw new PowerLossFailure('reference', `${what}: lock answered ${got}, expected ${want}`);
}

function replayCall(st: LockStorage, c: Call): void {
  if (c.kind === 'commit') {
    // The reference compared table identity; the replay's mounted table is its own object.
    const next = c.tableChanged ? c.next : { ...c.next, tableState: { ...c.next.tableState, table: st.state.tableState.table } };
    st.commit(next, c.audit, c.ops);
  } else if (c.kind === 'append') st.appendAudit(c.rec, { refusal: c.refusal });
  else if (c.kind === 'eraseAhead') st.eraseAuditAhead();
  else st.flushAudit(c.time);
}

/** Run the whole schedule; throws PowerLossFailure naming the seed and cut on any violation. */
export function runPowerLoss(opts: PowerLossOptions): PowerLossReport {
  const seed = String(opts.seed ?? 1);
  const mode = opts.mode ?? 'atomic';
  const lockBootEvery = opts.lockBootEvery ?? 100;
  const t0 = performance.now();
  const ref = referenceRun(seed, opts.cuts);
  const t1 = performance.now();
  const cpu1 = process.cpuUsage();
  const total = ref.epochs.reduce((n, e) => n + (e.marks.at(-1) as Mark).ops, 0);
  const report: PowerLossReport = {
    seed,
    mode,
    cuts: 0,
    landedNew: 0,
    landedOld: 0,
    steps: ref.steps,
    epochs: ref.epochs.length,
    stepKinds: ref.stepKinds,
    calls: ref.calls,
    tableWrites: ref.tableWrites,
    fullLockBoots: 0,
    maxMountOps: 0,
    maxMountBytesRead: 0,
    referenceSeconds: (t1 - t0) / 1000,
    cutSeconds: 0,
    cutsPerSecond: 0,
    cutCpuSeconds: 0,
    cutsPerCpuSecond: 0,
  };
  const size = POWERLOSS_GEOMETRY.blockSize * POWERLOSS_GEOMETRY.blockCount;
  let global = 0;
  for (const e of ref.epochs) {
    // The replay must reproduce the reference: all of the epoch's calls on a fork of its
    // mounted storage leave exactly the bytes the reference run left.
    const whole = e.flash.clone();
    const ws = e.mounted.forkOnto(whole);
    for (const c of e.calls) replayCall(ws, c);
    if (e.endImage === undefined || !bytesEqual(whole.image(), e.endImage)) throw new PowerLossFailure(`seed ${seed} epoch ${e.index}`, 'replaying the recorded calls did not reproduce the reference flash image');
    const epochOps = (e.marks.at(-1) as Mark).ops;
    let j = 0; // the call in which operation k falls
    for (let k = 0; k < epochOps; k++) {
      global++;
      while ((e.marks[j + 1] as Mark).ops <= k) j++;
      const where = `seed ${seed} ${mode} cut ${global} (epoch ${e.index} operation ${k}, call ${j} ${(e.calls[j] as Call).kind})`;
      const flash = e.flash.clone({ mode, seed: `${seed}/${global}` });
      const st = e.mounted.forkOnto(flash);
      flash.resetCounters();
      flash.cutAfter(k);
      let cutIn = -1;
      try {
        for (let c = 0; c < e.calls.length; c++) {
          cutIn = c;
          replayCall(st, e.calls[c] as Call);
        }
        throw new PowerLossFailure(where, 'the replay finished without reaching the cut (it diverged from the reference)');
      } catch (err) {
        if (!(err instanceof PowerCut)) throw err;
      }
      if (cutIn !== j) throw new PowerLossFailure(where, `the replay was cut in call ${cutIn} (it diverged from the reference)`);
      flash.powerOn();
      flash.resetCounters();
      let rec: LockStorage;
      try {
        rec = LockStorage.mount(flash);
      } catch (err) {
        throw new PowerLossFailure(where, `no mount after the cut: ${(err as Error).message}`);
      }
      report.maxMountOps = Math.max(report.maxMountOps, flash.operations);
      report.maxMountBytesRead = Math.max(report.maxMountBytesRead, flash.bytesRead);
      if (flash.operations > MOUNT_MAX_OPS) throw new PowerLossFailure(where, `mount issued ${flash.operations} flash operations (bound ${MOUNT_MAX_OPS})`);
      if (flash.bytesRead > MOUNT_MAX_READ_FACTOR * size) throw new PowerLossFailure(where, `mount read ${flash.bytesRead} bytes (bound ${MOUNT_MAX_READ_FACTOR * size})`);
      const before = e.marks[j] as Mark;
      const after = e.marks[j + 1] as Mark;
      const fp = fingerprint(rec.state);
      const isNew = fp === after.fp;
      if (!isNew && fp !== before.fp) throw new PowerLossFailure(where, `mixed state after reboot:\n  got    ${fp}\n  before ${before.fp}\n  after  ${after.fp}`);
      if (isNew) report.landedNew++;
      else report.landedOld++;
      if (rec.state.tableState.versionFloor < before.floor) throw new PowerLossFailure(where, `version floor went down: ${rec.state.tableState.versionFloor} < ${before.floor}`);
      const head = rec.auditHead();
      if (head.seq < before.auditSeq) throw new PowerLossFailure(where, `acknowledged audit records lost: head ${head.seq} < ${before.auditSeq}`);
      if (head.seq > after.auditSeq) throw new PowerLossFailure(where, `audit head ${head.seq} beyond anything written (${after.auditSeq})`);
      if (toHex(head.hash) !== toHex(ref.hashAt.get(head.seq) ?? new Uint8Array(0))) throw new PowerLossFailure(where, `audit chain at seq ${head.seq} differs from the reference (a record was lost or altered)`);
      const call = e.calls[j] as Call;
      if (isNew && call.kind === 'commit' && call.audit !== undefined && head.seq !== after.auditSeq)
        throw new PowerLossFailure(where, `the commit landed without its audit record (head ${head.seq}, expected ${after.auditSeq})`);
      if (lockBootEvery > 0 && global % lockBootEvery === 0) {
        const clock = new FakeClock(1_760_000_000_000);
        const lock = Lock.boot({ flash, clock, timers: clock, random: new SeededRandom(global) });
        // The boot may persist the keypad (a cut during a lockout streak resumes the lockout).
        if (fingerprint({ ...lock.durable, keypad: rec.state.keypad }) !== fp) throw new PowerLossFailure(where, 'the lock booted another state than its storage mounted');
        lock.shutdown();
        report.fullLockBoots++;
      }
      report.cuts++;
      if (opts.onProgress !== undefined && global % 5000 === 0) opts.onProgress(global, total);
    }
  }
  const t2 = performance.now();
  report.cutSeconds = (t2 - t1) / 1000;
  report.cutsPerSecond = report.cuts / Math.max(1e-9, report.cutSeconds);
  const cpu = process.cpuUsage(cpu1);
  report.cutCpuSeconds = (cpu.user + cpu.system) / 1e6;
  report.cutsPerCpuSecond = report.cuts / Math.max(1e-9, report.cutCpuSeconds);
  return report;
}

