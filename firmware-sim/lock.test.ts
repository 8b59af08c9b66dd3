import { describe, expect, it } from 'vitest';
import {
  type Message,
  type Entry,
  type DecisionReason,
  answerChallenge,
  dailyCode,
  decodeMessage,
  deriveSeed32,
  encodeMessage,
  keyPairFromSeed,
  verifyReceipt,
  verifyAuditChain,
  auditRecordFromBytes,
  ENTRY_FLAGS,
  DEFAULT_LOCK_POLICY,
  DECISION_REASONS,
  encodeChallengeBody,
  sign,
  makeDelta,
  signHead,
  tableDigest,
  applyOps,
  type Update,
} from '../protocol';
import { createTestRig, TestAuthority, type TestRig } from './test-authority';
import type { LockSession } from './session';
import { decideAmong, localTime, inSchedule, type AccessContext } from './access';
import { CAPABILITIES, emptyTable } from '../protocol';
import { FakeClock, Rtc } from './time';

const phone = (n: number) => keyPairFromSeed(deriveSeed32('phones', String(n)));
const UID = new Uint8Array([0x04, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6]);

function send(s: LockSession, m: Message | Uint8Array): Message[] {
  return s.handle(m instanceof Uint8Array ? m : encodeMessage(m)).map((b) => decodeMessage(b));
}
function one(s: LockSession, m: Message | Uint8Array): Message {
  const r = send(s, m);
  expect(r.length).toBe(1);
  return r[0] as Message;
}
function push(rig: TestRig, s: LockSession, u: Update): Message {
  return one(s, TestAuthority.message(u));
}
function challenge(s: LockSession, credId: number): Extract<Message, { type: 'challenge' }> {
  const c = one(s, { type: 'unlockRequest', credId });
  if (c.type !== 'challenge') throw new Error(`expected challenge, got ${c.type}`);
  return c;
}
function unlock(s: LockSession, credId: number, sk: Uint8Array): Extract<Message, { type: 'decision' }> {
  const c = challenge(s, credId);
  const d = one(s, answerChallenge(c.bodyBytes, sk));
  if (d.type !== 'decision') throw new Error(`expected decision, got ${d.type}: ${JSON.stringify(d)}`);
  return d;
}

function rigWith(entries: Entry[], opts: Parameters<typeof createTestRig>[0] = {}) {
  const rig = createTestRig(opts);
  const s = rig.lock.openSession();
  if (entries.length > 0) expect(push(rig, s, rig.auth.delta(entries.map((entry) => ({ op: 'put', entry }))))).toMatchObject({ type: 'receipt' });
  return { rig, s };
}

