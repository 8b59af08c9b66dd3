// Loading the real BLE host stacks (noble = central, bleno = peripheral) for a transport:
//   uart:PATH  HCI over UART — a virtual radio pty, or a real nRF52840/Zephyr hci_uart dongle
//   hci:N      Linux HCI socket (hciN)
// The packages are optional dependencies, imported lazily so nothing else in the project
// needs them to load.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { ownerAlive, readOwner } from './owner-file';
import { parseTransport as parseTransportSpec, TransportSpecError, type TransportSpec } from '../protocol/transport';

export type BleFamily = 'stoprocent' | 'abandonware';

export type HostTransport =
  | { kind: 'uart'; port: string; baudRate: number }
  | { kind: 'hci'; deviceId: number };

export class TransportParseError extends Error {
  constructor(
    readonly transport: string,
    /** Why, when the parser said more than "not a host-stack transport". */
    detail?: string,
  ) {
    super(detail ?? `invalid BLE transport "${transport}": expected uart:PATH[@BAUD], serial:PATH[,BAUD], hci:N or hci-socket:N`);
    this.name = 'TransportParseError';
  }
}

/** A host-stack package is not installed. */
export class BlePackageMissingError extends Error {
  constructor(
    readonly packageName: string,
    cause: unknown,
  ) {
    super(`${packageName} is not installed: run \`npm install ${packageName}\` (${(cause as Error)?.message ?? String(cause)})`);
    this.name = 'BlePackageMissingError';
  }
}

/** The chosen family cannot drive this transport. */
export class TransportUnsupportedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TransportUnsupportedError';
  }
}

/**
 * Parses `uart:/dev/ttyACM0`, `uart:/tmp/radio/lock-1@1000000`, `hci:0` into what the host
 * stacks take. The grammar is the project's one transport-string parser (protocol/
 * transport.ts); `sim` is not a host-stack transport, so it is refused here.
 */
export function parseTransport(transport: string): HostTransport {
  let spec: TransportSpec;
  try {
    spec = parseTransportSpec(transport);
  } catch (error) {
    if (error instanceof TransportSpecError) throw new TransportParseError(transport, error.message);
    throw error;
  }
  if (spec.kind === 'uart') return { kind: 'uart', port: spec.path, baudRate: spec.baudRate };
  if (spec.kind === 'hci') return { kind: 'hci', deviceId: spec.index };
  throw new TransportParseError(transport);
}

/** Family from the option, else LOCKSYNC_BLE_FAMILY, else stoprocent. */
export function resolveFamily(family?: BleFamily): BleFamily {
  const chosen = family ?? (process.env.LOCKSYNC_BLE_FAMILY as BleFamily | undefined) ?? 'stoprocent';
  if (chosen !== 'stoprocent' && chosen !== 'abandonware') {
    throw new TransportUnsupportedError(`LOCKSYNC_BLE_FAMILY must be "stoprocent" or "abandonware", not "${String(chosen)}"`);
  }
  return chosen;
}

/**
 * The options both families' `withBindings('hci', options)` take for a transport.
 * `extended` (noble only) forces legacy (false) or extended (true) advertising commands;
 * left out, noble follows the controller's LE Extended Advertising feature bit.
 */
export function hciBindingOptions(transport: HostTransport, extra: { extended?: boolean } = {}): Record<string, unknown> {
  const options: Record<string, unknown> =
    transport.kind === 'uart'
      ? { hciDriver: 'uart', bindParams: { uart: { port: transport.port, baudRate: transport.baudRate } } }
      : { deviceId: transport.deviceId };
  if (extra.extended !== undefined) options.extended = extra.extended;
  return options;
}

