// Fleet across processes: one property (PostgreSQL, or a SQLite file), its locks split into
// shards, each shard a worker process with its own simulated locks, its own phone and its own
// authority process serving them over HTTP — all on the one database. The coordinator
// creates the property, starts the workers, and adds up what they report: locks synced,
// syncs per second, the authority's latency per HTTP request as the phone agents saw it
// (p50/p99), and memory per lock.
//
//   npx tsx bench/fleet-shards.ts --locks 4000 --workers 2 [--postgres postgres://…] [--json FILE]
//
// Workers on other machines join the same way: `--worker` with the property's URL, key
// directory and manager token (the coordinator prints the command); here they are local.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { deriveSeed32, keyPairFromSeed, toHex } from '../protocol/index';
import { Authority } from '../authority/authority';
import { freshPostgresSchema } from '../authority/db';
import { World } from '../world/index';
import { collectGarbage, round } from './util';

interface ShardTask {
  dbPath: string;
  keyDir: string;
  managerToken: string;
  shard: number;
  locks: number;
  credentialsPerLock: number;
}

export interface ShardReport {
  shard: number;
  locks: number;
  synced: number;
  createSeconds: number;
  syncSeconds: number;
  rssPerLockKiB: number;
  heapPerLockKiB: number;
  /** Every authority HTTP request's latency, ms, as the phone agent saw it. */
  requestMs: number[];
  error?: string;
}

