// The radio process: N virtual controllers on one medium, each behind a pty (or an
// in-memory port for unit tests), with faults, capture, a control API and its JSON endpoint.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Air } from './air';
import { BtsnoopWriter } from './btsnoop';
import { ManualClock, RealtimeClock, type RadioClock } from './clock';
import { VirtualController, type HostPort, type LinkPolicy, type PrivacySettings } from './controller';
import { H4Framer, wireToAddress } from './hci';
import type { Link } from './link';
import { PtyPort } from './pty';
import { DEFAULT_PROPAGATION, Medium, type Position, type PropagationModel } from './medium';
import { SeededRandom } from './prng';
import { acquireOwnership, type OwnerRecord, type Ownership } from './owner-file';

export interface RadioOptions {
  /** Directory for the pty symlinks (DIR/<name>) and control.sock. */
  dir: string;
  /** Controller names, or a count (named ctrl-1 … ctrl-N). */
  controllers: string[] | number;
  seed?: number | string;
  /** Model time runs this many times faster than wall time (default 1). */
  timeScale?: number;
  /** Write DIR/<name>.btsnoop per controller here. */
  captureDir?: string;
  /** Use this clock instead of real time (tests: ManualClock with transport 'memory'). */
  clock?: RadioClock;
  /** 'pty' (default) or 'memory' (no pty; drive controllers through MemoryHostPort). */
  transport?: 'pty' | 'memory';
  /** Report LE Extended Advertising so noble uses extended commands (default true). */
  extendedAdvertising?: boolean;
  propagation?: Partial<PropagationModel>;
  /** Link policy every controller applies as central (per-controller overrides below). */
  linkPolicy?: LinkPolicy;
  perController?: Record<string, { linkPolicy?: LinkPolicy; extendedAdvertising?: boolean; position?: Position; privacy?: PrivacySettings }>;
  aclBufferCount?: number;
  /** HCI UART speed of every controller in bit/s (default: unlimited). */
  uartBaud?: number;
  /** Open DIR/control.sock (default true with pty transport). */
  controlSocket?: boolean;
  /** Fault schedule applied at start (model-time offsets). */
  faultSchedule?: FaultScheduleEntry[];
}

/** Host side of an in-memory transport: what a host would write and read on the UART. */
export class MemoryHostPort implements HostPort {
  readonly received: Buffer[] = [];
  private readonly framer = new H4Framer();
  onPacket: ((packet: Buffer) => void) | null = null;
  closed = false;
  constructor(private readonly controller: VirtualController) {}

  /** Controller → host. */
  write(packet: Buffer): void {
    for (const p of this.framer.push(packet)) {
      this.received.push(p);
      this.onPacket?.(p);
    }
  }

  /** Host → controller. */
  send(bytes: Buffer): void {
    this.controller.receiveFromHost(bytes);
  }

  close(): void {
    this.closed = true;
  }
}

export interface RadioController {
  readonly name: string;
  /** Public BD_ADDR "aa:bb:cc:dd:ee:ff" (lower case, as noble reports it). */
  readonly address: string;
  /** Stable symlink to the pty (pty transport), the path hosts open. */
  readonly path: string;
  /** Transport string for hosts: `uart:<path>`. */
  readonly transport: string;
  readonly controller: VirtualController;
  /** Present with transport 'memory'. */
  readonly memoryPort: MemoryHostPort | null;
  setPosition(x: number, y: number, z?: number): void;
  position(): Position;
}

/** One operation of the control API (JSON endpoint, schedule entries, `radio.execute`). */
export type ControlRequest =
  | { op: 'list' }
  | { op: 'now' }
  | { op: 'links' }
  | { op: 'stats' }
  | { op: 'setPosition'; controller: string; x: number; y: number; z?: number }
  | { op: 'setLinkPolicy'; controller: string; policy: LinkPolicy }
  | { op: 'dropLink'; controller?: string; peer?: string; mode?: 'silent' | 'terminate'; reason?: number; afterPackets?: number; atMs?: number }
  | { op: 'blackout'; startMs?: number; durationMs: number; controllers?: string[] }
  | { op: 'setPer'; controller?: string; per: number }
  | { op: 'setJitter'; controller: string; jitterMs: number }
  | { op: 'hang'; controller: string }
  | { op: 'recover'; controller: string }
  | { op: 'hardwareError'; controller: string; code?: number }
  | { op: 'failCommand'; controller: string; opcode: number; status?: number; count?: number }
  | { op: 'corruptHci'; controller: string; probability: number; count?: number }
  | { op: 'schedule'; entries: FaultScheduleEntry[] };

