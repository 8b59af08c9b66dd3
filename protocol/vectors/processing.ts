// Processing vectors (SPEC.md Appendix A.2): a lock state plus one input, and the output the
// lock must produce. access.json pins access evaluation and unlock decisions (§9, §8.2,
// §11), audit.json the audit chain and export verification (§10). Framing session scripts
// live in framing.ts. Everything is a pure function of the vector world (fixed seeds).

import { type AccessContext, type IssuedChallenge, decideCode, decideKeycard, decidePhone, decidePhoneKey, localTime } from '../access';
import { dailyCode, doorcodeVerifier, keycardVerifier } from '../codes';
import { sign } from '../crypto';
import { ED25519_L } from '../ed25519-strict';
import { ProtocolError } from '../errors';
import { AUDIT_GENESIS, type AuditRecord, type Message, chainAudit, encodeAuditRecord, encodeChallengeBody, encodeMessage, makeSignedAuditExport, verifyAuditExport, decodeMessage } from '../messages';
import { applyOps } from '../ops';
import { deriveSeed32 } from '../random';
import { type Entry, type Table, emptyTable, encodeTable, DEFAULT_LOCK_POLICY } from '../table';
import { hex, vectorFile, type VectorFile, type VectorTest } from './shape';
import { EPOCH, KEYS, LOCK_ID, LOCK_SECRET, OTHER_LOCK_ID, WORLD_SEED, guestPhone, partnerCredential, residentPhone, staffDoorcode } from './world';

export const ACCESS_TIME_ZONE = 'Europe/Berlin';
const WORLD_NOTE = `All keys derive from seed "${WORLD_SEED}" (protocol/vectors/world.ts); they are test keys, never provision a lock with them.`;

const ms = (iso: string): number => Date.parse(iso);
const nightOwl = (credId: number): Entry => ({ credId, kind: 'phone', holder: 'resident', secret: KEYS.phoneStaff.publicKey, keyId: 110, schedule: [{ days: 0x7f, start: 120, end: 180 }], flags: 0 });

/** The access world: lk-0001 with schedules, validity, a lease, guests, doorcodes and daily codes. */
export function accessTable(): Table {
  return applyOps(emptyTable(), [
    { op: 'setLockPolicy', policy: { ...DEFAULT_LOCK_POLICY, leaseSeconds: 3600, dailyCodeSlots: 4 } },
    { op: 'put', entry: residentPhone(1) }, // Mon–Fri 07:00–22:00, valid 2025, Key 100 (06:00–23:00 daily)
    { op: 'put', entry: guestPhone(2, 1) }, // guest of 1, until EPOCH + 7 d, LEASE
    { op: 'put', entry: staffDoorcode(3) }, // doorcode 4815162 on Key 200 (doorcodes disabled below)
    { op: 'put', entry: { credId: 4, kind: 'doorcode', holder: 'resident', secret: doorcodeVerifier(LOCK_SECRET, '0000042'), keyId: 100, flags: 0 } },
    { op: 'put', entry: nightOwl(10) }, // every day 02:00–03:00 local: the DST hour
    { op: 'put', entry: { credId: 20, kind: 'phone', holder: 'guest', secret: KEYS.phoneGuest.publicKey, parent: 1, keyId: 120, flags: 0 } },
    { op: 'put', entry: { credId: 30, kind: 'keycard', holder: 'staff', secret: keycardVerifier(LOCK_SECRET, Uint8Array.of(0x04, 0x30, 0x30, 0x30)), validUntil: EPOCH, flags: 0 } },
    { op: 'put', entry: partnerCredential(1000) }, // LEASE keycard, no validity
    { op: 'setKeyPolicy', policy: { keyId: 100, doorcodesEnabled: true, schedule: [{ days: 0x7f, start: 360, end: 1380 }] } },
    { op: 'setKeyPolicy', policy: { keyId: 200, doorcodesEnabled: false } },
  ]);
}

interface AccessState {
  now: number;
  clockTrusted?: boolean;
  leaseAnchor?: number;
  singleUse?: { date: string; slot: number; firstUseS: number }[];
}

