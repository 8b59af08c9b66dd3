// A lock state directory has one owner process at a time.
//
//   STATE/.owner        JSON {pid, startTime, startedAt, kind:"lock", control} while a
//                       process has the lock booted (radio/owner-file.ts: pid + /proc start
//                       time, so a reused pid is not mistaken for the owner)
//   STATE/control.sock  served by `lock run` while it runs: one-shot commands (`lock keypad`,
//                       `lock present`) act on the running lock through it, one JSON line
//                       each way, instead of booting a second copy of the lock on its flash
//
// A second `lock run` is refused IN_USE naming the owner's pid. A one-shot with no lock
// running boots the lock itself (that is a boot: one boot record in the audit log), acts,
// and shuts it down, owning the directory meanwhile. flash.img holds the lock's secret and
// device key: it is kept 0600.
//
// `lock run` prints one machine-readable ready line once it serves (see readyLine below).
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { CliError } from '../cli/errors';
import { acquireOwnership, DirInUseError, ownerAlive, readOwner, type OwnerRecord, type Ownership } from '../radio/owner-file';
import { auditRecordFromBytes, DECISION_REASONS, fromHex, toHex } from '../protocol';
import { AdvertisingSchedule } from './advertising';
import { BatteryMeter, type BatteryUse } from './battery';
import type { NorFlash } from './flash';
import type { Lock } from './lock';

const OWNER_FILE = '.owner';
const CONTROL_SOCKET = 'control.sock';
/** Files under a state dir that hold secrets (the lock secret and the device key seed). */
const SECRET_FILES = ['flash.img'];

export function controlSocketPath(dir: string): string {
  return path.join(path.resolve(dir), CONTROL_SOCKET);
}

/** Makes every secret-holding file of a state dir 0600 (also ones created before this rule). */
export function tightenSecretFiles(dir: string): void {
  for (const name of SECRET_FILES) {
    const p = path.join(dir, name);
    try {
      if ((fs.statSync(p).mode & 0o077) !== 0) fs.chmodSync(p, 0o600);
    } catch {
      // not there (yet)
    }
  }
}

// ---------------------------------------------------------------------------
// One-shot operations, the same whether the running lock or a one-shot boot performs them

export type OneShotRequest = { op: 'keypad'; digits: string } | { op: 'present'; card: string };

/**
 * Requests only a running lock answers (the panel's): `state` (what the lock holds, its
 * battery), `dropLinks` (disconnect every phone: a radio fault), `setBattery` (a battery
 * swapped or failing: state of charge to `percent`).
 */
export type RunningRequest = { op: 'ping' } | { op: 'state'; auditMax?: number } | { op: 'dropLinks' } | { op: 'setBattery'; percent: number };

/** What a running lock shares with its control socket besides the lock itself. */
export interface RunningLockExtras {
  battery?: BatteryMeter;
  advertising?: AdvertisingSchedule;
  /** Disconnects every connected phone (the transport's links), if the transport can. */
  dropLinks?: () => number;
  nowMs?: () => number;
}

/** The lock's state as the control socket's `state` op returns it (and `locksync panel --lock-dir` shows). */
export function lockStateReport(lock: Lock, extras: RunningLockExtras = {}, auditMax = 200): Record<string, unknown> {
  const table = lock.durable.tableState.table;
  const exported = lock.storage.exportAudit(0, 100_000).records;
  const audit = exported.slice(-auditMax).map((b) => {
    const r = auditRecordFromBytes(b);
    const reason = r.reason === undefined ? undefined : (Object.entries(DECISION_REASONS).find(([, code]) => code === r.reason)?.[0] ?? String(r.reason));
    return { seq: r.seq, time: new Date(r.time * 1000).toISOString().replace('.000Z', 'Z'), event: r.event, ...(r.credId !== undefined ? { credId: r.credId } : {}), ...(reason !== undefined ? { reason } : {}) };
  });
  const now = extras.nowMs?.() ?? Date.now();
  return {
    pid: process.pid,
    lockId: lock.lockId,
    mode: lock.machine.mode.kind,
    version: lock.version,
    clockTrusted: lock.rtc.trusted,
    battery: lock.machine.battery,
    ...(extras.battery ? { batteryModel: extras.battery.report() } : {}),
    ...(extras.advertising ? { advertisingIntervalMs: extras.advertising.intervalAt(now) } : {}),
    sessionOpen: lock.machine.sessionOpen,
    credentials: [...table.entries.values()].map((e) => ({
      credId: e.credId,
      kind: e.kind,
      holder: e.holder,
      ...(e.keyId !== undefined ? { keyId: e.keyId } : {}),
      ...(e.partnerId !== undefined ? { partnerId: e.partnerId } : {}),
      ...(e.parent !== undefined ? { parent: e.parent } : {}),
      ...(e.validUntil !== undefined ? { validUntil: e.validUntil } : {}),
    })),
    audit,
  };
}

