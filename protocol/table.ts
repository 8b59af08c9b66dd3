// The credential table a lock holds, its canonical encoding and its digest.
//
// A table is three things: credential entries keyed by credId, per-Key door policies
// (the "Key" of the seed articles: doorcodes on/off and a schedule for this door), and
// the lock-wide policy (wrong-code limit, lockout, lease, relock time). The digest is
// SHA-256 over a domain-separated canonical encoding, so two tables are equal exactly
// when their digests are. The authority and the lock compute it with this same code.

import { type CborMap, type CborValue, encode, encodeHead, decode, compareBytes, bytesEqual, peekHead } from './cbor';
import { hash, concatBytes, concatByteArrays } from './crypto';
import { ProtocolError } from './errors';
import { MapReader, cmap, expectArray, expectTuple, expectUint } from './schema';

export const CREDENTIAL_KINDS = { phone: 0, doorcode: 1, keycard: 2 } as const;
export type CredentialKind = keyof typeof CREDENTIAL_KINDS;
export const HOLDER_CLASSES = { resident: 0, staff: 1, guest: 2, partner: 3 } as const;
export type HolderClass = keyof typeof HOLDER_CLASSES;

const KIND_BY_CODE = ['phone', 'doorcode', 'keycard'] as const;
const HOLDER_BY_CODE = ['resident', 'staff', 'guest', 'partner'] as const;

/** Entry flag bits. */
export const ENTRY_FLAGS = {
  /** The credential stops working when the lock has had no authority-signed time for
   *  longer than the policy's lease: bounds what a courier that withholds updates buys. */
  LEASE: 1 << 0,
} as const;
const KNOWN_ENTRY_FLAGS = ENTRY_FLAGS.LEASE;

export const LIMITS = Object.freeze({
  maxEntries: 20_000,
  maxKeyPolicies: 4_096,
  maxOpsPerDelta: 20_000,
  maxWindowsPerDay: 8,
  maxIds: 0xffff_ffff,
  phoneKeyBytes: 32,
  verifierBytes: 16,
});

/** A weekly window in the property's local time. Windows never cross midnight (Matter). */
export interface ScheduleWindow {
  /** Bit 0 = Monday … bit 6 = Sunday. */
  days: number;
  /** Minutes after local midnight, 0 ≤ start < end ≤ 1440. */
  start: number;
  end: number;
}

export interface Entry {
  credId: number;
  kind: CredentialKind;
  holder: HolderClass;
  /** Phone: Ed25519 public key (32 B). Doorcode/keycard: HMAC verifier under the lock secret (16 B). */
  secret: Uint8Array;
  partnerId?: number;
  keyId?: number;
  /** Guests: credId of the resident credential they were shared from. */
  parent?: number;
  schedule?: ScheduleWindow[];
  /** Unix seconds; absent = open-ended. */
  validFrom?: number;
  validUntil?: number;
  flags: number;
}

export interface KeyPolicy {
  keyId: number;
  doorcodesEnabled: boolean;
  schedule?: ScheduleWindow[];
}

export interface LockPolicy {
  /** Matter WrongCodeEntryLimit, 1–255. */
  wrongCodeLimit: number;
  /** Matter UserCodeTemporaryDisableTime, 1–255 s. */
  lockoutSeconds: number;
  /** Freshness lease for LEASE-flagged credentials, seconds; 0 = no lease. */
  leaseSeconds: number;
  /** Auto-relock after an unlock, seconds. */
  relockSeconds: number;
  /** Daily codes per day the lock accepts (slots 0 … n-1); 0 disables daily codes. */
  dailyCodeSlots: number;
}

export const DEFAULT_LOCK_POLICY: Readonly<LockPolicy> = Object.freeze({
  wrongCodeLimit: 5,
  lockoutSeconds: 60,
  leaseSeconds: 0,
  relockSeconds: 5,
  dailyCodeSlots: 16,
});

