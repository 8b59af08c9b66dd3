// The lock runtime: mounts storage, runs the pure state machine and executes its effects
// (flash commits, timers, motor, audit), decides access with access.ts and hosts sessions.
// Clock, timers and randomness are injected, so tests drive it deterministically.

import {
  type DecisionReason,
  type LockPolicy,
  type Message,
  type RandomSource,
  type SessionNonce,
  type TableState,
  type Update,
  DECISION_REASONS,
  PROTOCOL_VERSION,
  ProtocolError,
  applyUpdate,
  checkFloorReset,
  checkSignedTime,
  bytesEqual,
  currentDigest,
  currentVersion,
  keyPairFromSeed,
  makeReceipt,
  leaseAnchorAfterUpdate,
  makeSignedAuditExport,
  signingKeyFor,
  verify,
  LOCK_ID_PATTERN,
  validateLockPolicy,
} from '../protocol';
import { type AccessContext, type Decision, type IssuedChallenge, type TableIndexBuilder, carryTableIndex, decideCode, decideKeycard, decidePhone, isValidTimeZone, makeChallenge, tableIndex } from './access';
import type { NorFlash } from './flash';
import { type DeviceProfileName, DeviceCostModel } from './device-profile';
import {
  ACCESS_METHOD_CODES,
  type AccessMethod,
  type Effect,
  type MachineEvent,
  type MachineState,
  type TimerName,
  accessGate,
  initialMachineState,
  transition,
} from './machine';
import { LOCK_CAPABILITIES, LockSession } from './session';
import { type DurableState, type LayoutParams, LockStorage, StorageError } from './storage';
import { BUILD_TIME_S, type Clock, Rtc, type TimerHandle, type TimerScheduler } from './time';

export interface ProvisionBundle {
  lockId: string;
  rootPublicKeys: Uint8Array[];
  lockSecret: Uint8Array;
  timeZone: string;
  policy?: LockPolicy;
}

export type LockLog = (event: string, fields: Record<string, unknown>) => void;

export interface BootOptions {
  flash: NorFlash;
  clock: Clock;
  timers: TimerScheduler;
  random: RandomSource;
  /** RTC after boot. Default: lost (power loss) → max(build time, newest signed issuedAt). */
  rtc?: { driftPpm?: number; continueAtMs?: number; trusted?: boolean };
  battery?: number;
  log?: LockLog;
  /** Device profile whose costs the lock's work is charged at (device-profile.ts); default host (none). */
  device?: DeviceProfileName;
  /**
   * How charged device time is paid. Default: advance the clock when it is a FakeClock
   * (the lock was busy that long); with a real clock nothing is advanced and hosts delay
   * their answers by `lastChargedMs` instead (world over BLE, `locksync lock run`).
   */
  payDeviceTime?: (ms: number) => void;
}

/** Erase-ahead runs this long after the lock's last activity (it must find the lock idle). */
export const ERASE_AHEAD_IDLE_MS = 500;

export interface AccessResult {
  reason: DecisionReason;
  granted: boolean;
  method: AccessMethod;
  credId?: number;
  auditSeq: number;
}

/**
 * The time anchors (newest signed time, lease anchor) are persisted only when one has moved
 * at least this far past its persisted value (SPEC §8.4, FLASH.md §6): a stream of fresh
 * signed times costs at most one commit per this many seconds of authority time. A power
 * cut falls back to the older persisted anchors, which is safe: both are then behind, the
 * clock boots untrusted, and an older lease anchor only makes leases run out sooner.
 */
export const TIME_PERSIST_STEP_S = 3600;

/** A signed time's claim about which table is current, kept by its session (RAM only). */
export interface TimeClaim {
  time: number;
  version: number;
  digest: Uint8Array;
}

export class LockError extends Error {
  override readonly name = 'LockError';
  constructor(
    readonly code: 'BAD_BUNDLE' | 'NOT_PROVISIONED',
    detail: string,
  ) {
    super(`${code}: ${detail}`);
  }
}

