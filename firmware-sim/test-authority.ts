// A minimal, honest signer for firmware-sim's own tests and benchmarks: it holds a root
// key (and optionally an online key certified by it), a table per lock and its version,
// and issues signed deltas, snapshots and signed time exactly as the protocol specifies.
// The real authority (authority/) persists and serves these; the lock cannot tell them
// apart, which is the point.

import {
  type Entry,
  type KeyPair,
  type Message,
  type Op,
  type SignedKeyCert,
  type Table,
  type Update,
  applyOps,
  deriveSeed32,
  emptyTable,
  encodeMessage,
  issueKeyCert,
  keyPairFromSeed,
  makeDelta,
  makeSignedTime,
  type SignedTimeBody,
  signHead,
  tableDigest,
  encodeEntry,
  doorcodeVerifier,
  keycardVerifier,
  type LockPolicy,
} from '../protocol';

export class TestAuthority {
  readonly root: KeyPair;
  signer: KeyPair;
  cert: SignedKeyCert | undefined;
  table: Table;
  version = 0;
  /** Authority clock, unix seconds. */
  now: number;

  constructor(
    readonly lockId: string,
    readonly lockSecret: Uint8Array,
    seed: number | string = 1,
    opts: { now?: number; policy?: LockPolicy } = {},
  ) {
    this.root = keyPairFromSeed(deriveSeed32(seed, 'root'));
    this.signer = this.root;
    this.table = opts.policy !== undefined ? emptyTable(opts.policy) : emptyTable();
    this.now = opts.now ?? 1_760_000_000;
  }

  /** Rotate to a new online key certified by the root (serial must grow). */
  rotateOnlineKey(seedLabel: string, serial: number): SignedKeyCert {
    this.signer = keyPairFromSeed(deriveSeed32(seedLabel, 'online'));
    this.cert = issueKeyCert(serial, this.signer.publicKey, this.root.secretKey, this.root.publicKey);
    return this.cert;
  }

  /** Apply ops and return the signed delta from the previous version. */
  delta(ops: Op[], opts: { version?: number; lockId?: string; signWith?: Uint8Array } = {}): Update {
    const baseDigest = tableDigest(this.table);
    const base = { version: this.version, digest: baseDigest };
    this.table = applyOps(this.table, ops);
    this.version = opts.version ?? this.version + 1;
    const head = signHead(
      { lockId: opts.lockId ?? this.lockId, version: this.version, digest: tableDigest(this.table), issuedAt: this.now, keyId: this.signer.keyId },
      opts.signWith ?? this.signer.secretKey,
    );
    return makeDelta({ base, ops, head, certs: this.cert !== undefined ? [this.cert] : [] });
  }

  snapshot(): Update {
    const head = signHead({ lockId: this.lockId, version: this.version, digest: tableDigest(this.table), issuedAt: this.now, keyId: this.signer.keyId }, this.signer.secretKey);
    return { type: 'snapshot', table: this.table, head, certs: this.cert !== undefined ? [this.cert] : [] };
  }

  /** Signed time naming this authority's current table (override with `names`, e.g. a
   *  stale table, to test lease evidence). */
  signedTime(nonce?: Uint8Array, time = this.now, names: { version: number; digest: Uint8Array } = { version: this.version, digest: tableDigest(this.table) }): Uint8Array {
    const body: SignedTimeBody = { lockId: this.lockId, time, keyId: this.signer.keyId, version: names.version, digest: names.digest };
    if (nonce !== undefined) body.nonce = nonce;
    return encodeMessage(makeSignedTime(body, this.signer.secretKey));
  }

  static message(u: Update): Uint8Array {
    const m: Message = { type: u.type, update: u };
    return encodeMessage(m);
  }

  phoneEntry(credId: number, publicKey: Uint8Array, extra: Partial<Entry> = {}): Entry {
    return { credId, kind: 'phone', holder: 'resident', secret: publicKey, flags: 0, ...extra };
  }

