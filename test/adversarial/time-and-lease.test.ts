// Attacks on the lock's clock and lease (issue 11 items 1 and 4, SPEC §8), in the shape of
// python-tuf's attack tests: each attack is played through a real lock session on emulated
// flash, asserts the named refusal, that the flash is byte-identical where state would
// have changed, and that the next valid update or time is then accepted.
// Self-contained (plain vitest); the rig is firmware-sim's honest test authority.

import { describe, expect, it } from 'vitest';
import {
  type Entry,
  type Message,
  type Update,
  DEFAULT_LOCK_POLICY,
  ENTRY_FLAGS,
  answerChallenge,
  dailyCode,
  decodeMessage,
  encodeMessage,
  keyPairFromSeed,
  deriveSeed32,
  makeFloorReset,
  makeSignedTime,
  signHead,
  tableDigest,
} from '../../protocol';
import { localTime } from '../../firmware-sim/access';
import type { LockSession } from '../../firmware-sim/session';
import { TIME_PERSIST_STEP_S } from '../../firmware-sim/lock';
import { TestAuthority, type TestRig, createTestRig } from '../../firmware-sim/test-authority';

const LEASE = 600;
const UID = new Uint8Array([0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66]);
const PARTNER_UID = new Uint8Array([0x04, 0x77, 0x88, 0x99, 0xaa]);
const phone = keyPairFromSeed(deriveSeed32('adversarial-time', 'phone'));

function one(s: LockSession, m: Message | Uint8Array): Message {
  const r = s.handle(m instanceof Uint8Array ? m : encodeMessage(m)).map((b) => decodeMessage(b));
  expect(r.length).toBe(1);
  return r[0] as Message;
}
const image = (rig: TestRig): Uint8Array => rig.flash.read(0, rig.flash.size);
/** The authority's clock follows true time (what an honest authority signs). */
function authorityNow(rig: TestRig): number {
  rig.auth.now = Math.floor(rig.clock.nowMs() / 1000);
  return rig.auth.now;
}
function push(s: LockSession, u: Update): Message {
  return one(s, TestAuthority.message(u));
}
/** Play an attack message: it must be refused with `reason`, leaving the flash as it was. */
function refusedUntouched(rig: TestRig, s: LockSession, bytes: Uint8Array, reason: string): void {
  const before = image(rig);
  const floor = rig.lock.tableState;
  expect(one(s, bytes)).toMatchObject({ type: 'error', reason });
  expect(Buffer.from(image(rig)).equals(Buffer.from(before))).toBe(true);
  expect(rig.lock.tableState).toEqual(floor);
}

function leasedRig(extra: Entry[] = []): { rig: TestRig; s: LockSession } {
  const rig = createTestRig({ seed: 'adv-time', policy: { ...DEFAULT_LOCK_POLICY, leaseSeconds: LEASE } });
  const a = rig.auth;
  const s = rig.lock.openSession();
  const entries: Entry[] = [
    { ...a.keycardEntry(10, PARTNER_UID), holder: 'partner', partnerId: 7, flags: ENTRY_FLAGS.LEASE },
    a.phoneEntry(1, phone.publicKey),
    ...extra,
  ];
  expect(push(s, a.delta(entries.map((entry) => ({ op: 'put', entry }))))).toMatchObject({ type: 'receipt', body: { version: 1 } });
  s.close();
  return { rig, s };
}

