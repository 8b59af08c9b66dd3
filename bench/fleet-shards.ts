// Fleet across processes: one property (PostgreSQL, or a SQLite file), its locks split into
// shards, each shard a worker process with its own simulated locks, its own phone and its own
// authority process serving them over HTTP — all on the one database, so the workers together
// are the authority cluster. The coordinator creates the property, starts the workers, and
// adds up what they report: locks provisioned and synced, syncs per second, the authority's
// latency per HTTP request as the phone agents and as the servers saw it (p50/p99),
// PostgreSQL round trips per lock, memory per lock and the database's size.
//
//   npx tsx bench/fleet-shards.ts --locks 10000 --workers 4 [--chunk 100] [--mode all-then-sync|waves]
//                                 [--time-limit SECONDS] [--postgres postgres://…] [--json FILE]
//
// A worker is this script with `--worker '{json task}'` (the property's URL, key directory and
// manager token, its shard number and size); in all-then-sync mode it starts syncing when a
// line arrives on its stdin. Workers on other machines would be started the same way, with
// the database and key directory shared; here they are local.

import { type ChildProcess, spawn } from 'node:child_process';
import { Server as HttpServer, type ServerResponse } from 'node:http';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { deriveSeed32, keyPairFromSeed, toHex } from '../protocol/index';
import { Authority } from '../authority/authority';
import { AuthorityError } from '../authority/errors';
import { authorityFailure } from '../authority/cli';
import { reportFailure } from '../cli/errors';
import { freshPostgresSchema, openDatabase } from '../authority/db';
import { PostgresError, postgresRoundTrips } from '../authority/postgres';
import { World, type WorldDoor } from '../world/index';
import { collectGarbage, round } from './util';

interface ShardTask {
  dbPath: string;
  keyDir: string;
  managerToken: string;
  shard: number;
  locks: number;
  credentialsPerLock: number;
  /** Locks provisioned per authority transaction. */
  chunk: number;
  /** `all-then-sync`: provision every lock, wait for "go" on stdin (every shard's syncs start together), sync every lock. `waves`: sync each chunk right after provisioning it. */
  mode: FleetMode;
  /** Wall clock (unix ms) after which the shard starts no new chunk (all-then-sync: and no new sync); null: none. */
  stopAtMs: number | null;
}

/**
 * How a shard orders its work. `all-then-sync` keeps set-up and syncs apart, so the sync
 * figures are of syncs alone. `waves` syncs each chunk as soon as it is provisioned: a run
 * cut short has synced locks to show, but a sync may then wait behind another shard's
 * provisioning transaction (the writer lock), and that wait is in its latency.
 */
export type FleetMode = 'all-then-sync' | 'waves';

export interface ShardReport {
  shard: number;
  locks: number;
  provisioned: number;
  synced: number;
  createSeconds: number;
  syncSeconds: number;
  rssPerLockKiB: number;
  heapPerLockKiB: number;
  /** Every authority HTTP request's latency, ms, as the phone agent saw it. */
  requestMs: number[];
  /** The same requests as the shard's authority server saw them: request event → response finished. */
  serverMs: number[];
  /** PostgreSQL round trips of this shard's authority process (0 on SQLite), during set-up and during the syncs. */
  setupRoundTrips: number;
  syncRoundTrips: number;
  /** Provisioning transactions run again after timing out behind other shards' (see retryWriterWait). */
  writerWaitRetries: number;
  /** Connections to PostgreSQL tried again after the engine's connect limit (see retryConnect). */
  connectRetries: number;
  /** Connections the shard's authority process opened again after losing one (authority/postgres.ts). */
  reconnects: number;
  syncFailures: number;
  firstSyncFailure?: string;
  error?: string;
}

/** A progress line on stderr: the coordinator relays it, so a long run's log says how far it got. */
function progress(task: ShardTask, report: ShardReport, what: string, done: number, since: number): void {
  const s = (performance.now() - since) / 1000;
  const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);
  const agent = sorted(report.requestMs);
  const server = sorted(report.serverMs);
  process.stderr.write(
    `progress shard ${task.shard}: ${what} ${done}/${task.locks} in ${round(s, 1)} s (${round(done / Math.max(s, 1e-9), 1)}/s); provisioned ${report.provisioned}, synced ${report.synced}; ` +
      `requests so far ${agent.length}, agents p50 ${round(quantile(agent, 0.5), 1)} p99 ${round(quantile(agent, 0.99), 1)} ms, server p50 ${round(quantile(server, 0.5), 1)} p99 ${round(quantile(server, 0.99), 1)} ms; ` +
      `rss ${round(process.memoryUsage().rss / 2 ** 20, 0)} MiB; load ${load().join(' ')}\n`,
  );
}