// Loose structural types: the packages ship their own typings but are optional, so the
// project must type-check without them.
export interface NobleLike {
  readonly state: string;
  on(event: string, listener: (...args: any[]) => void): unknown;
  once(event: string, listener: (...args: any[]) => void): unknown;
  removeListener(event: string, listener: (...args: any[]) => void): unknown;
  removeAllListeners(event?: string): unknown;
  startScanningAsync(serviceUuids?: string[], allowDuplicates?: boolean): Promise<void>;
  stopScanningAsync(): Promise<void>;
  waitForPoweredOnAsync?(timeout?: number): Promise<void>;
  stop?(): void;
  [key: string]: any;
}

export interface BlenoLike {
  readonly state: string;
  on(event: string, listener: (...args: any[]) => void): unknown;
  once(event: string, listener: (...args: any[]) => void): unknown;
  removeListener(event: string, listener: (...args: any[]) => void): unknown;
  removeAllListeners(event?: string): unknown;
  startAdvertising(name: string, serviceUuids?: string[], callback?: (error?: Error | null) => void): void;
  stopAdvertising(callback?: () => void): void;
  setServices(services: unknown[], callback?: (error?: Error | null) => void): void;
  /** Drops one connection (its HCI handle), or every connection without one. */
  disconnect(handle?: number): void;
  PrimaryService: new (options: Record<string, unknown>) => unknown;
  Characteristic: new (options: Record<string, unknown>) => unknown;
  Descriptor: new (options: Record<string, unknown>) => unknown;
  [key: string]: any;
}

interface WithBindingsModule<T> {
  withBindings?: (type: string, options?: Record<string, unknown>) => T;
  default?: WithBindingsModule<T> & T;
}

async function importPackage<T>(name: string): Promise<WithBindingsModule<T> & T> {
  try {
    const loaded = (await import(name)) as WithBindingsModule<T> & T;
    // CommonJS packages arrive as { default: module.exports, ...named }.
    return (loaded.default ?? loaded) as WithBindingsModule<T> & T;
  } catch (error) {
    if (isModuleNotFound(error, name)) throw new BlePackageMissingError(name, error);
    // The package is there but failed while loading: the @abandonware stacks open their
    // HCI socket at import, which fails where the kernel has no Bluetooth (EAFNOSUPPORT).
    const code = (error as { code?: string })?.code;
    throw new TransportUnsupportedError(
      `${name} failed to load${code !== undefined ? ` (${code})` : ''}: ${String((error as Error)?.message ?? error).split('\n')[0]}` +
        (code === 'EAFNOSUPPORT' ? ' — this kernel has no Bluetooth HCI sockets' : ''),
    );
  }
}

/** A failure to load or bind a host stack that the user fixes by installing or choosing differently. */
export function isHostLoadError(e: unknown): e is BlePackageMissingError | TransportUnsupportedError | TransportParseError {
  return e instanceof BlePackageMissingError || e instanceof TransportUnsupportedError || e instanceof TransportParseError;
}