describe('lease: a courier withholding a revocation buys at most one lease', () => {
  it('R-TIME-2: fresh nonce-bound time naming the withheld version moves the clock, never the lease anchor', () => {
    const { rig } = leasedRig();
    const a = rig.auth;
    expect(rig.lock.presentCard(PARTNER_UID).reason).toBe('GRANTED');
    // The manager revokes the partner: v2 exists at the authority; the courier withholds it.
    rig.clock.advance(10_000);
    authorityNow(rig);
    const revocation = a.delta([{ op: 'removePartner', partnerId: 7 }]);
    const anchor = rig.lock.tableState.leaseAnchor;
    // Every 10 minutes for half a day the courier relays fresh, genuine, session-bound time.
    for (let visit = 0; visit < 12 * 6; visit++) {
      rig.clock.advance(10 * 60_000);
      authorityNow(rig);
      const s = rig.lock.openSession();
      expect(one(s, a.signedTime(s.nonce))).toMatchObject({ type: 'timeAck', lockTime: a.now });
      s.close();
      expect(rig.lock.rtc.trusted).toBe(true);
      expect(rig.lock.tableState.leaseAnchor).toBe(anchor);
      const expected = a.now - anchor > LEASE ? 'LEASE_STALE' : 'GRANTED';
      expect(rig.lock.presentCard(PARTNER_UID).reason).toBe(expected);
    }
    expect(rig.lock.presentCard(PARTNER_UID).reason).toBe('LEASE_STALE');
    // Residents are not leased.
    const s = rig.lock.openSession();
    const c = one(s, { type: 'unlockRequest', credId: 1 });
    if (c.type !== 'challenge') throw new Error('challenge expected');
    expect(one(s, answerChallenge(c.bodyBytes, phone.secretKey))).toMatchObject({ type: 'decision', reason: 'GRANTED' });
    // The next valid update (the revocation itself) is accepted and the partner is gone.
    expect(push(s, revocation)).toMatchObject({ type: 'receipt', body: { version: 2 } });
    expect(rig.lock.presentCard(PARTNER_UID).reason).toBe('UNKNOWN_CREDENTIAL');
  });

  it('an old time that named the lock\'s table, replayed later, refreshes the lease only to its own (old) time', () => {
    const { rig } = leasedRig();
    const a = rig.auth;
    rig.clock.advance(60_000);
    authorityNow(rig);
    const captured = a.signedTime(undefined); // names v1, no nonce: anyone may relay it
    a.delta([{ op: 'removePartner', partnerId: 7 }]); // v2, withheld
    rig.clock.advance((LEASE + 120) * 1000);
    const s = rig.lock.openSession();
    expect(one(s, captured)).toMatchObject({ type: 'timeAck' });
    expect(rig.lock.tableState.leaseAnchor).toBe(Math.floor(rig.clock.nowMs() / 1000) - LEASE - 120);
    expect(rig.lock.presentCard(PARTNER_UID).reason).toBe('LEASE_STALE');
    // Relayed again: not a rollback (same time), still no fresher evidence.
    expect(one(s, captured)).toMatchObject({ type: 'timeAck' });
    expect(rig.lock.presentCard(PARTNER_UID).reason).toBe('LEASE_STALE');
  });

  it('forged time naming the lock\'s table (untrusted key, bad signature, other lock) is refused, flash untouched', () => {
    const { rig } = leasedRig();
    const a = rig.auth;
    rig.clock.advance((LEASE + 60) * 1000);
    const now = authorityNow(rig);
    const s = rig.lock.openSession();
    const names = { version: 1, digest: tableDigest(a.table) };
    const stranger = keyPairFromSeed(deriveSeed32('adversarial-time', 'stranger'));
    refusedUntouched(rig, s, encodeMessage(makeSignedTime({ lockId: 'lk-0001', time: now, keyId: stranger.keyId, nonce: s.nonce, ...names }, stranger.secretKey)), 'UNTRUSTED_KEY');
    const genuine = makeSignedTime({ lockId: 'lk-0001', time: now, keyId: a.signer.keyId, nonce: s.nonce, ...names }, a.signer.secretKey);
    const tampered = { ...genuine, body: { ...genuine.body, time: now + 1 }, bodyBytes: makeSignedTime({ ...genuine.body, time: now + 1 }, stranger.secretKey).bodyBytes };
    refusedUntouched(rig, s, encodeMessage(tampered), 'BAD_SIGNATURE');
    refusedUntouched(rig, s, encodeMessage(makeSignedTime({ ...genuine.body, lockId: 'lk-0002' }, a.signer.secretKey)), 'WRONG_LOCK');
    expect(rig.lock.presentCard(PARTNER_UID).reason).toBe('LEASE_STALE');
    // The next valid time (naming the lock's own table) is accepted and renews the lease.
    expect(one(s, encodeMessage(genuine))).toMatchObject({ type: 'timeAck' });
    expect(rig.lock.presentCard(PARTNER_UID).reason).toBe('GRANTED');
  });

  it('time naming the newer table sent before the update that brings it renews the lease once the update lands', () => {
    const { rig } = leasedRig([]);
    const a = rig.auth;
    rig.clock.advance((LEASE + 60) * 1000);
    authorityNow(rig);
    const v2 = a.delta([{ op: 'put', entry: a.keycardEntry(11, UID, { holder: 'partner', partnerId: 8, flags: ENTRY_FLAGS.LEASE }) }]);
    rig.clock.advance(30_000);
    const issuedLater = authorityNow(rig); // the head of v2 is older than this time
    const s = rig.lock.openSession();
    expect(one(s, a.signedTime(s.nonce))).toMatchObject({ type: 'timeAck' }); // names v2; lock at v1
    expect(rig.lock.presentCard(UID).reason).toBe('UNKNOWN_CREDENTIAL');
    expect(push(s, v2)).toMatchObject({ type: 'receipt', body: { version: 2 } });
    expect(rig.lock.tableState.leaseAnchor).toBe(issuedLater);
    expect(rig.lock.durable.tableState.leaseAnchor).toBe(issuedLater); // in the update's commit
    expect(rig.lock.presentCard(UID).reason).toBe('GRANTED');
  });
});

