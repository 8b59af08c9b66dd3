// Emulated NOR flash, modelled on littlefs's emulated block device (lfs_emubd).
//
// NOR rules: a block erases to 0xFF; programming can only clear bits, so a program must
// target erased bytes (anything else is a firmware bug and throws); programs are aligned
// to the program granularity. Every program/erase counts as one operation; a power cut
// can be scheduled after N operations, after which the device is dead until powerOn().
//
// Two power-loss behaviours (lfs_emubd's NOOP and OOO):
// - 'atomic': the interrupted operation does not happen; everything before it persisted.
// - 'outOfOrder': programs since the last sync() barrier may land in any subset (a real
//   controller with a write cache may reorder them), and the interrupted operation is
//   torn: a seeded prefix of its program units (or of the erased block) lands.
// The subset and the tear are chosen from the seeded RNG, so a (seed, cut point) pair
// replays exactly.
//
// Storage is sparse: a block that reads all 0xFF holds no memory, so a lock's 2 MiB
// device costs only what it wrote (tens of KiB for a typical lock), and fleets of tens of
// thousands of locks fit one process.

import { openSync, readSync, writeSync, closeSync, fstatSync, existsSync } from 'node:fs';
import { SeededRandom } from '../protocol';

export interface FlashGeometry {
  /** Erase block size, bytes. */
  blockSize: number;
  blockCount: number;
  /** Program granularity, bytes: program addresses and lengths are multiples of it. */
  progSize: number;
}

export const DEFAULT_GEOMETRY: Readonly<FlashGeometry> = Object.freeze({ blockSize: 4096, blockCount: 512, progSize: 16 });
export const ERASED = 0xff;

export type PowerLossMode = 'atomic' | 'outOfOrder';

export type FlashErrorCode = 'NOT_ERASED' | 'MISALIGNED' | 'OUT_OF_RANGE' | 'POWERED_OFF' | 'BAD_GEOMETRY' | 'BAD_IMAGE';

/** A firmware bug or a misuse of the device: never a power loss. */
export class FlashError extends Error {
  override readonly name = 'FlashError';
  constructor(
    readonly code: FlashErrorCode,
    detail: string,
  ) {
    super(`${code}: ${detail}`);
  }
}

/**
 * The device itself failed an operation the firmware asked for correctly — what an aging
 * NOR part does: a program or erase that does not complete (its status register reports
 * the failure), or a block past its erase endurance. Unlike FlashError this is not a bug:
 * firmware must survive it.
 */
export class FlashFault extends Error {
  override readonly name = 'FlashFault';
  constructor(
    readonly code: 'PROGRAM_FAILED' | 'ERASE_FAILED' | 'WORN_OUT',
    readonly block: number,
    detail: string,
  ) {
    super(`${code}: ${detail}`);
  }
}

/**
 * How the device ages. All draws come from the device's seeded generator, so a (seed,
 * workload) pair replays exactly.
 */
export interface FlashAging {
  /** Erase endurance per block (nRF52840 internal flash: 10,000; SPI NOR: 100,000). 0 = unlimited. */
  enduranceCycles?: number;
  /** Probability that one program does not complete (some of its bits stay erased). */
  programFailureRate?: number;
  /** Probability that one erase does not complete (some bytes keep their old value). */
  eraseFailureRate?: number;
}

/** Thrown out of the operation during which the power was cut. */
export class PowerCut extends Error {
  override readonly name = 'PowerCut';
  constructor(readonly atOperation: number) {
    super(`power cut at flash operation ${atOperation}`);
  }
}

/** Where the bytes live between runs: memory only, or a file (CLI). */
export interface FlashBacking {
  /** Called after the device's bytes at `offset` changed to `bytes`. */
  write(bytes: Uint8Array, offset: number): void;
  close(): void;
}

export interface NorFlashOptions {
  mode?: PowerLossMode;
  /** Seed for out-of-order subsets and tears. */
  seed?: number | string;
  /** Start from this image (copied). Length must equal blockSize*blockCount. */
  image?: Uint8Array;
  backing?: FlashBacking;
  /** Start from these wear counters (copied). */
  wear?: Uint32Array;
  /** Aging: endurance and failure rates (default: a perfect device). */
  aging?: FlashAging;
}