function isModuleNotFound(error: unknown, name: string): boolean {
  const code = (error as { code?: string })?.code;
  return (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && String((error as Error).message).includes(name);
}

/** The environment variable an @abandonware package reads its adapter index from. */
export const ABANDONWARE_DEVICE_ID_ENV = { noble: 'NOBLE_HCI_DEVICE_ID', bleno: 'BLENO_HCI_DEVICE_ID' } as const;

/** Adapter index each @abandonware package was imported with in this process. */
const abandonwareDeviceIds: { noble?: number; bleno?: number } = {};

async function loadHost<T>(role: 'noble' | 'bleno', transport: string, options: { family?: BleFamily; extended?: boolean }): Promise<T> {
  const parsed = parseTransport(transport);
  const family = resolveFamily(options.family);
  const packageName = `@${family}/${role}`;
  if (family === 'abandonware') {
    // The @abandonware stacks have no UART driver, and each is a singleton that picks its
    // adapter from an environment variable while it is imported (lib/hci-socket/hci.js
    // reads it when the module-level instance is built). So: refuse UART before importing,
    // set the variable before the import, and refuse a second adapter in the same process.
    if (parsed.kind === 'uart') {
      throw new TransportUnsupportedError(
        `${packageName} has no HCI-over-UART driver, so ${transport} cannot be used with LOCKSYNC_BLE_FAMILY=abandonware; use hci:N, or the default family (LOCKSYNC_BLE_FAMILY=stoprocent) for uart:`,
      );
    }
    const bound = abandonwareDeviceIds[role];
    if (bound !== undefined && bound !== parsed.deviceId) {
      throw new TransportUnsupportedError(`${packageName} is already bound to hci:${bound} in this process and cannot switch to hci:${parsed.deviceId}; run one process per adapter`);
    }
    const envName = ABANDONWARE_DEVICE_ID_ENV[role];
    const previous = process.env[envName];
    process.env[envName] = String(parsed.deviceId);
    let module: WithBindingsModule<T> & T;
    try {
      module = await importPackage<T>(packageName);
    } catch (e) {
      if (previous === undefined) delete process.env[envName];
      else process.env[envName] = previous;
      throw e;
    }
    abandonwareDeviceIds[role] = parsed.deviceId;
    return module as T;
  }
  const module = await importPackage<T>(packageName);
  if (typeof module.withBindings !== 'function') {
    throw new TransportUnsupportedError(`${packageName} has no withBindings(); a version with HCI-over-UART support is needed`);
  }
  const host = module.withBindings('hci', hciBindingOptions(parsed, role === 'noble' && options.extended !== undefined ? { extended: options.extended } : {}));
  if (role === 'noble' && parsed.kind === 'uart') answerLeSignallingOverUart(host);
  return host;
}

/**
 * noble answers a peripheral's L2CAP Connection Parameter Update Request (and applies it
 * with LE Connection Update) only off Linux or on an HCI user channel
 * (lib/hci-socket/signaling.js): on a Linux raw HCI socket the kernel's L2CAP layer answers
 * instead. Over a UART there is no kernel — noble owns the controller exactly as on a user
 * channel — so nobody answered and the link kept its parameters. The `userChannel: true`
 * binding option is not the way out: the UART driver of @stoprocent/bluetooth-hci-socket
 * only resumes its write queue and reports itself up after a Reset in its raw mode, so in
 * user mode no command ever reaches the controller and noble never powers on (tried on
 * the radio: 0 commands). Instead this tells the one place that asks — the Signaling
 * object made per connection from `hci.isUserChannel()` — that the host owns the link;
 * hci.js itself reads its `_userChannel` field, so its bind/reset flow is unchanged.
 */
function answerLeSignallingOverUart(noble: unknown): void {
  type Hci = { isUserChannel?: () => boolean };
  type Bindings = { _hci?: Hci | null; start?: (...args: unknown[]) => unknown };
  const bindings = (noble as { _bindings?: Bindings })._bindings;
  if (!bindings || typeof bindings.start !== 'function') return;
  const ownsController = (hci: Hci | null | undefined): void => {
    if (hci && typeof hci.isUserChannel === 'function') hci.isUserChannel = () => true;
  };
  ownsController(bindings._hci);
  const start = bindings.start;
  bindings.start = function (this: Bindings, ...args: unknown[]): unknown {
    const result = start.apply(this, args);
    ownsController(this._hci);
    return result;
  };
}

/** A noble (central) instance bound to `transport`. */
export async function loadNoble(transport: string, options: { family?: BleFamily; extended?: boolean } = {}): Promise<NobleLike> {
  return loadHost<NobleLike>('noble', transport, options);
}

/** A bleno (peripheral) instance bound to `transport`. */
export async function loadBleno(transport: string, options: { family?: BleFamily } = {}): Promise<BlenoLike> {
  return loadHost<BlenoLike>('bleno', transport, options);
}

/** Whether a host package can be resolved (without loading it). */
export function isHostPackageInstalled(role: 'noble' | 'bleno', family?: BleFamily): boolean {
  try {
    createRequire(import.meta.url).resolve(`@${resolveFamily(family)}/${role}`);
    return true;
  } catch {
    return false;
  }
}

/** Waits for a host instance to report `poweredOn`. */
export function waitForPoweredOn(host: { state: string; on(e: string, l: (s: string) => void): unknown; removeListener(e: string, l: (s: string) => void): unknown }, timeoutMs = 10_000): Promise<void> {
  if (host.state === 'poweredOn') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      host.removeListener('stateChange', onState);
      reject(new Error(`BLE host not poweredOn after ${timeoutMs} ms (state ${host.state})`));
    }, timeoutMs);
    const onState = (state: string): void => {
      if (state !== 'poweredOn') return;
      clearTimeout(timer);
      host.removeListener('stateChange', onState);
      resolve();
    };
    host.on('stateChange', onState);
  });
}

