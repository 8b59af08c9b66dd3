// The native (node:crypto) strict verifier must give the same verdict as the noble
// reference on every input: the vectors, every small-order / non-canonical encoding as A
// and as R, S ≥ L, mixed-order keys, and seeded random tampering of honest signatures.

import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import * as ed from '@noble/ed25519';
import { ED25519_L, ed25519Backend, setEd25519Backend, signEd25519, smallOrderEncodings, verifyEd25519Strict, verifyEd25519StrictNoble } from './ed25519-strict';
import { fromHex, keyPairFromSeed, signatureInput, sign, verify } from './crypto';
import { SeededRandom } from './random';

type Vec = { publicKey: string; sig?: string; result: string; comment: string };
const load = (name: string): { testGroups: { type: string; msg?: string; tests: (Vec & { msg?: string; secretKey?: string })[] }[] } =>
  JSON.parse(readFileSync(new URL(`../fixtures/vectors/${name}`, import.meta.url), 'utf8'));

function nativeVerdict(sig: Uint8Array, msg: Uint8Array, pk: Uint8Array): boolean {
  setEd25519Backend('native');
  try {
    return verifyEd25519Strict(sig, msg, pk);
  } finally {
    setEd25519Backend('noble');
  }
}

/** Both verdicts, asserted equal; returns the shared verdict. */
function agree(sig: Uint8Array, msg: Uint8Array, pk: Uint8Array, what: string): boolean {
  const reference = verifyEd25519StrictNoble(sig, msg, pk);
  expect(nativeVerdict(sig, msg, pk), what).toBe(reference);
  return reference;
}

function le(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) (out[i] = Number(n & 0xffn), (n >>= 8n));
  return out;
}
function leToBig(b: Uint8Array): bigint {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i] as number);
  return n;
}

afterEach(() => setEd25519Backend('native'));