export interface Table {
  entries: ReadonlyMap<number, Entry>;
  keyPolicies: ReadonlyMap<number, KeyPolicy>;
  policy: LockPolicy;
}

export function emptyTable(policy: LockPolicy = DEFAULT_LOCK_POLICY): Table {
  return { entries: new Map(), keyPolicies: new Map(), policy: { ...policy } };
}

// ---------------------------------------------------------------------------
// Schedules: one window packs into one unsigned integer (≤ 5 bytes of CBOR):
//   days(7) << 22 | start(11) << 11 | end(11)

/** The largest window integer: days 127, start and end 2047 — 2^29 − 1. Above it is
 *  OVER_LIMIT; at or below it a field out of its range (start > 1440, …) is MALFORMED. */
export const MAX_WINDOW_INTEGER = 2 ** 29 - 1;

export function packWindow(w: ScheduleWindow): number {
  return w.days * 0x400000 + w.start * 0x800 + w.end;
}

export function unpackWindow(n: number): ScheduleWindow {
  return { days: Math.floor(n / 0x400000) & 0x7f, start: Math.floor(n / 0x800) & 0x7ff, end: n & 0x7ff };
}

export function validateSchedule(windows: readonly ScheduleWindow[], what: string): void {
  const perDay = new Array<number>(7).fill(0);
  for (const w of windows) {
    if (!Number.isInteger(w.days) || w.days < 1 || w.days > 0x7f) throw new ProtocolError('MALFORMED', `${what}: window days mask ${w.days} not in 1..127`);
    if (!Number.isInteger(w.start) || !Number.isInteger(w.end) || w.start < 0 || w.end > 1440 || w.start >= w.end)
      throw new ProtocolError('MALFORMED', `${what}: window ${w.start}-${w.end} must satisfy 0 <= start < end <= 1440`);
    for (let d = 0; d < 7; d++) if (w.days & (1 << d)) perDay[d] = (perDay[d] as number) + 1;
  }
  if (perDay.some((n) => n > LIMITS.maxWindowsPerDay))
    throw new ProtocolError('OVER_LIMIT', `${what}: more than ${LIMITS.maxWindowsPerDay} windows on one day`);
}

/** Canonical schedule: window integers strictly ascending (so each window once), whatever
 *  order the caller built them in — one schedule, one encoding, one digest (SPEC §4.2). */
function encodeSchedule(s: readonly ScheduleWindow[] | undefined): CborValue | undefined {
  return s === undefined ? undefined : [...new Set(s.map(packWindow))].sort((a, b) => a - b);
}

function decodeSchedule(v: CborValue | undefined, what: string): ScheduleWindow[] | undefined {
  if (v === undefined) return undefined;
  const arr = expectArray(v, what, LIMITS.maxWindowsPerDay * 7);
  let prev = -1;
  const windows = arr.map((x, i) => {
    const n = expectUint(x, `${what}[${i}]`, MAX_WINDOW_INTEGER);
    if (n <= prev) throw new ProtocolError('MALFORMED', `${what}[${i}]: windows must be strictly ascending (${n} after ${prev})`);
    prev = n;
    return unpackWindow(n);
  });
  validateSchedule(windows, what);
  return windows;
}

// ---------------------------------------------------------------------------
// Entry encoding (SPEC.md §4.1)
//   1 credId, 2 type = kind << 2 | holder, 3 secret, 4 partnerId, 5 keyId, 6 parent,
//   7 schedule, 8 [validFrom, validUntil] (0 = open), 9 flags (omitted when 0)

export function entryToCbor(e: Entry): CborMap {
  const validity =
    e.validFrom !== undefined || e.validUntil !== undefined ? [e.validFrom ?? 0, e.validUntil ?? 0] : undefined;
  return cmap([
    [1, e.credId],
    [2, (CREDENTIAL_KINDS[e.kind] << 2) | HOLDER_CLASSES[e.holder]],
    [3, e.secret],
    [4, e.partnerId],
    [5, e.keyId],
    [6, e.parent],
    [7, encodeSchedule(e.schedule)],
    [8, validity],
    [9, e.flags === 0 ? undefined : e.flags],
  ]);
}