/**
 * A provisioning transaction that gave up waiting for the writer lock (PostgreSQL's
 * statement_timeout, SQLSTATE 57014, while other shards held it) rolled back whole: run it
 * again, as a provisioning client would, and count it.
 */
async function retryWriterWait<T>(report: ShardReport, fn: () => T | Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof PostgresError && e.code === '57014') || attempt >= 5) throw e;
      report.writerWaitRetries++;
    }
  }
}

/**
 * Opening the property connects to PostgreSQL from a fresh worker thread, which must load the
 * driver first; with every shard starting at once on a loaded machine that can take longer
 * than the engine's connect limit (STORAGE_UNAVAILABLE). Try again, a few times, and count it.
 */
async function retryConnect<T>(report: { connectRetries: number }, fn: () => Promise<T> | T): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof AuthorityError && e.code === 'STORAGE_UNAVAILABLE') || attempt >= 5) throw e;
      report.connectRetries++;
      await new Promise((r) => setTimeout(r, 1000 * attempt));
    }
  }
}

/** Resolve on the first line of stdin (the coordinator's "go"). */
function waitForGo(): Promise<void> {
  return new Promise((resolve) => {
    let buf = '';
    const onData = (d: Buffer): void => {
      buf += d.toString();
      if (buf.includes('\n')) {
        process.stdin.off('data', onData);
        process.stdin.pause();
        resolve();
      }
    };
    process.stdin.on('data', onData);
    process.stdin.once('end', () => resolve());
  });
}

/**
 * One shard: its world joins the shared property; it provisions its locks at the authority in
 * chunks (one transaction each: doors and locks in multi-row statements, a Key over the chunk's
 * doors assigned to the shard's residents, every lock's table compiled and signed once), installs
 * and registers them, then syncs each lock once.
 */
