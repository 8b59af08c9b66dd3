// Deterministic randomness. One seed drives keys, nonces, clocks and faults in tests,
// scenarios and benchmarks, so a seed plus a commit reproduces a run exactly.
// Production locks pass a source backed by a hardware RNG instead (RandomSource).

import { hash, concatBytes } from './crypto';

export interface RandomSource {
  bytes(n: number): Uint8Array;
}

/** SplitMix64-seeded xoshiro128** — small, fast, well understood; not for secrets in production. */
export class SeededRandom implements RandomSource {
  private s: Uint32Array;
  constructor(readonly seed: number | string) {
    const h = hash(new TextEncoder().encode(`locksync-seed:${seed}`));
    this.s = new Uint32Array(h.buffer.slice(h.byteOffset, h.byteOffset + 16));
    if (this.s.every((x) => x === 0)) this.s[0] = 1;
  }
  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.s;
    const s0 = s[0] as number, s1 = s[1] as number, s2 = s[2] as number, s3 = s[3] as number;
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = (s1 << 9) >>> 0;
    s[2] = s2 ^ s0;
    s[3] = s3 ^ s1;
    s[1] = s1 ^ (s[2] as number);
    s[0] = s0 ^ (s[3] as number);
    s[2] = (s[2] as number) ^ t;
    s[3] = rotl(s[3] as number, 11);
    return result;
  }
  /** Uniform float in [0, 1). */
  next(): number {
    return this.nextUint32() / 0x1_0000_0000;
  }
  /** Uniform in [min, max). */
  uniform(min: number, max: number): number {
    return min + (max - min) * this.next();
  }
  /** True with probability p. */
  chance(p: number): boolean {
    if (p <= 0) return false;
    if (p >= 1) return true;
    return this.next() < p;
  }
  /** Standard normal (Box–Muller). */
  gaussian(): number {
    const u = Math.max(this.next(), 1e-12);
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  int(minInclusive: number, maxInclusive: number): number {
    return minInclusive + Math.floor(this.next() * (maxInclusive - minInclusive + 1));
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const v = this.nextUint32();
      for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = (v >>> (8 * j)) & 0xff;
    }
    return out;
  }
  /** An independent stream for a named purpose ("keys", "faults", "clock:lock-1"). */
  fork(label: string): SeededRandom {
    return new SeededRandom(`${this.seed}/${label}`);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** A 32-byte secret derived from a seed and a label: reproducible demo and test keys. */
export function deriveSeed32(seed: number | string, label: string): Uint8Array {
  return hash(concatBytes(new TextEncoder().encode(`locksync-key:${seed}:`), new TextEncoder().encode(label)));
}