export class Lock {
  machine: MachineState = initialMachineState();
  readonly rtc: Rtc;
  readonly clock: Clock;
  readonly timers: TimerScheduler;
  readonly random: RandomSource;
  readonly storage: LockStorage;
  readonly devicePublicKey: Uint8Array;
  private readonly deviceSecret: Uint8Array;
  private readonly timerHandles = new Map<TimerName, TimerHandle>();
  private readonly sessions = new Set<LockSession>();
  private readonly log: LockLog;
  /** Bolt commands in order (tests and the CLI's logs read them). */
  readonly motorLog: { action: 'retract' | 'throw'; atMs: number }[] = [];
  /** Refusals kept in RAM only: a hostile courier must not be able to wear the flash. */
  readonly volatileLog: { atMs: number; event: string; reason: string; detail: string }[] = [];
  private lastAccessSeq = 0;
  private lastDecision: AccessResult | undefined;
  /** Meters the lock's work and prices it on the device profile (host: zero). */
  readonly device: DeviceCostModel;
  /** Device ms the last outermost input (session message, card, key, timer) cost, incl. unpaid timer work. */
  lastChargedMs = 0;
  private unpaidMs = 0;
  private inTimer = false;
  private readonly payDeviceTime: (ms: number) => void;
  private eraseAheadTimer: TimerHandle | undefined;
  /** Time anchors accepted since the last commit that persisted them (≥ the persisted ones). */
  private timeRam: { newestIssuedAt: number; leaseAnchor: number };

  // -------------------------------------------------------------------------

  /** Factory provisioning: format the flash with the bundle and a device key. */
  static provision(flash: NorFlash, bundle: ProvisionBundle, deviceSeed: Uint8Array, layout?: LayoutParams): { devicePublicKey: Uint8Array } {
    if (!LOCK_ID_PATTERN.test(bundle.lockId)) throw new LockError('BAD_BUNDLE', `lock id ${bundle.lockId} does not match ${LOCK_ID_PATTERN}`);
    if (bundle.rootPublicKeys.length === 0 || bundle.rootPublicKeys.some((k) => k.length !== 32)) throw new LockError('BAD_BUNDLE', 'need >= 1 root public key of 32 bytes');
    if (bundle.lockSecret.length !== 32) throw new LockError('BAD_BUNDLE', 'lock secret must be 32 bytes');
    if (deviceSeed.length !== 32) throw new LockError('BAD_BUNDLE', 'device seed must be 32 bytes');
    if (!isValidTimeZone(bundle.timeZone)) throw new LockError('BAD_BUNDLE', `unknown IANA time zone ${bundle.timeZone}`);
    if (bundle.policy !== undefined) {
      try {
        validateLockPolicy(bundle.policy);
      } catch (e) {
        throw new LockError('BAD_BUNDLE', (e as Error).message);
      }
    }
    LockStorage.format(
      flash,
      { lockId: bundle.lockId, lockSecret: bundle.lockSecret, deviceSeed, timeZone: bundle.timeZone },
      bundle.rootPublicKeys,
      { ...(layout !== undefined ? { layout } : {}), ...(bundle.policy !== undefined ? { policy: bundle.policy } : {}) },
    );
    return { devicePublicKey: keyPairFromSeed(deviceSeed).publicKey };
  }

  /** Mount the flash (rolling back any torn commit), restore the clock, run the boot transition. */
  static boot(opts: BootOptions): Lock {
    return new Lock(opts);
  }

