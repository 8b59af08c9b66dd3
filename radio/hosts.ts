// Loading the real BLE host stacks (noble = central, bleno = peripheral) for a transport:
//   uart:PATH  HCI over UART — a virtual radio pty, or a real nRF52840/Zephyr hci_uart dongle
//   hci:N      Linux HCI socket (hciN)
// The packages are optional dependencies, imported lazily so nothing else in the project
// needs them to load.
import { createRequire } from 'node:module';
import { parseTransport as parseTransportSpec, TransportSpecError, type TransportSpec } from '../protocol/transport';

export type BleFamily = 'stoprocent' | 'abandonware';

export type HostTransport =
  | { kind: 'uart'; port: string; baudRate: number }
  | { kind: 'hci'; deviceId: number };

export class TransportParseError extends Error {
  constructor(readonly transport: string) {
    super(`invalid BLE transport "${transport}": expected uart:PATH[@BAUD] or hci:N`);
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
    if (error instanceof TransportSpecError) throw new TransportParseError(transport);
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
  return module.withBindings('hci', hciBindingOptions(parsed, role === 'noble' && options.extended !== undefined ? { extended: options.extended } : {}));
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
