// Process lifecycle failure paths, each command a separate process with a hard deadline:
// transport failures end every command with TRANSPORT_UNAVAILABLE (never a hang), a radio
// owns its --dir, a lock owns its state dir, a lock whose radio dies exits TRANSPORT_LOST,
// secrets are 0600, and `radio up` / `lock run` announce themselves with a JSON ready line.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../cli/errors';
import { BIN, ROOT, childEnv, digestTree, expectFailure, locksync, startDaemon, tempDir, timings, type Finished } from './harness';

// Generous: real host stacks under a loaded 2-core machine. They catch hangs, not slowness.
const DEADLINE = 45_000;
const STACK_FRAME = /^\s+at\s.+[(:]\d+/m;
/** Per test: several processes in sequence, each with its own DEADLINE. */
const TEST_TIMEOUT = 240_000;

/** Wall time of every failure case, spawn to exit (or, for TRANSPORT_LOST, radio killed to exit). */
const failureTimes: { what: string; ms: number }[] = [];

const BUNDLE = {
  lockId: 'lk-0001',
  rootPublicKeys: ['d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a'],
  lockSecret: '3f'.repeat(32),
  timeZone: 'UTC',
};

const daemons: ChildProcess[] = [];
const work = tempDir('locksync-lifecycle-');

let template: Promise<string> | undefined;

/** A freshly provisioned state dir: `lock provision` once, copied for each test (mode kept). */
async function provision(name: string): Promise<string> {
  template ??= (async () => {
    const bundle = path.join(work, 'bundle.json');
    fs.writeFileSync(bundle, JSON.stringify(BUNDLE));
    const state = path.join(work, 'template-state');
    const r = await locksync(['lock', 'provision', '--state', state, '--bundle', bundle, '--seed', 'lifecycle', '--blocks', '64'], { deadlineMs: DEADLINE });
    expect(r.code, r.stderr).toBe(0);
    return state;
  })();
  const state = path.join(work, name);
  fs.cpSync(await template, state, { recursive: true });
  return state;
}

type Daemon = Awaited<ReturnType<typeof startDaemon>>;

async function daemon(args: string[], ready: RegExp): Promise<Daemon> {
  const d = await startDaemon(args, ready, { deadlineMs: DEADLINE });
  daemons.push(d.child);
  return d;
}

function readyEvent(out: string): Record<string, unknown> {
  const line = out.split('\n').find((l) => l.startsWith('{"event":"ready"'));
  expect(line, out).toBeDefined();
  return JSON.parse(line as string) as Record<string, unknown>;
}

const radioUp = (dir: string, controllers = 'lock-1,phone-1'): Promise<Daemon> => daemon(['radio', 'up', '--dir', dir, '--controllers', controllers], /"event":"ready"/);
const lockRun = (state: string, transport: string): Promise<Daemon> => daemon(['lock', 'run', '--state', state, '--transport', transport], /"event":"ready"/);

/** Waits until a daemon's output matches; fails past the deadline. */
async function waitFor(d: Daemon, pattern: RegExp, ms = DEADLINE): Promise<void> {
  const until = Date.now() + ms;
  while (!pattern.test(d.out())) {
    if (Date.now() > until) throw new Error(`no ${pattern} within ${ms} ms\n${d.out()}`);
    if (d.child.exitCode !== null) throw new Error(`exited ${d.child.exitCode} before ${pattern}\n${d.out()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Waits for a daemon to exit; fails past the deadline. */
function exitOf(d: Daemon, ms = DEADLINE): Promise<number | null> {
  return Promise.race([d.exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still running after ${ms} ms\n${d.out()}`)), ms))]);
}

/**
 * The agent's transport failures: exit 10 within the deadline, no stack frames, and the
 * reason named in its output. (The agent's own output format is mobile-agent/cli.ts's.)
 */
function expectAgentTransportUnavailable(r: Finished, detail: RegExp): void {
  failureTimes.push({ what: 'agent scan', ms: r.ms });
  const all = `${r.stdout}${r.stderr}`;
  expect(r.code, all).toBe(EXIT_CODES.TRANSPORT_UNAVAILABLE);
  expect(all).toMatch(/TRANSPORT_UNAVAILABLE/);
  expect(all).toMatch(detail);
  expect(all).not.toMatch(STACK_FRAME);
}