  private constructor(opts: BootOptions) {
    this.clock = opts.clock;
    this.timers = opts.timers;
    this.random = opts.random;
    this.log = opts.log ?? (() => {});
    this.device = new DeviceCostModel(opts.device ?? 'host', opts.flash);
    const advance = (opts.timers as { advance?: (ms: number) => void }).advance;
    this.payDeviceTime = opts.payDeviceTime ?? (typeof advance === 'function' ? (ms) => advance.call(opts.timers, ms) : () => {});
    try {
      this.storage = LockStorage.mount(opts.flash);
    } catch (e) {
      if (e instanceof StorageError && e.code === 'NOT_FORMATTED') throw new LockError('NOT_PROVISIONED', e.message);
      throw e;
    }
    const kp = keyPairFromSeed(this.durable.secrets.deviceSeed);
    this.deviceSecret = kp.secretKey;
    this.devicePublicKey = kp.publicKey;
    this.timeRam = { newestIssuedAt: this.durable.tableState.newestIssuedAt, leaseAnchor: this.durable.tableState.leaseAnchor };
    const lost = opts.rtc?.continueAtMs === undefined;
    const floorMs = Math.max(BUILD_TIME_S, this.durable.tableState.newestIssuedAt) * 1000;
    this.rtc = new Rtc(this.clock, lost ? floorMs : Math.max(floorMs, opts.rtc?.continueAtMs as number), {
      ...(opts.rtc?.driftPpm !== undefined ? { driftPpm: opts.rtc.driftPpm } : {}),
      trusted: !lost && opts.rtc?.trusted === true,
    });
    const r = this.storage.report;
    // Index the table at boot, not on the first unlock (it is then carried across updates).
    tableIndex(this.durable.tableState.table);
    this.log('boot', { lockId: this.lockId, version: this.version, metaSeq: r.metaSeq, recordsRejected: r.recordsRejected, auditRolledForward: r.auditRolledForward, rtcLost: lost });
    // Bit rot found at mount: the lock runs on the newest copy that verifies, and says in its
    // audit log (which the authority reads) how many records it lost getting there.
    const lostRecords = r.corruptCommitRecords + r.auditRecordsLost;
    if (lostRecords > 0) {
      this.log('flashDataLost', { commitRecords: r.corruptCommitRecords, auditRecords: r.auditRecordsLost, version: this.version });
      this.storage.appendAudit({ time: this.rtc.nowS(), event: 'flashDataLost', value: lostRecords });
    }
    this.dispatch({
      type: 'mounted',
      wrongCount: this.durable.keypad.wrongCount,
      lockoutActive: this.durable.keypad.lockoutActive,
      lockoutLevel: this.durable.keypad.lockoutLevel,
      battery: opts.battery ?? 100,
      recoveredFromPowerLoss: lost,
    });
  }

  // -------------------------------------------------------------------------
  // Views

  get durable(): DurableState {
    return this.storage.state;
  }
  /** The table state in force: the committed one with the time anchors held in RAM. */
  get tableState(): TableState {
    const ts = this.durable.tableState;
    return { ...ts, newestIssuedAt: Math.max(ts.newestIssuedAt, this.timeRam.newestIssuedAt), leaseAnchor: Math.max(ts.leaseAnchor, this.timeRam.leaseAnchor) };
  }
  get lockId(): string {
    return this.durable.secrets.lockId;
  }
  get version(): number {
    return currentVersion(this.durable.tableState);
  }
  get policy(): LockPolicy {
    return this.durable.tableState.table.policy;
  }
  get lastAccess(): AccessResult | undefined {
    return this.lastDecision;
  }

  /** Advert fields for a BLE transport (shape of protocol LockAdvert). */
  advert(): { lockId: string; version: number; flags: number } {
    const lease = this.policy.leaseSeconds;
    const stale = !this.rtc.trusted || (lease > 0 && this.rtc.nowS() - this.tableState.leaseAnchor > lease);
    const flags = (stale ? 1 : 0) | (this.machine.battery < 10 ? 2 : 0) | (this.machine.mode.kind === 'keypadLockout' ? 4 : 0);
    return { lockId: this.lockId, version: this.version, flags };
  }

  /** Info characteristic fields (shape of protocol LockInfo). */
  info(): { lockId: string; protocolVersion: number; capabilities: number; version: number } {
    return { lockId: this.lockId, protocolVersion: PROTOCOL_VERSION, capabilities: LOCK_CAPABILITIES, version: this.version };
  }

  // -------------------------------------------------------------------------
  // Inputs

  openSession(): LockSession {
    const s = new LockSession(this);
    // Every message the session handles is metered as lock work (device profile).
    const handle = s.handle.bind(s);
    s.handle = (message) => this.metered(() => handle(message));
    this.sessions.add(s);
    if (this.sessions.size === 1) this.dispatch({ type: 'sessionOpened' });
    this.log('sessionOpened', { sessions: this.sessions.size });
    return s;
  }

  /** Called by LockSession.close(). */
  sessionEnded(s: LockSession): void {
    if (this.sessions.delete(s) && this.sessions.size === 0) {
      // A fast clock corrected in the session steps down to the corrected line only now
      // (never below true time, SPEC §8.2): inside a session the clock only moves forward.
      this.rtc.settle();
      this.dispatch({ type: 'sessionClosed' });
    }
  }

  /** One keypad key. Returns the decision when this digit completed a code. */
  pressKey(digit: string): AccessResult | undefined {
    const before = this.lastDecision;
    this.metered(() => this.dispatch({ type: 'keypadDigit', digit }));
    return this.lastDecision !== before ? this.lastDecision : undefined;
  }

