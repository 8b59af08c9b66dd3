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

/** Thrown out of the operation during which the power was cut. */
export class PowerCut extends Error {
  override readonly name = 'PowerCut';
  constructor(readonly atOperation: number) {
    super(`power cut at flash operation ${atOperation}`);
  }
}

/** Where the bytes live between runs: memory only, or a file (CLI). */
export interface FlashBacking {
  /** Called after the in-memory image changed in [offset, offset+len). */
  write(image: Uint8Array, offset: number, length: number): void;
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
}

interface PendingProgram {
  addr: number;
  data: Uint8Array;
}

export class NorFlash {
  readonly geometry: FlashGeometry;
  readonly size: number;
  mode: PowerLossMode;
  private bytes: Uint8Array;
  /** Erase count per block. */
  readonly wear: Uint32Array;
  /** Program + erase operations since creation (or resetCounters()). */
  operations = 0;
  programs = 0;
  erases = 0;
  bytesProgrammed = 0;
  private cutAt: number | null = null;
  private powered = true;
  private rng: SeededRandom;
  /** Out-of-order mode: image as of the last barrier, plus programs issued since. */
  private pending: PendingProgram[] = [];
  private readonly backing: FlashBacking | undefined;

  constructor(geometry: FlashGeometry = DEFAULT_GEOMETRY, opts: NorFlashOptions = {}) {
    validateGeometry(geometry);
    this.geometry = { ...geometry };
    this.size = geometry.blockSize * geometry.blockCount;
    this.mode = opts.mode ?? 'atomic';
    this.rng = new SeededRandom(opts.seed ?? 'flash');
    if (opts.image !== undefined) {
      if (opts.image.length !== this.size) throw new FlashError('BAD_IMAGE', `image is ${opts.image.length} bytes, geometry needs ${this.size}`);
      this.bytes = opts.image.slice();
    } else {
      this.bytes = new Uint8Array(this.size).fill(ERASED);
    }
    this.wear = opts.wear !== undefined ? opts.wear.slice() : new Uint32Array(geometry.blockCount);
    this.backing = opts.backing;
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
      write: (img, offset, length) => void writeSync(fd, img, offset, length, offset),
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
    return this.bytes.slice(addr, addr + length);
  }

  /** A copy of the whole image (tests compare images byte for byte). */
  image(): Uint8Array {
    return this.bytes.slice();
  }

  isErased(addr: number, length: number): boolean {
    this.checkRange(addr, length);
    for (let i = addr; i < addr + length; i++) if (this.bytes[i] !== ERASED) return false;
    return true;
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
    for (let i = 0; i < data.length; i++)
      if (this.bytes[addr + i] !== ERASED) throw new FlashError('NOT_ERASED', `program over non-erased byte at ${addr + i}`);
    this.tick(() => this.tearProgram(addr, data));
    this.bytes.set(data, addr);
    this.programs++;
    this.bytesProgrammed += data.length;
    if (this.mode === 'outOfOrder') this.pending.push({ addr, data: data.slice() });
    this.backing?.write(this.bytes, addr, data.length);
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
    this.bytes.fill(ERASED, start, start + this.geometry.blockSize);
    this.wear[block] = (this.wear[block] as number) + 1;
    this.erases++;
    this.backing?.write(this.bytes, start, this.geometry.blockSize);
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
      this.backing?.write(this.bytes, 0, this.size);
      throw new PowerCut(at);
    }
    this.operations++;
  }

  /** Out-of-order loss: each program since the last barrier survives or not. */
  private dropUnsynced(): void {
    const lost = this.pending.filter(() => this.rng.next() < 0.5);
    for (const p of lost) this.bytes.fill(ERASED, p.addr, p.addr + p.data.length);
    this.pending = [];
  }

  private tearProgram(addr: number, data: Uint8Array): void {
    const units = data.length / this.geometry.progSize;
    const landed = this.rng.int(0, units - 1); // the interrupted program never completes
    this.bytes.set(data.subarray(0, landed * this.geometry.progSize), addr);
    // The unit being written when power fell holds some of its cleared bits.
    const off = landed * this.geometry.progSize;
    for (let i = 0; i < this.geometry.progSize; i++) {
      if (this.rng.next() < 0.5) this.bytes[addr + off + i] = (this.bytes[addr + off + i] as number) & (data[off + i] as number);
    }
  }

  private tearErase(start: number): void {
    const n = this.rng.int(0, this.geometry.blockSize - 1);
    this.bytes.fill(ERASED, start, start + n);
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
