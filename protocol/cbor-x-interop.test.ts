// Interop with cbor-x, the CBOR library a JavaScript phone app most likely uses.
//
// 1. Everything the project encodes (every message type, every vector) decodes in cbor-x to
//    the same values.
// 2. cbor-x configured deterministically (CBOR_X_LOCKSYNC_OPTIONS below, the README's
//    recipe) re-encodes those values to the same bytes, which the lock accepts.
// 3. What cbor-x emits without that care is refused with a named CborError (and, as a
//    message, MALFORMED naming it).
// 4. The measured cbor-x decoder behaviours that rule it out on the lock side.
// The interop table is printed at the end of the run (and kept in README.md and SPEC §2.4).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Decoder, Encoder } from 'cbor-x';
import { CborError, type CborErrorCode, compareIntKeys, decode, encode } from './cbor';
import { fromHex, toHex } from './crypto';
import { ProtocolError } from './errors';
import { decodeMessage, encodeMessage } from './messages';
import { messageSamples } from './vectors/message-samples';

const VECTORS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'vectors');

/** The deterministic cbor-x configuration (README "Speaking locksync from cbor-x"). */
const CBOR_X_LOCKSYNC_OPTIONS = {
  useRecords: false, // no record extension (tag 0xdfff + structure tags)
  mapsAsObjects: false, // decode maps to Map: integer keys stay integers
  tagUint8Array: false, // byte strings untagged (cbor-x tags typed arrays with tag 64 by default)
  variableMapSize: true, // preferred map headers for objects too (default is a 16-bit count)
} as const;

const xEncoder = new Encoder(CBOR_X_LOCKSYNC_OPTIONS);
const xDecoder = new Decoder({ mapsAsObjects: false });

