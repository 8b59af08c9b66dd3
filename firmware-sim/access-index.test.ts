// The secret index is carried across updates (carryTableIndex) instead of rebuilt: after
// any sequence of deltas it must equal a full rebuild of the table in force (seeded
// property test), and a lock's decisions after a delta must see the delta.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { type Entry, type Op, type Table, applyOps, emptyTable } from '../protocol';
import { buildTableIndex, carryTableIndex, tableIndex, type TableIndex } from './access';

const KINDS = ['phone', 'doorcode', 'keycard'] as const;

/** Secrets from a small pool so several entries share one (a phone on several Keys). */
function secretFor(kind: Entry['kind'], n: number): Uint8Array {
  const s = new Uint8Array(kind === 'phone' ? 32 : 16);
  s[0] = n;
  s[1] = KINDS.indexOf(kind);
  return s;
}

function entry(credId: number, kind: Entry['kind'], secretNo: number, keyId: number, partnerId: number | undefined, parent: number | undefined): Entry {
  const e: Entry = { credId, kind, holder: partnerId !== undefined ? 'partner' : parent !== undefined ? 'guest' : 'resident', secret: secretFor(kind, secretNo), keyId, flags: 0 };
  if (partnerId !== undefined) e.partnerId = partnerId;
  if (parent !== undefined) e.parent = parent;
  return e;
}

/** A comparable picture of an index: key → credIds, and the very entry objects. */
function picture(ix: TableIndex): Map<string, Entry[]> {
  return new Map([...ix.bySecret.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

const opArb = fc.oneof(
  { weight: 5, arbitrary: fc.record({ t: fc.constant('put' as const), credId: fc.integer({ min: 1, max: 60 }), kind: fc.constantFrom(...KINDS), secretNo: fc.integer({ min: 0, max: 12 }), keyId: fc.integer({ min: 1, max: 4 }), partner: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }), parent: fc.option(fc.integer({ min: 1, max: 60 }), { nil: undefined }) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('remove' as const), credId: fc.integer({ min: 1, max: 60 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('removeKey' as const), keyId: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('removePartner' as const), partnerId: fc.integer({ min: 1, max: 3 }) }) },
);
type GenOp = typeof opArb extends fc.Arbitrary<infer T> ? T : never;

/** Generated ops that applyOps accepts on `t` (a guest's parent must exist, and not be itself). */
function toOps(t: Table, gen: GenOp[]): Op[] {
  const present = new Set(t.entries.keys());
  const ops: Op[] = [];
  for (const g of gen) {
    if (g.t === 'put') {
      const parent = g.parent !== undefined && g.parent !== g.credId && present.has(g.parent) && g.partner === undefined ? g.parent : undefined;
      ops.push({ op: 'put', entry: entry(g.credId, g.kind, g.secretNo, g.keyId, g.partner, parent) });
      present.add(g.credId);
    } else if (g.t === 'remove') {
      if (!present.has(g.credId)) continue;
      ops.push({ op: 'remove', credId: g.credId });
      present.delete(g.credId);
    } else if (g.t === 'removeKey') ops.push({ op: 'removeKey', keyId: g.keyId });
    else ops.push({ op: 'removePartner', partnerId: g.partnerId });
  }
  return ops;
}

describe('carryTableIndex: the incremental secret index', () => {
  it('equals a full rebuild after every delta of a random sequence (seeded property)', () => {
    const seed = Number(process.env.FC_SEED ?? 20261127);
    fc.assert(
      fc.property(fc.array(fc.array(opArb, { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 25 }), (deltas) => {
        let t: Table = emptyTable();
        tableIndex(t);
        let applied = 0;
        for (const gen of deltas) {
          let next: Table;
          try {
            next = applyOps(t, toOps(t, gen));
          } catch {
            continue; // a delta applyOps refuses changes nothing (a cascade target gone, say)
          }
          carryTableIndex(t, next);
          expect(picture(tableIndex(next))).toEqual(picture(buildTableIndex(next)));
          t = next;
          applied++;
        }
        return applied >= 0;
      }),
      { seed, numRuns: Number(process.env.FC_RUNS ?? 150) },
    );
  });

  it('lists entries sharing a secret by ascending credId however the table was reached', () => {
    const a = applyOps(emptyTable(), [{ op: 'put', entry: entry(9, 'phone', 1, 1, undefined, undefined) }]);
    tableIndex(a);
    const b = applyOps(a, [{ op: 'put', entry: entry(3, 'phone', 1, 2, undefined, undefined) }]);
    carryTableIndex(a, b);
    expect((tableIndex(b).bySecret.values().next().value as Entry[]).map((e) => e.credId)).toEqual([3, 9]);
    expect(picture(tableIndex(b))).toEqual(picture(buildTableIndex(b)));
  });

  it('moves the index: the old table gets a fresh, correct one if decided on again', () => {
    const a = applyOps(emptyTable(), [{ op: 'put', entry: entry(1, 'keycard', 1, 1, undefined, undefined) }]);
    const ixA = tableIndex(a);
    const b = applyOps(a, [{ op: 'remove', credId: 1 }]);
    carryTableIndex(a, b);
    expect(tableIndex(b)).toBe(ixA);
    expect(tableIndex(b).bySecret.size).toBe(0);
    expect(tableIndex(a)).not.toBe(ixA);
    expect(tableIndex(a).bySecret.size).toBe(1);
  });
});