async function runShard(task: ShardTask): Promise<ShardReport> {
  const requestMs: number[] = [];
  const serverMs: number[] = [];
  const realFetch = globalThis.fetch;
  // Time every request the agents make to this shard's authority process.
  globalThis.fetch = async (...args: Parameters<typeof fetch>): Promise<Response> => {
    const t = performance.now();
    const r = await realFetch(...args);
    await r.clone().arrayBuffer();
    requestMs.push(round(performance.now() - t, 3));
    return r;
  };
  // And as the server saw them: the authority server is node:http's, in this process.
  const realEmit = HttpServer.prototype.emit;
  HttpServer.prototype.emit = function (this: HttpServer, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'request') {
      const t = performance.now();
      (args[1] as ServerResponse).once('finish', () => serverMs.push(round(performance.now() - t, 3)));
    }
    return Reflect.apply(realEmit, this, [event, ...args]) as boolean;
  } as typeof realEmit;
  const report: ShardReport = { shard: task.shard, locks: task.locks, provisioned: 0, synced: 0, createSeconds: 0, syncSeconds: 0, rssPerLockKiB: 0, heapPerLockKiB: 0, requestMs, serverMs, setupRoundTrips: 0, syncRoundTrips: 0, writerWaitRetries: 0, connectRetries: 0, reconnects: 0, syncFailures: 0 };
  collectGarbage();
  const before = process.memoryUsage();
  const t0 = performance.now();
  const trips0 = postgresRoundTrips.count;
  let world: World | undefined;
  try {
    world = await retryConnect(report, () => World.create({ seed: `fleet-shard:${task.shard}`, transport: 'sim', doors: [], phones: ['resident'], property: { dbPath: task.dbPath, keyDir: task.keyDir, managerToken: task.managerToken } }));
    const w = world;
    const a = w.authority;
    // The shard's residents (the first one's device is the phone that syncs), before any Key:
    // enrolling them touches no door yet.
    const keys = Array.from({ length: task.credentialsPerLock }, (_, i) => toHex(keyPairFromSeed(deriveSeed32('bench-fleet', `shard:${task.shard}:resident:${i}`)).publicKey));
    const users = await retryWriterWait(report, () =>
      a.batch(() =>
        keys.map((pk, i) => {
          const u = a.addUser({ name: `Shard ${task.shard} resident ${i}`, role: 'resident' });
          if (i > 0) a.enrolUserDevice(u.id, pk);
          return u.id;
        }),
      ),
    );
    await retryWriterWait(report, () => w.enrolPhone('resident', { userId: users[0] as number }));
    let syncMs = 0;
    let syncTrips = 0;
    let setupTrips = 0;
    const every = Math.max(100, Math.ceil(task.locks / 20));
    const syncAll = async (doors: Iterable<WorldDoor>): Promise<void> => {
      const t = performance.now();
      const trips = postgresRoundTrips.count;
      for (const door of doors) {
        if (task.stopAtMs !== null && Date.now() >= task.stopAtMs) break;
        w.moveTo('resident', door.name);
        // A sync that fails is counted and named, and the shard goes on with the next lock.
        const failed = (why: string): void => {
          report.syncFailures++;
          if (report.firstSyncFailure === undefined) report.firstSyncFailure = `${door.name}: ${why}`;
        };
        try {
          const r = await w.sync('resident', door.name, { attempts: 1 });
          if (!r.receiptDelivered || r.versionAfter === 0) failed(`did not land (v${r.versionAfter}, receipt ${r.receiptDelivered ? 'delivered' : 'not delivered'})`);
          else report.synced++;
        } catch (e) {
          failed((e as Error).message);
        }
        if (report.synced % every === 0) progress(task, report, 'synced', report.synced, t0);
      }
      syncMs += performance.now() - t;
      syncTrips += postgresRoundTrips.count - trips;
    };
    let setupTrips0 = trips0;
    for (let at = 0; at < task.locks; at += task.chunk) {
      if (task.stopAtMs !== null && Date.now() >= task.stopAtMs) break;
      const specs = Array.from({ length: Math.min(task.chunk, task.locks - at) }, (_, j) => ({ name: `s${task.shard}-unit-${at + j}` }));
      const provisioned = await retryWriterWait(report, () =>
        a.batch(() => {
          const made = a.addDoorsWithLocks(specs);
          const key = a.createKey({ name: `Shard ${task.shard} units ${at}–${at + specs.length - 1}`, doors: made.map((m) => ({ doorId: m.door.id, doorcodesEnabled: false })) });
          for (const u of users) a.assignKey(u, key.id);
          return made;
        }),
      );
      await retryWriterWait(report, () => w.addProvisionedDoors(provisioned.map((p, j) => ({ spec: specs[j] as { name: string }, info: p.door, bundle: p.bundle }))));
      report.provisioned += specs.length;
      progress(task, report, 'provisioned', report.provisioned, t0);
      setupTrips += postgresRoundTrips.count - setupTrips0;
      if (task.mode === 'waves') await syncAll(specs.map((d) => w.door(d.name)));
      setupTrips0 = postgresRoundTrips.count;
    }
    report.createSeconds = round((performance.now() - t0 - syncMs) / 1000, 2);
    report.setupRoundTrips = setupTrips;
    if (task.mode === 'all-then-sync') {
      process.stdout.write(`${JSON.stringify({ ready: task.shard })}\n`);
      await waitForGo();
      requestMs.length = 0; // only the syncs' requests
      serverMs.length = 0;
      await syncAll(w.doors.values());
    }
    report.syncSeconds = round(syncMs / 1000, 2);
    report.syncRoundTrips = syncTrips;
    report.reconnects = postgresRoundTrips.reconnects;
    collectGarbage();
    const after = process.memoryUsage();
    report.rssPerLockKiB = round((after.rss - before.rss) / Math.max(1, report.provisioned) / 1024, 1);
    report.heapPerLockKiB = round((after.heapUsed - before.heapUsed) / Math.max(1, report.provisioned) / 1024, 1);
  } catch (e) {
    report.error = (e as Error).message;
  } finally {
    await world?.close();
    globalThis.fetch = realFetch;
    HttpServer.prototype.emit = realEmit;
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
  /** Locks provisioned per authority transaction (default 100: short enough that the other shards' transactions, waiting for the writer lock, rarely time out). */
  chunk?: number;
  /** Default `all-then-sync` (see FleetMode). */
  mode?: FleetMode;
  /** Stop starting new work after this many seconds (a run that cannot finish still reports what it did). */
  timeLimitSeconds?: number;
  log?: (line: string) => void;
}

