import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ProtocolError } from './errors';
import { toHex } from './crypto';
import { type Entry, type KeyPolicy, type Table, DEFAULT_LOCK_POLICY, LIMITS, emptyTable, encodeTable, tableDigest, decodeTableBytes } from './table';
import { type Op, applyOps, diffTables, opFromCbor, opToCbor } from './ops';
import { decode, encode } from './cbor';
import { FC_RUNS, propertyTimeout } from './fuzz/properties';

const MODEL_RUNS = Math.max(200, Math.floor(FC_RUNS / 10));
/** Model runs build and apply whole tables: tens of ms each on a loaded 2-core machine. */
const MODEL_TIMEOUT = propertyTimeout(MODEL_RUNS, 50);

const ID_MAX = 12;
const SECRET = new Uint8Array(32).fill(7);

/** An entry for credId `c`; guests chain to a lower credId so generated tables are acyclic. */
function entryArb(c: number): fc.Arbitrary<Entry> {
  const holders = c > 1 ? (['resident', 'staff', 'guest', 'partner'] as const) : (['resident', 'staff', 'partner'] as const);
  return fc
    .record({
      holder: fc.constantFrom(...holders),
      parent: fc.integer({ min: 1, max: Math.max(1, c - 1) }),
      partnerId: fc.integer({ min: 1, max: 3 }),
      keyId: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
      validUntil: fc.option(fc.integer({ min: 1, max: 5 }), { nil: undefined }),
    })
    .map(({ holder, parent, partnerId, keyId, validUntil }) => {
      const e: Entry = { credId: c, kind: 'phone', holder, secret: SECRET, flags: 0 };
      if (holder === 'guest') e.parent = parent;
      if (holder === 'partner') e.partnerId = partnerId;
      else if (keyId !== undefined) e.keyId = keyId;
      if (validUntil !== undefined) e.validUntil = 1_800_000_000 + validUntil;
      return e;
    });
}

const keyPolicyArb: fc.Arbitrary<KeyPolicy> = fc
  .record({ keyId: fc.integer({ min: 1, max: 3 }), doorcodesEnabled: fc.boolean() })
  .map((p) => ({ ...p }));

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.integer({ min: 1, max: ID_MAX }).chain((c) => entryArb(c).map((entry): Op => ({ op: 'put', entry }))),
  fc.integer({ min: 1, max: ID_MAX }).map((credId): Op => ({ op: 'remove', credId })),
  fc.integer({ min: 1, max: 3 }).map((partnerId): Op => ({ op: 'removePartner', partnerId })),
  fc.integer({ min: 1, max: 3 }).map((keyId): Op => ({ op: 'removeKey', keyId })),
  keyPolicyArb.map((policy): Op => ({ op: 'setKeyPolicy', policy })),
  fc.integer({ min: 1, max: 255 }).map((n): Op => ({ op: 'setLockPolicy', policy: { ...DEFAULT_LOCK_POLICY, wrongCodeLimit: n } })),
);

/** The naive model of SPEC §5.2: ops in order, then the cascade, then the parent check. */
function modelApply(t: Table, ops: readonly Op[]): Table | 'INVALID_OP' {
  const entries = new Map(t.entries);
  const kp = new Map(t.keyPolicies);
  let policy = t.policy;
  const removed = new Set<number>();
  for (const o of ops) {
    if (o.op === 'put') entries.set(o.entry.credId, o.entry);
    else if (o.op === 'remove') {
      if (!entries.has(o.credId)) return 'INVALID_OP';
      entries.delete(o.credId);
      removed.add(o.credId);
    } else if (o.op === 'removePartner' || o.op === 'removeKey') {
      for (const [id, e] of [...entries]) {
        if (o.op === 'removePartner' ? e.partnerId === o.partnerId : e.keyId === o.keyId) {
          entries.delete(id);
          removed.add(id);
        }
      }
      if (o.op === 'removeKey') kp.delete(o.keyId);
    } else if (o.op === 'setKeyPolicy') kp.set(o.policy.keyId, o.policy);
    else policy = o.policy;
  }
  // Cascade: repeat until nothing changes — a guest goes when its parent was removed by this delta and is absent.
  const gone = new Set([...removed].filter((id) => !entries.has(id)));
  for (let changed = true; changed; ) {
    changed = false;
    for (const [id, e] of [...entries]) {
      if (e.parent !== undefined && gone.has(e.parent)) {
        entries.delete(id);
        gone.add(id);
        changed = true;
      }
    }
  }
  for (const e of entries.values()) if (e.parent !== undefined && !entries.has(e.parent)) return 'INVALID_OP';
  return { entries, keyPolicies: kp, policy };
}