/** A control operation to run at a model time (ms since the radio started). */
export type FaultScheduleEntry = ControlRequest & { atMs: number };

export interface LinkInfo {
  id: number;
  central: string;
  peripheral: string;
  centralHandle: number;
  peripheralHandle: number;
  intervalMs: number;
  phy: string;
  packetsPerEvent: number;
  supervisionTimeoutMs: number;
  dataLength: { centralTx: number; peripheralTx: number };
  /** Connection and PHY updates applied at their instants (event counter, model time), oldest first. */
  updates: Array<{ kind: 'connection' | 'phy'; instant: number; atMs: number; intervalMs: number; latency: number; supervisionTimeoutMs: number; phy: string }>;
  stats: Link['stats'];
}

export class RadioError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RadioError';
  }
}

/** Faults and impairments, all deterministic under the radio's seed. */
export class RadioFaults {
  constructor(private readonly radio: Radio) {}

  /**
   * Kills the radio path of matching links. 'silent' (default): nothing more gets through,
   * both hosts lose the link by supervision timeout (0x08), like walking out of range.
   * 'terminate': both hosts see Disconnection Complete with `reason` at once.
   * afterPackets: only after that many more data PDUs; atMs: at that model time.
   */
  dropLink(options: { controller?: string; peer?: string; mode?: 'silent' | 'terminate'; reason?: number; afterPackets?: number; atMs?: number } = {}): number {
    const apply = (): number => {
      const links = this.radio.matchLinks(options.controller, options.peer);
      for (const link of links) {
        if (options.mode === 'terminate') {
          const reason = options.reason ?? 0x08;
          link.closeBoth(reason, reason);
        } else if (options.afterPackets !== undefined && options.afterPackets > 0) {
          link.faults.silentAfterPackets = options.afterPackets;
        } else {
          link.faults.silent = true;
        }
      }
      return links.length;
    };
    if (options.atMs !== undefined) {
      this.radio.clock.at(options.atMs * 1000, () => void apply());
      return 0;
    }
    const count = apply();
    if (count === 0) throw new RadioError(`no link matches controller=${options.controller ?? '*'} peer=${options.peer ?? '*'}`);
    return count;
  }

  /** Nothing sent or received by `controllers` (default: everyone) in the window. */
  blackout(options: { startMs?: number; durationMs: number; controllers?: string[] }): void {
    const startUs = options.startMs !== undefined ? options.startMs * 1000 : this.radio.clock.nowUs();
    this.radio.medium.blackouts.push({ startUs, endUs: startUs + options.durationMs * 1000, controllers: options.controllers ?? [] });
  }

  /** Extra packet error rate for one controller's traffic, or for everyone. */
  setPacketErrorRate(per: number, controller?: string): void {
    if (!(per >= 0 && per <= 1)) throw new RadioError('per must be within [0, 1]');
    if (controller === undefined) this.radio.medium.globalExtraPer = per;
    else this.radio.medium.extraPer.set(this.radio.controller(controller).name, per);
  }

  /** Random extra latency (uniform 0…jitterMs) on controller→host packets, order kept. */
  setJitter(controller: string, jitterMs: number): void {
    this.radio.controller(controller).controller.jitterUs = Math.max(0, jitterMs * 1000);
  }

  /** The controller stops answering its host and goes off the air (peers time out). */
  hang(controller: string): void {
    this.radio.controller(controller).controller.hung = true;
  }

  recover(controller: string): void {
    this.radio.controller(controller).controller.hung = false;
  }

  hardwareError(controller: string, code = 0x01): void {
    this.radio.controller(controller).controller.raiseHardwareError(code);
  }

  /** The next `count` uses of `opcode` fail with `status` (default 0x1F unspecified error). */
  failCommand(controller: string, opcode: number, status = 0x1f, count = 1): void {
    this.radio.controller(controller).controller.failCommand(opcode, status, count);
  }

  /**
   * Host-robustness fault only: flips bits in controller→host HCI packets. A real link
   * never delivers corrupted data (the LL retransmits on CRC error), so this models a
   * broken UART, not radio noise.
   */
  corruptHci(controller: string, probability: number, count?: number): void {
    this.radio.controller(controller).controller.corruptHciBytes(probability, count);
  }

