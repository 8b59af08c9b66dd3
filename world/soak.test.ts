// A short seeded slice of the soak (world/soak.ts) in CI; the long run is a command:
// locksync soak --days 30 --locks 300 --seed N.
import { describe, expect, it } from 'vitest';
import { formatSoak, heapBound, runSoak } from './soak';

describe('soak (short seeded slice)', () => {
  it('2 simulated days, 12 locks: every unlock matches the reference, every revocation lands on the first completed sync, heap flat', async () => {
    const r = await runSoak({ days: 2, locks: 12, seed: 'ci-slice', editsPer10LocksDay: 8, linkDropRate: 0.15, powerCutRate: 0.08 });
    console.log(formatSoak(r));
    expect(r.steps).toBeGreaterThan(20);
    expect(r.unlocksChecked).toBeGreaterThan(10);
    expect(r.granted).toBeGreaterThan(0);
    expect(r.revocations).toBeGreaterThan(0);
    expect(r.revocationsLanded).toBeGreaterThan(0);
    expect(r.linkDrops + r.powerCuts).toBeGreaterThan(0);
    // runSoak fails the run itself when a day's heap (less flash) passes the bound; this
    // says the figures it judged were taken.
    expect(r.heapNetStartBytes).toBeGreaterThan(0);
    expect(r.heapNetMaxBytes).toBeLessThanOrEqual(heapBound(r.heapNetStartBytes));
  }, 300_000);
});