function refusalOf(f: () => unknown): ProtocolError {
  try {
    f();
  } catch (e) {
    if (e instanceof ProtocolError) return e;
    throw e;
  }
  throw new Error('expected a ProtocolError');
}

describe('applyOps agrees with a naive model', () => {
  it('random op batches from random states (incl. cascade), refused batches leave the input untouched', () => {
    fc.assert(
      fc.property(fc.array(fc.array(opArb, { maxLength: 8 }), { minLength: 1, maxLength: 8 }), (batches) => {
        let t = emptyTable();
        for (const ops of batches) {
          const before = toHex(encodeTable(t));
          const want = modelApply(t, ops);
          if (want === 'INVALID_OP') {
            expect(refusalOf(() => applyOps(t, ops)).reason).toBe('INVALID_OP');
            expect(toHex(encodeTable(t))).toBe(before);
            continue;
          }
          const got = applyOps(t, ops);
          expect(toHex(encodeTable(t))).toBe(before); // never mutates its input
          expect(toHex(encodeTable(got))).toBe(toHex(encodeTable(want)));
          t = got;
        }
      }),
      { numRuns: MODEL_RUNS },
    );
  }, MODEL_TIMEOUT);

  it('remove cascades transitively to guests, removePartner removes all of a partner in one op', () => {
    const g = (credId: number, parent: number): Entry => ({ credId, kind: 'phone', holder: 'guest', secret: SECRET, parent, flags: 0 });
    const t = applyOps(emptyTable(), [
      { op: 'put', entry: { credId: 1, kind: 'phone', holder: 'resident', secret: SECRET, flags: 0 } },
      { op: 'put', entry: g(2, 1) },
      { op: 'put', entry: g(3, 2) },
      { op: 'put', entry: { credId: 4, kind: 'phone', holder: 'partner', partnerId: 9, secret: SECRET, flags: 0 } },
      { op: 'put', entry: { credId: 5, kind: 'phone', holder: 'partner', partnerId: 9, secret: SECRET, flags: 0 } },
    ]);
    expect([...applyOps(t, [{ op: 'remove', credId: 1 }]).entries.keys()].sort()).toEqual([4, 5]);
    expect([...applyOps(t, [{ op: 'removePartner', partnerId: 9 }]).entries.keys()].sort()).toEqual([1, 2, 3]);
    // A put naming a parent that never existed is refused even when the delta also removes something.
    expect(refusalOf(() => applyOps(t, [{ op: 'remove', credId: 4 }, { op: 'put', entry: g(6, 99) }])).reason).toBe('INVALID_OP');
    expect(refusalOf(() => applyOps(t, [{ op: 'remove', credId: 77 }])).reason).toBe('INVALID_OP');
    expect(refusalOf(() => applyOps(t, [{ op: 'put', entry: { credId: 8, kind: 'phone', holder: 'partner', secret: SECRET, flags: 0 } }])).reason).toBe('MALFORMED');
  });

  it('Key- and partner-wide removals follow credentials that earlier ops of the same delta moved, added or removed', () => {
    const k = (credId: number, keyId: number): Entry => ({ credId, kind: 'phone', holder: 'resident', secret: SECRET, keyId, flags: 0 });
    const p = (credId: number, partnerId: number, keyId?: number): Entry => ({
      credId, kind: 'phone', holder: 'partner', secret: SECRET, partnerId, flags: 0, ...(keyId !== undefined ? { keyId } : {}),
    });
    const t = applyOps(emptyTable(), [{ op: 'put', entry: k(1, 10) }, { op: 'put', entry: k(2, 10) }, { op: 'put', entry: p(3, 7, 10) }, { op: 'put', entry: p(4, 7) }]);
    const ids = (ops: Op[]): number[] => [...applyOps(t, ops).entries.keys()].sort((a, b) => a - b);
    // The index is built by the first group removal; later puts and removes keep it in step.
    expect(ids([{ op: 'removeKey', keyId: 99 }, { op: 'put', entry: k(1, 11) }, { op: 'removeKey', keyId: 10 }])).toEqual([1, 4]);
    expect(ids([{ op: 'removeKey', keyId: 99 }, { op: 'put', entry: k(5, 10) }, { op: 'removeKey', keyId: 10 }])).toEqual([4]);
    expect(ids([{ op: 'removePartner', partnerId: 7 }, { op: 'put', entry: p(4, 7) }])).toEqual([1, 2, 4]);
    expect(ids([{ op: 'removePartner', partnerId: 7 }, { op: 'removeKey', keyId: 10 }])).toEqual([]);
    expect(ids([{ op: 'removeKey', keyId: 10 }, { op: 'removePartner', partnerId: 7 }, { op: 'put', entry: k(3, 10) }, { op: 'removeKey', keyId: 10 }])).toEqual([]);
    expect(refusalOf(() => applyOps(t, [{ op: 'removeKey', keyId: 10 }, { op: 'remove', credId: 1 }])).reason).toBe('INVALID_OP');
  });

  it('a delta of 20,000 Key-wide removals over a 4,000-entry table applies like the naive model (indexed, one pass)', () => {
    let t = emptyTable();
    const puts: Op[] = [];
    for (let c = 1; c <= 4000; c++) puts.push({ op: 'put', entry: { credId: c, kind: 'phone', holder: 'resident', secret: SECRET, keyId: (c % 50) + 1, flags: 0 } });
    t = applyOps(t, puts);
    const ops: Op[] = Array.from({ length: 20_000 }, (_, i): Op => ({ op: 'removeKey', keyId: i % 2 === 0 ? 100_000 + i : (i % 25) + 1 }));
    const got = applyOps(t, ops);
    expect(toHex(encodeTable(got))).toBe(toHex(encodeTable(modelApply(t, ops) as Table)));
    expect(got.entries.size).toBe(4000 - 25 * 80);
  });

  it('over-limit results are refused with OVER_LIMIT', () => {
    const ops: Op[] = [];
    for (let k = 0; k <= LIMITS.maxKeyPolicies; k++) ops.push({ op: 'setKeyPolicy', policy: { keyId: k, doorcodesEnabled: false } });
    expect(refusalOf(() => applyOps(emptyTable(), ops)).reason).toBe('OVER_LIMIT');
    expect(refusalOf(() => applyOps(emptyTable(), new Array<Op>(LIMITS.maxOpsPerDelta + 1).fill({ op: 'removeKey', keyId: 1 }))).reason).toBe('OVER_LIMIT');
  });
});