interface PendingProgram {
  addr: number;
  data: Uint8Array;
}

export class NorFlash {
  readonly geometry: FlashGeometry;
  readonly size: number;
  mode: PowerLossMode;
  /** One array per block; null for a block that is entirely erased (reads 0xFF). */
  private readonly blocks: Array<Uint8Array | null>;
  /** Erase count per block. */
  readonly wear: Uint32Array;
  /** Program + erase operations since creation (or resetCounters()). */
  operations = 0;
  programs = 0;
  erases = 0;
  bytesProgrammed = 0;
  /** Read calls and bytes read since creation (or resetCounters()): what a mount costs. */
  reads = 0;
  bytesRead = 0;
  private cutAt: number | null = null;
  private powered = true;
  private rng: SeededRandom;
  /** Out-of-order mode: image as of the last barrier, plus programs issued since. */
  private pending: PendingProgram[] = [];
  private readonly backing: FlashBacking | undefined;
  /** Aging model; change it at any time (tests age a device mid-run). */
  aging: FlashAging;
  /** Blocks past their endurance: erases fail and programs do not stick. */
  readonly wornOut = new Set<number>();
  /** Faults the device produced, for reports: failed programs/erases, bits rotted. */
  readonly faults = { programFailures: 0, eraseFailures: 0, wornOutBlocks: 0, bitsRotted: 0 };

  constructor(geometry: FlashGeometry = DEFAULT_GEOMETRY, opts: NorFlashOptions = {}) {
    validateGeometry(geometry);
    this.geometry = { ...geometry };
    this.size = geometry.blockSize * geometry.blockCount;
    this.mode = opts.mode ?? 'atomic';
    this.rng = new SeededRandom(opts.seed ?? 'flash');
    this.blocks = new Array<Uint8Array | null>(geometry.blockCount).fill(null);
    if (opts.image !== undefined) {
      if (opts.image.length !== this.size) throw new FlashError('BAD_IMAGE', `image is ${opts.image.length} bytes, geometry needs ${this.size}`);
      for (let b = 0; b < geometry.blockCount; b++) {
        const start = b * geometry.blockSize;
        const block = opts.image.subarray(start, start + geometry.blockSize);
        if (!allErased(block)) this.blocks[b] = block.slice();
      }
    }
    this.wear = opts.wear !== undefined ? opts.wear.slice() : new Uint32Array(geometry.blockCount);
    this.backing = opts.backing;
    this.aging = { ...opts.aging };
  }

  /**
   * A copy of this device (bytes, wear, worn-out blocks) as a new in-memory device: what a
   * test takes as a snapshot to replay from, cheaper than image() for a sparse device.
   */
  clone(opts: { mode?: PowerLossMode; seed?: number | string; aging?: FlashAging } = {}): NorFlash {
    const copy = new NorFlash(this.geometry, { mode: opts.mode ?? this.mode, seed: opts.seed ?? 'flash', wear: this.wear, aging: opts.aging ?? this.aging });
    this.blocks.forEach((b, i) => {
      if (b !== null) copy.blocks[i] = b.slice();
    });
    for (const b of this.wornOut) copy.wornOut.add(b);
    return copy;
  }

  /** Open (or create, fully erased) a file-backed flash. */
  static openFile(path: string, geometry: FlashGeometry = DEFAULT_GEOMETRY): NorFlash {
    const size = geometry.blockSize * geometry.blockCount;
    const created = !existsSync(path);
    const fd = openSync(path, created ? 'w+' : 'r+');
    let image: Uint8Array;
    if (created) {
      image = new Uint8Array(size).fill(ERASED);
      writeSync(fd, image, 0, size, 0);
    } else {
      const st = fstatSync(fd);
      if (st.size !== size) {
        closeSync(fd);
        throw new FlashError('BAD_IMAGE', `${path} is ${st.size} bytes, geometry needs ${size}`);
      }
      image = new Uint8Array(size);
      readSync(fd, image, 0, size, 0);
    }
    const backing: FlashBacking = {
      write: (bytes, offset) => void writeSync(fd, bytes, 0, bytes.length, offset),
      close: () => closeSync(fd),
    };
    return new NorFlash(geometry, { image, backing });
  }