/**
 * The host stack could not start on a transport, for a reason a user can act on. `reason`:
 *   missing      the uart path does not exist
 *   stale        the path is a link left by a radio that is no longer running
 *   not-a-device the path is not a character device
 *   in-use       another process holds the serial port (a second host on one controller)
 *   io           opening the port failed otherwise
 *   unsupported  no such HCI adapter, or it has no LE
 *   unauthorized no permission for the HCI socket
 *   timeout      the controller never answered the host's reset
 */
export class HostStartError extends Error {
  override readonly name = 'HostStartError';
  constructor(
    readonly transport: string,
    readonly reason: 'missing' | 'stale' | 'not-a-device' | 'in-use' | 'io' | 'unsupported' | 'unauthorized' | 'timeout',
    message: string,
    readonly advice: string,
  ) {
    super(message);
  }
}

/**
 * Before a host stack opens `uart:PATH`: the path must lead to a live character device. A
 * link into a radio directory whose owner is gone points at a /dev/pts number the system
 * may already have given to someone's terminal — never open that.
 */
export async function preflightUart(transport: string, port: string): Promise<void> {
  let link: string | undefined;
  try {
    if (fs.lstatSync(port).isSymbolicLink()) link = fs.readlinkSync(port);
  } catch {
    throw new HostStartError(transport, 'missing', `${port} does not exist`, 'start the radio (locksync radio up) or plug in the dongle, and check the path');
  }
  if (link !== undefined) {
    const owner = readOwner(path.join(path.dirname(port), '.owner'));
    if (owner !== undefined && owner.kind === 'radio' && !(await ownerAlive(owner))) {
      throw new HostStartError(transport, 'stale', `${port} is a link to ${link} left by a radio (pid ${owner.pid}) that is no longer running`, 'start the radio again (it removes its dead links) and retry');
    }
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(port);
  } catch {
    throw new HostStartError(transport, 'stale', `${port} is a dangling link to ${link ?? '?'} (its radio or device is gone)`, 'start the radio again (it removes its dead links) or reconnect the dongle, and retry');
  }
  if (!st.isCharacterDevice()) throw new HostStartError(transport, 'not-a-device', `${port} is not a serial device`, 'pass the radio\'s pty link or the dongle\'s tty, e.g. uart:/dev/ttyACM0');
}

interface HostSocketLike {
  on(event: 'error', listener: (e: NodeJS.ErrnoException) => void): unknown;
  removeListener(event: 'error', listener: (e: NodeJS.ErrnoException) => void): unknown;
}

/** The bindings' HCI socket (UART or kernel), once the stack has initialised (private API). */
function hostSocket(host: object): HostSocketLike | undefined {
  const socket = (host as { _bindings?: { _hci?: { _socket?: unknown } } })._bindings?._hci?._socket;
  return socket && typeof (socket as HostSocketLike).on === 'function' ? (socket as HostSocketLike) : undefined;
}

