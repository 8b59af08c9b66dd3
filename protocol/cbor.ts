// Deterministic CBOR (RFC 8949 §4.2.1 "core deterministic encoding") restricted to the
// subset locksync needs, with a strict decoder for bytes that crossed the air.
//
// Subset: unsigned/negative integers (safe JS integers only), byte strings, UTF-8 text
// strings, definite arrays, definite maps with integer keys, false/true/null. No floats,
// no tags, no indefinite lengths, no undefined/simple values: a lock written in C needs
// none of them, and every feature left out is one less parser path to fuzz.
//
// The decoder is a single iterative pass (an explicit stack, no recursion) that enforces
// the limits *before* allocating anything: a length is checked against the bytes that
// remain, so a 5-byte header claiming a 4 GiB string costs nothing (cbor-x PR #141).

export type CborValue =
  | number
  | Uint8Array
  | string
  | boolean
  | null
  | CborValue[]
  | CborMap;

/** Maps have integer keys only. Encoding sorts them; insertion order never matters. */
export type CborMap = Map<number, CborValue>;

export type CborErrorCode =
  | 'TRUNCATED'
  | 'TRAILING_BYTES'
  | 'NON_PREFERRED'
  | 'INDEFINITE_LENGTH'
  | 'RESERVED_ADDITIONAL_INFO'
  | 'UNSORTED_KEYS'
  | 'DUPLICATE_KEY'
  | 'NON_INTEGER_KEY'
  | 'TAG_NOT_ALLOWED'
  | 'SIMPLE_NOT_ALLOWED'
  | 'FLOAT_NOT_ALLOWED'
  | 'INTEGER_RANGE'
  | 'INVALID_UTF8'
  | 'DEPTH_LIMIT'
  | 'ITEM_LIMIT'
  | 'SIZE_LIMIT'
  | 'STRING_LIMIT'
  | 'UNENCODABLE';

export class CborError extends Error {
  override readonly name = 'CborError';
  constructor(
    readonly code: CborErrorCode,
    readonly offset: number,
    detail: string,
  ) {
    super(`${code} at byte ${offset}: ${detail}`);
  }
}

export interface CborLimits {
  /** Whole input, bytes. */
  maxBytes: number;
  /** Nesting depth of arrays/maps (the top-level item is depth 1). */
  maxDepth: number;
  /** Data items in total, containers and keys included. */
  maxItems: number;
  /** One byte or text string, bytes. */
  maxStringBytes: number;
}

/** Default limits fit the largest legitimate message: a 20,000-entry snapshot. */
export const DEFAULT_LIMITS: Readonly<CborLimits> = Object.freeze({
  maxBytes: 2 * 1024 * 1024,
  maxDepth: 8,
  maxItems: 400_000,
  maxStringBytes: 4096,
});

// ---------------------------------------------------------------------------
// Encoder

