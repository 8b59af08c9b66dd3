import { afterAll, describe, expect, it } from 'vitest';
import { applyUpdate, deriveSeed32, keyPairFromSeed, tableDigest, toHex, verifyAuditChain, AUDIT_GENESIS, encodeTable } from '../protocol';
import { NorFlash, FlashError, PowerCut, type PowerLossMode } from './flash';
import { LockStorage, type DurableState } from './storage';
import { TestAuthority } from './test-authority';

const GEOMETRY = { blockSize: 4096, blockCount: 40, progSize: 16 };
const LAYOUT = { metaSlotBlocks: 1, tableRegionBlocks: 4, auditBlocks: 4 };

function provision(seed: string): { flash: NorFlash; auth: TestAuthority } {
  const lockSecret = deriveSeed32(seed, 'lock-secret');
  const auth = new TestAuthority('lk-0001', lockSecret, seed);
  const flash = new NorFlash(GEOMETRY, { seed });
  LockStorage.format(flash, { lockId: 'lk-0001', lockSecret, deviceSeed: deriveSeed32(seed, 'device'), timeZone: 'Europe/Berlin' }, [auth.root.publicKey], {
    layout: LAYOUT,
  });
  return { flash, auth };
}

function phoneOps(auth: TestAuthority, from: number, n: number) {
  return Array.from({ length: n }, (_, i) => ({
    op: 'put' as const,
    entry: auth.phoneEntry(from + i, keyPairFromSeed(deriveSeed32('phone', String(from + i))).publicKey), // the lock admits only real curve points
  }));
}

function nextState(s: LockStorage, auth: TestAuthority, ops: ReturnType<typeof phoneOps>): DurableState {
  const r = applyUpdate(s.state.tableState, auth.delta(ops));
  if (!r.ok) throw r.error;
  return { ...s.state, tableState: r.state, signedHead: r.update.head };
}

function fingerprint(s: LockStorage): string {
  const t = s.state.tableState;
  return `${t.head?.version ?? 0}:${toHex(tableDigest(t.table))}:${t.versionFloor}`;
}

describe('NorFlash', () => {
  it('enforces erase-before-program, alignment, and counts wear', () => {
    const f = new NorFlash({ blockSize: 256, blockCount: 2, progSize: 16 });
    f.program(0, new Uint8Array(16).fill(0x0f));
    expect(() => f.program(0, new Uint8Array(16).fill(0x0f))).toThrow(FlashError);
    expect(() => f.program(8, new Uint8Array(16))).toThrow(/MISALIGNED/);
    expect(() => f.program(240, new Uint8Array(32))).toThrow(/crosses a block/);
    f.erase(0);
    expect(f.read(0, 16).every((b) => b === 0xff)).toBe(true);
    expect(f.wear[0]).toBe(1);
    expect(f.operations).toBe(2);
    f.cutAfter(0);
    expect(() => f.erase(1)).toThrow(PowerCut);
    expect(() => f.read(0, 1)).toThrow(/POWERED_OFF/);
    f.powerOn();
    expect(f.wear[1]).toBe(0);
  });

  it('out-of-order mode loses some unsynced programs at a cut, never synced ones', () => {
    let lostSome = false;
    for (let seed = 0; seed < 8; seed++) {
      const f = new NorFlash({ blockSize: 256, blockCount: 1, progSize: 16 }, { mode: 'outOfOrder', seed });
      f.program(0, new Uint8Array(16).fill(1));
      f.sync();
      for (let i = 1; i < 8; i++) f.program(i * 16, new Uint8Array(16).fill(i + 1));
      f.cutAfter(0);
      expect(() => f.program(128, new Uint8Array(16))).toThrow(PowerCut);
      f.powerOn();
      expect(f.read(0, 16).every((b) => b === 1)).toBe(true);
      for (let i = 1; i < 8; i++) if (f.read(i * 16, 1)[0] === 0xff) lostSome = true;
    }
    expect(lostSome).toBe(true);
  });
});