export function entryFromCbor(v: CborValue, what = 'entry'): Entry {
  const r = MapReader.of(v, what);
  const credId = r.uint(1, 'credId', LIMITS.maxIds);
  if (credId === 0) throw new ProtocolError('MALFORMED', `${what}.credId: 0 is reserved`);
  // A registry value: any unknown one, however large, is MALFORMED (never OVER_LIMIT).
  const type = r.uint(2, 'type');
  const kind = type < 256 ? KIND_BY_CODE[type >> 2] : undefined;
  const holder = HOLDER_BY_CODE[type & 3];
  if (kind === undefined || holder === undefined) throw new ProtocolError('MALFORMED', `${what}.type: unknown kind/holder ${type}`);
  const secret = r.bytes(3, 'secret', { exact: kind === 'phone' ? LIMITS.phoneKeyBytes : LIMITS.verifierBytes });
  const partnerId = r.optUint(4, 'partnerId', LIMITS.maxIds);
  const keyId = r.optUint(5, 'keyId', LIMITS.maxIds);
  const parent = r.optUint(6, 'parent', LIMITS.maxIds);
  if (parent === 0) throw new ProtocolError('MALFORMED', `${what}.parent: credId 0 is reserved`);
  const schedule = decodeSchedule(r.optRaw(7, 'schedule'), `${what}.schedule`);
  const validityRaw = r.optRaw(8, 'validity');
  const flags = r.optUint(9, 'flags', 0xffff) ?? 0;
  r.done();
  if (flags === 0 && v instanceof Map && v.has(9)) throw new ProtocolError('MALFORMED', `${what}.flags: 0 must be omitted`);
  if ((flags & ~KNOWN_ENTRY_FLAGS) !== 0) throw new ProtocolError('MALFORMED', `${what}.flags: unknown bits ${flags}`);
  const e: Entry = { credId, kind, holder, secret, flags };
  if (partnerId !== undefined) e.partnerId = partnerId;
  if (keyId !== undefined) e.keyId = keyId;
  if (parent !== undefined) e.parent = parent;
  if (schedule !== undefined) e.schedule = schedule;
  if (validityRaw !== undefined) {
    const [from, until] = expectTuple(validityRaw, `${what}.validity`, 2);
    const f = expectUint(from, `${what}.validity[0]`);
    const u = expectUint(until, `${what}.validity[1]`);
    if (f === 0 && u === 0) throw new ProtocolError('MALFORMED', `${what}.validity: [0, 0] must be omitted`);
    if (f !== 0 && u !== 0 && u <= f) throw new ProtocolError('MALFORMED', `${what}.validity: until ${u} <= from ${f}`);
    if (f !== 0) e.validFrom = f;
    if (u !== 0) e.validUntil = u;
  }
  validateEntry(e, what);
  return e;
}

/** Rules every entry obeys, whoever built it. */
export function validateEntry(e: Entry, what = 'entry'): void {
  if (e.holder === 'partner' && e.partnerId === undefined) throw new ProtocolError('MALFORMED', `${what}: partner credential without partnerId`);
  if (e.holder !== 'partner' && e.partnerId !== undefined) throw new ProtocolError('MALFORMED', `${what}: partnerId on a ${e.holder} credential`);
  if (e.holder === 'guest' && e.parent === undefined) throw new ProtocolError('MALFORMED', `${what}: guest credential without parent`);
  if (e.holder !== 'guest' && e.parent !== undefined) throw new ProtocolError('MALFORMED', `${what}: parent on a ${e.holder} credential (only guests have one)`);
  if (e.parent !== undefined && e.parent === e.credId) throw new ProtocolError('MALFORMED', `${what}: credential is its own parent`);
  if (e.schedule !== undefined) validateSchedule(e.schedule, `${what}.schedule`);
}

