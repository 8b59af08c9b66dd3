// Strict Ed25519 verification (SPEC.md §3.3) and public-key admission checks.
//
// @noble/ed25519 v2 verifies with `zip215: true` by default: it accepts point encodings
// with y ≥ p and "negative zero" (x = 0 with the sign bit set), small-order public keys and
// R values, and it uses the cofactored equation. Under those rules a public key of small
// order A (the identity, say) with R = identity and S = 0 verifies for every message, so a
// credential enrolled with such a key opens its doors for anyone. ZIP-215 suits consensus
// (every verifier must agree on edge cases); a lock needs the opposite: refuse every edge.
//
// The rules here are those of libsodium's crypto_sign_verify_detached, plus an exact
// encoding check on R:
//   1. signature 64 bytes, public key 32 bytes;
//   2. S (little-endian, bytes 32..63) < L;
//   3. A and R canonical: y < p, not x = 0 with the sign bit set (the bytes are exactly the
//      point's canonical encoding), on the curve;
//   4. A and R not of small order ([8]P ≠ identity);
//   5. the cofactorless equation, checked on encodings: encode([S]B − [k]A) = R bytes,
//      with k = SHA-512(R || A || M) mod L.
// Keys admitted into a credential table must in addition lie in the prime-order subgroup
// ([L]A = identity): an honestly generated key always does, so refusing the rest costs
// nobody anything and leaves no torsion component for malleability.

import * as ed from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha512';
import { runtimeBuiltin } from './runtime';

/** Field prime p = 2^255 − 19. */
export const ED25519_P = ed.CURVE.p;
/** Prime group order L = 2^252 + 27742317777372353535851937790883648493. */
export const ED25519_L = ed.CURVE.n;

type Point = InstanceType<typeof ed.Point>;

/** Why a public key is refused (null: it is a strict key). */
export type WeakKeyReason = 'BAD_LENGTH' | 'NON_CANONICAL' | 'NOT_ON_CURVE' | 'SMALL_ORDER' | 'MIXED_ORDER';

function leToBigInt(b: Uint8Array): bigint {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i] as number);
  return n;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= (a[i] as number) ^ (b[i] as number);
  return d === 0;
}

/** Decode a 32-byte point encoding, or say why it is not a canonical curve point. */
function decodeCanonical(enc: Uint8Array): Point | 'NON_CANONICAL' | 'NOT_ON_CURVE' {
  const y = leToBigInt(enc) & ((1n << 255n) - 1n);
  if (y >= ED25519_P) return 'NON_CANONICAL';
  let p: Point;
  try {
    p = ed.Point.fromBytes(enc, false);
  } catch {
    // y < p here, so noble refused either a y with no x (off the curve) or x = 0 with the
    // sign bit set (a second encoding of a point whose canonical one has the bit clear).
    return (enc[31] as number) & 0x80 && isXZero(enc) ? 'NON_CANONICAL' : 'NOT_ON_CURVE';
  }
  // Belt and braces: the bytes must be exactly the point's own encoding.
  if (!bytesEqual(encodePoint(p), enc)) return 'NON_CANONICAL';
  return p;
}

/** RFC 8032 §5.1.2 encoding; unlike noble's toBytes it also encodes the identity. */
function encodePoint(p: Point): Uint8Array {
  const { x, y } = p.toAffine();
  const out = bigIntToLe(y);
  if ((x & 1n) === 1n) out[31] = (out[31] as number) | 0x80;
  return out;
}

function isXZero(enc: Uint8Array): boolean {
  const clear = enc.slice();
  clear[31] = (clear[31] as number) & 0x7f;
  try {
    return ed.Point.fromBytes(clear, false).toAffine().x === 0n;
  } catch {
    return false;
  }
}

/**
 * Why `pk` may not be a credential or signing key, or null when it may: 32 bytes, a
 * canonical encoding of a curve point, not of small order, and (with `primeOrder`, the
 * default) in the prime-order subgroup. `primeOrder: false` is the cheaper check
 * (≈ 0.15 ms instead of ≈ 1 ms); the lock's table check is cheaper still (weakEd25519EncodingReason).
 */
