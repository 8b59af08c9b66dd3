// Signed table heads, key certificates, deltas and snapshots — and `applyUpdate`, the one
// verification pipeline the lock runs (and the authority runs to check itself).
//
// Trust chain (SPEC.md §3): the lock is provisioned with one or more offline ROOT public
// keys. A root certifies ONLINE signing keys with a key certificate carrying a serial; the
// highest serial a lock has accepted is its certificate floor, so issuing a new cert
// (rotation) retires every older online key at that lock. Table heads are signed by an
// online key (or a root). Everything a courier carries is bound to one lock id and one
// version chain.

import { type CborValue, decode, encode, bytesEqual } from './cbor';
import { KEY_ID_BYTES, keyIdOf, sign, toHex, verify } from './crypto';
import { weakEd25519EncodingReason } from './ed25519-strict';
import { ProtocolError } from './errors';
import { MapReader, cmap, expectArray, expectTuple, insideSignedBody } from './schema';
import { type Op, applyOps, opFromCbor, opToCbor } from './ops';
import { type Entry, type Table, type TableEntriesBuilder, LIMITS, checkParents, decodeTable, emptyTable, lockPolicyToCbor, tableDigest, tableToCbor } from './table';

export const LOCK_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,31}$/;
export const DIGEST_BYTES = 32;
/** A delta names its base by version and the first 8 bytes of the base digest: enough to
 *  detect a broken chain. Security rests on the signed digest of the result. */
export const BASE_DIGEST_PREFIX_BYTES = 8;
export const MAX_CERTS_PER_UPDATE = 4;

// ---------------------------------------------------------------------------
// Heads

export interface TableHead {
  lockId: string;
  version: number;
  digest: Uint8Array;
  /** Authority time when signed, unix seconds. Also a lower bound for the lock's clock. */
  issuedAt: number;
  keyId: Uint8Array;
}

/** A head with the exact bytes its signature covers. */
export interface SignedHead {
  head: TableHead;
  headBytes: Uint8Array;
  signature: Uint8Array;
}

export function encodeTableHead(h: TableHead): Uint8Array {
  return encode(
    cmap([
      [1, h.lockId],
      [2, h.version],
      [3, h.digest],
      [4, h.issuedAt],
      [5, h.keyId],
    ]),
  );
}

export function headFromCbor(v: CborValue, what = 'head'): TableHead {
  const r = MapReader.of(v, what);
  const h: TableHead = {
    lockId: r.text(1, 'lockId', 32, LOCK_ID_PATTERN),
    version: r.uint(2, 'version'),
    digest: r.bytes(3, 'digest', { exact: DIGEST_BYTES }),
    issuedAt: r.uint(4, 'issuedAt'),
    keyId: r.bytes(5, 'keyId', { exact: KEY_ID_BYTES }),
  };
  r.done();
  // A signed head names a version >= 1 (version 0 is the fresh lock's, which has no head):
  // below the stated minimum is MALFORMED at decode, not a ROLLBACK found later (SPEC §5.1).
  if (h.version < 1) throw new ProtocolError('MALFORMED', `${what}.version: 0 is below the minimum 1`);
  return h;
}

export function signHead(h: TableHead, secretKey: Uint8Array): SignedHead {
  const headBytes = encodeTableHead(h);
  return { head: h, headBytes, signature: sign('head', headBytes, secretKey) };
}

/** Wire form: [headBytes, signature]. The head travels as a byte string so the signature
 *  is checked over exactly the bytes received, before anything inside is trusted. */
export function signedHeadToCbor(s: SignedHead): CborValue {
  return [s.headBytes, s.signature];
}

/** The wire form of everything signed here: [bstr body, bstr(64) signature]. */
function signedPairFromCbor(v: CborValue, what: string, body: string): { bytes: Uint8Array; signature: Uint8Array } {
  const [bytes, signature] = expectTuple(v, what, 2);
  if (!(bytes instanceof Uint8Array) || !(signature instanceof Uint8Array) || signature.length !== 64)
    throw new ProtocolError('MALFORMED', `${what}: expected [bstr ${body}, bstr(64) signature]`);
  return { bytes, signature };
}

