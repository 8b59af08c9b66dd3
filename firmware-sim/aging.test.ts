// Flash that ages (flash.ts FlashAging, rot()): bit rot found by CRC/SHA at mount, programs
// and erases the device fails, blocks worn out at their cycle limit. The lock detects each,
// runs on the newest copy that verifies (the other metadata slot / table region), refuses
// by name what it cannot do (NO_VALID_COMMIT at boot, INTERNAL for an update it cannot
// write), and writes what it lost to its audit log (flashDataLost, event 14).

import { describe, expect, it } from 'vitest';
import { type Message, SeededRandom, decodeMessage, tableDigest, toHex, verifyAuditChain } from '../protocol';
import { NorFlash } from './flash';
import { Lock } from './lock';
import { StorageError } from './storage';
import { TEST_GEOMETRY, TestAuthority, createTestRig, type TestRig } from './test-authority';

const uid = (i: number) => new Uint8Array([0x04, i & 0xff, (i >> 8) & 0xff, 0x77]);

function send(rig: TestRig, msg: Uint8Array): Message {
  const s = rig.lock.openSession();
  const m = decodeMessage(s.handle(msg)[0] as Uint8Array);
  s.close();
  return m;
}

function delta(rig: TestRig, from: number, n: number): Message {
  return send(rig, TestAuthority.message(rig.auth.delta(Array.from({ length: n }, (_, i) => ({ op: 'put' as const, entry: rig.auth.keycardEntry(from + i, uid(from + i)) })))));
}

/** The same device with bit `bit` of byte `addr` drifted back to 1 (what retention loss does). */
function rotAt(flash: NorFlash, addr: number, bit?: number): NorFlash {
  const image = flash.image();
  const v = image[addr] as number;
  const b = bit ?? [0, 1, 2, 3, 4, 5, 6, 7].find((k) => (v & (1 << k)) === 0);
  if (b === undefined) throw new Error(`byte ${addr} has no programmed bit`);
  image[addr] = v | (1 << b);
  return new NorFlash(flash.geometry, { image, wear: flash.wear });
}

function boot(rig: TestRig, flash: NorFlash): Lock {
  return Lock.boot({ flash, clock: rig.clock, timers: rig.clock, random: new SeededRandom('aging'), rtc: { continueAtMs: rig.clock.nowMs(), trusted: true } });
}

/** Never a mixed state; the audit chain verifies end to end. */
function consistent(lock: Lock): void {
  const ts = lock.durable.tableState;
  if (ts.head !== null) expect(toHex(tableDigest(ts.table))).toBe(toHex(ts.head.digest));
  const ex = lock.storage.exportAudit(0, 100_000);
  expect(toHex(verifyAuditChain(ex.prevHash, ex.records).head)).toBe(toHex(lock.storage.auditHead().hash));
}

const layout = (rig: TestRig) => rig.lock.storage.layout;