afterAll(() => {
  for (const c of daemons) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  const slowest = [...failureTimes].sort((a, b) => b.ms - a.ms)[0];
  if (slowest) process.stdout.write(`lifecycle failure paths: ${failureTimes.length} failure cases, slowest to exit ${slowest.ms} ms (${slowest.what}); ${timings.length} processes in all\n`);
});

describe('transport failures end the command with TRANSPORT_UNAVAILABLE, never a hang', () => {
  let radioDir: string;
  let deadRadioDir: string;
  let lockState: string;

  beforeAll(async () => {
    // A live radio with a lock holding lock-1, and a radio killed with -9 (its links dangle).
    radioDir = path.join(work, 'radio');
    await radioUp(radioDir);
    lockState = await provision('busy-lock');
    await lockRun(lockState, `uart:${radioDir}/lock-1`);
    deadRadioDir = path.join(work, 'dead-radio');
    const dead = await radioUp(deadRadioDir);
    dead.child.kill('SIGKILL');
    await dead.exited;
  }, TEST_TIMEOUT);

  it('agent scan on a path that does not exist', async () => {
    expectAgentTransportUnavailable(await locksync(['agent', 'scan', '--transport', 'uart:/no/such/pty'], { deadlineMs: DEADLINE }), /\/no\/such\/pty does not exist/);
  }, TEST_TIMEOUT);

  it('agent scan on an HCI adapter that does not exist; --json output stays JSON (no host-stack banners)', async () => {
    const r = await locksync(['agent', 'scan', '--transport', 'hci:97', '--json'], { deadlineMs: DEADLINE });
    expectAgentTransportUnavailable(r, /hci97|hci:97/);
    for (const line of r.stdout.split('\n').filter((l) => l.trim() !== '')) expect(() => JSON.parse(line), line).not.toThrow();
  }, TEST_TIMEOUT);

  it("agent scan on Bumble's hci-socket spelling of a missing adapter", async () => {
    expectAgentTransportUnavailable(await locksync(['agent', 'scan', '--transport', 'hci-socket:97'], { deadlineMs: DEADLINE }), /hci97|hci-socket:97/);
  }, TEST_TIMEOUT);

  it('agent scan on a controller another host already holds', async () => {
    expectAgentTransportUnavailable(await locksync(['agent', 'scan', '--transport', `uart:${radioDir}/lock-1`], { deadlineMs: DEADLINE }), /in use by another process/);
  }, TEST_TIMEOUT);

  it("agent scan on a dead radio's leftover link", async () => {
    expectAgentTransportUnavailable(await locksync(['agent', 'scan', '--transport', `serial:${deadRadioDir}/phone-1`], { deadlineMs: DEADLINE }), /no longer running/);
  }, TEST_TIMEOUT);

  it('agent scan on usb: and on serial flow control, refused with what to use instead', async () => {
    expectAgentTransportUnavailable(await locksync(['agent', 'scan', '--transport', 'usb:0'], { deadlineMs: DEADLINE }), /hci_uart.*uart:\/dev\/ttyACM0/);
    expectAgentTransportUnavailable(await locksync(['agent', 'scan', '--transport', `serial:${radioDir}/phone-1,1000000,rtscts`], { deadlineMs: DEADLINE }), /rtscts/);
  }, TEST_TIMEOUT);

  const lockRunFails = async (transport: string, code: 'TRANSPORT_UNAVAILABLE' | 'USAGE', detail: RegExp): Promise<void> => {
    const state = await provision(`lock-${Math.random().toString(36).slice(2, 8)}`);
    const before = digestTree(state);
    const r = await locksync(['lock', 'run', '--state', state, '--transport', transport], { deadlineMs: DEADLINE });
    failureTimes.push({ what: `lock run --transport ${transport}`, ms: r.ms });
    expectFailure(r, code, detail);
    expect(digestTree(state), 'a lock whose transport failed never booted: its state is byte-identical').toBe(before);
  };

  it('lock run on a missing path, a missing adapter, a held controller, a dead radio link', async () => {
    await lockRunFails('uart:/no/such/pty', 'TRANSPORT_UNAVAILABLE', /does not exist/);
    await lockRunFails('hci:97', 'TRANSPORT_UNAVAILABLE', /hci97|hci:97/);
    await lockRunFails(`uart:${radioDir}/lock-1`, 'TRANSPORT_UNAVAILABLE', /in use by another process/);
    await lockRunFails(`uart:${deadRadioDir}/lock-1`, 'TRANSPORT_UNAVAILABLE', /no longer running/);
  }, TEST_TIMEOUT);

  it('lock run on usb: (unsupported) and on a malformed string (usage)', async () => {
    await lockRunFails('usb:1', 'TRANSPORT_UNAVAILABLE', /hci_uart/);
    await lockRunFails('uart:/dev/ttyACM0@fast', 'USAGE', /bad baud rate/);
    await lockRunFails('bluetooth', 'USAGE', /unknown transport/);
  }, TEST_TIMEOUT);
});

