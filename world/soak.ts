// Soak: a time-scaled property run in the in-process world (authority over HTTP, locks on
// emulated flash, phones on the `sim` link) for a number of simulated days, with every
// invariant checked at every step:
// - every unlock's decision matches the reference: GRANTED exactly when the table the
//   authority compiled for the version the lock holds (authority.tableAt) has the phone's
//   credential;
// - every revocation lands on the first sync after it that completes: the lock then holds
//   the authority's current version and no longer holds the revoked credential;
// - memory stays flat: after a full GC at the end of every simulated day, the heap less the
//   property's own data stays within HEAP_GROWTH_BOUND of its value at the end of the first
//   day (the warm-up: code compiled, caches and per-phone channels filled). The property's
//   data is what a month of use legitimately adds and its design bounds: the emulated
//   locks' flash contents (blocks written and not erased), the audit records their rings
//   hold (a young ring only grows; each is also indexed in the lock's RAM) and the entries
//   of their tables (held by the lock and cached by the authority), each charged at
//   DATA_BYTES (measured, rounded up).
// Faults: links dropped mid-sync (the agent retries), power cut at a flash operation
// during a sync (the lock reboots; the sync is retried on a later visit).

import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { SeededRandom } from '../protocol';
import type { Command } from 'commander';
import { World, type WorldEnrolment } from './world';
import { CliError, parseIntegerOption } from '../cli/errors';

export interface SoakOptions {
  days: number;
  locks: number;
  /** Phones (one resident each); default: as many as locks. */
  phones?: number;
  seed?: string | number;
  /** Visits (sync + unlock) per lock per simulated day. */
  visitsPerLockDay?: number;
  /** Manager edits per simulated day, per 10 locks. */
  editsPer10LocksDay?: number;
  /** Probability that a sync gets its link dropped / its lock's power cut. */
  linkDropRate?: number;
  powerCutRate?: number;
  onDay?: (day: number, r: SoakReport) => void;
}

export interface SoakReport {
  seed: string;
  days: number;
  locks: number;
  phones: number;
  steps: number;
  syncs: number;
  syncsFailed: number;
  /** Failed syncs by the agent's reason (the faults' doing, retried on later visits). */
  syncFailures: Record<string, number>;
  /** The first failure of each reason: step, phone, door and the agent's message. */
  syncFailureFirst: Record<string, string>;
  unlocksChecked: number;
  granted: number;
  refused: number;
  edits: number;
  revocations: number;
  revocationsLanded: number;
  /** Revocations undone (the door given back) before any sync reached the lock. */
  revocationsVoided: number;
  linkDrops: number;
  powerCuts: number;
  /** Heap after a full GC at the end of day 1 (the warm-up), of the middle day, and of the run. */
  heapStartBytes: number;
  heapMiddleBytes: number;
  heapEndBytes: number;
  /** The same, less the property's data (flash contents, audit records, table entries; DATA_BYTES). */
  heapNetStartBytes: number;
  heapNetEndBytes: number;
  /** Largest heap-less-flash of any day after the warm-up. */
  heapNetMaxBytes: number;
  /** Bytes of flash blocks written and not erased, over all locks, at the end. */
  flashResidentBytes: number;
  /** Audit records held and table entries, over all locks, at the end. */
  auditRecordsHeld: number;
  tableEntries: number;
  wallSeconds: number;
}

export class SoakFailure extends Error {
  override readonly name = 'SoakFailure';
}

function fullGc(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (() => void) | undefined;
  return () => gc?.();
}