// Encoded entries are cached per (immutable) entry object: a 10,000-entry digest then
// costs one SHA-256 pass, not 10,000 re-encodings.
const entryBytesCache = new WeakMap<Entry, Uint8Array>();
export function encodeEntry(e: Entry): Uint8Array {
  let b = entryBytesCache.get(e);
  if (b === undefined) {
    b = encode(entryToCbor(e));
    entryBytesCache.set(e, b);
  }
  return b;
}

export function keyPolicyToCbor(p: KeyPolicy): CborMap {
  return cmap([
    [1, p.keyId],
    [2, p.doorcodesEnabled],
    [3, encodeSchedule(p.schedule)],
  ]);
}

export function keyPolicyFromCbor(v: CborValue, what = 'keyPolicy'): KeyPolicy {
  const r = MapReader.of(v, what);
  const keyId = r.uint(1, 'keyId', LIMITS.maxIds);
  const doorcodesEnabled = r.bool(2, 'doorcodesEnabled');
  const schedule = decodeSchedule(r.optRaw(3, 'schedule'), `${what}.schedule`);
  r.done();
  return schedule === undefined ? { keyId, doorcodesEnabled } : { keyId, doorcodesEnabled, schedule };
}

export function lockPolicyToCbor(p: LockPolicy): CborMap {
  return cmap([
    [1, p.wrongCodeLimit],
    [2, p.lockoutSeconds],
    [3, p.leaseSeconds],
    [4, p.relockSeconds],
    [5, p.dailyCodeSlots],
  ]);
}

export function lockPolicyFromCbor(v: CborValue, what = 'lockPolicy'): LockPolicy {
  const r = MapReader.of(v, what);
  const p: LockPolicy = {
    wrongCodeLimit: r.uint(1, 'wrongCodeLimit', 255),
    lockoutSeconds: r.uint(2, 'lockoutSeconds', 255),
    leaseSeconds: r.uint(3, 'leaseSeconds', 0xffff_ffff),
    relockSeconds: r.uint(4, 'relockSeconds', 3600),
    dailyCodeSlots: r.uint(5, 'dailyCodeSlots', 256),
  };
  r.done();
  validateLockPolicy(p, what);
  return p;
}

export function validateLockPolicy(p: LockPolicy, what = 'lockPolicy'): void {
  if (p.wrongCodeLimit < 1 || p.wrongCodeLimit > 255) throw new ProtocolError('MALFORMED', `${what}.wrongCodeLimit must be 1..255`);
  if (p.lockoutSeconds < 1 || p.lockoutSeconds > 255) throw new ProtocolError('MALFORMED', `${what}.lockoutSeconds must be 1..255`);
  if (p.relockSeconds < 1) throw new ProtocolError('MALFORMED', `${what}.relockSeconds must be >= 1`);
}

// ---------------------------------------------------------------------------
// Whole-table canonical encoding (SPEC.md §4.4)
//   { 1: [entry …] sorted by credId, 2: [keyPolicy …] sorted by keyId, 3: lockPolicy }

export function sortedEntries(t: Table): Entry[] {
  const out = [...t.entries.values()];
  // Tables are built and decoded in credId order: check that in one pass before sorting.
  for (let i = 1; i < out.length; i++) if ((out[i - 1] as Entry).credId > (out[i] as Entry).credId) return out.sort((a, b) => a.credId - b.credId);
  return out;
}

function sortedKeyPolicies(t: Table): KeyPolicy[] {
  return [...t.keyPolicies.values()].sort((a, b) => a.keyId - b.keyId);
}

export function tableToCbor(t: Table): CborMap {
  return cmap([
    [1, sortedEntries(t).map(entryToCbor)],
    [2, sortedKeyPolicies(t).map(keyPolicyToCbor)],
    [3, lockPolicyToCbor(t.policy)],
  ]);
}