  /** Runs control operations at model times (ms since the radio started). */
  schedule(entries: FaultScheduleEntry[]): void {
    for (const entry of entries) {
      const { atMs, ...request } = entry;
      this.radio.clock.at(atMs * 1000, () => {
        try {
          this.radio.execute(request as ControlRequest);
        } catch (error) {
          this.radio.log(`scheduled ${request.op} at ${atMs} ms failed: ${(error as Error).message}`);
        }
      });
    }
  }
}

export class Radio {
  readonly controllers: RadioController[] = [];
  readonly faults = new RadioFaults(this);
  readonly air: Air;
  readonly medium: Medium;
  readonly random: SeededRandom;
  private server: net.Server | null = null;
  private readonly captures: BtsnoopWriter[] = [];
  private readonly ports: HostPort[] = [];
  /** This process's claim on `dir` (pty transport): released on close. */
  ownership: Ownership | null = null;
  /** Log lines (scheduled fault failures, control errors). */
  readonly messages: string[] = [];
  closed = false;

  constructor(
    readonly dir: string,
    readonly clock: RadioClock,
    seed: number | string,
    propagation: PropagationModel,
  ) {
    this.random = new SeededRandom(seed);
    this.medium = new Medium(propagation, this.random.fork('medium'));
    this.air = new Air(clock, this.medium, this.random.fork('air'));
  }

  get controlSocketPath(): string {
    return path.join(this.dir, 'control.sock');
  }

  log(message: string): void {
    this.messages.push(message);
  }

  controller(name: string): RadioController {
    const found = this.controllers.find((c) => c.name === name || c.address === name.toLowerCase());
    if (!found) throw new RadioError(`unknown controller "${name}" (have: ${this.controllers.map((c) => c.name).join(', ')})`);
    return found;
  }

  matchLinks(controller?: string, peer?: string): Link[] {
    const a = controller !== undefined ? this.controller(controller).controller : null;
    const b = peer !== undefined ? this.controller(peer).controller : null;
    return [...this.air.links].filter((link) => {
      const owners = [link.central.owner, link.peripheral.owner];
      return (!a || owners.includes(a)) && (!b || owners.includes(b));
    });
  }

  links(): LinkInfo[] {
    return [...this.air.links].map((link) => ({
      id: link.id,
      central: link.central.owner.name,
      peripheral: link.peripheral.owner.name,
      centralHandle: link.central.handle,
      peripheralHandle: link.peripheral.handle,
      intervalMs: link.params.intervalUs / 1000,
      phy: link.params.phy,
      packetsPerEvent: link.params.packetsPerEvent,
      supervisionTimeoutMs: link.params.supervisionTimeoutUs / 1000,
      dataLength: { centralTx: link.central.txOctets, peripheralTx: link.peripheral.txOctets },
      updates: link.appliedInstants.map((u) => ({ kind: u.kind, instant: u.instant, atMs: u.atUs / 1000, intervalMs: u.intervalUs / 1000, latency: u.latency, supervisionTimeoutMs: u.supervisionTimeoutUs / 1000, phy: u.phy })),
      stats: { ...link.stats },
    }));
  }

  setLinkPolicy(name: string, policy: LinkPolicy): void {
    const options = this.controller(name).controller.options;
    options.linkPolicy = { ...policy };
  }

  /** The control API as one entry point (used by the JSON socket and the fault schedule). */
  execute(request: ControlRequest): unknown {
    switch (request.op) {
      case 'list':
        return this.controllers.map((c) => {
          const privacy = c.controller.options.privacy;
          const lastPrivate = c.controller.privateAddressHistory.at(-1);
          return {
            name: c.name,
            address: c.address,
            path: c.path,
            transport: c.transport,
            position: c.position(),
            ...(c.controller.options.uartBaud !== undefined ? { uartBaud: c.controller.options.uartBaud } : {}),
            // With privacy the public address never goes on air; the private one in use (once one was needed) does.
            ...(privacy ? { privacy: { rotationMs: privacy.rotationMs, ...(lastPrivate ? { privateAddress: wireToAddress(lastPrivate) } : {}) } } : {}),
          };
        });
      case 'now':
        return { ms: this.clock.nowUs() / 1000 };
      case 'links':
        return this.links();
      case 'stats':
        return Object.fromEntries(this.controllers.map((c) => [c.name, { ...c.controller.stats, connections: c.controller.describeConnections() }]));
      case 'setPosition':
        this.controller(request.controller).setPosition(request.x, request.y, request.z);
        return null;
      case 'setLinkPolicy':
        this.setLinkPolicy(request.controller, request.policy);
        return null;
      case 'dropLink': {
        const { op: _op, ...options } = request;
        return this.faults.dropLink(options);
      }
      case 'blackout': {
        const { op: _op, ...options } = request;
        this.faults.blackout(options);
        return null;
      }
      case 'setPer':
        this.faults.setPacketErrorRate(request.per, request.controller);
        return null;
      case 'setJitter':
        this.faults.setJitter(request.controller, request.jitterMs);
        return null;
      case 'hang':
        this.faults.hang(request.controller);
        return null;
      case 'recover':
        this.faults.recover(request.controller);
        return null;
      case 'hardwareError':
        this.faults.hardwareError(request.controller, request.code);
        return null;
      case 'failCommand':
        this.faults.failCommand(request.controller, request.opcode, request.status, request.count);
        return null;
      case 'corruptHci':
        this.faults.corruptHci(request.controller, request.probability, request.count);
        return null;
      case 'schedule':
        this.faults.schedule(request.entries);
        return null;
      default:
        throw new RadioError(`unknown op "${(request as { op: unknown }).op}"`);
    }
  }

