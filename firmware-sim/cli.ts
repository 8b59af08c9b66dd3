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
import { CliError } from '../cli/errors';
import { integer } from '../cli/program';
import { type LockPolicy, type RandomSource, deriveSeed32, fromHex, parseTransport, toHex, TransportSpecError } from '../protocol';
import { DEFAULT_GEOMETRY, FlashError, type FlashGeometry, NorFlash } from './flash';
import { inspectFlash } from './inspect';
import { Lock, LockError, type LockLog, type ProvisionBundle } from './lock';
import { DEVICE_PROFILE_NAMES, type DeviceProfileName, isDeviceProfileName } from './device-profile';
import { StorageError } from './storage';
import { SystemClock } from './time';
import { Uplink } from './uplink';
import { oneShot, runLockProcess, type RunnableTransport } from './lifecycle';

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

export { CliError };

const paths = (dir: string) => ({ flash: join(dir, 'flash.img'), device: join(dir, 'device.json'), rtc: join(dir, 'rtc.json') });

const BUNDLE_TODO = 'pass the file `locksync authority provision-lock --door ID --out FILE` wrote';

/** A provisioning bundle from its JSON text; a malformed one is BAD_STATE naming the field. */
export function parseBundle(text: string, source = 'bundle'): ProvisionBundle {
  const bad = (what: string): CliError => new CliError('BAD_STATE', `${source} is not a provisioning bundle: ${what}`, BUNDLE_TODO);
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw bad(`not JSON (${(e as Error).message})`);
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw bad('not a JSON object');
  const { lockId, rootPublicKeys, lockSecret, timeZone, policy } = j as Record<string, unknown>;
  if (typeof lockId !== 'string') throw bad('lockId must be a string');
  if (!Array.isArray(rootPublicKeys) || rootPublicKeys.some((k) => typeof k !== 'string')) throw bad('rootPublicKeys must be hex strings');
  if (typeof lockSecret !== 'string') throw bad('lockSecret must be hex');
  if (typeof timeZone !== 'string') throw bad('timeZone must be an IANA zone name');
  try {
    const b: ProvisionBundle = { lockId, rootPublicKeys: (rootPublicKeys as string[]).map(fromHex), lockSecret: fromHex(lockSecret), timeZone };
    if (policy !== undefined) b.policy = policy as LockPolicy;
    return b;
  } catch (e) {
    throw bad((e as Error).message);
  }
}

function readBundleFile(file: string): ProvisionBundle {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CliError('BAD_STATE', `cannot read the bundle ${file}${code === 'ENOENT' ? ': no such file' : `: ${(e as Error).message}`}`, BUNDLE_TODO);
  }
  return parseBundle(text, file);
}

/** device.json of a provisioned state dir; missing or malformed is BAD_STATE. */
function readDeviceFile(dir: string): DeviceFile {
  const p = paths(dir);
  const corrupt = (what: string): CliError =>
    new CliError('BAD_STATE', `${p.device} is not a lock device file: ${what}`, `restore the state directory from a backup, or re-provision it with \`locksync lock provision --state ${dir} --force\``);
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(p.device, 'utf8'));
  } catch (e) {
    throw corrupt((e as Error).message);
  }
  const d = j as Partial<DeviceFile> | null;
  const g = d?.geometry;
  if (typeof d?.lockId !== 'string' || typeof d.devicePublicKey !== 'string' || typeof g !== 'object' || g === null || ![g.blockSize, g.blockCount, g.progSize].every((n) => Number.isSafeInteger(n) && (n as number) > 0))
    throw corrupt('lockId, devicePublicKey and geometry {blockSize, blockCount, progSize} are required');
  return d as DeviceFile;
}

/** Errors of the flash layers that mean "this image is not a good lock state". */
function isCorruptState(e: unknown): e is Error {
  return e instanceof FlashError || e instanceof StorageError || (e instanceof LockError && e.code === 'NOT_PROVISIONED');
}

const cryptoRandom: RandomSource = { bytes: (n) => new Uint8Array(randomBytes(n)) };

function jsonLog(): LockLog {
  return (event, fields) => process.stderr.write(`${JSON.stringify({ t: new Date().toISOString(), event, ...fields }, (_k, v) => (v instanceof Uint8Array ? toHex(v) : v))}\n`);
}