describe('access decisions: every reason', () => {
  it('GRANTED by phone, keycard, permanent doorcode and daily code; relock follows', () => {
    const { rig, s } = rigWith([]);
    const a = rig.auth;
    expect(push(rig, s, a.delta([{ op: 'put', entry: a.phoneEntry(1, phone(1).publicKey) }, { op: 'put', entry: a.keycardEntry(2, UID) }, { op: 'put', entry: a.doorcodeEntry(3, '2468013') }]))).toMatchObject({ type: 'receipt', body: { version: 1 } });
    const d = unlock(s, 1, phone(1).secretKey);
    expect(d).toMatchObject({ granted: true, reason: 'GRANTED' });
    expect(rig.lock.machine.bolt).toBe('retracted');
    rig.clock.advance(5_000);
    expect(rig.lock.machine.bolt).toBe('thrown');
    expect(rig.lock.presentCard(UID)).toMatchObject({ granted: true, credId: 2 });
    rig.clock.advance(5_000);
    expect(rig.lock.enterCode('2468013')).toMatchObject({ granted: true, credId: 3, method: 'doorcode' });
    rig.clock.advance(5_000);
    const today = localTime('Europe/Berlin', rig.lock.rtc.nowMs()).date;
    expect(rig.lock.enterCode(dailyCode(rig.auth.lockSecret, today, 3, 'daily'))).toMatchObject({ granted: true, method: 'dailyCode' });
    expect(rig.lock.motorLog.map((m) => m.action)).toEqual(['throw', 'retract', 'throw', 'retract', 'throw', 'retract', 'throw', 'retract']);
    // every decision is in the hash-chained audit log with its sequence number
    const ex = one(s, { type: 'auditRequest', fromSeq: 0 });
    if (ex.type !== 'auditExport') throw new Error('no export');
    verifyAuditChain(ex.prevHash, ex.records);
    const recs = ex.records.map(auditRecordFromBytes);
    expect(recs.filter((r) => r.event === 'access').map((r) => r.reason)).toEqual([0, 0, 0, 0]);
    expect(recs.find((r) => r.seq === d.auditSeq)).toMatchObject({ event: 'access', credId: 1, reason: 0, value: 0 });
  });

  it('UNKNOWN_CREDENTIAL, WRONG_CODE, DOORCODES_DISABLED', () => {
    const { rig, s } = rigWith([]);
    const a = rig.auth;
    push(rig, s, a.delta([{ op: 'setKeyPolicy', policy: { keyId: 7, doorcodesEnabled: false } }, { op: 'put', entry: a.doorcodeEntry(5, '1112223', { keyId: 7 }) }]));
    expect(rig.lock.presentCard(UID).reason).toBe('UNKNOWN_CREDENTIAL');
    expect(unlock(s, 99, phone(9).secretKey).reason).toBe('UNKNOWN_CREDENTIAL');
    expect(rig.lock.enterCode('9999999')?.reason).toBe('WRONG_CODE');
    expect(rig.lock.enterCode('1112223')?.reason).toBe('DOORCODES_DISABLED');
  });

  it('NOT_YET_VALID, EXPIRED, OUT_OF_SCHEDULE, PARENT_MISSING', () => {
    const rigT = createTestRig();
    const now = Math.floor(rigT.clock.nowMs() / 1000);
    const a = rigT.auth;
    const local = localTime('Europe/Berlin', rigT.clock.nowMs());
    const notNow = { days: 0x7f, start: (local.minute + 120) % 1380, end: ((local.minute + 120) % 1380) + 30 };
    const s = rigT.lock.openSession();
    push(rigT, s, a.delta([
      { op: 'put', entry: a.keycardEntry(1, new Uint8Array([1, 1, 1, 1]), { validFrom: now + 3600 }) },
      { op: 'put', entry: a.keycardEntry(2, new Uint8Array([2, 2, 2, 2]), { validUntil: now - 1 }) },
      { op: 'put', entry: a.keycardEntry(3, new Uint8Array([3, 3, 3, 3]), { schedule: [notNow] }) },
      { op: 'put', entry: a.phoneEntry(4, phone(4).publicKey, { validUntil: now - 10 }) },
      { op: 'put', entry: a.phoneEntry(5, phone(5).publicKey, { holder: 'guest', parent: 4 }) },
      { op: 'setKeyPolicy', policy: { keyId: 9, doorcodesEnabled: true, schedule: [notNow] } },
      { op: 'put', entry: a.keycardEntry(6, new Uint8Array([6, 6, 6, 6]), { keyId: 9 }) },
    ]));
    expect(rigT.lock.presentCard(new Uint8Array([1, 1, 1, 1])).reason).toBe('NOT_YET_VALID');
    expect(rigT.lock.presentCard(new Uint8Array([2, 2, 2, 2])).reason).toBe('EXPIRED');
    expect(rigT.lock.presentCard(new Uint8Array([3, 3, 3, 3])).reason).toBe('OUT_OF_SCHEDULE');
    expect(rigT.lock.presentCard(new Uint8Array([6, 6, 6, 6])).reason).toBe('OUT_OF_SCHEDULE'); // Key's schedule applies too
    expect(unlock(s, 5, phone(5).secretKey).reason).toBe('PARENT_MISSING');
  });

  it('a phone in several entries: granted if any grants, else the most specific refusal', () => {
    const rigT = createTestRig();
    const a = rigT.auth;
    const now = Math.floor(rigT.clock.nowMs() / 1000);
    const local = localTime('Europe/Berlin', rigT.clock.nowMs());
    const notNow = { days: 0x7f, start: (local.minute + 120) % 1380, end: ((local.minute + 120) % 1380) + 30 };
    const pk = phone(7);
    const s = rigT.lock.openSession();
    push(rigT, s, a.delta([
      { op: 'put', entry: a.phoneEntry(10, pk.publicKey, { keyId: 1, validUntil: now - 5 }) },
      { op: 'put', entry: a.phoneEntry(11, pk.publicKey, { keyId: 2, schedule: [notNow] }) },
    ]));
    expect(unlock(s, 10, pk.secretKey).reason).toBe('OUT_OF_SCHEDULE'); // stage 5 beats EXPIRED (stage 1)
    push(rigT, s, a.delta([{ op: 'put', entry: a.phoneEntry(12, pk.publicKey, { keyId: 3 }) }]));
    expect(unlock(s, 10, pk.secretKey)).toMatchObject({ reason: 'GRANTED', granted: true });
  });

  it('BAD_RESPONSE, CHALLENGE_EXPIRED, REPLAYED, WRONG_LOCK (other lock and other session)', () => {
    const { rig, s } = rigWith([]);
    push(rig, s, rig.auth.delta([{ op: 'put', entry: rig.auth.phoneEntry(1, phone(1).publicKey) }]));
    expect(unlock(s, 1, phone(2).secretKey).reason).toBe('BAD_RESPONSE');
    const c = challenge(s, 1);
    rig.clock.advance(10_001);
    expect(one(s, answerChallenge(c.bodyBytes, phone(1).secretKey))).toMatchObject({ reason: 'CHALLENGE_EXPIRED', granted: false });
    const c2 = challenge(s, 1);
    const r2 = answerChallenge(c2.bodyBytes, phone(1).secretKey);
    expect(one(s, r2)).toMatchObject({ reason: 'GRANTED' });
    expect(one(s, r2)).toMatchObject({ reason: 'REPLAYED', granted: false });
    // cross-session: a response to another session's challenge
    const other = rig.lock.openSession();
    const c3 = challenge(other, 1);
    expect(one(s, answerChallenge(c3.bodyBytes, phone(1).secretKey))).toMatchObject({ reason: 'WRONG_LOCK' });
    // the same response after its session closed
    other.close();
    expect(one(other, answerChallenge(c3.bodyBytes, phone(1).secretKey))).toMatchObject({ type: 'error', reason: 'SESSION_EXPIRED' });
    // cross-lock: a challenge minted by another lock (same phone key enrolled there)
    const rig2 = createTestRig({ seed: 'other', lockId: 'lk-0002' });
    const s2 = rig2.lock.openSession();
    push(rig2, s2, rig2.auth.delta([{ op: 'put', entry: rig2.auth.phoneEntry(1, phone(1).publicKey) }]));
    const foreign = challenge(s2, 1);
    expect(one(s, answerChallenge(foreign.bodyBytes, phone(1).secretKey))).toMatchObject({ reason: 'WRONG_LOCK' });
    // a never-issued challenge for this lock and session (forged nonce)
    const forged = encodeChallengeBody({ ...c2.body, nonce: new Uint8Array(16).fill(7) });
    expect(one(s, { type: 'unlockResponse', challengeBytes: forged, signature: sign('unlock', forged, phone(1).secretKey) })).toMatchObject({ reason: 'REPLAYED' });
  });

  it('a one-bit change anywhere in a valid response never unlocks', () => {
    const { rig, s } = rigWith([]);
    push(rig, s, rig.auth.delta([{ op: 'put', entry: rig.auth.phoneEntry(1, phone(1).publicKey) }]));
    const c = challenge(s, 1);
    const valid = encodeMessage(answerChallenge(c.bodyBytes, phone(1).secretKey));
    const reasons = new Map<string, number>();
    let flips = 0;
    for (let i = 0; i < valid.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        // A fresh challenge per flip, so a flip that burns a challenge cannot shadow the next.
        const ci = challenge(s, 1);
        const msg = encodeMessage(answerChallenge(ci.bodyBytes, phone(1).secretKey));
        expect(msg.length).toBe(valid.length);
        msg[i] = (msg[i] as number) ^ (1 << bit);
        const before = rig.lock.motorLog.length;
        for (const r of send(s, msg)) {
          const key = r.type === 'decision' ? r.reason : r.type === 'error' ? `error:${r.reason}` : r.type;
          reasons.set(key, (reasons.get(key) ?? 0) + 1);
          expect(r.type === 'decision' && r.granted, `byte ${i} bit ${bit}`).toBe(false);
        }
        expect(rig.lock.motorLog.length).toBe(before);
        flips++;
      }
    }
    expect(flips).toBe(valid.length * 8);
    expect(reasons.get('BAD_RESPONSE')).toBeGreaterThan(0);
    // the unflipped response still works (the test can fail)
    expect(one(s, answerChallenge(challenge(s, 1).bodyBytes, phone(1).secretKey))).toMatchObject({ granted: true });
  });

  it('LOCKED_OUT after wrongCodeLimit wrong codes; the counter resets on success; lockout survives reboot', () => {
    const policy = { ...DEFAULT_LOCK_POLICY, wrongCodeLimit: 3, lockoutSeconds: 20 };
    const { rig } = rigWith([], { policy });
    const s = rig.lock.openSession();
    push(rig, s, rig.auth.delta([{ op: 'put', entry: rig.auth.doorcodeEntry(1, '5550001') }]));
    s.close();
    expect(rig.lock.enterCode('0000000')?.reason).toBe('WRONG_CODE');
    expect(rig.lock.enterCode('0000001')?.reason).toBe('WRONG_CODE');
    expect(rig.lock.enterCode('5550001')?.reason).toBe('GRANTED');
    expect(rig.lock.machine.wrongCount).toBe(0);
    rig.clock.advance(5_000);
    for (const c of ['1000000', '1000001', '1000002']) expect(rig.lock.enterCode(c)?.reason).toBe('WRONG_CODE');
    expect(rig.lock.machine.mode.kind).toBe('keypadLockout');
    expect(rig.lock.enterCode('5550001')?.reason).toBe('LOCKED_OUT');
    // power-cycling does not lift a lockout
    rig.reboot({ powerLoss: true });
    expect(rig.lock.machine.mode.kind).toBe('keypadLockout');
    expect(rig.lock.enterCode('5550001')?.reason).toBe('LOCKED_OUT');
    rig.clock.advance(20_000);
    expect(rig.lock.machine.mode.kind).toBe('locked');
    expect(rig.lock.enterCode('5550001')?.reason).toBe('GRANTED');
  });

  it('KEYPAD_TIMEOUT after 5 s between digits', () => {
    const { rig, s } = rigWith([]);
    s.close();
    rig.lock.pressKey('1');
    rig.lock.pressKey('2');
    rig.clock.advance(4_999);
    rig.lock.pressKey('3');
    rig.clock.advance(4_999);
    expect(rig.lock.machine.mode).toEqual({ kind: 'keypadEntry', digits: '123' });
    rig.clock.advance(1);
    expect(rig.lock.machine.mode.kind).toBe('locked');
    expect(rig.lock.lastAccess).toMatchObject({ reason: 'KEYPAD_TIMEOUT', granted: false });
  });

  it('LOW_BATTERY refuses valid credentials', () => {
    const { rig, s } = rigWith([]);
    push(rig, s, rig.auth.delta([{ op: 'put', entry: rig.auth.keycardEntry(1, UID) }, { op: 'put', entry: rig.auth.phoneEntry(2, phone(2).publicKey) }]));
    rig.lock.setBattery(5);
    expect(rig.lock.presentCard(UID).reason).toBe('LOW_BATTERY');
    expect(unlock(s, 2, phone(2).secretKey).reason).toBe('LOW_BATTERY');
    rig.lock.setBattery(60);
    expect(rig.lock.presentCard(UID).reason).toBe('GRANTED');
  });

  it('CODE_USED_UP: single-use daily codes expire 15 min after first use, remembered across power loss', () => {
    const { rig } = rigWith([]);
    const today = localTime('Europe/Berlin', rig.lock.rtc.nowMs()).date;
    const code = dailyCode(rig.auth.lockSecret, today, 2, 'dailySingleUse');
    expect(rig.lock.enterCode(code)?.reason).toBe('GRANTED');
    rig.clock.advance(10 * 60_000);
    rig.reboot({ powerLoss: true });
    // clock lost: bring authority time back in a session
    const s = rig.lock.openSession();
    rig.auth.now = Math.floor(rig.clock.nowMs() / 1000);
    expect(one(s, rig.auth.signedTime(s.nonce))).toMatchObject({ type: 'timeAck' });
    expect(rig.lock.enterCode(code)?.reason).toBe('GRANTED'); // still within its 15 minutes
    rig.clock.advance(6 * 60_000);
    expect(rig.lock.enterCode(code)?.reason).toBe('CODE_USED_UP');
    expect(rig.lock.enterCode(dailyCode(rig.auth.lockSecret, today, 3, 'dailySingleUse'))?.reason).toBe('GRANTED');
    rig.clock.advance(5_000); // relock before the keypad takes digits again
    // Yesterday's code does not work today; a slot beyond policy.dailyCodeSlots never works.
    expect(rig.lock.enterCode(dailyCode(rig.auth.lockSecret, '2020-01-01', 2, 'daily'))?.reason).toBe('WRONG_CODE');
    expect(rig.lock.enterCode(dailyCode(rig.auth.lockSecret, today, DEFAULT_LOCK_POLICY.dailyCodeSlots, 'daily'))?.reason).toBe('WRONG_CODE');
  });

  it('LEASE_STALE: leased credentials stop when authority time is older than the lease, or the clock was lost', () => {
    const policy = { ...DEFAULT_LOCK_POLICY, leaseSeconds: 3600 };
    const { rig, s } = rigWith([], { policy });
    push(rig, s, rig.auth.delta([
      { op: 'put', entry: rig.auth.keycardEntry(1, UID, { holder: 'partner', partnerId: 3, flags: ENTRY_FLAGS.LEASE }) },
      { op: 'put', entry: rig.auth.keycardEntry(2, new Uint8Array([9, 9, 9, 9]), { holder: 'partner', partnerId: 3 }) },
    ]));
    expect(rig.lock.presentCard(UID).reason).toBe('GRANTED');
    rig.clock.advance(3601_000);
    expect(rig.lock.presentCard(UID).reason).toBe('LEASE_STALE');
    expect(rig.lock.presentCard(new Uint8Array([9, 9, 9, 9])).reason).toBe('GRANTED'); // no LEASE flag
    rig.auth.now = Math.floor(rig.clock.nowMs() / 1000);
    expect(one(s, rig.auth.signedTime(s.nonce))).toMatchObject({ type: 'error', reason: 'SESSION_EXPIRED' }); // > 120 s old
    const s2 = rig.lock.openSession();
    expect(one(s2, rig.auth.signedTime(s2.nonce))).toMatchObject({ type: 'timeAck' });
    expect(rig.lock.presentCard(UID).reason).toBe('GRANTED');
    // power loss: the lock cannot know how long it was off
    rig.reboot({ powerLoss: true });
    expect(rig.lock.presentCard(UID).reason).toBe('LEASE_STALE');
  });
});