  close(): void {
    this.backing?.close();
  }

  // -------------------------------------------------------------------------
  // Reads are free and never fail on a powered device.

  read(addr: number, length: number): Uint8Array {
    this.checkPowered();
    this.checkRange(addr, length);
    this.reads++;
    this.bytesRead += length;
    return this.copyOut(addr, length);
  }

  /** A copy of the whole image (tests compare images byte for byte). */
  image(): Uint8Array {
    return this.copyOut(0, this.size);
  }

  isErased(addr: number, length: number): boolean {
    this.checkRange(addr, length);
    const { blockSize } = this.geometry;
    for (let at = addr; at < addr + length; ) {
      const b = Math.floor(at / blockSize);
      const end = Math.min(addr + length, (b + 1) * blockSize);
      const block = this.blocks[b];
      if (block && !allErased(block.subarray(at - b * blockSize, end - b * blockSize))) return false;
      at = end;
    }
    return true;
  }

  /** Bytes of memory the device holds (blocks ever programmed and not erased since). */
  get residentBytes(): number {
    return this.blocks.reduce((n, b) => n + (b ? b.length : 0), 0);
  }

  private copyOut(addr: number, length: number): Uint8Array {
    const out = new Uint8Array(length).fill(ERASED);
    const { blockSize } = this.geometry;
    for (let at = addr; at < addr + length; ) {
      const b = Math.floor(at / blockSize);
      const end = Math.min(addr + length, (b + 1) * blockSize);
      const block = this.blocks[b];
      if (block) out.set(block.subarray(at - b * blockSize, end - b * blockSize), at - addr);
      at = end;
    }
    return out;
  }

  /** The block's bytes, allocated (erased) on first write. */
  private writable(block: number): Uint8Array {
    let bytes = this.blocks[block];
    if (!bytes) {
      bytes = new Uint8Array(this.geometry.blockSize).fill(ERASED);
      this.blocks[block] = bytes;
    }
    return bytes;
  }

  /** Sets bytes at a device address inside one block. */
  private setBytes(addr: number, data: Uint8Array): void {
    const b = Math.floor(addr / this.geometry.blockSize);
    this.writable(b).set(data, addr - b * this.geometry.blockSize);
  }

  private byteAt(addr: number): number {
    const b = Math.floor(addr / this.geometry.blockSize);
    const block = this.blocks[b];
    return block ? (block[addr - b * this.geometry.blockSize] as number) : ERASED;
  }

  /** Erases [start, end) inside one block; frees the block when all of it reads erased. */
  private eraseRange(start: number, end: number): void {
    const b = Math.floor(start / this.geometry.blockSize);
    const block = this.blocks[b];
    if (!block) return;
    block.fill(ERASED, start - b * this.geometry.blockSize, end - b * this.geometry.blockSize);
    if (allErased(block)) this.blocks[b] = null;
  }

  // -------------------------------------------------------------------------
  // Operations that count

