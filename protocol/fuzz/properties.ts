// The decoder, message and framing fuzz properties, defined once: the unit tests run them
// at FC_RUNS (10,000 by default) and `npm run fuzz` runs them at a million each.
//
// Each property is a predicate over generated inputs that throws when something escapes —
// an error that is not the layer's typed error, or an accepted input that does not
// re-encode to the same bytes. Plain `Error`s, no test-runner assertions, so the fuzz
// runner can call the predicates outside vitest and count escapes instead of stopping.
import fc from 'fast-check';
import { type CborValue, CborError, decode, encode } from '../cbor';
import { toHex } from '../crypto';
import { ProtocolError } from '../errors';
import { FRAMING_ERROR_CODES, FrameReassembler, FrameSender, FramingError, frameKind, segmentMessage } from '../framing';
import { MESSAGE_TYPES, decodeMessage, encodeMessage } from '../messages';
import { deterministicBytes } from '../vectors/framing';
import { messageSamples } from '../vectors/message-samples';

/** Default property runs: `FC_RUNS` from the environment, else 10,000. */
export const FC_RUNS = Number(process.env.FC_RUNS ?? 10_000);

/**
 * A vitest timeout for a property test of `runs` runs: the runner's default 60 s, plus a
 * per-run budget. The budgets are 4–10× the per-run cost measured by `npm run fuzz` on a
 * 2-core machine shared with other test runs (figures in README.md, Tests), so a million runs
 * never meet the timeout while a hang still does.
 */
export function propertyTimeout(runs: number, msPerRun = 0.5): number {
  return Math.ceil(60_000 + runs * msPerRun);
}

export type FuzzGroup = 'cbor decoder' | 'messages' | 'framing';

export interface FuzzProperty {
  readonly group: FuzzGroup;
  readonly name: string;
  /** Upper bound of one run's cost for timeouts (ms), 4–10× what a loaded machine measured. */
  readonly msPerRunBudget: number;
  readonly arbitrary: fc.Arbitrary<readonly unknown[]>;
  /** Throws when an input escapes the property. */
  readonly check: (args: readonly unknown[]) => void;
}

/** The property as fast-check runs it (a throw or `false` is a counterexample). */
export function toFcProperty(p: FuzzProperty): fc.IPropertyWithHooks<[readonly unknown[]]> {
  return fc.property(p.arbitrary, (args) => {
    p.check(args);
  });
}

class Escape extends Error {
  override readonly name = 'Escape';
}

// ---------------------------------------------------------------------------------------
// CBOR decoder

const safeInt = fc.oneof(
  fc.integer({ min: -30, max: 30 }),
  fc.integer({ min: -70_000, max: 70_000 }),
  fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
);
const text = fc.string({ unit: 'binary', maxLength: 12 });

/** Any value of the locksync CBOR profile. */
export const cborValue: fc.Arbitrary<CborValue> = fc.letrec<{ value: CborValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    safeInt,
    fc.uint8Array({ maxLength: 24 }),
    text,
    fc.constantFrom(true, false, null),
    fc.array(tie('value'), { maxLength: 5 }),
    fc
      .uniqueArray(fc.tuple(safeInt, tie('value')), { maxLength: 5, selector: ([k]) => k })
      .map((pairs) => new Map(pairs) as CborValue),
  ),
})).value;

const LOOSE = { maxDepth: 64 };

