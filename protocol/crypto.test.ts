import { describe, expect, it } from 'vitest';
import * as ed from '@noble/ed25519';
import { createHash } from 'node:crypto';
import rfc8032 from '../fixtures/vectors/rfc8032-ed25519.json';
import { SIGNING_CONTEXTS, type SigningContext, fromHex, keyIdOf, keyPairFromSeed, sign, signatureInput, toHex, verify } from './crypto';
import { deriveSeed32 } from './random';
import { ED25519_L, isStrictEd25519PublicKey, smallOrderEncodings } from './ed25519-strict';

describe('Ed25519: RFC 8032 §7.1 vectors (fixtures/vectors/rfc8032-ed25519.json)', () => {
  expect(rfc8032.source).toContain('rfc8032#section-7.1');
  for (const t of rfc8032.testGroups[0]?.tests ?? []) {
    it(`${t.comment}: public key, raw signature and verification reproduce the RFC`, () => {
      const sk = fromHex(t.secretKey);
      const msg = fromHex(t.msg);
      expect(toHex(keyPairFromSeed(sk).publicKey)).toBe(t.publicKey);
      expect(toHex(ed.sign(msg, sk))).toBe(t.sig);
      expect(ed.verify(fromHex(t.sig), msg, fromHex(t.publicKey))).toBe(true);
      const bad = fromHex(t.sig);
      bad[0] = (bad[0] as number) ^ 1;
      expect(ed.verify(bad, msg, fromHex(t.publicKey))).toBe(false);
    });
  }
  it('has all five §7.1 tests', () => {
    expect(rfc8032.testGroups[0]?.tests.map((t) => t.comment)).toEqual(['TEST 1', 'TEST 2', 'TEST 3', 'TEST 1024', 'TEST SHA(abc)']);
  });
});

describe('signing contexts', () => {
  const k = keyPairFromSeed(deriveSeed32('crypto-test', 'k'));
  const msg = fromHex('a3010203040506');
  const contexts = Object.keys(SIGNING_CONTEXTS) as SigningContext[];

  it('the signed bytes are ASCII context || 0x00 || message', () => {
    expect(toHex(signatureInput('head', msg))).toBe(toHex(new TextEncoder().encode('locksync/v1/table-head')) + '00' + 'a3010203040506');
    // and a context signature is a raw Ed25519 signature over exactly those bytes
    expect(toHex(sign('receipt', msg, k.secretKey))).toBe(toHex(ed.sign(signatureInput('receipt', msg), k.secretKey)));
  });

  it('context strings are distinct and none is a prefix of another', () => {
    const s = Object.values(SIGNING_CONTEXTS);
    expect(new Set(s).size).toBe(s.length);
    for (const a of s) for (const b of s) if (a !== b) expect(b.startsWith(a)).toBe(false);
  });

  for (const c of contexts) {
    it(`a "${c}" signature verifies only under "${c}"`, () => {
      const sig = sign(c, msg, k.secretKey);
      for (const other of contexts) expect(verify(other, msg, sig, k.publicKey)).toBe(other === c);
      expect(ed.verify(sig, msg, k.publicKey)).toBe(false); // nor as a context-free signature
    });
  }

  it('verify never throws on malformed keys or signatures', () => {
    const sig = sign('time', msg, k.secretKey);
    expect(verify('time', msg, sig.slice(0, 63), k.publicKey)).toBe(false);
    expect(verify('time', msg, sig, k.publicKey.slice(1))).toBe(false);
    expect(verify('time', msg, sig, new Uint8Array(32).fill(0xff))).toBe(false);
    expect(verify('time', msg, new Uint8Array(64).fill(0xff), k.publicKey)).toBe(false);
  });

  it('key ids are the first 4 bytes of SHA-256(public key)', () => {
    const pk = fromHex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
    expect(toHex(keyIdOf(pk))).toBe(createHash('sha256').update(pk).digest('hex').slice(0, 8));
    expect(k.keyId).toEqual(keyIdOf(k.publicKey));
  });
});

describe('strict verification (SPEC §3.3): what ZIP-215 leniency would let through', () => {
  const k = keyPairFromSeed(deriveSeed32('crypto-test', 'strict'));
  const msg = fromHex('a3010203040506');
  const { canonical, nonCanonical } = smallOrderEncodings();

  it('there are exactly 8 canonical small-order encodings and 6 non-canonical ones, all refused as keys', () => {
    expect(new Set(canonical.map(toHex)).size).toBe(8);
    expect(new Set(nonCanonical.map(toHex)).size).toBe(6);
    for (const p of [...canonical, ...nonCanonical]) expect(isStrictEd25519PublicKey(p), toHex(p)).toBe(false);
    expect(isStrictEd25519PublicKey(k.publicKey)).toBe(true);
  });

  it('a small-order key with R = identity and S = 0: noble\'s default accepts it for any message; verify() never does', () => {
    const identityR = new Uint8Array(64);
    identityR[0] = 1;
    for (const a of [...canonical, ...nonCanonical]) {
      for (const m of [msg, new Uint8Array([0]), signatureInput('unlock', msg)]) {
        expect(ed.verify(identityR, m, a)).toBe(true); // the hole, pinned: if noble changes, this tells us
        expect(verify('unlock', m, identityR, a)).toBe(false);
      }
    }
  });

  it('S + L is refused; an honest context signature still verifies', () => {
    const sig = sign('unlock', msg, k.secretKey);
    expect(verify('unlock', msg, sig, k.publicKey)).toBe(true);
    let s = 0n;
    for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i] as number);
    s += ED25519_L;
    const bad = sig.slice();
    for (let i = 32; i < 64; i++) (bad[i] = Number(s & 0xffn), (s >>= 8n));
    expect(verify('unlock', msg, bad, k.publicKey)).toBe(false);
  });

  it('every bit flip of a valid signature or key is refused', () => {
    const sig = sign('head', msg, k.secretKey);
    for (let bit = 0; bit < 512; bit += 7) {
      const b = sig.slice();
      b[bit >> 3] = (b[bit >> 3] as number) ^ (1 << (bit & 7));
      expect(verify('head', msg, b, k.publicKey)).toBe(false);
    }
    for (let bit = 0; bit < 256; bit += 5) {
      const pk = k.publicKey.slice();
      pk[bit >> 3] = (pk[bit >> 3] as number) ^ (1 << (bit & 7));
      expect(verify('head', msg, sig, pk)).toBe(false);
    }
  });
});