  /** @internal */
  addController(controller: VirtualController, port: HostPort, linkPath: string, memoryPort: MemoryHostPort | null, capture: BtsnoopWriter | null): RadioController {
    this.ports.push(port);
    if (capture) {
      controller.taps.push(capture);
      this.captures.push(capture);
    }
    const medium = this.medium;
    const entry: RadioController = {
      name: controller.name,
      address: controller.addressString,
      path: linkPath,
      transport: `uart:${linkPath}`,
      controller,
      memoryPort,
      setPosition: (x, y, z) => medium.setPosition(controller.name, z === undefined ? { x, y } : { x, y, z }),
      position: () => ({ ...(medium.positions.get(controller.name) ?? { x: 0, y: 0 }) }),
    };
    this.controllers.push(entry);
    return entry;
  }

  /** @internal */
  async listen(): Promise<void> {
    try {
      fs.unlinkSync(this.controlSocketPath);
    } catch {
      // none left over
    }
    const server = net.createServer((socket) => {
      let buffered = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        buffered += chunk;
        let newline: number;
        while ((newline = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          if (line) socket.write(`${JSON.stringify(this.handleControlLine(line))}\n`);
        }
      });
      socket.on('error', () => {});
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.controlSocketPath, () => resolve());
    });
  }

  private handleControlLine(line: string): { id: unknown; ok: boolean; result?: unknown; error?: string } {
    let id: unknown = null;
    try {
      const request = JSON.parse(line) as ControlRequest & { id?: unknown };
      id = request.id ?? null;
      const { id: _id, ...op } = request;
      return { id, ok: true, result: this.execute(op as ControlRequest) ?? null };
    } catch (error) {
      return { id, ok: false, error: (error as Error).message };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.controllers) c.controller.close();
    for (const port of this.ports) port.close();
    for (const capture of this.captures) capture.close();
    if (this.server) {
      const server = this.server;
      this.server = null;
      await new Promise<void>((resolve) => server.close(() => resolve()));
      try {
        fs.unlinkSync(this.controlSocketPath);
      } catch {
        // already gone
      }
    }
    this.ownership?.release();
    this.ownership = null;
  }
}