export function signedHeadFromCbor(v: CborValue, what = 'signedHead'): SignedHead {
  const { bytes: headBytes, signature } = signedPairFromCbor(v, what, 'head');
  const head = insideSignedBody(() => headFromCbor(decodeNested(headBytes, `${what}.head`), `${what}.head`));
  return { head, headBytes, signature };
}

/** Decode CBOR embedded in a byte string, mapping decoder errors to MALFORMED. */
export function decodeNested(bytes: Uint8Array, what: string): CborValue {
  try {
    return decode(bytes, { maxBytes: 4096, maxDepth: 4, maxItems: 64 });
  } catch (e) {
    throw new ProtocolError('MALFORMED', `${what}: ${(e as Error).message}`);
  }
}

// ---------------------------------------------------------------------------
// Key certificates

export interface KeyCert {
  serial: number;
  publicKey: Uint8Array;
  keyId: Uint8Array;
  rootKeyId: Uint8Array;
}

export interface SignedKeyCert {
  cert: KeyCert;
  certBytes: Uint8Array;
  signature: Uint8Array;
}

export function issueKeyCert(serial: number, publicKey: Uint8Array, rootSecret: Uint8Array, rootPublic: Uint8Array): SignedKeyCert {
  const cert: KeyCert = { serial, publicKey, keyId: keyIdOf(publicKey), rootKeyId: keyIdOf(rootPublic) };
  const certBytes = encode(
    cmap([
      [1, cert.serial],
      [2, cert.publicKey],
      [3, cert.keyId],
      [4, cert.rootKeyId],
    ]),
  );
  return { cert, certBytes, signature: sign('keyCert', certBytes, rootSecret) };
}

export function keyCertToCbor(c: SignedKeyCert): CborValue {
  return [c.certBytes, c.signature];
}

export function keyCertFromCbor(v: CborValue, what = 'keyCert'): SignedKeyCert {
  const { bytes: certBytes, signature } = signedPairFromCbor(v, what, 'cert');
  const cert = insideSignedBody((): KeyCert => {
    const r = MapReader.of(decodeNested(certBytes, what), what);
    const c: KeyCert = {
      serial: r.uint(1, 'serial', 0xffff_ffff),
      publicKey: r.bytes(2, 'publicKey', { exact: 32 }),
      keyId: r.bytes(3, 'keyId', { exact: KEY_ID_BYTES }),
      rootKeyId: r.bytes(4, 'rootKeyId', { exact: KEY_ID_BYTES }),
    };
    r.done();
    return c;
  });
  if (!bytesEqual(cert.keyId, keyIdOf(cert.publicKey))) throw new ProtocolError('MALFORMED', `${what}: keyId does not match publicKey`);
  return { cert, certBytes, signature };
}

// ---------------------------------------------------------------------------
// Trust state a lock holds

export interface TrustState {
  /** Offline root public keys (provisioned; never change by update). */
  roots: Uint8Array[];
  /** Online key certificates accepted so far. */
  certs: SignedKeyCert[];
  /** Highest cert serial accepted: certs below it are retired. */
  certFloor: number;
}

function rootFor(trust: TrustState, keyId: Uint8Array): Uint8Array | undefined {
  return trust.roots.find((r) => bytesEqual(keyIdOf(r), keyId));
}

/** Verify carried certs against the roots; returns the trust state including them. */
export function admitCerts(trust: TrustState, carried: readonly SignedKeyCert[]): TrustState {
  let certs = trust.certs;
  let floor = trust.certFloor;
  for (const c of carried) {
    const root = rootFor(trust, c.cert.rootKeyId);
    if (root === undefined) throw new ProtocolError('UNTRUSTED_KEY', `key cert ${c.cert.serial} issued by unknown root`);
    if (!verify('keyCert', c.certBytes, c.signature, root)) throw new ProtocolError('BAD_SIGNATURE', `key cert ${c.cert.serial}: signature does not verify`);
    if (c.cert.serial < floor) continue; // already superseded: ignore, never lowers anything
    if (!certs.some((k) => bytesEqual(k.certBytes, c.certBytes))) certs = [...certs, c];
    floor = Math.max(floor, c.cert.serial);
  }
  certs = certs.filter((c) => c.cert.serial >= floor);
  return { roots: trust.roots, certs, certFloor: floor };
}

