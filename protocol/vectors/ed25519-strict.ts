// Vectors for strict Ed25519 (SPEC.md §3.3): signatures a lenient (ZIP-215, cofactored)
// verifier accepts and a locksync verifier must refuse, and the public keys a lock or an
// authority must refuse to admit. Built from the world's fixed seeds, so they never change.

import * as ed from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha512';
import { keyPairFromSeed } from '../crypto';
import { ED25519_L, smallOrderEncodings, verifyEd25519Strict, weakEd25519EncodingReason, weakEd25519PublicKeyReason } from '../ed25519-strict';
import { deriveSeed32 } from '../random';
import { hex, vectorFile, type VectorFile, type VectorTest } from './shape';
import { WORLD_SEED } from './world';

type Point = InstanceType<typeof ed.Point>;

const MSG = new TextEncoder().encode('locksync strict Ed25519 vector');

function le(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) (out[i] = Number(n & 0xffn), (n >>= 8n));
  return out;
}
function fromLe(b: Uint8Array): bigint {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i] as number);
  return n;
}
function sig(r: Uint8Array, s: bigint): Uint8Array {
  const out = new Uint8Array(64);
  out.set(r, 0);
  out.set(le(s), 32);
  return out;
}
function challenge(r: Uint8Array, a: Uint8Array, m: Uint8Array): bigint {
  return fromLe(sha512(new Uint8Array([...r, ...a, ...m]))) % ED25519_L;
}
function encode(p: Point): Uint8Array {
  const { x, y } = p.toAffine();
  const out = le(y);
  if ((x & 1n) === 1n) out[31] = (out[31] as number) | 0x80;
  return out;
}