/** A value the way an app on cbor-x holds it: integers beyond ±2^32 as BigInt, maps sorted. */
function forCborX(v: unknown): unknown {
  if (typeof v === 'number') return v >= 2 ** 32 || v < -(2 ** 32) ? BigInt(v) : v;
  if (typeof v === 'bigint') return v;
  if (v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return v.map(forCborX);
  if (v instanceof Map) {
    const keys = [...v.keys()].map(Number).sort(compareIntKeys);
    return new Map(keys.map((k) => [k, forCborX(v.get(k) ?? v.get(BigInt(k) as never))]));
  }
  return v;
}

/** Both libraries' values in one comparable shape (bytes as hex, maps as sorted pairs). */
function normal(v: unknown): unknown {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : `bigint:${v}`;
  if (v instanceof Uint8Array) return { bytes: toHex(v) };
  if (Array.isArray(v)) return v.map(normal);
  if (v instanceof Map) return { map: [...v.entries()].map(([k, x]) => [normal(k), normal(x)]).sort((a, b) => compareIntKeys(a[0] as number, b[0] as number)) };
  return v;
}

interface Sample {
  source: string;
  bytes: Uint8Array;
}

function vectorSamples(): Sample[] {
  const out: Sample[] = [];
  const add = (source: string, hex: unknown): void => {
    if (typeof hex !== 'string' || hex.length === 0) return;
    const bytes = fromHex(hex);
    try {
      decode(bytes); // only what the lock's decoder accepts is "something the project encodes"
    } catch {
      return;
    }
    out.push({ source, bytes });
  };
  const groups = (file: string): { type?: string; tests: Record<string, unknown>[] }[] =>
    (JSON.parse(fs.readFileSync(path.join(VECTORS, file), 'utf8')) as { testGroups: { type?: string; tests: Record<string, unknown>[] }[] }).testGroups;
  for (const g of groups('cbor-decoder.json')) for (const t of g.tests) if (t.result === 'valid') add(`cbor-decoder #${String(t.tcId)}`, t.input);
  for (const g of groups('messages.json')) for (const t of g.tests) add(`messages #${String(t.tcId)}`, t.msg);
  for (const g of groups('signatures.json')) for (const t of g.tests) add(`signatures #${String(t.tcId)}`, t.msg);
  for (const g of groups('table.json'))
    for (const t of g.tests) {
      add(`table #${String(t.tcId)} encoded`, t.encoded);
      add(`table #${String(t.tcId)} table`, t.table);
    }
  for (const g of groups('updates.json'))
    for (const t of g.tests) {
      add(`updates #${String(t.tcId)}`, t.msg);
      add(`updates #${String(t.tcId)} state.table`, (t.state as { table?: unknown } | undefined)?.table);
    }
  return out;
}

const samples: Sample[] = [
  ...messageSamples().map((s) => ({ source: `message ${s.message.type}: ${s.comment}`, bytes: encodeMessage(s.message) })),
  ...vectorSamples(),
];

type Row = { kind: string; cborX: string; lock: string };
const table: Row[] = [];
afterAll(() => {
  const w = Math.max(...table.map((r) => r.kind.length));
  const lines = table.map((r) => `${r.kind.padEnd(w)}  ${r.cborX.padEnd(44)}  ${r.lock}`);
  console.log(['cbor-x interop (kind | cbor-x output | lock decoder):', ...lines].join('\n'));
});

describe('what the project encodes, read by cbor-x', () => {
  it(`every message type and every CBOR vector (${samples.length} items) decodes in cbor-x to the same values`, () => {
    expect(samples.length).toBeGreaterThan(100);
    for (const s of samples) {
      expect(normal(xDecoder.decode(s.bytes)), s.source).toEqual(normal(decode(s.bytes)));
    }
    table.push({ kind: 'project messages and vectors', cborX: `decoded, same values (${samples.length} items)`, lock: 'accepted (they are the lock’s own)' });
  });
});

describe('cbor-x with the deterministic configuration', () => {
  it('re-encodes every decoded item to the same bytes, and the lock accepts them byte for byte', () => {
    for (const s of samples) {
      const bytes = xEncoder.encode(forCborX(xDecoder.decode(s.bytes)));
      expect(toHex(bytes), s.source).toBe(toHex(s.bytes));
      expect(toHex(encode(decode(bytes))), s.source).toBe(toHex(s.bytes));
    }
    table.push({ kind: 'deterministic config, sorted Map keys', cborX: `byte-identical (${samples.length} items)`, lock: 'accepted' });
  });

  it('a message an app builds from scratch is accepted as that message', () => {
    const request = new Map<number, unknown>([
      [0, 7],
      [1, 42],
    ]); // unlockRequest {credId 42}
    const bytes = xEncoder.encode(request);
    expect(decodeMessage(bytes)).toEqual({ type: 'unlockRequest', credId: 42 });
    expect(toHex(bytes)).toBe(toHex(encodeMessage({ type: 'unlockRequest', credId: 42 })));
  });
});

/** cbor-x output the lock must refuse, each with the error it must name. */
const REFUSED: { kind: string; make: () => Uint8Array; code: CborErrorCode }[] = [
  { kind: 'unsorted map keys (Map in insertion order)', make: () => xEncoder.encode(new Map([[1, 42], [0, 7]])), code: 'UNSORTED_KEYS' },
  { kind: 'wider integer (small BigInt: always 8 bytes)', make: () => xEncoder.encode(new Map<number, unknown>([[0, 7], [1, 42n]])), code: 'NON_PREFERRED' },
  { kind: 'wider map header (object, default variableMapSize)', make: () => new Encoder({ useRecords: false }).encode({ 0: 7 }), code: 'NON_PREFERRED' },
  { kind: 'integer ≥ 2^32 as a number (cbor-x writes float64)', make: () => xEncoder.encode(new Map([[0, 2 ** 32]])), code: 'FLOAT_NOT_ALLOWED' },
  { kind: 'non-integer number', make: () => xEncoder.encode(1.5), code: 'FLOAT_NOT_ALLOWED' },
  {
    kind: 'indefinite length (an iterable, e.g. a generator)',
    make: () =>
      xEncoder.encode(
        (function* () {
          yield 1;
        })(),
      ),
    code: 'INDEFINITE_LENGTH',
  },
  { kind: 'records (default useRecords for objects)', make: () => new Encoder().encode({ credId: 42 }), code: 'TAG_NOT_ALLOWED' },
  { kind: 'tagged byte string (default tagUint8Array)', make: () => new Encoder({ useRecords: false }).encode(new Uint8Array([1, 2])), code: 'TAG_NOT_ALLOWED' },
  { kind: 'Date (tag 1)', make: () => xEncoder.encode(new Date(0)), code: 'TAG_NOT_ALLOWED' },
  { kind: 'undefined (simple 23)', make: () => xEncoder.encode(undefined), code: 'SIMPLE_NOT_ALLOWED' },
  { kind: 'string map keys (plain object)', make: () => xEncoder.encode({ 0: 7 }), code: 'NON_INTEGER_KEY' },
];

describe("cbor-x's non-deterministic output is refused with the named error", () => {
  for (const r of REFUSED) {
    it(`${r.kind} → ${r.code}`, () => {
      const bytes = r.make();
      let code: string | undefined;
      try {
        decode(bytes);
      } catch (e) {
        if (!(e instanceof CborError)) throw e;
        code = e.code;
      }
      expect(code, toHex(bytes)).toBe(r.code);
      // As a message: MALFORMED, naming the CBOR refusal.
      let pe: ProtocolError | undefined;
      try {
        decodeMessage(bytes);
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        pe = e;
      }
      expect(pe?.reason).toBe('MALFORMED');
      expect(pe?.detail).toContain(r.code);
      table.push({ kind: r.kind, cborX: toHex(bytes).slice(0, 40), lock: `refused ${r.code}` });
    });
  }
});

describe('why the lock does not decode with cbor-x (measured)', () => {
  const laxCases: { kind: string; hex: string; cborX: (v: unknown) => boolean; code: CborErrorCode }[] = [
    { kind: 'non-preferred integer 0x1800', hex: '1800', cborX: (v) => v === 0, code: 'NON_PREFERRED' },
    { kind: 'unsorted keys {1:0, 0:0}', hex: 'a201000000', cborX: (v) => v instanceof Map && v.size === 2, code: 'UNSORTED_KEYS' },
    { kind: 'duplicate key {1:0, 1:1}: last wins', hex: 'a201000101', cborX: (v) => v instanceof Map && v.size === 1 && v.get(1) === 1, code: 'DUPLICATE_KEY' },
    { kind: 'indefinite-length array', hex: '9f0102ff', cborX: (v) => Array.isArray(v) && v.length === 2, code: 'INDEFINITE_LENGTH' },
    { kind: 'half-precision float 1.5', hex: 'f93e00', cborX: (v) => v === 1.5, code: 'FLOAT_NOT_ALLOWED' },
    { kind: 'tag 1 (epoch date)', hex: 'c11a00000000', cborX: (v) => v instanceof Date, code: 'TAG_NOT_ALLOWED' },
    { kind: 'invalid UTF-8 text: replaced, not refused', hex: '62c328', cborX: (v) => typeof v === 'string' && v.includes('\ufffd'), code: 'INVALID_UTF8' },
  ];
  for (const c of laxCases) {
    it(`cbor-x accepts ${c.kind}; the lock refuses it (${c.code})`, () => {
      expect(c.cborX(xDecoder.decode(fromHex(c.hex)))).toBe(true);
      expect(() => decode(fromHex(c.hex))).toThrow(expect.objectContaining({ code: c.code }));
      table.push({ kind: `lax decode: ${c.kind}`, cborX: 'accepted', lock: `refused ${c.code}` });
    });
  }

  it('a 100,000-deep nesting overflows the JS stack in cbor-x; the lock refuses it at depth 8 with no recursion', () => {
    const bomb = new Uint8Array(100_001).fill(0x81);
    bomb[100_000] = 0;
    let thrown: unknown;
    try {
      xDecoder.decode(bomb);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(RangeError); // "Maximum call stack size exceeded", not a typed refusal
    expect(() => decode(bomb)).toThrow(expect.objectContaining({ code: 'DEPTH_LIMIT' }));
    table.push({ kind: 'lax decode: 100,000-deep nesting', cborX: 'RangeError (stack overflow)', lock: 'refused DEPTH_LIMIT' });
  });
});