/** Public key allowed to sign heads with this key id, or an UNTRUSTED_KEY refusal. */
export function signingKeyFor(trust: TrustState, keyId: Uint8Array): Uint8Array {
  const root = rootFor(trust, keyId);
  if (root !== undefined) return root;
  const cert = trust.certs.find((c) => bytesEqual(c.cert.keyId, keyId));
  if (cert === undefined) throw new ProtocolError('UNTRUSTED_KEY', `no trusted key with id ${Buffer.from(keyId).toString('hex')}`);
  if (cert.cert.serial < trust.certFloor) throw new ProtocolError('UNTRUSTED_KEY', `key ${cert.cert.serial} retired by rotation`);
  return cert.cert.publicKey;
}

// ---------------------------------------------------------------------------
// Updates: deltas and snapshots

export interface Delta {
  type: 'delta';
  baseVersion: number;
  baseDigestPrefix: Uint8Array;
  ops: Op[];
  head: SignedHead;
  certs: SignedKeyCert[];
}

export interface Snapshot {
  type: 'snapshot';
  table: Table;
  head: SignedHead;
  certs: SignedKeyCert[];
}

export type Update = Delta | Snapshot;

/** Update bodies (SPEC.md §5): delta {1 baseVersion, 2 baseDigestPrefix, 3 ops, 4 head, ?5 certs};
 *  snapshot {1 table, 4 head, ?5 certs}. They travel inside session messages. */
export function updateToCbor(u: Update): CborValue {
  const certs = u.certs.length > 0 ? u.certs.map(keyCertToCbor) : undefined;
  if (u.type === 'delta')
    return cmap([
      [1, u.baseVersion],
      [2, u.baseDigestPrefix],
      [3, u.ops.map(opToCbor)],
      [4, signedHeadToCbor(u.head)],
      [5, certs],
    ]);
  return cmap([
    [1, tableToCbor(u.table)],
    [4, signedHeadToCbor(u.head)],
    [5, certs],
  ]);
}

/** `encodings`: the bytes decoded containers came from, if the caller kept them (decodeTable). */
export function updateFromCbor(
  v: CborValue,
  type: 'delta' | 'snapshot',
  what = type,
  encodings?: WeakMap<object, Uint8Array>,
  /** The table's entries read while the message arrived (MessageStreamDecoder). */
  prebuilt?: TableEntriesBuilder,
): Update {
  const r = MapReader.of(v, what);
  const certsRaw = r.optArray(5, 'certs', MAX_CERTS_PER_UPDATE);
  const head = signedHeadFromCbor(r.raw(4, 'head'), `${what}.head`);
  const certs = (certsRaw ?? []).map((c, i) => keyCertFromCbor(c, `${what}.certs[${i}]`));
  if (certsRaw !== undefined && certsRaw.length === 0) throw new ProtocolError('MALFORMED', `${what}.certs: empty array must be omitted`);
  if (type === 'delta') {
    const baseVersion = r.uint(1, 'baseVersion');
    const baseDigestPrefix = r.bytes(2, 'baseDigestPrefix', { exact: BASE_DIGEST_PREFIX_BYTES });
    const ops = r.array(3, 'ops', LIMITS.maxOpsPerDelta).map((o, i) => opFromCbor(o, `${what}.ops[${i}]`));
    r.done();
    return { type, baseVersion, baseDigestPrefix, ops, head, certs };
  }
  // Parents are checked in applyUpdate step 6, after the signature (SPEC §5.4): a refusal
  // before step 1 is only ever MALFORMED or OVER_LIMIT.
  const table = decodeTable(r.raw(1, 'table'), `${what}.table`, { checkParents: false, ...(encodings ? { encodings } : {}), ...(prebuilt ? { prebuilt } : {}) });
  r.done();
  return { type, table, head, certs };
}

