// The conformance suite proved both ways, in-process: the reference lock passes every case,
// and every deliberately broken variant is caught. Each variant runs the case that names its
// bug (a catch by any case would do; naming it keeps CI in seconds and pins which case
// guards which rule); `locksync conformance --self-test` runs the whole table per variant.
import { afterAll, describe, expect, it } from 'vitest';
import { CASES, MUTANTS, runConformance, selfTest, simTarget, suiteIdentity, junitReport, humanReport } from './index';

const SEED = 'ci-1';
const id = suiteIdentity(SEED, 'lk-conf-0001');

/** Which case must catch which broken variant. */
const CAUGHT_BY: Record<string, string> = {
  'accepts-rollback': 'refuse.rollback-replay',
  'skips-digest-check': 'refuse.digest-mismatch',
  'leaks-partial-update': 'refuse.digest-mismatch',
  'wrong-error-code': 'refuse.broken-chain-version',
  'reuses-nonce': 'hello.fresh-nonce',
  'ignores-time-nonce': 'time.bad-nonce',
  'accepts-time-rollback': 'time.rollback',
  'accepts-time-for-other-lock': 'time.wrong-lock',
  'ignores-lease': 'time.lease',
  'accepts-replayed-unlock': 'unlock.replay',
  'accepts-expired-challenge': 'unlock.expired',
  'wrong-audit-chain': 'audit.export-chain',
  'no-resume': 'framing.resume',
  'no-idle-timeout': 'session.idle-timeout',
  'no-session-lifetime': 'session.lifetime',
  'second-phone-steals-session': 'session.second-connection',
  'batch-continues-after-refusal': 'batch.refusal-ends',
  'batch-takes-any-item': 'batch.malformed',
};

describe('conformance suite on the in-process reference lock', () => {
  const target = simTarget(id);
  afterAll(() => target.close());

  it(`passes every case (seed ${SEED}), and the reports name each case's SPEC section`, async () => {
    const r = await runConformance(target, id);
    const failed = r.results.filter((c) => c.status !== 'passed');
    expect(failed, `seed ${SEED}`).toEqual([]);
    expect(r.results.map((c) => c.id)).toEqual(CASES.map((c) => c.id));
    expect(r.results.length).toBeGreaterThanOrEqual(40);
    const text = humanReport(r);
    for (const c of CASES) expect(text).toContain(`PASS  ${c.id.padEnd(28)} ${c.spec}`);
    const xml = junitReport(r, 'locksync conformance');
    expect(xml).toContain(`tests="${CASES.length}" failures="0"`);
    expect(xml).toContain('<testcase name="time.rollback (§8.1 step 4 [R-TIME-1])" classname="conformance.time"');
    // Every case that the SPEC states with a MUST id names it (session limits have none).
    for (const c of CASES) if (!c.id.startsWith('session.')) expect(c.requirements.length, c.id).toBeGreaterThan(0);
  }, 60_000);

  it('every case id is unique, names a SPEC section, and carries a requirements list', () => {
    expect(new Set(CASES.map((c) => c.id)).size).toBe(CASES.length);
    for (const c of CASES) {
      expect(c.spec, c.id).toMatch(/§\d/);
      expect(Array.isArray(c.requirements), c.id).toBe(true);
    }
  });
});

describe('broken lock variants', () => {
  it('at least 8 variants, each assigned the case that must catch it', () => {
    expect(MUTANTS.length).toBeGreaterThanOrEqual(8);
    expect(Object.keys(CAUGHT_BY).sort()).toEqual(MUTANTS.map((m) => m.id).sort());
    for (const caseId of Object.values(CAUGHT_BY)) expect(CASES.some((c) => c.id === caseId), caseId).toBe(true);
  });

  it.each(MUTANTS.map((m) => [m.id, m] as const))('%s is caught', async (mutantId, mutant) => {
    const caseId = CAUGHT_BY[mutantId] as string;
    const t = simTarget(id, { mutant });
    try {
      const r = await runConformance(t, id, { only: [caseId] });
      const res = r.results[0];
      expect(res?.id).toBe(caseId);
      expect(res?.status, `${mutantId} passed ${caseId} (seed ${SEED}): ${mutant.description}`).toBe('failed');
    } finally {
      await t.close();
    }
    // The same case passes on the reference lock when run alone: the catch is the bug's.
    const ref = simTarget(id);
    try {
      const r = await runConformance(ref, id, { only: [caseId] });
      expect(r.results[0]?.status, `${caseId} on the reference lock: ${r.results[0]?.message ?? ''}`).toBe('passed');
    } finally {
      await ref.close();
    }
  }, 30_000);

  it('the self-test reports the mutation score as caught / variants', async () => {
    // Two variants through the whole table (fail-fast), to exercise the self-test itself.
    const two = MUTANTS.filter((m) => m.id === 'reuses-nonce' || m.id === 'wrong-error-code');
    const s = await selfTest(id, { mutants: two });
    expect(s.reference.failed).toBe(0);
    expect(s.caught).toBe(2);
    expect(s.score).toBe(1);
    expect(s.variants.map((v) => v.caughtBy[0]?.id)).toEqual(two.map((m) => CAUGHT_BY[m.id]));
  }, 60_000);
});

describe('conformance/README.md', () => {
  it('lists every case with its SPEC section, and every broken variant with the case that catches it', async () => {
    const fs = await import('node:fs');
    const text = fs.readFileSync(new URL('./README.md', import.meta.url), 'utf8');
    for (const c of CASES) expect(text, c.id).toContain(`| \`${c.id}\` | ${c.spec} |`);
    for (const m of MUTANTS) expect(text, m.id).toContain(`| \`${m.id}\` | ${m.description} | \`${CAUGHT_BY[m.id] ?? ''}\` |`);
    expect(text).toContain(`Mutation score: ${MUTANTS.length}/${MUTANTS.length}`);
  });
});
