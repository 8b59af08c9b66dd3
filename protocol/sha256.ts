// SHA-256 (FIPS 180-4) and HMAC-SHA-256 (RFC 2104), natively through node:crypto (OpenSSL)
// where the runtime has it, else — and as the reference — @noble/hashes (pure JS).
//
// Both backends compute the same function, so they give byte-identical digests
// (sha256-backend.test.ts checks the FIPS vectors and seeded random inputs across block
// boundaries against each other). The native one is about 8× faster on a 440 kB snapshot
// (bench: `npx tsx bench/sha256.ts`), and hashing whole messages — a message id for every
// message sent, the lock's table digest — runs on the same event loop as the radio.
//
// The backend is chosen lazily on first use, as for Ed25519 (ed25519-strict.ts):
// process.getBuiltinModule (Node ≥ 20.16) rather than an import, so protocol/ still loads
// where node:crypto does not exist (a browser, an MCU JavaScript engine).

import { sha256 as nobleSha256 } from '@noble/hashes/sha256';
import { hmac as nobleHmac } from '@noble/hashes/hmac';
import { runtimeBuiltin } from './runtime';

/** What the native backend needs from node:crypto (a subset of its API). */
export interface NodeCryptoSha256 {
  createHash(algorithm: 'sha256'): NodeHashLike;
  createHmac(algorithm: 'sha256', key: Uint8Array): NodeHashLike;
}
interface NodeHashLike {
  update(data: Uint8Array): NodeHashLike;
  digest(): Uint8Array;
}

export type Sha256BackendName = 'native' | 'noble';

let chosen: NodeCryptoSha256 | null | undefined;

function nativeBackend(): NodeCryptoSha256 | null {
  if (chosen === undefined) {
    const mod = runtimeBuiltin<NodeCryptoSha256>('node:crypto');
    chosen = mod !== undefined && typeof mod.createHash === 'function' && typeof mod.createHmac === 'function' ? mod : null;
  }
  return chosen;
}

/** Force a backend: 'noble', 'native' (the runtime's node:crypto), or an injected module. */
export function setSha256Backend(backend: Sha256BackendName | NodeCryptoSha256): void {
  if (backend === 'noble') chosen = null;
  else if (backend === 'native') {
    chosen = undefined;
    if (nativeBackend() === null) throw new Error('node:crypto is not available in this runtime');
  } else chosen = backend;
}

/** The backend sha256 / hmacSha256 use (choosing it if not yet chosen). */
export function sha256Backend(): Sha256BackendName {
  return nativeBackend() === null ? 'noble' : 'native';
}

/** A plain Uint8Array copy: node's digest is a Buffer, whose slice() is a view, not a copy. */
function plain(b: Uint8Array): Uint8Array {
  return Object.getPrototypeOf(b) === Uint8Array.prototype ? b : new Uint8Array(b);
}

/** SHA-256 of `data` (32 bytes). */
export function sha256(data: Uint8Array): Uint8Array {
  const mod = nativeBackend();
  return mod === null ? nobleSha256(data) : plain(mod.createHash('sha256').update(data).digest());
}

/** HMAC-SHA-256 of `data` under `key` (32 bytes). */
export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  const mod = nativeBackend();
  return mod === null ? nobleHmac(nobleSha256, key, data) : plain(mod.createHmac('sha256', key).update(data).digest());
}

/** The reference implementations, whatever backend is chosen (tests compare against them). */
export const sha256Noble = (data: Uint8Array): Uint8Array => nobleSha256(data);
export const hmacSha256Noble = (key: Uint8Array, data: Uint8Array): Uint8Array => nobleHmac(nobleSha256, key, data);