describe('a radio owns its --dir', () => {
  it('a second radio up on a live radio is refused IN_USE, and the first keeps working', async () => {
    const dir = path.join(work, 'owned-radio');
    const first = await radioUp(dir);
    const ready = readyEvent(first.out());
    expect(ready).toMatchObject({ event: 'ready', dir, control: path.join(dir, 'control.sock') });
    expect((ready.controllers as { name: string; transport: string }[]).map((c) => c.transport)).toEqual([`uart:${dir}/lock-1`, `uart:${dir}/phone-1`]);
    const links = ['lock-1', 'phone-1'].map((n) => fs.readlinkSync(path.join(dir, n)));

    const second = await locksync(['radio', 'up', '--dir', dir, '--controllers', 'lock-1,phone-1'], { deadlineMs: DEADLINE });
    failureTimes.push({ what: 'radio up on an owned dir', ms: second.ms });
    expectFailure(second, 'IN_USE', new RegExp(`pid ${first.child.pid}`));

    // Untouched: same links, the socket answers, a lock serves on it and a phone sees it.
    expect(['lock-1', 'phone-1'].map((n) => fs.readlinkSync(path.join(dir, n)))).toEqual(links);
    const ctl = await locksync(['radio', 'ctl', '--dir', dir, '{"op":"list"}'], { deadlineMs: DEADLINE });
    expect(ctl.code, ctl.stderr).toBe(0);
    const state = await provision('owned-radio-lock');
    await lockRun(state, `uart:${dir}/lock-1`);
    const scan = await locksync(['agent', 'scan', '--transport', `uart:${dir}/phone-1`, '--timeout', '4000', '--json'], { deadlineMs: DEADLINE });
    expect(scan.code, scan.stdout + scan.stderr).toBe(0);
    expect(JSON.parse(scan.stdout).locks.map((l: { lockId: string }) => l.lockId)).toEqual(['lk-0001']);
  }, TEST_TIMEOUT);

  it("a radio killed with -9 leaves links; the next radio up removes them and serves", async () => {
    const dir = path.join(work, 'killed-radio');
    const old = await radioUp(dir, 'a,b,c');
    old.child.kill('SIGKILL');
    await old.exited;
    expect(fs.readdirSync(dir).sort()).toEqual(['.owner', 'a', 'b', 'c', 'control.sock']);

    const next = await radioUp(dir, 'a');
    expect(readyEvent(next.out()).pid).toBe(next.child.pid);
    // b and c were the dead radio's: gone. a points at the new radio's live pty.
    expect(fs.readdirSync(dir).sort()).toEqual(['.owner', 'a', 'control.sock']);
    expect(fs.statSync(path.join(dir, 'a')).isCharacterDevice()).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(dir, '.owner'), 'utf8')).pid).toBe(next.child.pid);
    next.child.kill('SIGTERM');
    expect(await exitOf(next)).toBe(0);
    expect(fs.readdirSync(dir), 'a radio that stops cleanly leaves nothing behind').toEqual([]);
  }, TEST_TIMEOUT);
});

