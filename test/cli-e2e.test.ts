// The commands the README names, run exactly as a user runs them: every step is a
// `node bin/locksync.js …` child process — the virtual radio, the authority's HTTP server,
// the lock serving GATT on bleno over uart:, and one short-lived agent process (noble)
// per phone action. Everything lives in a temp dir and on 127.0.0.1; afterAll ends every
// child it started.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin', 'locksync.js');
const STEP_TIMEOUT_MS = 45_000;

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.LOCKSYNC_TOKEN;
  delete env.LOCKSYNC_BLE_FAMILY;
  return env;
}

/** Runs one `locksync …` command to completion. */
function locksync(args: string[]): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`locksync ${args.join(' ')} still running after ${STEP_TIMEOUT_MS} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, STEP_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs a command that must succeed and print one JSON document (the last stdout line). */
async function locksyncJson<T = any>(args: string[], expectedExit = 0): Promise<T> {
  const r = await locksync(args);
  if (r.code !== expectedExit) {
    throw new Error(`locksync ${args.join(' ')} exited ${r.code} (expected ${expectedExit})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(last) as T;
}

interface Daemon {
  name: string;
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Starts a long-running command and waits until `ready` matches its output. */
function startDaemon(name: string, args: string[], ready: (out: { stdout: string; stderr: string }) => boolean): Promise<Daemon> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  const daemon: Daemon = { name, child, stdout: () => stdout, stderr: () => stderr, exited };
  daemons.push(daemon);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} not ready after ${STEP_TIMEOUT_MS} ms\nstdout: ${stdout}\nstderr: ${stderr}`)), STEP_TIMEOUT_MS);
    const check = (): void => {
      if (ready({ stdout, stderr })) {
        clearTimeout(timer);
        resolve(daemon);
      }
    };
    child.stdout!.setEncoding('utf8').on('data', (d: string) => ((stdout += d), check()));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => ((stderr += d), check()));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}) before it was ready\nstdout: ${stdout}\nstderr: ${stderr}`));
    });
  });
}

async function stopDaemon(d: Daemon): Promise<number | null> {
  if (d.child.exitCode !== null || d.child.signalCode !== null) return d.exited;
  d.child.kill('SIGTERM');
  const killer = setTimeout(() => d.child.kill('SIGKILL'), 10_000);
  const code = await d.exited;
  clearTimeout(killer);
  return code;
}

/** The lock's JSON log lines (stderr). */
function jsonLines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const daemons: Daemon[] = [];