function ctxOf(table: Table, st: AccessState): AccessContext {
  return {
    lockId: LOCK_ID,
    table,
    lockSecret: LOCK_SECRET,
    timeZone: ACCESS_TIME_ZONE,
    nowMs: st.now,
    monotonicMs: 0,
    clockTrusted: st.clockTrusted ?? true,
    leaseAnchorS: st.leaseAnchor ?? Math.floor(st.now / 1000) - 60,
    singleUse: st.singleUse ?? [],
  };
}

function stateJson(table: Table, st: AccessState): Record<string, unknown> {
  const c = ctxOf(table, st);
  return {
    table: hex(encodeTable(table)),
    lockSecret: hex(LOCK_SECRET),
    timeZone: c.timeZone,
    nowMs: c.nowMs,
    localTime: localTime(c.timeZone, c.nowMs),
    clockTrusted: c.clockTrusted,
    leaseAnchor: c.leaseAnchorS,
    singleUse: c.singleUse,
  };
}

type AccessInput = { phonePublicKey: string } | { keypadCode: string } | { keycardUid: string };

function decideInput(table: Table, st: AccessState, input: AccessInput): Record<string, unknown> {
  const c = ctxOf(table, st);
  if ('phonePublicKey' in input) {
    const d = decidePhoneKey(c, Buffer.from(input.phonePublicKey, 'hex'));
    return d.credId === undefined ? { reason: d.reason } : { reason: d.reason, credId: d.credId };
  }
  const d = 'keypadCode' in input ? decideCode(c, input.keypadCode) : decideKeycard(c, Buffer.from(input.keycardUid, 'hex'));
  const out: Record<string, unknown> = { reason: d.reason, method: d.method };
  if (d.credId !== undefined) out.credId = d.credId;
  if (d.singleUse !== undefined) out.singleUse = d.singleUse;
  return out;
}

/** The first (date, slot < 4) from 2025-01-06 whose daily code of `kind` starts with '0'. */
function leadingZeroCode(kind: 'daily' | 'dailySingleUse'): { date: string; slot: number; code: string } {
  for (let d = 0; d < 400; d++) {
    const date = new Date(ms('2025-01-06T12:00:00Z') + d * 86_400_000).toISOString().slice(0, 10);
    for (let slot = 0; slot < 4; slot++) {
      const code = dailyCode(LOCK_SECRET, date, slot, kind);
      if (code.startsWith('0')) return { date, slot, code };
    }
  }
  throw new Error('no daily code with a leading zero');
}