  /** Type a whole code (digits arrive faster than the inter-digit timeout). */
  enterCode(digits: string): AccessResult | undefined {
    let r: AccessResult | undefined;
    for (const d of digits) r = this.pressKey(d) ?? r;
    return r;
  }

  presentCard(uid: Uint8Array): AccessResult {
    return this.metered(() => {
      const gate = accessGate(this.machine, 'keycard');
      const d: Decision = gate !== null ? { reason: gate, method: 'keycard' } : decideKeycard(this.accessContext(), uid);
      return this.recordDecision(d);
    });
  }

  setBattery(percent: number): void {
    this.dispatch({ type: 'batteryMeasured', percent });
  }

  // -------------------------------------------------------------------------
  // Session services

  issueChallenge(sessionId: Uint8Array, credId: number): IssuedChallenge {
    return makeChallenge(this.lockId, sessionId, this.random.bytes(16), credId, this.rtc.nowMs(), this.clock.nowMs());
  }

  decideUnlockResponse(sessionId: Uint8Array, issued: IssuedChallenge[], challengeBytes: Uint8Array, signature: Uint8Array): AccessResult {
    const d = decidePhone(this.accessContext(), sessionId, issued, challengeBytes, signature);
    if (d.consumed !== undefined) (issued[d.consumed] as IssuedChallenge).used = true;
    const gate = accessGate(this.machine, 'phone');
    // A valid response still refuses in a state that forbids opening (low battery).
    return this.recordDecision(gate !== null && d.reason === 'GRANTED' ? { ...d, reason: gate } : d);
  }

  /** Verify, apply, commit, sign: a receipt, or an error leaving the flash untouched. */
  /** `index`: built while a snapshot arrived (LockSession.receiving); used only if it fits the table exactly. */
  acceptUpdate(update: Update, sessionNonce: Uint8Array, claim?: TimeClaim, index?: TableIndexBuilder): Message {
    const before = this.durable.tableState.table;
    const r = applyUpdate(this.tableState, update);
    if (!r.ok) return this.refuse('updateRefused', r.error);
    // A signed time earlier in this session that named exactly the table this update brings
    // is lease evidence for it (SPEC §8.1).
    const tableState: TableState = { ...r.state, leaseAnchor: leaseAnchorAfterUpdate(r.state, claim) };
    const next: DurableState = { ...this.durable, tableState, signedHead: update.head };
    try {
      this.storage.commit(next, { time: this.rtc.nowS(), event: 'updateApplied', value: r.state.head?.version ?? 0 }, update.type === 'delta' ? update.ops : undefined);
    } catch (e) {
      if (e instanceof StorageError && e.code === 'TOO_LARGE') return this.refuse('updateRefused', new ProtocolError('OVER_LIMIT', e.message));
      // The device failed the writes (worn or failing flash): nothing changed, say so by name.
      if (e instanceof StorageError && e.code === 'FLASH_FAILED') return this.refuse('updateRefused', new ProtocolError('INTERNAL', e.message));
      throw e;
    }
    // The secret index follows the table incrementally (not rebuilt on the next unlock); a
    // snapshot's was built while it arrived.
    if (!(update.type === 'snapshot' && index?.adoptFor(r.state.table))) carryTableIndex(before, r.state.table);
    this.timeRam = { newestIssuedAt: tableState.newestIssuedAt, leaseAnchor: tableState.leaseAnchor };
    this.raiseClockFloor();
    this.log('updateApplied', { version: this.version, type: update.type, entries: r.state.table.entries.size });
    return this.receipt(sessionNonce);
  }

  receipt(sessionNonce: Uint8Array): Message {
    const ts = this.durable.tableState;
    const a = this.storage.flushAudit(this.rtc.nowS());
    return makeReceipt(
      { lockId: ts.lockId, version: currentVersion(ts), digest: currentDigest(ts), nonce: sessionNonce, lockTime: this.rtc.nowS(), auditSeq: a.seq, auditHead: a.hash },
      this.deviceSecret,
    );
  }

