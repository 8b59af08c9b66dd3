// Typed access to decoded CBOR maps. Every message decoder reads its fields through
// these helpers, so a wrong type, a missing field, an unknown key or a value out of range
// becomes one ProtocolError('MALFORMED' | 'OVER_LIMIT') naming the field — never a
// TypeError deep in the lock.

import type { CborMap, CborValue } from './cbor';
import { ProtocolError } from './errors';

export class MapReader {
  private readonly seen = new Set<number>();
  constructor(
    private readonly m: CborMap,
    private readonly what: string,
  ) {}

  static of(v: CborValue | undefined, what: string): MapReader {
    if (!(v instanceof Map)) throw new ProtocolError('MALFORMED', `${what}: expected a map`);
    return new MapReader(v, what);
  }

  private get(key: number, name: string, required: boolean): CborValue | undefined {
    this.seen.add(key);
    const v = this.m.get(key);
    if (v === undefined && required) throw new ProtocolError('MALFORMED', `${this.what}.${name} (key ${key}) is missing`);
    return v;
  }

  uint(key: number, name: string, max = Number.MAX_SAFE_INTEGER): number {
    return this.checkUint(this.get(key, name, true), name, max) as number;
  }
  optUint(key: number, name: string, max = Number.MAX_SAFE_INTEGER): number | undefined {
    return this.checkUint(this.get(key, name, false), name, max);
  }
  private checkUint(v: CborValue | undefined, name: string, max: number): number | undefined {
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || v < 0) throw new ProtocolError('MALFORMED', `${this.what}.${name}: expected an unsigned integer`);
    if (v > max) throw new ProtocolError('OVER_LIMIT', `${this.what}.${name}: ${v} > ${max}`);
    return v;
  }

  bytes(key: number, name: string, len?: { min?: number; max?: number; exact?: number }): Uint8Array {
    return this.checkBytes(this.get(key, name, true), name, len) as Uint8Array;
  }
  optBytes(key: number, name: string, len?: { min?: number; max?: number; exact?: number }): Uint8Array | undefined {
    return this.checkBytes(this.get(key, name, false), name, len);
  }
  private checkBytes(
    v: CborValue | undefined,
    name: string,
    len: { min?: number; max?: number; exact?: number } | undefined,
  ): Uint8Array | undefined {
    if (v === undefined) return undefined;
    if (!(v instanceof Uint8Array)) throw new ProtocolError('MALFORMED', `${this.what}.${name}: expected a byte string`);
    if (len?.exact !== undefined && v.length !== len.exact)
      throw new ProtocolError('MALFORMED', `${this.what}.${name}: expected ${len.exact} bytes, got ${v.length}`);
    if (len?.min !== undefined && v.length < len.min) throw new ProtocolError('MALFORMED', `${this.what}.${name}: shorter than ${len.min} bytes`);
    if (len?.max !== undefined && v.length > len.max) throw new ProtocolError('OVER_LIMIT', `${this.what}.${name}: longer than ${len.max} bytes`);
    return v;
  }

  text(key: number, name: string, maxLen = 64, pattern?: RegExp): string {
    const v = this.get(key, name, true);
    if (typeof v !== 'string') throw new ProtocolError('MALFORMED', `${this.what}.${name}: expected a text string`);
    if (v.length > maxLen) throw new ProtocolError('OVER_LIMIT', `${this.what}.${name}: longer than ${maxLen}`);
    if (pattern && !pattern.test(v)) throw new ProtocolError('MALFORMED', `${this.what}.${name}: ${JSON.stringify(v)} does not match ${pattern}`);
    return v;
  }
  optText(key: number, name: string, maxLen = 64): string | undefined {
    const v = this.get(key, name, false);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw new ProtocolError('MALFORMED', `${this.what}.${name}: expected a text string`);
    if (v.length > maxLen) throw new ProtocolError('OVER_LIMIT', `${this.what}.${name}: longer than ${maxLen}`);
    return v;
  }

  bool(key: number, name: string): boolean {
    const v = this.get(key, name, true);
    if (typeof v !== 'boolean') throw new ProtocolError('MALFORMED', `${this.what}.${name}: expected a boolean`);
    return v;
  }

  array(key: number, name: string, maxLen: number): CborValue[] {
    return this.checkArray(this.get(key, name, true), name, maxLen) as CborValue[];
  }
  optArray(key: number, name: string, maxLen: number): CborValue[] | undefined {
    return this.checkArray(this.get(key, name, false), name, maxLen);
  }
  private checkArray(v: CborValue | undefined, name: string, maxLen: number): CborValue[] | undefined {
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) throw new ProtocolError('MALFORMED', `${this.what}.${name}: expected an array`);
    if (v.length > maxLen) throw new ProtocolError('OVER_LIMIT', `${this.what}.${name}: ${v.length} items > ${maxLen}`);
    return v;
  }

  raw(key: number, name: string): CborValue {
    return this.get(key, name, true) as CborValue;
  }
  optRaw(key: number, name: string): CborValue | undefined {
    return this.get(key, name, false);
  }

  /** Call last: unknown keys are refused so every accepted message re-encodes identically. */
  done(): void {
    for (const k of this.m.keys()) {
      if (!this.seen.has(k)) throw new ProtocolError('MALFORMED', `${this.what}: unknown key ${k}`);
    }
  }
}

export function expectUint(v: CborValue | undefined, what: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || v < 0) throw new ProtocolError('MALFORMED', `${what}: expected an unsigned integer`);
  if (v > max) throw new ProtocolError('OVER_LIMIT', `${what}: ${v} > ${max}`);
  return v;
}

/** A fixed-length array (op, signedHead, keyCert, validity pair): any other length is a
 *  shape error, MALFORMED — too many elements is not a limit (SPEC §2.3). */
export function expectTuple(v: CborValue | undefined, what: string, n: number): CborValue[] {
  if (!Array.isArray(v)) throw new ProtocolError('MALFORMED', `${what}: expected an array`);
  if (v.length !== n) throw new ProtocolError('MALFORMED', `${what}: expected exactly ${n} elements, got ${v.length}`);
  return v;
}

/**
 * Decode a signed body embedded as bytes. Every failure inside it is MALFORMED (SPEC §2.2,
 * §6.1): a range error there (a 33-character lock id, a serial of 2^32) is no limit the
 * receiver enforces before allocating — the body is already bounded to its byte size.
 */
export function insideSignedBody<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ProtocolError && e.reason !== 'MALFORMED') throw new ProtocolError('MALFORMED', e.detail);
    throw e;
  }
}

export function expectArray(v: CborValue | undefined, what: string, maxLen: number): CborValue[] {
  if (!Array.isArray(v)) throw new ProtocolError('MALFORMED', `${what}: expected an array`);
  if (v.length > maxLen) throw new ProtocolError('OVER_LIMIT', `${what}: ${v.length} items > ${maxLen}`);
  return v;
}

/** Build a CborMap from [key, value] pairs, dropping undefined values (optional fields). */
export function cmap(pairs: [number, CborValue | undefined][]): Map<number, CborValue> {
  const m = new Map<number, CborValue>();
  for (const [k, v] of pairs) if (v !== undefined) m.set(k, v);
  return m;
}
