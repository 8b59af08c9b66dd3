// Design goals expressed as byte counts (DESIGN.md; issue 2): bytes, not time, so they are
// exact and belong in tests.
import { describe, expect, it } from 'vitest';
import { encode } from './cbor';
import { encodeEntry, encodeTable, encodedTableEntryCount, lockPolicyToCbor, tableDigest } from './table';
import { applyOps, diffTables } from './ops';
import { encodeMessage } from './messages';
import { applyUpdate, initialTableState, snapshotSmallerFromEmpty, snapshotSmallerFromEmptyByEntries, updateToCbor } from './update';
import { type LockPolicy, type Table, DEFAULT_LOCK_POLICY, emptyTable } from './table';
import { KEYS, LOCK_ID, PARTNER_ID, baseTable, deltaFrom, residentPhone, snapshotOf } from './vectors/world';

/** Nuki's time-limited authorization record is 75 B; ours must fit 64. */
export const PHONE_ENTRY_GOAL_BYTES = 64;
/** A signed partner revocation must stay small whatever the partner held. */
export const REMOVE_PARTNER_DELTA_GOAL_BYTES = 160;

describe('size goals', () => {
  it('a phone credential with a schedule and a validity window encodes in <= 64 bytes', () => {
    const e = residentPhone(0xffff); // 3-byte credId, Key id, one window, both validity bounds
    expect(e.schedule?.length).toBe(1);
    expect(e.validFrom).toBeDefined();
    expect(e.validUntil).toBeDefined();
    expect(encodeEntry(e).length).toBeLessThanOrEqual(PHONE_ENTRY_GOAL_BYTES);
  });

  it('the signed "remove partner P" delta message is <= 160 bytes, the same whether P held 10 or 1,000 credentials', () => {
    const sizes: number[] = [];
    for (const held of [10, 1000]) {
      const from = baseTable(held);
      const s0 = initialTableState(LOCK_ID, [KEYS.root.publicKey]);
      const r = applyUpdate(s0, snapshotOf(from, { version: 1 }));
      if (!r.ok) throw r.error;
      const to = { ...from, entries: new Map([...from.entries].filter(([, e]) => e.partnerId !== PARTNER_ID)) };
      const ops = diffTables(from, to);
      expect(ops).toEqual([{ op: 'removePartner', partnerId: PARTNER_ID }]);
      const delta = deltaFrom(r.state, ops, { version: 123_456 });
      expect(delta.head.head.digest).toEqual(tableDigest(to));
      const msg = encodeMessage({ type: 'delta', update: delta });
      expect(msg.length).toBeLessThanOrEqual(REMOVE_PARTNER_DELTA_GOAL_BYTES);
      expect(encode(updateToCbor(delta)).length).toBeLessThan(msg.length);
      const applied = applyUpdate(r.state, delta);
      expect(applied.ok && applied.state.table.entries.size).toBe(3);
      sizes.push(msg.length);
    }
    expect(sizes[0]).toBe(sizes[1]);
  });
});

describe('choosing a snapshot over a delta from the empty table without building the delta', () => {
  // The authority serves a fresh lock (version 0) a snapshot without building the delta when
  // snapshotSmallerFromEmpty says the snapshot is smaller; that must be true of the bytes,
  // for every size and every lock policy, the largest encodings included.
  const policies: LockPolicy[] = [
    DEFAULT_LOCK_POLICY, // equal to the empty table's: the delta leaves it out
    { wrongCodeLimit: 5, lockoutSeconds: 60, leaseSeconds: 0, relockSeconds: 5, dailyCodeSlots: 16 }, // small encodings
    { wrongCodeLimit: 255, lockoutSeconds: 255, leaseSeconds: 0xffff_ffff, relockSeconds: 3600, dailyCodeSlots: 256 }, // largest
  ];
  it('whenever it answers yes, the snapshot message is smaller than the delta message; it answers yes from 16 entries at the latest', () => {
    const s0 = initialTableState(LOCK_ID, [KEYS.root.publicKey]);
    let yes = 0;
    for (const policy of policies)
      for (let n = 0; n <= 24; n++) {
          const ops = Array.from({ length: n }, (_, i) => ({ op: 'put' as const, entry: residentPhone(i + 1) }));
          const table: Table = { ...applyOps(emptyTable(), ops), policy: { ...policy } };
          const delta = encodeMessage({ type: 'delta', update: deltaFrom(s0, diffTables(emptyTable(), table), { version: 1 }) });
          const snapshot = encodeMessage({ type: 'snapshot', update: snapshotOf(table, { version: 1 }, []) });
          if (snapshotSmallerFromEmpty(table)) {
            yes++;
            expect(snapshot.length, `n=${n} policy=${JSON.stringify(policy)}`).toBeLessThan(delta.length);
          }
          if (n >= 16) expect(snapshotSmallerFromEmpty(table)).toBe(true);
      }
    expect(yes).toBeGreaterThan(0);
  });

  it('from the entry count alone it answers yes only where the whole-table check does, whatever the policies, and from 25 entries on', () => {
    // No lock policy encodes longer than the bound the count is weighed against, the
    // largest integers CBOR can carry here included.
    const MAX = Number.MAX_SAFE_INTEGER;
    expect(encode(lockPolicyToCbor({ wrongCodeLimit: MAX, lockoutSeconds: MAX, leaseSeconds: MAX, relockSeconds: MAX, dailyCodeSlots: MAX })).length).toBeLessThanOrEqual(51);
    const worst: LockPolicy = { wrongCodeLimit: MAX, lockoutSeconds: MAX, leaseSeconds: MAX, relockSeconds: MAX, dailyCodeSlots: MAX };
    let undecided = 0;
    for (const policy of [...policies, worst])
      for (let n = 0; n <= 40; n++) {
        const table: Table = { ...applyOps(emptyTable(), Array.from({ length: n }, (_, i) => ({ op: 'put' as const, entry: residentPhone(i + 1) }))), policy: { ...policy } };
        const byCount = snapshotSmallerFromEmptyByEntries(encodedTableEntryCount(encodeTable(table)));
        if (byCount) expect(snapshotSmallerFromEmpty(table), `n=${n}`).toBe(true);
        else undecided++;
        expect(byCount, `n=${n}`).toBe(n >= 25);
      }
    expect(undecided).toBe(4 * 25);
  });
});