/**
 * The encoding of tables decoded from a message, kept by decodeTable when the bytes it
 * decoded the table from are provably encodeTable's (see rawIsEncoding). Only such tables
 * are here, and they are never changed (a lock applies updates to new tables), so a
 * received 10,000-entry snapshot is not encoded again for its digest and its flash write.
 */
const receivedTableBytes = new WeakMap<Table, Uint8Array>();

/** Same bytes as encode(tableToCbor(t)), assembled from cached entry encodings (a copy for the caller). */
export function encodeTable(t: Table): Uint8Array {
  const received = receivedTableBytes.get(t);
  if (received !== undefined) return received.slice();
  const { head, tail } = tableFrame(t);
  return concatByteArrays([head, ...sortedEntries(t).map(encodeEntry), tail]);
}

/**
 * What encodeTable puts around the entries: the map header, key 1 and the entries array's
 * header; then keys 2 and 3 with the Key policies and the lock policy.
 */
function tableFrame(t: Table): { head: Uint8Array; tail: Uint8Array } {
  return {
    head: concatBytes(new Uint8Array([0xa3, 0x01]), encodeHead(4, t.entries.size)),
    tail: concatBytes(new Uint8Array([0x02]), encode(sortedKeyPolicies(t).map(keyPolicyToCbor)), new Uint8Array([0x03]), encode(lockPolicyToCbor(t.policy))),
  };
}

/**
 * `encodings`: the bytes each raw entry was decoded from (decode()'s ContainerListener). The
 * strict decoder accepts only the deterministic encoding and entryFromCbor refuses every
 * form entryToCbor would not give (omitted defaults, order), so those bytes are the entry's
 * encoding: they seed encodeEntry's cache, and the table's digest costs one hash, not a
 * re-encoding of every entry.
 */
export function decodeTable(
  v: CborValue,
  what = 'table',
  opts: { checkParents?: boolean; encodings?: WeakMap<object, Uint8Array>; prebuilt?: TableEntriesBuilder } = {},
): Table {
  const r = MapReader.of(v, what);
  const rawEntries = r.array(1, 'entries', LIMITS.maxEntries);
  const rawPolicies = r.array(2, 'keyPolicies', LIMITS.maxKeyPolicies);
  const policy = lockPolicyFromCbor(r.raw(3, 'policy'), `${what}.policy`);
  r.done();
  let entries: Map<number, Entry>;
  if (opts.prebuilt?.holds(rawEntries)) entries = opts.prebuilt.entries;
  else {
    entries = new Map<number, Entry>();
    let prev = 0;
    rawEntries.forEach((raw, i) => {
      const e = entryFromCbor(raw, `${what}.entries[${i}]`);
      const encoded = opts.encodings?.get(raw as object);
      // A copy: the view would keep the whole received message alive, and its buffer is not ours.
      if (encoded !== undefined) entryBytesCache.set(e, encoded.slice());
      if (e.credId <= prev) throw new ProtocolError('MALFORMED', `${what}.entries: credIds must be strictly ascending`);
      prev = e.credId;
      entries.set(e.credId, e);
    });
  }
  const keyPolicies = new Map<number, KeyPolicy>();
  let prevKey = -1;
  rawPolicies.forEach((raw, i) => {
    const p = keyPolicyFromCbor(raw, `${what}.keyPolicies[${i}]`);
    if (p.keyId <= prevKey) throw new ProtocolError('MALFORMED', `${what}.keyPolicies: keyIds must be strictly ascending`);
    prevKey = p.keyId;
    keyPolicies.set(p.keyId, p);
  });
  const t: Table = { entries, keyPolicies, policy };
  if (opts.checkParents !== false) checkParents(t, what);
  const raw = opts.encodings?.get(v as object);
  if (raw !== undefined && rawIsEncoding(t, raw)) receivedTableBytes.set(t, raw.slice());
  return t;
}