/** Public BD_ADDR for the n-th controller (1-based): unique within a radio. */
export function controllerAddress(index: number, seed: number | string): string {
  const salt = new SeededRandom(`${seed}`).nextUint32() & 0xffff;
  const bytes = [0xc0, 0x1d, (salt >> 8) & 0xff, salt & 0xff, (index >> 8) & 0xff, index & 0xff];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Starts a radio: controllers, ptys (or memory ports), captures, control socket, schedule. */
export async function startRadio(options: RadioOptions): Promise<Radio> {
  const names = typeof options.controllers === 'number'
    ? Array.from({ length: options.controllers }, (_, i) => `ctrl-${i + 1}`)
    : options.controllers;
  if (names.length === 0) throw new RadioError('a radio needs at least one controller');
  if (new Set(names).size !== names.length) throw new RadioError('controller names must be unique');
  for (const name of names) {
    if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new RadioError(`controller name "${name}" must be [A-Za-z0-9._-]+`);
    if (RESERVED_NAMES.has(name)) throw new RadioError(`controller name "${name}" is reserved for the radio's own files`);
  }
  const seed = options.seed ?? 1;
  const transport = options.transport ?? 'pty';
  const clock = options.clock ?? (transport === 'memory' ? new ManualClock() : new RealtimeClock(options.timeScale ?? 1));
  const dir = path.resolve(options.dir);
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new RadioError(`--dir ${dir} cannot be used as the radio's directory (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const radio = new Radio(dir, clock, seed, { ...DEFAULT_PROPAGATION, ...options.propagation });
  // A pty radio owns its directory: a live owner refuses us (DirInUseError) before we touch
  // its links or socket; a dead one's leftovers are removed first.
  if (transport === 'pty') radio.ownership = await claimRadioDir(dir);
  try {
    names.forEach((name, i) => {
      const overrides = options.perController?.[name] ?? {};
      const controller = new VirtualController(
        radio.air,
        {
          name,
          address: controllerAddress(i + 1, seed),
          extendedAdvertisingFeature: overrides.extendedAdvertising ?? options.extendedAdvertising ?? true,
          aclBufferSize: 251,
          aclBufferCount: options.aclBufferCount ?? 12,
          linkPolicy: { ...options.linkPolicy, ...overrides.linkPolicy },
          autonomousMaxTxOctets: 251,
          ...(options.uartBaud !== undefined ? { uartBaud: options.uartBaud } : {}),
          ...(overrides.privacy !== undefined ? { privacy: overrides.privacy } : {}),
        },
        radio.random.fork(`controller:${name}`),
      );
      radio.medium.setPosition(name, overrides.position ?? { x: i * 0.5, y: 0 });
      const capture = options.captureDir ? new BtsnoopWriter(path.join(path.resolve(options.captureDir), `${name}.btsnoop`)) : null;
      const linkPath = path.join(dir, name);
      if (transport === 'memory') {
        const port = new MemoryHostPort(controller);
        controller.attach(port);
        radio.addController(controller, port, linkPath, port, capture);
      } else {
        // The native pty module loads on first use, so importing radio/ never needs it.
        const port = PtyPort.open(linkPath, (chunk) => controller.receiveFromHost(chunk));
        controller.attach(port);
        radio.addController(controller, port, linkPath, null, capture);
      }
    });
    if (options.controlSocket ?? transport === 'pty') await radio.listen();
    if (options.faultSchedule) radio.faults.schedule(options.faultSchedule);
  } catch (error) {
    await radio.close();
    throw error;
  }
  return radio;
}

/** Files of the radio's own in its --dir, never controller names. */
const RADIO_OWNER_FILE = '.owner';
const RESERVED_NAMES = new Set(['control.sock', RADIO_OWNER_FILE]);

/** The owner file in a radio directory (JSON OwnerRecord, kind "radio"). */
export function radioOwnerFile(dir: string): string {
  return path.join(dir, RADIO_OWNER_FILE);
}

/** Does a radio's control socket answer? (Liveness where /proc cannot tell.) */
export function controlSocketAnswers(socketPath: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.createConnection(socketPath);
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write('{"id":0,"op":"now"}\n'));
    socket.on('data', (d: string) => {
      if (d.includes('\n')) done(true);
    });
    socket.on('error', () => done(false));
  });
}

/**
 * Removes what a radio that is no longer running left in its directory: the links to pty
 * slaves (whose /dev/pts numbers the system reuses for other terminals) and its socket.
 */
export function removeRadioLeftovers(dir: string): string[] {
  const removed: string[] = [];
  for (const name of fs.readdirSync(dir)) {
    const p = path.join(dir, name);
    let remove = false;
    try {
      const st = fs.lstatSync(p);
      if (st.isSymbolicLink()) remove = fs.readlinkSync(p).startsWith('/dev/');
      else if (st.isSocket()) remove = name === 'control.sock';
    } catch {
      continue;
    }
    if (!remove) continue;
    try {
      fs.unlinkSync(p);
      removed.push(name);
    } catch {
      // raced with someone else's cleanup
    }
  }
  return removed;
}

async function claimRadioDir(dir: string): Promise<Ownership> {
  const control = path.join(dir, 'control.sock');
  const ownership = await acquireOwnership(dir, {
    name: RADIO_OWNER_FILE,
    kind: 'radio',
    control,
    probe: (owner: OwnerRecord) => controlSocketAnswers(owner.control ?? control),
  });
  // Ours now: any pty link or socket here is a dead radio's (also one from before owner files).
  removeRadioLeftovers(dir);
  return ownership;
}