  /**
   * Authority-signed time (SPEC §8). The checks and the anchors are protocol/time.ts; here
   * the clock moves. Bound to this session's nonce, received `elapsedMs` (monotonic timer)
   * after the session opened, it proves true time lies in [time, time + elapsedMs]: a clock
   * behind that jumps forward to `time`; one ahead of the upper bound slews (runs at half
   * rate) and steps down to the corrected line only once no session is open; either way it
   * is then trusted. Without a nonce (possibly stale, relayed by anyone) it only raises
   * the clock. The clock never moves back inside a session, nor ever below true time.
   */
  acceptSignedTime(m: Extract<Message, { type: 'signedTime' }>, session: SessionNonce & { elapsedMs: number }): { reply: Message; claim?: TimeClaim } {
    let o: ReturnType<typeof checkSignedTime>;
    try {
      o = checkSignedTime(this.tableState, m, session);
    } catch (e) {
      if (e instanceof ProtocolError) return { reply: this.refuse('timeRefused', e) };
      throw e;
    }
    const timeMs = o.time * 1000;
    this.rtc.advanceTo(timeMs, o.bound);
    if (o.bound) this.rtc.slewTo(timeMs + 999 + Math.max(0, session.elapsedMs));
    this.timeRam = { newestIssuedAt: o.newestIssuedAt, leaseAnchor: o.leaseAnchor };
    this.persistTimeIfDue();
    this.log('timeSet', { time: o.time, bound: o.bound, leaseRefreshed: o.leaseRefreshed });
    return { reply: { type: 'timeAck', lockTime: this.rtc.nowS() }, claim: { time: o.time, version: m.body.version, digest: m.body.digest } };
  }

  /**
   * Root-signed floor reset (SPEC §8.3): recovery from a far-future signed time or version.
   * Sets the clock floor, the clock (the one step back a lock ever takes within a boot) and
   * the version floor to the named values, lowers the lease anchor to at most the time,
   * and commits at once.
   */
  acceptFloorReset(m: Extract<Message, { type: 'floorReset' }>, session: SessionNonce): Message {
    let o: ReturnType<typeof checkFloorReset>;
    try {
      o = checkFloorReset(this.tableState, m, session);
    } catch (e) {
      if (e instanceof ProtocolError) return this.refuse('floorResetRefused', e);
      throw e;
    }
    const tableState: TableState = { ...this.durable.tableState, versionFloor: o.versionFloor, newestIssuedAt: o.newestIssuedAt, leaseAnchor: o.leaseAnchor };
    this.storage.commit({ ...this.durable, tableState }, { time: o.time, event: 'floorReset', value: o.versionFloor });
    this.timeRam = { newestIssuedAt: o.newestIssuedAt, leaseAnchor: o.leaseAnchor };
    this.rtc.reset(o.time * 1000, true);
    this.log('floorReset', { time: o.time, versionFloor: o.versionFloor });
    return { type: 'timeAck', lockTime: this.rtc.nowS() };
  }

  /** Persist the RAM time anchors once either has moved TIME_PERSIST_STEP_S past flash. */
  private persistTimeIfDue(): void {
    const c = this.durable.tableState;
    const { newestIssuedAt, leaseAnchor } = this.timeRam;
    if (newestIssuedAt - c.newestIssuedAt < TIME_PERSIST_STEP_S && leaseAnchor - c.leaseAnchor < TIME_PERSIST_STEP_S) return;
    this.storage.commit({ ...this.durable, tableState: { ...c, newestIssuedAt, leaseAnchor } }, { time: this.rtc.nowS(), event: 'timeSet', value: newestIssuedAt });
  }

  /** Audit records from `fromSeq`, signed with the device key (SPEC §10.1). */
  auditExport(fromSeq: number, max: number): Message {
    const head = this.storage.flushAudit(this.rtc.nowS());
    const ex = this.storage.exportAudit(fromSeq, max);
    return makeSignedAuditExport(this.lockId, ex.prevHash, ex.records, this.storage.auditOldestSeq(), head.seq, this.deviceSecret);
  }

