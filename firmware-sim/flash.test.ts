// The emulated NOR device itself: NOR rules, sparse storage (a device holds only the blocks
// it wrote), and the file backing the CLI uses.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { crc32 } from './crc32';
import { DEFAULT_GEOMETRY, ERASED, FlashError, FlashFault, NorFlash } from './flash';

describe('emulated NOR flash', () => {
  it('holds memory only for blocks that were written, and frees a block when it is erased', () => {
    const flash = new NorFlash();
    expect(flash.residentBytes).toBe(0);
    expect(flash.read(0, 64).every((b) => b === ERASED)).toBe(true);
    const data = Uint8Array.from({ length: 32 }, (_, i) => i);
    const addr = 3 * DEFAULT_GEOMETRY.blockSize + 48;
    flash.program(addr, data);
    expect(flash.residentBytes).toBe(DEFAULT_GEOMETRY.blockSize);
    expect(flash.read(addr - 16, 64)).toEqual(Uint8Array.from([...new Array(16).fill(ERASED), ...data, ...new Array(16).fill(ERASED)]));
    expect(flash.image().subarray(addr, addr + 32)).toEqual(data);
    expect(flash.isErased(addr, 16)).toBe(false);
    expect(flash.isErased(addr + 32, 16)).toBe(true);
    // A read across a block boundary joins both blocks.
    const boundary = 4 * DEFAULT_GEOMETRY.blockSize;
    flash.program(boundary, new Uint8Array(16).fill(7));
    const across = flash.read(boundary - 8, 24);
    expect([...across]).toEqual([...new Array(8).fill(ERASED), ...new Array(16).fill(7)]);
    flash.erase(3);
    flash.erase(4);
    expect(flash.residentBytes).toBe(0);
    expect(flash.wear[3]).toBe(1);
  });

  it('still refuses NOR misuse: programming a non-erased byte, misaligned writes, block-crossing writes', () => {
    const flash = new NorFlash();
    flash.program(0, new Uint8Array(16).fill(0));
    expect(() => flash.program(0, new Uint8Array(16).fill(0))).toThrow(FlashError);
    expect(() => flash.program(8, new Uint8Array(16))).toThrow(/MISALIGNED/);
    expect(() => flash.program(DEFAULT_GEOMETRY.blockSize - 16, new Uint8Array(32))).toThrow(/crosses a block boundary/);
  });

  it('a file-backed device persists programs and erases, and a reopened image reads back the same', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'locksync-flash-'));
    const file = path.join(dir, 'flash.img');
    const first = NorFlash.openFile(file);
    first.program(5 * DEFAULT_GEOMETRY.blockSize, new Uint8Array(16).fill(0x42));
    first.program(6 * DEFAULT_GEOMETRY.blockSize, new Uint8Array(16).fill(0x43));
    first.erase(6);
    const image = first.image();
    first.close();
    expect(fs.statSync(file).size).toBe(DEFAULT_GEOMETRY.blockSize * DEFAULT_GEOMETRY.blockCount);
    const second = NorFlash.openFile(file);
    // Compare 2 MiB as buffers: element-wise deep equality on typed arrays this size is slow.
    expect(Buffer.from(second.image()).equals(Buffer.from(image))).toBe(true);
    expect(second.residentBytes).toBe(DEFAULT_GEOMETRY.blockSize); // only block 5 holds data
    second.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('an aging device', () => {
  it('wears a block out past its erase endurance: the erase fails, and programs there fail too', () => {
    const flash = new NorFlash(undefined, { aging: { enduranceCycles: 3 } });
    for (let i = 0; i < 3; i++) flash.erase(7);
    let fault: unknown;
    try {
      flash.erase(7);
    } catch (e) {
      fault = e;
    }
    expect(fault).toBeInstanceOf(FlashFault);
    expect(fault).toMatchObject({ code: 'WORN_OUT', block: 7 });
    expect(() => flash.program(7 * DEFAULT_GEOMETRY.blockSize, new Uint8Array(16).fill(1))).toThrow(FlashFault);
    expect(flash.faults).toMatchObject({ wornOutBlocks: 1, eraseFailures: 1, programFailures: 1 });
    // Other blocks are unaffected.
    flash.program(8 * DEFAULT_GEOMETRY.blockSize, new Uint8Array(16).fill(1));
  });

  it('a failed program leaves some of its bits erased and says so; the same seed fails the same way', () => {
    const run = (): { image: Uint8Array; error: unknown } => {
      const flash = new NorFlash(undefined, { seed: 'aging', aging: { programFailureRate: 1 } });
      let error: unknown;
      try {
        flash.program(0, new Uint8Array(64).fill(0));
      } catch (e) {
        error = e;
      }
      return { image: flash.read(0, 64), error };
    };
    const a = run();
    const b = run();
    expect(a.error).toMatchObject({ code: 'PROGRAM_FAILED', block: 0 });
    expect(a.image.some((v) => v !== 0)).toBe(true); // not all of it landed
    expect(b.image).toEqual(a.image);
  });

  it('bit rot flips programmed bits back to 1, which a record CRC detects', () => {
    const flash = new NorFlash(undefined, { seed: 'rot' });
    const record = Uint8Array.from({ length: 60 }, (_, i) => (i * 37) & 0x7f);
    const withCrc = new Uint8Array(64);
    withCrc.set(record);
    new DataView(withCrc.buffer).setUint32(60, crc32(record), true);
    flash.program(4096, withCrc);
    const rotted = flash.rot(1);
    expect(rotted).toHaveLength(1);
    const back = flash.read(4096, 64);
    expect(back).not.toEqual(withCrc);
    expect(new DataView(back.buffer, back.byteOffset).getUint32(60, true) === crc32(back.subarray(0, 60))).toBe(false);
    expect(flash.faults.bitsRotted).toBe(1);
  });
});