export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const t0 = Date.now();
  const seed = String(o.seed ?? 1);
  const nPhones = o.phones ?? o.locks;
  const rng = new SeededRandom(`soak/${seed}`);
  const doorNames = Array.from({ length: o.locks }, (_, i) => `d${i + 1}`);
  const phoneNames = Array.from({ length: nPhones }, (_, i) => `p${i + 1}`);
  /** Each phone's user and key; the doors its key opens (the manager edits these). */
  const keyOf = new Map<string, { userId: number; keyId: number; doors: Set<string> }>();
  const doorIdOf = new Map<string, number>();
  const world = await World.create({
    seed: `soak/${seed}`,
    transport: 'sim',
    doors: doorNames.map((name) => ({ name })),
    phones: phoneNames,
    setup: ({ authority, doors }) => {
      for (const [name, d] of doors) doorIdOf.set(name, d.id);
      const enrolments: WorldEnrolment[] = [];
      for (const p of phoneNames) {
        const user = authority.addUser({ name: `resident ${p}` });
        const mine = new Set<string>();
        for (let k = 0; k < Math.min(3, o.locks); k++) mine.add(doorNames[rng.int(0, o.locks - 1)] as string);
        const key = authority.createKey({ name: `key ${p}`, doors: [...mine].map((n) => ({ doorId: doorIdOf.get(n) as number })) });
        authority.assignKey(user.id, key.id);
        const dev = authority.enrolDeviceWithNewKey({ userId: user.id }, `soak/${seed}/${p}`);
        enrolments.push({ phone: p, deviceId: dev.deviceId, token: dev.token, secretKeyHex: dev.credentialFile.secretKey });
        keyOf.set(p, { userId: user.id, keyId: key.id, doors: mine });
      }
      return enrolments;
    },
  });
  const gc = fullGc();
  const report: SoakReport = {
    seed,
    days: o.days,
    locks: o.locks,
    phones: nPhones,
    steps: 0,
    syncs: 0,
    syncsFailed: 0,
    syncFailures: {},
    syncFailureFirst: {},
    unlocksChecked: 0,
    granted: 0,
    refused: 0,
    edits: 0,
    revocations: 0,
    revocationsLanded: 0,
    revocationsVoided: 0,
    linkDrops: 0,
    powerCuts: 0,
    heapStartBytes: 0,
    heapMiddleBytes: 0,
    heapEndBytes: 0,
    heapNetStartBytes: 0,
    heapNetEndBytes: 0,
    heapNetMaxBytes: 0,
    flashResidentBytes: 0,
    auditRecordsHeld: 0,
    tableEntries: 0,
    wallSeconds: 0,
  };
  const a = world.authority;
  /** Revoked credentials per lock, waiting for the first completed sync. */
  const pending = new Map<string, Set<number>>();
  const fail = (what: string): never => {
    throw new SoakFailure(`seed ${seed} step ${report.steps} (day ${Math.floor(report.steps / Math.max(1, stepsPerDay))}): ${what}`);
  };
  const visits = o.visitsPerLockDay ?? 2;
  const edits = o.editsPer10LocksDay ?? 5;
  const stepsPerDay = Math.max(1, Math.round(o.locks * visits + (o.locks / 10) * edits));
  const editShare = ((o.locks / 10) * edits) / stepsPerDay;
  const dropRate = o.linkDropRate ?? 0.08;
  const cutRate = o.powerCutRate ?? 0.03;
  const tickMs = Math.floor(86_400_000 / stepsPerDay);

  const grantFor = (phone: string, lockId: string): number | undefined => world.credentialOf(phone).credentials.find((c) => c.lockId === lockId)?.credId;

  try {
    for (let day = 0; day < o.days; day++) {
      for (let s = 0; s < stepsPerDay; s++) {
        report.steps++;
        await world.advance(tickMs);
        if (rng.next() < editShare) {
          // A manager edit: take a door away from a phone's key (a revocation) or give one.
          const p = phoneNames[rng.int(0, nPhones - 1)] as string;
          const k = keyOf.get(p) as { userId: number; keyId: number; doors: Set<string> };
          if (k.doors.size > 1 && rng.next() < 0.5) {
            const d = [...k.doors][rng.int(0, k.doors.size - 1)] as string;
            const lockId = world.door(d).lockId;
            const credId = grantFor(p, lockId);
            a.removeKeyDoor(k.keyId, doorIdOf.get(d) as number);
            k.doors.delete(d);
            if (credId !== undefined) {
              let set = pending.get(lockId);
              if (set === undefined) pending.set(lockId, (set = new Set()));
              set.add(credId);
              report.revocations++;
            }
          } else {
            const d = doorNames[rng.int(0, o.locks - 1)] as string;
            if (!k.doors.has(d)) {
              a.setKeyDoor(k.keyId, { doorId: doorIdOf.get(d) as number });
              k.doors.add(d);
              // A credId belongs to (lock, grant source) for good: giving the door back before
              // the lock synced brings the same credential back, so that revocation is void.
              const lockId = world.door(d).lockId;
              const credId = grantFor(p, lockId);
              const set = pending.get(lockId);
              if (credId !== undefined && set?.delete(credId) === true) {
                report.revocationsVoided++;
                if (set.size === 0) pending.delete(lockId);
              }
            }
          }
          report.edits++;
          continue;
        }
        // A visit: a phone comes to one of its doors (or another), syncs, unlocks, leaves.
        const p = phoneNames[rng.int(0, nPhones - 1)] as string;
        const k = keyOf.get(p) as { doors: Set<string> };
        const mine = [...k.doors];
        const d = mine.length > 0 && rng.next() < 0.8 ? (mine[rng.int(0, mine.length - 1)] as string) : (doorNames[rng.int(0, o.locks - 1)] as string);
        const door = world.door(d);
        world.moveTo(p, d);
        // Only a phone the authority entitles to the door syncs it (others are refused 403).
        if (k.doors.has(d)) {
          const fault = rng.next();
          let drop: number | undefined;
          if (fault < dropRate) {
            drop = rng.int(1, 12);
            report.linkDrops++;
          } else if (fault < dropRate + cutRate) {
            door.flash.cutAfter(rng.int(0, 30));
            report.powerCuts++;
          }
          report.syncs++;
          let completed = false;
          try {
            const r = await world.sync(p, d, drop === undefined ? {} : { onEvent: (e) => void (e.phase === 'connected' && drop !== undefined && (world.simAir?.dropLink(door.lockId, drop), (drop = undefined))) });
            completed = r.outcome === 'updated' || r.outcome === 'up-to-date' || r.outcome === 'receipt-queued';
          } catch (e) {
            report.syncsFailed++;
            const why = (e as { reason?: string }).reason ?? (e as Error).name;
            report.syncFailures[why] = (report.syncFailures[why] ?? 0) + 1;
            report.syncFailureFirst[why] ??= `step ${report.steps}, ${p} at ${d}: ${(e as Error).message}`;
          }
          door.flash.cutAfter(null);
          if (world.isPoweredOff(d)) await world.reboot(d, { keepClock: true });
          if (completed) {
            const current = a.currentVersion(door.lockId);
            if (door.lock.version !== current) fail(`sync of ${d} completed at version ${door.lock.version}, authority has ${current}`);
            const revoked = pending.get(door.lockId);
            if (revoked !== undefined) {
              for (const credId of revoked) {
                if (door.lock.durable.tableState.table.entries.has(credId)) fail(`revoked credential ${credId} still at ${d} after the first completed sync`);
                report.revocationsLanded++;
              }
              pending.delete(door.lockId);
            }
          }
        }
        const credId = grantFor(p, door.lockId);
        if (credId !== undefined && !world.isPoweredOff(d)) {
          const reference = a.tableAt(door.lockId, door.lock.version);
          if (reference === undefined) fail(`authority has no table for ${door.lockId} v${door.lock.version}`);
          const expected = reference?.entries.get(credId)?.kind === 'phone';
          let result: Awaited<ReturnType<World['unlock']>>;
          try {
            result = await world.unlock(p, d, { offline: true, passiveSync: false });
          } catch (e) {
            fail(`unlock at ${d} by ${p} failed: ${(e as Error).message}`);
            throw e;
          }
          if (result.credId !== credId) fail(`unlock used credential ${result.credId}, expected ${credId}`);
          if (result.granted !== expected) fail(`unlock at ${d} (v${door.lock.version}) by ${p} credential ${credId}: lock said ${result.reason}, reference says ${expected ? 'GRANTED' : 'refused'}`);
          report.unlocksChecked++;
          if (result.granted) report.granted++;
          else report.refused++;
        }
        world.moveTo(p, null);
      }
      gc();
      const heap = process.memoryUsage().heapUsed;
      let flash = 0;
      let records = 0;
      let entries = 0;
      for (const name of doorNames) {
        const dr = world.door(name);
        flash += dr.flash.residentBytes;
        records += dr.lock.storage.auditRecordsHeld;
        entries += dr.lock.durable.tableState.table.entries.size;
      }
      const data = flash + records * DATA_BYTES.perAuditRecord + entries * DATA_BYTES.perTableEntry;
      const net = heap - data;
      report.auditRecordsHeld = records;
      report.tableEntries = entries;
      if (day === 0) {
        report.heapStartBytes = heap;
        report.heapNetStartBytes = net;
      }
      if (day === Math.floor((o.days - 1) / 2)) report.heapMiddleBytes = heap;
      report.heapEndBytes = heap;
      report.heapNetEndBytes = net;
      report.flashResidentBytes = flash;
      if (day > 0) {
        report.heapNetMaxBytes = Math.max(report.heapNetMaxBytes, net);
        const bound = heapBound(report.heapNetStartBytes);
        if (net > bound) fail(`memory: heap less the property's data is ${mib(net)} at the end of day ${day + 1}, above the bound ${mib(bound)} (${mib(report.heapNetStartBytes)} after day 1 + ${HEAP_GROWTH_BOUND.describe})`);
      }
      o.onDay?.(day + 1, report);
    }
  } finally {
    await world.close();
  }
  report.wallSeconds = (Date.now() - t0) / 1000;
  return report;
}

