// `locksync lock …` commands. The integrator wires registerLockCommands into cli/main.ts.
//
// State directory: flash.img (the NOR image, FLASH.md), device.json (lock id, device public
// key for registration, geometry), rtc.json (the battery-backed RTC between runs: a process
// exit is not a power loss). JSON logs go to stderr; --json output to stdout.

import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { type LockPolicy, type RandomSource, deriveSeed32, fromHex, parseTransport, toHex, TransportSpecError } from '../protocol';
import { DEFAULT_GEOMETRY, type FlashGeometry, NorFlash } from './flash';
import { inspectFlash } from './inspect';
import { Lock, type LockLog, type ProvisionBundle } from './lock';
import { SystemClock } from './time';
import { Uplink } from './uplink';
import { oneShot, runLockProcess, type RunnableTransport } from './lifecycle';
import { CliError as CommandError, parseIntegerOption } from '../cli/errors';

// ---------------------------------------------------------------------------
// Transports: whole messages to and from a session

export interface LockHost {
  readonly lockId: string;
  openSession(): { hello(): Uint8Array; handle(message: Uint8Array): Uint8Array[] | Promise<Uint8Array[]>; close(): void };
  advert(): { lockId: string; version: number; flags: number };
  info(): { lockId: string; protocolVersion: number; capabilities: number; version: number };
}