  /**
   * The authority's "audit anchored through seq N" (SPEC §10.2): the ring may then recycle
   * records up to N. Refused, changing nothing: UNTRUSTED_KEY, BAD_SIGNATURE, WRONG_LOCK,
   * BROKEN_CHAIN (N beyond the newest record, or another chain hash at N than the lock's).
   */
  acceptAuditAnchor(m: Extract<Message, { type: 'auditAnchor' }>): Message {
    const ts = this.durable.tableState;
    let key: Uint8Array;
    try {
      key = signingKeyFor(ts.trust, m.body.keyId);
    } catch (e) {
      if (e instanceof ProtocolError) return this.refuse('anchorRefused', e);
      throw e;
    }
    if (!verify('auditAnchor', m.bodyBytes, m.signature, key)) return this.refuse('anchorRefused', new ProtocolError('BAD_SIGNATURE', 'audit anchor does not verify'));
    if (m.body.lockId !== ts.lockId) return this.refuse('anchorRefused', new ProtocolError('WRONG_LOCK', `anchor for ${m.body.lockId}`));
    const head = this.storage.flushAudit(this.rtc.nowS());
    if (m.body.seq > head.seq) return this.refuse('anchorRefused', new ProtocolError('BROKEN_CHAIN', `anchor at seq ${m.body.seq} > newest record ${head.seq}`));
    const h = this.storage.auditChainHashAt(m.body.seq);
    if (h !== undefined && !bytesEqual(h, m.body.hash)) return this.refuse('anchorRefused', new ProtocolError('BROKEN_CHAIN', `anchor hash at seq ${m.body.seq} is not this lock's`));
    if (m.body.seq > this.storage.auditAnchoredSeq) this.storage.commit({ ...this.durable, auditAnchoredSeq: m.body.seq });
    this.log('auditAnchored', { seq: this.storage.auditAnchoredSeq });
    return { type: 'auditAnchored', anchoredSeq: this.storage.auditAnchoredSeq };
  }

  note(event: string, fields: Record<string, unknown>): void {
    this.log(event, fields);
  }

  // -------------------------------------------------------------------------
  // Internals

  private refuse(event: string, e: ProtocolError): Message {
    this.volatileLog.push({ atMs: this.clock.nowMs(), event, reason: e.reason, detail: e.detail });
    if (this.volatileLog.length > 256) this.volatileLog.shift();
    this.log(event, { reason: e.reason, detail: e.detail });
    return { type: 'error', reason: e.reason, detail: e.detail };
  }

  private raiseClockFloor(): void {
    this.rtc.advanceTo(this.tableState.newestIssuedAt * 1000, false);
  }

  accessContext(): AccessContext {
    const d = this.durable;
    return {
      lockId: d.secrets.lockId,
      table: d.tableState.table,
      lockSecret: d.secrets.lockSecret,
      timeZone: d.secrets.timeZone,
      nowMs: this.rtc.nowMs(),
      monotonicMs: this.clock.nowMs(),
      clockTrusted: this.rtc.trusted,
      leaseAnchorS: this.tableState.leaseAnchor,
      singleUse: d.singleUse,
    };
  }

  private recordDecision(d: Decision): AccessResult {
    if (d.singleUse !== undefined && d.reason === 'GRANTED') {
      // The use must be durable before the bolt moves: a power cut must not make it reusable.
      this.storage.commit({ ...this.durable, singleUse: d.singleUse });
    }
    this.dispatch({ type: 'accessDecided', method: d.method, reason: d.reason, ...(d.credId !== undefined ? { credId: d.credId } : {}) });
    const result: AccessResult = { reason: d.reason, granted: d.reason === 'GRANTED', method: d.method, auditSeq: this.lastAccessSeq };
    if (d.credId !== undefined) result.credId = d.credId;
    this.lastDecision = result;
    this.log('access', { ...result });
    return result;
  }

  dispatch(e: MachineEvent): void {
    const t = transition(this.machine, e, this.policy);
    this.machine = t.state;
    for (const fx of t.effects) this.execute(fx);
  }