/** A valid table from candidate entries: drop, in credId order, any whose parent was not kept. */
function tableOf(cands: Entry[], policies: KeyPolicy[], wrongCodeLimit: number): Table {
  const entries = new Map<number, Entry>();
  for (const e of [...cands].sort((a, b) => a.credId - b.credId)) if (e.parent === undefined || entries.has(e.parent)) entries.set(e.credId, e);
  return { entries, keyPolicies: new Map(policies.map((p) => [p.keyId, p])), policy: { ...DEFAULT_LOCK_POLICY, wrongCodeLimit } };
}

const tableArb = fc
  .record({
    ids: fc.uniqueArray(fc.integer({ min: 1, max: ID_MAX }), { maxLength: ID_MAX }),
    policies: fc.uniqueArray(keyPolicyArb, { maxLength: 3, selector: (p) => p.keyId }),
    wcl: fc.integer({ min: 1, max: 3 }),
  })
  .chain(({ ids, policies, wcl }) => fc.tuple(...ids.map(entryArb)).map((es) => tableOf(es, policies, wcl)));

/** `to` as an edit of `from`: keep, drop or rewrite each entry, add new ones. */
const pairArb = tableArb.chain((from) =>
  fc
    .record({
      fate: fc.array(fc.constantFrom('keep', 'keep', 'drop', 'rewrite'), { minLength: ID_MAX, maxLength: ID_MAX }),
      fresh: fc.uniqueArray(fc.integer({ min: 1, max: ID_MAX }), { maxLength: 4 }),
      policies: fc.uniqueArray(keyPolicyArb, { maxLength: 3, selector: (p) => p.keyId }),
      wcl: fc.integer({ min: 1, max: 3 }),
    })
    .chain(({ fate, fresh, policies, wcl }) => {
      const rewrites = [...from.entries.keys()].filter((id) => fate[id - 1] === 'rewrite');
      const added = fresh.filter((id) => !from.entries.has(id));
      return fc.tuple(...[...rewrites, ...added].map(entryArb)).map((news) => {
        const kept = [...from.entries.values()].filter((e) => fate[e.credId - 1] === 'keep');
        return [from, tableOf([...kept, ...news], policies, wcl)] as const;
      });
    }),
);