const mib = (b: number): string => `${(b / 1048576).toFixed(1)} MiB`;

/**
 * How far the heap (less the locks' flash) may rise above its value after day 1. Generous
 * on purpose: what it catches is growth with the number of steps (a trace, a listener or a
 * map per session), which over a run of days goes far past it.
 */
export const HEAP_GROWTH_BOUND = { fraction: 0.25, bytes: 8 * 1048576, describe: 'max(25 %, 8 MiB)' } as const;
/**
 * Heap charged to the property's data, besides the flash blocks themselves: measured with
 * 20 test-rig locks after a full GC: 277 B per audit record appended (keycard grants) and
 * 1,428 B per table entry (deltas of phone entries; the lock and its authority each hold one), rounded up.
 */
export const DATA_BYTES = { perAuditRecord: 320, perTableEntry: 1536 } as const;
export const heapBound = (startBytes: number): number => startBytes + Math.max(startBytes * HEAP_GROWTH_BOUND.fraction, HEAP_GROWTH_BOUND.bytes);

export function formatSoak(r: SoakReport): string {
  return (
    `soak seed ${r.seed}: ${r.days} simulated days, ${r.locks} locks, ${r.phones} phones, ${r.steps} steps — ` +
    `${r.syncs} syncs (${r.syncsFailed} failed under faults: ${r.linkDrops} link drops, ${r.powerCuts} power cuts armed; ${JSON.stringify(r.syncFailures)}), ` +
    `${r.unlocksChecked} unlocks matched the reference (${r.granted} granted, ${r.refused} refused), ${r.edits} manager edits, ` +
    `${r.revocationsLanded}/${r.revocations} revocations landed on the first completed sync after them (${r.revocationsVoided} voided by the door given back first, ${r.revocations - r.revocationsLanded - r.revocationsVoided} still waiting for a completed sync); heap after a full GC ${mib(r.heapStartBytes)} after day 1, ${mib(r.heapMiddleBytes)} mid-run, ${mib(r.heapEndBytes)} at the end ` +
    `(less the property's data — ${mib(r.flashResidentBytes)} of flash, ${r.auditRecordsHeld} audit records, ${r.tableEntries} table entries at the end: ` +
    `${mib(r.heapNetStartBytes)} → ${mib(r.heapNetEndBytes)}, bound ${mib(heapBound(r.heapNetStartBytes))}); ${r.wallSeconds.toFixed(0)} s`
  );
}