function accessTests(): VectorTest[] {
  const table = accessTable();
  const tests: VectorTest[] = [];
  const add = (comment: string, flags: string[], st: AccessState, input: AccessInput, requirements: string[], want?: string): void => {
    const expected = decideInput(table, st, input);
    if (want !== undefined && expected.reason !== want) throw new Error(`access vector "${comment}": expected ${want}, got ${String(expected.reason)}`);
    tests.push({ tcId: 0, comment, flags, result: expected.reason === 'GRANTED' ? 'valid' : 'invalid', state: stateJson(table, st), input, expected, requirements });
  };
  const resident = { phonePublicKey: hex(KEYS.phoneResident.publicKey) };
  const guest = { phonePublicKey: hex(KEYS.phoneGuest.publicKey) };
  const owl = { phonePublicKey: hex(KEYS.phoneStaff.publicKey) };
  const A = ['R-ACCESS-1'];
  // Schedules in the property's zone (Europe/Berlin: CET +1, CEST +2 from 2025-03-30 01:00 UTC to 2025-10-26 01:00 UTC).
  add('resident, Monday 2025-01-06 07:00 local (06:00 UTC): inside Mon–Fri 07:00–22:00', ['Schedule'], { now: ms('2025-01-06T06:00:00Z') }, resident, A, 'GRANTED');
  add('resident, Monday 06:59 local: outside the entry schedule (the Key allows 06:00–23:00)', ['Schedule'], { now: ms('2025-01-06T05:59:00Z') }, resident, A, 'OUT_OF_SCHEDULE');
  add('resident, Monday 21:59 local: inside (end exclusive at 22:00)', ['Schedule', 'Edge'], { now: ms('2025-01-06T20:59:00Z') }, resident, A, 'GRANTED');
  add('resident, Monday 22:00 local: outside (end is exclusive)', ['Schedule', 'Edge'], { now: ms('2025-01-06T21:00:00Z') }, resident, A, 'OUT_OF_SCHEDULE');
  add('resident, Saturday 2025-01-11 12:00 local: not a schedule day', ['Schedule'], { now: ms('2025-01-11T11:00:00Z') }, resident, A, 'OUT_OF_SCHEDULE');
  add('resident, Monday 2025-07-07 07:30 CEST (05:30 UTC): summer time applies', ['Schedule', 'Dst'], { now: ms('2025-07-07T05:30:00Z') }, resident, A, 'GRANTED');
  add('resident, Monday 2025-07-07 06:30 CEST (04:30 UTC, 05:30 in winter offset): outside', ['Schedule', 'Dst'], { now: ms('2025-07-07T04:30:00Z') }, resident, A, 'OUT_OF_SCHEDULE');
  add('02:00–03:00 entry on spring-forward day 2025-03-30, 00:59 UTC = 01:59 CET: outside', ['Schedule', 'Dst'], { now: ms('2025-03-30T00:59:00Z') }, owl, A, 'OUT_OF_SCHEDULE');
  add('02:00–03:00 entry on spring-forward day, 01:00 UTC = 03:00 CEST: the hour does not exist, never inside', ['Schedule', 'Dst'], { now: ms('2025-03-30T01:00:00Z') }, owl, A, 'OUT_OF_SCHEDULE');
  add('02:00–03:00 entry the day before, 01:30 UTC = 02:30 CET: inside', ['Schedule', 'Dst'], { now: ms('2025-03-29T01:30:00Z') }, owl, A, 'GRANTED');
  add('02:00–03:00 entry on fall-back day 2025-10-26, 00:30 UTC = first 02:30 (CEST): inside', ['Schedule', 'Dst'], { now: ms('2025-10-26T00:30:00Z') }, owl, A, 'GRANTED');
  add('02:00–03:00 entry on fall-back day, 01:30 UTC = second 02:30 (CET): inside again', ['Schedule', 'Dst'], { now: ms('2025-10-26T01:30:00Z') }, owl, A, 'GRANTED');
  add('02:00–03:00 entry on fall-back day, 02:00 UTC = 03:00 CET: outside', ['Schedule', 'Dst'], { now: ms('2025-10-26T02:00:00Z') }, owl, A, 'OUT_OF_SCHEDULE');
  // Validity windows.
  add('resident one second before validFrom (2024-12-31 23:59:59 UTC)', ['Validity'], { now: (EPOCH - 1) * 1000 }, resident, A, 'NOT_YET_VALID');
  add('resident at validUntil (2026-01-01 00:00 UTC): validUntil is exclusive', ['Validity', 'Edge'], { now: (EPOCH + 365 * 86_400) * 1000 }, resident, A, 'EXPIRED');
  add('resident one second before validUntil (Thursday 00:59:59 local): valid, then the schedule refuses', ['Validity', 'Edge'], { now: (EPOCH + 365 * 86_400 - 1) * 1000 }, resident, A, 'OUT_OF_SCHEDULE');
  // Lease (policy leaseSeconds 3600) and the guest chain.
  const mon10 = ms('2025-01-06T09:00:00Z');
  const partnerCard = { keycardUid: '04a1b2e8035e80' };
  add('partner keycard (LEASE) with the lease anchor exactly 3600 s old: granted', ['Lease', 'Edge'], { now: mon10, leaseAnchor: mon10 / 1000 - 3600 }, partnerCard, A, 'GRANTED');
  add('partner keycard (LEASE) with the lease anchor 3601 s old', ['Lease'], { now: mon10, leaseAnchor: mon10 / 1000 - 3601 }, partnerCard, A, 'LEASE_STALE');
  add('guest key with a stale lease: entry 2 (LEASE) is refused, entry 20 (same key, no lease) grants', ['Lease', 'Guest'], { now: mon10, leaseAnchor: mon10 / 1000 - 3601 }, guest, A, 'GRANTED');
  add('guest on 2025-01-08 (after its validUntil EPOCH + 7 d): its other entry 20 (guest of 1, no lease) grants', ['Guest'], { now: ms('2025-01-08T09:00:00Z'), leaseAnchor: 0 }, guest, A, 'GRANTED');
  add('guest in 2026, after the parent (resident 1) expired: PARENT_MISSING is the furthest stage reached', ['Guest'], { now: ms('2026-02-02T09:00:00Z') }, guest, A, 'PARENT_MISSING');
  // Untrusted clock (after a power loss): decisions that need the date are refused by name.
  add('untrusted clock: resident with a validUntil', ['ClockUntrusted'], { now: mon10, clockTrusted: false }, resident, ['R-CLOCK-1', ...A], 'CLOCK_UNTRUSTED');
  add('untrusted clock: guest 20 without validity, but its parent has a validUntil', ['ClockUntrusted'], { now: ms('2025-01-08T09:00:00Z'), clockTrusted: false }, guest, ['R-CLOCK-1', ...A], 'CLOCK_UNTRUSTED');
  add('untrusted clock: 02:00–03:00 entry with no validity is decided normally', ['ClockUntrusted'], { now: ms('2025-03-29T01:30:00Z'), clockTrusted: false }, owl, ['R-CLOCK-1', ...A], 'GRANTED');
  add('untrusted clock: LEASE keycard', ['ClockUntrusted', 'Lease'], { now: mon10, clockTrusted: false }, { keycardUid: '04a1b2e8035e80' }, ['R-CLOCK-1', ...A], 'LEASE_STALE');
  // Keypad and keycards.
  add('doorcode 0000042 (leading zeros) on Key 100, Monday 10:00', ['Doorcode', 'LeadingZero'], { now: mon10 }, { keypadCode: '0000042' }, ['R-CODE-1', ...A], 'GRANTED');
  add('doorcode 4815162 on Key 200, whose doorcodes are disabled', ['Doorcode'], { now: mon10 }, { keypadCode: '4815162' }, A, 'DOORCODES_DISABLED');
  add('a 6-digit code', ['Doorcode'], { now: mon10 }, { keypadCode: '000042' }, ['R-CODE-1'], 'WRONG_CODE');
  add('a code matching nothing', ['Doorcode'], { now: mon10 }, { keypadCode: '1234567' }, ['R-CODE-1'], 'WRONG_CODE');
  add('partner keycard (LEASE, anchor 60 s old)', ['Keycard'], { now: mon10 }, { keycardUid: '04a1b2e8035e80' }, A, 'GRANTED');
  add('keycard whose only entry expired (validUntil EPOCH)', ['Keycard'], { now: mon10 }, { keycardUid: '04303030' }, A, 'EXPIRED');
  add('keycard UID of 3 bytes (UIDs are 4..10 bytes)', ['Keycard'], { now: mon10 }, { keycardUid: '043030' }, A, 'UNKNOWN_CREDENTIAL');
  add('unknown phone key', ['Phone'], { now: mon10 }, { phonePublicKey: hex(KEYS.stranger.publicKey) }, A, 'UNKNOWN_CREDENTIAL');
  // Daily codes (slots 0..3 of the local date), including codes with leading zeros.
  const dz = leadingZeroCode('daily');
  const dayNoon = ms(`${dz.date}T11:00:00Z`);
  add(`daily code ${dz.code} (slot ${dz.slot} of ${dz.date}, leading zero)`, ['DailyCode', 'LeadingZero'], { now: dayNoon }, { keypadCode: dz.code }, ['R-CODE-1'], 'GRANTED');
  add(`the same daily code ${dz.code} the next day`, ['DailyCode'], { now: dayNoon + 86_400_000 }, { keypadCode: dz.code }, ['R-CODE-1'], 'WRONG_CODE');
  add(`daily code ${dz.code} on an untrusted clock on its date`, ['DailyCode', 'ClockUntrusted'], { now: dayNoon, clockTrusted: false }, { keypadCode: dz.code }, ['R-CODE-1', 'R-CLOCK-1'], 'CLOCK_UNTRUSTED');
  add(`daily code ${dz.code} on an untrusted clock 3 days behind its date`, ['DailyCode', 'ClockUntrusted'], { now: dayNoon - 3 * 86_400_000, clockTrusted: false }, { keypadCode: dz.code }, ['R-CODE-1', 'R-CLOCK-1'], 'CLOCK_UNTRUSTED');
  const sz = leadingZeroCode('dailySingleUse');
  const sNoon = ms(`${sz.date}T11:00:00Z`);
  const first = Math.floor(sNoon / 1000);
  add(`single-use daily code ${sz.code} (slot ${sz.slot} of ${sz.date}), first use: granted, recorded`, ['SingleUse', 'LeadingZero'], { now: sNoon }, { keypadCode: sz.code }, ['R-CODE-1'], 'GRANTED');
  add('single-use daily code again 900 s after its first use: still granted', ['SingleUse', 'Edge'], { now: sNoon + 900_000, singleUse: [{ date: sz.date, slot: sz.slot, firstUseS: first }] }, { keypadCode: sz.code }, ['R-CODE-1'], 'GRANTED');
  add('single-use daily code 901 s after its first use', ['SingleUse', 'Edge'], { now: sNoon + 901_000, singleUse: [{ date: sz.date, slot: sz.slot, firstUseS: first }] }, { keypadCode: sz.code }, ['R-CODE-1'], 'CODE_USED_UP');
  return tests;
}