describe('LockStorage', () => {
  it('round-trips a commit and audit records across mount', () => {
    const { flash, auth } = provision('rt');
    const s = LockStorage.mount(flash);
    const head = s.commit(nextState(s, auth, phoneOps(auth, 1, 5)), { time: 10, event: 'updateApplied', value: 1 });
    s.appendAudit({ time: 11, event: 'access', credId: 3, reason: 0, value: 0 });
    const m = LockStorage.mount(flash);
    expect(fingerprint(m)).toBe(fingerprint(s));
    expect(m.state.tableState.table.entries.size).toBe(5);
    expect(m.auditHead().seq).toBe(head.seq + 1);
    const ex = m.exportAudit(0, 100);
    expect(verifyAuditChain(ex.prevHash, ex.records).head).toEqual(m.auditHead().hash);
    expect(toHex(ex.prevHash)).toBe(toHex(AUDIT_GENESIS));
  });

  it('refuses an oversize table before writing anything', () => {
    const { flash, auth } = provision('big');
    const s = LockStorage.mount(flash);
    const before = flash.image();
    const next = nextState(s, auth, phoneOps(auth, 1, 600));
    expect(encodeTable(next.tableState.table).length).toBeGreaterThan(s.tableCapacity());
    expect(() => s.commit(next)).toThrow(/TOO_LARGE/);
    expect(flash.image()).toEqual(before);
  });

  it('keeps >= 1000 audit records in a 24-block ring and the chain verifies after wrap', () => {
    const flash = new NorFlash({ blockSize: 4096, blockCount: 40, progSize: 16 });
    LockStorage.format(flash, { lockId: 'lk-0001', lockSecret: new Uint8Array(32), deviceSeed: new Uint8Array(32), timeZone: 'UTC' }, [new Uint8Array(32)], {
      layout: { metaSlotBlocks: 1, tableRegionBlocks: 2, auditBlocks: 24 },
    });
    const s = LockStorage.mount(flash);
    for (let i = 0; i < 3000; i++) s.appendAudit({ time: 1000 + i, event: 'access', credId: i, reason: 12, value: 1 });
    const m = LockStorage.mount(flash);
    // Nothing was anchored: each recycled block is announced by a recordsLost record.
    const notices = m.auditRecords().filter((r) => r.event === 'recordsLost');
    expect(notices.length).toBeGreaterThan(0);
    expect(m.auditHead().seq).toBeGreaterThan(3000);
    const kept = m.auditHead().seq - m.auditOldestSeq() + 1;
    expect(kept).toBeGreaterThanOrEqual(1000);
    const ex = m.exportAudit(0, 4096);
    expect(ex.records.length).toBe(kept);
    expect(verifyAuditChain(ex.prevHash, ex.records).head).toEqual(m.auditHead().hash);
  });

  it('appends deltas to the journal, replays them at mount, and compacts past the threshold', () => {
    const { flash, auth } = provision('journal');
    const s = LockStorage.mount(flash);
    const commitDelta = (st: LockStorage, ops: ReturnType<typeof phoneOps>) => {
      const r = applyUpdate(st.state.tableState, auth.delta(ops));
      if (!r.ok) throw r.error;
      st.commit({ ...st.state, tableState: r.state, signedHead: r.update.head }, { time: 5, event: 'updateApplied', value: r.state.head?.version ?? 0 }, ops);
    };
    commitDelta(s, phoneOps(auth, 1, 30)); // the first delta onto the empty base: journaled
    expect(s.tableWrites).toEqual({ bases: 0, journalRecords: 1 });
    const region0 = s.tableJournal.region;
    let compactedAt = -1;
    for (let i = 0; i < 12; i++) {
      commitDelta(s, phoneOps(auth, 100 + i * 3, 3));
      const m = LockStorage.mount(flash);
      expect(fingerprint(m)).toBe(fingerprint(s));
      expect(m.report.journalReplayed).toBe(s.tableJournal.records);
      if (compactedAt < 0 && s.tableJournal.region !== region0) compactedAt = i;
    }
    expect(compactedAt).toBeGreaterThanOrEqual(0);
    expect(s.tableWrites.journalRecords).toBeGreaterThan(s.tableWrites.bases);
  });

  it('a journal record that does not reproduce its head voids the commit naming it: the previous commit is in force', () => {
    const { flash, auth } = provision('jcorrupt');
    const s = LockStorage.mount(flash);
    const ops1 = phoneOps(auth, 1, 4);
    const r1 = applyUpdate(s.state.tableState, auth.delta(ops1));
    if (!r1.ok) throw r1.error;
    s.commit({ ...s.state, tableState: r1.state, signedHead: r1.update.head }, undefined, ops1);
    const v1 = fingerprint(s);
    const ops2 = phoneOps(auth, 10, 4);
    const r2 = applyUpdate(s.state.tableState, auth.delta(ops2));
    if (!r2.ok) throw r2.error;
    // Journal a record whose ops differ from the ones the head signs (a writer bug or a
    // flipped bit with a matching CRC): replay must refuse it.
    s.commit({ ...s.state, tableState: r2.state, signedHead: r2.update.head }, undefined, ops2.slice(1));
    expect(s.tableJournal.records).toBe(2);
    const m = LockStorage.mount(flash);
    expect(fingerprint(m)).toBe(v1);
    expect(m.report.recordsRejected).toBeGreaterThan(0);
    expect(m.report.journalReplayed).toBe(1);
  });

  // littlefs-style exhaustive power loss: cut at every program/erase operation of a commit
  // (table region + commit record + its audit record) and of an audit append.
  for (const mode of ['atomic', 'outOfOrder'] as PowerLossMode[]) {
    it(`exhaustive power cuts during commit and audit append (${mode})`, () => {
      const { flash, auth } = provision(`ex-${mode}`);
      const base = LockStorage.mount(flash);
      base.commit(nextState(base, auth, phoneOps(auth, 1, 40)), { time: 5, event: 'updateApplied', value: 1 });
      const image0 = flash.image();
      const s0 = LockStorage.mount(new NorFlash(GEOMETRY, { image: image0 }));
      const oldPrint = fingerprint(s0);
      const oldAudit = s0.auditHead();
      const next = nextState(s0, auth, phoneOps(auth, 100, 30));
      // Count the operations of one uninterrupted commit.
      const probe = new NorFlash(GEOMETRY, { image: image0 });
      const sp = LockStorage.mount(probe);
      probe.resetCounters();
      const st = { ...next, tableState: next.tableState };
      sp.commit(st, { time: 6, event: 'updateApplied', value: 2 });
      const total = probe.operations;
      const newPrint = fingerprint(sp);
      expect(total).toBeGreaterThan(10);
      let sawOld = 0;
      let sawNew = 0;
      for (let cut = 0; cut < total; cut++) {
        const f = new NorFlash(GEOMETRY, { image: image0, mode, seed: `${mode}/${cut}` });
        const s = LockStorage.mount(f);
        f.resetCounters();
        f.cutAfter(cut);
        expect(() => s.commit(st, { time: 6, event: 'updateApplied', value: 2 }), `cut ${cut}`).toThrow(PowerCut);
        f.powerOn();
        const r = LockStorage.mount(f);
        const p = fingerprint(r);
        expect([oldPrint, newPrint], `mode ${mode} cut ${cut}`).toContain(p);
        expect(r.state.tableState.versionFloor).toBeGreaterThanOrEqual(s0.state.tableState.versionFloor);
        const ex = r.exportAudit(0, 4096);
        expect(verifyAuditChain(ex.prevHash, ex.records).head).toEqual(r.auditHead().hash);
        if (p === newPrint) {
          sawNew++;
          expect(r.auditRecords().some((a) => a.event === 'updateApplied' && a.value === 2), `cut ${cut}: new table without its audit record`).toBe(true);
        } else {
          sawOld++;
          expect(r.auditHead().seq).toBe(oldAudit.seq);
        }
        // The storage keeps working after the cut: an interrupted commit can be redone.
        if (p === oldPrint) {
          const re = applyUpdate(r.state.tableState, auth.snapshot());
          if (!re.ok) throw re.error;
          r.commit({ ...r.state, tableState: re.state, signedHead: re.update.head }, { time: 7, event: 'updateApplied', value: 2 });
          expect(fingerprint(LockStorage.mount(f))).toBe(newPrint);
        }
      }
      expect(sawOld).toBeGreaterThan(0);
      expect(sawNew).toBeGreaterThan(0);
      cutPointsTested.commit += total;

      // Audit append alone.
      const a0 = flash.image();
      const probeA = new NorFlash(GEOMETRY, { image: a0 });
      const sa = LockStorage.mount(probeA);
      probeA.resetCounters();
      sa.appendAudit({ time: 9, event: 'access', credId: 1, reason: 0, value: 0 });
      const totalA = probeA.operations;
      for (let cut = 0; cut < totalA; cut++) {
        const f = new NorFlash(GEOMETRY, { image: a0, mode, seed: `a/${mode}/${cut}` });
        const s = LockStorage.mount(f);
        const before = s.auditHead().seq;
        f.resetCounters();
        f.cutAfter(cut);
        expect(() => s.appendAudit({ time: 9, event: 'access', credId: 1, reason: 0, value: 0 })).toThrow(PowerCut);
        f.powerOn();
        const r = LockStorage.mount(f);
        expect([before, before + 1]).toContain(r.auditHead().seq);
        const ex = r.exportAudit(0, 4096);
        expect(verifyAuditChain(ex.prevHash, ex.records).head).toEqual(r.auditHead().hash);
        r.appendAudit({ time: 10, event: 'access', credId: 2, reason: 0, value: 0 });
        expect(LockStorage.mount(f).auditHead().seq).toBe(r.auditHead().seq);
      }
      cutPointsTested.audit += totalA;
    });
  }
});

const cutPointsTested = { commit: 0, audit: 0 };
afterAll(() => console.log(`storage power-cut points tested: commit ${cutPointsTested.commit}, audit append ${cutPointsTested.audit}`));