describe('schedules in the property time zone, across DST', () => {
  const weekdays9to17 = [{ days: 0b0011111, start: 9 * 60, end: 17 * 60 }];
  const ctxAt = (tz: string, ms: number, schedule = weekdays9to17): { ctx: AccessContext; entry: Entry } => {
    const entry: Entry = { credId: 1, kind: 'keycard', holder: 'staff', secret: new Uint8Array(16), schedule, flags: 0 };
    const table = { ...emptyTable(), entries: new Map([[1, entry]]) };
    return { ctx: { lockId: 'lk-0001', table, lockSecret: new Uint8Array(32), timeZone: tz, nowMs: ms, monotonicMs: 0, clockTrusted: true, leaseAnchorS: 0, singleUse: [] }, entry };
  };
  const at = (iso: string) => Date.parse(iso);
  const decide = (tz: string, iso: string, schedule = weekdays9to17) => {
    const { ctx, entry } = ctxAt(tz, at(iso), schedule);
    return decideAmong([entry], ctx).reason;
  };
  // [zone, dates with their UTC offset at 09:30 local]
  const weeks: [string, [string, string][]][] = [
    ['America/New_York', [['2026-03-05', '-05:00'], ['2026-03-06', '-05:00'], ['2026-03-09', '-04:00'], ['2026-03-10', '-04:00'], ['2026-10-29', '-04:00'], ['2026-10-30', '-04:00'], ['2026-11-02', '-05:00'], ['2026-11-03', '-05:00']]],
    ['Europe/Berlin', [['2026-03-26', '+01:00'], ['2026-03-27', '+01:00'], ['2026-03-30', '+02:00'], ['2026-03-31', '+02:00'], ['2026-10-22', '+02:00'], ['2026-10-23', '+02:00'], ['2026-10-26', '+01:00'], ['2026-10-27', '+01:00']]],
  ];
  for (const [tz, days] of weeks) {
    it(`weekday 09:00–17:00 holds in local time before and after the change (${tz})`, () => {
      for (const [d, off] of days) {
        expect(decide(tz, `${d}T09:30:00${off}`), `${d} 09:30`).toBe('GRANTED');
        expect(decide(tz, `${d}T08:59:00${off}`), `${d} 08:59`).toBe('OUT_OF_SCHEDULE');
        expect(decide(tz, `${d}T16:59:00${off}`), `${d} 16:59`).toBe('GRANTED');
        expect(decide(tz, `${d}T17:00:00${off}`), `${d} 17:00`).toBe('OUT_OF_SCHEDULE');
      }
      // Weekend days of the change weeks are out.
      expect(decide(tz, `${(days[1] as [string, string])[0]}T09:30:00${(days[1] as [string, string])[1]}`)).toBe('GRANTED');
    });
  }
  it('spring forward: the skipped hour never matches; fall back: the repeated hour matches twice', () => {
    const sunday2to3 = [{ days: 1 << 6, start: 120, end: 180 }];
    // New York 2026-03-08: 01:59 EST = 06:59Z, next minute is 03:00 EDT = 07:00Z.
    expect(decide('America/New_York', '2026-03-08T06:59:00Z', sunday2to3)).toBe('OUT_OF_SCHEDULE');
    expect(decide('America/New_York', '2026-03-08T07:00:00Z', sunday2to3)).toBe('OUT_OF_SCHEDULE');
    expect(localTime('America/New_York', at('2026-03-08T07:00:00Z')).minute).toBe(180);
    const sunday1to2 = [{ days: 1 << 6, start: 60, end: 120 }];
    // 2026-11-01 01:30 happens at 05:30Z (EDT) and 06:30Z (EST).
    expect(decide('America/New_York', '2026-11-01T05:30:00Z', sunday1to2)).toBe('GRANTED');
    expect(decide('America/New_York', '2026-11-01T06:30:00Z', sunday1to2)).toBe('GRANTED');
    expect(decide('America/New_York', '2026-11-01T07:30:00Z', sunday1to2)).toBe('OUT_OF_SCHEDULE');
    // Berlin 2026-10-25: 02:30 at 00:30Z (CEST) and 01:30Z (CET); 2026-03-29 02:30 does not exist.
    const sunday2to3b = [{ days: 1 << 6, start: 150, end: 160 }];
    expect(decide('Europe/Berlin', '2026-10-25T00:30:00Z', sunday2to3b)).toBe('GRANTED');
    expect(decide('Europe/Berlin', '2026-10-25T01:30:00Z', sunday2to3b)).toBe('GRANTED');
    for (let m = 0; m < 120; m++) expect(inSchedule(sunday2to3b, localTime('Europe/Berlin', at('2026-03-29T00:00:00Z') + m * 60_000))).toBe(false);
    expect(localTime('Europe/Berlin', at('2026-03-29T01:00:00Z'))).toEqual({ date: '2026-03-29', weekday: 6, minute: 180 });
  });
});

