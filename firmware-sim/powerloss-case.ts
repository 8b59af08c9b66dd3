// The CI power-loss case both mode files run (one file per mode so the two run in parallel).
// POWERLOSS_CUTS cut points per mode (default 15,500: over 30,000 together).
// More on demand: npm run powerloss -- --cuts 200000 --seed N.
import { describe, expect, it } from 'vitest';
import { MOUNT_MAX_OPS, runPowerLoss } from './powerloss';

const CI_CUTS = Number(process.env.POWERLOSS_CUTS ?? 15_500);

export function powerLossCase(mode: 'atomic' | 'outOfOrder', seed: string): void {
  describe(`linear power-loss schedule (${mode})`, () => {
    it(`cuts power after each of ${CI_CUTS} operations of a long mixed run: old or new, nothing acknowledged lost, floor never down, bounded boot`, () => {
      const r = runPowerLoss({ cuts: CI_CUTS, seed, mode });
      console.log(`${mode}: ${r.cuts} cut points, ${r.cutsPerSecond.toFixed(0)} cuts/s wall, ${r.cutsPerCpuSecond.toFixed(0)} per CPU second (${r.steps} steps, ${r.epochs} boots, ${r.landedNew} new / ${r.landedOld} old)`);
      expect(r.cuts).toBeGreaterThanOrEqual(CI_CUTS);
      // The workload really mixes what it claims, and cuts land on both sides.
      for (const k of ['delta', 'snapshot', 'card', 'lockout', 'code', 'time', 'anchor', 'boot']) expect(r.stepKinds[k], k).toBeGreaterThan(0);
      expect(r.tableWrites.journalRecords).toBeGreaterThan(0);
      expect(r.tableWrites.bases).toBeGreaterThan(0);
      expect(r.landedNew).toBeGreaterThan(0);
      expect(r.landedOld).toBeGreaterThan(0);
      expect(r.maxMountOps).toBeLessThanOrEqual(MOUNT_MAX_OPS);
      expect(r.fullLockBoots).toBeGreaterThan(0);
    }, 3_600_000); // a hard deadline against hangs (the run is synchronous), not a timing goal
  });
}
