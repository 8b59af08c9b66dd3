// The lock's BLE transport for `locksync lock run --transport uart:PATH | hci:N`: the
// GATT server of peripheral.ts behind firmware-sim's LockTransport shape
// ({ start(host), done(), stop() }, matched structurally so ble/ does not depend on
// firmware-sim). bleno is loaded on start() only, so `sim` users never load it.
//
// The advert follows the lock: rewritten inside bleno's 'disconnect' event (before bleno
// re-enables advertising with the old data — see peripheral.ts), after every handled
// request, and by a slow poll for changes that arrive without a phone (an uplink update,
// a lease going stale, a keypad lockout).
//
// One JSON line per link/session event on stderr, same shape as the lock's own log:
//   {"t":"…","event":"bleConnect","address":"…","handle":1}

import { decodeMessage, parseTransport, TransportSpecError, type FramingError, type LockAdvert } from '../protocol/index';
import type { AdvertCause, BleLockServer } from './peripheral';
import type { LockSessionHost } from './session-host';
import { BlePackageMissingError, HostStartError, TransportUnsupportedError, isHostLoadError, type BleFamily, type BlenoLike } from '../radio/hosts';
import { CliError } from '../cli/errors';

export type BleTransportLog = (event: string, fields: Record<string, unknown>) => void;

export interface BleLockTransportOptions {
  /** Advertising interval (ms); bleno's default (100 ms) when left out. */
  advertisingIntervalMs?: number;
  family?: BleFamily;
  /** How often to look for advert changes that came without a connection. */
  advertPollMs?: number;
  log?: BleTransportLog;
}

const DEFAULT_ADVERT_POLL_MS = 1000;

/** JSON lines on stderr. */
export const stderrJsonLog: BleTransportLog = (event, fields) => {
  process.stderr.write(`${JSON.stringify({ t: new Date().toISOString(), event, ...fields })}\n`);
};

function messageType(bytes: Uint8Array): string {
  try {
    return decodeMessage(bytes).type;
  } catch {
    return 'undecodable';
  }
}

export class BleLockTransport {
  private served: BleLockServer | undefined;
  private poll: ReturnType<typeof setInterval> | undefined;
  private resolveDone!: () => void;
  private rejectDone!: (e: CliError) => void;
  private readonly finished = new Promise<void>((resolve, reject) => {
    this.resolveDone = resolve;
    this.rejectDone = reject;
  });

  private prepared: BlenoLike | undefined;
  private stopping = false;
  private onHostState: ((state: string) => void) | undefined;
  private readonly log: BleTransportLog;
  private link: { address: string; handle: number; in: number; out: number } | undefined;

  constructor(
    readonly transport: string,
    private readonly opts: BleLockTransportOptions = {},
  ) {
    const spec = parseTransport(transport);
    if (spec.kind === 'sim') throw new TransportSpecError('BleLockTransport needs uart:PATH or hci:N, not sim');
    this.log = opts.log ?? stderrJsonLog;
    // Whoever awaits done() sees a loss; nobody awaiting it is not an unhandled rejection.
    this.finished.catch(() => undefined);
  }

  /**
   * Opens the BLE host stack and waits until the controller is powered on, without serving:
   * a lock calls this before it boots, so an unusable transport leaves its state untouched.
   * Failures are CliError TRANSPORT_UNAVAILABLE, with nothing left running.
   */
  async prepare(): Promise<void> {
    if (this.prepared || this.served) return;
    const { openBlenoFor } = await import('./peripheral');
    try {
      this.prepared = await openBlenoFor(this.transport, {
        ...(this.opts.advertisingIntervalMs !== undefined ? { advertisingIntervalMs: this.opts.advertisingIntervalMs } : {}),
        ...(this.opts.family !== undefined ? { family: this.opts.family } : {}),
      });
    } catch (e) {
      throw transportUnavailable(this.transport, e);
    }
  }

  async start(host: LockSessionHost): Promise<void> {
    if (this.served) throw new Error('BLE transport already started');
    await this.prepare();
    const bleno = this.prepared;
    const { serveLockOverBle } = await import('./peripheral');
    const log = this.log;
    const advertFields = (a: LockAdvert) => ({ lockId: a.lockId, version: a.version, flags: a.flags });
    try {
      this.served = await this.serve(serveLockOverBle, host, bleno, log, advertFields);
    } catch (e) {
      this.prepared = undefined;
      throw transportUnavailable(this.transport, e);
    }
    // The controller going away (radio killed, dongle unplugged, adapter down) ends the
    // lock's service: done() rejects with TRANSPORT_LOST instead of serving nobody forever.
    const served = this.served;
    this.onHostState = (state: string) => {
      if (state === 'poweredOn' || this.stopping) return;
      log('bleTransportLost', { transport: this.transport, state });
      this.rejectDone(new CliError('TRANSPORT_LOST', `the BLE transport ${this.transport} went away while the lock was serving (host state ${state})`, 'restart the radio or reconnect the controller, then start the lock again'));
    };
    served.bleno.on('stateChange', this.onHostState);
    this.poll = setInterval(() => this.served?.syncAdvert('poll'), this.opts.advertPollMs ?? DEFAULT_ADVERT_POLL_MS);
    this.poll.unref();
    log('bleListening', { transport: this.transport, lockId: host.lockId });
  }

