// Valid and refused table updates over the fixed world (world.ts): the cases the update
// tests assert and the update vectors publish. Each case is a provisioned lock state plus
// the exact bytes of one delta or snapshot message, and what applying them must give.

import { encode } from '../cbor';
import { type ErrorName, ProtocolError } from '../errors';
import { MESSAGE_TYPES, encodeMessage, decodeMessage } from '../messages';
import { type Op, applyOps } from '../ops';
import { cmap } from '../schema';
import { type Entry, LIMITS } from '../table';
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
import { CERT1, CERT2, KEYS, LOCK_ID, OTHER_LOCK_ID, PARTNER_ID, STRANGER_CERT, baseTable, deltaFrom, partnerCredential, residentPhone, snapshotOf } from './world';

export interface UpdateCase {
  comment: string;
  flags: string[];
  state: TableState;
  message: Uint8Array;
  expected: { error: ErrorName } | { version: number };
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
  const ok = (comment: string, flags: string[], state: TableState, u: Update | Uint8Array, version: number): void => {
    cases.push({ comment, flags, state, message: u instanceof Uint8Array ? u : messageOf(u), expected: { version } });
  };
  const bad = (comment: string, flags: string[], state: TableState, u: Update | Uint8Array, error: ErrorName): void => {
    cases.push({ comment, flags, state, message: u instanceof Uint8Array ? u : messageOf(u), expected: { error } });
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
  }
  return cases;
}

/** The delta2 message with its ops replaced by [[2, 1.5]] written by hand (float64 0xfb…). */
function patchOpsFloat(d: Delta): Uint8Array {
  const marker = deltaWithRawOps(d, [[2, 0x123456]]); // 1a00123456: 5 bytes we can find and swap
  const hex = Buffer.from(marker).toString('hex').replace('1a00123456', 'fb3ff8000000000000');
  if (hex.length === marker.length * 2) throw new Error('float patch marker not found');
  return new Uint8Array(Buffer.from(hex, 'hex'));
}