// ---------------------------------------------------------------------------
// The lock's table state and the pipeline

export interface TableState {
  lockId: string;
  table: Table;
  /** Head of the current table; null on a freshly provisioned lock (version 0, empty table). */
  head: TableHead | null;
  /** Lowest version the lock may ever move to next is versionFloor + 1. Persisted. */
  versionFloor: number;
  trust: TrustState;
  /** Newest issuedAt of any accepted head or signed time: the clock never goes below it. */
  newestIssuedAt: number;
  /** Lease anchor (SPEC §8.1): the newest authority time at which this lock's table was
   *  attested current — the issuedAt of its head, or a signed time naming its version and
   *  digest. Never above newestIssuedAt. */
  leaseAnchor: number;
}

export function initialTableState(lockId: string, roots: Uint8Array[]): TableState {
  return { lockId, table: emptyTable(), head: null, versionFloor: 0, trust: { roots, certs: [], certFloor: 0 }, newestIssuedAt: 0, leaseAnchor: 0 };
}

export function currentDigest(s: TableState): Uint8Array {
  return s.head?.digest ?? tableDigest(s.table);
}

export function currentVersion(s: TableState): number {
  return s.head?.version ?? 0;
}

export type ApplyResult = { ok: true; state: TableState; update: Update } | { ok: false; error: ProtocolError };

/**
 * Verify an update against the lock's state and, if every check passes, return the new
 * state. Never mutates `state`; on refusal the caller keeps the old state byte for byte.
 * Check order (each a distinct refusal): trust/signature → lock binding → rollback →
 * chain → apply → digest.
 */
export function applyUpdate(state: TableState, update: Update): ApplyResult {
  try {
    const { head } = update;
    const trust = admitCerts(state.trust, update.certs);
    const key = signingKeyFor(trust, head.head.keyId);
    if (!verify('head', head.headBytes, head.signature, key)) throw new ProtocolError('BAD_SIGNATURE', 'table head signature does not verify');
    if (head.head.lockId !== state.lockId) throw new ProtocolError('WRONG_LOCK', `update for ${head.head.lockId}, this is ${state.lockId}`);
    if (head.head.version <= state.versionFloor)
      throw new ProtocolError('ROLLBACK', `version ${head.head.version} <= floor ${state.versionFloor}`);
    let table: Table;
    if (update.type === 'delta') {
      const version = currentVersion(state);
      if (update.baseVersion !== version) throw new ProtocolError('BROKEN_CHAIN', `delta from v${update.baseVersion}, lock is at v${version}`);
      const digest = currentDigest(state);
      if (!bytesEqual(update.baseDigestPrefix, digest.subarray(0, BASE_DIGEST_PREFIX_BYTES)))
        throw new ProtocolError('BROKEN_CHAIN', `delta base digest does not match v${version}`);
      table = applyOps(state.table, update.ops);
      admitPhoneKeys(state.table, update.ops.flatMap((o) => (o.op === 'put' ? [o.entry] : [])));
    } else {
      table = update.table;
      checkParents(table, 'snapshot.table');
      admitPhoneKeys(state.table, table.entries.values());
    }
    const digest = tableDigest(table);
    if (!bytesEqual(digest, head.head.digest)) throw new ProtocolError('DIGEST_MISMATCH', `table after apply does not match signed head v${head.head.version}`);
    return {
      ok: true,
      update,
      state: {
        lockId: state.lockId,
        table,
        head: head.head,
        versionFloor: head.head.version,
        trust,
        newestIssuedAt: Math.max(state.newestIssuedAt, head.head.issuedAt),
        // The head attests its own table as current at issuedAt.
        leaseAnchor: Math.max(state.leaseAnchor, head.head.issuedAt),
      },
    };
  } catch (e) {
    if (e instanceof ProtocolError) return { ok: false, error: e };
    throw e;
  }
}

