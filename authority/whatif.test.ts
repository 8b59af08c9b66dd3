// The manager's what-if: the spread model's arithmetic, the CLI over a real property, and the
// prediction checked against the world (simulated locks, real authority, phone agents).
import { describe, expect, it } from 'vitest';
import { type WhatIfModel, inForceProbability, maxCurveGap, quantiles, renderWhatIfHtml, spreadAt, whatIfReport, worstCaseSeconds } from './whatif';
import { sampleModel, validateWhatIf } from '../world/whatif-sim';
import { locksync, tempDir } from '../test/failure-paths/harness';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';

const offline = (passagesPerHour: number, appSyncShare = 1): WhatIfModel['doors'][number] => ({ name: 'd', kind: 'private', connected: false, passagesPerHour, appSyncShare });

describe('revocation spread model', () => {
  it('an offline door without a lease: 1 − e^(−μt), μ = passages × app-sync share', () => {
    const d = offline(2, 0.5); // one sync an hour
    expect(inForceProbability(d, 3600, { pollSeconds: 300, leaseSeconds: 0 })).toBeCloseTo(1 - Math.exp(-1), 12);
    expect(inForceProbability(d, 0, { pollSeconds: 300, leaseSeconds: 0 })).toBe(0);
  });

  it('a lease bounds the wait: certain by L, and already in force at 0 where the last sync is older than L', () => {
    const d = offline(1); // μ = 1/h
    const m = { pollSeconds: 300, leaseSeconds: 2 * 3600 };
    expect(inForceProbability(d, 2 * 3600, m)).toBe(1);
    expect(inForceProbability(d, 0, m)).toBeCloseTo(Math.exp(-2), 12); // P(B ≥ L)
    const t = 3600; // P(T > t) = e^(−μt)(1 − e^(−μ(L−t)))
    expect(1 - inForceProbability(d, t, m)).toBeCloseTo(Math.exp(-1) * (1 - Math.exp(-1)), 12);
    // A door nobody passes: never without a lease, exactly at L with one.
    expect(inForceProbability(offline(0), 1e9, { pollSeconds: 300, leaseSeconds: 0 })).toBe(0);
    expect(inForceProbability(offline(0), 2 * 3600 - 1, m)).toBe(0);
  });

  it('connected doors get it within one poll; quantiles and the worst case follow the curve', () => {
    const model: WhatIfModel = { pollSeconds: 600, leaseSeconds: 0, doors: [{ name: 'lobby', kind: 'communal', connected: true, passagesPerHour: 0, appSyncShare: 0 }] };
    expect(spreadAt(model, 300)).toBeCloseTo(0.5, 12);
    const q = quantiles(model);
    expect(q.p50).toBeCloseTo(300, 0);
    expect(q.p99).toBeCloseTo(594, 0);
    expect(q.all).toBe(600);
    const mixed: WhatIfModel = { ...model, doors: [...model.doors, offline(0)] };
    expect(worstCaseSeconds(mixed)).toBe(Infinity); // no lease: a door nobody syncs at is unbounded
    expect(worstCaseSeconds({ ...mixed, leaseSeconds: 86400 })).toBe(86400);
    expect(quantiles(mixed).p99).toBe(Infinity);
  });

  it('the curve gap is 1/n for n evenly spread samples of a uniform curve, and 1 for samples all at the end', () => {
    const model: WhatIfModel = { pollSeconds: 100, leaseSeconds: 0, doors: Array.from({ length: 4 }, () => ({ name: 'l', kind: 'communal' as const, connected: true, passagesPerHour: 0, appSyncShare: 0 })) };
    expect(maxCurveGap(model, [0, 25, 50, 75])).toBeCloseTo(0.25, 12); // a step function vs a line: 1/n
    expect(maxCurveGap(model, [100, 100, 100, 100])).toBeCloseTo(1, 12);
  });

  it('the report carries the lease table and an SVG plot', () => {
    const r = whatIfReport(sampleModel());
    expect(r.leases.map((l) => l.leaseSeconds)).toEqual([0, 86400, 8 * 3600, 3 * 86400, 7 * 86400].sort((a, b) => a - b));
    expect(r.leases[0]?.quantiles.all).toBe(Infinity);
    expect(r.quantiles.all).toBe(8 * 3600);
    const html = renderWhatIfHtml(r, { label: 'simulated', seconds: [1, 2, 3] });
    expect(html).toContain('<svg');
    expect(html).toContain('stroke-dasharray="4 3"'); // the simulated curve
  });
});

describe('what-if against the world', () => {
  it('every door stops honouring the partner exactly when the model says, and the curves agree', async () => {
    const model = sampleModel(1);
    const r = await validateWhatIf(model, ['ci-1']);
    expect(r.disagreements).toEqual([]);
    expect(r.observed).toHaveLength(model.doors.length);
    // 23 doors: the largest gap between a sample's step curve and its true distribution
    // exceeds 0.34 with probability < 1 % (Kolmogorov–Smirnov, 1.63/√23). `npx tsx
    // world/whatif-sim.ts --seeds 5 --scale 2` runs 230 doors for a tighter figure.
    expect(r.gap).toBeLessThan(0.34);
  }, 300_000);
});

describe('locksync authority what-if', () => {
  it('reads the partner\'s doors from the property and prints quantiles, lease table and a plot', async () => {
    const dir = tempDir('locksync-whatif-');
    const db = join(dir, 'p.db');
    const run = (args: string[]) => locksync(['authority', ...args, '--db', db], { deadlineMs: 120_000 });
    expect((await run(['init', '--seed', 'w', '--lease', '28800'])).code).toBe(0);
    expect((await run(['door', 'add', '--name', 'Lobby', '--communal'])).code).toBe(0);
    expect((await run(['door', 'add', '--name', 'Unit 1'])).code).toBe(0);
    expect((await run(['partner', 'authorize', '--name', 'Parcel Co'])).code).toBe(0);
    for (const door of ['1', '2']) {
      expect((await run(['partner', 'assign-door', '--partner', '1', '--door', door])).code).toBe(0);
      expect((await run(['provision-lock', '--door', door, '--out', join(dir, `b${door}.json`)])).code).toBe(0);
    }
    const html = join(dir, 'spread.html');
    const r = await run(['what-if', '--partner', '1', '--html', html, '--json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { doors: number; leaseSeconds: number; quantiles: { all: number } };
    expect(report.doors).toBe(2);
    expect(report.leaseSeconds).toBe(28800);
    expect(report.quantiles.all).toBe(28800);
    expect(readFileSync(html, 'utf8')).toContain('<svg');
    const bad = await run(['what-if', '--partner', '1', '--app-sync', '1.5']);
    expect(bad.code).toBe(2);
  }, 300_000);
});
