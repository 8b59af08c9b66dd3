// Offline access decisions (SPEC.md §9.2–§9.4, §8.2): pure functions of the table, the lock's secrets, its clock and
// its small persistent ledgers. Every path ends in a named DecisionReason.
//
// Per-entry checks run in a fixed order; the order is also the "specificity" of a refusal:
//   1 validity window (NOT_YET_VALID / EXPIRED)   2 parent present and valid (PARENT_MISSING)
//   3 doorcodes enabled for the entry's Key (DOORCODES_DISABLED)   4 lease (LEASE_STALE)
//   5 entry schedule, then its Key's schedule (OUT_OF_SCHEDULE)
// A credential may appear in several entries (a phone on several Keys): it is granted if
// any entry grants, else refused with the reason of the entry that got furthest.

// It lives in protocol/ (no I/O) so the processing vectors (fixtures/vectors/access.json)
// are generated and checked by the same code the simulated lock runs.
import { bytesEqual } from './cbor';
import { SINGLE_USE_WINDOW_SECONDS, dailyCode, doorcodeVerifier, keycardVerifier, DOORCODE_PATTERN } from './codes';
import { toHex, verify } from './crypto';
import type { DecisionReason } from './errors';
import { type ChallengeBody, challengeBodyFromBytes, encodeChallengeBody } from './messages';
import { type Entry, type ScheduleWindow, type Table, ENTRY_FLAGS } from './table';

/** How a credential was presented (audit value: 0 phone, 1 doorcode, 2 keycard, 3 daily code). */
export type AccessMethod = 'phone' | 'doorcode' | 'keycard' | 'dailyCode';

/** One single-use daily code's first use (persisted by the lock). */
export interface SingleUseRecord {
  /** Local date YYYY-MM-DD the code belongs to. */
  date: string;
  slot: number;
  /** Lock time of first use, unix seconds. */
  firstUseS: number;
}
/** Single-use ledger capacity: a full ledger fails closed (CODE_USED_UP). */
export const SINGLE_USE_LEDGER_MAX = 128;

export const CHALLENGE_TTL_MS = 10_000;
/** With an untrusted clock, daily codes of this many dates after the clock's are named
 *  CLOCK_UNTRUSTED (in the audit) rather than WRONG_CODE; either way they are refused. */
export const UNTRUSTED_DAILY_LOOKAHEAD_DAYS = 7;

export interface AccessContext {
  lockId: string;
  table: Table;
  lockSecret: Uint8Array;
  timeZone: string;
  /** Lock RTC, unix ms. */
  nowMs: number;
  /** Monotonic timer (never set by anyone), ms: measures challenge lifetimes. */
  monotonicMs: number;
  /** False after power loss until authority-signed time arrives. */
  clockTrusted: boolean;
  /** Newest authority-signed time the lock has accepted (head issuedAt or signed time), unix s. */
  leaseAnchorS: number;
  singleUse: readonly SingleUseRecord[];
}

export interface Decision {
  reason: DecisionReason;
  method: AccessMethod;
  credId?: number;
  /** New single-use ledger to persist (only when it changed). */
  singleUse?: SingleUseRecord[];
}

// Local time in the property's IANA zone: protocol/localtime.ts (shared with the authority).
export { type LocalTime, isValidTimeZone, localTime } from './localtime';
import { type LocalTime, localTime } from './localtime';

export function inSchedule(windows: readonly ScheduleWindow[], t: LocalTime): boolean {
  const bit = 1 << t.weekday;
  return windows.some((w) => (w.days & bit) !== 0 && t.minute >= w.start && t.minute < w.end);
}

// ---------------------------------------------------------------------------
// Entry evaluation

interface Verdict {
  reason: DecisionReason;
  stage: number;
  credId: number;
}