export function weakEd25519PublicKeyReason(pk: Uint8Array, opts: { primeOrder?: boolean } = {}): WeakKeyReason | null {
  if (pk.length !== 32) return 'BAD_LENGTH';
  const p = decodeCanonical(pk);
  if (typeof p === 'string') return p;
  if (p.isSmallOrder()) return 'SMALL_ORDER';
  if (opts.primeOrder !== false && !p.isTorsionFree()) return 'MIXED_ORDER';
  return null;
}

/**
 * The lock's admission check for a phone key in a table (SPEC §3.3 key admission): on the
 * bytes alone, no point arithmetic. Refuses a length other than 32, y ≥ p (NON_CANONICAL),
 * and every encoding of a small-order point (SMALL_ORDER; x = 0 with the sign bit set only
 * occurs for y = ±1, both small order). Whether the bytes are a curve point at all is left to
 * unlock: a strict verifier (both backends) refuses every signature under bytes that are not
 * a point, so such a credential never opens. Decompressing each new key (a field square
 * root) was most of a lock's CPU on a 10,000-credential snapshot; this costs a hash look-up.
 */
export function weakEd25519EncodingReason(pk: Uint8Array): 'BAD_LENGTH' | 'NON_CANONICAL' | 'SMALL_ORDER' | null {
  if (pk.length !== 32) return 'BAD_LENGTH';
  if (!yBelowP(pk)) return 'NON_CANONICAL';
  if (smallOrderHex().has(hexOf(pk))) return 'SMALL_ORDER';
  return null;
}

/** True when `pk` is a strict Ed25519 public key (see weakEd25519PublicKeyReason). */
export function isStrictEd25519PublicKey(pk: Uint8Array): boolean {
  return weakEd25519PublicKeyReason(pk) === null;
}

/** Strict RFC 8032 verification (rules 1–5 above), on the chosen backend. Never throws. */
export function verifyEd25519Strict(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  const native = nativeBackend();
  return native !== null ? verifyStrictNative(native, signature, message, publicKey) : verifyEd25519StrictNoble(signature, message, publicKey);
}

/** Strict verification entirely in @noble/ed25519 (the reference; also where node:crypto is absent). */
export function verifyEd25519StrictNoble(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  try {
    const rBytes = signature.subarray(0, 32);
    const s = leToBigInt(signature.subarray(32, 64));
    if (s >= ED25519_L) return false;
    const A = decodeCanonical(publicKey);
    if (typeof A === 'string' || A.isSmallOrder()) return false;
    const R = decodeCanonical(rBytes);
    if (typeof R === 'string' || R.isSmallOrder()) return false;
    const k = leToBigInt(sha512(concat(rBytes, publicKey, message))) % ED25519_L;
    const sB = ed.Point.BASE.multiply(s, false);
    const kA = A.multiply(k, false);
    return bytesEqual(encodePoint(sB.add(kA.negate())), rBytes);
  } catch {
    return false;
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) (out.set(p, o), (o += p.length));
  return out;
}

/**
 * The eight points of small order, canonically encoded (identity, the point of order 2,
 * two of order 4, four of order 8), and the non-canonical encodings of small-order points
 * a lenient decoder also accepts (y + p where y + p < 2^255, and x = 0 with the sign bit).
 * Vectors and tests use them; a verifier must refuse every one as A or R.
 */