function classifySocketError(transport: string, e: NodeJS.ErrnoException): HostStartError {
  const text = e.message ?? String(e);
  if ((e as { syscall?: string }).syscall === 'socket creation failed' || /address family not supported/i.test(text)) {
    return new HostStartError(transport, 'unsupported', `this system has no Bluetooth HCI sockets (${text})`, 'use a machine whose kernel has Bluetooth support for hci:N, or a uart: controller (docs/hardware.md)');
  }
  if (/lock|temporarily unavailable|EAGAIN|EBUSY/i.test(text) || e.code === 'EBUSY') {
    return new HostStartError(transport, 'in-use', `${transport} is in use by another process (${text})`, 'one host per controller: stop the other lock or agent on it, or use another controller');
  }
  if (e.code === 'EPERM' || e.code === 'EACCES' || /permission/i.test(text)) {
    return new HostStartError(transport, 'unauthorized', `no permission to open ${transport} (${text})`, 'see docs/hardware.md: dialout group for serial ports, capabilities or root for hci:N');
  }
  return new HostStartError(transport, 'io', `opening ${transport} failed: ${text}`, 'check the transport string and that the radio or adapter is up');
}

/**
 * Starts a loaded host stack and waits for `poweredOn`, failing fast on a definite answer
 * (port open error, no adapter, no permission) and after `timeoutMs` otherwise. On failure
 * the stack is shut down (serial port, poll timers), so the process can exit.
 */
export async function startHostStack<T extends NobleLike | BlenoLike>(host: T, transport: string, timeoutMs: number): Promise<T> {
  const kind = parseTransport(transport);
  muteHostStackBanners();
  let socket: HostSocketLike | undefined;
  let onSocketError: ((e: NodeJS.ErrnoException) => void) | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const finish = (error?: Error): void => {
        clearTimeout(timer);
        host.removeListener('stateChange', onState);
        if (error) reject(error);
        else resolve();
      };
      const onState = (state: string): void => {
        if (state === 'poweredOn') finish();
        else if (state === 'unsupported')
          finish(new HostStartError(transport, 'unsupported', kind.kind === 'hci' ? `no Bluetooth LE adapter hci${kind.deviceId}` : `the controller on ${transport} does not support Bluetooth LE`, kind.kind === 'hci' ? 'list adapters with `hciconfig` or `btmgmt info` and pass hci:N of one that exists' : 'check that the device runs an HCI firmware (Zephyr hci_uart)'));
        else if (state === 'unauthorized') finish(new HostStartError(transport, 'unauthorized', `no permission for ${transport}`, 'give node cap_net_raw,cap_net_admin or run as root (docs/hardware.md)'));
      };
      const timer = setTimeout(
        () => finish(new HostStartError(transport, 'timeout', `BLE host not poweredOn after ${timeoutMs} ms on ${transport} (state ${host.state})`, kind.kind === 'hci' ? `bring the adapter up (sudo hciconfig hci${kind.deviceId} up) and check nothing else holds it` : 'check that the radio or dongle is running and answering HCI')),
        timeoutMs,
      );
      // Both stacks report their first errors and states synchronously inside their
      // initialisation, so listen before it: bleno initialises when the stateChange
      // listener is added (its socket exists already), noble on the next tick (its socket
      // is created then; the serial port's open fails later still, asynchronously).
      onSocketError = (e) => finish(classifySocketError(transport, e));
      socket = hostSocket(host);
      socket?.on('error', onSocketError);
      host.on('stateChange', onState);
      process.nextTick(() => {
        if (socket === undefined) {
          socket = hostSocket(host);
          socket?.on('error', onSocketError as (e: NodeJS.ErrnoException) => void);
        }
        if (host.state === 'poweredOn') finish();
      });
    });
  } catch (error) {
    shutdownHostStack(host);
    throw error;
  } finally {
    if (socket && onSocketError) socket.removeListener('error', onSocketError);
  }
  return host;
}

/**
 * Releases everything a host stack holds so the process can exit: stop() closes the serial
 * port or HCI socket and noble's poll timer; bleno's poll timer needs endDevUpPolling.
 * Never throws.
 */
export function shutdownHostStack(host: NobleLike | BlenoLike): void {
  try {
    host.removeAllListeners('discover');
    host.stop?.();
  } catch {
    // the controller may already be gone
  }
  endDevUpPolling(host);
}