class ByteWriter {
  private buf = new Uint8Array(256);
  length = 0;
  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
  byte(b: number): void {
    this.ensure(1);
    this.buf[this.length++] = b;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

/** Preferred (shortest) header for major type `major` and argument `n`. */
function writeHead(w: ByteWriter, major: number, n: number): void {
  const mt = major << 5;
  if (n < 24) w.byte(mt | n);
  else if (n < 0x100) {
    w.byte(mt | 24);
    w.byte(n);
  } else if (n < 0x10000) {
    w.byte(mt | 25);
    w.byte(n >>> 8);
    w.byte(n & 0xff);
  } else if (n < 0x100000000) {
    w.byte(mt | 26);
    w.byte((n >>> 24) & 0xff);
    w.byte((n >>> 16) & 0xff);
    w.byte((n >>> 8) & 0xff);
    w.byte(n & 0xff);
  } else {
    w.byte(mt | 27);
    const hi = Math.floor(n / 0x100000000);
    const lo = n >>> 0;
    for (const v of [hi, lo]) {
      w.byte((v >>> 24) & 0xff);
      w.byte((v >>> 16) & 0xff);
      w.byte((v >>> 8) & 0xff);
      w.byte(v & 0xff);
    }
  }
}

const textEncoder = new TextEncoder();
// ignoreBOM: a leading U+FEFF is content, not a byte-order mark to strip — stripping it
// would make an accepted text string re-encode to different bytes.
const textDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
// A lone UTF-16 surrogate has no UTF-8 form; TextEncoder would silently write U+FFFD.
const LONE_SURROGATE = /\p{Cs}/u;

function encodeInto(w: ByteWriter, v: CborValue, depth: number): void {
  if (depth > 64) throw new CborError('UNENCODABLE', w.length, 'nesting too deep to encode');
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new CborError('UNENCODABLE', w.length, `not a safe integer: ${v}`);
    if (v >= 0) writeHead(w, 0, v);
    else writeHead(w, 1, -1 - v);
  } else if (v instanceof Uint8Array) {
    writeHead(w, 2, v.length);
    w.bytes(v);
  } else if (typeof v === 'string') {
    if (LONE_SURROGATE.test(v)) throw new CborError('UNENCODABLE', w.length, 'text contains a lone UTF-16 surrogate');
    const b = textEncoder.encode(v);
    writeHead(w, 3, b.length);
    w.bytes(b);
  } else if (Array.isArray(v)) {
    writeHead(w, 4, v.length);
    for (const item of v) encodeInto(w, item, depth + 1);
  } else if (v instanceof Map) {
    // Deterministic order: bytewise order of the encoded keys. For integer keys this is
    // all non-negative keys ascending, then negative keys by descending value (-1, -2, …),
    // each group ordered by encoded length first — which numeric order already gives.
    const keys = [...v.keys()];
    for (const k of keys) {
      if (!Number.isSafeInteger(k)) throw new CborError('UNENCODABLE', w.length, `map key not an integer: ${k}`);
    }
    keys.sort(compareIntKeys);
    writeHead(w, 5, keys.length);
    for (const k of keys) {
      encodeInto(w, k, depth + 1);
      encodeInto(w, v.get(k) as CborValue, depth + 1);
    }
  } else if (v === false) w.byte(0xf4);
  else if (v === true) w.byte(0xf5);
  else if (v === null) w.byte(0xf6);
  else throw new CborError('UNENCODABLE', w.length, `unsupported value ${String(v)}`);
}

/** Bytewise order of the deterministic encodings of two integer keys. */
export function compareIntKeys(a: number, b: number): number {
  if (a >= 0 && b >= 0) return a - b;
  if (a < 0 && b < 0) return b - a; // -1 (0x20) sorts before -2 (0x21)
  return a >= 0 ? -1 : 1; // major type 0 sorts before major type 1
}

export function encode(v: CborValue): Uint8Array {
  const w = new ByteWriter();
  encodeInto(w, v, 0);
  return w.result();
}

// ---------------------------------------------------------------------------
// Strict decoder

interface Frame {
  kind: 'array' | 'map';
  remaining: number; // items (arrays) or key/value slots (maps, 2 per pair) still to read
  value: CborValue[] | CborMap;
  pendingKey: number | undefined;
  lastKeyBytes: Uint8Array | undefined; // encoded previous key, for the sort/duplicate check
  expectKey: boolean;
  start: number; // offset of the container's header
}

/**
 * Told of each array or map once it is complete, at nesting `depth` (0 for the root), with
 * the bytes it was decoded from (a view into the input). The decoder accepts only the
 * deterministic encoding, so those bytes are exactly what encode() gives for the value.
 */
export type ContainerListener = (value: CborValue[] | CborMap, bytes: Uint8Array, depth: number) => void;

/**
 * Decode exactly one deterministic-CBOR item from `input`, refusing anything the encoder
 * above would not have produced. Throws only CborError.
 */
export function decode(input: Uint8Array, limits: Partial<CborLimits> = {}, onContainer?: ContainerListener): CborValue {
  const d = new CborStreamDecoder(input.length, limits, onContainer);
  d.advance(input, input.length);
  return d.finish(input);
}

/** Thrown inside the decoder when the item at hand runs past the bytes held so far. */
const SUSPEND: unique symbol = Symbol('suspend');

/**
 * The same strict decoder, fed a message while it arrives: `advance(input, held)` decodes
 * every item whose bytes are all among the first `held` of `input` (a buffer of the
 * message's final `total` length, filled from the front, whose held bytes never change),
 * and stops before the first item that is not complete yet. `finish(input)` decodes the rest
 * once all `total` bytes are held. The outcome — value, container callbacks, or the
 * CborError — is the one decode() gives for the whole input, because the decoder reads
 * strictly from the front and every check depends only on bytes before the point it is
 * made, or on `total` (the size refusals, which therefore use it rather than `held`). A
 * receiver uses this to do the decoding while the link is still carrying the bytes.
 */
export class CborStreamDecoder {
  private readonly lim: CborLimits;
  private pos = 0;
  private items = 0;
  private readonly stack: Frame[] = [];
  private root: CborValue | undefined;
  private haveRoot = false;
  private input: Uint8Array = new Uint8Array(0);
  private held = 0;