export function evaluateEntry(e: Entry, ctx: AccessContext, local: LocalTime): Verdict {
  const nowS = Math.floor(ctx.nowMs / 1000);
  const v = (reason: DecisionReason, stage: number): Verdict => ({ reason, stage, credId: e.credId });
  // An untrusted clock (after power loss) is a lower bound of true time: it can still say
  // "validFrom has passed", but neither "validUntil has not" nor "validFrom has not".
  if (!ctx.clockTrusted && !windowDecidable(e, nowS)) return v('CLOCK_UNTRUSTED', 1);
  if (e.validFrom !== undefined && nowS < e.validFrom) return v('NOT_YET_VALID', 1);
  if (e.validUntil !== undefined && nowS >= e.validUntil) return v('EXPIRED', 1);
  // Guests chain to the resident who shared: walk the chain (the table forbids dangling
  // parents, so this is defence in depth, and it also catches a parent out of validity).
  let p = e.parent;
  for (let depth = 0; p !== undefined && depth < 16; depth++) {
    const parent = ctx.table.entries.get(p);
    if (parent === undefined) return v('PARENT_MISSING', 2);
    if (!ctx.clockTrusted && !windowDecidable(parent, nowS)) return v('CLOCK_UNTRUSTED', 2);
    if ((parent.validFrom !== undefined && nowS < parent.validFrom) || (parent.validUntil !== undefined && nowS >= parent.validUntil)) return v('PARENT_MISSING', 2);
    p = parent.parent;
  }
  const keyPolicy = e.keyId !== undefined ? ctx.table.keyPolicies.get(e.keyId) : undefined;
  if (e.kind === 'doorcode' && keyPolicy !== undefined && !keyPolicy.doorcodesEnabled) return v('DOORCODES_DISABLED', 3);
  const lease = ctx.table.policy.leaseSeconds;
  if ((e.flags & ENTRY_FLAGS.LEASE) !== 0 && lease > 0) {
    // A lock whose clock was lost cannot know how long it has been offline: fail closed.
    if (!ctx.clockTrusted || nowS - ctx.leaseAnchorS > lease) return v('LEASE_STALE', 4);
  }
  if (e.schedule !== undefined && !inSchedule(e.schedule, local)) return v('OUT_OF_SCHEDULE', 5);
  if (keyPolicy?.schedule !== undefined && !inSchedule(keyPolicy.schedule, local)) return v('OUT_OF_SCHEDULE', 5);
  return v('GRANTED', 6);
}

/** On a clock that may be behind: only a window with no end whose start has passed. */
function windowDecidable(e: Entry, nowS: number): boolean {
  return e.validUntil === undefined && (e.validFrom === undefined || nowS >= e.validFrom);
}

/** Granted if any entry grants; otherwise the most specific refusal. */
export function decideAmong(entries: readonly Entry[], ctx: AccessContext): { reason: DecisionReason; credId?: number } {
  if (entries.length === 0) return { reason: 'UNKNOWN_CREDENTIAL' };
  const local = localTime(ctx.timeZone, ctx.nowMs);
  let best: Verdict | undefined;
  for (const e of entries) {
    const v = evaluateEntry(e, ctx, local);
    if (v.reason === 'GRANTED') return { reason: 'GRANTED', credId: v.credId };
    if (best === undefined || v.stage > best.stage) best = v;
  }
  const b = best as Verdict;
  return { reason: b.reason, credId: b.credId };
}

// ---------------------------------------------------------------------------
// Indexes over a table (one per immutable table object)
//
// Built in full once (boot, or the first decision on a table nobody derived), then carried
// from table to table: when an update applies, carryTableIndex moves the old table's index
// to the new table and changes only the entries that differ, so the first unlock after a
// delta no longer pays a rebuild (≈ 11–21 ms at 10,000 entries on the host, 113 ms worst).

export interface TableIndex {
  /** `${kind}:${hex(secret)}` → the entries holding that secret, by ascending credId (the
   *  order decideAmong breaks ties in; it does not depend on how the table was reached). */
  bySecret: Map<string, Entry[]>;
}
const indexes = new WeakMap<Table, TableIndex>();
/** Index key per (immutable) entry object: removing an entry must not re-hex its secret. */
const secretKeys = new WeakMap<Entry, string>();

