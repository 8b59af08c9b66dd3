// littlefs-style power-loss proof at the level of the whole lock: cut power at every flash
// operation of a delta commit delivered through a session (and of an access decision's
// audit append), in atomic and out-of-order modes; reboot; the lock must hold the old or
// the new committed state, never a mix and never a lower version floor. Then a linear
// schedule (cut after 1, 2, 3 … operations) across a longer run.

import { afterAll, describe, expect, it } from 'vitest';
import { type Message, type Update, SeededRandom, decodeMessage, tableDigest, toHex, verifyAuditChain, bytesEqual, auditRecordFromBytes } from '../protocol';
import { NorFlash, PowerCut, type PowerLossMode } from './flash';
import { Lock } from './lock';
import { FakeClock } from './time';
import { TEST_GEOMETRY, TestAuthority, createTestRig } from './test-authority';

const counts = { deltaCommit: 0, journalAppend: 0, tableCompaction: 0, auditAppend: 0, linear: 0, linearOps: 0 };
afterAll(() =>
  console.log(
    `lock power-cut points tested: delta commit ${counts.deltaCommit} (journal append ${counts.journalAppend}, table compaction ${counts.tableCompaction}), access audit append ${counts.auditAppend}, linear schedule ${counts.linear} cuts over ${counts.linearOps} operations`,
  ),
);

function bootOn(image: Uint8Array, mode: PowerLossMode, seed: string): { flash: NorFlash; lock: Lock; clock: FakeClock } {
  const flash = new NorFlash(TEST_GEOMETRY, { image, mode, seed });
  const clock = new FakeClock();
  const lock = Lock.boot({ flash, clock, timers: clock, random: new SeededRandom(seed), rtc: { continueAtMs: clock.nowMs(), trusted: true } });
  return { flash, lock, clock };
}

function check(lock: Lock): { version: number; floor: number } {
  const ts = lock.durable.tableState;
  // never a mix: the table on flash is exactly the one its signed head names
  if (ts.head !== null) expect(toHex(tableDigest(ts.table))).toBe(toHex(ts.head.digest));
  expect(ts.versionFloor).toBe(ts.head?.version ?? 0);
  const ex = lock.storage.exportAudit(0, 4096);
  expect(toHex(verifyAuditChain(ex.prevHash, ex.records).head)).toBe(toHex(lock.storage.auditHead().hash));
  return { version: lock.version, floor: ts.versionFloor };
}

const uid = (i: number) => new Uint8Array([0x04, i & 0xff, (i >> 8) & 0xff, 0x55]);