  program(addr: number, data: Uint8Array): void {
    this.checkPowered();
    const { progSize } = this.geometry;
    if (addr % progSize !== 0 || data.length % progSize !== 0 || data.length === 0)
      throw new FlashError('MISALIGNED', `program at ${addr} of ${data.length} bytes is not aligned to ${progSize}`);
    this.checkRange(addr, data.length);
    if (Math.floor(addr / this.geometry.blockSize) !== Math.floor((addr + data.length - 1) / this.geometry.blockSize))
      throw new FlashError('OUT_OF_RANGE', `program at ${addr} of ${data.length} bytes crosses a block boundary`);
    if (!this.isErased(addr, data.length)) {
      for (let i = 0; i < data.length; i++) if (this.byteAt(addr + i) !== ERASED) throw new FlashError('NOT_ERASED', `program over non-erased byte at ${addr + i}`);
    }
    this.tick(() => this.tearProgram(addr, data));
    const block = Math.floor(addr / this.geometry.blockSize);
    const failed = this.wornOut.has(block) || this.draw(this.aging.programFailureRate);
    if (failed) {
      // The program stops part-way, like a torn one, and the device reports it.
      this.tearProgram(addr, data);
      this.programs++;
      this.faults.programFailures++;
      this.backing?.write(this.copyOut(addr, data.length), addr);
      throw new FlashFault(this.wornOut.has(block) ? 'WORN_OUT' : 'PROGRAM_FAILED', block, `program of ${data.length} bytes at ${addr} did not complete`);
    }
    this.setBytes(addr, data);
    this.programs++;
    this.bytesProgrammed += data.length;
    if (this.mode === 'outOfOrder') this.pending.push({ addr, data: data.slice() });
    this.backing?.write(data, addr);
  }

  erase(block: number): void {
    this.checkPowered();
    if (!Number.isInteger(block) || block < 0 || block >= this.geometry.blockCount) throw new FlashError('OUT_OF_RANGE', `erase of block ${block}`);
    const start = block * this.geometry.blockSize;
    this.tick(() => this.tearErase(start));
    // An erase is a barrier for its own block: the controller finishes earlier programs to
    // that block first, so drop them from the pending set (they are erased anyway).
    if (this.mode === 'outOfOrder') {
      this.pending = this.pending.filter((p) => Math.floor(p.addr / this.geometry.blockSize) !== block);
    }
    this.wear[block] = (this.wear[block] as number) + 1;
    this.erases++;
    const endurance = this.aging.enduranceCycles ?? 0;
    if (endurance > 0 && (this.wear[block] as number) > endurance && !this.wornOut.has(block)) {
      this.wornOut.add(block);
      this.faults.wornOutBlocks++;
    }
    if (this.wornOut.has(block) || this.draw(this.aging.eraseFailureRate)) {
      // A failed erase clears only part of the block.
      this.tearErase(start);
      this.faults.eraseFailures++;
      this.backing?.write(this.copyOut(start, this.geometry.blockSize), start);
      throw new FlashFault(this.wornOut.has(block) ? 'WORN_OUT' : 'ERASE_FAILED', block, `erase of block ${block} did not complete (${this.wear[block]} cycles)`);
    }
    this.blocks[block] = null;
    this.backing?.write(new Uint8Array(this.geometry.blockSize).fill(ERASED), start);
  }

  /**
   * Retention loss: `bits` programmed (0) bits somewhere in the written blocks drift back to
   * 1, as charge leaks from aged cells. Returns where they were, for tests and reports.
   * Firmware finds them only through its checksums.
   */
  rot(bits: number): Array<{ addr: number; bit: number }> {
    const rotted: Array<{ addr: number; bit: number }> = [];
    const written = this.blocks.map((b, i) => (b ? i : -1)).filter((i) => i >= 0);
    for (let n = 0; n < bits && written.length > 0; n++) {
      const b = written[this.rng.int(0, written.length - 1)] as number;
      const block = this.blocks[b] as Uint8Array;
      // Pick a programmed byte: try a few positions, then scan.
      let offset = -1;
      for (let tries = 0; tries < 16 && offset < 0; tries++) {
        const o = this.rng.int(0, block.length - 1);
        if (block[o] !== ERASED) offset = o;
      }
      if (offset < 0) offset = block.findIndex((v) => v !== ERASED);
      if (offset < 0) continue;
      const value = block[offset] as number;
      const zeros = [0, 1, 2, 3, 4, 5, 6, 7].filter((bit) => (value & (1 << bit)) === 0);
      const bit = zeros[this.rng.int(0, zeros.length - 1)] as number;
      block[offset] = value | (1 << bit);
      const addr = b * this.geometry.blockSize + offset;
      rotted.push({ addr, bit });
      this.faults.bitsRotted++;
      this.backing?.write(block.subarray(offset, offset + 1), addr);
    }
    return rotted;
  }