export interface ShardedFleetResult {
  engine: string;
  mode: FleetMode;
  /** The time limit stopped the run before every lock was provisioned and synced. */
  stoppedByTimeLimit: boolean;
  locks: number;
  workers: number;
  credentialsPerLock: number;
  provisioned: number;
  synced: number;
  /** Slowest shard's set-up: join, provision its locks at the authority, install and register them. */
  setupSeconds: number;
  wallSeconds: number;
  /** The slowest shard's time in syncs (all-then-sync: from "go", when every shard had provisioned, to its last sync; waves: its syncs added up). */
  syncSeconds: number;
  /** Locks synced by the whole cluster per second of syncSeconds. */
  syncsPerSecond: number;
  requests: number;
  requestP50Ms: number;
  requestP99Ms: number;
  serverP50Ms: number;
  serverP99Ms: number;
  /** PostgreSQL round trips per lock (0 on SQLite): set-up, and one sync. */
  setupRoundTripsPerLock: number;
  syncRoundTripsPerLock: number;
  rssPerLockKiB: number;
  writerWaitRetries: number;
  connectRetries: number;
  /** PostgreSQL connections the authority processes opened again after losing one. */
  reconnects: number;
  /** Syncs that failed (each shard goes on with its next lock; the errors name the first). */
  syncFailures: number;
  /** The property's storage after the run: its PostgreSQL schema (tables, indexes, TOAST) or SQLite file. */
  databaseBytes: number;
  /** The authority's own count, read from its database at the end: locks whose receipt for their newest version it holds. */
  inForceAtAuthority: number;
  loadAverage: { start: number[]; afterSetup: number[]; end: number[] };
  cores: number;
  errors: string[];
}

function storageBytes(dbPath: string, postgres: boolean): number {
  if (!postgres) return statSync(dbPath).size + (existsSync(`${dbPath}-wal`) ? statSync(`${dbPath}-wal`).size : 0);
  const db = openDatabase(dbPath);
  try {
    const r = db.prepare('SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) AS bytes FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind IN (\'r\', \'m\')').get() as { bytes: number };
    return Number(r.bytes);
  } finally {
    db.close();
  }
}

/** Locks whose newest issued version the authority holds a receipt for (its `in_force_version`). */
function locksInForce(dbPath: string): number {
  const db = openDatabase(dbPath);
  try {
    const r = db
      .prepare('SELECT COUNT(*) AS n FROM locks l WHERE l.in_force_version > 0 AND l.in_force_version = (SELECT MAX(v.version) FROM lock_versions v WHERE v.lock_id = l.lock_id)')
      .get() as { n: number | string };
    return Number(r.n);
  } finally {
    db.close();
  }
}

/**
 * Write a worker's last line, then exit — once the line is out. process.exit() right after
 * process.stdout.write() drops whatever a full pipe has not taken yet (libuv writes a pipe
 * synchronously only while it has room), and a shard's report is over a megabyte at 100,000
 * locks: the first 100,000-lock run lost every shard's report that way.
 */
export function exitAfterWriting(line: string, code: number): void {
  process.stdout.write(line, () => process.exit(code));
}

/**
 * Everything a child process writes, once it has ended. Resolved on 'close', not 'exit': a
 * child's last stdout chunks can arrive after 'exit' has fired, and a shard's report (its last
 * line: every request's latency, over a megabyte at 100,000 locks) was lost that way.
 */
export function collectOutput(
  child: ChildProcess,
  on: { onStdout?: (soFar: string) => void; onStderr?: (chunk: string) => void } = {},
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      on.onStdout?.(out);
    });
    child.stderr?.on('data', (d: Buffer) => {
      const chunk = d.toString();
      err += chunk;
      on.onStderr?.(chunk);
    });
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

