// SHA-256 and HMAC-SHA-256 backends: node:crypto (native) and @noble/hashes must give the
// same bytes for every input — the FIPS 180-4 / RFC 4231 vectors and seeded random inputs
// on every side of the 64-byte block and 56-byte padding boundaries — and the runtime
// without node:crypto must fall back to noble, with the same cryptoWork counts either way.

import { afterEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { cryptoWork, hash, mac, sha256BlocksFor, toHex } from './crypto';
import { type NodeCryptoSha256, hmacSha256, hmacSha256Noble, setSha256Backend, sha256, sha256Backend, sha256Noble } from './sha256';
import { SeededRandom } from './random';

afterEach(() => setSha256Backend('native'));

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Both backends' digest, asserted equal to each other; returns it as hex. */
function bothDigests(data: Uint8Array): string {
  setSha256Backend('native');
  const native = sha256(data);
  setSha256Backend('noble');
  const noble = sha256(data);
  expect(toHex(native), `${data.length} bytes`).toBe(toHex(noble));
  expect(toHex(noble)).toBe(toHex(sha256Noble(data)));
  return toHex(native);
}

function bothMacs(key: Uint8Array, data: Uint8Array): string {
  setSha256Backend('native');
  const native = hmacSha256(key, data);
  setSha256Backend('noble');
  const noble = hmacSha256(key, data);
  expect(toHex(native), `key ${key.length} bytes, data ${data.length} bytes`).toBe(toHex(noble));
  expect(toHex(noble)).toBe(toHex(hmacSha256Noble(key, data)));
  return toHex(native);
}

// Around the padding boundary (55/56 bytes fit one block or need two), the block size and
// its multiples, and a message the size of a large snapshot.
const SIZES = [0, 1, 2, 31, 32, 33, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4095, 4096, 4097, 65_536, 450_560, 1 << 20];

describe('SHA-256 backends: node:crypto (native) and @noble/hashes give identical digests', () => {
  it('this runtime has node:crypto, and it is the default choice', () => {
    setSha256Backend('native');
    expect(sha256Backend()).toBe('native');
    setSha256Backend('noble');
    expect(sha256Backend()).toBe('noble');
  });

  it('FIPS 180-4 examples: "abc", the empty string, and the two-block 448-bit message', () => {
    expect(bothDigests(ascii('abc'))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(bothDigests(new Uint8Array(0))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(bothDigests(ascii('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'))).toBe('248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1');
  });

  it('RFC 4231 HMAC-SHA-256 cases 1, 2 and 6 (a key longer than the block)', () => {
    expect(bothMacs(new Uint8Array(20).fill(0x0b), ascii('Hi There'))).toBe('b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7');
    expect(bothMacs(ascii('Jefe'), ascii('what do ya want for nothing?'))).toBe('5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
    expect(bothMacs(new Uint8Array(131).fill(0xaa), ascii('Test Using Larger Than Block-Size Key - Hash Key First'))).toBe(
      '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
    );
  });

  it('seeded random inputs of every boundary size, and views into a larger buffer, hash alike', () => {
    const seed = 'sha256-backend';
    const rng = new SeededRandom(seed);
    for (const n of SIZES) {
      const data = rng.bytes(n);
      bothDigests(data);
      // A view with a non-zero offset: the native path must hash only the view's bytes.
      const padded = new Uint8Array(n + 7);
      padded.set(data, 3);
      expect(bothDigests(padded.subarray(3, 3 + n)), `seed ${seed}, view of ${n} bytes`).toBe(toHex(sha256Noble(data)));
    }
    for (const keyLength of [0, 1, 16, 32, 63, 64, 65, 131]) {
      const key = rng.bytes(keyLength);
      for (const n of [0, 1, 55, 56, 64, 1000]) bothMacs(key, rng.bytes(n));
    }
  });

  it('digests are plain Uint8Arrays (slice copies, as callers expect), not node Buffers', () => {
    for (const backend of ['native', 'noble'] as const) {
      setSha256Backend(backend);
      for (const d of [sha256(ascii('abc')), hmacSha256(ascii('k'), ascii('abc'))]) {
        expect(Object.getPrototypeOf(d)).toBe(Uint8Array.prototype);
        const copy = d.slice(0, 4);
        copy[0] = (copy[0] as number) ^ 0xff;
        expect(copy[0]).not.toBe(d[0]);
      }
    }
  });

  it('cryptoWork counts the same blocks whichever backend hashes', () => {
    for (const backend of ['native', 'noble'] as const) {
      setSha256Backend(backend);
      const before = cryptoWork.sha256Blocks;
      hash(new Uint8Array(450_560));
      mac(new Uint8Array(32), new Uint8Array(100));
      expect(cryptoWork.sha256Blocks - before, backend).toBe(sha256BlocksFor(450_560) + sha256BlocksFor(164) + sha256BlocksFor(96));
    }
  });
});

describe('SHA-256 fallback: where node:crypto is absent, @noble/hashes hashes', () => {
  it('a runtime without process.getBuiltinModule gets noble, and hash()/mac() still give the FIPS digests', () => {
    const proc = globalThis.process as unknown as { getBuiltinModule?: unknown };
    const saved = proc.getBuiltinModule;
    proc.getBuiltinModule = undefined;
    try {
      expect(() => setSha256Backend('native')).toThrow(/node:crypto is not available/);
      expect(sha256Backend()).toBe('noble');
      expect(toHex(hash(ascii('abc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
      expect(toHex(mac(new Uint8Array(20).fill(0x0b), ascii('Hi There')))).toBe('b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7');
    } finally {
      proc.getBuiltinModule = saved;
    }
  });

  it('hash() and mac() go through the chosen backend: an injected module sees every call, noble sees none of it', () => {
    const calls: string[] = [];
    const spy: NodeCryptoSha256 = {
      createHash: (alg) => (calls.push('hash'), wrap(createHash(alg))),
      createHmac: (alg, key) => (calls.push('hmac'), wrap(createHash(alg).update(key))), // deliberately not an HMAC
    };
    setSha256Backend(spy);
    expect(toHex(hash(ascii('abc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    // The wrong "HMAC" proves mac() took the injected path rather than noble's.
    expect(toHex(mac(ascii('k'), ascii('abc')))).toBe(toHex(sha256Noble(ascii('kabc'))));
    expect(calls).toEqual(['hash', 'hmac']);
    setSha256Backend('noble');
    hash(ascii('abc'));
    mac(ascii('k'), ascii('abc'));
    expect(calls).toEqual(['hash', 'hmac']);
    expect(toHex(mac(ascii('k'), ascii('abc')))).toBe(toHex(hmacSha256Noble(ascii('k'), ascii('abc'))));
  });
});

function wrap(h: ReturnType<typeof createHash>): ReturnType<NodeCryptoSha256['createHash']> {
  return {
    update(data: Uint8Array) {
      h.update(data);
      return this;
    },
    digest: () => h.digest(),
  };
}
