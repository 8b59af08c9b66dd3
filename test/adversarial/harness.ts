// The adversarial suite's shared world, in the shape of python-tuf's attack tests: build a
// lock and its authority from a seed, snapshot the flash, let an attacker (the courier
// phone, or anyone in BLE range) deliver bytes through the lock's real framing and
// session, then assert three things — the lock refused with the named reason, the flash is
// byte-identical, and the next valid update is still accepted (the attack left nothing
// behind that blocks honest progress).
//
// Every key, code and clock derives from the seed, so a failing attack replays exactly.

import { expect } from 'vitest';
import {
  type ErrorName,
  type KeyPair,
  type Message,
  type Update,
  FrameReassembler,
  FramingError,
  answerChallenge,
  decodeMessage,
  deriveSeed32,
  encodeMessage,
  keyPairFromSeed,
  segmentMessage,
  type LockPolicy,
} from '../../protocol';
import { TestAuthority, createTestRig, type TestRig } from '../../firmware-sim/test-authority';
import { MAX_MESSAGE_BYTES, type LockSession } from '../../firmware-sim/session';
import type { Lock } from '../../firmware-sim/lock';

export const PARTNER_ID = 7;
export const CRED = { resident: 1, partner: 2, doorcode: 3, keycard: 4 } as const;

export interface AttackWorld {
  seed: string;
  rig: TestRig;
  /** The honest authority, always at the lock's version once an attack is over. */
  auth: TestAuthority;
  phones: { resident: KeyPair; partner: KeyPair; stranger: KeyPair };
  doorcode: string;
  cardUid: Uint8Array;
  readonly lock: Lock;
}

/**
 * A provisioned lock at table v1 holding a resident phone, a partner phone, a doorcode and
 * a keycard, delivered by the honest authority.
 */
export function buildWorld(seed: string, opts: { policy?: LockPolicy } = {}): AttackWorld {
  const rig = createTestRig({ seed: `adv/${seed}`, ...(opts.policy !== undefined ? { policy: opts.policy } : {}) });
  const phones = {
    resident: keyPairFromSeed(deriveSeed32(seed, 'phone:resident')),
    partner: keyPairFromSeed(deriveSeed32(seed, 'phone:partner')),
    stranger: keyPairFromSeed(deriveSeed32(seed, 'phone:stranger')),
  };
  const doorcode = String(1_000_000 + (deriveSeed32(seed, 'code')[0] as number) * 1000 + 7);
  const cardUid = new Uint8Array([0x04, ...deriveSeed32(seed, 'card').subarray(0, 6)]);
  const a = rig.auth;
  const v1 = a.delta([
    { op: 'put', entry: a.phoneEntry(CRED.resident, phones.resident.publicKey) },
    { op: 'put', entry: { ...a.phoneEntry(CRED.partner, phones.partner.publicKey), holder: 'partner', partnerId: PARTNER_ID } },
    { op: 'put', entry: a.doorcodeEntry(CRED.doorcode, doorcode) },
    { op: 'put', entry: a.keycardEntry(CRED.keycard, cardUid) },
  ]);
  const w: AttackWorld = {
    seed,
    rig,
    auth: a,
    phones,
    doorcode,
    cardUid,
    get lock() {
      return rig.lock;
    },
  };
  const r = deliver(w, TestAuthority.message(v1));
  if (r.kind !== 'reply' || r.messages[0]?.type !== 'receipt') throw new Error(`world ${seed}: v1 refused`);
  return w;
}

/** An authority that shares the honest one's keys and history but moves on its own. */
export function forkAuthority(a: TestAuthority): TestAuthority {
  const f = Object.create(TestAuthority.prototype) as TestAuthority;
  Object.assign(f, a);
  return f;
}

export type Delivery =
  | { kind: 'reply'; messages: Message[] }
  /** The lock's framing refused the frames before any message reached the session. */
  | { kind: 'framing'; code: FramingError['code'] };

/**
 * Carry one message to the lock the way a phone does over GATT: segmented into frames at
 * `mtu`, reassembled by the lock's FrameReassembler (the one its MessageChannel runs),
 * handed to a session. `frames` overrides the segmentation (hand-made frame attacks).
 */
