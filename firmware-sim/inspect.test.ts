import { describe, expect, it } from 'vitest';
import { SeededRandom, toHex } from '../protocol';
import { inspectFlash } from './inspect';
import { NorFlash, PowerCut } from './flash';
import { Lock } from './lock';
import { FakeClock } from './time';
import { TEST_GEOMETRY, TestAuthority, createTestRig } from './test-authority';

const uid = (i: number) => new Uint8Array([0x04, i & 0xff, i >> 8, 0x77]);

describe('inspectFlash: the independent second reader', () => {
  it('agrees with the writer on a healthy image', () => {
    const rig = createTestRig({ seed: 'insp' });
    const s = rig.lock.openSession();
    for (let v = 0; v < 4; v++) s.handle(TestAuthority.message(rig.auth.delta([{ op: 'put', entry: rig.auth.keycardEntry(v + 1, uid(v + 1)) }])));
    for (let i = 0; i < 5; i++) rig.lock.presentCard(uid(i));
    const r = inspectFlash(rig.flash.image());
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.inForce).toMatchObject({ lockId: 'lk-0001', version: 4, versionFloor: 4, entries: 4, headSignatureValid: true, timeZone: 'Europe/Berlin', devicePublicKey: toHex(rig.lock.devicePublicKey) });
    expect(r.audit.lastSeq).toBe(rig.lock.storage.auditHead().seq);
    expect(r.audit.head).toBe(toHex(rig.lock.storage.auditHead().hash));
    expect(r.audit.chainValid).toBe(true);
  });

  it('picks the same committed version as the writer on every torn image of a commit', () => {
    const rig = createTestRig({ seed: 'insp2' });
    const s = rig.lock.openSession();
    s.handle(TestAuthority.message(rig.auth.delta([{ op: 'put', entry: rig.auth.keycardEntry(1, uid(1)) }])));
    const image = rig.flash.image();
    const msg = TestAuthority.message(rig.auth.delta(Array.from({ length: 40 }, (_, i) => ({ op: 'put' as const, entry: rig.auth.keycardEntry(10 + i, uid(10 + i)) }))));
    let cuts = 0;
    for (let cut = 0; ; cut++) {
      const flash = new NorFlash(TEST_GEOMETRY, { image, mode: 'outOfOrder', seed: cut });
      const clock = new FakeClock();
      const lock = Lock.boot({ flash, clock, timers: clock, random: new SeededRandom(cut), rtc: { continueAtMs: clock.nowMs(), trusted: true } });
      const sess = lock.openSession();
      flash.resetCounters();
      flash.cutAfter(cut);
      try {
        sess.handle(msg);
        break; // no cut: the commit completed
      } catch (e) {
        if (!(e instanceof PowerCut)) throw e;
      }
      flash.powerOn();
      const torn = flash.image();
      const independent = inspectFlash(torn);
      const writer = Lock.boot({ flash, clock, timers: clock, random: new SeededRandom(1) });
      expect(independent.inForce?.version, `cut ${cut}`).toBe(writer.version);
      expect(independent.inForce?.entries).toBe(writer.durable.tableState.table.entries.size);
      cuts++;
    }
    expect(cuts).toBeGreaterThan(5);
  });

  it('replays the journal itself and agrees with the writer across journal appends and compactions', () => {
    const rig = createTestRig({ seed: 'insp-journal' });
    const s = rig.lock.openSession();
    let sawJournal = false;
    let sawCompaction = false;
    let region = rig.lock.storage.tableJournal.region;
    for (let v = 0; v < 14; v++) {
      const ops = [
        ...(v > 2 ? [{ op: 'remove' as const, credId: v * 10 - 25 }] : []),
        ...Array.from({ length: 6 }, (_, i) => ({ op: 'put' as const, entry: rig.auth.keycardEntry(v * 10 + i + 1, uid(v * 10 + i + 1)) })),
      ];
      s.handle(TestAuthority.message(rig.auth.delta(ops)));
      const j = rig.lock.storage.tableJournal;
      if (j.records > 0) sawJournal = true;
      if (j.region !== region) sawCompaction = true;
      region = j.region;
      const r = inspectFlash(rig.flash.image());
      expect(r.problems, `v${v + 1}`).toEqual([]);
      expect(r.inForce).toMatchObject({
        version: rig.lock.version,
        versionFloor: rig.lock.version,
        entries: rig.lock.durable.tableState.table.entries.size,
        headDigest: toHex(rig.lock.durable.tableState.head?.digest ?? new Uint8Array(0)),
        journalRecords: j.records,
        journalBytes: j.bytes,
        tableRegion: j.region,
      });
    }
    expect(sawJournal).toBe(true);
    expect(sawCompaction).toBe(true);
  });

  it('reports an image that is not a lock', () => {
    const r = inspectFlash(new Uint8Array(4096).fill(0xff));
    expect(r.ok).toBe(false);
    expect(r.problems[0]).toMatch(/superblock/);
  });
});