describe('signed time: rollback and nonce', () => {
  it('TIME_ROLLBACK and BAD_NONCE leave the flash and the clock as they were; the next valid time is accepted', () => {
    const { rig } = leasedRig();
    const a = rig.auth;
    rig.clock.advance(2 * TIME_PERSIST_STEP_S * 1000);
    const now = authorityNow(rig);
    const s1 = rig.lock.openSession();
    expect(one(s1, a.signedTime(s1.nonce))).toMatchObject({ type: 'timeAck', lockTime: now });
    const sameSession = a.signedTime(s1.nonce);
    refusedUntouched(rig, s1, sameSession, 'BAD_NONCE'); // one nonce-bound time per session
    s1.close();
    const s2 = rig.lock.openSession();
    const clockBefore = rig.lock.rtc.nowMs();
    refusedUntouched(rig, s2, a.signedTime(s2.nonce, now - 1), 'TIME_ROLLBACK');
    refusedUntouched(rig, s2, sameSession, 'BAD_NONCE'); // replayed into another session
    refusedUntouched(rig, s2, a.signedTime(new Uint8Array(16).fill(7)), 'BAD_NONCE');
    expect(rig.lock.rtc.nowMs()).toBe(clockBefore);
    rig.clock.advance(1000);
    expect(one(s2, a.signedTime(s2.nonce, authorityNow(rig)))).toMatchObject({ type: 'timeAck' });
  });
});