export function ed25519StrictVectors(): VectorFile {
  const signer = keyPairFromSeed(deriveSeed32(WORLD_SEED, 'strict-signer'));
  const ext = ed.utils.getExtendedPublicKey(signer.secretKey);
  const a = ext.scalar;
  const A = signer.publicKey;
  const { canonical, nonCanonical } = smallOrderEncodings();
  const order8 = canonical.find((c) => {
    const p = ed.Point.fromBytes(c, false);
    return !p.double().double().is0();
  }) as Uint8Array;
  const T8 = ed.Point.fromBytes(order8, false);
  const r = 0x1234_5678_9abc_def0_1122_3344_5566_7788n; // a fixed nonce scalar: these are vectors, not signatures in use

  const verifyTests: VectorTest[] = [];
  const v = (comment: string, flags: string[], publicKey: Uint8Array, signature: Uint8Array): void => {
    const strict = verifyEd25519Strict(signature, MSG, publicKey);
    let zip215 = false;
    try {
      zip215 = ed.verify(signature, MSG, publicKey);
    } catch {
      zip215 = false;
    }
    const expectValid = flags.includes('Valid');
    if (strict !== expectValid) throw new Error(`strict vector "${comment}": strict verifier says ${strict}`);
    verifyTests.push({ tcId: 0, comment, flags, result: strict ? 'valid' : 'invalid', publicKey: hex(publicKey), sig: hex(signature), zip215Accepts: zip215, requirements: ['R-SIG-1'] });
  };

  const honest = ed.sign(MSG, signer.secretKey);
  v('honest signature', ['Valid'], A, honest);
  v('S + L (non-canonical S)', ['NonCanonicalS'], A, sig(honest.subarray(0, 32), fromLe(honest.subarray(32)) + ED25519_L));
  {
    const s = fromLe(honest.subarray(32)) + ((1n << 256n) - 1n - fromLe(honest.subarray(32))) / ED25519_L * ED25519_L;
    v('S + n·L, the largest such below 2^256', ['NonCanonicalS'], A, sig(honest.subarray(0, 32), s));
  }
  const identity = canonical.find((c) => c[0] === 1 && c.subarray(1).every((b) => b === 0)) as Uint8Array;
  for (const so of canonical)
    v(`small-order A ${hex(so).slice(0, 8)}…, R = identity, S = 0 (verifies every message under ZIP-215)`, ['SmallOrderA'], so, sig(identity, 0n));
  for (const so of nonCanonical)
    v(`non-canonical small-order A ${hex(so).slice(0, 8)}…${hex(so).slice(-2)}, R = identity, S = 0`, ['SmallOrderA', 'NonCanonicalA'], so, sig(identity, 0n));
  for (const so of canonical) {
    // S = k·a makes [S]B − [k]A the identity: with R = identity the cofactorless equation
    // itself holds, so only the small-order-R rule refuses it.
    const k = challenge(so, A, MSG);
    v(`small-order R ${hex(so).slice(0, 8)}…, S = k·a`, ['SmallOrderR'], A, sig(so, (k * a) % ED25519_L));
  }
  for (const so of nonCanonical) {
    const k = challenge(so, A, MSG);
    v(`non-canonical small-order R ${hex(so).slice(0, 8)}…${hex(so).slice(-2)}, S = k·a`, ['SmallOrderR', 'NonCanonicalR'], A, sig(so, (k * a) % ED25519_L));
  }
  {
    // R' = [r]B + T8: a cofactored verifier ignores the torsion part, cofactorless does not.
    const R = encode(ed.Point.BASE.multiply(r).add(T8));
    const k = challenge(R, A, MSG);
    v('mixed-order R = [r]B + T (order-8 torsion), S = r + k·a', ['MixedOrderR'], A, sig(R, (r + k * a) % ED25519_L));
  }
  {
    const R = encode(ed.Point.BASE.multiply(r));
    const k = challenge(R, A, MSG);
    v('[r]B, S = r + k·a: a correct signature built from the scalar', ['Valid'], A, sig(R, (r + k * a) % ED25519_L));
  }

  const keyTests: VectorTest[] = [];
  const k = (comment: string, flags: string[], pk: Uint8Array): void => {
    const reason = weakEd25519PublicKeyReason(pk);
    const want = flags.includes('Valid') ? null : flags[0];
    const flagReason: Record<string, string> = { SmallOrder: 'SMALL_ORDER', NonCanonical: 'NON_CANONICAL', NotOnCurve: 'NOT_ON_CURVE', MixedOrder: 'MIXED_ORDER', Length: 'BAD_LENGTH' };
    if ((reason ?? null) !== (want === null || want === undefined ? null : flagReason[want])) throw new Error(`key vector "${comment}": ${reason}`);
    const t: VectorTest = { tcId: 0, comment, flags, result: reason === null ? 'valid' : 'invalid', publicKey: hex(pk), requirements: ['R-SIG-2'] };
    if (reason !== null) t.expectedReason = reason;
    if (reason !== null) t.lockRefuses = weakEd25519EncodingReason(pk) !== null;
    keyTests.push(t);
  };
  for (const label of ['phone:resident', 'phone:guest', 'strict-signer']) k(`key of seed "${label}"`, ['Valid'], keyPairFromSeed(deriveSeed32(WORLD_SEED, label)).publicKey);
  for (const so of canonical) k(`small-order point ${hex(so)}`, ['SmallOrder'], so);
  for (const so of nonCanonical) k(`non-canonical encoding of a small-order point ${hex(so)}`, ['NonCanonical'], so);
  {
    // y in [p, 2^255): the second encoding of a point with y < 19 that is not of small order.
    for (let y = 2n; y < 19n; y++) {
      const enc = le(y + ed.CURVE.p);
      try {
        const p = ed.Point.fromBytes(le(y), false);
        if (p.isSmallOrder()) continue;
      } catch {
        continue;
      }
      k(`non-canonical encoding (y = p + ${y}) of a point of large order`, ['NonCanonical'], enc);
      break;
    }
  }
  {
    for (let y = 2n; ; y++) {
      try {
        ed.Point.fromBytes(le(y), false);
      } catch {
        k(`y = ${y}: no x satisfies the curve equation`, ['NotOnCurve'], le(y));
        break;
      }
    }
  }
  k('mixed-order key A + T (honest key plus an order-8 torsion point)', ['MixedOrder'], encode(ed.Point.fromBytes(A, false).add(T8)));
  k('31-byte key', ['Length'], A.subarray(0, 31));

  return vectorFile(
    'locksync-ed25519-strict',
    [
      'Strict Ed25519 verification and public-key admission (SPEC.md §3.3). msg (group field) is the ASCII string "locksync strict Ed25519 vector".',
      'StrictVerify: result says whether a locksync verifier accepts sig over msg under publicKey (no signing context: raw RFC 8032).',
      'zip215Accepts records what a lenient ZIP-215 verifier (@noble/ed25519 v2 default) says: every invalid test it accepts is a leniency locksync refuses.',
      'PublicKeyStrict: valid keys may be enrolled; invalid ones are refused with expectedReason. lockRefuses: the lock\'s table check on the bytes (SPEC.md §3.3: y < p, no small-order encoding) also refuses it; a key that is no curve point passes it and never verifies.',
      `Keys derive from seed "${WORLD_SEED}"; test keys only.`,
    ],
    {
      Valid: 'accepted', NonCanonicalS: 'S >= L', SmallOrderA: 'public key of small order', NonCanonicalA: 'public key encoding not canonical',
      SmallOrderR: 'R of small order', NonCanonicalR: 'R encoding not canonical', MixedOrderR: 'R with a torsion component (cofactored verifiers accept)',
      SmallOrder: 'key of small order', NonCanonical: 'encoding with y >= p or x = 0 with the sign bit', NotOnCurve: 'not a curve point',
      MixedOrder: 'key outside the prime-order subgroup', Length: 'not 32 bytes',
    },
    [
      { type: 'StrictVerify', msg: hex(MSG), tests: verifyTests },
      { type: 'PublicKeyStrict', tests: keyTests },
    ],
  );
}