describe('diffTables', () => {
  it('applyOps(from, diffTables(from, to)) has the digest of `to` (random table pairs)', () => {
    fc.assert(
      fc.property(pairArb, ([from, to]) => {
        let ops: Op[];
        try {
          ops = diffTables(from, to);
        } catch (e) {
          // The only pair the op set cannot express: a Key keeps credentials but loses its door policy.
          expect((e as ProtocolError).reason).toBe('INVALID_OP');
          const keys = new Set([...to.entries.values()].map((x) => x.keyId));
          expect([...from.keyPolicies.keys()].some((k) => !to.keyPolicies.has(k) && keys.has(k))).toBe(true);
          return;
        }
        expect(toHex(tableDigest(applyOps(from, ops)))).toBe(toHex(tableDigest(to)));
        // and the ops survive the wire
        const wire = ops.map((o) => opFromCbor(decode(encode(opToCbor(o)))));
        expect(toHex(tableDigest(applyOps(from, wire)))).toBe(toHex(tableDigest(to)));
      }),
      { numRuns: MODEL_RUNS },
    );
  }, MODEL_TIMEOUT);

  it('re-parented ancestor: spells out removals the end-of-delta cascade would miss', () => {
    const e = (credId: number, parent?: number): Entry =>
      parent === undefined
        ? { credId, kind: 'phone', holder: 'resident', secret: SECRET, flags: 0 }
        : { credId, kind: 'phone', holder: 'guest', secret: SECRET, parent, flags: 0 };
    const from = tableOf([e(1), e(5, 1), e(6, 5)], [], 5);
    const to = tableOf([e(2), e(5, 2)], [], 5);
    expect(toHex(tableDigest(applyOps(from, diffTables(from, to))))).toBe(toHex(tableDigest(to)));
  });

  it('revoking a partner is one removePartner op whatever it held', () => {
    for (const n of [1, 10, 1000]) {
      const cands: Entry[] = [];
      for (let i = 0; i < n; i++) cands.push({ credId: 100 + i, kind: 'phone', holder: 'partner', partnerId: 4, secret: SECRET, flags: 0 });
      const from = tableOf([...cands, { credId: 1, kind: 'phone', holder: 'resident', secret: SECRET, flags: 0 }], [], 5);
      const to = tableOf([{ credId: 1, kind: 'phone', holder: 'resident', secret: SECRET, flags: 0 }], [], 5);
      expect(diffTables(from, to)).toEqual([{ op: 'removePartner', partnerId: 4 }]);
    }
  });
});

describe('table encoding', () => {
  it('decodeTable(encodeTable(t)) re-encodes identically and keeps the digest', () => {
    fc.assert(
      fc.property(tableArb, (t) => {
        const b = encodeTable(t);
        expect(toHex(encode(decode(b)))).toBe(toHex(b));
        expect(toHex(tableDigest(decodeTableBytes(b)))).toBe(toHex(tableDigest(t)));
      }),
      { numRuns: MODEL_RUNS },
    );
  }, MODEL_TIMEOUT);
});