  constructor(
    readonly total: number,
    limits: Partial<CborLimits> = {},
    private readonly onContainer?: ContainerListener,
  ) {
    this.lim = { ...DEFAULT_LIMITS, ...limits };
    if (total > this.lim.maxBytes) throw new CborError('SIZE_LIMIT', 0, `${total} > ${this.lim.maxBytes} bytes`);
    if (total === 0) throw new CborError('TRUNCATED', 0, 'empty input');
  }

  /** Bytes decoded so far (every item before this offset is complete). */
  get decodedBytes(): number {
    return this.pos;
  }

  /** Decode what the first `held` bytes of `input` allow. Throws only CborError. */
  advance(input: Uint8Array, held: number): void {
    if (input.length !== this.total) throw new RangeError(`input of ${input.length} bytes for a ${this.total}-byte item`);
    this.input = input;
    this.held = Math.min(held, this.total);
    while (true) {
      this.closeComplete();
      if (this.haveRoot) return;
      const start = this.pos;
      const items = this.items;
      try {
        this.item(start);
      } catch (e) {
        if (e !== SUSPEND) throw e;
        // Not all of this item's bytes are here yet: take it again from its start later.
        this.pos = start;
        this.items = items;
        return;
      }
    }
  }

  /** The decoded item, once all `total` bytes of `input` are held. Throws only CborError. */
  finish(input: Uint8Array): CborValue {
    this.advance(input, this.total);
    if (this.pos !== this.total) throw new CborError('TRAILING_BYTES', this.pos, `${this.total - this.pos} byte(s) after the item`);
    return this.root as CborValue;
  }

  private need(n: number, at: number): void {
    if (this.pos + n > this.total) throw new CborError('TRUNCATED', at, `need ${n} more byte(s)`);
    if (this.pos + n > this.held) throw SUSPEND;
  }

  /** Close every container that is complete. */
  private closeComplete(): void {
    const stack = this.stack;
    let top = stack[stack.length - 1];
    while (top !== undefined && top.remaining === 0) {
      stack.pop();
      this.onContainer?.(top.value, this.input.subarray(top.start, this.pos), stack.length);
      this.place(top.value, -1);
      top = stack[stack.length - 1];
    }
  }