describe('flash aging: bit rot', () => {
  it('a rotted newest commit record: the lock runs on the previous one and audits the loss once', () => {
    const rig = createTestRig({ seed: 'rot-meta' });
    expect(delta(rig, 1, 3).type).toBe('receipt');
    expect(delta(rig, 10, 3).type).toBe('receipt');
    const L = layout(rig);
    const slotBase = (L.metaStart + rig.lock.storage.activeMetaSlot * L.metaSlotBlocks) * L.blockSize;
    // The newest record is the last one in the slot: rot a byte of its payload.
    const seq = rig.lock.storage.commitSeq;
    let off = 0;
    let newest = -1;
    for (;;) {
      const h = new DataView(rig.flash.read(slotBase + off, 16).buffer);
      if (h.getUint32(0, true) !== 0x524d_534c) break;
      if (h.getUint32(4, true) === seq) newest = off;
      off += 16 + Math.ceil(h.getUint32(8, true) / 16) * 16 + 16;
    }
    expect(newest).toBeGreaterThanOrEqual(0);
    const flash = rotAt(rig.flash, slotBase + newest + 20);
    const lock = boot(rig, flash);
    expect(lock.storage.report.corruptCommitRecords).toBe(1);
    expect(lock.version).toBe(1);
    consistent(lock);
    const lost = lock.storage.auditRecords().filter((r) => r.event === 'flashDataLost');
    expect(lost.map((r) => r.value)).toEqual([1]);
    // The authority's next sync brings it back; a second boot reports nothing new.
    rig.lock = lock;
    expect(send(rig, TestAuthority.message(rig.auth.snapshot())).type).toBe('receipt');
    const again = boot(rig, flash);
    expect(again.storage.report.corruptCommitRecords).toBe(0);
    expect(again.storage.auditRecords().filter((r) => r.event === 'flashDataLost')).toHaveLength(1);
    consistent(again);
  });

  it('a rotted table base: the record naming the other region (the A/B copy) is in force', () => {
    const rig = createTestRig({ seed: 'rot-table' });
    expect(send(rig, TestAuthority.message((rig.auth.delta([{ op: 'put', entry: rig.auth.keycardEntry(1, uid(1)) }]), rig.auth.snapshot()))).type).toBe('receipt');
    const regionA = rig.lock.storage.tableJournal.region;
    rig.auth.delta([{ op: 'put', entry: rig.auth.keycardEntry(2, uid(2)) }]);
    expect(send(rig, TestAuthority.message(rig.auth.snapshot())).type).toBe('receipt');
    const regionB = rig.lock.storage.tableJournal.region;
    expect(regionB).not.toBe(regionA);
    const L = layout(rig);
    const flash = rotAt(rig.flash, (L.tableStart + regionB * L.tableRegionBlocks) * L.blockSize + 5);
    const lock = boot(rig, flash);
    expect(lock.storage.tableJournal.region).toBe(regionA);
    expect(lock.version).toBe(1);
    expect(lock.presentCard(uid(2)).reason).toBe('UNKNOWN_CREDENTIAL');
    expect(lock.presentCard(uid(1)).reason).toBe('GRANTED');
    expect(lock.storage.report.corruptCommitRecords).toBeGreaterThanOrEqual(1);
    expect(lock.storage.auditRecords().some((r) => r.event === 'flashDataLost')).toBe(true);
    consistent(lock);
  });

  it('no copy verifies: the lock refuses to boot on it, by name (NO_VALID_COMMIT)', () => {
    const rig = createTestRig({ seed: 'rot-all' });
    expect(delta(rig, 1, 2).type).toBe('receipt');
    const L = layout(rig);
    let flash = rig.flash;
    // Rot the first payload byte of every commit record in both slots.
    for (const slot of [0, 1]) {
      const base = (L.metaStart + slot * L.metaSlotBlocks) * L.blockSize;
      for (let off = 0; ; ) {
        const h = new DataView(flash.read(base + off, 16).buffer);
        if (h.getUint32(0, true) !== 0x524d_534c) break;
        flash = rotAt(flash, base + off + 16);
        off += 16 + Math.ceil(h.getUint32(8, true) / 16) * 16 + 16;
      }
    }
    let err: unknown;
    try {
      boot(rig, flash);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).code).toBe('NO_VALID_COMMIT');
  });

  it('a rotted audit slot: boot keeps the chain up to it, starts a new block, audits the loss once', () => {
    const rig = createTestRig({ seed: 'rot-audit' });
    expect(delta(rig, 1, 1).type).toBe('receipt');
    for (let i = 0; i < 20; i++) rig.lock.presentCard(uid(1));
    const before = rig.lock.storage.auditHead().seq;
    const L = layout(rig);
    // Find the slot holding record before − 5 and rot its body.
    const target = before - 5;
    let addr = -1;
    for (let b = 0; b < L.auditBlocks && addr < 0; b++) {
      for (let s = 0; s < 63; s++) {
        const a = (L.auditStart + b) * L.blockSize + 64 + s * 64;
        const body = rig.flash.read(a, 48);
        if (body[0] === 0xff) break;
        try {
          const rec = rig.lock.storage.exportAudit(target, 1);
          if (toHex(body.subarray(1, 1 + (body[0] as number))) === toHex(rec.records[0] as Uint8Array)) addr = a;
        } catch {
          /* not a record */
        }
      }
    }
    expect(addr).toBeGreaterThan(0);
    const flash = rotAt(rig.flash, addr + 3);
    const lock = boot(rig, flash);
    // The rotted record and the 5 after it can no longer be chained.
    expect(lock.storage.report.auditRecordsLost).toBe(6);
    const lostRecs = lock.storage.auditRecords().filter((r) => r.event === 'flashDataLost');
    expect(lostRecs.map((r) => r.value)).toEqual([6]);
    consistent(lock);
    lock.presentCard(uid(1));
    const again = boot(rig, flash);
    expect(again.storage.report.auditRecordsLost).toBe(0);
    expect(again.storage.auditRecords().filter((r) => r.event === 'flashDataLost')).toHaveLength(1);
    consistent(again);
  });

  it('random rot on a long run: every boot is an acknowledged state or a named refusal, never a mix', () => {
    for (let trial = 0; trial < 12; trial++) {
      const rig = createTestRig({ seed: `rot-random-${trial}` });
      const acked = new Set<string>();
      for (let v = 0; v < 8; v++) {
        expect(delta(rig, v * 10 + 1, 4).type).toBe('receipt');
        acked.add(toHex(tableDigest(rig.auth.table)));
        for (let i = 0; i < 5; i++) rig.lock.presentCard(uid(v * 10 + 1));
      }
      const flash = new NorFlash(TEST_GEOMETRY, { image: rig.flash.image(), seed: `rot-${trial}` });
      flash.rot(1 + trial);
      try {
        const lock = boot(rig, flash);
        consistent(lock);
        expect(acked.has(toHex(tableDigest(lock.durable.tableState.table))), `trial ${trial}`).toBe(true);
      } catch (e) {
        // No commit record verifies, or the superblock itself rotted: refused by name.
        expect(e instanceof StorageError && (e.code === 'NO_VALID_COMMIT' || e.code === 'CORRUPT'), `trial ${trial}: ${(e as Error).message}`).toBe(true);
      }
    }
  });
});