/**
 * bleno's Hci re-arms `setTimeout(this.pollIsDevUp.bind(this), 1000)` forever and its
 * stop() never clears it (@stoprocent/bleno 0.12 lib/hci-socket/hci.js; noble's clears its
 * own), so a process that stopped bleno never exits. The timer handle is not kept, but the
 * method is looked up again each time it re-arms: shadowing it on the instance lets the
 * pending tick run once more and then end the chain.
 */
export function endDevUpPolling(host: object): void {
  const hci = (host as { _bindings?: { _hci?: { pollIsDevUp?: unknown; _socket?: { isDevUp?: unknown } } } })._bindings?._hci;
  if (hci && typeof hci.pollIsDevUp === 'function' && !Object.prototype.hasOwnProperty.call(hci, 'pollIsDevUp')) {
    // noble's own stop() clears its timer; shadowing is harmless there too.
    (hci as { pollIsDevUp: () => void }).pollIsDevUp = () => undefined;
  }
  // That last pending tick asks the stopped socket isDevUp(), which throws from a timer
  // (an uncaught exception) when the kernel has no Bluetooth: a stopped socket is down.
  // The native socket's methods are read-only: stand a stopped socket in for it.
  if (hci && hci._socket && !STOPPED_SOCKETS.has(hci._socket)) hci._socket = stoppedSocket();
}

const STOPPED_SOCKETS = new WeakSet<object>();

/** What a host stack's Hci finds in place of its socket once shut down: down, inert. */
function stoppedSocket(): { isDevUp(): boolean } {
  const socket = {
    isDevUp: () => false,
    write: () => undefined,
    start: () => undefined,
    stop: () => undefined,
    reset: () => undefined,
    setFilter: () => undefined,
    on: () => socket,
    once: () => socket,
    removeListener: () => socket,
    removeAllListeners: () => socket,
  };
  STOPPED_SOCKETS.add(socket);
  return socket;
}

/**
 * A noble or bleno instance on `transport`, powered on — or a HostStartError (or the load
 * errors above) with nothing left running. `uart:` paths are checked before the port opens.
 */
export async function openHostStack<T extends NobleLike | BlenoLike>(
  role: 'noble' | 'bleno',
  transport: string,
  options: { family?: BleFamily; extended?: boolean; poweredOnTimeoutMs?: number } = {},
): Promise<T> {
  const parsed = parseTransport(transport);
  // A family that cannot drive UART at all is the first thing to say, before the path.
  if (parsed.kind === 'uart' && resolveFamily(options.family) !== 'abandonware') await preflightUart(transport, parsed.port);
  const { poweredOnTimeoutMs, ...load } = options;
  const host = await loadHost<T>(role, transport, load);
  return startHostStack(host, transport, poweredOnTimeoutMs ?? 10_000);
}

/**
 * noble's and bleno's hci-socket bindings print multi-line banners with console.log (on
 * stdout) when the adapter is `unsupported` or `unauthorized` — into `--json` output and
 * the ready lines, and with advice ("NOBLE_HCI_DEVICE_ID=x", "run with sudo") that is not
 * ours. The same facts reach the user as our one error line (HostStartError), so those
 * console.log calls, and only those, are dropped.
 */
let bannersMuted = false;
const STACK_BANNER = /^(?:noble warning:|Bleno warning:|\s{8,}(?:Try to run with environment variable:|\[sudo\] (?:NOBLE|BLENO)_HCI_DEVICE_ID=|or see README for information on running without root|https:\/\/github\.com\/\S+#running-on-linux))/;

function muteHostStackBanners(): void {
  if (bannersMuted) return;
  bannersMuted = true;
  const log = console.log.bind(console);
  console.log = (...args: unknown[]): void => {
    if (typeof args[0] === 'string' && STACK_BANNER.test(args[0])) return;
    log(...args);
  };
}