  /** Read the argument of a header. A length or count (`isLength`) beyond 2^53 - 1 reads
   *  as +Infinity so the caller refuses it as too long rather than as an integer. */
  private readArgument(ai: number, at: number, isLength = false): number {
    const input = this.input;
    if (ai < 24) return ai;
    if (ai === 24) {
      this.need(1, at);
      const n = input[this.pos++] as number;
      if (n < 24) throw new CborError('NON_PREFERRED', at, `argument ${n} encoded in 1 extra byte`);
      return n;
    }
    if (ai === 25) {
      this.need(2, at);
      const pos = this.pos;
      const n = ((input[pos] as number) << 8) | (input[pos + 1] as number);
      this.pos += 2;
      if (n < 0x100) throw new CborError('NON_PREFERRED', at, `argument ${n} encoded in 2 extra bytes`);
      return n;
    }
    if (ai === 26) {
      this.need(4, at);
      const pos = this.pos;
      const n =
        (input[pos] as number) * 0x1000000 +
        (((input[pos + 1] as number) << 16) | ((input[pos + 2] as number) << 8) | (input[pos + 3] as number));
      this.pos += 4;
      if (n < 0x10000) throw new CborError('NON_PREFERRED', at, `argument ${n} encoded in 4 extra bytes`);
      return n;
    }
    if (ai === 27) {
      this.need(8, at);
      const pos = this.pos;
      const hi =
        (input[pos] as number) * 0x1000000 +
        (((input[pos + 1] as number) << 16) | ((input[pos + 2] as number) << 8) | (input[pos + 3] as number));
      const lo =
        (input[pos + 4] as number) * 0x1000000 +
        (((input[pos + 5] as number) << 16) | ((input[pos + 6] as number) << 8) | (input[pos + 7] as number));
      this.pos += 8;
      if (hi === 0) throw new CborError('NON_PREFERRED', at, `argument ${lo} encoded in 8 extra bytes`);
      if (hi >= 0x200000) {
        if (isLength) return Number.POSITIVE_INFINITY;
        throw new CborError('INTEGER_RANGE', at, 'integer beyond 2^53 - 1');
      }
      return hi * 0x100000000 + lo;
    }
    if (ai === 31) throw new CborError('INDEFINITE_LENGTH', at, 'indefinite-length items are not allowed');
    throw new CborError('RESERVED_ADDITIONAL_INFO', at, `additional information ${ai} is reserved`);
  }

  private place(v: CborValue, start: number): void {
    const top = this.stack[this.stack.length - 1];
    if (top === undefined) {
      this.root = v;
      this.haveRoot = true;
      return;
    }
    if (top.kind === 'array') {
      (top.value as CborValue[]).push(v);
      top.remaining--;
    } else if (top.expectKey) {
      if (typeof v !== 'number') throw new CborError('NON_INTEGER_KEY', start, 'map keys must be integers');
      const keyBytes = this.input.subarray(start, this.pos);
      if (top.lastKeyBytes !== undefined) {
        const c = compareBytes(top.lastKeyBytes, keyBytes);
        if (c === 0) throw new CborError('DUPLICATE_KEY', start, `duplicate map key ${v}`);
        if (c > 0) throw new CborError('UNSORTED_KEYS', start, `map key ${v} out of order`);
      }
      top.lastKeyBytes = keyBytes;
      top.pendingKey = v;
      top.expectKey = false;
      top.remaining--;
    } else {
      (top.value as CborMap).set(top.pendingKey as number, v);
      top.expectKey = true;
      top.remaining--;
    }
  }