function secretKeyOf(e: Entry): string {
  let k = secretKeys.get(e);
  if (k === undefined) {
    k = `${e.kind}:${toHex(e.secret)}`;
    secretKeys.set(e, k);
  }
  return k;
}

function indexAdd(ix: TableIndex, e: Entry): void {
  const k = secretKeyOf(e);
  const list = ix.bySecret.get(k);
  if (list === undefined) {
    ix.bySecret.set(k, [e]);
    return;
  }
  let i = list.length;
  while (i > 0 && (list[i - 1] as Entry).credId > e.credId) i--;
  list.splice(i, 0, e);
}

function indexRemove(ix: TableIndex, e: Entry): void {
  const k = secretKeyOf(e);
  const list = ix.bySecret.get(k);
  if (list === undefined) return;
  const i = list.indexOf(e);
  if (i >= 0) list.splice(i, 1);
  if (list.length === 0) ix.bySecret.delete(k);
}

/**
 * An index built entry by entry while a snapshot arrives (the lock's streaming receive):
 * `add` is called with exactly the entries inserted into `entries` (the map
 * MessageStreamDecoder builds for the table, TableEntriesBuilder), in insertion order — the
 * order buildTableIndex adds them in — so when the applied table's entries are that very
 * map, the index is the one buildTableIndex would build and is given to the table. Any other
 * table (the decoder read the array itself, or the update was not this message) keeps the
 * usual path: carried or built.
 */
export class TableIndexBuilder {
  private readonly ix: TableIndex = { bySecret: new Map() };
  private added = 0;

  constructor(private readonly entries: ReadonlyMap<number, Entry>) {}

  add(e: Entry): void {
    indexAdd(this.ix, e);
    this.added++;
  }

  /** Index `t` with what was built; false (and nothing changed) unless t's entries are the map built alongside. */
  adoptFor(t: Table): boolean {
    if (t.entries !== this.entries || this.added !== t.entries.size) return false;
    indexes.set(t, this.ix);
    return true;
  }
}

/** The full build (also the reference the incremental path is tested against). */
export function buildTableIndex(t: Table): TableIndex {
  const ix: TableIndex = { bySecret: new Map() };
  for (const e of t.entries.values()) indexAdd(ix, e);
  return ix;
}

export function tableIndex(t: Table): TableIndex {
  let ix = indexes.get(t);
  if (ix === undefined) {
    ix = buildTableIndex(t);
    indexes.set(t, ix);
  }
  return ix;
}

/**
 * `next` was derived from `prev` (an update applied): move prev's index to next, removing
 * entries no longer present (or replaced) and adding new ones. Entries are immutable and
 * applyOps keeps untouched entry objects, so "changed" is object identity: one pass of
 * Map lookups, no hashing. A snapshot (all objects new) degrades to a rebuild. prev loses
 * its index (it is rebuilt if prev is ever decided on again). No index on prev: nothing to
 * carry; next builds lazily.
 */
export function carryTableIndex(prev: Table, next: Table): void {
  if (prev === next) return;
  const ix = indexes.get(prev);
  if (ix === undefined) return;
  indexes.delete(prev);
  for (const [id, e] of prev.entries) if (next.entries.get(id) !== e) indexRemove(ix, e);
  for (const [id, e] of next.entries) if (prev.entries.get(id) !== e) indexAdd(ix, e);
  indexes.set(next, ix);
}

function entriesWithSecret(t: Table, kind: Entry['kind'], secret: Uint8Array): Entry[] {
  return tableIndex(t).bySecret.get(`${kind}:${toHex(secret)}`) ?? [];
}

// ---------------------------------------------------------------------------
// Doorcodes (permanent from the table; daily and single-use daily derived from the secret)

