// The lock's clock rules (SPEC §8.2, §8.4): forward-only within a session, slewing a fast
// clock, settling outside sessions, CLOCK_UNTRUSTED decisions, challenge expiry on the
// monotonic timer, and coarse persistence of the time anchors.
import { describe, expect, it } from 'vitest';
import { type Entry, type Message, DEFAULT_LOCK_POLICY, decodeMessage, emptyTable, encodeMessage } from '../protocol';
import { type AccessContext, CHALLENGE_TTL_MS, decideAmong, decideCode, decidePhone, makeChallenge } from './access';
import { TIME_PERSIST_STEP_S } from './lock';
import type { LockSession } from './session';
import { createTestRig } from './test-authority';
import { FakeClock, RTC_SLEW_RATE, Rtc } from './time';

function one(s: LockSession, m: Message | Uint8Array): Message {
  const r = s.handle(m instanceof Uint8Array ? m : encodeMessage(m)).map((b) => decodeMessage(b));
  return r[0] as Message;
}

describe('Rtc', () => {
  it('advanceTo only moves forward', () => {
    const c = new FakeClock(0);
    const r = new Rtc(c, 10_000);
    r.advanceTo(5_000, true);
    expect(r.nowMs()).toBe(10_000);
    expect(r.trusted).toBe(true);
    r.advanceTo(20_000, false);
    expect(r.nowMs()).toBe(20_000);
  });

  it('slewTo never steps back: the reading runs at half rate until the corrected line overtakes it', () => {
    const c = new FakeClock(0);
    const r = new Rtc(c, 100_000);
    r.slewTo(40_000); // 60 s ahead
    expect(r.nowMs()).toBe(100_000);
    expect(r.slewing).toBe(true);
    let prev = r.nowMs();
    for (let i = 0; i < 200; i++) {
      c.advance(1_000);
      const now = r.nowMs();
      expect(now).toBeGreaterThanOrEqual(prev);
      prev = now;
    }
    // converged after 60 s / (1 − rate) = 120 s; from then on it follows the line
    expect(RTC_SLEW_RATE).toBe(0.5);
    expect(r.slewing).toBe(false);
    expect(r.nowMs()).toBe(40_000 + 200_000);
  });

  it('settle() ends a slew at the corrected line; reset() steps anywhere', () => {
    const c = new FakeClock(0);
    const r = new Rtc(c, 100_000);
    r.slewTo(40_000);
    c.advance(10_000);
    expect(r.nowMs()).toBe(105_000);
    r.settle();
    expect(r.nowMs()).toBe(50_000);
    r.reset(1_000, true);
    expect(r.nowMs()).toBe(1_000);
  });
});

describe('decisions on an untrusted clock', () => {
  const nowMs = 1_760_000_000_000;
  const nowS = nowMs / 1000;
  const ctx = (entries: Entry[], clockTrusted: boolean): AccessContext => ({
    lockId: 'lk-0001',
    table: { ...emptyTable(), entries: new Map(entries.map((e) => [e.credId, e])) },
    lockSecret: new Uint8Array(32),
    timeZone: 'Europe/Berlin',
    nowMs,
    monotonicMs: 0,
    clockTrusted,
    leaseAnchorS: nowS,
    singleUse: [],
  });
  const card = (extra: Partial<Entry>): Entry => ({ credId: 1, kind: 'keycard', holder: 'staff', secret: new Uint8Array(16), flags: 0, ...extra });

  it('R-CLOCK-1: validUntil, or a validFrom not reached, cannot be decided: CLOCK_UNTRUSTED; a passed validFrom can', () => {
    for (const [e, trusted, untrusted] of [
      [card({ validUntil: nowS + 3600 }), 'GRANTED', 'CLOCK_UNTRUSTED'],
      [card({ validUntil: nowS - 1 }), 'EXPIRED', 'CLOCK_UNTRUSTED'],
      [card({ validFrom: nowS + 60 }), 'NOT_YET_VALID', 'CLOCK_UNTRUSTED'],
      [card({ validFrom: nowS - 60 }), 'GRANTED', 'GRANTED'],
      [card({}), 'GRANTED', 'GRANTED'],
    ] as const) {
      expect(decideAmong([e], ctx([e], true)).reason).toBe(trusted);
      expect(decideAmong([e], ctx([e], false)).reason).toBe(untrusted);
    }
  });

  it('a guest whose parent has a validUntil is CLOCK_UNTRUSTED too', () => {
    const parent: Entry = { credId: 1, kind: 'phone', holder: 'resident', secret: new Uint8Array(32), flags: 0, validUntil: nowS + 3600 };
    const guest: Entry = { credId: 2, kind: 'phone', holder: 'guest', secret: new Uint8Array(32).fill(1), flags: 0, parent: 1 };
    expect(decideAmong([guest], ctx([parent, guest], true)).reason).toBe('GRANTED');
    expect(decideAmong([guest], ctx([parent, guest], false)).reason).toBe('CLOCK_UNTRUSTED');
  });

  it('R-CLOCK-1: daily codes of the clock\'s date and the next 7 are CLOCK_UNTRUSTED; other codes WRONG_CODE', async () => {
    const { dailyCode } = await import('../protocol');
    const c = ctx([], false);
    const dateIn = (days: number) => new Date(nowMs + days * 86_400_000).toLocaleDateString('sv-SE', { timeZone: 'Europe/Berlin' });
    expect(decideCode(c, dailyCode(c.lockSecret, dateIn(0), 0, 'daily')).reason).toBe('CLOCK_UNTRUSTED');
    expect(decideCode(c, dailyCode(c.lockSecret, dateIn(3), 5, 'dailySingleUse')).reason).toBe('CLOCK_UNTRUSTED');
    expect(decideCode(c, dailyCode(c.lockSecret, dateIn(0), 0, 'daily'))).not.toHaveProperty('singleUse');
    expect(decideCode({ ...c, clockTrusted: true }, dailyCode(c.lockSecret, dateIn(0), 0, 'daily')).reason).toBe('GRANTED');
    expect(decideCode(c, '0000001').reason).toBe('WRONG_CODE');
  });
});