export function performOneShot(lock: Lock, request: OneShotRequest): unknown {
  switch (request.op) {
    case 'keypad': {
      const r = lock.enterCode(request.digits);
      return { result: r ?? null, mode: lock.machine.mode.kind };
    }
    case 'present':
      return { result: lock.presentCard(fromHex(request.card)), mode: lock.machine.mode.kind };
  }
}

const toJson = (v: unknown): string => JSON.stringify(v, (_k, x) => (x instanceof Uint8Array ? toHex(x) : x));

/** The running lock's control socket: one JSON request per line, one JSON answer per line. */
export class LockControlServer {
  private constructor(
    private readonly server: net.Server,
    readonly socketPath: string,
  ) {}

  static async listen(dir: string, lock: Lock, extras: RunningLockExtras = {}): Promise<LockControlServer> {
    const socketPath = controlSocketPath(dir);
    try {
      fs.unlinkSync(socketPath); // ours: we own the directory
    } catch {
      // none left over
    }
    const server = net.createServer((socket) => {
      let buffered = '';
      socket.setEncoding('utf8');
      socket.on('error', () => undefined);
      socket.on('data', (chunk: string) => {
        buffered += chunk;
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line === '') continue;
          let answer: unknown;
          try {
            const request = JSON.parse(line) as OneShotRequest | RunningRequest;
            const now = extras.nowMs?.() ?? Date.now();
            extras.battery?.sample(now);
            switch (request.op) {
              case 'ping':
                answer = { ok: true, result: { pid: process.pid, lockId: lock.lockId } };
                break;
              case 'state':
                answer = { ok: true, result: lockStateReport(lock, extras, request.auditMax ?? 200) };
                break;
              case 'dropLinks':
                if (!extras.dropLinks) throw new Error('this transport cannot drop its links');
                answer = { ok: true, result: { dropped: extras.dropLinks() } };
                break;
              case 'setBattery': {
                const percent = Number(request.percent);
                if (!Number.isInteger(percent) || percent < 0 || percent > 100) throw new Error('percent must be an integer 0–100');
                if (extras.battery) extras.battery.setLevel(percent, now);
                else lock.setBattery(percent);
                answer = { ok: true, result: { battery: lock.machine.battery, mode: lock.machine.mode.kind } };
                break;
              }
              case 'keypad':
              case 'present':
                extras.advertising?.trigger(now, request.op === 'keypad' ? 'keypad' : 'card');
                answer = { ok: true, result: performOneShot(lock, request) };
                extras.battery?.sample(now);
                break;
              default:
                throw new Error(`unknown op ${JSON.stringify((request as { op?: unknown }).op)} (ping, state, keypad, present, dropLinks, setBattery)`);
            }
          } catch (e) {
            answer = { ok: false, error: (e as Error).message };
          }
          socket.write(`${toJson(answer)}\n`);
        }
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    return new LockControlServer(server, socketPath);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    try {
      fs.unlinkSync(this.socketPath);
    } catch {
      // already gone
    }
  }
}

export function controlRequest(socketPath: string, body: unknown, timeoutMs: number): Promise<{ ok: boolean; result?: unknown; error?: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    let buffered = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify(body)}\n`));
    socket.on('data', (d: string) => {
      buffered += d;
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      socket.destroy();
      try {
        resolve(JSON.parse(buffered.slice(0, nl)) as { ok: boolean; result?: unknown; error?: string });
      } catch (e) {
        reject(e as Error);
      }
    });
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

const probe = (owner: OwnerRecord): Promise<boolean> =>
  owner.control === undefined ? Promise.resolve(true) : controlRequest(owner.control, { op: 'ping' }, 1000).then((r) => r.ok, () => false);

function inUse(dir: string, owner: OwnerRecord): CliError {
  return new CliError(
    'IN_USE',
    `lock state ${dir} is owned by another process (pid ${owner.pid}, since ${owner.startedAt})`,
    `stop that lock first (kill ${owner.pid}); one-shot commands (lock keypad, lock present) reach a running lock by themselves`,
  );
}

/** Makes this process the owner of a lock state dir, or refuses IN_USE naming the owner. */
export async function claimStateDir(dir: string, opts: { serving: boolean }): Promise<Ownership> {
  try {
    const ownership = await acquireOwnership(path.resolve(dir), { name: OWNER_FILE, kind: 'lock', ...(opts.serving ? { control: controlSocketPath(dir) } : {}), probe });
    // Ours now: a control socket here is a dead owner's.
    try {
      if (fs.lstatSync(controlSocketPath(dir)).isSocket()) fs.unlinkSync(controlSocketPath(dir));
    } catch {
      // none
    }
    return ownership;
  } catch (e) {
    if (e instanceof DirInUseError) throw inUse(dir, e.owner);
    throw e;
  }
}

/**
 * Runs a one-shot operation: on the running lock through its control socket when there is
 * one; otherwise `boot()` boots the lock here (owning the directory meanwhile), the
 * operation runs, and `finish` shuts it down.
 */
export async function oneShot<S extends { lock: Lock }>(dir: string, req: OneShotRequest, boot: () => S, finish: (s: S) => void): Promise<{ result: unknown; via: 'running-lock' | 'boot' }> {
  const owner = readOwner(path.join(dir, OWNER_FILE));
  if (owner !== undefined && (await ownerAlive(owner, probe))) {
    if (owner.control === undefined) throw inUse(dir, owner);
    let answer: { ok: boolean; result?: unknown; error?: string };
    try {
      answer = await controlRequest(owner.control, req, 5000);
    } catch (e) {
      throw new CliError('IN_USE', `lock state ${dir} is owned by pid ${owner.pid} but its control socket does not answer (${(e as Error).message})`, `wait for it to finish starting, or stop it (kill ${owner.pid})`);
    }
    if (!answer.ok) throw new CliError('USAGE', `the running lock refused the request: ${answer.error ?? '?'}`, 'check the arguments');
    return { result: answer.result, via: 'running-lock' };
  }
  // No directory: nothing to own, and boot() names what is missing.
  const ownership = fs.existsSync(dir) ? await claimStateDir(dir, { serving: false }) : undefined;
  try {
    const s = boot();
    try {
      tightenSecretFiles(dir);
      return { result: JSON.parse(toJson(performOneShot(s.lock, req))) as unknown, via: 'boot' };
    } finally {
      finish(s);
    }
  } finally {
    ownership?.release();
  }
}

// ---------------------------------------------------------------------------
// lock run

/** What `lock run` needs of a transport (firmware-sim/cli.ts LockTransport + optional prepare). */
export interface RunnableTransport {
  /** Open the transport before the lock boots, so a dead one leaves the state untouched. */
  prepare?(): Promise<void>;
  start(host: Lock): Promise<void>;
  done(): Promise<void>;
  stop(): Promise<void>;
  /** Disconnects every phone; returns how many links it dropped (BLE transports). */
  dropLinks?(): number;
}

const BATTERY_FILE = 'battery.json';

/** The battery model's charge used so far, kept beside the flash between runs. */
function readBatteryFile(dir: string): { used?: Partial<BatteryUse> } {
  try {
    const parsed = JSON.parse(fs.readFileSync(path.join(dir, BATTERY_FILE), 'utf8')) as { usedUc?: Partial<BatteryUse> };
    return parsed.usedUc ? { used: parsed.usedUc } : {};
  } catch {
    return {}; // none yet (a fresh battery) or unreadable (start from a fresh battery)
  }
}

function writeBatteryFile(dir: string, used: BatteryUse): void {
  fs.writeFileSync(path.join(dir, BATTERY_FILE), `${JSON.stringify({ usedUc: used }, null, 2)}
`);
}

export interface RunLockOptions {
  dir: string;
  transportName: string;
  transport: RunnableTransport;
  /** Boots the lock (openLockState). */
  boot: () => { lock: Lock; save(): void; flash: NorFlash };
  /** Internet-connected lock: started after the transport, stopped before it. */
  uplink?: (lock: Lock) => { start(): void; stop(): void };
  /** Where the ready line goes: a file descriptor, and/or stdout (BLE transports). */
  readyFd?: number;
  readyOnStdout: boolean;
  /** Wait for a transport that died to come back (`lock run --reattach`): how to make a fresh one. */
  reattach?: { make: () => RunnableTransport; retryMs?: number };
  log?: (event: string, fields: Record<string, unknown>) => void;
}

/**
 * The ready line, one JSON object on one line, written once the lock advertises (BLE) or
 * has written its hello (sim):
 *   {"event":"ready","pid":…,"lockId":…,"version":…,"transport":…,"state":…,"control":…}
 * and again, with "reattached":N, each time `--reattach` serves on a transport that came back.
 */
export function readyLine(lock: Lock, o: { transportName: string; dir: string; control: string; reattached?: number }): string {
  return JSON.stringify({
    event: 'ready',
    pid: process.pid,
    lockId: lock.lockId,
    version: lock.version,
    transport: o.transportName,
    state: path.resolve(o.dir),
    control: o.control,
    ...(o.reattached !== undefined ? { reattached: o.reattached } : {}),
  });
}

/**
 * Owns the state dir, opens the transport, boots the lock, serves until SIGINT/SIGTERM or
 * the transport ends. A transport that dies under the lock ends it with its CliError
 * (TRANSPORT_LOST) — or, with `reattach`, the lock (still booted: no reboot, no boot
 * record) waits for the transport to come back, serves on it again and prints a new ready
 * line. The state dir is released and the RTC saved on every way out.
 */
export async function runLockProcess(o: RunLockOptions): Promise<void> {
  const ownership = await claimStateDir(o.dir, { serving: true });
  let stopRequested!: () => void;
  const stopped = new Promise<'stop'>((resolve) => (stopRequested = () => resolve('stop')));
  const onSignal = (): void => stopRequested();
  // bleno's bindings exit(1) on SIGINT when theirs is the last listener (skipping our
  // shutdown and the release of the state dir): keep ours last, also after each start.
  const listenLast = (): void => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.removeListener(signal, onSignal);
      process.on(signal, onSignal);
    }
  };
  listenLast();
  let transport = o.transport;
  try {
    await transport.prepare?.();
    const st = o.boot();
    tightenSecretFiles(o.dir);
    let control: LockControlServer | undefined;
    let uplink: { start(): void; stop(): void } | undefined;
    let failure: unknown;
    // The battery model goes on from where the last run left it (STATE/battery.json).
    const advertising = new AdvertisingSchedule({}, Date.now());
    const battery = new BatteryMeter(() => st.lock, st.flash, advertising, { nowMs: Date.now(), ...readBatteryFile(o.dir) });
    battery.sample(Date.now());
    const sampler = setInterval(() => battery.sample(Date.now()), 1000);
    sampler.unref();
    try {
      control = await LockControlServer.listen(o.dir, st.lock, { battery, advertising, nowMs: () => Date.now(), dropLinks: () => {
          if (!transport.dropLinks) throw new Error('this transport cannot drop its links');
          return transport.dropLinks();
        } });
      let attachments = 0;
      for (;;) {
        await transport.start(deviceTimed(st.lock));
        listenLast();
        if (attachments === 0) {
          uplink = o.uplink?.(st.lock);
          uplink?.start();
        }
        writeReady(o, readyLine(st.lock, { transportName: o.transportName, dir: o.dir, control: control.socketPath, ...(attachments > 0 ? { reattached: attachments } : {}) }));
        const outcome = await Promise.race([
          stopped,
          transport.done().then(
            // A sim lock ends with its stdin; an internet-connected one keeps its uplink.
            () => (uplink === undefined ? ('done' as const) : stopped),
            (e: unknown) => ({ error: e }),
          ),
        ]);
        if (typeof outcome === 'string') break;
        const lost = outcome.error instanceof CliError && outcome.error.code === 'TRANSPORT_LOST';
        if (!lost || o.reattach === undefined) throw outcome.error;
        o.log?.('transportLost', { transport: o.transportName, reattach: true, message: (outcome.error as CliError).what });
        await transport.stop().catch(() => undefined);
        const next = await waitForTransport(o.reattach, stopped, o.log, o.transportName);
        if (next === undefined) break;
        transport = next;
        attachments++;
      }
    } catch (e) {
      failure = e;
    } finally {
      clearInterval(sampler);
      battery.sample(Date.now());
      writeBatteryFile(o.dir, battery.snapshot());
      uplink?.stop();
      await control?.close();
      await transport.stop().catch(() => undefined);
      st.lock.shutdown();
      st.save();
      st.flash.close();
    }
    if (failure !== undefined) throw failure;
  } catch (e) {
    await transport.stop().catch(() => undefined);
    throw e;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    ownership.release();
  }
}

function writeReady(o: RunLockOptions, text: string): void {
  const line = `${text}\n`;
  if (o.readyOnStdout) process.stdout.write(line);
  if (o.readyFd !== undefined) {
    try {
      fs.writeSync(o.readyFd, line);
    } catch (e) {
      throw new CliError('USAGE', `cannot write the ready line to --ready-fd ${o.readyFd}: ${(e as Error).message}`, 'pass a file descriptor the lock inherits open for writing, e.g. --ready-fd 3 with 3>ready.json');
    }
  }
}

/**
 * Until `stopped`: a fresh transport every `retryMs` until one opens (the radio is back).
 * Only TRANSPORT_UNAVAILABLE is waited out; any other failure ends the lock.
 */
async function waitForTransport(
  reattach: NonNullable<RunLockOptions['reattach']>,
  stopped: Promise<'stop'>,
  log: RunLockOptions['log'],
  transportName: string,
): Promise<RunnableTransport | undefined> {
  let lastReason = '';
  for (;;) {
    const candidate = reattach.make();
    const opened = await Promise.race([
      (async () => {
        await candidate.prepare?.();
        return 'open' as const;
      })().catch((e: unknown) => ({ error: e })),
      stopped,
    ]);
    if (opened === 'open') {
      log?.('transportReattached', { transport: transportName });
      return candidate;
    }
    await candidate.stop().catch(() => undefined);
    if (opened === 'stop') return undefined;
    const e = opened.error;
    if (!(e instanceof CliError && e.code === 'TRANSPORT_UNAVAILABLE')) throw e;
    if (e.what !== lastReason) log?.('waitingForTransport', { transport: transportName, reason: e.what });
    lastReason = e.what;
    const again = await Promise.race([new Promise<'retry'>((r) => setTimeout(() => r('retry'), reattach.retryMs ?? 1000)), stopped]);
    if (again === 'stop') return undefined;
  }
}

/**
 * With a device profile, a session's answers leave only once the device would have done
 * the work (Lock.lastChargedMs, waited on the real clock): a lock run as `--device nrf52840`
 * answers as late as that MCU would. Host: the lock itself.
 */
function deviceTimed(lock: Lock): Lock {
  if (lock.device.profile === null) return lock;
  const openSession = (): ReturnType<Lock['openSession']> => {
    const session = lock.openSession();
    const handle = session.handle.bind(session);
    const delayed = async (message: Uint8Array): Promise<Uint8Array[]> => {
      const answers = handle(message);
      const ms = lock.lastChargedMs;
      if (ms > 0) await new Promise((done) => setTimeout(done, ms));
      return answers;
    };
    // Transports use a session's hello, handle and close only (LockHost, LockSessionHost).
    return { hello: () => session.hello(), handle: delayed, close: () => session.close() } as unknown as ReturnType<Lock['openSession']>;
  };
  return new Proxy(lock, {
    get(target, key) {
      if (key === 'openSession') return openSession;
      const v = Reflect.get(target, key, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