const load = (): number[] => loadavg().map((x) => round(x, 2));

export async function benchShardedFleet(opts: ShardedFleetOptions): Promise<ShardedFleetResult> {
  const log = opts.log ?? (() => undefined);
  const loadStart = load();
  const dir = mkdtempSync(join(tmpdir(), 'locksync-fleet-shards-'));
  const pg = opts.postgresUrl !== undefined ? freshPostgresSchema(opts.postgresUrl, 'fleet') : null;
  const dbPath = pg !== null ? pg.url : join(dir, 'property.db');
  const keyDir = join(dir, 'keys');
  const { authority, managerToken } = Authority.init({ dbPath, keyDir, seed: 'fleet-shards', timeZone: 'America/New_York' });
  authority.close();
  const per = Math.ceil(opts.locks / opts.workers);
  const credentialsPerLock = opts.credentialsPerLock ?? 10;
  const script = fileURLToPath(import.meta.url);
  const started = performance.now();
  let goAt = 0;
  let loadAfterSetup: number[] = [];
  try {
    const children: ChildProcess[] = [];
    let pending = opts.workers;
    // Every shard provisions first; when the last is ready (or gone), all start syncing together.
    const mode = opts.mode ?? 'all-then-sync';
    const oneReady = (): void => {
      if (--pending > 0 || mode === 'waves') return;
      goAt = performance.now();
      loadAfterSetup = load();
      log(`all shards provisioned after ${round((goAt - started) / 1000, 1)} s: syncing (load ${loadAfterSetup.join(' ')})`);
      for (const c of children) if (c.exitCode === null) c.stdin?.end('go\n');
    };
    const reports = await Promise.all(
      Array.from({ length: opts.workers }, (_, shard) => {
        const task: ShardTask = { dbPath, keyDir, managerToken, shard, locks: Math.max(0, Math.min(per, opts.locks - shard * per)), credentialsPerLock, chunk: opts.chunk ?? 100, mode, stopAtMs: opts.timeLimitSeconds !== undefined ? Date.now() + opts.timeLimitSeconds * 1000 : null };
        return new Promise<ShardReport>((resolve) => {
          const child = spawn(process.execPath, ['--expose-gc', '--max-old-space-size=8192', '--import', 'tsx', script, '--worker', JSON.stringify(task)], { stdio: ['pipe', 'pipe', 'pipe'] });
          children.push(child);
          let ready = false;
          const markReady = (): void => {
            if (!ready) {
              ready = true;
              oneReady();
            }
          };
          child.stdin.on('error', () => undefined); // a shard that failed early has closed its stdin
          void collectOutput(child, {
            onStdout: (soFar) => {
              if (!ready && soFar.includes('"ready"')) markReady();
            },
            onStderr: (chunk) => {
              for (const line of chunk.split('\n')) if (line.startsWith('progress ')) log(`  ${line}`);
            },
          }).then(({ code, out, err }) => {
            markReady();
            try {
              const r = JSON.parse(out.trim().split('\n').at(-1) ?? '') as ShardReport;
              log(`  shard ${shard}: ${r.synced}/${r.locks} synced in ${r.syncSeconds} s (set-up ${r.createSeconds} s)${r.error ? `, error: ${r.error}` : ''}`);
              resolve(r);
            } catch {
              const tail = err.trim().split('\n').filter((l) => !l.startsWith('progress ')).slice(-3).join(' | ');
              resolve({ shard, locks: task.locks, provisioned: 0, synced: 0, createSeconds: 0, syncSeconds: 0, rssPerLockKiB: 0, heapPerLockKiB: 0, requestMs: [], serverMs: [], setupRoundTrips: 0, syncRoundTrips: 0, writerWaitRetries: 0, connectRetries: 0, reconnects: 0, syncFailures: 0, error: `worker exited ${code}: ${tail}` });
            }
          });
        });
      }),
    );
    const ended = performance.now();
    const all = reports.flatMap((r) => r.requestMs).sort((a, b) => a - b);
    const server = reports.flatMap((r) => r.serverMs).sort((a, b) => a - b);
    const synced = reports.reduce((n, r) => n + r.synced, 0);
    const provisioned = reports.reduce((n, r) => n + r.provisioned, 0);
    // Every shard starts syncing at "go"; the phase ends with the slowest shard.
    const syncSeconds = round(Math.max(...reports.map((r) => r.syncSeconds)), 2);
    const databaseBytes = await retryConnect({ connectRetries: 0 }, () => storageBytes(dbPath, pg !== null));
    const inForceAtAuthority = await retryConnect({ connectRetries: 0 }, () => locksInForce(dbPath));
    return {
      engine: opts.postgresUrl !== undefined ? 'PostgreSQL' : 'SQLite',
      mode,
      // Only when the limit was reached: shards that gave up on failures end sooner.
      stoppedByTimeLimit: opts.timeLimitSeconds !== undefined && synced < opts.locks && (ended - started) / 1000 >= opts.timeLimitSeconds,
      locks: opts.locks,
      workers: opts.workers,
      credentialsPerLock,
      provisioned,
      synced,
      setupSeconds: mode === 'waves' ? round(Math.max(...reports.map((r) => r.createSeconds)), 1) : round(((goAt || ended) - started) / 1000, 1),
      wallSeconds: round((ended - started) / 1000, 1),
      syncSeconds,
      syncsPerSecond: round(synced / Math.max(syncSeconds, 1e-9), 1),
      requests: all.length,
      requestP50Ms: round(quantile(all, 0.5), 2),
      requestP99Ms: round(quantile(all, 0.99), 2),
      serverP50Ms: round(quantile(server, 0.5), 2),
      serverP99Ms: round(quantile(server, 0.99), 2),
      setupRoundTripsPerLock: round(reports.reduce((n, r) => n + r.setupRoundTrips, 0) / Math.max(1, provisioned), 1),
      syncRoundTripsPerLock: round(reports.reduce((n, r) => n + r.syncRoundTrips, 0) / Math.max(1, synced), 1),
      rssPerLockKiB: round(reports.reduce((n, r) => n + r.rssPerLockKiB * r.provisioned, 0) / Math.max(1, provisioned), 1),
      writerWaitRetries: reports.reduce((n, r) => n + (r.writerWaitRetries ?? 0), 0),
      connectRetries: reports.reduce((n, r) => n + (r.connectRetries ?? 0), 0),
      reconnects: reports.reduce((n, r) => n + (r.reconnects ?? 0), 0),
      databaseBytes,
      inForceAtAuthority,
      loadAverage: { start: loadStart, afterSetup: loadAfterSetup, end: load() },
      cores: cpus().length,
      syncFailures: reports.reduce((n, r) => n + (r.syncFailures ?? 0), 0),
      errors: [
        ...reports.filter((r) => r.error !== undefined).map((r) => `shard ${r.shard}: ${r.error}`),
        ...reports.filter((r) => (r.syncFailures ?? 0) > 0).map((r) => `shard ${r.shard}: ${r.syncFailures} syncs failed, the first: ${r.firstSyncFailure}`),
      ],
    };
  } finally {
    if (pg !== null) await retryConnect({ connectRetries: 0 }, () => pg.drop());
    rmSync(dir, { recursive: true, force: true });
  }
}