describe('Ed25519 backends: node:crypto (native) and @noble/ed25519 give identical strict verdicts', () => {
  it('this runtime has node:crypto, and it is the default choice', () => {
    setEd25519Backend('native');
    expect(ed25519Backend()).toBe('native');
    setEd25519Backend('noble');
    expect(ed25519Backend()).toBe('noble');
  });

  it('RFC 8032 §7.1 vectors: both accept, and refuse the signature over another message', () => {
    for (const g of load('rfc8032-ed25519.json').testGroups)
      for (const t of g.tests) {
        const pk = fromHex(t.publicKey);
        const sig = fromHex(t.sig as string);
        const msg = fromHex(t.msg as string);
        expect(agree(sig, msg, pk, t.comment)).toBe(true);
        expect(agree(sig, new Uint8Array([...msg, 0]), pk, `${t.comment} + 1 byte`)).toBe(false);
      }
  });

  it('ed25519-strict.json: every StrictVerify vector, same verdict as the vector on both backends', () => {
    let n = 0;
    for (const g of load('ed25519-strict.json').testGroups) {
      if (g.type !== 'StrictVerify') continue;
      for (const t of g.tests) {
        expect(agree(fromHex(t.sig as string), fromHex(g.msg as string), fromHex(t.publicKey), t.comment), t.comment).toBe(t.result === 'valid');
        n++;
      }
    }
    expect(n).toBeGreaterThan(20);
  });

  it('every small-order and non-canonical encoding as A and as R, with the constant and honest-looking S: both refuse', () => {
    const { canonical, nonCanonical } = smallOrderEncodings();
    const kp = keyPairFromSeed(new Uint8Array(32).fill(7));
    const msg = new TextEncoder().encode('adversarial');
    const honest = ed.sign(msg, kp.secretKey);
    let cases = 0;
    for (const enc of [...canonical, ...nonCanonical]) {
      for (const s of [new Uint8Array(32), honest.subarray(32)]) {
        const asR = new Uint8Array([...enc, ...s]);
        expect(agree(asR, msg, kp.publicKey, 'small-order R')).toBe(false);
        for (const r of [enc, honest.subarray(0, 32)]) expect(agree(new Uint8Array([...r, ...s]), msg, enc, 'small-order A')).toBe(false);
        cases += 3;
      }
    }
    expect(cases).toBe(14 * 6);
  });

  it('S + L (non-canonical S) is refused by both although the equation holds', () => {
    const kp = keyPairFromSeed(new Uint8Array(32).fill(9));
    const msg = signatureInput('unlock', new Uint8Array([1, 2, 3]));
    const sig = ed.sign(msg, kp.secretKey);
    expect(agree(sig, msg, kp.publicKey, 'honest')).toBe(true);
    const s = leToBig(sig.subarray(32)) + ED25519_L;
    expect(s < 1n << 256n).toBe(true);
    expect(agree(new Uint8Array([...sig.subarray(0, 32), ...le(s)]), msg, kp.publicKey, 'S + L')).toBe(false);
  });

  it('a mixed-order key (honest key + a torsion point) and R with a torsion component: same verdicts (cofactorless on both)', () => {
    const { canonical } = smallOrderEncodings();
    const kp = keyPairFromSeed(new Uint8Array(32).fill(3));
    const msg = new TextEncoder().encode('mixed');
    const sig = ed.sign(msg, kp.secretKey);
    for (const t of canonical) {
      const T = ed.Point.fromHex(t, false);
      const A = ed.Point.fromHex(kp.publicKey).add(T).toRawBytes();
      const R = ed.Point.fromHex(sig.subarray(0, 32)).add(T).toRawBytes();
      agree(sig, msg, A, 'mixed-order A');
      agree(new Uint8Array([...R, ...sig.subarray(32)]), msg, kp.publicKey, 'mixed-order R');
    }
  });

  it('seeded random tampering of honest signatures, keys and messages (600 cases): same verdicts', () => {
    const seed = 'ed25519-backend-tamper';
    const rng = new SeededRandom(seed);
    let accepted = 0;
    for (let i = 0; i < 600; i++) {
      const kp = keyPairFromSeed(rng.bytes(32));
      const msg = rng.bytes(1 + (i % 97));
      const sig = sign('unlock', msg, kp.secretKey);
      const input = signatureInput('unlock', msg);
      const s2 = sig.slice();
      const pk2 = kp.publicKey.slice();
      const m2 = input.slice();
      const what = i % 5;
      const at = (rng.bytes(1)[0] as number) % 32;
      const bit = 1 << ((rng.bytes(1)[0] as number) % 8);
      if (what === 1) s2[at] = (s2[at] as number) ^ bit; // R
      else if (what === 2) s2[32 + at] = (s2[32 + at] as number) ^ bit; // S
      else if (what === 3) pk2[at] = (pk2[at] as number) ^ bit; // A (may leave the curve)
      else if (what === 4) m2[at % m2.length] = (m2[at % m2.length] as number) ^ bit;
      const v = agree(s2, m2, pk2, `seed ${seed} case ${i} (${what})`);
      if (v) accepted++;
      if (what === 0) expect(v, `seed ${seed} case ${i}`).toBe(true);
    }
    expect(accepted).toBe(120);
  });

  it('crypto.verify with a context goes through the chosen backend (native by default) and honours contexts', () => {
    setEd25519Backend('native');
    const kp = keyPairFromSeed(new Uint8Array(32).fill(5));
    const sig = sign('unlock', new Uint8Array([4]), kp.secretKey);
    expect(verify('unlock', new Uint8Array([4]), sig, kp.publicKey)).toBe(true);
    expect(verify('receipt', new Uint8Array([4]), sig, kp.publicKey)).toBe(false);
  });

  it('signing: node:crypto gives the RFC 8032 §7.1 signatures and noble\'s bytes for seeded random keys and messages (Ed25519 is deterministic)', () => {
    try {
      setEd25519Backend('native');
      for (const g of load('rfc8032-ed25519.json').testGroups)
        for (const t of g.tests) expect(Buffer.from(signEd25519(fromHex(t.msg as string), fromHex(t.secretKey as string))).toString('hex'), t.comment).toBe(t.sig);
      const rng = new SeededRandom('ed25519-sign-backends');
      for (let i = 0; i < 200; i++) {
        const seed = rng.bytes(32);
        const msg = rng.bytes(rng.int(0, 300));
        const native = signEd25519(msg, seed);
        expect(Buffer.from(native).toString('hex'), `case ${i}`).toBe(Buffer.from(ed.sign(msg, seed)).toString('hex'));
      }
      // The same key again comes from the imported-key cache: still the same bytes.
      const seed = new Uint8Array(32).fill(9);
      expect(Buffer.from(signEd25519(new Uint8Array([1, 2]), seed))).toEqual(Buffer.from(ed.sign(new Uint8Array([1, 2]), seed)));
      expect(Buffer.from(signEd25519(new Uint8Array([1, 2]), seed))).toEqual(Buffer.from(ed.sign(new Uint8Array([1, 2]), seed)));
      // An injected module without signing falls back to noble: same bytes.
      setEd25519Backend({ createPublicKey: () => null, verify: () => false });
      expect(Buffer.from(signEd25519(new Uint8Array([3]), seed))).toEqual(Buffer.from(ed.sign(new Uint8Array([3]), seed)));
    } finally {
      setEd25519Backend('noble');
    }
  });
});