for (const mode of ['atomic', 'outOfOrder'] as PowerLossMode[]) {
  describe(`power loss (${mode})`, () => {
    it('exhaustive: every operation of a delta commit through a session', () => {
      const rig = createTestRig({ seed: `pc-${mode}` });
      const a = rig.auth;
      const s = rig.lock.openSession();
      for (let v = 0; v < 3; v++)
        s.handle(TestAuthority.message(a.delta(Array.from({ length: 20 }, (_, i) => ({ op: 'put' as const, entry: a.keycardEntry(v * 100 + i + 1, uid(v * 100 + i + 1)) })))));
      expect(rig.lock.version).toBe(3);
      let olds = 0;
      let news = 0;
      let compactions = 0;
      let journalAppends = 0;
      let tableCompactions = 0;
      // Sixteen consecutive deltas, each cut at every one of its operations: the run crosses
      // journal appends, table compactions (a fresh base in the other region once the journal
      // reaches its threshold) and metadata-slot compactions.
      for (let k = 0; k < 16; k++) {
        const image = rig.flash.image();
        const base = rig.lock.version;
        const oldDigest = toHex(tableDigest(rig.lock.durable.tableState.table));
        // revokes one card and adds ten: both visible in a mixed state
        const victim = [...a.table.entries.keys()][0] as number;
        const delta: Update = a.delta([{ op: 'remove', credId: victim }, ...Array.from({ length: 10 }, (_, i) => ({ op: 'put' as const, entry: a.keycardEntry(1000 + k * 10 + i, uid(1000 + k * 10 + i)) }))]);
        const msg = TestAuthority.message(delta);
        const newDigest = toHex(tableDigest(a.table));
        const probe = bootOn(image, 'atomic', 'probe');
        probe.flash.resetCounters();
        const slotBefore = probe.lock.storage.activeMetaSlot;
        const ok = decodeMessage(probe.lock.openSession().handle(msg)[0] as Uint8Array);
        expect(ok.type).toBe('receipt');
        const total = probe.flash.operations;
        if (probe.lock.storage.activeMetaSlot !== slotBefore) compactions++;
        const wrote = probe.lock.storage.tableWrites;
        expect(wrote.bases + wrote.journalRecords, 'exactly one table write per delta').toBe(1);
        const path = wrote.journalRecords === 1 ? 'journal' : 'compaction';
        if (path === 'journal') {
          journalAppends++;
          expect(probe.lock.storage.tableJournal.records).toBeGreaterThan(0);
        } else {
          tableCompactions++;
          expect(probe.lock.storage.tableJournal.records).toBe(0);
        }
        expect(total).toBeGreaterThan(5);
        for (let cut = 0; cut < total; cut++) {
          const r = bootOn(image, mode, `${mode}/${k}/${cut}`);
          const sess = r.lock.openSession();
          r.flash.resetCounters();
          r.flash.cutAfter(cut);
          expect(() => sess.handle(msg), `cut ${cut}`).toThrow(PowerCut);
          r.flash.powerOn();
          const after = Lock.boot({ flash: r.flash, clock: r.clock, timers: r.clock, random: new SeededRandom(cut) });
          const { version, floor } = check(after);
          const where = `delta ${k} (${path}) cut ${cut}/${total}`;
          expect([base, base + 1], where).toContain(version);
          expect(floor, where).toBeGreaterThanOrEqual(base);
          const digest = toHex(tableDigest(after.durable.tableState.table));
          const victimReason = after.presentCard(uid(victim)).reason;
          if (version === base + 1) {
            news++;
            expect(digest, where).toBe(newDigest);
            // the new table was rebuilt by replaying the journal, not read whole
            if (path === 'journal') expect(after.storage.report.journalReplayed, where).toBeGreaterThan(0);
            expect(victimReason, where).toBe('UNKNOWN_CREDENTIAL');
            expect(after.storage.auditRecords().some((x) => x.event === 'updateApplied' && x.value === base + 1), where).toBe(true);
          } else {
            olds++;
            expect(digest, where).toBe(oldDigest);
            expect(victimReason, where).toBe('GRANTED');
            // the interrupted update can be delivered again
            const again = decodeMessage(after.openSession().handle(msg)[0] as Uint8Array);
            expect(again.type, where).toBe('receipt');
            check(after);
          }
        }
        counts.deltaCommit += total;
        if (path === 'journal') counts.journalAppend += total;
        else counts.tableCompaction += total;
        expect(decodeMessage(s.handle(msg)[0] as Uint8Array).type).toBe('receipt');
        rig.clock.advance(1000);
      }
      expect(olds).toBeGreaterThan(0);
      expect(news).toBeGreaterThan(0);
      expect(compactions).toBeGreaterThan(0);
      expect(journalAppends).toBeGreaterThan(1);
      expect(tableCompactions).toBeGreaterThan(1);
    });

    it('exhaustive: every operation of an access decision (audit append)', () => {
      const rig = createTestRig({ seed: `pa-${mode}` });
      const s = rig.lock.openSession();
      s.handle(TestAuthority.message(rig.auth.delta([{ op: 'put', entry: rig.auth.keycardEntry(1, uid(1)) }])));
      const image = rig.flash.image();
      const probe = bootOn(image, 'atomic', 'probe');
      probe.flash.resetCounters();
      probe.lock.presentCard(uid(1));
      const total = probe.flash.operations;
      expect(total).toBeGreaterThanOrEqual(2);
      for (let cut = 0; cut < total; cut++) {
        const r = bootOn(image, mode, `a/${mode}/${cut}`);
        const before = r.lock.storage.auditHead().seq;
        r.flash.resetCounters();
        r.flash.cutAfter(cut);
        expect(() => r.lock.presentCard(uid(1))).toThrow(PowerCut);
        expect(r.lock.motorLog.filter((m) => m.action === 'retract')).toEqual([]); // audit precedes the motor
        r.flash.powerOn();
        const after = Lock.boot({ flash: r.flash, clock: r.clock, timers: r.clock, random: new SeededRandom(cut) });
        check(after);
        expect(after.storage.auditHead().seq).toBeGreaterThanOrEqual(before);
        expect(after.presentCard(uid(1)).reason).toBe('GRANTED');
      }
      counts.auditAppend += total;
    });

    it('linear schedule: cut after 1, 2, 3 … operations across a long run; nothing acknowledged is lost', () => {
      const rig = createTestRig({ seed: `lin-${mode}`, mode });
      const a = rig.auth;
      const rng = new SeededRandom(`lin-${mode}`);
      // The workload: deltas (some revoking), card swipes, keypad codes, signed time.
      type Step = { kind: 'delta'; u: Update; version: number } | { kind: 'card'; i: number } | { kind: 'code'; c: string } | { kind: 'time' };
      const steps: Step[] = [];
      let nextId = 1;
      for (let i = 0; i < 36; i++) {
        const r = rng.int(0, 9);
        if (r < 4) {
          const ops = Array.from({ length: rng.int(1, 25) }, () => ({ op: 'put' as const, entry: a.keycardEntry(nextId, uid(nextId++)) }));
          if (a.table.entries.size > 10 && r === 0) {
            const victim = [...a.table.entries.keys()][rng.int(0, a.table.entries.size - 1)] as number;
            steps.push({ kind: 'delta', u: a.delta([{ op: 'remove', credId: victim }]), version: a.version });
          } else steps.push({ kind: 'delta', u: a.delta(ops), version: a.version });
        } else if (r < 8) steps.push({ kind: 'card', i: rng.int(1, Math.max(1, nextId)) });
        else if (r < 9) steps.push({ kind: 'code', c: String(rng.int(0, 9_999_999)).padStart(7, '0') });
        else steps.push({ kind: 'time' });
      }
      let lock = rig.lock;
      let ackVersion = 0;
      const acked = new Map<number, string>(); // audit seq → record bytes the lock reported
      let cutEvery = 1;
      let cuts = 0;
      let i = 0;
      const verifyAcked = (l: Lock) => {
        const ex = l.storage.exportAudit(0, 4096);
        const have = new Map(ex.records.map((b) => [auditRecordFromBytes(b).seq, toHex(b)]));
        for (const [seq, hex] of acked) if (seq >= l.storage.auditOldestSeq()) expect(have.get(seq), `acked audit seq ${seq}`).toBe(hex);
        expect(l.storage.auditHead().seq).toBeGreaterThanOrEqual(Math.max(0, ...acked.keys()));
      };
      const remember = (l: Lock, seq: number) => {
        const rec = l.storage.exportAudit(seq, 1).records[0];
        if (rec !== undefined) acked.set(seq, toHex(rec));
      };
      rig.flash.resetCounters();
      rig.flash.cutAfter(cutEvery);
      while (i < steps.length) {
        const st = steps[i] as Step;
        try {
          if (st.kind === 'delta') {
            if (lock.version < st.version) {
              const s = lock.openSession();
              const res = decodeMessage(s.handle(TestAuthority.message(st.u))[0] as Uint8Array) as Message;
              s.close();
              if (res.type === 'receipt') {
                ackVersion = res.body.version;
                remember(lock, res.body.auditSeq);
              } else expect(res.type, JSON.stringify(res)).toBe('receipt');
            }
          } else if (st.kind === 'card') {
            remember(lock, lock.presentCard(uid(st.i)).auditSeq);
            rig.clock.advance(6_000);
          } else if (st.kind === 'code') {
            const d = lock.enterCode(st.c);
            if (d !== undefined) remember(lock, d.auditSeq);
            rig.clock.advance(6_000);
          } else {
            const s = lock.openSession();
            a.now = Math.max(a.now, Math.floor(rig.clock.nowMs() / 1000));
            const res = decodeMessage(s.handle(a.signedTime(s.nonce))[0] as Uint8Array);
            s.close();
            expect(res.type).toBe('timeAck');
          }
          i++;
        } catch (e) {
          if (!(e instanceof PowerCut)) throw e;
          cuts++;
          rig.flash.powerOn();
          rig.lock = lock;
          lock = rig.reboot({ powerLoss: true });
          const { version, floor } = check(lock);
          expect(version).toBeGreaterThanOrEqual(ackVersion);
          expect(floor).toBeGreaterThanOrEqual(ackVersion);
          verifyAcked(lock);
          if (lock.machine.mode.kind === 'keypadLockout') rig.clock.advance(lock.policy.lockoutSeconds * 1000);
          cutEvery++;
          rig.flash.cutAfter(cutEvery);
        }
      }
      rig.flash.cutAfter(null);
      expect(lock.version).toBe(a.version);
      expect(bytesEqual(tableDigest(lock.durable.tableState.table), tableDigest(a.table))).toBe(true);
      verifyAcked(lock);
      expect(cuts).toBeGreaterThan(5);
      counts.linear += cuts;
      counts.linearOps += rig.flash.operations;
    });
  });
}
