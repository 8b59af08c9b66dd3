// Valid and refused table updates over the fixed world (world.ts): the cases the update
// tests assert and the update vectors publish. Each case is a provisioned lock state plus
// the exact bytes of one delta or snapshot message, and what applying them must give.

import { encode } from '../cbor';
import { type ErrorName, ProtocolError } from '../errors';
import { type Message, MESSAGE_TYPES, encodeMessage, decodeMessage } from '../messages';
import { type Op, applyOps } from '../ops';
import { cmap } from '../schema';
import { type Entry, LIMITS, entryToCbor } from '../table';
import { sign } from '../crypto';
import {
  type ApplyResult,
  type Delta,
  type TableState,
  type Update,
  applyUpdate,
  initialTableState,
  signHead,
  updateToCbor,
} from '../update';
import { CERT1, CERT2, EPOCH, KEYS, LOCK_ID, OTHER_LOCK_ID, PARTNER_ID, STRANGER_CERT, baseTable, deltaFrom, partnerCredential, residentPhone, snapshotOf, staffDoorcode } from './world';

export interface UpdateCase {
  comment: string;
  flags: string[];
  state: TableState;
  message: Uint8Array;
  expected: { error: ErrorName } | { version: number };
  /** SPEC.md requirement ids this case checks. */
  requirements: string[];
}

export const messageOf = (u: Update): Uint8Array => encodeMessage({ type: u.type, update: u });

/** What a lock does with update bytes from the courier: decode, then the one pipeline. */
export function receiveUpdate(state: TableState, bytes: Uint8Array): ApplyResult {
  try {
    const m = decodeMessage(bytes);
    if (m.type !== 'delta' && m.type !== 'snapshot') return { ok: false, error: new ProtocolError('UNEXPECTED_MESSAGE', m.type) };
    return applyUpdate(state, m.update);
  } catch (e) {
    if (e instanceof ProtocolError) return { ok: false, error: e };
    throw e;
  }
}

function mustApply(s: TableState, u: Update): TableState {
  const r = applyUpdate(s, u);
  if (!r.ok) throw new Error(`world setup: ${r.error.message}`);
  return r.state;
}

function withSignatureBitFlipped(d: Delta): Delta {
  const signature = d.head.signature.slice();
  signature[10] = (signature[10] as number) ^ 0x01;
  return { ...d, head: { ...d.head, signature } };
}

/** A delta message whose ops array is replaced by `rawOps` (any CBOR), keeping the signed head. */
function deltaWithRawOps(d: Delta, rawOps: unknown): Uint8Array {
  const body = updateToCbor(d) as Map<number, unknown>;
  body.set(3, rawOps);
  return encode(cmap([[0, MESSAGE_TYPES.delta], [1, body as never]]));
}