  doorcodeEntry(credId: number, code: string, extra: Partial<Entry> = {}): Entry {
    return { credId, kind: 'doorcode', holder: 'resident', secret: doorcodeVerifier(this.lockSecret, code), flags: 0, ...extra };
  }

  keycardEntry(credId: number, uid: Uint8Array, extra: Partial<Entry> = {}): Entry {
    return { credId, kind: 'keycard', holder: 'resident', secret: keycardVerifier(this.lockSecret, uid), flags: 0, ...extra };
  }
}

/**
 * `message` with two neighbouring table entries' encodings swapped in place (a snapshot
 * whose credIds are out of order, same length): `a` must come right before `b`.
 */
export function swapEncodedEntries(message: Uint8Array, a: Entry, b: Entry): Uint8Array {
  const at = Buffer.from(message).indexOf(Buffer.from(encodeEntry(a)));
  if (at < 0) throw new Error(`entry ${a.credId} is not in the message`);
  const out = new Uint8Array(message);
  out.set(encodeEntry(b), at);
  out.set(encodeEntry(a), at + encodeEntry(b).length);
  return out;
}

// ---------------------------------------------------------------------------
// A provisioned lock on in-memory flash with a fake clock, for tests and benchmarks.

import { SeededRandom } from '../protocol';
import { NorFlash, type FlashGeometry, type PowerLossMode } from './flash';
import { Lock, type BootOptions } from './lock';
import type { LayoutParams } from './storage';
import { FakeClock } from './time';

export const TEST_GEOMETRY: FlashGeometry = { blockSize: 4096, blockCount: 48, progSize: 16 };
export const TEST_LAYOUT: LayoutParams = { metaSlotBlocks: 1, tableRegionBlocks: 8, auditBlocks: 24 };

export interface TestRig {
  auth: TestAuthority;
  flash: NorFlash;
  clock: FakeClock;
  lock: Lock;
  random: SeededRandom;
  /** Reboot from the same flash; `powerLoss` loses the RTC (default true). */
  reboot(opts?: { powerLoss?: boolean; battery?: number }): Lock;
}

export function createTestRig(
  opts: { seed?: string; lockId?: string; timeZone?: string; policy?: LockPolicy; geometry?: FlashGeometry; layout?: LayoutParams; mode?: PowerLossMode; startMs?: number } = {},
): TestRig {
  const seed = opts.seed ?? 'rig';
  const lockId = opts.lockId ?? 'lk-0001';
  const lockSecret = deriveSeed32(seed, 'lock-secret');
  const clock = new FakeClock(opts.startMs ?? 1_760_000_000_000);
  const auth = new TestAuthority(lockId, lockSecret, seed, { now: Math.floor(clock.nowMs() / 1000), ...(opts.policy ? { policy: opts.policy } : {}) });
  const flash = new NorFlash(opts.geometry ?? TEST_GEOMETRY, { seed, ...(opts.mode ? { mode: opts.mode } : {}) });
  Lock.provision(
    flash,
    { lockId, rootPublicKeys: [auth.root.publicKey], lockSecret, timeZone: opts.timeZone ?? 'Europe/Berlin', ...(opts.policy ? { policy: opts.policy } : {}) },
    deriveSeed32(seed, 'device'),
    opts.layout ?? TEST_LAYOUT,
  );
  const random = new SeededRandom(`${seed}/lock`);
  const boot = (o: { powerLoss?: boolean; battery?: number } = {}, prev?: Lock): Lock => {
    const b: BootOptions = { flash, clock, timers: clock, random, battery: o.battery ?? 100 };
    if (o.powerLoss === false) b.rtc = { continueAtMs: prev ? prev.rtc.nowMs() : clock.nowMs(), trusted: prev?.rtc.trusted ?? true };
    return Lock.boot(b);
  };
  const rig: TestRig = {
    auth,
    flash,
    clock,
    random,
    lock: boot({ powerLoss: false }),
    reboot(o = {}) {
      this.lock.shutdown();
      this.lock = boot(o, this.lock);
      return this.lock;
    },
  };
  return rig;
}