describe('challenge expiry on the monotonic timer', () => {
  it('the settable clock does not decide: expired by the timer even if the clock went back; valid by the timer even if it jumped', () => {
    const c = makeChallenge('lk-0001', new Uint8Array(8), new Uint8Array(16), 1, 5_000_000, 1_000);
    const base: AccessContext = { lockId: 'lk-0001', table: emptyTable(), lockSecret: new Uint8Array(32), timeZone: 'UTC', nowMs: 5_000_000, monotonicMs: 1_000, clockTrusted: true, leaseAnchorS: 0, singleUse: [] };
    const sig = new Uint8Array(64);
    expect(decidePhone({ ...base, nowMs: 4_000_000, monotonicMs: 1_000 + 106_000 }, new Uint8Array(8), [c], c.bytes, sig).reason).toBe('CHALLENGE_EXPIRED');
    // Within the timer's lifetime it goes on to the credential check (none here).
    expect(decidePhone({ ...base, nowMs: 9_000_000, monotonicMs: 1_000 + CHALLENGE_TTL_MS }, new Uint8Array(8), [{ ...c, used: false }], c.bytes, sig).reason).toBe('UNKNOWN_CREDENTIAL');
  });
});

describe('time anchors on flash', () => {
  it(`persist only when they move ${TIME_PERSIST_STEP_S} s; a power cut falls back to the older anchors, untrusted`, () => {
    const rig = createTestRig({ seed: 'clock', policy: { ...DEFAULT_LOCK_POLICY, leaseSeconds: 7200 } });
    const a = rig.auth;
    let s = rig.lock.openSession();
    expect(one(s, a.signedTime(s.nonce))).toMatchObject({ type: 'timeAck' });
    s.close();
    const persisted = rig.lock.durable.tableState.newestIssuedAt;
    expect(persisted).toBe(a.now);
    const seq = rig.lock.storage.commitSeq;
    rig.clock.advance((TIME_PERSIST_STEP_S - 60) * 1000);
    a.now = Math.floor(rig.clock.nowMs() / 1000);
    s = rig.lock.openSession();
    expect(one(s, a.signedTime(s.nonce))).toMatchObject({ type: 'timeAck' });
    s.close();
    expect(rig.lock.storage.commitSeq).toBe(seq); // moved less than a step: RAM only
    expect(rig.lock.tableState.newestIssuedAt).toBe(a.now);
    expect(rig.lock.tableState.leaseAnchor).toBe(a.now);
    rig.clock.advance(120_000);
    a.now = Math.floor(rig.clock.nowMs() / 1000);
    s = rig.lock.openSession();
    expect(one(s, a.signedTime(s.nonce))).toMatchObject({ type: 'timeAck' });
    s.close();
    expect(rig.lock.storage.commitSeq).toBe(seq + 1);
    expect(rig.lock.durable.tableState.newestIssuedAt).toBe(a.now);
    // One more small step in RAM, then power is cut: the lock boots on the persisted anchors.
    rig.clock.advance(60_000);
    a.now = Math.floor(rig.clock.nowMs() / 1000);
    s = rig.lock.openSession();
    expect(one(s, a.signedTime(s.nonce))).toMatchObject({ type: 'timeAck' });
    const onFlash = rig.lock.durable.tableState.newestIssuedAt;
    expect(onFlash).toBe(a.now - 60);
    rig.reboot({ powerLoss: true });
    expect(rig.lock.rtc.trusted).toBe(false);
    expect(rig.lock.rtc.nowS()).toBe(onFlash);
    expect(rig.lock.tableState.newestIssuedAt).toBe(onFlash);
  });

  it('an orderly exit commits the anchors still held in RAM, once', () => {
    const rig = createTestRig({ seed: 'clock-exit' });
    const a = rig.auth;
    let s = rig.lock.openSession();
    expect(one(s, a.signedTime(s.nonce))).toMatchObject({ type: 'timeAck' });
    s.close();
    rig.clock.advance(60_000);
    a.now += 60;
    s = rig.lock.openSession();
    expect(one(s, a.signedTime(s.nonce))).toMatchObject({ type: 'timeAck' });
    s.close();
    expect(rig.lock.durable.tableState.newestIssuedAt).toBe(a.now - 60);
    const seq = rig.lock.storage.commitSeq;
    rig.lock.persistTimeAnchors();
    rig.lock.persistTimeAnchors();
    expect(rig.lock.storage.commitSeq).toBe(seq + 1);
    expect(rig.lock.durable.tableState).toMatchObject({ newestIssuedAt: a.now, leaseAnchor: a.now });
  });
});