export function updateCases(): UpdateCase[] {
  const s0 = initialTableState(LOCK_ID, [KEYS.root.publicKey]);
  const snap1 = snapshotOf(baseTable(3), { version: 1 });
  const s1 = mustApply(s0, snap1);
  const removePartner: Op[] = [{ op: 'removePartner', partnerId: PARTNER_ID }];
  const delta2 = deltaFrom(s1, removePartner, { version: 2 });
  const s2 = mustApply(s1, delta2);
  const rotated = deltaFrom(s1, removePartner, { version: 2, signer: KEYS.online2 }, [CERT2]);
  const sRot = mustApply(s1, rotated);
  const cases: UpdateCase[] = [];
  const ok = (comment: string, flags: string[], state: TableState, u: Update | Uint8Array, version: number, reqs: string[] = []): void => {
    cases.push({ comment, flags, state, message: u instanceof Uint8Array ? u : messageOf(u), expected: { version }, requirements: ['R-UPD-2', 'R-UPD-4', 'R-HELLO-2', ...reqs] });
  };
  const bad = (comment: string, flags: string[], state: TableState, u: Update | Uint8Array, error: ErrorName, reqs: string[] = []): void => {
    cases.push({ comment, flags, state, message: u instanceof Uint8Array ? u : messageOf(u), expected: { error }, requirements: ['R-UPD-2', 'R-UPD-3', ...reqs] });
  };

  ok('snapshot v1 onto a freshly provisioned lock, online key certified by the carried cert', ['Valid', 'Snapshot'], s0, snap1, 1);
  ok('delta v1 -> v2: remove partner 7 (all its credentials) in one op', ['Valid', 'Delta', 'RemovePartner'], s1, delta2, 2);
  ok('delta v2 -> v3 signed by the root itself: remove the resident, cascading to her guest', ['Valid', 'Delta', 'Cascade'], s2,
    deltaFrom(s2, [{ op: 'remove', credId: 1 }], { version: 3, signer: KEYS.root }), 3);
  ok('key rotation: delta signed by online key 2, certified by the carried cert serial 2', ['Valid', 'Rotation'], s1, rotated, 2);
  ok('version may jump: delta v1 -> v9', ['Valid', 'Delta'], s1, deltaFrom(s1, removePartner, { version: 9 }), 9);

  bad('head signature with one bit flipped', ['BadSignature'], s1, withSignatureBitFlipped(delta2), 'BAD_SIGNATURE');
  {
    const sig = CERT2.signature.slice();
    sig[0] = (sig[0] as number) ^ 0x80;
    bad('carried key cert whose root signature does not verify', ['BadSignature', 'Rotation'], s1, { ...rotated, certs: [{ ...CERT2, signature: sig }] }, 'BAD_SIGNATURE');
  }
  bad('head signed by a key the lock does not know, no cert', ['UntrustedKey'], s1, deltaFrom(s1, removePartner, { version: 2, signer: KEYS.stranger }), 'UNTRUSTED_KEY');
  bad('cert for the signing key issued by a root the lock does not hold', ['UntrustedKey'], s1,
    deltaFrom(s1, removePartner, { version: 2, signer: KEYS.online2 }, [STRANGER_CERT]), 'UNTRUSTED_KEY');
  bad('online key 1 retired by rotation to cert serial 2 (its own cert carried again)', ['UntrustedKey', 'Rotation'], sRot,
    deltaFrom(sRot, [{ op: 'remove', credId: 3 }], { version: 3 }, [CERT1]), 'UNTRUSTED_KEY');
  bad('head bound to another lock', ['WrongLock'], s1, deltaFrom(s1, removePartner, { version: 2, lockId: OTHER_LOCK_ID }), 'WRONG_LOCK');
  bad('replay of the accepted snapshot v1', ['Rollback', 'Replay'], s1, snap1, 'ROLLBACK');
  bad('replay of the accepted delta v1 -> v2', ['Rollback', 'Replay'], s2, delta2, 'ROLLBACK');
  bad('older snapshot v1 offered to a lock at v2', ['Rollback'], s2, snap1, 'ROLLBACK');
  bad('delta from v2 offered to a lock at v1', ['BrokenChain'], s1, deltaFrom(s2, [{ op: 'remove', credId: 3 }], { version: 3 }), 'BROKEN_CHAIN');
  {
    const d = deltaFrom(s1, removePartner, { version: 2 });
    const prefix = d.baseDigestPrefix.slice();
    prefix[0] = (prefix[0] as number) ^ 0xff;
    bad('delta naming base v1 with another base digest', ['BrokenChain'], s1, { ...d, baseDigestPrefix: prefix }, 'BROKEN_CHAIN');
  }
  bad('tampered op: courier swaps partner 7 for partner 8 (head still signs the honest result)', ['DigestMismatch'], s1,
    { ...delta2, ops: [{ op: 'removePartner', partnerId: PARTNER_ID + 1 }] }, 'DIGEST_MISMATCH');
  {
    const t = baseTable(3);
    const entries = new Map(t.entries);
    entries.delete(1000);
    bad('snapshot table with one credential dropped under an honest head', ['DigestMismatch', 'Snapshot'], s0, { ...snap1, table: { ...t, entries } }, 'DIGEST_MISMATCH');
  }
  {
    const ops: Op[] = [];
    for (let k = 0; k <= LIMITS.maxKeyPolicies; k++) ops.push({ op: 'setKeyPolicy', policy: { keyId: 10_000 + k, doorcodesEnabled: false } });
    const head = signHead({ ...delta2.head.head }, KEYS.online1.secretKey);
    bad(`delta leaving ${LIMITS.maxKeyPolicies + 1} Key policies (limit ${LIMITS.maxKeyPolicies})`, ['OverLimit'], s1, { ...delta2, ops, head }, 'OVER_LIMIT');
  }
  bad(`delta carrying 5 key certs (limit 4)`, ['OverLimit'], s1, { ...rotated, certs: [CERT2, CERT2, CERT2, CERT2, CERT2] }, 'OVER_LIMIT');
  {
    const noPartnerId: Entry = { ...partnerCredential(2000) };
    delete noPartnerId.partnerId;
    bad('put of a partner credential without partnerId', ['Malformed'], s1, { ...delta2, ops: [{ op: 'put', entry: noPartnerId }] }, 'MALFORMED');
  }
  bad('delta message cut in the middle', ['Malformed', 'Truncated'], s1, messageOf(delta2).slice(0, 60), 'MALFORMED');
  bad('op with an unknown op code 9', ['Malformed'], s1, deltaWithRawOps(delta2, [[9, 1]]), 'MALFORMED');
  bad('delta whose op argument is a float (1.5)', ['Malformed', 'Float'], s1, patchOpsFloat(delta2), 'MALFORMED');
  bad('remove of a credential the table does not hold', ['InvalidOp'], s1,
    { ...delta2, ops: [{ op: 'remove', credId: 4242 }] }, 'INVALID_OP');
  {
    const orphan: Entry = { credId: 3000, kind: 'phone', holder: 'guest', secret: KEYS.phoneGuest.publicKey, parent: 999, flags: 0 };
    bad('put of a guest whose parent credential does not exist', ['InvalidOp'], s1, { ...delta2, ops: [{ op: 'put', entry: orphan }] }, 'INVALID_OP');
  }
  {
    // Signed by the authority's own key, digest honest: only the lock's key check refuses.
    const identity = new Uint8Array(32);
    identity[0] = 1;
    const weak: Entry = { ...residentPhone(3001), secret: identity };
    bad('put of a phone credential whose public key is the identity point (small order)', ['InvalidOp', 'WeakKey'], s1,
      deltaFrom(s1, [{ op: 'put', entry: weak }], { version: 2 }), 'INVALID_OP');
    const nonCanonical = new Uint8Array(32).fill(0xff);
    nonCanonical[0] = 0xee;
    nonCanonical[31] = 0x7f; // y = p + 1: a second encoding of the identity
    bad('snapshot holding a phone credential with a non-canonical public key (y >= p)', ['InvalidOp', 'WeakKey', 'Snapshot'], s0,
      snapshotOf(applyOps(baseTable(3), [{ op: 'put', entry: { ...residentPhone(3001), secret: nonCanonical } }]), { version: 1 }), 'INVALID_OP');
    // y = 2 is canonical and of no small-order point, but no x solves the curve equation:
    // admitted (the check is on the bytes, SPEC §3.3); no signature ever verifies under it.
    const offCurve = new Uint8Array(32);
    offCurve[0] = 2;
    ok('snapshot holding a phone credential whose public key is no curve point (y = 2): accepted, it never verifies at unlock', ['Snapshot', 'NotOnCurve'], s0,
      snapshotOf(applyOps(baseTable(3), [{ op: 'put', entry: { ...residentPhone(3001), secret: offCurve } }]), { version: 1 }), 1);
  }
  moreCases(s0, s1, s2, snap1, delta2, ok, bad);
  return cases;
}