describe('sync sessions', () => {
  it('hello carries a fresh nonce; receipts are signed by the device key and bound to the session', () => {
    const rig = createTestRig();
    const s1 = rig.lock.openSession();
    const s2 = rig.lock.openSession();
    const h1 = decodeMessage(s1.hello());
    const h2 = decodeMessage(s2.hello());
    if (h1.type !== 'hello' || h2.type !== 'hello') throw new Error('no hello');
    expect(h1.nonce).not.toEqual(h2.nonce);
    expect(h1).toMatchObject({ lockId: 'lk-0001', version: 0 });
    const r = push(rig, s1, rig.auth.delta([{ op: 'put', entry: rig.auth.keycardEntry(1, UID) }]));
    if (r.type !== 'receipt') throw new Error(JSON.stringify(r));
    expect(verifyReceipt(r, rig.lock.devicePublicKey)).toBe(true);
    expect(r.body).toMatchObject({ lockId: 'lk-0001', version: 1, nonce: h1.nonce, auditSeq: rig.lock.storage.auditHead().seq });
    expect(r.body.digest).toEqual(tableDigest(rig.auth.table));
    const rr = one(s2, { type: 'receiptRequest' });
    expect(rr).toMatchObject({ type: 'receipt', body: { version: 1, nonce: h2.nonce } });
    // R-HELLO-2: certSerial is the certFloor when it is above 0, absent otherwise.
    expect(h1.certSerial).toBeUndefined();
    rig.auth.rotateOnlineKey('hello-cert-serial', 7);
    push(rig, s1, rig.auth.delta([{ op: 'put', entry: rig.auth.keycardEntry(2, new Uint8Array([7, 7, 7, 7])) }]));
    const h3 = decodeMessage(rig.lock.openSession().hello());
    expect(rig.lock.tableState.trust.certFloor).toBe(7);
    expect(h3).toMatchObject({ type: 'hello', version: 2, certSerial: 7 });
    expect(one(s1, { type: 'timeAck', lockTime: 1 })).toMatchObject({ type: 'error', reason: 'UNEXPECTED_MESSAGE' });
  });

  it('hello announces a held certificate of serial 0 (certSerial 0) and the resume capability', () => {
    const rig = createTestRig();
    const s = rig.lock.openSession();
    const h0 = decodeMessage(s.hello());
    if (h0.type !== 'hello') throw new Error('no hello');
    expect(h0.certSerial).toBeUndefined();
    expect(h0.capabilities & CAPABILITIES.resume).toBe(CAPABILITIES.resume);
    rig.auth.rotateOnlineKey('hello-cert-serial-0', 0);
    push(rig, s, rig.auth.delta([{ op: 'put', entry: rig.auth.keycardEntry(1, UID) }]));
    expect(rig.lock.tableState.trust.certs.map((c) => c.cert.serial)).toEqual([0]);
    expect(decodeMessage(rig.lock.openSession().hello())).toMatchObject({ type: 'hello', version: 1, certSerial: 0 });
  });

  it('refused updates answer with the registry code and leave the flash byte-identical', () => {
    const rig = createTestRig();
    const s = rig.lock.openSession();
    const a = rig.auth;
    push(rig, s, a.delta([{ op: 'put', entry: a.keycardEntry(1, UID) }, { op: 'put', entry: a.keycardEntry(2, new Uint8Array([5, 5, 5, 5])) }]));
    const good = a.delta([{ op: 'put', entry: a.keycardEntry(3, new Uint8Array([6, 6, 6, 6])) }]); // v2, held back
    const v1 = { version: 1, digest: tableDigest(applyOps(emptyTable(), [{ op: 'put', entry: a.keycardEntry(1, UID) }, { op: 'put', entry: a.keycardEntry(2, new Uint8Array([5, 5, 5, 5])) }])) };
    const intruder = keyPairFromSeed(deriveSeed32('intruder', 'k'));
    const headFor = (version: number, digest: Uint8Array, sk = a.signer.secretKey, keyId = a.signer.keyId, lockId = 'lk-0001') => signHead({ lockId, version, digest, issuedAt: a.now, keyId }, sk);
    const v2Digest = tableDigest(a.table);
    const ops2 = good.type === 'delta' ? good.ops : [];
    const cases: [string, Uint8Array][] = [
      ['BAD_SIGNATURE', TestAuthority.message(makeDelta({ base: v1, ops: ops2, head: { ...headFor(2, v2Digest), signature: headFor(2, v2Digest, intruder.secretKey).signature } }))],
      ['UNTRUSTED_KEY', TestAuthority.message(makeDelta({ base: v1, ops: ops2, head: headFor(2, v2Digest, intruder.secretKey, intruder.keyId) }))],
      ['WRONG_LOCK', TestAuthority.message(makeDelta({ base: v1, ops: ops2, head: headFor(2, v2Digest, undefined, undefined, 'lk-0002') }))],
      ['ROLLBACK', TestAuthority.message(makeDelta({ base: v1, ops: ops2, head: headFor(1, v2Digest) }))],
      ['BROKEN_CHAIN', TestAuthority.message(makeDelta({ base: { version: 0, digest: v1.digest }, ops: ops2, head: headFor(2, v2Digest) }))],
      ['DIGEST_MISMATCH', TestAuthority.message(makeDelta({ base: v1, ops: [{ op: 'remove', credId: 2 }], head: headFor(2, v2Digest) }))],
      ['INVALID_OP', TestAuthority.message(makeDelta({ base: v1, ops: [{ op: 'remove', credId: 77 }], head: headFor(2, v2Digest) }))],
      ['MALFORMED', new Uint8Array([0xa1, 0x00, 0x03])],
      ['MALFORMED', TestAuthority.message(good).slice(0, -3)],
      ['UNEXPECTED_MESSAGE', encodeMessage({ type: 'decision', granted: false, reason: 'WRONG_CODE', auditSeq: 1 })],
    ];
    // OVER_LIMIT: a signed snapshot larger than the lock's table region.
    const big = new TestAuthority('lk-0001', a.lockSecret, 'rig');
    big.delta(Array.from({ length: 1500 }, (_, i) => ({ op: 'put' as const, entry: big.keycardEntry(1000 + i, new Uint8Array([1, 2, 3, (i & 0xff), i >> 8])) })));
    big.version = 5;
    cases.push(['OVER_LIMIT', TestAuthority.message(big.snapshot())]);
    for (const [code, bytes] of cases) {
      const before = rig.flash.image();
      const ops = rig.flash.operations;
      const r = one(s, bytes);
      expect(r, code).toMatchObject({ type: 'error', reason: code });
      expect(rig.flash.operations, code).toBe(ops);
      expect(Buffer.compare(rig.flash.image(), before), code).toBe(0);
      expect(rig.lock.version).toBe(1);
    }
    expect(rig.lock.volatileLog.map((v) => v.reason)).toEqual(cases.map((c) => c[0]).filter((c) => c !== 'MALFORMED' && c !== 'UNEXPECTED_MESSAGE'));
    // The genuine update still applies afterwards.
    expect(push(rig, s, good)).toMatchObject({ type: 'receipt', body: { version: 2 } });
  });

  it('a revoked credential works until the removing update commits, and stops at that instant', () => {
    const rig = createTestRig();
    const s = rig.lock.openSession();
    const a = rig.auth;
    push(rig, s, a.delta([{ op: 'put', entry: a.phoneEntry(1, phone(1).publicKey, { holder: 'partner', partnerId: 42 }) }, { op: 'put', entry: a.keycardEntry(2, UID, { holder: 'partner', partnerId: 42 }) }]));
    const revoke = a.delta([{ op: 'removePartner', partnerId: 42 }]); // revoked at the authority…
    expect(rig.lock.presentCard(UID).reason).toBe('GRANTED'); // …still works here
    const pending = challenge(s, 1);
    const response = answerChallenge(pending.bodyBytes, phone(1).secretKey);
    expect(push(rig, s, revoke)).toMatchObject({ type: 'receipt', body: { version: 2 } });
    expect(one(s, response)).toMatchObject({ reason: 'UNKNOWN_CREDENTIAL', granted: false }); // challenge predates commit
    expect(rig.lock.presentCard(UID).reason).toBe('UNKNOWN_CREDENTIAL');
    rig.reboot({ powerLoss: true });
    expect(rig.lock.presentCard(UID).reason).toBe('UNKNOWN_CREDENTIAL');
  });

  it('guests are cascaded with their resident; snapshots replace the table', () => {
    const rig = createTestRig();
    const s = rig.lock.openSession();
    const a = rig.auth;
    push(rig, s, a.delta([{ op: 'put', entry: a.keycardEntry(1, UID) }, { op: 'put', entry: a.keycardEntry(2, new Uint8Array([7, 7, 7, 7]), { holder: 'guest', parent: 1 }) }]));
    expect(rig.lock.presentCard(new Uint8Array([7, 7, 7, 7])).reason).toBe('GRANTED');
    push(rig, s, a.delta([{ op: 'remove', credId: 1 }]));
    expect(rig.lock.presentCard(new Uint8Array([7, 7, 7, 7])).reason).toBe('UNKNOWN_CREDENTIAL');
    a.delta([{ op: 'put', entry: a.keycardEntry(3, new Uint8Array([8, 8, 8, 8])) }]);
    a.delta([{ op: 'put', entry: a.keycardEntry(4, new Uint8Array([9, 9, 9, 9])) }]);
    expect(push(rig, s, a.snapshot())).toMatchObject({ type: 'receipt', body: { version: 4 } });
    expect(rig.lock.presentCard(new Uint8Array([9, 9, 9, 9])).reason).toBe('GRANTED');
  });
});