  /** A seeded Bernoulli draw; no draw at all when the rate is 0 (keeps old runs' sequences). */
  private draw(rate: number | undefined): boolean {
    return rate !== undefined && rate > 0 && this.rng.next() < rate;
  }

  /** Write barrier: everything issued before it is durable before anything after it. */
  sync(): void {
    this.checkPowered();
    this.pending = [];
  }

  // -------------------------------------------------------------------------
  // Power-loss injection

  /** Cut power when operation number `n` (0-based, counted from now) starts; null clears. */
  cutAfter(n: number | null): void {
    this.cutAt = n === null ? null : this.operations + n;
  }

  get isPowered(): boolean {
    return this.powered;
  }

  powerOn(): void {
    this.powered = true;
    this.cutAt = null;
    this.pending = [];
  }

  resetCounters(): void {
    this.operations = 0;
    this.programs = 0;
    this.erases = 0;
    this.bytesProgrammed = 0;
    this.reads = 0;
    this.bytesRead = 0;
    this.cutAt = null;
  }

  /** Reseed the out-of-order chooser (exhaustive tests vary it per cut point). */
  reseed(seed: number | string): void {
    this.rng = new SeededRandom(seed);
  }

  private tick(tear: () => void): void {
    if (this.cutAt !== null && this.operations >= this.cutAt) {
      const at = this.operations;
      if (this.mode === 'outOfOrder') {
        this.dropUnsynced();
        tear();
      }
      this.powered = false;
      this.cutAt = null;
      if (this.backing) for (let b = 0; b < this.geometry.blockCount; b++) this.backing.write(this.copyOut(b * this.geometry.blockSize, this.geometry.blockSize), b * this.geometry.blockSize);
      throw new PowerCut(at);
    }
    this.operations++;
  }

  /** Out-of-order loss: each program since the last barrier survives or not. */
  private dropUnsynced(): void {
    const lost = this.pending.filter(() => this.rng.next() < 0.5);
    for (const p of lost) this.eraseRange(p.addr, p.addr + p.data.length);
    this.pending = [];
  }

  private tearProgram(addr: number, data: Uint8Array): void {
    const units = data.length / this.geometry.progSize;
    const landed = this.rng.int(0, units - 1); // the interrupted program never completes
    if (landed > 0) this.setBytes(addr, data.subarray(0, landed * this.geometry.progSize));
    // The unit being written when power fell holds some of its cleared bits.
    const off = landed * this.geometry.progSize;
    const unit = new Uint8Array(this.geometry.progSize);
    let touched = false;
    for (let i = 0; i < this.geometry.progSize; i++) {
      const current = this.byteAt(addr + off + i);
      unit[i] = this.rng.next() < 0.5 ? current & (data[off + i] as number) : current;
      if (unit[i] !== current) touched = true;
    }
    if (touched) this.setBytes(addr + off, unit);
  }

  private tearErase(start: number): void {
    const n = this.rng.int(0, this.geometry.blockSize - 1);
    this.eraseRange(start, start + n);
  }

  private checkPowered(): void {
    if (!this.powered) throw new FlashError('POWERED_OFF', 'flash accessed after a power cut (reboot first)');
  }

  private checkRange(addr: number, length: number): void {
    if (!Number.isInteger(addr) || !Number.isInteger(length) || addr < 0 || length < 0 || addr + length > this.size)
      throw new FlashError('OUT_OF_RANGE', `access [${addr}, ${addr + length}) outside ${this.size} bytes`);
  }
}

export function validateGeometry(g: FlashGeometry): void {
  const pow2 = (n: number): boolean => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
  if (!pow2(g.blockSize) || !pow2(g.progSize) || g.progSize > g.blockSize || !Number.isInteger(g.blockCount) || g.blockCount < 1)
    throw new FlashError('BAD_GEOMETRY', `blockSize ${g.blockSize}, progSize ${g.progSize} must be powers of two, progSize <= blockSize`);
}

function allErased(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== ERASED) return false;
  return true;
}