// ---------------------------------------------------------------------------------------
// Unlock responses (§9.2)

function unlockTests(): VectorTest[] {
  const table = accessTable();
  const sessionId = deriveSeed32(WORLD_SEED, 'nonce:session').slice(0, 8);
  const n = (label: string): Uint8Array => deriveSeed32(WORLD_SEED, `nonce:${label}`).slice(0, 16);
  const now = ms('2025-01-06T09:00:00Z');
  const mono = 50_000;
  const ch = (label: string, credId: number, issuedAtMono: number, used = false, lockId = LOCK_ID, sid = sessionId): IssuedChallenge => {
    const body = { lockId, sessionId: sid, nonce: n(label), credId, expiresAtMs: now - (mono - issuedAtMono) + 10_000 };
    return { bytes: encodeChallengeBody(body), body, used, expiresAtMonotonicMs: issuedAtMono + 10_000 };
  };
  const issued: IssuedChallenge[] = [ch('c0', 1, mono - 1000), ch('c1', 1, mono - 2000, true), ch('c2', 1, mono - 10_001), ch('c3', 999, mono - 500), ch('c4', 10, mono - 100)];
  const c0 = issued[0] as IssuedChallenge;
  const sigBy = (bytes: Uint8Array, secret = KEYS.phoneResident.secretKey): Uint8Array => sign('unlock', bytes, secret);
  const tests: VectorTest[] = [];
  const add = (comment: string, flags: string[], challenge: Uint8Array, signature: Uint8Array, requirements: string[], want: string): void => {
    const ctx = { ...ctxOf(table, { now }), monotonicMs: mono };
    const d = decidePhone(ctx, sessionId, issued, challenge, signature);
    if (d.reason !== want) throw new Error(`unlock vector "${comment}": expected ${want}, got ${d.reason}`);
    const expected: Record<string, unknown> = { reason: d.reason };
    if (d.credId !== undefined) expected.credId = d.credId;
    expected.consumed = d.consumed ?? null;
    tests.push({
      tcId: 0, comment, flags, result: d.reason === 'GRANTED' ? 'valid' : 'invalid',
      state: { ...stateJson(table, { now }), lockId: LOCK_ID, sessionId: hex(sessionId), monotonicMs: mono, issued: issued.map((c) => ({ bytes: hex(c.bytes), used: c.used, expiresAtMonotonicMs: c.expiresAtMonotonicMs })) },
      input: { challenge: hex(challenge), signature: hex(signature) },
      expected, requirements,
    });
  };
  const U = ['R-ACCESS-2'];
  add('response to challenge 0 signed by the resident key, Monday 10:00 local', ['Unlock'], c0.bytes, sigBy(c0.bytes), [...U, 'R-ACCESS-1', 'R-SIG-1'], 'GRANTED');
  add('response to challenge 1, already used', ['Replay'], (issued[1] as IssuedChallenge).bytes, sigBy((issued[1] as IssuedChallenge).bytes), U, 'REPLAYED');
  add('response to challenge 2, issued 10.001 s ago on the monotonic timer', ['Expired'], (issued[2] as IssuedChallenge).bytes, sigBy((issued[2] as IssuedChallenge).bytes), U, 'CHALLENGE_EXPIRED');
  add('response to challenge 3, for credId 999 which the table lacks', ['Unknown'], (issued[3] as IssuedChallenge).bytes, sigBy((issued[3] as IssuedChallenge).bytes), U, 'UNKNOWN_CREDENTIAL');
  add('response to challenge 0 signed by another key', ['Signature'], c0.bytes, sigBy(c0.bytes, KEYS.phoneGuest.secretKey), [...U, 'R-SIG-1'], 'BAD_RESPONSE');
  {
    const sig = sigBy(c0.bytes);
    let sv = 0n;
    for (let i = 63; i >= 32; i--) sv = (sv << 8n) | BigInt(sig[i] as number);
    sv += ED25519_L;
    const bad = sig.slice();
    for (let i = 32; i < 64; i++) (bad[i] = Number(sv & 0xffn), (sv >>= 8n));
    add('response to challenge 0 with S + L (non-canonical S; a ZIP-215 verifier accepts it)', ['Signature', 'NonCanonicalS'], c0.bytes, bad, [...U, 'R-SIG-1'], 'BAD_RESPONSE');
    const smallR = sig.slice();
    smallR.set(Uint8Array.from([1, ...new Array<number>(31).fill(0)]), 0);
    add('response to challenge 0 whose R is the identity (small order)', ['Signature', 'SmallOrder'], c0.bytes, smallR, [...U, 'R-SIG-1'], 'BAD_RESPONSE');
  }
  {
    const other = ch('x', 1, mono, false, OTHER_LOCK_ID);
    add('challenge bytes naming another lock', ['Binding'], other.bytes, sigBy(other.bytes), U, 'WRONG_LOCK');
    const otherSession = ch('y', 1, mono, false, LOCK_ID, deriveSeed32(WORLD_SEED, 'nonce:other-session').slice(0, 8));
    add('challenge bytes from another session', ['Binding'], otherSession.bytes, sigBy(otherSession.bytes), U, 'WRONG_LOCK');
    const tampered = encodeChallengeBody({ ...c0.body, credId: 2 });
    add('a tampered copy of challenge 0 (credId changed): refused and challenge 0 burnt', ['Tampered'], tampered, sigBy(tampered), U, 'BAD_RESPONSE');
    const never = ch('never', 1, mono);
    add('a well-formed challenge of this session that was never issued', ['Replay'], never.bytes, sigBy(never.bytes), U, 'REPLAYED');
    add('challenge bytes that do not parse', ['Malformed'], Uint8Array.of(0xa0), sigBy(Uint8Array.of(0xa0)), U, 'BAD_RESPONSE');
  }
  add('response to challenge 4 (credId 10, 02:00–03:00 entry) at 10:00 local', ['Schedule'], (issued[4] as IssuedChallenge).bytes, sigBy((issued[4] as IssuedChallenge).bytes, KEYS.phoneStaff.secretKey), [...U, 'R-ACCESS-1'], 'OUT_OF_SCHEDULE');
  return tests;
}