describe('a lock owns its state dir', () => {
  let radioDir: string;
  beforeAll(async () => {
    radioDir = path.join(work, 'lock-radio');
    await radioUp(radioDir, 'lock-1,lock-2,phone-1');
  }, TEST_TIMEOUT);

  it('lock run prints a JSON ready line, a second lock run is refused IN_USE naming the owner, state unchanged', async () => {
    const state = await provision('exclusive');
    const first = await lockRun(state, `uart:${radioDir}/lock-1`);
    expect(readyEvent(first.out())).toMatchObject({ event: 'ready', pid: first.child.pid, lockId: 'lk-0001', version: 0, transport: `uart:${radioDir}/lock-1`, state, control: path.join(state, 'control.sock') });
    const before = digestTree(state);
    const second = await locksync(['lock', 'run', '--state', state, '--transport', `uart:${radioDir}/lock-2`], { deadlineMs: DEADLINE });
    failureTimes.push({ what: 'lock run on an owned state dir', ms: second.ms });
    expectFailure(second, 'IN_USE', new RegExp(`pid ${first.child.pid}`));
    expect(digestTree(state)).toBe(before);
    first.child.kill('SIGINT'); // Ctrl-C: bleno's own SIGINT handler must not cut the shutdown short
    expect(await exitOf(first)).toBe(0);
    expect(fs.existsSync(path.join(state, '.owner'))).toBe(false);
    expect(fs.existsSync(path.join(state, 'control.sock'))).toBe(false);
  }, TEST_TIMEOUT);

  it('keypad and present act on the running lock (no boot record); without one they boot it', async () => {
    const state = await provision('one-shot');
    const auditRecords = async (): Promise<number> => {
      const r = await locksync(['lock', 'inspect', '--state', state, '--json'], { deadlineMs: DEADLINE });
      return (JSON.parse(r.stdout) as { audit: { records: number } }).audit.records;
    };
    const base = await auditRecords();
    // No lock running: the one-shot is a boot — a boot record, then the decision.
    const cold = await locksync(['lock', 'present', '--state', state, '--card', '01020304', '--json'], { deadlineMs: DEADLINE });
    expect(cold.code).toBe(1);
    expect(JSON.parse(cold.stdout)).toMatchObject({ granted: false, reason: 'UNKNOWN_CREDENTIAL' });
    expect(await auditRecords()).toBe(base + 2);

    const running = await lockRun(state, `uart:${radioDir}/lock-2`);
    const afterBoot = await auditRecords(); // lock run's own boot
    const warm = await locksync(['lock', 'present', '--state', state, '--card', '01020304', '--json'], { deadlineMs: DEADLINE });
    const warmResult = JSON.parse(warm.stdout) as { auditSeq: number };
    expect(warmResult).toMatchObject({ granted: false, reason: 'UNKNOWN_CREDENTIAL' });
    const keypad = await locksync(['lock', 'keypad', '--state', state, '1234567', '--json'], { deadlineMs: DEADLINE });
    expect(JSON.parse(keypad.stdout)).toMatchObject({ granted: false, auditSeq: warmResult.auditSeq + 1 });
    expect(await auditRecords(), 'two decisions, no boot records').toBe(afterBoot + 2);
    running.child.kill('SIGTERM');
    expect(await exitOf(running)).toBe(0);
  }, TEST_TIMEOUT);

  it("a killed lock's leftovers do not block the next one", async () => {
    const state = await provision('killed-lock');
    const dead = await lockRun(state, `uart:${radioDir}/lock-1`);
    dead.child.kill('SIGKILL');
    await dead.exited;
    expect(fs.existsSync(path.join(state, '.owner'))).toBe(true);
    const r = await locksync(['lock', 'keypad', '--state', state, '1', '--json'], { deadlineMs: DEADLINE });
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readdirSync(state).sort()).toEqual(['device.json', 'flash.img', 'rtc.json']);
  }, TEST_TIMEOUT);

  it('flash.img (the lock secret and device key) is 0600, and an older world-readable one is tightened', async () => {
    const state = await provision('secret');
    const mode = (): number => fs.statSync(path.join(state, 'flash.img')).mode & 0o777;
    expect(mode()).toBe(0o600);
    fs.chmodSync(path.join(state, 'flash.img'), 0o644);
    const r = await locksync(['lock', 'keypad', '--state', state, '1'], { deadlineMs: DEADLINE });
    expect(r.code, r.stderr).toBe(0);
    expect(mode()).toBe(0o600);
  }, TEST_TIMEOUT);

  it('lock run exits TRANSPORT_LOST with one error line when its radio dies, and releases the state', async () => {
    const dir = path.join(work, 'dying-radio');
    const radio = await radioUp(dir, 'lock-1');
    const state = await provision('orphan');
    const lock = await lockRun(state, `uart:${dir}/lock-1`);
    const killedAt = Date.now();
    radio.child.kill('SIGKILL');
    const code = await exitOf(lock);
    failureTimes.push({ what: 'lock run after its radio died', ms: Date.now() - killedAt });
    const out = lock.out();
    expect(code, out).toBe(EXIT_CODES.TRANSPORT_LOST);
    const errors = out.split('\n').filter((l) => l.startsWith('error '));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^error TRANSPORT_LOST: .+ — .+$/);
    expect(out).not.toMatch(STACK_FRAME);
    expect(fs.readdirSync(state).sort()).toEqual(['battery.json', 'device.json', 'flash.img', 'rtc.json']);
  }, TEST_TIMEOUT);

  it('lock run --reattach survives its radio dying: it waits, serves on the restarted radio and says so', async () => {
    const dir = path.join(work, 'restarted-radio');
    const radio = await radioUp(dir, 'lock-1,phone-1');
    const state = await provision('reattach');
    const lock = await daemon(['lock', 'run', '--state', state, '--transport', `uart:${dir}/lock-1`, '--reattach'], /"event":"ready"/);
    radio.child.kill('SIGKILL');
    await radio.exited;
    await waitFor(lock, /"event":"waitingForTransport"/);
    expect(lock.child.exitCode, 'still running, waiting for its radio').toBeNull();
    await radioUp(dir, 'lock-1,phone-1');
    await waitFor(lock, /"event":"ready"[^\n]*"reattached":1/);
    const scan = await locksync(['agent', 'scan', '--transport', `uart:${dir}/phone-1`, '--timeout', '4000', '--json'], { deadlineMs: DEADLINE });
    expect(scan.code, scan.stdout + scan.stderr).toBe(0);
    expect(JSON.parse(scan.stdout).locks.map((l: { lockId: string }) => l.lockId)).toEqual(['lk-0001']);
    lock.child.kill('SIGTERM');
    expect(await exitOf(lock)).toBe(0);
    const sim = await locksync(['lock', 'run', '--state', state, '--reattach'], { deadlineMs: DEADLINE });
    expectFailure(sim, 'USAGE', /--reattach needs a BLE transport/);
  }, TEST_TIMEOUT);

  it('lock run --ready-fd writes the ready line to that descriptor (sim: stdout carries the protocol)', async () => {
    const state = await provision('ready-fd');
    const child = spawn(process.execPath, [BIN, 'lock', 'run', '--state', state, '--ready-fd', '3'], { cwd: ROOT, env: childEnv(), stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
    daemons.push(child);
    const fd3 = child.stdio[3] as NodeJS.ReadableStream;
    let readyText = '';
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no ready line on fd 3')), DEADLINE);
      fd3.setEncoding('utf8');
      fd3.on('data', (d: string) => {
        readyText += d;
        if (readyText.includes('\n')) {
          clearTimeout(timer);
          resolve(JSON.parse(readyText.split('\n')[0] as string) as Record<string, unknown>);
        }
      });
    });
    expect(ready).toMatchObject({ event: 'ready', pid: child.pid, lockId: 'lk-0001', transport: 'sim' });
    child.stdin.end(); // sim: EOF ends the session and the lock
    const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    expect(code).toBe(0);
    expect(stdout.split('\n')[0]).toMatch(/^[0-9a-f]+$/); // the hello, not the ready line
  }, TEST_TIMEOUT);
});