export function smallOrderEncodings(): { canonical: Uint8Array[]; nonCanonical: Uint8Array[] } {
  // Torsion points are the multiples of a generator T8 of the 8-torsion subgroup. Find one
  // as [L]P for a point P (a curve point times L leaves its torsion component).
  let t8: Point | undefined;
  for (let i = 2; t8 === undefined; i++) {
    const enc = new Uint8Array(32);
    enc[0] = i;
    let p: Point;
    try {
      p = ed.Point.fromBytes(enc, false);
    } catch {
      continue;
    }
    const t = p.multiply(ED25519_L - 1n, false).add(p);
    // t has order dividing 8; it generates the whole torsion subgroup when [4]t ≠ identity.
    if (!t.double().double().is0()) t8 = t;
  }
  const canonical: Uint8Array[] = [];
  let q: Point = ed.Point.ZERO;
  for (let i = 0; i < 8; i++) {
    canonical.push(encodePoint(q));
    q = q.add(t8);
  }
  canonical.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const nonCanonical: Uint8Array[] = [];
  for (const c of canonical) {
    const y = leToBigInt(c) & ((1n << 255n) - 1n);
    const sign = (c[31] as number) & 0x80;
    const xZero = decodeX(c) === 0n;
    if (y + ED25519_P < 1n << 255n) {
      const e = bigIntToLe(y + ED25519_P);
      e[31] = (e[31] as number) | sign;
      nonCanonical.push(e);
      if (xZero) nonCanonical.push(withSignBit(e));
    }
    if (xZero) nonCanonical.push(withSignBit(c));
  }
  return { canonical, nonCanonical };
}

function withSignBit(enc: Uint8Array): Uint8Array {
  const e = enc.slice();
  e[31] = (e[31] as number) | 0x80;
  return e;
}

function decodeX(enc: Uint8Array): bigint {
  return ed.Point.fromBytes(enc, false).toAffine().x;
}

function bigIntToLe(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Native backend (node:crypto, i.e. OpenSSL), about 20× faster than noble.
//
// OpenSSL's Ed25519 verify (crypto/ec/curve25519.c, ossl_ed25519_verify) checks S < L,
// decodes A (refusing a y with no x), and compares the encoding of [S]B − [k]A with the R
// bytes: rules 1, 2 and 5 above, cofactorless. It does not refuse a y ≥ p, the "x = 0 with
// the sign bit" encodings, or small-order A and R. Those are all byte patterns: a canonical
// y < p whose point has x = 0 is y = 1 or y = p − 1, both small order, and the small-order
// points are eight encodings. So the strict rules = these byte checks + OpenSSL's verify:
//   - A and R: y < p, and not one of the small-order encodings (canonical or not);
//   - a non-canonical R that survives that (y ≥ p) can never equal a computed encoding,
//     and an R off the curve likewise: OpenSSL's byte comparison refuses both.
// Verdicts are identical to verifyEd25519StrictNoble on every input (ed25519-backend.test.ts
// checks the vectors, the adversarial encodings and random tampering against each other).

/** What the strict checks need from node:crypto (a subset of its API). */
export interface NodeCryptoEd25519 {
  createPublicKey(key: { key: Buffer; format: 'der'; type: 'spki' }): unknown;
  verify(algorithm: null, data: Uint8Array, key: unknown, signature: Uint8Array): boolean;
  /** For signing (signEd25519); an injected module without them signs with noble. */
  createPrivateKey?(key: { key: Buffer; format: 'der'; type: 'pkcs8' }): unknown;
  sign?(algorithm: null, data: Uint8Array, key: unknown): Uint8Array;
}

export type Ed25519BackendName = 'native' | 'noble';

/** SPKI DER prefix of an Ed25519 public key (RFC 8410): SEQUENCE { AlgorithmIdentifier
 *  { 1.3.101.112 }, BIT STRING (32 bytes) }; the raw key follows. */
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
/** Imported keys, by raw key (a lock verifies the same few phones' keys over and over). */
const KEY_CACHE_MAX = 4096;
const keyCache = new Map<string, unknown>();
let chosen: NodeCryptoEd25519 | null | undefined;

/**
 * The backend is chosen lazily on first use: node:crypto when the runtime has it
 * (process.getBuiltinModule, Node ≥ 20.16; no import, so protocol/ loads anywhere), else
 * noble. setEd25519Backend overrides the choice (tests, and runtimes whose crypto module
 * is injected).
 */
function nativeBackend(): NodeCryptoEd25519 | null {
  if (chosen === undefined) {
    const mod = runtimeBuiltin<NodeCryptoEd25519>('node:crypto');
    chosen = mod !== undefined && typeof mod.verify === 'function' && typeof mod.createPublicKey === 'function' ? mod : null;
  }
  return chosen;
}

/** Force a backend: 'noble', 'native' (the runtime's node:crypto), or an injected module. */
export function setEd25519Backend(backend: Ed25519BackendName | NodeCryptoEd25519): void {
  keyCache.clear();
  privateKeyCache.clear();
  if (backend === 'noble') chosen = null;
  else if (backend === 'native') {
    chosen = undefined;
    if (nativeBackend() === null) throw new Error('node:crypto is not available in this runtime');
  } else chosen = backend;
}

/** PKCS#8 DER prefix of an Ed25519 private key (RFC 8410): the 32-byte seed follows. */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
/** Imported private keys, by seed (the authority signs with one online key all day). */
const privateKeyCache = new Map<string, unknown>();

/**
 * An Ed25519 signature (RFC 8032) with the chosen backend: node:crypto (OpenSSL) when
 * available, else noble. Ed25519 signing is deterministic, so both give the same bytes for
 * the same seed and message (ed25519-backend.test.ts asserts it); the native one is many
 * times faster, and the authority signs every table version, signed time and anchor.
 */
export function signEd25519(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  const mod = nativeBackend();
  if (mod === null || mod.createPrivateKey === undefined || mod.sign === undefined || secretKey.length !== 32) return ed.sign(message, secretKey);
  const id = hexOf(secretKey);
  let key = privateKeyCache.get(id);
  if (key === undefined) {
    key = mod.createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, secretKey]), format: 'der', type: 'pkcs8' });
    if (privateKeyCache.size >= KEY_CACHE_MAX) privateKeyCache.clear();
    privateKeyCache.set(id, key);
  }
  const sig = mod.sign(null, message, key);
  return new Uint8Array(sig.buffer, sig.byteOffset, sig.byteLength);
}