  private execute(fx: Effect): void {
    switch (fx.type) {
      case 'persist': {
        const k = this.durable.keypad;
        if (k.wrongCount !== fx.wrongCount || k.lockoutActive !== fx.lockoutActive || k.lockoutLevel !== fx.lockoutLevel)
          this.storage.commit({ ...this.durable, keypad: { wrongCount: fx.wrongCount, lockoutActive: fx.lockoutActive, lockoutLevel: fx.lockoutLevel } });
        return;
      }
      case 'startTimer': {
        this.cancel(fx.timer);
        const ev: MachineEvent = { type: fx.timer === 'relock' ? 'relockTimer' : fx.timer === 'keypad' ? 'keypadTimeout' : 'lockoutTimer' };
        this.timerHandles.set(
          fx.timer,
          this.timers.setTimer(fx.ms, () => {
            this.timerHandles.delete(fx.timer);
            this.inTimerMetered(() => this.dispatch(ev));
          }),
        );
        return;
      }
      case 'cancelTimer':
        this.cancel(fx.timer);
        return;
      case 'motor':
        this.motorLog.push({ action: fx.action, atMs: this.clock.nowMs() });
        this.log('motor', { action: fx.action });
        return;
      case 'audit': {
        // Refusals are coalesced and may not use the ring's last block (storage.ts).
        const refusal = fx.event === 'access' && fx.reason !== undefined && fx.reason !== 'GRANTED';
        const head = this.storage.appendAudit(
          {
            time: this.rtc.nowS(),
            event: fx.event,
            ...(fx.credId !== undefined ? { credId: fx.credId } : {}),
            ...(fx.reason !== undefined ? { reason: DECISION_REASONS[fx.reason] } : {}),
            ...(fx.method !== undefined ? { value: ACCESS_METHOD_CODES[fx.method] } : {}),
          },
          { refusal },
        );
        if (fx.event === 'access') this.lastAccessSeq = head.seq;
        if (fx.event === 'access' && fx.reason === 'KEYPAD_TIMEOUT') {
          this.lastDecision = { reason: 'KEYPAD_TIMEOUT', granted: false, method: 'doorcode', auditSeq: head.seq };
          this.log('access', { ...this.lastDecision });
        }
        return;
      }
      case 'evaluateCode': {
        const gate = accessGate(this.machine, 'doorcode');
        this.recordDecision(gate !== null ? { reason: gate, method: 'doorcode' } : decideCode(this.accessContext(), fx.code));
        return;
      }
      case 'indicate':
        this.log('indicate', { signal: fx.signal });
        return;
    }
  }

  private cancel(timer: TimerName): void {
    const h = this.timerHandles.get(timer);
    if (h !== undefined) this.timers.clearTimer(h);
    this.timerHandles.delete(timer);
  }

  // -------------------------------------------------------------------------
  // Device time and idle work

  /**
   * Run one input's work metered, pay its device time (plus what timer work left unpaid),
   * then schedule erase-ahead if the audit ring will need a fresh block soon.
   */
  private metered<T>(fn: () => T): T {
    const { result, chargedMs } = this.device.measure(fn);
    if (this.inTimer) this.unpaidMs += chargedMs;
    else {
      this.lastChargedMs = chargedMs + this.unpaidMs;
      this.unpaidMs = 0;
      // Paying may advance a FakeClock and fire timers: never from inside a timer callback.
      if (this.lastChargedMs > 0) this.payDeviceTime(this.lastChargedMs);
    }
    this.scheduleEraseAhead();
    return result;
  }

  /** Timer work is metered but paid with the next input (a clock cannot advance inside its own advance). */
  private inTimerMetered(fn: () => void): void {
    const outer = this.inTimer;
    this.inTimer = true;
    try {
      this.metered(fn);
    } finally {
      this.inTimer = outer;
    }
  }

  private scheduleEraseAhead(): void {
    if (this.eraseAheadTimer !== undefined || !this.storage.auditEraseAheadDue()) return;
    this.eraseAheadTimer = this.timers.setTimer(ERASE_AHEAD_IDLE_MS, () => {
      this.eraseAheadTimer = undefined;
      // Idle means no phone session: an erase stalls the CPU (NVMC) or the flash bus.
      if (this.sessions.size > 0) return this.scheduleEraseAhead();
      this.inTimerMetered(() => {
        if (this.storage.eraseAuditAhead()) this.log('auditEraseAhead', {});
      });
    });
  }

  /** Stop timers (the process is leaving, or power is cut: nothing is written). */
  shutdown(): void {
    if (this.eraseAheadTimer !== undefined) this.timers.clearTimer(this.eraseAheadTimer);
    this.eraseAheadTimer = undefined;
    for (const t of [...this.timerHandles.keys()]) this.cancel(t);
    for (const s of [...this.sessions]) s.close();
  }

  /** Orderly exit only (the power is there): commit time anchors still held in RAM. */
  persistTimeAnchors(): void {
    const c = this.durable.tableState;
    if (this.timeRam.newestIssuedAt > c.newestIssuedAt || this.timeRam.leaseAnchor > c.leaseAnchor)
      this.storage.commit({ ...this.durable, tableState: this.tableState }, { time: this.rtc.nowS(), event: 'timeSet', value: this.timeRam.newestIssuedAt });
  }
}