  private serve(
    serveLockOverBle: typeof import('./peripheral').serveLockOverBle,
    host: LockSessionHost,
    bleno: BlenoLike | undefined,
    log: BleTransportLog,
    advertFields: (a: LockAdvert) => Record<string, unknown>,
  ): Promise<BleLockServer> {
    return serveLockOverBle(host, this.transport, {
      ...(bleno !== undefined ? { bleno } : {}),
      ...(this.opts.advertisingIntervalMs !== undefined ? { advertisingIntervalMs: this.opts.advertisingIntervalMs } : {}),
      ...(this.opts.family !== undefined ? { family: this.opts.family } : {}),
      events: {
        onAccept: (address, handle) => {
          this.link = { address, handle, in: 0, out: 0 };
          log('bleConnect', { address, handle });
        },
        onMtu: (mtu) => log('bleMtu', { mtu }),
        onSessionOpened: () => log('bleSessionOpened', { address: this.link?.address }),
        onMessageIn: (bytes) => {
          if (this.link) this.link.in++;
          log('bleMessageIn', { type: messageType(bytes), bytes: bytes.length });
        },
        onMessageOut: (bytes) => {
          if (this.link) this.link.out++;
          log('bleMessageOut', { type: messageType(bytes), bytes: bytes.length });
        },
        onProtocolError: (e: FramingError) => log('bleProtocolError', { code: (e as { code?: unknown }).code, message: e.message }),
        onDisconnect: (address, handle) => {
          const l = this.link;
          this.link = undefined;
          log('bleDisconnect', { address, handle, messagesIn: l?.in ?? 0, messagesOut: l?.out ?? 0 });
        },
        onAdvert: (advert, cause: AdvertCause) => log('bleAdvert', { ...advertFields(advert), cause }),
      },
    });
  }

  /** The GATT server (for scripts that want refreshAdvert or link stats). */
  get server(): BleLockServer | undefined {
    return this.served;
  }

  /** A BLE lock serves until stopped; rejects with CliError TRANSPORT_LOST if the controller goes away. */
  done(): Promise<void> {
    return this.finished;
  }

  /** A radio fault from the panel: every connected phone loses its link (bleno disconnects it). */
  dropLinks(): number {
    const served = this.served;
    if (!served) return 0;
    const held = served.server.sessionPeer !== undefined ? 1 : 0;
    served.bleno.disconnect();
    return held;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.poll) clearInterval(this.poll);
    this.poll = undefined;
    const served = this.served;
    this.served = undefined;
    if (served) {
      if (this.onHostState) served.bleno.removeListener('stateChange', this.onHostState);
      await served.stop();
      this.log('bleStopped', { transport: this.transport });
    } else if (this.prepared) {
      const { shutdownHostStack } = await import('../radio/hosts');
      shutdownHostStack(this.prepared);
    }
    this.prepared = undefined;
    this.resolveDone();
  }
}

/** A host-stack start failure as the CLI's TRANSPORT_UNAVAILABLE, with what to do. */
export function transportUnavailable(transport: string, e: unknown): CliError {
  if (e instanceof CliError) return e;
  if (e instanceof HostStartError) return new CliError('TRANSPORT_UNAVAILABLE', `${transport}: ${e.message}`, e.advice);
  if (e instanceof BlePackageMissingError)
    return new CliError('TRANSPORT_UNAVAILABLE', `${transport}: ${e.message}`, `install it (\`npm install --no-save ${e.packageName}\`), or unset LOCKSYNC_BLE_FAMILY to use the default @stoprocent stacks`);
  if (e instanceof TransportUnsupportedError)
    return new CliError('TRANSPORT_UNAVAILABLE', `${transport}: ${e.message}`, 'use hci:N with LOCKSYNC_BLE_FAMILY=abandonware, or the default family (unset LOCKSYNC_BLE_FAMILY) for uart:PATH; see docs/hardware.md');
  if (isHostLoadError(e)) return new CliError('TRANSPORT_UNAVAILABLE', `${transport}: ${e.message}`, 'check the transport string (docs/hardware.md)');
  return new CliError('TRANSPORT_UNAVAILABLE', `${transport}: ${(e as Error)?.message ?? String(e)}`, 'check the transport string and that the radio or adapter is up');
}

/**
 * `transportFactory` for firmware-sim's registerLockCommands: a BleLockTransport for
 * `uart:`/`hci:` specs, undefined for `sim` (the lock CLI then uses its stdio transport).
 */
export function bleLockTransportFactory(spec: string, opts: BleLockTransportOptions = {}): BleLockTransport | undefined {
  return parseTransport(spec).kind === 'sim' ? undefined : new BleLockTransport(spec, opts);
}
