import { describe, expect, it } from 'vitest';
import { isStrictEd25519PublicKey } from './ed25519-strict';
import { fromHex, keyPairFromSeed } from './crypto';

// The eight small-order points (canonical encodings) as listed with libsodium's
// small-order blocklist, and non-canonical encodings of valid y values.
const SMALL_ORDER = [
  '0100000000000000000000000000000000000000000000000000000000000000', // identity (order 1)
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // (0, -1), order 2
  '0000000000000000000000000000000000000000000000000000000000000000', // order 4
  '0000000000000000000000000000000000000000000000000000000000000080', // order 4 (other x)
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05', // order 8
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85', // order 8
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a', // order 8
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa', // order 8
];
const NON_CANONICAL = [
  '0100000000000000000000000000000000000000000000000000000000000080', // identity with the sign bit set ("-0")
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff', // (0, -1) with the sign bit set
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // y = p
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // y = p + 1 (≡ 1: the identity)
];

describe('isStrictEd25519PublicKey', () => {
  it('accepts RFC 8032 §7.1 public keys and generated keys', () => {
    for (const hex of [
      'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a', // TEST 1
      '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c', // TEST 2
      'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025', // TEST 3
    ])
      expect(isStrictEd25519PublicKey(fromHex(hex))).toBe(true);
    for (let i = 0; i < 16; i++) expect(isStrictEd25519PublicKey(keyPairFromSeed(new Uint8Array(32).fill(i + 1)).publicKey)).toBe(true);
  });
  it.each(SMALL_ORDER)('refuses small-order point %s', (hex) => expect(isStrictEd25519PublicKey(fromHex(hex))).toBe(false));
  it.each(NON_CANONICAL)('refuses non-canonical encoding %s', (hex) => expect(isStrictEd25519PublicKey(fromHex(hex))).toBe(false));
  it('refuses wrong lengths and points off the curve', () => {
    expect(isStrictEd25519PublicKey(new Uint8Array(31))).toBe(false);
    expect(isStrictEd25519PublicKey(new Uint8Array(33))).toBe(false);
    expect(isStrictEd25519PublicKey(fromHex('0200000000000000000000000000000000000000000000000000000000000000'))).toBe(false); // y = 2: no x
  });
});