describe('clock rewinds', () => {
  it('a nonce-bound time delayed inside the session does not turn the clock back: a just-expired card stays expired', () => {
    const start = Math.floor(createTestRig({ seed: 'adv-time' }).clock.nowMs() / 1000);
    const { rig } = leasedRig([{ credId: 20, kind: 'keycard', holder: 'staff', secret: new Uint8Array(16), flags: 0 }]);
    const a = rig.auth;
    const card = a.keycardEntry(21, UID, { validUntil: start + 50 });
    const s0 = rig.lock.openSession();
    expect(push(s0, a.delta([{ op: 'put', entry: card }]))).toMatchObject({ type: 'receipt' });
    s0.close();
    expect(rig.lock.presentCard(UID).reason).toBe('GRANTED');
    const s = rig.lock.openSession();
    authorityNow(rig);
    const fetched = a.signedTime(s.nonce); // signed now, bound to this session
    rig.clock.advance(100_000); // the courier sits on it for 100 s; the card expires meanwhile
    expect(rig.lock.presentCard(UID).reason).toBe('EXPIRED');
    const before = rig.lock.rtc.nowMs();
    expect(one(s, fetched)).toMatchObject({ type: 'timeAck' });
    expect(rig.lock.rtc.nowMs()).toBeGreaterThanOrEqual(before);
    expect(rig.lock.presentCard(UID).reason).toBe('EXPIRED');
    s.close();
    expect(rig.lock.presentCard(UID).reason).toBe('EXPIRED');
  });

  it('a challenge answered after 106 s is refused whatever the settable clock says', () => {
    const { rig } = leasedRig();
    const s = rig.lock.openSession();
    const c = one(s, { type: 'unlockRequest', credId: 1 });
    if (c.type !== 'challenge') throw new Error('challenge expected');
    rig.clock.advance(106_000);
    expect(one(s, answerChallenge(c.bodyBytes, phone.secretKey))).toMatchObject({ type: 'decision', reason: 'CHALLENGE_EXPIRED' });
    // The next challenge, answered at once, is granted.
    const c2 = one(s, { type: 'unlockRequest', credId: 1 });
    if (c2.type !== 'challenge') throw new Error('challenge expected');
    expect(one(s, answerChallenge(c2.bodyBytes, phone.secretKey))).toMatchObject({ type: 'decision', reason: 'GRANTED' });
  });

  it('after a power loss an expired keycard and a three-day-old daily code are refused CLOCK_UNTRUSTED, not GRANTED', () => {
    const { rig } = leasedRig();
    const a = rig.auth;
    const start = authorityNow(rig);
    const s0 = rig.lock.openSession();
    expect(push(s0, a.delta([{ op: 'put', entry: a.keycardEntry(30, UID, { validUntil: start + 86_400 }) }]))).toMatchObject({ type: 'receipt' });
    s0.close();
    const oldDate = localTime('Europe/Berlin', rig.lock.rtc.nowMs()).date;
    const oldCode = dailyCode(a.lockSecret, oldDate, 2, 'daily');
    expect(rig.lock.enterCode(oldCode)).toMatchObject({ reason: 'GRANTED' });
    rig.clock.advance(3 * 86_400_000); // three days later the card has expired…
    rig.reboot({ powerLoss: true }); // …and the lock lost power: its clock restarts 3 days behind
    expect(rig.lock.rtc.trusted).toBe(false);
    expect(rig.lock.presentCard(UID).reason).toBe('CLOCK_UNTRUSTED');
    expect(rig.lock.enterCode(oldCode)).toMatchObject({ reason: 'CLOCK_UNTRUSTED', granted: false });
    expect(rig.lock.presentCard(PARTNER_UID).reason).toBe('LEASE_STALE');
    // A nonce-bound time makes the clock trusted: the card is EXPIRED, today's code works.
    const s = rig.lock.openSession();
    expect(one(s, a.signedTime(s.nonce, authorityNow(rig)))).toMatchObject({ type: 'timeAck' });
    s.close();
    rig.clock.advance(5_000);
    expect(rig.lock.presentCard(UID).reason).toBe('EXPIRED');
    expect(rig.lock.enterCode(oldCode)).toMatchObject({ reason: 'WRONG_CODE' });
    rig.clock.advance(5_000);
    const today = localTime('Europe/Berlin', rig.lock.rtc.nowMs()).date;
    expect(rig.lock.enterCode(dailyCode(a.lockSecret, today, 2, 'daily'))).toMatchObject({ reason: 'GRANTED' });
  });
});

