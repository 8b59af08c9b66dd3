// Fleet: how many simulated locks one process holds and syncs on the in-process link
// (`transport: 'sim'`). Each step builds a fresh world of N locks (each on its own emulated
// flash, provisioned and registered at the authority), gives every door the same Key held
// by a handful of residents, and runs one Door Sync per lock through the phone agent and
// the authority's HTTP API. N grows until the memory or time budget would be exceeded.

import { performance } from 'node:perf_hooks';
import { deriveSeed32, keyPairFromSeed, toHex } from '../protocol/index';
import { World } from '../world/index';
import { collectGarbage, mib, round } from './util';

export interface FleetStep {
  locks: number;
  ok: boolean;
  error?: string;
  credentialsPerLock: number;
  createSeconds: number;
  syncSeconds: number;
  syncsPerSecond: number;
  syncedLocks: number;
  heapUsedMiB: number;
  rssMiB: number;
  heapPerLockKiB: number;
  rssPerLockKiB: number;
  /** Emulated flash each lock holds in memory (sparse: the blocks it wrote), averaged. */
  flashBytesPerLock: number;
  externalPerLockKiB: number;
}

export interface FleetOptions {
  steps?: number[];
  /** Stop growing when a step took longer than this (s). */
  stepBudgetSeconds?: number;
  /** Stop growing when the next step would need more RSS than this (MiB, extrapolated). */
  rssBudgetMiB?: number;
  credentialsPerLock?: number;
  log?: (line: string) => void;
}

export interface FleetResult {
  steps: FleetStep[];
  stoppedBecause: string;
  maxLocksSynced: number;
}

export async function benchFleet(opts: FleetOptions = {}): Promise<FleetResult> {
  const steps = opts.steps ?? [100, 500, 1000, 2000, 4000];
  const stepBudget = opts.stepBudgetSeconds ?? 150;
  const rssBudget = opts.rssBudgetMiB ?? 6144;
  const residents = opts.credentialsPerLock ?? 10;
  const log = opts.log ?? (() => undefined);
  const keys = Array.from({ length: residents }, (_, i) => toHex(keyPairFromSeed(deriveSeed32('bench-fleet', `resident:${i}`)).publicKey));
  const out: FleetStep[] = [];
  let stoppedBecause = `every step up to ${steps.at(-1)?.toLocaleString('en-US')} locks ran`;
  for (const n of steps) {
    const last = out.at(-1);
    if (last) {
      const projectedRss = (last.rssPerLockKiB * n) / 1024 + mib(process.memoryUsage().rss);
      const projectedSeconds = ((last.createSeconds + last.syncSeconds) / last.locks) * n;
      if (projectedRss > rssBudget) {
        stoppedBecause = `${n.toLocaleString('en-US')} locks would need ~${Math.round(projectedRss)} MiB RSS (budget ${rssBudget} MiB)`;
        break;
      }
      if (projectedSeconds > stepBudget) {
        stoppedBecause = `${n.toLocaleString('en-US')} locks would take ~${Math.round(projectedSeconds)} s (budget ${stepBudget} s per step)`;
        break;
      }
    }
    collectGarbage();
    const before = process.memoryUsage();
    const t0 = performance.now();
    let world: World | undefined;
    const step: FleetStep = {
      locks: n,
      ok: false,
      credentialsPerLock: residents,
      createSeconds: 0,
      syncSeconds: 0,
      syncsPerSecond: 0,
      syncedLocks: 0,
      heapUsedMiB: 0,
      rssMiB: 0,
      heapPerLockKiB: 0,
      rssPerLockKiB: 0,
      flashBytesPerLock: 0,
      externalPerLockKiB: 0,
    };
    try {
      const doors = Array.from({ length: n }, (_, i) => ({ name: `unit-${i}` }));
      world = await World.create({ seed: `bench-fleet:${n}`, transport: 'sim', doors, phones: ['resident'] });
      const w = world;
      const a = w.authority;
      const first = a.batch(() => {
        const key = a.createKey({ name: 'Building', doors: [...w.doors.values()].map((d) => ({ doorId: d.doorId, doorcodesEnabled: false })) });
        const users = keys.map((pk, i) => {
          const u = a.addUser({ name: `Resident ${i}`, role: 'resident' });
          a.assignKey(u.id, key.id);
          if (i > 0) a.enrolUserDevice(u.id, pk);
          return u.id;
        });
        return users[0] as number;
      });
      w.enrolPhone('resident', { userId: first });
      step.createSeconds = round((performance.now() - t0) / 1000, 2);
      const t1 = performance.now();
      for (const door of w.doors.values()) {
        w.moveTo('resident', door.name);
        const r = await w.sync('resident', door.name, { attempts: 1 });
        if (!r.receiptDelivered || r.versionAfter === 0) throw new Error(`sync of ${door.name} did not land (v${r.versionAfter})`);
        step.syncedLocks++;
      }
      step.syncSeconds = round((performance.now() - t1) / 1000, 2);
      step.syncsPerSecond = round(n / step.syncSeconds, 1);
      collectGarbage();
      const after = process.memoryUsage();
      step.heapUsedMiB = mib(after.heapUsed);
      step.rssMiB = mib(after.rss);
      step.heapPerLockKiB = round((after.heapUsed - before.heapUsed) / n / 1024, 1);
      step.rssPerLockKiB = round((after.rss - before.rss) / n / 1024, 1);
      step.externalPerLockKiB = round((after.external + after.arrayBuffers - before.external - before.arrayBuffers) / n / 1024, 1);
      // Emulated flash is sparse: what each lock's device holds in memory (blocks it wrote).
      const doorsNow = [...w.doors.values()];
      step.flashBytesPerLock = Math.round(doorsNow.reduce((sum, d) => sum + d.flash.residentBytes, 0) / Math.max(1, doorsNow.length));
      step.ok = true;
    } catch (e) {
      step.error = (e as Error).message;
    } finally {
      await world?.close();
      world = undefined;
    }
    out.push(step);
    log(`  fleet: ${n.toLocaleString('en-US')} locks — create ${step.createSeconds} s, ${step.syncedLocks} syncs in ${step.syncSeconds} s, heap ${step.heapUsedMiB} MiB, rss ${step.rssMiB} MiB${step.error ? `, error: ${step.error}` : ''}`);
    if (!step.ok) {
      stoppedBecause = `${n.toLocaleString('en-US')} locks failed: ${step.error}`;
      break;
    }
  }
  const good = out.filter((s) => s.ok);
  return { steps: out, stoppedBecause, maxLocksSynced: good.at(-1)?.locks ?? 0 };
}
