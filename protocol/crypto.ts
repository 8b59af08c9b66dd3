// Ed25519 (RFC 8032; signing and verifying natively through node:crypto where the runtime has
// it, else and as the reference @noble/ed25519: protocol/ed25519-strict.ts), SHA-256 and
// HMAC-SHA-256 (likewise native where available, else and as the reference @noble/hashes:
// protocol/sha256.ts).
//
// Every signature covers  context || 0x00 || message-bytes  where `context` is an ASCII
// string naming the message type (SIGNING_CONTEXTS). A signature made for one purpose —
// a table head, a receipt, an unlock response — therefore never verifies as another,
// even if someone finds bytes that decode as both.

import * as ed from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha512';
import { signEd25519, verifyEd25519Strict } from './ed25519-strict';
import { hmacSha256, sha256 } from './sha256';

ed.etc.sha512Sync = (...m: Uint8Array[]) => sha512(ed.etc.concatBytes(...m));

export const SIGNING_CONTEXTS = {
  head: 'locksync/v1/table-head',
  keyCert: 'locksync/v1/key-cert',
  receipt: 'locksync/v1/receipt',
  time: 'locksync/v1/signed-time',
  unlock: 'locksync/v1/unlock-response',
  audit: 'locksync/v1/audit-export',
  floorReset: 'locksync/v1/floor-reset',
  auditAnchor: 'locksync/v1/audit-anchor',
} as const;
export type SigningContext = keyof typeof SIGNING_CONTEXTS;

const ascii = new TextEncoder();

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  return concatByteArrays(parts);
}

/** concatBytes for a list of parts, however long (a table's 10,000 entries: no argument spread). */
export function concatByteArrays(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** The exact bytes an Ed25519 signature covers. */
export function signatureInput(context: SigningContext, message: Uint8Array): Uint8Array {
  return concatBytes(ascii.encode(SIGNING_CONTEXTS[context]), new Uint8Array([0]), message);
}

/**
 * Work done by the primitives below since the module loaded: counters only (no timing, no
 * I/O). A device cost model (firmware-sim/device-profile.ts) reads their differences
 * around a lock's synchronous work to charge what that work costs on a real MCU. SHA-256
 * work is counted in 64-byte compression blocks, padding included (HMAC: both passes).
 */
export const cryptoWork = { verifies: 0, signs: 0, sha256Blocks: 0 };

/** SHA-256 compression blocks for a message of n bytes (0x80, then the 8-byte length). */
export function sha256BlocksFor(n: number): number {
  return Math.floor((n + 8) / 64) + 1;
}

export function sign(context: SigningContext, message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  cryptoWork.signs++;
  return signEd25519(signatureInput(context, message), secretKey);
}

/**
 * Strict verification (SPEC.md §3.3, protocol/ed25519-strict.ts): canonical S and point
 * encodings, no small-order A or R, cofactorless equation — never noble's ZIP-215 default,
 * under which a small-order key verifies one constant signature for every message.
 * Never throws: malformed keys or signatures simply do not verify.
 */
export function verify(context: SigningContext, message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
  cryptoWork.verifies++;
  return verifyEd25519Strict(signature, signatureInput(context, message), publicKey);
}

export function publicKeyOf(secretKey: Uint8Array): Uint8Array {
  return ed.getPublicKey(secretKey);
}

export function hash(data: Uint8Array): Uint8Array {
  cryptoWork.sha256Blocks += sha256BlocksFor(data.length);
  return sha256(data);
}

export function mac(key: Uint8Array, data: Uint8Array): Uint8Array {
  // HMAC with a key ≤ 64 bytes: inner pass over (64-byte pad || data), outer over (64 || 32).
  cryptoWork.sha256Blocks += sha256BlocksFor(64 + data.length) + sha256BlocksFor(96);
  return hmacSha256(key, data);
}

/** Key ids are the first 4 bytes of SHA-256 of the raw public key. */
export const KEY_ID_BYTES = 4;
export function keyIdOf(publicKey: Uint8Array): Uint8Array {
  return sha256(publicKey).slice(0, KEY_ID_BYTES);
}

export interface KeyPair {
  secretKey: Uint8Array;
  publicKey: Uint8Array;
  keyId: Uint8Array;
}

export function keyPairFromSeed(seed32: Uint8Array): KeyPair {
  if (seed32.length !== 32) throw new RangeError('Ed25519 secret keys are 32 bytes');
  const publicKey = ed.getPublicKey(seed32);
  return { secretKey: seed32.slice(), publicKey, keyId: keyIdOf(publicKey) };
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

export function fromHex(s: string): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(s)) throw new RangeError(`not a hex string: ${s.slice(0, 32)}`);
  return new Uint8Array(Buffer.from(s, 'hex'));
}