/** Boot the lock in a state dir (warm: the RTC kept running while the process was away). */
/** Refuses a --state that was never provisioned, before anything claims or writes in it. */
function requireProvisioned(dir: string): void {
  const p = paths(dir);
  if (!existsSync(p.flash) || !existsSync(p.device))
    throw new CliError('BAD_STATE', `${dir} is not a provisioned lock state (no flash.img/device.json)`, `provision it with \`locksync lock provision --state ${dir} --bundle FILE\`, or pass the right --state`);
}

export function openLockState(dir: string, opts: { log?: LockLog; driftPpm?: number; device?: DeviceProfileName } = {}): { lock: Lock; flash: NorFlash; save(): void } {
  const p = paths(dir);
  requireProvisioned(dir);
  const device = readDeviceFile(dir);
  const corrupt = (e: Error): CliError =>
    new CliError('BAD_STATE', `the flash image ${p.flash} is corrupt: ${e.message.replace(/^[A-Z_]+: /, '')}`, `inspect it with \`locksync lock inspect --state ${dir}\`; restore it from a backup or re-provision with --force`);
  let flash: NorFlash;
  try {
    flash = NorFlash.openFile(p.flash, device.geometry);
  } catch (e) {
    if (isCorruptState(e)) throw corrupt(e);
    throw e;
  }
  const clock = new SystemClock();
  let rtc: RtcFile | undefined;
  if (existsSync(p.rtc)) {
    try {
      rtc = JSON.parse(readFileSync(p.rtc, 'utf8')) as RtcFile;
    } catch (e) {
      flash.close();
      throw new CliError('BAD_STATE', `${p.rtc} is not JSON: ${(e as Error).message}`, 'delete rtc.json (the lock then boots with its clock untrusted until a signed time arrives)');
    }
  }
  const driftPpm = opts.driftPpm ?? rtc?.driftPpm ?? 0;
  const boot = (bootOpts: Parameters<typeof Lock.boot>[0]): Lock => {
    try {
      return Lock.boot(bootOpts);
    } catch (e) {
      flash.close();
      if (isCorruptState(e)) throw corrupt(e);
      throw e;
    }
  };
  const lock = boot({
    flash,
    clock,
    timers: clock,
    random: cryptoRandom,
    rtc: rtc !== undefined ? { continueAtMs: rtc.rtcMs + (clock.nowMs() - rtc.hostMs), trusted: rtc.trusted, driftPpm } : { driftPpm },
    ...(opts.log !== undefined ? { log: opts.log } : {}),
    ...(opts.device !== undefined ? { device: opts.device } : {}),
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
  lock.persistTimeAnchors();
}

// ---------------------------------------------------------------------------

export function registerLockCommands(program: Command, opts: { transportFactory?: (spec: string) => LockTransport | undefined } = {}): Command {
  const lock = program.command('lock').description('lock firmware simulator: provision, run, inspect, keypad, present (keycard)');

  lock
    .command('provision')
    .description('format a flash image from an authority bundle and create the device key')
    .requiredOption('--state <dir>', 'state directory to create (flash.img, device.json, rtc.json)')
    .requiredOption('--bundle <file>', 'bundle JSON { lockId, rootPublicKeys: [hex], lockSecret: hex, timeZone, policy? } from `authority provision-lock`')
    .option('--seed <seed>', 'derive the device key from this seed (reproducible); default: crypto random')
    .option('--blocks <n>', 'flash size in 4 KiB erase blocks (16–65536)', integer('--blocks', { min: 16, max: 65536 }), DEFAULT_GEOMETRY.blockCount)
    .option('--force', 'overwrite an existing state directory')
    .option('--json', 'machine-readable output')
    .action((o: { state: string; bundle: string; seed?: string; blocks: number; force?: boolean; json?: boolean }) => {
      const p = paths(o.state);
      if (existsSync(p.flash) && o.force !== true)
        throw new CliError('USAGE', `${o.state} already holds a provisioned lock (${p.flash})`, 'pass --force to re-provision it (its table, audit log and device key are lost), or choose another --state');
      const bundle = readBundleFile(o.bundle);
      const geometry: FlashGeometry = { ...DEFAULT_GEOMETRY, blockCount: o.blocks };
      const seed = o.seed !== undefined ? deriveSeed32(o.seed, `device:${bundle.lockId}`) : new Uint8Array(randomBytes(32));
      const flash = new NorFlash(geometry);
      let devicePublicKey: Uint8Array;
      try {
        ({ devicePublicKey } = Lock.provision(flash, bundle, seed));
      } catch (e) {
        // Nothing is written until the image is complete: a refused bundle leaves no state dir.
        if (e instanceof FlashError || e instanceof StorageError || e instanceof LockError)
          throw new CliError('BAD_STATE', `cannot provision from ${o.bundle}: ${e.message}`, `${BUNDLE_TODO} (and a --blocks large enough for it)`);
        throw e;
      }
      try {
        mkdirSync(o.state, { recursive: true });
      } catch (e) {
        throw new CliError('USAGE', `cannot create the state directory ${o.state}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'pass --state a directory path you can write');
      }
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
    .option('--transport <spec>', 'sim (hex messages on stdin/stdout) | uart:PATH[@BAUD] | serial:PATH[,BAUD] | hci:N | hci-socket:N', 'sim')
    .option('--uplink <url>', 'authority base URL (internet-connected lock)')
    .option('--token <token>', 'lock token for the uplink (from `authority register-lock`)')
    .option('--interval <ms>', 'uplink poll interval in ms', integer('--interval', { min: 1 }), 5000)
    .option('--wait <s>', 'uplink long-poll wait in seconds', integer('--wait', { min: 0, max: 3600 }), 25)
    .option('--drift <ppm>', 'RTC drift in ppm', integer('--drift', { min: -100_000, max: 100_000 }))
    .option('--ready-fd <n>', 'also write the JSON ready line to this open file descriptor (with sim, stdout carries the protocol)', integer('--ready-fd', { min: 0 }))
    .option('--reattach', 'if the BLE transport dies (radio restarted, dongle replugged), wait for it to come back and serve again instead of exiting TRANSPORT_LOST')
    .option('--device <profile>', `lock device profile whose published timings the lock's work is charged at (answers wait that long): ${DEVICE_PROFILE_NAMES.join(' | ')}`, 'host')
    .action(async (o: { state: string; transport: string; uplink?: string; token?: string; interval: number; wait: number; drift?: number; readyFd?: number; reattach?: boolean; device: string }) => {
      if (!isDeviceProfileName(o.device)) throw new CliError('USAGE', `--device ${o.device} is not a device profile`, `use one of ${DEVICE_PROFILE_NAMES.join(', ')}`);
      const device = o.device;
      const log = jsonLog();
      let spec;
      try {
        spec = parseTransport(o.transport);
      } catch (e) {
        const unsupported = e instanceof TransportSpecError && e.unsupported;
        throw new CliError(unsupported ? 'TRANSPORT_UNAVAILABLE' : 'USAGE', (e as Error).message, 'e.g. --transport uart:/tmp/radio/lock-1, serial:/dev/ttyACM0,1000000 or hci:0');
      }
      let transport = opts.transportFactory?.(o.transport);
      if (transport === undefined) {
        if (spec.kind !== 'sim') throw new CliError('TRANSPORT_UNAVAILABLE', `transport ${o.transport} is provided by the BLE layer, which this program did not load`, 'run it through `locksync lock run`');
        transport = new StdioHexTransport();
      }
      requireProvisioned(o.state);
      const factory = opts.transportFactory;
      if (o.reattach === true && (spec.kind === 'sim' || factory === undefined)) throw new CliError('USAGE', '--reattach needs a BLE transport (uart:, serial:, hci:)', 'drop --reattach, or run the lock on a radio or adapter');
      if (o.uplink !== undefined && o.token === undefined) throw new CliError('USAGE', '--uplink needs --token', 'pass the lock token `authority register-lock` printed');
      await runLockProcess({
        log,
        ...(o.reattach === true && factory !== undefined ? { reattach: { make: () => factory(o.transport) as RunnableTransport } } : {}),
        dir: o.state,
        transportName: o.transport,
        transport: transport as RunnableTransport,
        boot: () => openLockState(o.state, { log, device, ...(o.drift !== undefined ? { driftPpm: o.drift } : {}) }),
        ...(o.uplink !== undefined
          ? { uplink: (l: Lock) => new Uplink(l, { baseUrl: o.uplink as string, token: o.token as string, intervalMs: o.interval, waitSeconds: o.wait, log }) }
          : {}),
        ...(o.readyFd !== undefined ? { readyFd: o.readyFd } : {}),
        readyOnStdout: spec.kind !== 'sim',
      });
    });

  lock
    .command('inspect')
    .description('decode the flash image with the independent reader: version, entries, audit log')
    .requiredOption('--state <dir>', 'state directory')
    .option('--json', 'machine-readable output')
    .option('--entries', 'list the credential entries')
    .action((o: { state: string; json?: boolean; entries?: boolean }) => {
      const p = paths(o.state);
      if (!existsSync(p.flash)) throw new CliError('BAD_STATE', `${o.state} is not a provisioned lock state (no flash.img)`, 'pass the --state directory given to `locksync lock provision`');
      let r: ReturnType<typeof inspectFlash>;
      try {
        r = inspectFlash(new Uint8Array(readFileSync(p.flash)));
      } catch (e) {
        throw new CliError('BAD_STATE', `the flash image ${p.flash} cannot be decoded: ${(e as Error).message}`, 'restore it from a backup, or re-provision with `locksync lock provision --force`');
      }
      if (o.json === true) {
        process.stdout.write(`${JSON.stringify(r, (_k, v) => (v instanceof Uint8Array ? toHex(v) : v))}\n`);
      } else {
        const f = r.inForce;
        const lines = [
          `flash: ${r.geometry.blockCount} × ${r.geometry.blockSize} B blocks, prog ${r.geometry.progSize} B — ${r.ok ? 'OK' : 'PROBLEMS'}`,
          f ? `lock ${f.lockId} (${f.timeZone}) version ${f.version} floor ${f.versionFloor} entries ${f.entries} keyPolicies ${f.keyPolicies} table ${f.tableBytes} B in region ${f.tableRegion} + journal ${f.journalRecords} record(s), ${f.journalBytes} B` : 'no committed state',
          f ? `head ${f.headDigest ?? '-'} signature ${f.headSignatureValid === null ? '-' : f.headSignatureValid ? 'valid' : 'INVALID'}; newest signed time ${f.newestIssuedAt}; commit seq ${f.seq}` : '',
          f ? `keypad wrongCount ${f.keypad.wrongCount} lockout ${f.keypad.lockoutActive} level ${f.keypad.lockoutLevel}; device key ${f.devicePublicKey}` : '',
          `audit: ${r.audit.records} records (seq ${r.audit.firstSeq}..${r.audit.lastSeq}) in ${r.audit.blocks} blocks, chain ${r.audit.chainValid ? 'valid' : 'BROKEN'}, dead slots ${r.audit.deadSlots}`,
          ...r.audit.recent.map((a) => `  #${a.seq} t=${a.time} ${a.event}${a.credId !== undefined ? ` cred ${a.credId}` : ''}${a.reason !== undefined ? ` reason ${a.reason}` : ''}${a.value !== undefined ? ` value ${a.value}` : ''}`),
          ...(o.entries === true && f ? f.entryList.map((e) => `  cred ${e.credId} ${e.kind} ${e.holder}${e.partnerId !== undefined ? ` partner ${e.partnerId}` : ''}${e.keyId !== undefined ? ` key ${e.keyId}` : ''}${e.parent !== undefined ? ` parent ${e.parent}` : ''}`) : []),
          ...r.problems.map((x) => `problem: ${x}`),
        ].filter((l) => l.length > 0);
        process.stdout.write(`${lines.join('\n')}\n`);
      }
      // The report is printed either way; a damaged image then ends the command as BAD_STATE.
      if (!r.ok)
        throw new CliError('BAD_STATE', `the flash image ${p.flash} has ${r.problems.length} problem(s): ${r.problems[0] ?? 'see the report'}`, 'restore it from a backup, or re-provision with `locksync lock provision --force`');
    });

  lock
    .command('keypad')
    .description('type digits on the keypad (7 digits make a code)')
    .requiredOption('--state <dir>', 'state directory')
    .argument('<digits>', 'digits to press')
    .option('--json', 'machine-readable output')
    .action(async (digits: string, o: { state: string; json?: boolean }) => {
      if (!/^[0-9]+$/.test(digits)) throw new CliError('USAGE', `the keypad has keys 0-9 only, got "${digits}"`, 'pass digits only, e.g. `locksync lock keypad --state DIR 1234567`');
      // The running lock takes the digits if there is one; otherwise this boots the lock.
      requireProvisioned(o.state);
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
        throw new CliError('USAGE', `--card must be a hex UID, got "${o.card}"`, 'pass 4, 7 or 10 bytes as hex, e.g. --card 04a1b2c3');
      }
      requireProvisioned(o.state);
      const { result } = await oneShot(o.state, { op: 'present', card: toHex(uid) }, () => openLockState(o.state, { log: jsonLog() }), closeLockState);
      const r = (result as { result: AccessReport }).result;
      process.stdout.write(o.json === true ? `${JSON.stringify(r)}\n` : `${r.granted ? 'GRANTED' : `REFUSED ${r.reason}`} (audit #${r.auditSeq})\n`);
      if (!r.granted) process.exitCode = 1;
    });

  return lock;
}