export function deliver(w: AttackWorld, bytes: Uint8Array, opts: { mtu?: number; session?: LockSession; frames?: Uint8Array[] } = {}): Delivery {
  const reassembler = new FrameReassembler({ maxMessageBytes: MAX_MESSAGE_BYTES });
  const session = opts.session ?? w.lock.openSession();
  const out: Message[] = [];
  try {
    for (const f of opts.frames ?? segmentMessage(bytes, opts.mtu ?? 185)) {
      const r = reassembler.push(f);
      if (r.message !== undefined) for (const m of session.handle(r.message)) out.push(decodeMessage(m));
    }
  } catch (e) {
    if (e instanceof FramingError) return { kind: 'framing', code: e.code };
    throw e;
  } finally {
    if (opts.session === undefined) session.close();
  }
  return { kind: 'reply', messages: out };
}

/** The refusal a delivery ended in: an error message's registry name, or framing's code. */
export function refusalOf(d: Delivery): string {
  if (d.kind === 'framing') return `framing:${d.code}`;
  const m = d.messages[0];
  if (m === undefined) return 'no answer';
  if (m.type === 'error') return m.reason;
  return `accepted (${m.type})`;
}

/** Bump the honest authority by one real change and deliver it: it must be accepted. */
export function expectNextValidUpdateAccepted(w: AttackWorld, note: string): void {
  expect(w.auth.version, `${note}: honest authority is at the lock's version`).toBe(w.lock.version);
  const before = w.lock.version;
  const uid = new Uint8Array([0x04, 0xee, before & 0xff, (before >> 8) & 0xff, 0x5a]);
  const d = deliver(w, TestAuthority.message(w.auth.delta([{ op: 'put', entry: w.auth.keycardEntry(10_000 + before, uid) }])));
  expect(refusalOf(d), `${note}: next valid update`).toBe('accepted (receipt)');
  expect(w.lock.version, note).toBe(before + 1);
  expect(w.lock.presentCard(uid).reason, `${note}: the new card opens`).toBe('GRANTED');
  w.rig.clock.advance(6_000); // let the bolt relock
}

export interface AttackOutcome {
  name: string;
  refusal: string;
}

/** Every attack run in this process: the suite prints how many were refused. */
export const attackLog: AttackOutcome[] = [];

/**
 * Run one attack. `expected` is the named refusal (or several acceptable names, for
 * families like bit flips where the first failing check depends on the bit). Asserts the
 * refusal, the flash byte-identical, then (unless `thenValid: false`) that the next valid
 * update is accepted.
 */
export function attack(w: AttackWorld, name: string, run: () => Delivery, expected: string | readonly string[], opts: { thenValid?: boolean } = {}): string {
  const before = w.rig.flash.image();
  const version = w.lock.version;
  const d = run();
  const refusal = refusalOf(d);
  attackLog.push({ name, refusal });
  const allowed = typeof expected === 'string' ? [expected] : expected;
  expect(allowed, `${name} (seed ${w.seed})`).toContain(refusal);
  expect(w.lock.version, name).toBe(version);
  const after = w.rig.flash.image();
  if (!Buffer.from(after.buffer, after.byteOffset, after.byteLength).equals(before)) {
    let at = 0;
    while (after[at] === before[at]) at++;
    expect.fail(`${name} (seed ${w.seed}): flash changed, first differing byte at 0x${at.toString(16)}`);
  }
  if (opts.thenValid !== false) expectNextValidUpdateAccepted(w, name);
  return refusal;
}

/** Ask for a challenge in `s` and answer it with `secretKey` (or a given signature). */
export function unlockWith(w: AttackWorld, s: LockSession, credId: number, secretKey: Uint8Array | { signature: Uint8Array }): Extract<Message, { type: 'decision' | 'error' }> {
  const ch = decodeMessage(s.handle(encodeMessage({ type: 'unlockRequest', credId }))[0] as Uint8Array);
  if (ch.type !== 'challenge') throw new Error(`no challenge: ${ch.type}`);
  const resp: Message = secretKey instanceof Uint8Array ? answerChallenge(ch.bodyBytes, secretKey) : { type: 'unlockResponse', challengeBytes: ch.bodyBytes, signature: secretKey.signature };
  const d = decodeMessage(s.handle(encodeMessage(resp))[0] as Uint8Array);
  if (d.type !== 'decision' && d.type !== 'error') throw new Error(`unexpected ${d.type}`);
  return d;
}

export function updateMessage(u: Update): Uint8Array {
  return TestAuthority.message(u);
}
