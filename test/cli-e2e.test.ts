// The README's CLI sequence, run exactly as written there: this test reads the ```sh block
// under "## The CLI" in README.md and runs each line, in order, as its own
// `node bin/locksync.js …` process — the `&` lines as daemons (the virtual radio, the
// authority's HTTP server, the lock serving GATT on bleno over uart:), every other line to
// completion. Only what the README leaves to the reader is filled in: `$T` (a temp dir),
// `<hex>` and `<t>` (from the output of the lines before), and a free port for 8080. It
// then goes on in the same world: unassign the partner, the revocation is pending, a sync
// puts it in force, the partner is refused. afterAll ends every child it started.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
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
  ran.push(args);
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
  ran.push(args);
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
/** Every command line run, to compare with the README. */
const ran: string[][] = [];

/** Splits one shell line into words: double quotes group, an unquoted `#` starts a comment. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] as string;
    if (quoted) {
      if (ch === '"') quoted = false;
      else word += ch;
    } else if (ch === '"') {
      quoted = true;
      word ??= '';
    } else if (ch === '#' && word === undefined) {
      break;
    } else if (/\s/.test(ch)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else word = (word ?? '') + ch;
  }
  if (quoted) throw new Error(`unterminated quote in README line: ${line}`);
  if (word !== undefined) words.push(word);
  return words;
}

/** The README's CLI sequence: the ```sh block under "## The CLI". */
function readmeSequence(): string[] {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## The CLI'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  if (block === undefined) throw new Error('README.md has no ```sh block under "## The CLI"');
  return block.split('\n').filter((l) => l.trim() !== '');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** When a daemon the README starts is ready to be used by the next line. */
function readiness(words: string[]): (o: { stdout: string; stderr: string }) => boolean {
  const what = words.slice(1, 3).join(' ');
  if (what === 'radio up') return (o) => /^control\t/m.test(o.stdout);
  if (what === 'authority serve') return (o) => o.stdout.includes('listening on');
  if (what === 'lock run') return (o) => o.stderr.includes('"bleListening"');
  throw new Error(`the README starts a daemon this test does not know how to wait for: ${words.join(' ')}`);
}

describe('CLI end to end: the README sequence, one process per line, then a revocation through the CLI', () => {
  const lines = readmeSequence();
  let T: string;
  let port: number;
  const filled: Record<string, string> = {};
  const outputs: Array<{ words: string[]; out: Finished }> = [];
  let lock: Daemon | undefined;

  /** The README line's words with $T, the port and the <placeholders> filled in. */
  function fill(words: string[]): string[] {
    return words.map((w) => {
      let v = w.replaceAll('$T', T).replaceAll('8080', String(port));
      for (const [k, x] of Object.entries(filled)) v = v.replaceAll(k, x);
      if (/<[a-z]+>/.test(v)) throw new Error(`README placeholder ${v} has no value yet`);
      return v;
    });
  }

  beforeAll(async () => {
    T = fs.mkdtempSync(path.join(os.tmpdir(), 'locksync-cli-e2e-'));
    port = await freePort();
  });

  afterAll(async () => {
    // Hosts before the radio.
    for (const d of [...daemons].reverse()) await stopDaemon(d).catch(() => undefined);
    if (T) fs.rmSync(T, { recursive: true, force: true });
  }, 60_000);

  it('the README block is the sequence this test runs: a temp dir, then locksync lines only', () => {
    expect(lines[0]).toMatch(/^T=\$\(mktemp -d\)\s/);
    for (const line of lines.slice(1)) expect(shellWords(line)[0], line).toBe('locksync');
    expect(lines.length).toBeGreaterThan(15);
  });

  it('runs every line of the README sequence, each exiting 0 (daemons: ready and still running)', async () => {
    for (const line of lines.slice(1)) {
      const raw = shellWords(line);
      const background = raw.at(-1) === '&';
      const words = fill(background ? raw.slice(0, -1) : raw);
      const args = words.slice(1);
      if (background) {
        const d = await startDaemon(words.slice(1, 3).join(' '), args, readiness(raw));
        if (words[1] === 'lock') lock = d;
        continue;
      }
      const out = await locksync(args);
      if (out.code !== 0) throw new Error(`README line exited ${out.code}: ${line}\nstdout: ${out.stdout}\nstderr: ${out.stderr}`);
      outputs.push({ words, out });
      // What the README's later lines leave to the reader.
      if (words[1] === 'lock' && words[2] === 'provision') filled['<hex>'] = /device public key ([0-9a-f]{64})/.exec(out.stdout)?.[1] ?? '';
      if (words[2] === 'device' && words[3] === 'enrol-demo') filled['<t>'] = /^token: (\S+)$/m.exec(out.stdout)?.[1] ?? '';
    }
    expect(filled['<hex>']).toMatch(/^[0-9a-f]{64}$/);
    expect(filled['<t>']).toMatch(/^lst_/);
    expect(lock).toBeDefined();
    // Every line ran, and nothing else: the daemons plus the commands, in the README's order.
    expect(ran.map((a) => a.join(' '))).toEqual(lines.slice(1).map((l) => fill(shellWords(l).filter((w) => w !== '&')).slice(1).join(' ')));
  }, 600_000);

  it('what the README lines printed: the scan saw the lock, the partner unlocked, the flash holds the synced version, the capture decodes', () => {
    const of = (...w: string[]): string => outputs.find((o) => w.every((x, i) => o.words[i + 1] === x))?.out.stdout ?? '';
    expect(of('agent', 'scan')).toContain('lk-0001');
    expect(of('agent', 'unlock')).toMatch(/GRANTED/);
    const inspect = JSON.parse(of('lock', 'inspect').trim().split('\n').at(-1) as string) as { ok: boolean; inForce: { lockId: string; version: number } };
    expect(inspect.ok).toBe(true);
    expect(inspect.inForce.lockId).toBe('lk-0001');
    expect(inspect.inForce.version).toBeGreaterThan(0);
    expect(of('scenario', 'run')).toMatch(/^PASS /m);
    expect(of('trace', 'show').split('\n').length).toBeGreaterThan(10);
  });

  it('then: the manager unassigns the partner; the offline lock still grants while the revocation is pending; a sync puts it in force and the partner is refused (exit 11)', async () => {
    const db = path.join(T, 'p.db');
    const phone = `uart:${path.join(T, 'radio', 'phone-1')}`;
    const agent = ['--lock', 'lk-0001', '--cache', path.join(T, 'courier'), '--transport', phone, '--json'];
    const unlock = (expected: number): Promise<any> => locksyncJson(['agent', 'unlock', '--credential', path.join(T, 'parcel.json'), ...agent], expected);
    await locksyncJson(['authority', 'partner', 'unassign-door', '--db', db, '--partner', '1', '--door', '1', '--json']);
    const pending = (await locksyncJson(['authority', 'pending', '--db', db, '--json'])) as Array<{ lockId: string; holder: string }>;
    expect(pending).toEqual([expect.objectContaining({ lockId: 'lk-0001', holder: 'partner' })]);
    expect(await unlock(0)).toMatchObject({ granted: true, reason: 'GRANTED' });

    const sync = await locksyncJson(['agent', 'sync', '--authority', `http://127.0.0.1:${port}`, '--token', filled['<t>'] as string, ...agent]);
    expect(sync).toMatchObject({ ok: true, lockId: 'lk-0001', receiptDelivered: true });
    expect(await locksyncJson(['authority', 'pending', '--db', db, '--json'])).toEqual([]);
    expect(await unlock(11)).toMatchObject({ granted: false, reason: 'UNKNOWN_CREDENTIAL' });
  }, 300_000);

  it('lock run stops cleanly on SIGTERM', async () => {
    if (lock === undefined) throw new Error('the README sequence started no lock');
    expect(await stopDaemon(lock)).toBe(0);
    expect(jsonLines(lock.stderr()).at(-1)?.event).toBe('bleStopped');
  }, 60_000);
});