  /** One item's header (and a string's bytes) at `start`; may throw SUSPEND before it changes anything. */
  private item(start: number): void {
    const input = this.input;
    const lim = this.lim;
    this.need(1, start);
    const ib = input[this.pos++] as number;
    const major = ib >> 5;
    const ai = ib & 0x1f;
    if (++this.items > lim.maxItems) throw new CborError('ITEM_LIMIT', start, `more than ${lim.maxItems} items`);
    const top = this.stack[this.stack.length - 1];
    const inKeyPosition = top !== undefined && top.kind === 'map' && top.expectKey;
    if (inKeyPosition && major !== 0 && major !== 1) {
      throw new CborError('NON_INTEGER_KEY', start, 'map keys must be integers');
    }
    switch (major) {
      case 0:
        this.place(this.readArgument(ai, start), start);
        break;
      case 1: {
        const n = this.readArgument(ai, start);
        if (n >= Number.MAX_SAFE_INTEGER) throw new CborError('INTEGER_RANGE', start, 'negative integer beyond -2^53');
        this.place(-1 - n, start);
        break;
      }
      case 2:
      case 3: {
        const len = this.readArgument(ai, start, true);
        if (len > lim.maxStringBytes) throw new CborError('STRING_LIMIT', start, `string of ${len} bytes > ${lim.maxStringBytes}`);
        this.need(len, start);
        const bytes = input.slice(this.pos, this.pos + len);
        this.pos += len;
        if (major === 2) this.place(bytes, start);
        else {
          let s: string;
          try {
            s = textDecoder.decode(bytes);
          } catch {
            throw new CborError('INVALID_UTF8', start, 'text string is not valid UTF-8');
          }
          this.place(s, start);
        }
        break;
      }
      case 4:
      case 5: {
        const n = this.readArgument(ai, start, true);
        const slots = major === 4 ? n : n * 2;
        // Every slot needs at least one byte: refuse impossible counts before allocating.
        if (slots > this.total - this.pos) throw new CborError('TRUNCATED', start, `${slots} items cannot fit in ${this.total - this.pos} bytes`);
        if (this.stack.length + 1 > lim.maxDepth) throw new CborError('DEPTH_LIMIT', start, `nesting deeper than ${lim.maxDepth}`);
        this.stack.push({
          kind: major === 4 ? 'array' : 'map',
          remaining: slots,
          value: major === 4 ? [] : new Map(),
          pendingKey: undefined,
          lastKeyBytes: undefined,
          expectKey: true,
          start,
        });
        break;
      }
      case 6:
        throw new CborError('TAG_NOT_ALLOWED', start, 'tags are not part of the locksync profile');
      default: {
        // major 7
        if (ai === 20) this.place(false, start);
        else if (ai === 21) this.place(true, start);
        else if (ai === 22) this.place(null, start);
        else if (ai >= 25 && ai <= 27) throw new CborError('FLOAT_NOT_ALLOWED', start, 'floating-point values are not allowed');
        else if (ai === 31) throw new CborError('INDEFINITE_LENGTH', start, 'unexpected break');
        else if (ai >= 28) throw new CborError('RESERVED_ADDITIONAL_INFO', start, `additional information ${ai} is reserved`);
        else throw new CborError('SIMPLE_NOT_ALLOWED', start, `simple value ${ai === 24 ? 'extended' : ai} is not allowed`);
      }
    }
  }
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && compareBytes(a, b) === 0;
}

/**
 * The header at `pos` read leniently, for code that only peeks at the shape of bytes the
 * strict decoder (or the lock) judges anyway: major type, argument, and where the header
 * ends. Any argument length is taken (no preferred-encoding check); undefined when the
 * bytes end first or the header is indefinite or reserved.
 */
export function peekHead(bytes: Uint8Array, pos: number): { major: number; arg: number; end: number } | undefined {
  if (pos >= bytes.length) return undefined;
  const ib = bytes[pos] as number;
  const major = ib >> 5;
  const ai = ib & 0x1f;
  if (ai < 24) return { major, arg: ai, end: pos + 1 };
  const size = ai === 24 ? 1 : ai === 25 ? 2 : ai === 26 ? 4 : ai === 27 ? 8 : 0;
  if (size === 0 || pos + 1 + size > bytes.length) return undefined;
  let arg = 0;
  for (let i = 1; i <= size; i++) arg = arg * 256 + (bytes[pos + i] as number);
  return { major, arg, end: pos + 1 + size };
}

/** The preferred header alone (major type + argument), for assembling encodings in parts. */
export function encodeHead(major: number, n: number): Uint8Array {
  const w = new ByteWriter();
  writeHead(w, major, n);
  return w.result();
}
