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
import { BlePackageMissingError, isHostLoadError, type BleFamily } from '../radio/hosts';
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
  private readonly finished = new Promise<void>((r) => (this.resolveDone = r));
  private readonly log: BleTransportLog;
  private link: { address: string; handle: number; in: number; out: number } | undefined;

  constructor(
    readonly transport: string,
    private readonly opts: BleLockTransportOptions = {},
  ) {
    const spec = parseTransport(transport);
    if (spec.kind === 'sim') throw new TransportSpecError('BleLockTransport needs uart:PATH or hci:N, not sim');
    this.log = opts.log ?? stderrJsonLog;
  }

  async start(host: LockSessionHost): Promise<void> {
    if (this.served) throw new Error('BLE transport already started');
    const { serveLockOverBle } = await import('./peripheral');
    const log = this.log;
    const advertFields = (a: LockAdvert) => ({ lockId: a.lockId, version: a.version, flags: a.flags });
    this.served = await this.serve(serveLockOverBle, host, {
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
    this.poll = setInterval(() => this.served?.syncAdvert('poll'), this.opts.advertPollMs ?? DEFAULT_ADVERT_POLL_MS);
    this.poll.unref();
    log('bleListening', { transport: this.transport, lockId: host.lockId });
  }

  /**
   * Serves through bleno; a host stack that cannot be loaded for this transport (package
   * missing, `uart:` with the @abandonware family, no Bluetooth in the kernel) is the
   * user's to fix: one TRANSPORT_UNAVAILABLE line, not a stack trace.
   */
  private async serve(
    serveLockOverBle: typeof import('./peripheral').serveLockOverBle,
    host: LockSessionHost,
    opts: Parameters<typeof import('./peripheral').serveLockOverBle>[2],
  ): Promise<BleLockServer> {
    try {
      return await serveLockOverBle(host, this.transport, opts);
    } catch (e) {
      if (!isHostLoadError(e)) throw e;
      const todo =
        e instanceof BlePackageMissingError
          ? `install it (\`npm install --no-save ${e.packageName}\`), or unset LOCKSYNC_BLE_FAMILY to use the default @stoprocent stacks`
          : 'use hci:N with LOCKSYNC_BLE_FAMILY=abandonware, or the default family (unset LOCKSYNC_BLE_FAMILY) for uart:PATH; see docs/hardware.md';
      throw new CliError('TRANSPORT_UNAVAILABLE', `${this.transport}: ${e.message}`, todo);
    }
  }

  /** The GATT server (for scripts that want refreshAdvert or link stats). */
  get server(): BleLockServer | undefined {
    return this.served;
  }

  /** A BLE lock serves until stopped. */
  done(): Promise<void> {
    return this.finished;
  }

  async stop(): Promise<void> {
    if (this.poll) clearInterval(this.poll);
    this.poll = undefined;
    const served = this.served;
    this.served = undefined;
    if (served) {
      await served.stop();
      this.log('bleStopped', { transport: this.transport });
    }
    this.resolveDone();
  }
}

/**
 * `transportFactory` for firmware-sim's registerLockCommands: a BleLockTransport for
 * `uart:`/`hci:` specs, undefined for `sim` (the lock CLI then uses its stdio transport).
 */
export function bleLockTransportFactory(spec: string, opts: BleLockTransportOptions = {}): BleLockTransport | undefined {
  return parseTransport(spec).kind === 'sim' ? undefined : new BleLockTransport(spec, opts);
}