/** The backend verifyEd25519Strict uses (choosing it if not yet chosen). */
export function ed25519Backend(): Ed25519BackendName {
  return nativeBackend() === null ? 'noble' : 'native';
}

let smallOrderSet: Set<string> | undefined;
/** Every encoding (canonical or not) of a small-order point, as hex. */
function smallOrderHex(): Set<string> {
  if (smallOrderSet === undefined) {
    const { canonical, nonCanonical } = smallOrderEncodings();
    smallOrderSet = new Set([...canonical, ...nonCanonical].map(hexOf));
  }
  return smallOrderSet;
}

function hexOf(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** y (the low 255 bits, little-endian) < p = 2^255 − 19, compared on the bytes. */
function yBelowP(enc: Uint8Array): boolean {
  if (((enc[31] as number) & 0x7f) !== 0x7f) return true;
  for (let i = 30; i >= 1; i--) if (enc[i] !== 0xff) return true;
  return (enc[0] as number) < 0xed;
}

/** S < L, compared on the little-endian bytes (no bigint: this is the hot path). */
const L_BYTES = bigIntToLe(ED25519_L);
function sBelowL(s: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    const a = s[i] as number;
    const b = L_BYTES[i] as number;
    if (a !== b) return a < b;
  }
  return false;
}

function verifyStrictNative(native: NodeCryptoEd25519, signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  const r = signature.subarray(0, 32);
  if (!sBelowL(signature.subarray(32, 64))) return false;
  if (!yBelowP(publicKey) || !yBelowP(r)) return false;
  const weak = smallOrderHex();
  const pkHex = hexOf(publicKey);
  if (weak.has(pkHex) || weak.has(hexOf(r))) return false;
  try {
    let key = keyCache.get(pkHex);
    if (key === undefined) {
      key = native.createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, publicKey]), format: 'der', type: 'spki' });
      if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear();
      keyCache.set(pkHex, key);
    }
    return native.verify(null, message, key, signature);
  } catch {
    // A key OpenSSL cannot decode (no x for that y): not a curve point, so nothing verifies.
    return false;
  }
}