/** One shard: its world joins the shared property, creates its locks and syncs each once. */
async function runShard(task: ShardTask): Promise<ShardReport> {
  const requestMs: number[] = [];
  const realFetch = globalThis.fetch;
  // Time every request the agents make to this shard's authority process.
  globalThis.fetch = async (...args: Parameters<typeof fetch>): Promise<Response> => {
    const t = performance.now();
    const r = await realFetch(...args);
    await r.clone().arrayBuffer();
    requestMs.push(round(performance.now() - t, 3));
    return r;
  };
  const report: ShardReport = { shard: task.shard, locks: task.locks, synced: 0, createSeconds: 0, syncSeconds: 0, rssPerLockKiB: 0, heapPerLockKiB: 0, requestMs };
  collectGarbage();
  const before = process.memoryUsage();
  const t0 = performance.now();
  let world: World | undefined;
  try {
    const doors = Array.from({ length: task.locks }, (_, i) => ({ name: `s${task.shard}-unit-${i}` }));
    world = await World.create({ seed: `fleet-shard:${task.shard}`, transport: 'sim', doors, phones: ['resident'], property: { dbPath: task.dbPath, keyDir: task.keyDir, managerToken: task.managerToken } });
    const w = world;
    const a = w.authority;
    const keys = Array.from({ length: task.credentialsPerLock }, (_, i) => toHex(keyPairFromSeed(deriveSeed32('bench-fleet', `shard:${task.shard}:resident:${i}`)).publicKey));
    const first = a.batch(() => {
      const key = a.createKey({ name: `Shard ${task.shard}`, doors: [...w.doors.values()].map((d) => ({ doorId: d.doorId, doorcodesEnabled: false })) });
      const users = keys.map((pk, i) => {
        const u = a.addUser({ name: `Shard ${task.shard} resident ${i}`, role: 'resident' });
        a.assignKey(u.id, key.id);
        if (i > 0) a.enrolUserDevice(u.id, pk);
        return u.id;
      });
      return users[0] as number;
    });
    w.enrolPhone('resident', { userId: first });
    report.createSeconds = round((performance.now() - t0) / 1000, 2);
    requestMs.length = 0; // only the syncs' requests
    const t1 = performance.now();
    for (const door of w.doors.values()) {
      w.moveTo('resident', door.name);
      const r = await w.sync('resident', door.name, { attempts: 1 });
      if (!r.receiptDelivered || r.versionAfter === 0) throw new Error(`sync of ${door.name} did not land (v${r.versionAfter})`);
      report.synced++;
    }
    report.syncSeconds = round((performance.now() - t1) / 1000, 2);
    collectGarbage();
    const after = process.memoryUsage();
    report.rssPerLockKiB = round((after.rss - before.rss) / task.locks / 1024, 1);
    report.heapPerLockKiB = round((after.heapUsed - before.heapUsed) / task.locks / 1024, 1);
  } catch (e) {
    report.error = (e as Error).message;
  } finally {
    await world?.close();
    globalThis.fetch = realFetch;
  }
  return report;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

export interface ShardedFleetOptions {
  locks: number;
  workers: number;
  postgresUrl?: string;
  credentialsPerLock?: number;
  log?: (line: string) => void;
}

export interface ShardedFleetResult {
  engine: string;
  locks: number;
  workers: number;
  synced: number;
  wallSeconds: number;
  syncSeconds: number;
  syncsPerSecond: number;
  requests: number;
  requestP50Ms: number;
  requestP99Ms: number;
  rssPerLockKiB: number;
  loadAverage: number[];
  cores: number;
  errors: string[];
}

export async function benchShardedFleet(opts: ShardedFleetOptions): Promise<ShardedFleetResult> {
  const log = opts.log ?? (() => undefined);
  const dir = mkdtempSync(join(tmpdir(), 'locksync-fleet-shards-'));
  const pg = opts.postgresUrl !== undefined ? freshPostgresSchema(opts.postgresUrl, 'fleet') : null;
  const dbPath = pg !== null ? pg.url : join(dir, 'property.db');
  const keyDir = join(dir, 'keys');
  const { authority, managerToken } = Authority.init({ dbPath, keyDir, seed: 'fleet-shards', timeZone: 'America/New_York' });
  authority.close();
  const per = Math.ceil(opts.locks / opts.workers);
  const script = fileURLToPath(import.meta.url);
  const started = performance.now();
  try {
    const reports = await Promise.all(
      Array.from({ length: opts.workers }, (_, shard) => {
        const task: ShardTask = { dbPath, keyDir, managerToken, shard, locks: Math.min(per, opts.locks - shard * per), credentialsPerLock: opts.credentialsPerLock ?? 10 };
        return new Promise<ShardReport>((resolve) => {
          const child = spawn(process.execPath, ['--expose-gc', '--max-old-space-size=8192', '--import', 'tsx', script, '--worker', JSON.stringify(task)], { stdio: ['ignore', 'pipe', 'pipe'] });
          let out = '';
          let err = '';
          child.stdout.on('data', (d) => (out += d));
          child.stderr.on('data', (d) => (err += d));
          child.on('exit', (code) => {
            try {
              const r = JSON.parse(out.trim().split('\n').at(-1) ?? '') as ShardReport;
              log(`  shard ${shard}: ${r.synced}/${r.locks} synced in ${r.syncSeconds} s (create ${r.createSeconds} s)${r.error ? `, error: ${r.error}` : ''}`);
              resolve(r);
            } catch {
              resolve({ shard, locks: task.locks, synced: 0, createSeconds: 0, syncSeconds: 0, rssPerLockKiB: 0, heapPerLockKiB: 0, requestMs: [], error: `worker exited ${code}: ${err.trim().split('\n').slice(-3).join(' | ')}` });
            }
          });
        });
      }),
    );
    const all = reports.flatMap((r) => r.requestMs).sort((a, b) => a - b);
    const synced = reports.reduce((n, r) => n + r.synced, 0);
    const syncSeconds = Math.max(...reports.map((r) => r.syncSeconds));
    return {
      engine: opts.postgresUrl !== undefined ? 'PostgreSQL' : 'SQLite',
      locks: opts.locks,
      workers: opts.workers,
      synced,
      wallSeconds: round((performance.now() - started) / 1000, 1),
      syncSeconds,
      syncsPerSecond: round(synced / Math.max(syncSeconds, 1e-9), 1),
      requests: all.length,
      requestP50Ms: round(quantile(all, 0.5), 2),
      requestP99Ms: round(quantile(all, 0.99), 2),
      rssPerLockKiB: round(reports.reduce((n, r) => n + r.rssPerLockKiB * r.locks, 0) / Math.max(1, opts.locks), 1),
      loadAverage: loadavg().map((x) => round(x, 2)),
      cores: cpus().length,
      errors: reports.filter((r) => r.error !== undefined).map((r) => `shard ${r.shard}: ${r.error}`),
    };
  } finally {
    pg?.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const { values } = parseArgs({
    options: {
      worker: { type: 'string' },
      locks: { type: 'string', default: '2000' },
      workers: { type: 'string', default: '2' },
      postgres: { type: 'string' },
      json: { type: 'string' },
    },
  });
  if (values.worker !== undefined) {
    const r = await runShard(JSON.parse(values.worker) as ShardTask);
    process.stdout.write(`${JSON.stringify(r)}\n`);
    process.exit(r.error ? 1 : 0);
  }
  const locks = Number(values.locks);
  const workers = Number(values.workers);
  if (!Number.isSafeInteger(locks) || locks < 1 || !Number.isSafeInteger(workers) || workers < 1) {
    process.stderr.write('error USAGE: --locks and --workers must be positive integers — e.g. --locks 4000 --workers 2\n');
    process.exit(2);
  }
  const r = await benchShardedFleet({ locks, workers, ...(values.postgres !== undefined ? { postgresUrl: values.postgres } : {}), log: (l) => process.stderr.write(`${l}\n`) });
  console.log(
    `fleet across ${r.workers} worker processes on ${r.engine}: ${r.synced.toLocaleString('en-US')}/${r.locks.toLocaleString('en-US')} locks synced in ${r.syncSeconds} s ` +
      `(${r.syncsPerSecond} syncs/s); authority per HTTP request p50 ${r.requestP50Ms} ms, p99 ${r.requestP99Ms} ms over ${r.requests.toLocaleString('en-US')} requests; ` +
      `${r.rssPerLockKiB} KiB RSS per lock; ${r.cores} cores, load ${r.loadAverage.join(' ')}`,
  );
  for (const e of r.errors) console.log(`  ${e}`);
  if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(r, null, 2));
  process.exitCode = r.errors.length > 0 ? 1 : 0;
}