describe('far-future time and version: recovery only by a root-signed floor reset', () => {
  function pinned(): { rig: TestRig; online: ReturnType<typeof keyPairFromSeed> } {
    const { rig } = leasedRig();
    const a = rig.auth;
    // The online key (certified by the root) signs; later it signs a far-future time.
    const cert = a.rotateOnlineKey('adv-online', 1);
    const s = rig.lock.openSession();
    expect(push(s, { ...a.delta([]), certs: [cert] })).toMatchObject({ type: 'receipt', body: { version: 2 } });
    expect(one(s, a.signedTime(s.nonce, authorityNow(rig) + 10 * 365 * 86_400))).toMatchObject({ type: 'timeAck' });
    s.close();
    return { rig, online: a.signer };
  }

  it('a far-future time pins the floor; resets not signed by the root, for another session or lock are refused; the root reset recovers', () => {
    const { rig, online } = pinned();
    const a = rig.auth;
    const now = authorityNow(rig);
    let s = rig.lock.openSession();
    refusedUntouched(rig, s, a.signedTime(s.nonce, now), 'TIME_ROLLBACK');
    const body = { lockId: 'lk-0001', time: now, versionFloor: 2, keyId: a.root.keyId, nonce: s.nonce };
    refusedUntouched(rig, s, encodeMessage(makeFloorReset({ ...body, keyId: online.keyId }, online.secretKey)), 'UNTRUSTED_KEY');
    refusedUntouched(rig, s, encodeMessage(makeFloorReset({ ...body, nonce: new Uint8Array(16) }, a.root.secretKey)), 'BAD_NONCE');
    refusedUntouched(rig, s, encodeMessage(makeFloorReset({ ...body, lockId: 'lk-0002' }, a.root.secretKey)), 'WRONG_LOCK');
    const reset = encodeMessage(makeFloorReset(body, a.root.secretKey));
    expect(one(s, reset)).toMatchObject({ type: 'timeAck', lockTime: now });
    expect(rig.lock.tableState.newestIssuedAt).toBe(now);
    expect(rig.lock.durable.tableState.newestIssuedAt).toBe(now); // committed at once
    s.close();
    // Replayed into a later session: BAD_NONCE, nothing moves.
    s = rig.lock.openSession();
    refusedUntouched(rig, s, reset, 'BAD_NONCE');
    // The next valid time is accepted and the clock follows true time again.
    rig.clock.advance(1000);
    expect(one(s, a.signedTime(s.nonce, authorityNow(rig)))).toMatchObject({ type: 'timeAck', lockTime: a.now });
  });

  it('a head at version 2^53-1 stops every update until a root reset lowers the version floor', () => {
    const { rig } = leasedRig();
    const a = rig.auth;
    authorityNow(rig);
    const s = rig.lock.openSession();
    const table = a.table;
    const max = Number.MAX_SAFE_INTEGER;
    const bogus: Update = { type: 'snapshot', table, head: signHead({ lockId: 'lk-0001', version: max, digest: tableDigest(table), issuedAt: a.now, keyId: a.signer.keyId }, a.signer.secretKey), certs: [] };
    expect(push(s, bogus)).toMatchObject({ type: 'receipt', body: { version: max } });
    const next = a.snapshot(); // the authority's real v1 → signed as v2 below
    a.version = 2;
    const v2 = a.snapshot();
    expect(next.head.head.version).toBe(1);
    const before = image(rig);
    expect(push(s, v2)).toMatchObject({ type: 'error', reason: 'ROLLBACK' });
    expect(Buffer.from(image(rig)).equals(Buffer.from(before))).toBe(true);
    expect(one(s, encodeMessage(makeFloorReset({ lockId: 'lk-0001', time: a.now, versionFloor: 1, keyId: a.root.keyId, nonce: s.nonce }, a.root.secretKey)))).toMatchObject({ type: 'timeAck' });
    expect(push(s, v2)).toMatchObject({ type: 'receipt', body: { version: 2 } });
    expect(push(s, v2)).toMatchObject({ type: 'error', reason: 'ROLLBACK' }); // and the floor holds again
  });
});

describe('flash wear: a stream of fresh signed times', () => {
  it(`commits the time anchors at most once per ${TIME_PERSIST_STEP_S} s of authority time`, () => {
    const { rig } = leasedRig();
    const a = rig.auth;
    const seq0 = rig.lock.storage.commitSeq;
    const hours = 24;
    const perHour = 12; // one fresh signed time every 5 min, each in its own session
    for (let i = 0; i < hours * perHour; i++) {
      rig.clock.advance(300_000);
      const s = rig.lock.openSession();
      expect(one(s, a.signedTime(s.nonce, authorityNow(rig)))).toMatchObject({ type: 'timeAck' });
      s.close();
    }
    const commits = rig.lock.storage.commitSeq - seq0;
    expect(commits).toBeLessThanOrEqual(hours + 1);
    expect(commits).toBeGreaterThanOrEqual(hours - 1);
    // The lease works throughout: every time named the lock's table.
    expect(rig.lock.presentCard(PARTNER_UID).reason).toBe('GRANTED');
  });
});