type Ok = (comment: string, flags: string[], state: TableState, u: Update | Uint8Array, version: number, reqs?: string[]) => void;
type Bad = (comment: string, flags: string[], state: TableState, u: Update | Uint8Array, error: ErrorName, reqs?: string[]) => void;

/** Replace key `k` of the delta body (any CBOR) and re-encode the message. */
function deltaWithBodyKey(d: Delta, k: number, v: unknown): Uint8Array {
  const body = updateToCbor(d) as Map<number, unknown>;
  body.set(k, v);
  return encode(cmap([[0, MESSAGE_TYPES.delta], [1, body as never]]));
}

/** A head signed over arbitrary body bytes (the signer signs what it is given). */
function signedRawHead(body: Map<number, unknown>, signer = KEYS.online1): [Uint8Array, Uint8Array] {
  const bytes = encode(body as never);
  return [bytes, sign('head', bytes, signer.secretKey)];
}

function moreCases(s0: TableState, s1: TableState, s2: TableState, snap1: Update, delta2: Delta, ok: Ok, bad: Bad): void {
  const headMap = (over: Record<number, unknown>): Map<number, unknown> => {
    const h = delta2.head.head;
    const m = new Map<number, unknown>([[1, h.lockId], [2, h.version], [3, h.digest], [4, h.issuedAt], [5, h.keyId]]);
    for (const [k, v] of Object.entries(over)) m.set(Number(k), v);
    return m;
  };
  // Items 3, 4, 9, 10 of issue 13: what a head, a cert, an op can be refused for, and when.
  bad('head with version 0 (below the minimum 1): MALFORMED at decode, not ROLLBACK later', ['Malformed', 'Minimum'], s1,
    deltaWithBodyKey(delta2, 4, signedRawHead(headMap({ 2: 0 }))), 'MALFORMED', ['R-UPD-6', 'R-SCHEMA-3', 'R-SCHEMA-6']);
  bad('head whose lock id has 33 characters (range error inside a signed body)', ['Malformed', 'SignedBody'], s1,
    deltaWithBodyKey(delta2, 4, signedRawHead(headMap({ 1: 'a'.repeat(33) }))), 'MALFORMED', ['R-SCHEMA-6']);
  bad('head whose issuedAt is a byte string, under a bad signature: decoding comes first', ['Malformed', 'Order'], s1,
    deltaWithBodyKey(delta2, 4, [encode(headMap({ 4: new Uint8Array(1) }) as never), new Uint8Array(64)]), 'MALFORMED', ['R-SIG-3']);
  bad('head naming another lock under a signature that does not verify: BAD_SIGNATURE before WRONG_LOCK', ['BadSignature', 'Order'], s1,
    deltaWithBodyKey(delta2, 4, [encode(headMap({ 1: OTHER_LOCK_ID }) as never), delta2.head.signature]), 'BAD_SIGNATURE', ['R-SIG-3']);
  bad('signed head with 3 elements (fixed-size pair)', ['Malformed', 'FixedArray'], s1,
    deltaWithBodyKey(delta2, 4, [delta2.head.headBytes, delta2.head.signature, new Uint8Array(0)]), 'MALFORMED', ['R-SCHEMA-4']);
  bad('signed head with 1 element', ['Malformed', 'FixedArray'], s1, deltaWithBodyKey(delta2, 4, [delta2.head.headBytes]), 'MALFORMED', ['R-SCHEMA-4']);
  bad('carried key cert with 3 elements', ['Malformed', 'FixedArray'], s1,
    deltaWithBodyKey(delta2, 5, [[CERT2.certBytes, CERT2.signature, new Uint8Array(0)]]), 'MALFORMED', ['R-SCHEMA-4']);
  {
    const serial = encode(cmap([[1, 2 ** 32], [2, KEYS.online2.publicKey], [3, KEYS.online2.keyId], [4, KEYS.root.keyId]]));
    bad('carried key cert with serial 2^32 (range error inside a signed body)', ['Malformed', 'SignedBody'], s1,
      deltaWithBodyKey(delta2, 5, [[serial, sign('keyCert', serial, KEYS.root.secretKey)]]), 'MALFORMED', ['R-SCHEMA-6']);
    const wrongId = encode(cmap([[1, 2], [2, KEYS.online2.publicKey], [3, KEYS.online1.keyId], [4, KEYS.root.keyId]]));
    bad('carried key cert whose keyId is not keyId(publicKey)', ['Malformed'], s1,
      deltaWithBodyKey(delta2, 5, [[wrongId, sign('keyCert', wrongId, KEYS.root.secretKey)]]), 'MALFORMED', ['R-CERT-1']);
  }
  bad('delta with an empty certs array written out', ['Malformed', 'Canonical'], s1, deltaWithBodyKey(delta2, 5, []), 'MALFORMED', ['R-UPD-1']);
  bad('op with 3 elements', ['Malformed', 'FixedArray'], s1, deltaWithRawOps(delta2, [[3, 7, 0]]), 'MALFORMED', ['R-SCHEMA-4']);
  bad('op with 1 element', ['Malformed', 'FixedArray'], s1, deltaWithRawOps(delta2, [[3]]), 'MALFORMED', ['R-SCHEMA-4']);
  bad('op code 256 (registry value above a byte)', ['Malformed', 'Registry'], s1, deltaWithRawOps(delta2, [[256, 7]]), 'MALFORMED', ['R-SCHEMA-5']);
  bad('remove of credId 0 (reserved)', ['Malformed', 'Minimum'], s1, deltaWithRawOps(delta2, [[2, 0]]), 'MALFORMED', ['R-TABLE-6', 'R-SCHEMA-3']);
  bad('remove of credId 2^32', ['OverLimit'], s1, deltaWithRawOps(delta2, [[2, 2 ** 32]]), 'OVER_LIMIT', ['R-SCHEMA-2']);
  {
    const put = (e: Map<number, unknown>): unknown => [[1, e]];
    const g = entryToCbor({ credId: 50, kind: 'phone', holder: 'guest', secret: KEYS.phoneGuest.publicKey, parent: 1, flags: 0 }) as Map<number, unknown>;
    bad('put of a guest with parent 0', ['Malformed', 'Minimum'], s1, deltaWithRawOps(delta2, put(new Map([...g, [6, 0]]))), 'MALFORMED', ['R-TABLE-6']);
    const resident = entryToCbor({ credId: 51, kind: 'phone', holder: 'resident', secret: KEYS.phoneGuest.publicKey, flags: 0 }) as Map<number, unknown>;
    bad('put of a resident carrying a parent', ['Malformed', 'Parent'], s1,
      deltaWithRawOps(delta2, put(new Map([...resident, [6, 1]]))), 'MALFORMED', ['R-TABLE-4']);
    const win = (st: number): number => 0x1f * 0x400000 + st * 0x800 + st + 30;
    bad('put whose schedule windows are not ascending', ['Malformed', 'Order'], s1,
      deltaWithRawOps(delta2, put(new Map([...resident, [7, [win(600), win(420)]]]))), 'MALFORMED', ['R-TABLE-5']);
    bad('put of an entry with a validity array of 3 elements', ['Malformed', 'FixedArray'], s1,
      deltaWithRawOps(delta2, put(new Map([...resident, [8, [1, 2, 3]]]))), 'MALFORMED', ['R-SCHEMA-4']);
  }
  // Item 11: a snapshot's missing parent is found at step 6, after trust, signature, lock and version.
  {
    const orphanTable = { ...baseTable(3), entries: new Map([...baseTable(3).entries].filter(([id]) => id !== 1)) };
    const orphan = snapshotOf(orphanTable, { version: 2 });
    bad('snapshot whose guest names a missing parent, correctly signed: INVALID_OP at step 6', ['InvalidOp', 'Snapshot'], s1, orphan, 'INVALID_OP', ['R-TABLE-3']);
    const sig = orphan.head.signature.slice();
    sig[5] = (sig[5] as number) ^ 0x01;
    bad('snapshot whose guest names a missing parent, under a bad signature: BAD_SIGNATURE (the parent is not checked at decode)', ['BadSignature', 'Snapshot', 'Order'], s1,
      { ...orphan, head: { ...orphan.head, signature: sig } }, 'BAD_SIGNATURE', ['R-TABLE-3']);
    bad('snapshot whose guest names a missing parent, at a version the lock already passed: ROLLBACK', ['Rollback', 'Snapshot', 'Order'], s2,
      snapshotOf(orphanTable, { version: 2 }), 'ROLLBACK', ['R-TABLE-3']);
  }
  // Processing: accepted updates and the state they leave (newestIssuedAt, lease anchor, certs held).
  {
    const t3 = applyOps(baseTable(1), [{ op: 'remove', credId: 3 }]);
    ok('snapshot v3 onto a lock that already holds a table (v2): the table is replaced whole', ['Valid', 'Snapshot'], s2, snapshotOf(t3, { version: 3 }, []), 3, ['R-UPD-5']);
    ok('snapshot v5 carrying cert serial 2 onto a lock at v2 holding serial 1: serial 1 retired', ['Valid', 'Snapshot', 'Rotation'], s2,
      snapshotOf(t3, { version: 5, signer: KEYS.online2 }, [CERT2]), 5, ['R-UPD-5']);
    const guestOfGuest: Op[] = [
      { op: 'put', entry: { credId: 50, kind: 'phone', holder: 'guest', secret: KEYS.phoneStaff.publicKey, parent: 1, flags: 0 } },
      { op: 'put', entry: { credId: 51, kind: 'phone', holder: 'guest', secret: KEYS.phoneStaff.publicKey, parent: 50, flags: 0 } },
      { op: 'remove', credId: 1 },
    ];
    ok('cascade through a guest added by the same delta: put guest 50 (of 1), guest 51 (of 50), remove 1 -> 2, 50, 51 gone', ['Valid', 'Delta', 'Cascade'], s1,
      deltaFrom(s1, guestOfGuest, { version: 2 }), 2, ['R-UPD-5']);
    ok('put replaces an existing entry (credential 3 moves to Key 300)', ['Valid', 'Delta', 'Put'], s1,
      deltaFrom(s1, [{ op: 'put', entry: { ...staffDoorcode(3), keyId: 300 } }], { version: 2 }), 2, ['R-UPD-5']);
    ok('setKeyPolicy adds Key 200 with doorcodes off and a Saturday schedule', ['Valid', 'Delta', 'KeyPolicy'], s1,
      deltaFrom(s1, [{ op: 'setKeyPolicy', policy: { keyId: 200, doorcodesEnabled: false, schedule: [{ days: 0x20, start: 600, end: 720 }] } }], { version: 2 }), 2, ['R-UPD-5']);
    ok('setLockPolicy: lease 3600 s, 4 daily-code slots', ['Valid', 'Delta', 'LockPolicy'], s1,
      deltaFrom(s1, [{ op: 'setLockPolicy', policy: { wrongCodeLimit: 3, lockoutSeconds: 30, leaseSeconds: 3600, relockSeconds: 8, dailyCodeSlots: 4 } }], { version: 2 }), 2, ['R-UPD-5']);
    ok('removeKey 100: the resident (Key 100) and, by cascade, her guest go; the Key policy goes', ['Valid', 'Delta', 'RemoveKey', 'Cascade'], s1,
      deltaFrom(s1, [{ op: 'removeKey', keyId: 100 }], { version: 2 }), 2, ['R-UPD-5']);
    ok('removePartner of a partner holding nothing is fine', ['Valid', 'Delta', 'RemovePartner'], s1,
      deltaFrom(s1, [{ op: 'removePartner', partnerId: 99 }], { version: 2 }), 2, ['R-UPD-5']);
    ok('head issuedAt below the lock\'s newestIssuedAt: accepted, newestIssuedAt and the lease anchor do not move back', ['Valid', 'Delta', 'Anchors'], { ...s1, newestIssuedAt: EPOCH + 99_999, leaseAnchor: EPOCH + 99_999 },
      deltaFrom(s1, removePartner7(), { version: 2, issuedAt: EPOCH + 10 }), 2, ['R-UPD-4']);
    const many: Op[] = [];
    for (let k = 0; k < LIMITS.maxKeyPolicies - 1; k++) many.push({ op: 'setKeyPolicy', policy: { keyId: 10_000 + k, doorcodesEnabled: true } });
    ok(`delta leaving exactly ${LIMITS.maxKeyPolicies} Key policies (the limit)`, ['Valid', 'Delta', 'Boundary'], s1, deltaFrom(s1, many, { version: 2 }), 2, ['R-UPD-5', 'R-SCHEMA-2']);
    ok('fresh lock: delta from version 0 and the empty-table digest', ['Valid', 'Delta'], s0,
      deltaFrom(s0, [{ op: 'put', entry: staffDoorcode(3) }], { version: 1 }, [CERT1]), 1, ['R-UPD-5']);
  }
  void snap1;
}

const removePartner7 = (): Op[] => [{ op: 'removePartner', partnerId: PARTNER_ID }];

/** The delta2 message with its ops replaced by [[2, 1.5]] written by hand (float64 0xfb…). */
function patchOpsFloat(d: Delta): Uint8Array {
  const marker = deltaWithRawOps(d, [[2, 0x123456]]); // 1a00123456: 5 bytes we can find and swap
  const hex = Buffer.from(marker).toString('hex').replace('1a00123456', 'fb3ff8000000000000');
  if (hex.length === marker.length * 2) throw new Error('float patch marker not found');
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** The message as a lock decodes it, or undefined when the lock refuses the bytes (ProtocolError). */
export function decodeIfAccepted(bytes: Uint8Array): Message | undefined {
  try {
    return decodeMessage(bytes);
  } catch (e) {
    if (e instanceof ProtocolError) return undefined;
    throw e;
  }
}