function decodeOrCborError(b: Uint8Array): void {
  let v: CborValue;
  try {
    v = decode(b, LOOSE);
  } catch (e) {
    if (e instanceof CborError) return;
    throw new Escape(`decode threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
  }
  const again = toHex(encode(v));
  if (again !== toHex(b)) throw new Escape(`accepted ${toHex(b)} re-encodes as ${again}`);
}

function sameValue(a: CborValue, b: CborValue): boolean {
  return toHex(encode(a)) === toHex(encode(b)) && JSON.stringify(shape(a)) === JSON.stringify(shape(b));
}
/** A structural fingerprint that tells byte strings from arrays and maps from arrays. */
function shape(v: CborValue): unknown {
  if (v instanceof Uint8Array) return { bytes: toHex(v) };
  if (Array.isArray(v)) return v.map(shape);
  if (v instanceof Map) return { map: [...v.entries()].sort(([a], [b]) => a - b).map(([k, x]) => [k, shape(x)]) };
  return v;
}

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function mutate(bytes: Uint8Array, muts: readonly Mutation[]): Uint8Array {
  let b = Array.from(bytes);
  for (const m of muts) {
    const at = b.length === 0 ? 0 : m.at % (b.length + (m.kind === 'insert' ? 1 : 0));
    if (m.kind === 'flip' && b.length > 0) b[at] = (b[at] as number) ^ (1 << m.bit);
    else if (m.kind === 'truncate') b = b.slice(0, at);
    else if (m.kind === 'insert') b.splice(at, 0, m.byte);
    else if (m.kind === 'delete') b.splice(at, 1);
  }
  return Uint8Array.from(b);
}

const cborProperties: FuzzProperty[] = [
  {
    group: 'cbor decoder',
    name: 'encode/decode round trip re-encodes to the same bytes',
    msPerRunBudget: 1,
    arbitrary: fc.tuple(cborValue),
    check: ([v]) => {
      const b = encode(v as CborValue);
      const back = decode(b, LOOSE);
      if (!sameValue(back, v as CborValue) || toHex(encode(back)) !== toHex(b)) throw new Escape(`round trip changed ${toHex(b)}`);
    },
  },
  {
    group: 'cbor decoder',
    name: 'random bytes: only CborError, accepted input re-encodes identically',
    msPerRunBudget: 1,
    arbitrary: fc.tuple(fc.uint8Array({ maxLength: 48 })),
    check: ([b]) => decodeOrCborError(b as Uint8Array),
  },
  {
    group: 'cbor decoder',
    name: 'mutated valid encodings: only CborError, accepted input re-encodes identically',
    msPerRunBudget: 1,
    arbitrary: fc.tuple(cborValue, fc.array(mutation, { minLength: 1, maxLength: 3 })),
    check: ([v, muts]) => decodeOrCborError(mutate(encode(v as CborValue), muts as Mutation[])),
  },
];

// ---------------------------------------------------------------------------------------
// Messages

let encodedSamples: Uint8Array[] | undefined;
/** Every sample message (one per type and more), encoded; built on first use. */
function samples(): Uint8Array[] {
  encodedSamples ??= messageSamples().map((s) => encodeMessage(s.message));
  return encodedSamples;
}

function onlyProtocolError(b: Uint8Array): void {
  let again: string;
  try {
    again = toHex(encodeMessage(decodeMessage(b)));
  } catch (e) {
    if (e instanceof ProtocolError) return;
    throw new Escape(`decodeMessage threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
  }
  if (again !== toHex(b)) throw new Escape(`accepted message ${toHex(b)} re-encodes as ${again}`);
}

const messageHead = fc.constantFrom(...Object.values(MESSAGE_TYPES)).map((t) => [0xa2, 0x00, t, 0x01]);
const messageMutation = fc.tuple(fc.constantFrom('flip', 'cut', 'insert'), fc.nat(), fc.integer({ min: 0, max: 255 }));

const messageProperties: FuzzProperty[] = [
  {
    group: 'messages',
    name: 'random bytes: only ProtocolError, accepted message re-encodes identically',
    msPerRunBudget: 1,
    arbitrary: fc.tuple(fc.uint8Array({ maxLength: 64 })),
    check: ([b]) => onlyProtocolError(b as Uint8Array),
  },
  {
    group: 'messages',
    name: 'random bytes behind a valid message-type header',
    msPerRunBudget: 1,
    arbitrary: fc.tuple(messageHead, fc.uint8Array({ maxLength: 48 })),
    check: ([h, tail]) => onlyProtocolError(Uint8Array.from([...(h as number[]), ...(tail as Uint8Array)])),
  },
  {
    group: 'messages',
    name: 'mutated valid messages (bit flips, truncations, insertions)',
    msPerRunBudget: 2,
    arbitrary: fc.tuple(fc.nat(), fc.array(messageMutation, { minLength: 1, maxLength: 4 })),
    check: ([i, muts]) => {
      const all = samples();
      let b = Array.from(all[(i as number) % all.length] as Uint8Array);
      for (const [kind, at, x] of muts as [string, number, number][]) {
        const p = at % (b.length + 1);
        if (kind === 'flip' && p < b.length) b[p] = (b[p] as number) ^ (1 << (x & 7));
        else if (kind === 'cut') b = b.slice(0, p);
        else if (kind === 'insert') b.splice(p, 0, x);
      }
      onlyProtocolError(Uint8Array.from(b));
    },
  },
];

// ---------------------------------------------------------------------------------------
// Framing

const isTypedFramingError = (e: unknown): boolean => e instanceof FramingError && FRAMING_ERROR_CODES.includes(e.code);
const FRAMED = deterministicBytes(400, 13);
const VALID_FRAMES = segmentMessage(FRAMED, 23, { messageId: 3 });

function onlyFramingError(what: string, fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!isTypedFramingError(e)) throw new Escape(`${what} threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
  }
}

const framingProperties: FuzzProperty[] = [
  {
    group: 'framing',
    name: 'random frames into reassembler and sender: only FramingError',
    msPerRunBudget: 4,
    arbitrary: fc.tuple(fc.array(fc.uint8Array({ maxLength: 530 }), { maxLength: 8 }), fc.nat(VALID_FRAMES.length)),
    check: ([inputs, prefix]) => {
      const r = new FrameReassembler({ maxMessageBytes: 4096, window: 8 });
      for (const f of VALID_FRAMES.slice(0, prefix as number)) r.push(f); // sometimes mid-message
      const s = new FrameSender({ mtu: 23 });
      s.send(3, FRAMED);
      for (const input of inputs as Uint8Array[]) {
        onlyFramingError('reassembler.push', () => r.push(input));
        onlyFramingError('sender.onAck', () => s.onAck(input));
        onlyFramingError('frameKind', () => frameKind(input));
        s.nextFrames();
      }
    },
  },
  {
    group: 'framing',
    name: 'mutated valid frame streams: only FramingError',
    msPerRunBudget: 2,
    arbitrary: fc.tuple(
      fc.array(fc.tuple(fc.nat(), fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
      fc.array(fc.nat(), { maxLength: 3 }),
    ),
    check: ([edits, cuts]) => {
      const frames = VALID_FRAMES.map((f) => f.slice());
      for (const [fi, bi, v] of edits as [number, number, number][]) {
        const f = frames[fi % frames.length] as Uint8Array;
        f[bi % f.length] = v;
      }
      const stream = frames.map((f, i) => ((cuts as number[]).includes(i) ? f.subarray(0, (i * 7) % f.length) : f));
      const r = new FrameReassembler({ maxMessageBytes: 1000, window: 4 });
      for (const f of stream) onlyFramingError('reassembler.push', () => r.push(f));
    },
  },
];

/** Every fuzz property, in the order `npm run fuzz` runs them. */
export const FUZZ_PROPERTIES: readonly FuzzProperty[] = [...cborProperties, ...messageProperties, ...framingProperties];

export function fuzzProperty(group: FuzzGroup, index: number): FuzzProperty {
  const p = FUZZ_PROPERTIES.filter((x) => x.group === group)[index];
  if (p === undefined) throw new Error(`no fuzz property ${group}#${index}`);
  return p;
}