/** Carries whole encoded messages between peers and a lock's sessions (BLE, stdio, …). */
export interface LockTransport {
  start(host: LockHost): Promise<void>;
  /** Resolves when the transport has nothing more to carry (e.g. stdin closed). */
  done(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * `sim` transport for headless scripting: one session per process; the hello and every
 * response are written to stdout as one lowercase-hex line each; every stdin line is one
 * hex-encoded request. EOF closes the session.
 */
export class StdioHexTransport implements LockTransport {
  private finished!: Promise<void>;
  private rl: ReturnType<typeof createInterface> | undefined;
  constructor(
    private readonly input: NodeJS.ReadableStream = process.stdin,
    private readonly output: NodeJS.WritableStream = process.stdout,
  ) {}
  async start(host: LockHost): Promise<void> {
    const session = host.openSession();
    this.output.write(`${toHex(session.hello())}\n`);
    const rl = createInterface({ input: this.input });
    this.rl = rl;
    this.finished = new Promise((resolve) => {
      let chain = Promise.resolve();
      rl.on('line', (line) => {
        const hex = line.trim();
        if (hex.length === 0) return;
        chain = chain.then(async () => {
          let bytes: Uint8Array;
          try {
            bytes = fromHex(hex);
          } catch {
            this.output.write(`${JSON.stringify({ error: 'line is not hex' })}\n`);
            return;
          }
          for (const r of await session.handle(bytes)) this.output.write(`${toHex(r)}\n`);
        });
      });
      rl.on('close', () => {
        void chain.then(() => {
          session.close();
          resolve();
        });
      });
    });
  }
  done(): Promise<void> {
    return this.finished;
  }
  async stop(): Promise<void> {
    this.rl?.close();
  }
}

/** In-process transport: tests and other components get a session-like handle per connect(). */
export class InProcessTransport implements LockTransport {
  private host: LockHost | undefined;
  private resolveDone!: () => void;
  private readonly finished = new Promise<void>((r) => (this.resolveDone = r));
  async start(host: LockHost): Promise<void> {
    this.host = host;
  }
  connect(): { hello: Uint8Array; send(m: Uint8Array): Promise<Uint8Array[]>; close(): void } {
    if (this.host === undefined) throw new Error('transport not started');
    const s = this.host.openSession();
    return { hello: s.hello(), send: async (m) => s.handle(m), close: () => s.close() };
  }
  done(): Promise<void> {
    return this.finished;
  }
  async stop(): Promise<void> {
    this.resolveDone();
  }
}

// ---------------------------------------------------------------------------
// State directory

interface DeviceFile {
  lockId: string;
  devicePublicKey: string;
  geometry: FlashGeometry;
}
interface RtcFile {
  rtcMs: number;
  hostMs: number;
  trusted: boolean;
  driftPpm: number;
}

export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

const paths = (dir: string) => ({ flash: join(dir, 'flash.img'), device: join(dir, 'device.json'), rtc: join(dir, 'rtc.json') });

export function parseBundle(text: string): ProvisionBundle {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new CliError('BAD_BUNDLE', `bundle is not JSON: ${(e as Error).message}`);
  }
  const { lockId, rootPublicKeys, lockSecret, timeZone, policy } = j;
  if (typeof lockId !== 'string') throw new CliError('BAD_BUNDLE', 'lockId must be a string');
  if (!Array.isArray(rootPublicKeys) || rootPublicKeys.some((k) => typeof k !== 'string')) throw new CliError('BAD_BUNDLE', 'rootPublicKeys must be hex strings');
  if (typeof lockSecret !== 'string') throw new CliError('BAD_BUNDLE', 'lockSecret must be hex');
  if (typeof timeZone !== 'string') throw new CliError('BAD_BUNDLE', 'timeZone must be an IANA zone name');
  try {
    const b: ProvisionBundle = { lockId, rootPublicKeys: (rootPublicKeys as string[]).map(fromHex), lockSecret: fromHex(lockSecret), timeZone };
    if (policy !== undefined) b.policy = policy as LockPolicy;
    return b;
  } catch (e) {
    throw new CliError('BAD_BUNDLE', (e as Error).message);
  }
}

const cryptoRandom: RandomSource = { bytes: (n) => new Uint8Array(randomBytes(n)) };

function jsonLog(): LockLog {
  return (event, fields) => process.stderr.write(`${JSON.stringify({ t: new Date().toISOString(), event, ...fields }, (_k, v) => (v instanceof Uint8Array ? toHex(v) : v))}\n`);
}

/** Boot the lock in a state dir (warm: the RTC kept running while the process was away). */
export function openLockState(dir: string, opts: { log?: LockLog; driftPpm?: number } = {}): { lock: Lock; flash: NorFlash; save(): void } {
  const p = paths(dir);
  if (!existsSync(p.flash) || !existsSync(p.device)) throw new CliError('NOT_PROVISIONED', `${dir} has no flash.img/device.json (run lock provision)`);
  const device = JSON.parse(readFileSync(p.device, 'utf8')) as DeviceFile;
  const flash = NorFlash.openFile(p.flash, device.geometry);
  const clock = new SystemClock();
  let rtc: RtcFile | undefined;
  if (existsSync(p.rtc)) rtc = JSON.parse(readFileSync(p.rtc, 'utf8')) as RtcFile;
  const driftPpm = opts.driftPpm ?? rtc?.driftPpm ?? 0;
  const lock = Lock.boot({
    flash,
    clock,
    timers: clock,
    random: cryptoRandom,
    rtc: rtc !== undefined ? { continueAtMs: rtc.rtcMs + (clock.nowMs() - rtc.hostMs), trusted: rtc.trusted, driftPpm } : { driftPpm },
    ...(opts.log !== undefined ? { log: opts.log } : {}),
  });
  const save = () => {
    const r: RtcFile = { rtcMs: lock.rtc.nowMs(), hostMs: clock.nowMs(), trusted: lock.rtc.trusted, driftPpm };
    writeFileSync(p.rtc, `${JSON.stringify(r, null, 2)}\n`);
  };
  return { lock, flash, save };
}

/** An access decision as one-shot commands print it (JSON of AccessResult). */
interface AccessReport {
  granted: boolean;
  reason: string;
  auditSeq: number;
}

/** Shut down a lock booted by openLockState: timers, RTC saved, flash closed. */
function closeLockState(st: { lock: Lock; save(): void; flash: NorFlash }): void {
  st.lock.shutdown();
  st.save();
  st.flash.close();
}

/** Run a lock until the transport is done (or SIGINT), with an optional uplink. */
export async function runLock(lock: Lock, transport: LockTransport, opts: { uplink?: Uplink } = {}): Promise<void> {
  await transport.start(lock);
  opts.uplink?.start();
  await new Promise<void>((resolve) => {
    const onSig = () => resolve();
    process.once('SIGINT', onSig);
    process.once('SIGTERM', onSig);
    void transport.done().then(() => {
      if (opts.uplink === undefined) resolve();
    });
  });
  opts.uplink?.stop();
  await transport.stop();
  lock.shutdown();
}

// ---------------------------------------------------------------------------

export function registerLockCommands(program: Command, opts: { transportFactory?: (spec: string) => LockTransport | undefined } = {}): Command {
  const lock = program.command('lock').description('lock firmware simulator: provision, run, inspect, keypad, keycard');

  lock
    .command('provision')
    .description('format a flash image from an authority bundle and create the device key')
    .requiredOption('--state <dir>', 'state directory')
    .requiredOption('--bundle <file>', 'bundle JSON { lockId, rootPublicKeys: [hex], lockSecret: hex, timeZone, policy? }')
    .option('--seed <seed>', 'derive the device key from this seed (reproducible); default: crypto random')
    .option('--blocks <n>', 'flash size in 4 KiB erase blocks', String(DEFAULT_GEOMETRY.blockCount))
    .option('--force', 'overwrite an existing state directory')
    .option('--json', 'machine-readable output')
    .action((o: { state: string; bundle: string; seed?: string; blocks: string; force?: boolean; json?: boolean }) => {
      const p = paths(o.state);
      if (existsSync(p.flash) && o.force !== true) throw new CliError('EXISTS', `${p.flash} exists (use --force to re-provision)`);
      const bundle = parseBundle(readFileSync(o.bundle, 'utf8'));
      mkdirSync(o.state, { recursive: true });
      const geometry: FlashGeometry = { ...DEFAULT_GEOMETRY, blockCount: Number(o.blocks) };
      const seed = o.seed !== undefined ? deriveSeed32(o.seed, `device:${bundle.lockId}`) : new Uint8Array(randomBytes(32));
      const flash = new NorFlash(geometry);
      const { devicePublicKey } = Lock.provision(flash, bundle, seed);
      writeFileSync(p.flash, flash.image(), { mode: 0o600 });
      chmodSync(p.flash, 0o600); // the lock secret and device key: also when --force rewrote an older file
      const device: DeviceFile = { lockId: bundle.lockId, devicePublicKey: toHex(devicePublicKey), geometry };
      writeFileSync(p.device, `${JSON.stringify(device, null, 2)}\n`);
      // The factory sets the RTC from its own clock: a start, not authority-signed time.
      const rtc: RtcFile = { rtcMs: Date.now(), hostMs: Date.now(), trusted: false, driftPpm: 0 };
      writeFileSync(p.rtc, `${JSON.stringify(rtc, null, 2)}\n`);
      const out = { lockId: bundle.lockId, devicePublicKey: device.devicePublicKey, flashBytes: flash.size, state: o.state };
      process.stdout.write(o.json === true ? `${JSON.stringify(out)}\n` : `provisioned ${out.lockId}; device public key ${out.devicePublicKey}\n`);
    });

  lock
    .command('run')
    .description('run the lock headless until the transport closes (sim: hex messages on stdin/stdout); owns --state while it runs')
    .requiredOption('--state <dir>', 'state directory')
    .option('--transport <spec>', 'sim | uart:PATH[@BAUD] | serial:PATH[,BAUD] | hci:N | hci-socket:N', 'sim')
    .option('--uplink <url>', 'authority base URL (internet-connected lock)')
    .option('--token <token>', 'lock token for the uplink')
    .option('--interval <ms>', 'uplink poll interval', '5000')
    .option('--wait <s>', 'uplink long-poll wait', '25')
    .option('--drift <ppm>', 'RTC drift in ppm')
    .option('--ready-fd <n>', 'also write the JSON ready line to this open file descriptor (with sim, stdout carries the protocol)')
    .option('--reattach', 'if the BLE transport dies (radio restarted, dongle replugged), wait for it to come back and serve again instead of exiting TRANSPORT_LOST')
    .action(async (o: { state: string; transport: string; uplink?: string; token?: string; interval: string; wait: string; drift?: string; readyFd?: string; reattach?: boolean }) => {
      const log = jsonLog();
      let spec;
      try {
        spec = parseTransport(o.transport);
      } catch (e) {
        const unsupported = e instanceof TransportSpecError && e.unsupported;
        throw new CommandError(unsupported ? 'TRANSPORT_UNAVAILABLE' : 'USAGE', (e as Error).message, 'e.g. --transport uart:/tmp/radio/lock-1, serial:/dev/ttyACM0,1000000 or hci:0');
      }
      const readyFd = o.readyFd !== undefined ? parseIntegerOption('--ready-fd', o.readyFd, { min: 0 }) : undefined;
      if (o.uplink !== undefined && o.token === undefined) throw new CliError('BAD_ARGS', '--uplink needs --token');
      let transport = opts.transportFactory?.(o.transport);
      if (transport === undefined) {
        if (spec.kind !== 'sim') throw new CliError('TRANSPORT_UNAVAILABLE', `transport ${o.transport} is provided by the BLE layer; pass a transportFactory`);
        transport = new StdioHexTransport();
      }
      const factory = opts.transportFactory;
      if (o.reattach === true && (spec.kind === 'sim' || factory === undefined)) throw new CommandError('USAGE', '--reattach needs a BLE transport (uart:, serial:, hci:)', 'drop --reattach, or run the lock on a radio or adapter');
      await runLockProcess({
        log,
        ...(o.reattach === true && factory !== undefined ? { reattach: { make: () => factory(o.transport) as RunnableTransport } } : {}),
        dir: o.state,
        transportName: o.transport,
        transport: transport as RunnableTransport,
        boot: () => openLockState(o.state, { log, ...(o.drift !== undefined ? { driftPpm: Number(o.drift) } : {}) }),
        ...(o.uplink !== undefined
          ? { uplink: (l: Lock) => new Uplink(l, { baseUrl: o.uplink as string, token: o.token as string, intervalMs: Number(o.interval), waitSeconds: Number(o.wait), log }) }
          : {}),
        ...(readyFd !== undefined ? { readyFd } : {}),
        readyOnStdout: spec.kind !== 'sim',
      });
    });

  lock
    .command('inspect')
    .description('decode the flash image with the independent reader: version, entries, audit log')
    .requiredOption('--state <dir>', 'state directory')
    .option('--json', 'machine-readable output')
    .option('--entries', 'list entries')
    .action((o: { state: string; json?: boolean; entries?: boolean }) => {
      const p = paths(o.state);
      if (!existsSync(p.flash)) throw new CliError('NOT_PROVISIONED', `${p.flash} not found`);
      const r = inspectFlash(new Uint8Array(readFileSync(p.flash)));
      if (o.json === true) {
        process.stdout.write(`${JSON.stringify(r, (_k, v) => (v instanceof Uint8Array ? toHex(v) : v))}\n`);
      } else {
        const f = r.inForce;
        const lines = [
          `flash: ${r.geometry.blockCount} × ${r.geometry.blockSize} B blocks, prog ${r.geometry.progSize} B — ${r.ok ? 'OK' : 'PROBLEMS'}`,
          f ? `lock ${f.lockId} (${f.timeZone}) version ${f.version} floor ${f.versionFloor} entries ${f.entries} keyPolicies ${f.keyPolicies} table ${f.tableBytes} B in region ${f.tableRegion} + journal ${f.journalRecords} record(s), ${f.journalBytes} B` : 'no committed state',
          f ? `head ${f.headDigest ?? '-'} signature ${f.headSignatureValid === null ? '-' : f.headSignatureValid ? 'valid' : 'INVALID'}; newest signed time ${f.newestIssuedAt}; commit seq ${f.seq}` : '',
          f ? `keypad wrongCount ${f.keypad.wrongCount} lockout ${f.keypad.lockoutActive}; device key ${f.devicePublicKey}` : '',
          `audit: ${r.audit.records} records (seq ${r.audit.firstSeq}..${r.audit.lastSeq}) in ${r.audit.blocks} blocks, chain ${r.audit.chainValid ? 'valid' : 'BROKEN'}, dead slots ${r.audit.deadSlots}`,
          ...r.audit.recent.map((a) => `  #${a.seq} t=${a.time} ${a.event}${a.credId !== undefined ? ` cred ${a.credId}` : ''}${a.reason !== undefined ? ` reason ${a.reason}` : ''}${a.value !== undefined ? ` value ${a.value}` : ''}`),
          ...(o.entries === true && f ? f.entryList.map((e) => `  cred ${e.credId} ${e.kind} ${e.holder}${e.partnerId !== undefined ? ` partner ${e.partnerId}` : ''}${e.keyId !== undefined ? ` key ${e.keyId}` : ''}${e.parent !== undefined ? ` parent ${e.parent}` : ''}`) : []),
          ...r.problems.map((x) => `problem: ${x}`),
        ].filter((l) => l.length > 0);
        process.stdout.write(`${lines.join('\n')}\n`);
      }
      if (!r.ok) process.exitCode = 2;
    });

  lock
    .command('keypad')
    .description('type digits on the keypad (7 digits make a code)')
    .requiredOption('--state <dir>', 'state directory')
    .argument('<digits>', 'digits to press')
    .option('--json', 'machine-readable output')
    .action(async (digits: string, o: { state: string; json?: boolean }) => {
      if (!/^[0-9]+$/.test(digits)) throw new CliError('BAD_ARGS', 'keypad takes digits 0-9 only');
      // The running lock takes the digits if there is one; otherwise this boots the lock.
      const { result } = await oneShot(o.state, { op: 'keypad', digits }, () => openLockState(o.state, { log: jsonLog() }), closeLockState);
      const { result: r, mode } = result as { result: AccessReport | null; mode: string };
      const out = r ?? { pending: mode === 'keypadEntry', mode };
      process.stdout.write(o.json === true ? `${JSON.stringify(out)}\n` : r ? `${r.granted ? 'GRANTED' : `REFUSED ${r.reason}`} (audit #${r.auditSeq})\n` : `no decision (${mode})\n`);
      if (r && !r.granted) process.exitCode = 1;
    });

  lock
    .command('present')
    .description('present a keycard UID to the reader')
    .requiredOption('--state <dir>', 'state directory')
    .requiredOption('--card <uidhex>', 'card UID, 4/7/10 bytes hex')
    .option('--json', 'machine-readable output')
    .action(async (o: { state: string; card: string; json?: boolean }) => {
      let uid: Uint8Array;
      try {
        uid = fromHex(o.card);
      } catch {
        throw new CliError('BAD_ARGS', '--card must be hex');
      }
      const { result } = await oneShot(o.state, { op: 'present', card: toHex(uid) }, () => openLockState(o.state, { log: jsonLog() }), closeLockState);
      const r = (result as { result: AccessReport }).result;
      process.stdout.write(o.json === true ? `${JSON.stringify(r)}\n` : `${r.granted ? 'GRANTED' : `REFUSED ${r.reason}`} (audit #${r.auditSeq})\n`);
      if (!r.granted) process.exitCode = 1;
    });

  return lock;
}
