import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { type CborValue, CborError, decode, encode, compareIntKeys } from './cbor';
import { fromHex, toHex } from './crypto';
import { REFUSAL_CASES, RFC8949_APPENDIX_A } from './vectors/cbor-cases';
import { FC_RUNS, FUZZ_PROPERTIES, propertyTimeout, toFcProperty } from './fuzz/properties';


function refusal(input: Uint8Array, limits = {}): CborError {
  try {
    decode(input, limits);
  } catch (e) {
    if (e instanceof CborError) return e;
    throw e;
  }
  throw new Error(`decoder accepted ${toHex(input).slice(0, 64)}`);
}

describe('strict decoder refusals (hand-written inputs)', () => {
  for (const c of REFUSAL_CASES) {
    it(`${c.code}: ${c.comment}`, () => {
      expect(refusal(fromHex(c.hex), c.limits ?? {}).code).toBe(c.code);
    });
  }

  it('accepts the boundaries next to each refusal', () => {
    expect(decode(fromHex('1818'))).toBe(24);
    expect(decode(fromHex('190100'))).toBe(256);
    expect(decode(fromHex('1a00010000'))).toBe(65536);
    expect(decode(fromHex('1b0000000100000000'))).toBe(2 ** 32);
    expect(decode(fromHex('1b001fffffffffffff'))).toBe(Number.MAX_SAFE_INTEGER);
    expect(decode(fromHex('3b001ffffffffffffe'))).toBe(Number.MIN_SAFE_INTEGER);
    expect(decode(fromHex('81'.repeat(7) + '00'))).toEqual([[[[[[[0]]]]]]]);
    expect(decode(fromHex('a2200021f6'))).toEqual(new Map([[-1, 0], [-2, null]]));
    expect(decode(fromHex('a201f62000'))).toEqual(new Map([[1, null], [-1, 0]]));
    expect(decode(fromHex('8401020304'), { maxItems: 5 })).toEqual([1, 2, 3, 4]);
    expect((decode(fromHex('591000' + '00'.repeat(4096))) as Uint8Array).length).toBe(4096);
  });

  it('keeps a leading U+FEFF in text (no BOM stripping), so it re-encodes identically', () => {
    const b = fromHex('63efbbbf');
    expect(decode(b)).toBe('\ufeff');
    expect(toHex(encode(decode(b)))).toBe('63efbbbf');
  });

  it('refuses a 100,000-deep nesting bomb at the depth limit, without recursion', () => {
    const bomb = new Uint8Array(100_000).fill(0x81);
    const e = refusal(bomb);
    expect(e.code).toBe('DEPTH_LIMIT');
    expect(e.offset).toBe(8);
    // With the depth limit lifted the iterative decoder still cannot overflow the JS stack.
    const deep = new Uint8Array(100_001).fill(0x81);
    deep[100_000] = 0x00;
    let v = decode(deep, { maxDepth: 200_000 });
    let depth = 0;
    while (Array.isArray(v)) (v = v[0] as CborValue), depth++;
    expect(depth).toBe(100_000);
    expect(refusal(bomb, { maxDepth: 200_000 }).code).toBe('TRUNCATED');
  });

  it('refuses a length bomb from its header, before allocating', () => {
    const bomb = fromHex('5b' + 'ff'.repeat(8) + '00'.repeat(16));
    expect(refusal(bomb).code).toBe('STRING_LIMIT');
    // A length within every limit is still checked against the bytes that remain.
    expect(refusal(fromHex('5b0000010000000000' + '00'.repeat(16)), { maxStringBytes: Number.MAX_SAFE_INTEGER }).code).toBe('TRUNCATED');
    expect(refusal(fromHex('9b' + 'ff'.repeat(8) + '00'), { maxItems: Number.MAX_SAFE_INTEGER }).code).toBe('TRUNCATED');
  });

  it('reports the offset of the offending item', () => {
    expect(refusal(fromHex('83010218')).offset).toBe(3);
    expect(refusal(fromHex('a2010203f90000')).offset).toBe(4);
  });
});

describe('encoder', () => {
  it('refuses what the profile cannot carry (R-CBOR-3: the encoder refuses, never alters)', () => {
    for (const v of [1.5, 2 ** 53, -(2 ** 53), Number.NaN, Infinity, undefined, 'a\ud800b', new Map([[0.5, 1]])]) {
      expect(() => encode(v as unknown as CborValue)).toThrow(CborError);
    }
  });

  it('sorts integer map keys in bytewise order of their encodings', () => {
    const m = new Map<number, CborValue>([[-300, 1], [24, 2], [-1, 3], [0, 4], [23, 5], [-24, 6], [-25, 7], [1000, 8]]);
    expect(toHex(encode(m))).toBe('a8' + '0004' + '1705' + '181802' + '1903e808' + '2003' + '3706' + '381807' + '39012b01');
  });

  it('compareIntKeys agrees with bytewise order of encodings', () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 40), max: 2 ** 40 }), fc.integer({ min: -(2 ** 40), max: 2 ** 40 }), (a, b) => {
        const ea = toHex(encode(a)), eb = toHex(encode(b));
        const bytewise = ea < eb ? -1 : ea > eb ? 1 : 0; // lowercase hex orders like the bytes
        expect(Math.sign(compareIntKeys(a, b))).toBe(Math.sign(bytewise));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('RFC 8949 Appendix A examples in the locksync subset', () => {
  for (const ex of RFC8949_APPENDIX_A) {
    it(`${ex.hex} = ${ex.comment}`, () => {
      expect(toHex(encode(decode(fromHex(ex.hex))))).toBe(ex.hex);
    });
  }
});

// ---------------------------------------------------------------------------------------
// Properties (defined in fuzz/properties.ts, shared with `npm run fuzz`)

describe('properties', () => {
  for (const p of FUZZ_PROPERTIES.filter((x) => x.group === 'cbor decoder')) {
    it(`${p.name} (${FC_RUNS} runs)`, () => {
      fc.assert(toFcProperty(p), { numRuns: FC_RUNS });
    }, propertyTimeout(FC_RUNS, p.msPerRunBudget));
  }
});