export function registerSoakCommand(program: Command): void {
  program
    .command('soak')
    .description('time-scaled property run in the in-process world: invariants checked at every step (unlock = reference decision, revocation lands on the first sync, memory flat)')
    .option('--days <n>', 'simulated days', '30')
    .option('--locks <n>', 'locks (doors)', '300')
    .option('--phones <n>', 'phones, one resident each (default: as many as locks)')
    .option('--seed <s>', 'seed (faults, visits, edits)', '1')
    .option('--link-drop-rate <p>', 'share of syncs whose link is dropped after 1–12 frames (0–1)', '0.08')
    .option('--power-cut-rate <p>', 'share of syncs with a power cut armed at flash operation 0–30 (0–1)', '0.03')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { days: string; locks: string; phones?: string; seed: string; json?: boolean; linkDropRate: string; powerCutRate: string }) => {
      const rate = (name: string, raw: string): number => {
        const v = Number(raw);
        if (!/^\d*\.?\d+$/.test(raw.trim()) || !(v >= 0 && v <= 1)) throw new CliError('USAGE', `${name} must be a number from 0 to 1, got "${raw}"`, `pass e.g. ${name} 0.05`);
        return v;
      };
      const o: SoakOptions = {
        days: parseIntegerOption('--days', opts.days, { min: 1, max: 3650 }),
        locks: parseIntegerOption('--locks', opts.locks, { min: 1, max: 10_000 }),
        seed: opts.seed,
        linkDropRate: rate('--link-drop-rate', opts.linkDropRate),
        powerCutRate: rate('--power-cut-rate', opts.powerCutRate),
      };
      if (opts.phones !== undefined) o.phones = parseIntegerOption('--phones', opts.phones, { min: 1, max: 100_000 });
      o.onDay = (day, r) =>
        process.stderr.write(
          `  day ${day}/${o.days}: ${r.steps} steps, ${r.syncs} syncs, ${r.unlocksChecked} unlocks checked, ${r.revocationsLanded}/${r.revocations} revocations landed; heap ${mib(r.heapEndBytes)} (less the property's data ${mib(r.heapNetEndBytes)}; ${mib(r.flashResidentBytes)} flash, ${r.auditRecordsHeld} audit records, ${r.tableEntries} entries) after a full GC\n`,
        );
      try {
        const r = await runSoak(o);
        console.log(opts.json === true ? JSON.stringify(r, null, 2) : formatSoak(r));
      } catch (e) {
        if (e instanceof SoakFailure)
          throw new CliError('EXPECTATION_FAILED', e.message, `reproduce with locksync soak --days ${o.days} --locks ${o.locks} --seed ${o.seed} --link-drop-rate ${o.linkDropRate} --power-cut-rate ${o.powerCutRate}`);
        throw e;
      }
    });
}