/**
 * Whether `raw`, the bytes table `t` was decoded from, is exactly encodeTable(t): the map
 * header, key 1 and the entries array header, then the entries, then keys 2 and 3 with the
 * key policies and the lock policy as encode() gives them. The entries in between are the
 * array's items, contiguous and in ascending credId order (decodeTable refuses any other),
 * each its own encoding (see decodeTable's `encodings`); so the only parts to compare are
 * the small ones around them.
 */
function rawIsEncoding(t: Table, raw: Uint8Array): boolean {
  const { head, tail } = tableFrame(t);
  if (raw.length < head.length + tail.length) return false;
  return bytesEqual(raw.subarray(0, head.length), head) && bytesEqual(raw.subarray(raw.length - tail.length), tail);
}

/**
 * A snapshot's entries read while it arrives (MessageStreamDecoder): each table-entry map
 * as it completes, read with entryFromCbor, its bytes kept as decodeTable keeps them, and
 * the credId → entry map decodeTable would build, in the same order. decodeTable takes the
 * map only when the table's entries array is exactly the maps added, in that order, and
 * every one read with a credId above the last; otherwise it reads the array itself and
 * refuses what it refuses.
 */
export class TableEntriesBuilder {
  readonly entries = new Map<number, Entry>();
  private readonly raws: object[] = [];
  private prev = 0;
  private broken = false;

  /** One map that read as an entry, with the bytes it was decoded from; true when it joined `entries`. */
  add(raw: object, e: Entry, encoded: Uint8Array): boolean {
    if (this.broken) return false;
    if (e.credId <= this.prev) {
      this.broken = true; // decodeTable refuses it in its place
      return false;
    }
    this.prev = e.credId;
    entryBytesCache.set(e, encoded.slice());
    this.raws.push(raw);
    this.entries.set(e.credId, e);
    return true;
  }

  /** The entries array is exactly the maps added, in order. */
  holds(rawEntries: readonly CborValue[]): boolean {
    if (this.broken || rawEntries.length !== this.raws.length) return false;
    for (let i = 0; i < rawEntries.length; i++) if (rawEntries[i] !== this.raws[i]) return false;
    return true;
  }
}

/** Every parent reference resolves inside the table. */
export function checkParents(t: Table, what = 'table'): void {
  for (const e of t.entries.values()) {
    if (e.parent !== undefined && !t.entries.has(e.parent))
      throw new ProtocolError('INVALID_OP', `${what}: credential ${e.credId} names missing parent ${e.parent}`);
  }
}

const TABLE_DIGEST_DOMAIN = new TextEncoder().encode('locksync/v1/table\0');

export function tableDigest(t: Table): Uint8Array {
  return tableDigestOfEncoding(encodeTable(t));
}

/** The digest of a table held as its encoding (encodeTable's bytes), without decoding it. */
export function tableDigestOfEncoding(tableBytes: Uint8Array): Uint8Array {
  return hash(concatBytes(TABLE_DIGEST_DOMAIN, tableBytes));
}

/**
 * How many entries an encoded table holds, read from its first bytes (SPEC §4.4: the map
 * head, key 1, then the entries array's head) without decoding the rest. Throws
 * ProtocolError MALFORMED when the bytes do not start as encodeTable's do.
 */
export function encodedTableEntryCount(tableBytes: Uint8Array): number {
  const h = tableBytes[0] === 0xa3 && tableBytes[1] === 0x01 ? peekHead(tableBytes, 2) : undefined;
  // An array whose count takes at most 4 bytes: no table comes near 2^32 entries.
  if (h === undefined || h.major !== 4 || h.end > 2 + 5) throw new ProtocolError('MALFORMED', 'table: does not start with {1: [entries …');
  return h.arg;
}

export function decodeTableBytes(bytes: Uint8Array): Table {
  return decodeTable(decode(bytes));
}

export function digestEquals(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && compareBytes(a, b) === 0;
}