describe('CLI end to end, one process per command: radio up → authority → lock run on bleno → agent scan/sync/unlock on noble', () => {
  let dir: string;
  let db: string;
  let radioDir: string;
  let lockState: string;
  let phone: string; // the agent's transport
  let url: string;
  let residentToken: string;
  let partnerCredential: string;
  let lockId: string;
  let lock: Daemon;
  let doorId: number;
  let partnerId: number;
  let syncedVersion = 0;

  const auth = (args: string[]): Promise<any> => locksyncJson(['authority', ...args, '--db', db, '--json']);
  const unlockAsPartner = (expectedExit: number): Promise<any> =>
    locksyncJson(['agent', 'unlock', '--credential', partnerCredential, '--lock', lockId, '--transport', phone, '--cache', path.join(dir, 'partner-cache'), '--json'], expectedExit);
  const syncAsResident = (): Promise<any> =>
    locksyncJson(['agent', 'sync', '--lock', lockId, '--authority', url, '--token', residentToken, '--transport', phone, '--cache', path.join(dir, 'resident-cache'), '--json']);

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'locksync-cli-e2e-'));
    db = path.join(dir, 'property.db');
    radioDir = path.join(dir, 'radio');
    lockState = path.join(dir, 'lock-state');

    // 1. The radio first (a host that opens its pty before it exists never powers on).
    await startDaemon('radio', ['radio', 'up', '--dir', radioDir, '--controllers', 'lock-1,phone-1', '--seed', '7'], (o) => o.stdout.includes('control\t'));
    phone = `uart:${path.join(radioDir, 'phone-1')}`;

    // 2. The authority: database, keys, manager token; HTTP on a free port of 127.0.0.1.
    const init = await auth(['init', '--seed', 'cli-e2e', '--tz', 'Europe/Berlin']);
    expect(init.managerToken).toMatch(/^lst_/);
    const serve = await startDaemon('authority', ['authority', 'serve', '--db', db, '--port', '0', '--host', '127.0.0.1', '--json'], (o) => o.stdout.includes('"url"'));
    url = (JSON.parse(serve.stdout().trim().split('\n')[0]!) as { url: string }).url;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    // 3. Manager operations: a door, a resident with a Key to it, a partner assigned to it.
    const door = await auth(['door', 'add', '--name', 'Lobby', '--communal']);
    const key = await auth(['key', 'create', '--name', 'Residents', '--door', String(door.id)]);
    const ann = await auth(['user', 'add', '--name', 'Ann']);
    await auth(['assign', '--user', String(ann.id), '--key', String(key.id)]);
    const partner = await auth(['partner', 'authorize', '--name', 'Parcel Co']);
    doorId = door.id;
    partnerId = partner.partner.id;
    await auth(['partner', 'assign-door', '--partner', String(partnerId), '--door', String(doorId)]);

    // 4. The lock: bundle from the authority, flash + device key, device key registered.
    const bundlePath = path.join(dir, 'bundle.json');
    const provisioned = await auth(['provision-lock', '--door', String(door.id), '--out', bundlePath]);
    lockId = provisioned.lockId;
    expect(lockId).toMatch(/^lk-\d{4}$/);
    const flashed = await locksyncJson(['lock', 'provision', '--state', lockState, '--bundle', bundlePath, '--seed', 'cli-e2e', '--json']);
    expect(flashed.lockId).toBe(lockId);
    const registered = await auth(['register-lock', '--lock', lockId, '--public-key', flashed.devicePublicKey]);
    expect(registered.token).toMatch(/^lst_/);

    // 5. Phones: enrolled after the lock exists, so their credential files name it.
    const annPhone = await auth(['device', 'enrol-demo', '--user', String(ann.id), '--seed', 'ann-phone', '--out', path.join(dir, 'ann.json')]);
    residentToken = annPhone.token;
    partnerCredential = path.join(dir, 'partner.json');
    const partnerPhone = await auth(['device', 'enrol-demo', '--partner', String(partnerId), '--seed', 'parcel-phone', '--out', partnerCredential]);
    expect(partnerPhone.credentials).toEqual([{ lockId, credId: expect.any(Number) }]);

    // 6. The lock serves BLE on the radio's lock-1 controller.
    lock = await startDaemon('lock', ['lock', 'run', '--state', lockState, '--transport', `uart:${path.join(radioDir, 'lock-1')}`], (o) => o.stderr.includes('"bleListening"'));
  }, 120_000);

  afterAll(async () => {
    // Hosts before the radio.
    for (const d of [...daemons].reverse()) await stopDaemon(d).catch(() => undefined);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('agent scan lists the lock with its advertised version', async () => {
    const r = await locksyncJson(['agent', 'scan', '--transport', phone, '--timeout', '1500', '--json']);
    const seen = (r.locks as Array<{ lockId: string; version?: number; rssi: number }>).find((l) => l.lockId === lockId);
    expect(seen).toBeDefined();
    expect(seen!.version).toBe(0); // provisioned, never synced
    expect(seen!.rssi).toBeLessThan(0);
  });

  it('agent sync carries the table, relays the receipt, and the authority reports it in force', async () => {
    const r = await syncAsResident();
    expect(r).toMatchObject({ ok: true, lockId, versionBefore: 0, receiptDelivered: true });
    expect(r.versionAfter).toBeGreaterThan(0);
    syncedVersion = r.versionAfter;
    const locks = (await auth(['locks'])) as Array<{ lockId: string; version: number; versionInForce: number }>;
    expect(locks.find((l) => l.lockId === lockId)).toMatchObject({ version: syncedVersion, versionInForce: syncedVersion });
    // The advert follows the lock once the phone has gone.
    const scan = await locksyncJson(['agent', 'scan', '--transport', phone, '--timeout', '1500', '--json']);
    expect(scan.locks.find((l: { lockId: string }) => l.lockId === lockId)?.version).toBe(syncedVersion);
  });

  it('the assigned partner unlocks', async () => {
    const r = await unlockAsPartner(0);
    expect(r).toMatchObject({ ok: true, lockId, granted: true, reason: 'GRANTED' });
  });

  it('after the manager unassigns the partner, the offline lock still grants until a phone syncs; the revocation is pending', async () => {
    await auth(['partner', 'unassign-door', '--partner', String(partnerId), '--door', String(doorId)]);
    const pending = (await auth(['pending'])) as Array<{ lockId: string; holder: string; versionInForce: number }>;
    expect(pending).toEqual([expect.objectContaining({ lockId, holder: 'partner', versionInForce: syncedVersion })]);
    const r = await unlockAsPartner(0);
    expect(r).toMatchObject({ granted: true, reason: 'GRANTED', lockVersion: syncedVersion });
  });

  it("a resident's sync puts the revocation in force and the partner is refused with UNKNOWN_CREDENTIAL (exit 11)", async () => {
    const s = await syncAsResident();
    expect(s).toMatchObject({ ok: true, versionBefore: syncedVersion, receiptDelivered: true });
    expect(s.versionAfter).toBeGreaterThan(syncedVersion);
    syncedVersion = s.versionAfter;
    expect(await auth(['pending'])).toEqual([]);

    const r = await unlockAsPartner(11);
    expect(r).toMatchObject({ ok: true, granted: false, reason: 'UNKNOWN_CREDENTIAL', lockVersion: syncedVersion });
  });

  it('lock inspect reads the new version from the flash; the lock logged its BLE links as JSON', async () => {
    const r = await locksyncJson(['lock', 'inspect', '--state', lockState, '--json']);
    expect(r.ok).toBe(true);
    expect(r.inForce).toMatchObject({ lockId, version: syncedVersion });
    expect(r.audit.chainValid).toBe(true);

    const events = jsonLines(lock.stderr()).map((e) => e.event);
    // scan ×2 (no connection), sync, unlock, unlock, sync, unlock: five links.
    expect(events.filter((e) => e === 'bleConnect')).toHaveLength(5);
    expect(events.filter((e) => e === 'bleDisconnect')).toHaveLength(5);
    expect(events).toContain('bleSessionOpened');
    expect(events).toContain('updateApplied');
  });

  it('lock run stops cleanly on SIGTERM', async () => {
    expect(await stopDaemon(lock)).toBe(0);
    expect(jsonLines(lock.stderr()).at(-1)?.event).toBe('bleStopped');
  });
});