describe('flash aging: failing and worn-out blocks', () => {
  it('programs and erases that fail: commits are retried elsewhere; an update either lands or is refused INTERNAL; reboot holds what was acknowledged', () => {
    const rig = createTestRig({ seed: 'fail' });
    rig.flash.aging = { programFailureRate: 0.08, eraseFailureRate: 0.2 };
    let acked = rig.lock.version;
    let refused = 0;
    for (let v = 0; v < 40; v++) {
      const m = delta(rig, v * 10 + 1, 3);
      if (m.type === 'receipt') acked = m.body.version;
      else {
        expect(m).toMatchObject({ type: 'error', reason: 'INTERNAL' });
        refused++;
        rig.auth.version--; // the authority will send that version again
        rig.auth.table = rig.lock.durable.tableState.table;
      }
      for (let i = 0; i < 3; i++) rig.lock.presentCard(uid(1));
    }
    expect(rig.flash.faults.programFailures + rig.flash.faults.eraseFailures).toBeGreaterThan(0);
    expect(rig.lock.storage.flashFaults.commitRetries + rig.lock.storage.flashFaults.auditSlotsSkipped).toBeGreaterThan(0);
    rig.flash.aging = {};
    const lock = boot(rig, rig.flash);
    expect(lock.version).toBe(acked);
    consistent(lock);
    expect(refused).toBeLessThan(40);
  });

  it('blocks wear out at their cycle limit: worn audit blocks are retired, and once a metadata slot is worn updates are refused INTERNAL with the last acknowledged state intact', () => {
    const rig = createTestRig({ seed: 'wear', layout: { metaSlotBlocks: 1, tableRegionBlocks: 8, auditBlocks: 4 } });
    rig.flash.aging = { enduranceCycles: 12 };
    let acked = rig.lock.version;
    let refusedAt = -1;
    for (let v = 0; v < 400 && refusedAt < 0; v++) {
      const m = delta(rig, v * 10 + 1, 2);
      if (m.type === 'receipt') acked = m.body.version;
      else {
        expect(m).toMatchObject({ type: 'error', reason: 'INTERNAL' });
        refusedAt = v;
      }
      for (let i = 0; i < 8; i++) rig.lock.presentCard(uid(1));
    }
    expect(rig.flash.wornOut.size).toBeGreaterThan(0);
    expect(refusedAt).toBeGreaterThan(0);
    expect(rig.lock.version).toBe(acked);
    const lock = boot(rig, rig.flash);
    expect(lock.version).toBe(acked);
    consistent(lock);
  });
});