/**
 * A phone entry's secret is its Ed25519 public key. Refuse (INVALID_OP) a table that would
 * admit a key encoded with y ≥ p or encoding a small-order point: with such a key one
 * constant signature would answer every challenge under a lenient verifier, and it is
 * never what an honest phone enrols. Byte checks only (weakEd25519EncodingReason): bytes
 * that are no curve point never verify under the strict verifier, so they cannot open;
 * the check waits for unlock rather than costing a square root per key here. Keys already
 * held are not re-checked. The authority refuses all of these at enrolment with the
 * stricter isStrictEd25519PublicKey (on the curve, prime order as well).
 */
function admitPhoneKeys(held: Table, entries: Iterable<Entry>): void {
  let heldKeys: Set<string> | undefined;
  for (const e of entries) {
    if (e.kind !== 'phone') continue;
    heldKeys ??= new Set([...held.entries.values()].filter((h) => h.kind === 'phone').map((h) => toHex(h.secret)));
    // (A lock that holds no phone key yet — a first snapshot — hexes none of the new ones.)
    if (heldKeys.size > 0 && heldKeys.has(toHex(e.secret))) continue;
    const weak = phoneKeyWeakness(e);
    if (weak !== null) throw new ProtocolError('INVALID_OP', `credential ${e.credId}: phone public key refused (${weak})`);
  }
}

const phoneKeyVerdicts = new WeakMap<Entry, string | null>();

/**
 * weakEd25519EncodingReason of a phone entry's key, worked out once per entry object
 * (entries are immutable): a lock receiving a snapshot does it for each entry as it
 * arrives (MessageStreamDecoder), and applyUpdate finds it done.
 */
export function phoneKeyWeakness(e: Entry): string | null {
  let v = phoneKeyVerdicts.get(e);
  if (v === undefined) {
    v = weakEd25519EncodingReason(e.secret);
    phoneKeyVerdicts.set(e, v);
  }
  return v;
}

/** Authority side: build a signed delta from `base` to `target`. */
export function makeDelta(args: {
  base: { version: number; digest: Uint8Array };
  ops: Op[];
  head: SignedHead;
  certs?: SignedKeyCert[];
}): Delta {
  return {
    type: 'delta',
    baseVersion: args.base.version,
    baseDigestPrefix: args.base.digest.slice(0, BASE_DIGEST_PREFIX_BYTES),
    ops: args.ops,
    head: args.head,
    certs: args.certs ?? [],
  };
}

export function digestOfEmptyTable(): Uint8Array {
  return tableDigest(emptyTable());
}

/**
 * Whether a snapshot is smaller than a delta from the empty table (a fresh lock, version 0),
 * decided without building the delta: for a 10,000-entry table the diff, apply, digest and
 * encoding of that delta cost ~90 ms of a server's CPU at every first contact, to be thrown
 * away. From empty, the delta puts every entry ([1, entry]: 2 bytes more than the entry)
 * and every Key policy ([5, policy]: 2 more), and carries its base (version 0 and an 8-byte
 * digest prefix, 12 bytes with their keys) and its op array's head; it leaves out the lock
 * policy only when it equals the empty table's. The snapshot's table carries its two array
 * heads (≤ 3 bytes each for these sizes), three keys and the lock policy (SPEC §4.4, §5.3).
 * So delta − snapshot ≥ 2·(entries + policies) + 3 − lockPolicyBytes, and when that is
 * positive the snapshot is the smaller message.
 */
export function snapshotSmallerFromEmpty(t: Table): boolean {
  return 2 * (t.entries.size + t.keyPolicies.size) + 3 > encode(lockPolicyToCbor(t.policy)).length;
}

/**
 * The most a lock policy's encoding can take: a map of five unsigned integers, each key one
 * byte and each value at most nine (SPEC §4.4).
 */
const MAX_LOCK_POLICY_BYTES = 1 + 5 * (1 + 9);

/**
 * Whether the entry count alone settles snapshotSmallerFromEmpty: entries whose 2 bytes each
 * outweigh any lock policy make the snapshot the smaller message whatever the table's Key
 * policies and lock policy are. False means the whole table has to decide.
 */
export function snapshotSmallerFromEmptyByEntries(entryCount: number): boolean {
  return 2 * entryCount + 3 > MAX_LOCK_POLICY_BYTES;
}