export function accessVectors(): VectorFile {
  return vectorFile(
    'locksync-access-processing',
    [
      'Processing vectors for access decisions (SPEC.md §9.2–§9.3, §8.2, §11, Appendix A.2).',
      'state: table (canonical encoding, §4.4), lockSecret, timeZone (IANA), nowMs (lock clock, unix ms), localTime (informative: date, weekday 0 = Monday, minute),',
      'clockTrusted, leaseAnchor (unix s), singleUse (first uses of single-use daily codes: date, slot, firstUseS).',
      'AccessDecision input: phonePublicKey (evaluate every phone entry with that key), keypadCode (7 digits) or keycardUid (hex).',
      'AccessDecision expected: reason, credId of the deciding entry (0 for daily codes), method for keypad/keycard, singleUse = the ledger to persist when it changed.',
      'UnlockResponse state adds lockId, sessionId, monotonicMs and the challenges issued in this session (bytes, used, expiresAtMonotonicMs);',
      'input: challenge bytes and signature as received; expected: reason, credId, consumed = index of the issued challenge now used (null: none).',
      WORLD_NOTE,
    ],
    {
      Schedule: 'weekly windows in local time', Dst: 'daylight-saving transition in the lock\'s zone', Edge: 'boundary value', Validity: 'validFrom / validUntil',
      Lease: 'LEASE flag and lease anchor', Guest: 'guest chained to a parent', ClockUntrusted: 'clock known to be behind (after power loss)',
      Doorcode: 'permanent keypad code', LeadingZero: 'code with leading zeros', Keycard: 'keycard UID', Phone: 'phone key', DailyCode: 'daily code',
      SingleUse: 'single-use daily code', Unlock: 'challenge-response', Replay: 'challenge reused or never issued', Expired: 'challenge lifetime',
      Unknown: 'no entry', Signature: 'strict Ed25519 verification', NonCanonicalS: 'S >= L', SmallOrder: 'small-order R', Binding: 'other lock or session',
      Tampered: 'tampered copy of an issued challenge', Malformed: 'unparsable challenge bytes',
    },
    [
      { type: 'AccessDecision', tests: accessTests() },
      { type: 'UnlockResponse', tests: unlockTests() },
    ],
  );
}