export function decideCode(ctx: AccessContext, code: string): Decision {
  if (!DOORCODE_PATTERN.test(code)) return { reason: 'WRONG_CODE', method: 'doorcode' };
  const permanent = entriesWithSecret(ctx.table, 'doorcode', doorcodeVerifier(ctx.lockSecret, code));
  if (permanent.length > 0) {
    const d = decideAmong(permanent, ctx);
    return { ...d, method: 'doorcode' } as Decision;
  }
  const slots = ctx.table.policy.dailyCodeSlots;
  if (slots > 0 && !ctx.clockTrusted) {
    // Daily codes are valid on one local date, and a clock known to be behind does not know
    // today's. A code of any date from the clock's through UNTRUSTED_DAILY_LOOKAHEAD_DAYS
    // later is refused by name; anything else is a wrong code.
    for (let d = 0; d <= UNTRUSTED_DAILY_LOOKAHEAD_DAYS; d++) {
      const date = localTime(ctx.timeZone, ctx.nowMs + d * 86_400_000).date;
      if (dailyCodesFor(ctx.lockSecret, date, slots).has(code)) return { reason: 'CLOCK_UNTRUSTED', method: 'dailyCode' };
    }
    return { reason: 'WRONG_CODE', method: 'doorcode' };
  }
  if (slots > 0) {
    const local = localTime(ctx.timeZone, ctx.nowMs);
    const daily = dailyCodesFor(ctx.lockSecret, local.date, slots);
    const hit = daily.get(code);
    if (hit !== undefined) {
      if (hit.kind === 'daily') return { reason: 'GRANTED', method: 'dailyCode', credId: 0 };
      return decideSingleUse(ctx, local.date, hit.slot);
    }
  }
  return { reason: 'WRONG_CODE', method: 'doorcode' };
}

const dailyCache = new Map<string, Map<string, { slot: number; kind: 'daily' | 'dailySingleUse' }>>();

/** The codes valid on one local date: slots 0..n-1 of both kinds. Cached per (secret, date). */
export function dailyCodesFor(lockSecret: Uint8Array, date: string, slots: number): Map<string, { slot: number; kind: 'daily' | 'dailySingleUse' }> {
  const key = `${toHex(lockSecret)}:${date}:${slots}`;
  let m = dailyCache.get(key);
  if (m === undefined) {
    m = new Map();
    for (let slot = 0; slot < slots; slot++) {
      m.set(dailyCode(lockSecret, date, slot, 'daily'), { slot, kind: 'daily' });
      const su = dailyCode(lockSecret, date, slot, 'dailySingleUse');
      if (!m.has(su)) m.set(su, { slot, kind: 'dailySingleUse' });
    }
    if (dailyCache.size > 64) dailyCache.clear();
    dailyCache.set(key, m);
  }
  return m;
}

function decideSingleUse(ctx: AccessContext, date: string, slot: number): Decision {
  const nowS = Math.floor(ctx.nowMs / 1000);
  const used = ctx.singleUse.find((u) => u.date === date && u.slot === slot);
  if (used !== undefined) {
    if (nowS - used.firstUseS <= SINGLE_USE_WINDOW_SECONDS && nowS >= used.firstUseS) return { reason: 'GRANTED', method: 'dailyCode', credId: 0 };
    return { reason: 'CODE_USED_UP', method: 'dailyCode', credId: 0 };
  }
  // Forget uses from before yesterday: their codes can no longer match.
  const yesterday = localTime(ctx.timeZone, ctx.nowMs - 36 * 3600 * 1000).date;
  const kept = ctx.singleUse.filter((u) => u.date >= yesterday);
  if (kept.length >= SINGLE_USE_LEDGER_MAX) return { reason: 'CODE_USED_UP', method: 'dailyCode', credId: 0 }; // fail closed
  return { reason: 'GRANTED', method: 'dailyCode', credId: 0, singleUse: [...kept, { date, slot, firstUseS: nowS }] };
}