describe('time', () => {
  it('drifts by ppm, is lost on power loss (false OUT_OF_SCHEDULE), and signed time corrects it', () => {
    const rig = createTestRig({ startMs: Date.parse('2026-06-10T10:00:00+02:00') }); // Wednesday
    const a = rig.auth;
    a.now -= 3 * 86_400; // the head is signed on Sunday
    const s = rig.lock.openSession();
    push(rig, s, a.delta([{ op: 'put', entry: a.keycardEntry(1, UID, { schedule: [{ days: 0b0011111, start: 8 * 60, end: 18 * 60 }] }) }]));
    expect(rig.lock.presentCard(UID).reason).toBe('GRANTED');
    // Power loss: the RTC falls back to the newest signed issuedAt (Sunday)…
    rig.clock.advance(3_600_000);
    rig.reboot({ powerLoss: true });
    expect(rig.lock.rtc.nowS()).toBe(a.now);
    expect(rig.lock.rtc.trusted).toBe(false);
    // …which is outside the window: the field's false refusal.
    expect(rig.lock.presentCard(UID).reason).toBe('OUT_OF_SCHEDULE');
    const s2 = rig.lock.openSession();
    a.now = Math.floor(rig.clock.nowMs() / 1000);
    // a time bound to another session's nonce is refused; an older one is a rollback
    expect(one(s2, a.signedTime(new Uint8Array(16)))).toMatchObject({ type: 'error', reason: 'BAD_NONCE' });
    expect(one(s2, a.signedTime(s2.nonce, 1))).toMatchObject({ type: 'error', reason: 'TIME_ROLLBACK' });
    expect(one(s2, a.signedTime(s2.nonce))).toMatchObject({ type: 'timeAck', lockTime: a.now });
    expect(one(s2, a.signedTime(s2.nonce))).toMatchObject({ type: 'error', reason: 'BAD_NONCE' }); // single use
    expect(rig.lock.presentCard(UID).reason).toBe('GRANTED');
    // no-nonce time only raises the floor
    const raised = a.now + 500;
    expect(one(s2, a.signedTime(undefined, raised))).toMatchObject({ type: 'timeAck' });
    expect(rig.lock.rtc.nowS()).toBe(raised);
    expect(rig.lock.tableState.newestIssuedAt).toBe(raised);
  });

  it('RTC drift accumulates at the configured ppm', () => {
    const c = new FakeClock(0);
    const r = new Rtc(c, 1_000_000, { driftPpm: 100 });
    c.advance(10_000_000);
    expect(r.nowMs()).toBe(1_000_000 + 10_001_000);
    r.reset(5_000, true);
    c.advance(1_000);
    expect(r.nowMs()).toBe(6_000);
  });
});

describe('decision reason coverage', () => {
  it('the tests above exercise every DecisionReason', () => {
    const exercised: DecisionReason[] = ['GRANTED', 'UNKNOWN_CREDENTIAL', 'OUT_OF_SCHEDULE', 'NOT_YET_VALID', 'EXPIRED', 'LOCKED_OUT', 'LEASE_STALE', 'BAD_RESPONSE', 'CHALLENGE_EXPIRED', 'REPLAYED', 'DOORCODES_DISABLED', 'PARENT_MISSING', 'WRONG_CODE', 'LOW_BATTERY', 'WRONG_LOCK', 'CODE_USED_UP', 'KEYPAD_TIMEOUT', 'CLOCK_UNTRUSTED'];
    expect(new Set(exercised)).toEqual(new Set(Object.keys(DECISION_REASONS)));
  });
});
