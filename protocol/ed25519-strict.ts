// Strict Ed25519 public-key check for enrolment (SPEC §3.3): a key must be the canonical
// encoding of a curve point that is not of small order. A small-order key (the identity,
// or a point of order 2, 4 or 8) makes one constant signature verify for every message
// under cofactored or lenient verifiers — whoever holds the credential file's public key
// could open its doors. Non-canonical encodings (y ≥ p, or x = 0 with the sign bit set)
// are refused because two byte strings naming one key break "one key, one id".

import * as ed from '@noble/ed25519';

const P = 2n ** 255n - 19n;

/** True when `pk` is 32 bytes, canonically encoded, on the curve and not of small order. */
export function isStrictEd25519PublicKey(pk: Uint8Array): boolean {
  if (pk.length !== 32) return false;
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt((pk[i] as number) & (i === 31 ? 0x7f : 0xff));
  if (y >= P) return false;
  let point: ed.Point;
  try {
    point = ed.Point.fromHex(pk, false);
  } catch {
    return false; // not on the curve
  }
  const signBit = ((pk[31] as number) & 0x80) !== 0;
  if (signBit && point.toAffine().x === 0n) return false; // "-0": a second encoding of x = 0
  return !point.isSmallOrder();
}