// ---------------------------------------------------------------------------
// Keycards

export function decideKeycard(ctx: AccessContext, uid: Uint8Array): Decision {
  if (uid.length < 4 || uid.length > 10) return { reason: 'UNKNOWN_CREDENTIAL', method: 'keycard' };
  const d = decideAmong(entriesWithSecret(ctx.table, 'keycard', keycardVerifier(ctx.lockSecret, uid)), ctx);
  return { ...d, method: 'keycard' } as Decision;
}

// ---------------------------------------------------------------------------
// Phone challenge–response

export interface IssuedChallenge {
  bytes: Uint8Array;
  body: ChallengeBody;
  used: boolean;
  /** Expiry on the monotonic timer: the body's expiresAtMs (lock clock) is informative for
   *  the phone, but the settable clock must not decide (SPEC §9.2). */
  expiresAtMonotonicMs: number;
}

export function makeChallenge(lockId: string, sessionId: Uint8Array, nonce: Uint8Array, credId: number, nowMs: number, monotonicMs: number): IssuedChallenge {
  const body: ChallengeBody = { lockId, sessionId, nonce, credId, expiresAtMs: nowMs + CHALLENGE_TTL_MS };
  return { bytes: encodeChallengeBody(body), body, used: false, expiresAtMonotonicMs: monotonicMs + CHALLENGE_TTL_MS };
}

/** §9.2 step 6: access evaluation over every phone entry holding this public key. */
export function decidePhoneKey(ctx: AccessContext, publicKey: Uint8Array): { reason: DecisionReason; credId?: number } {
  return decideAmong(entriesWithSecret(ctx.table, 'phone', publicKey), ctx);
}

/**
 * Decide an unlock response. `issued` are this session's challenges; the returned index
 * (if any) is the challenge the response consumed — single use whatever the outcome.
 */
export function decidePhone(
  ctx: AccessContext,
  sessionId: Uint8Array,
  issued: readonly IssuedChallenge[],
  challengeBytes: Uint8Array,
  signature: Uint8Array,
): Decision & { consumed?: number } {
  const idx = issued.findIndex((c) => bytesEqual(c.bytes, challengeBytes));
  if (idx < 0) {
    // Not byte-identical to anything issued here: say why as precisely as the bytes allow.
    let body: ChallengeBody;
    try {
      body = challengeBodyFromBytes(challengeBytes);
    } catch {
      return { reason: 'BAD_RESPONSE', method: 'phone' };
    }
    if (body.lockId !== ctx.lockId || !bytesEqual(body.sessionId, sessionId)) return { reason: 'WRONG_LOCK', method: 'phone', credId: body.credId };
    const sameNonce = issued.findIndex((c) => bytesEqual(c.body.nonce, body.nonce));
    if (sameNonce >= 0) {
      // A tampered copy of a real challenge burns it: the genuine response cannot follow.
      return { reason: 'BAD_RESPONSE', method: 'phone', credId: body.credId, consumed: sameNonce };
    }
    return { reason: 'REPLAYED', method: 'phone', credId: body.credId };
  }
  const c = issued[idx] as IssuedChallenge;
  const credId = c.body.credId;
  if (c.used) return { reason: 'REPLAYED', method: 'phone', credId };
  if (ctx.monotonicMs > c.expiresAtMonotonicMs) return { reason: 'CHALLENGE_EXPIRED', method: 'phone', credId, consumed: idx };
  const entry = ctx.table.entries.get(credId);
  if (entry === undefined || entry.kind !== 'phone') return { reason: 'UNKNOWN_CREDENTIAL', method: 'phone', credId, consumed: idx };
  if (!verify('unlock', challengeBytes, signature, entry.secret)) return { reason: 'BAD_RESPONSE', method: 'phone', credId, consumed: idx };
  const d = decidePhoneKey(ctx, entry.secret);
  return { reason: d.reason, method: 'phone', credId: d.credId ?? credId, consumed: idx };
}