// ---------------------------------------------------------------------------------------
// Audit chain and export verification (§10)

export function auditVectors(): VectorFile {
  const recs: AuditRecord[] = [
    { seq: 1, time: EPOCH, event: 'provisioned' },
    { seq: 2, time: EPOCH + 10, event: 'updateApplied', value: 1 },
    { seq: 3, time: EPOCH + 20, event: 'access', credId: 1, reason: 0, value: 0 },
    { seq: 4, time: EPOCH + 30, event: 'access', credId: 1, reason: 2, value: 0, count: 3 },
    { seq: 5, time: EPOCH + 40, event: 'access', credId: 0, reason: 0, value: 3 },
  ];
  const bytes = recs.map(encodeAuditRecord);
  const heads: Uint8Array[] = [];
  let h = AUDIT_GENESIS;
  for (const b of bytes) heads.push((h = chainAudit(h, b)));
  const dev = KEYS.device;
  const exp = (prev: Uint8Array, rs: Uint8Array[], oldest: number, headSeq: number, lockId = LOCK_ID, secret = dev.secretKey): Message =>
    makeSignedAuditExport(lockId, prev, rs, oldest, headSeq, secret);
  const tests: VectorTest[] = [];
  const add = (comment: string, flags: string[], m: Message | Uint8Array, requirements: string[], want?: string): void => {
    const msg = m instanceof Uint8Array ? m : encodeMessage(m);
    let expected: Record<string, unknown>;
    try {
      const d = decodeMessage(msg);
      if (d.type !== 'auditExport') throw new Error('not an export');
      const r = verifyAuditExport(d, LOCK_ID, dev.publicKey);
      expected = { firstSeq: r.firstSeq ?? null, lastSeq: r.lastSeq, head: hex(r.head), oldestSeq: r.oldestSeq };
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      expected = { error: e.reason };
    }
    if ((want ?? 'ok') !== ((expected.error as string | undefined) ?? 'ok')) throw new Error(`audit vector "${comment}": got ${JSON.stringify(expected)}`);
    tests.push({ tcId: 0, comment, flags, result: expected.error === undefined ? 'valid' : 'invalid', lockId: LOCK_ID, devicePublicKey: hex(dev.publicKey), msg: hex(msg), expected, requirements });
  };
  const A = ['R-AUDIT-1'];
  add('records 1-5 from the genesis hash, signed', ['Chain'], exp(AUDIT_GENESIS, bytes, 1, 5), A);
  add('records 3-5 continuing from the hash after record 2', ['Chain'], exp(heads[1] as Uint8Array, bytes.slice(2), 1, 5), A);
  add('empty export: signed head names the newest record (5) and its hash', ['Chain', 'Empty'], exp(heads[4] as Uint8Array, [], 1, 5), A);
  {
    const m = exp(AUDIT_GENESIS, bytes, 1, 5) as Extract<Message, { type: 'auditExport' }>;
    add('records 1, 2, 4, 5: a gap in seq', ['Gap'], { ...m, records: [bytes[0], bytes[1], bytes[3], bytes[4]] as Uint8Array[] }, A, 'MALFORMED');
    const swapped = encodeAuditRecord({ ...recs[2], reason: 4 } as AuditRecord);
    add('record 3 altered after signing (GRANTED -> EXPIRED): chain does not reach the signed hash', ['Tampered'], { ...m, records: [bytes[0], bytes[1], swapped, bytes[3], bytes[4]] as Uint8Array[] }, A, 'BROKEN_CHAIN');
    add('record 5 dropped from a signed export of 1-5', ['Tampered'], { ...m, records: bytes.slice(0, 4) }, A, 'BROKEN_CHAIN');
    const { head: _h, ...unsigned } = m;
    add('export without the signed head', ['Unsigned'], unsigned as Message, A, 'MALFORMED');
    const sig = (m.head as { signature: Uint8Array }).signature.slice();
    sig[0] = (sig[0] as number) ^ 1;
    add('signature over the head altered', ['Signature'], { ...m, head: { ...(m.head as NonNullable<typeof m.head>), signature: sig } }, [...A, 'R-SIG-1'], 'BAD_SIGNATURE');
  }
  add('export signed by this device key but naming lk-0002', ['Binding'], exp(AUDIT_GENESIS, bytes, 1, 5, OTHER_LOCK_ID), A, 'WRONG_LOCK');
  add('export signed by another key', ['Signature'], exp(AUDIT_GENESIS, bytes, 1, 5, LOCK_ID, KEYS.stranger.secretKey), [...A, 'R-SIG-1'], 'BAD_SIGNATURE');
  return vectorFile(
    'locksync-audit-processing',
    [
      'Audit chain and signed exports (SPEC.md §10, §10.1). h0 = SHA-256("locksync/v1/audit-genesis"); h(n) = SHA-256(h(n-1) || record bytes).',
      'Chain group: records (hex) and the hash after each. ExportVerify group: the verifier knows lockId and the lock\'s devicePublicKey; msg is an auditExport;',
      'valid: expected gives firstSeq (null when empty), lastSeq, head (chain hash after lastSeq) and oldestSeq; invalid: expected.error is the refusal.',
      WORLD_NOTE,
    ],
    { Chain: 'consecutive records', Empty: 'no records', Gap: 'seq gap', Tampered: 'records changed after signing', Unsigned: 'no signed head', Signature: 'signature refused', Binding: 'another lock' },
    [
      { type: 'AuditChain', genesis: hex(AUDIT_GENESIS), tests: [{ tcId: 0, comment: 'five records, one coalesced (count 3), one daily code (credId 0)', flags: ['Chain'], result: 'valid', records: bytes.map(hex), heads: heads.map(hex), requirements: A }] },
      { type: 'AuditExportVerify', tests },
    ],
  );
}