function parseFleetArgs() {
  return parseArgs({
    options: {
      worker: { type: 'string' },
      locks: { type: 'string', default: '2000' },
      workers: { type: 'string', default: '2' },
      chunk: { type: 'string', default: '100' },
      mode: { type: 'string', default: 'all-then-sync' },
      'time-limit': { type: 'string' },
      postgres: { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const USAGE =
    'usage: npx tsx bench/fleet-shards.ts [--locks N (2000)] [--workers W (2)] [--chunk C (100)] [--mode all-then-sync|waves] [--time-limit SECONDS] [--postgres postgres://…] [--json FILE]';
  let values: ReturnType<typeof parseFleetArgs>['values'];
  try {
    values = parseFleetArgs().values;
  } catch (e) {
    process.stderr.write(`error USAGE: ${(e as Error).message} — ${USAGE}\n`);
    process.exit(2);
  }
  if (values.help === true) {
    console.log(USAGE);
    process.exit(0);
  }
  if (values.worker !== undefined) {
    const r = await runShard(JSON.parse(values.worker) as ShardTask);
    exitAfterWriting(`${JSON.stringify(r)}\n`, r.error ? 1 : 0);
  }
  const locks = Number(values.locks);
  const workers = Number(values.workers);
  const chunk = Number(values.chunk);
  if (![locks, workers, chunk].every((n) => Number.isSafeInteger(n) && n >= 1)) {
    process.stderr.write('error USAGE: --locks, --workers and --chunk must be positive integers — e.g. --locks 4000 --workers 2\n');
    process.exit(2);
  }
  const timeLimit = values['time-limit'] === undefined ? undefined : Number(values['time-limit']);
  if (timeLimit !== undefined && !(Number.isSafeInteger(timeLimit) && timeLimit >= 1)) {
    process.stderr.write('error USAGE: --time-limit is whole seconds ≥ 1 — e.g. --time-limit 3600\n');
    process.exit(2);
  }
  const mode = values.mode as FleetMode;
  if (mode !== 'all-then-sync' && mode !== 'waves') {
    process.stderr.write('error USAGE: --mode is all-then-sync or waves — e.g. --mode waves\n');
    process.exit(2);
  }
  let r: ShardedFleetResult;
  try {
    r = await benchShardedFleet({ locks, workers, chunk, mode, ...(timeLimit !== undefined ? { timeLimitSeconds: timeLimit } : {}), ...(values.postgres !== undefined ? { postgresUrl: values.postgres } : {}), log: (l) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${l}\n`) });
  } catch (e) {
    // A database that cannot be reached or is not usable: one line with its exit code, as
    // `locksync authority` says it, not a stack trace.
    try {
      authorityFailure({ db: values.postgres ?? 'the fleet database' }, e);
    } catch (line) {
      process.exit(reportFailure(line));
    }
  }
  const n = (x: number): string => x.toLocaleString('en-US');
  console.log(
    `fleet across ${r.workers} worker processes (each a shard of locks, its phone and an authority process) on ${r.engine}, ${r.credentialsPerLock} credentials per lock, ${r.mode === 'waves' ? 'in waves (each chunk of locks synced as soon as provisioned)' : 'all locks provisioned, then all synced'}:\n` +
      `  set-up ${r.setupSeconds} s: ${n(r.provisioned)}/${n(r.locks)} locks provisioned, installed and registered (${r.setupRoundTripsPerLock} PostgreSQL round trips per lock; ${r.writerWaitRetries} transactions retried after timing out behind the writer lock, ${r.connectRetries} connections retried)\n` +
      `  the authority's own count at the end: ${n(r.inForceAtAuthority)} locks with their newest version in force (its receipt held)\n` +
      `  syncs: ${n(r.synced)}/${n(r.locks)} locks synced in ${r.syncSeconds} s${r.mode === 'waves' ? ' (the slowest shard\'s syncs added up)' : ''} = ${r.syncsPerSecond} syncs/s (${r.syncRoundTripsPerLock} PostgreSQL round trips per sync; ${r.reconnects} connections reopened after a loss)\n` +
      `  authority per HTTP request, ${n(r.requests)} requests: agents saw p50 ${r.requestP50Ms} ms, p99 ${r.requestP99Ms} ms; the servers p50 ${r.serverP50Ms} ms, p99 ${r.serverP99Ms} ms\n` +
      `  ${r.rssPerLockKiB} KiB RSS per lock; database ${round(r.databaseBytes / 2 ** 20, 1)} MiB (${n(Math.round(r.databaseBytes / Math.max(1, r.provisioned)))} B per lock); wall ${r.wallSeconds} s (${round(r.synced / Math.max(r.wallSeconds, 1e-9), 1)} locks provisioned and synced per second, end to end)\n` +
      `  ${r.cores} cores, load average ${r.loadAverage.start.join(' ')} at start, ${r.loadAverage.afterSetup.join(' ') || '–'} after set-up, ${r.loadAverage.end.join(' ')} at end`,
  );
  if (r.stoppedByTimeLimit) console.log(`  stopped by --time-limit ${timeLimit} s: the figures are of the ${n(r.synced)} locks synced, not of all ${n(r.locks)}`);
  for (const e of r.errors) console.log(`  ${e}`);
  if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(r, null, 2));
  process.exitCode = r.errors.length > 0 ? 1 : 0;
}
