// The lock's GATT server on bleno: the locksync service (protocol/gatt.ts) over any
// transport bleno can drive — `uart:PATH` (virtual radio pty or an HCI-over-UART dongle)
// or `hci:N` (Linux HCI socket). bleno is loaded lazily by radio/hosts.ts.

import {
  DATABASE_HASH_UUID,
  GATT_SHORT,
  advertisingEir,
  decodeMessage,
  scanResponseEir,
  encodeLockInfo,
  gattDatabaseHash,
  type FramingError,
  type GattLayoutCharacteristic,
  type LockAdvert,
} from '../protocol/index';
import { HostStartError, endDevUpPolling, openHostStack, shutdownHostStack, type BleFamily, type BlenoLike } from '../radio/hosts';
import { LockLinkServer, type LockLink, type LockLinkEvents, type LockLinkServerOptions } from './lock-server';
import type { HostedSession, LockSessionHost } from './session-host';

export interface BlePeripheralOptions {
  advertisingIntervalMs?: number;
  family?: BleFamily;
  poweredOnTimeoutMs?: number;
  events?: LockLinkEvents & BleLinkEvents;
  /** A bleno already powered on for `transport` (openBlenoFor): serve on it. */
  bleno?: BlenoLike;
  /** Session-link limits (idle timeout, session limit); SPEC §13.3 values when left out. */
  link?: LockLinkServerOptions;
  /**
   * After a sync commits (the lock sends its receipt), ask the phone for slower, low-power
   * connection parameters with an L2CAP Connection Parameter Update Request (Core Vol 3
   * Part A §4.20), as battery locks do for the rest of the link. Off by default.
   */
  idleParametersAfterSync?: boolean;
  /**
   * Read-only characteristics a later firmware adds ahead of the locksync ones (they move
   * every handle after them, and so change the database hash). Empty by default.
   */
  extraCharacteristics?: { uuid: string; value: Uint8Array }[];
}

/**
 * What the lock asks for after a sync: 105–120 ms, latency 4, 6 s supervision timeout —
 * within Android's limits (≥ 11.25 ms, ≥ 1 s) and Apple's Accessory Design Guidelines
 * (Min a multiple of 15 ms, Min + 15 ms ≤ Max, Max × (latency+1) ≤ 2 s, × 3 < timeout ≤ 6 s);
 * world/phone-profiles.test.ts checks it against both.
 */
export const LOCK_IDLE_PARAMETERS = Object.freeze({ minIntervalMs: 105, maxIntervalMs: 120, latency: 4, supervisionTimeoutMs: 6000 });

const SIGNALING_CID = 0x0005;
const CONNECTION_PARAMETER_UPDATE_REQUEST = 0x12;

/** An L2CAP LE signalling Connection Parameter Update Request (Vol 3 Part A §4.20). */
export function connectionParameterUpdateRequest(identifier: number, p: typeof LOCK_IDLE_PARAMETERS): Buffer {
  const b = Buffer.alloc(12);
  b[0] = CONNECTION_PARAMETER_UPDATE_REQUEST;
  b[1] = identifier;
  b.writeUInt16LE(8, 2);
  b.writeUInt16LE(Math.round(p.minIntervalMs / 1.25), 4);
  b.writeUInt16LE(Math.round(p.maxIntervalMs / 1.25), 6);
  b.writeUInt16LE(p.latency, 8);
  b.writeUInt16LE(Math.round(p.supervisionTimeoutMs / 10), 10);
  return b;
}

/** Frames a phone may write before it subscribes (its framing HELLO rides ahead of the CCCD write). */
const MAX_EARLY_FRAMES = 8;

/**
 * What bleno puts in the database ahead of ours (lib/hci-socket/gatt.js setServices):
 * Generic Access with Device Name and Appearance, Generic Attribute with Service Changed.
 */
const BLENO_BASE_LAYOUT = [
  { uuid: '1800', characteristics: [{ uuid: '2a00', properties: ['read'] }, { uuid: '2a01', properties: ['read'] }] },
  { uuid: '1801', characteristics: [{ uuid: '2a05', properties: ['indicate'] }] },
];

/**
 * Opens and powers on bleno for `transport` without serving anything yet — so a lock can
 * find out that its transport is unusable before it boots (and writes its audit log).
 * BLENO_ADVERTISING_INTERVAL is read here, at initialisation.
 */
export async function openBlenoFor(transport: string, opts: Pick<BlePeripheralOptions, 'advertisingIntervalMs' | 'family' | 'poweredOnTimeoutMs'> = {}): Promise<BlenoLike> {
  const previous = process.env.BLENO_ADVERTISING_INTERVAL;
  if (opts.advertisingIntervalMs !== undefined) process.env.BLENO_ADVERTISING_INTERVAL = String(opts.advertisingIntervalMs);
  try {
    return await openHostStack<BlenoLike>('bleno', transport, {
      ...(opts.family !== undefined ? { family: opts.family } : {}),
      poweredOnTimeoutMs: opts.poweredOnTimeoutMs ?? 10_000,
    });
  } finally {
    if (opts.advertisingIntervalMs !== undefined) {
      if (previous === undefined) delete process.env.BLENO_ADVERTISING_INTERVAL;
      else process.env.BLENO_ADVERTISING_INTERVAL = previous;
    }
  }
}

/** Link-level events (the protocol-level ones are in LockLinkEvents). */
export interface BleLinkEvents {
  onAccept?: (address: string, handle: number) => void;
  onDisconnect?: (address: string, handle: number) => void;
  onMtu?: (mtu: number) => void;
  /** New advertising data went to the controller. */
  onAdvert?: (advert: LockAdvert, cause: AdvertCause) => void;
  /** The lock asked the phone on `handle` for new connection parameters (idleParametersAfterSync). */
  onParameterRequest?: (handle: number, parameters: typeof LOCK_IDLE_PARAMETERS) => void;
}

/** The type of an encoded message, or undefined if it does not decode. */
function typeOf(bytes: Uint8Array): string | undefined {
  try {
    return decodeMessage(bytes).type;
  } catch {
    return undefined;
  }
}

/**
 * Whether an answer carries the lock's receipt: sent alone, or as one reply inside a
 * batchReply (the batched Door Sync dialogue, SPEC §6.5, returns it there).
 */
function carriesReceipt(bytes: Uint8Array): boolean {
  let message;
  try {
    message = decodeMessage(bytes);
  } catch {
    return false;
  }
  if (message.type === 'receipt') return true;
  return message.type === 'batchReply' && message.replies.some((reply) => typeOf(reply) === 'receipt');
}

export type AdvertCause = 'start' | 'disconnect' | 'session' | 'refresh' | 'poll';

export interface BleLockServer {
  readonly server: LockLinkServer;
  readonly bleno: BlenoLike;
  /**
   * Hands the controller the lock's current advert if it differs from the one on the air.
   * Synchronous: the HCI commands are written before this returns. True when it changed.
   */
  syncAdvert(cause?: AdvertCause): boolean;
  /** Re-advertise now (after the table version or flags changed); never hangs. */
  refreshAdvert(): Promise<void>;
  /** The lock lost power: stop advertising and drop the link (the phone sees it die). */
  pause(): Promise<void>;
  /** Power is back: advertise the rebooted lock's current state. */
  resume(): Promise<void>;
  stop(): Promise<void>;
}

const RESULT_SUCCESS = 0x00;
/** Longest wait for the controller to acknowledge re-advertising (refreshAdvert). */
const ADVERT_ACK_TIMEOUT_MS = 2000;
/** Longest wait for the controller to take the GATT service and the first advert. */
const START_TIMEOUT_MS = 10_000;

function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new HostStartError('', 'timeout', `${what} got no answer from the controller within ${ms} ms`, 'check that the radio or dongle is running and answering HCI')), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e) => (clearTimeout(t), reject(e)),
    );
  });
}

// Why the advert is refreshed the way it is (checked against @stoprocent/bleno 0.12,
// lib/hci-socket/{bindings,gap}.js; @abandonware/bleno has the same shape):
//   * on Disconnection Complete the bindings emit 'disconnect' and THEN, in the same tick,
//     call gap.restartAdvertising(): LE Set Advertise Enable(1) with whatever advertising
//     and scan-response data the controller holds — the version from before the sync;
//   * gap keeps one _advertiseState; restartAdvertising() (also run on every accepted
//     connection) overwrites 'starting'/'stopping', after which the pending
//     advertisingStart/advertisingStop callback never fires — a stop-then-start refresh
//     hangs if a phone connects or drops in between.
// So the new data is written synchronously inside the 'disconnect' listener — before
// bleno's own Enable(1) reaches the controller, which then resumes advertising with it —
// and no refresh waits on gap callbacks alone. LE Set Advertising/Scan Response Data
// while advertising is enabled is allowed (Core Vol 4 Part E §7.8.7/§7.8.8: used from the
// next advertising event), so there is no stop/start at all.

export async function serveLockOverBle(host: LockSessionHost, transport: string, opts: BlePeripheralOptions = {}): Promise<BleLockServer> {
  const previous = process.env.BLENO_ADVERTISING_INTERVAL;
  // bleno reads its advertising interval from the environment when it initialises.
  if (opts.advertisingIntervalMs !== undefined) process.env.BLENO_ADVERTISING_INTERVAL = String(opts.advertisingIntervalMs);
  let bleno: BlenoLike;
  try {
    bleno =
      opts.bleno ??
      (await openHostStack<BlenoLike>('bleno', transport, {
        ...(opts.family !== undefined ? { family: opts.family } : {}),
        poweredOnTimeoutMs: opts.poweredOnTimeoutMs ?? 10_000,
      }));
  } finally {
    if (opts.advertisingIntervalMs !== undefined) {
      if (previous === undefined) delete process.env.BLENO_ADVERTISING_INTERVAL;
      else process.env.BLENO_ADVERTISING_INTERVAL = previous;
    }
  }
  const linkEvents = opts.events ?? {};
  let stopped = false;
  /** Powered off (pause): nothing may turn advertising back on until resume(). */
  let paused = false;
  const advData = Buffer.from(advertisingEir());
  let onAir: Buffer | undefined; // scan response last written to the controller
  const syncAdvert = (cause: AdvertCause = 'refresh', force = false): boolean => {
    if (stopped || paused || bleno.state !== 'poweredOn') return false;
    const advert = host.advert();
    const rsp = Buffer.from(scanResponseEir(advert));
    if (!force && onAir !== undefined && rsp.equals(onAir)) return false;
    onAir = rsp;
    // No callback: see the note above. The writes happen before this returns.
    bleno.startAdvertisingWithEIRData(advData, rsp);
    linkEvents.onAdvert?.(advert, cause);
    return true;
  };
  // A session's handling may finish after its link dropped (an update committing while the
  // phone walks away): check the advert whenever a request has been handled.
  const trackedHost: LockSessionHost = {
    lockId: host.lockId,
    advert: () => host.advert(),
    info: () => host.info(),
    openSession: (): HostedSession => {
      const session = host.openSession();
      return {
        hello: () => session.hello(),
        handle: async (message) => {
          try {
            const answers = await session.handle(message);
            // Asked once the receipt is on its way (its frames are queued when this returns).
            if (opts.idleParametersAfterSync && answers.some(carriesReceipt)) setTimeout(requestIdleParameters, 0);
            return answers;
          } finally {
            syncAdvert('session');
          }
        },
        receiving: (buffer, held) => session.receiving?.(buffer, held),
        close: () => session.close(),
      };
    },
  };
  let signalingIdentifier = 0;
  /** The phone holding the session gets the request on its connection handle. */
  const requestIdleParameters = (): void => {
    const peer = server.sessionPeer;
    const handle = [...addressOf.entries()].find(([, address]) => address === peer)?.[0];
    const hci = (bleno as { _bindings?: { _hci?: { queueAclDataPkt?: (handle: number, cid: number, data: Buffer) => void } } })._bindings?._hci;
    if (handle === undefined || typeof hci?.queueAclDataPkt !== 'function') return; // a host stack without a raw L2CAP path
    signalingIdentifier = (signalingIdentifier % 255) + 1;
    hci.queueAclDataPkt(handle, SIGNALING_CID, connectionParameterUpdateRequest(signalingIdentifier, LOCK_IDLE_PARAMETERS));
    linkEvents.onParameterRequest?.(handle, LOCK_IDLE_PARAMETERS);
  };
  const server = new LockLinkServer(trackedHost, linkEvents, opts.link ?? {});
  server.requestDisconnect = () => bleno.disconnect();
  // bleno keeps advertising while a phone is connected, so a second phone can connect: each
  // connection handle gets its own link, the peer identity being the address it connected
  // from (the lock server answers a second peer BUSY and binds held partials to peers).
  const addressOf = new Map<number, string>();
  const links = new Map<number, LockLink>();
  /** Frames written before the subscription, per connection: replayed when it comes (SPEC §13.3). */
  const early = new Map<number, Uint8Array[]>();

  const tx = new bleno.Characteristic({
    uuid: GATT_SHORT.tx,
    properties: ['notify'],
    onSubscribe: (handle: number, maxValueSize: number, updateValueCallback: (data: Buffer) => void) => {
      const mtu = Math.max(23, Math.min(517, (bleno.mtu as number | undefined) ?? maxValueSize + 3));
      links.get(handle)?.disconnect();
      links.set(
        handle,
        server.connect(mtu, (frame) => updateValueCallback(Buffer.from(frame)), {
          peer: addressOf.get(handle) ?? `handle:${String(handle)}`,
          drop: () => bleno.disconnect(handle),
        }),
      );
      // The phone's framing HELLO came ahead of its CCCD write: the lock answers it (its own
      // HELLO, then the session hello) in the same breath as the write response.
      const held = early.get(handle);
      early.delete(handle);
      for (const f of held ?? []) links.get(handle)?.receiveFrame(f);
    },
    onUnsubscribe: (handle: number) => {
      links.get(handle)?.disconnect();
      links.delete(handle);
    },
  });
  const rx = new bleno.Characteristic({
    uuid: GATT_SHORT.rx,
    properties: ['write', 'writeWithoutResponse'],
    onWriteRequest: (handle: number, data: Buffer, _offset: number, withoutResponse: boolean, callback: (result: number) => void) => {
      const frame = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
      const link = links.get(handle);
      if (link) link.receiveFrame(frame);
      else if (addressOf.has(handle)) {
        // Not subscribed yet: hold a few frames (the phone's HELLO) for the subscription.
        const held = early.get(handle) ?? [];
        if (held.length < MAX_EARLY_FRAMES) held.push(frame);
        early.set(handle, held);
      }
      if (!withoutResponse) callback(RESULT_SUCCESS);
    },
  });
  const info = new bleno.Characteristic({
    uuid: GATT_SHORT.info,
    properties: ['read'],
    onReadRequest: (_handle: unknown, offset: number, callback: (result: number, data?: Buffer) => void) => {
      const bytes = Buffer.from(encodeLockInfo(host.info()));
      callback(RESULT_SUCCESS, bytes.subarray(offset));
    },
  });
  const extras = (opts.extraCharacteristics ?? []).map(
    (c) => new bleno.Characteristic({ uuid: c.uuid, properties: ['read'], value: Buffer.from(c.value) }),
  );
  const layout: GattLayoutCharacteristic[] = [
    ...(opts.extraCharacteristics ?? []).map((c) => ({ uuid: c.uuid, properties: ['read'] })),
    { uuid: GATT_SHORT.rx, properties: ['write', 'writeWithoutResponse'] },
    { uuid: GATT_SHORT.tx, properties: ['notify'] },
    { uuid: GATT_SHORT.info, properties: ['read'] },
    { uuid: DATABASE_HASH_UUID, properties: ['read'] },
  ];
  const databaseHash = gattDatabaseHash([...BLENO_BASE_LAYOUT, { uuid: GATT_SHORT.service, characteristics: layout }]);
  // bleno builds the Generic Attribute service itself, without a Database Hash: ours sits
  // last in the locksync service. A phone finds it by type (0x2B2A) anywhere (SPEC §13.1).
  const hashCharacteristic = new bleno.Characteristic({ uuid: DATABASE_HASH_UUID, properties: ['read'], value: Buffer.from(databaseHash) });
  const service = new bleno.PrimaryService({ uuid: GATT_SHORT.service, characteristics: [...extras, rx, tx, info, hashCharacteristic] });

  const onAccept = (address: string, handle: number) => {
    addressOf.set(handle, address);
    linkEvents.onAccept?.(address, handle);
  };
  const onDisconnect = (address: string, handle: number) => {
    addressOf.delete(handle);
    early.delete(handle);
    links.get(handle)?.disconnect();
    links.delete(handle);
    // Must stay synchronous: bleno re-enables advertising right after this listener returns.
    syncAdvert('disconnect');
    linkEvents.onDisconnect?.(address, handle);
  };
  const onMtu = (mtu: number) => {
    server.setMtu(Math.max(23, Math.min(517, mtu)));
    linkEvents.onMtu?.(mtu);
  };
  bleno.on('accept', onAccept);
  bleno.on('disconnect', onDisconnect);
  bleno.on('mtuChange', onMtu);

  // The first start has nothing to race with (no phone can connect before advertising).
  const firstAdvert = host.advert();
  try {
    await bounded(new Promise<void>((resolve, reject) => bleno.setServices([service], (e?: Error | null) => (e ? reject(e) : resolve()))), START_TIMEOUT_MS, 'GATT service registration');
    onAir = Buffer.from(scanResponseEir(firstAdvert));
    await bounded(new Promise<void>((resolve, reject) => bleno.startAdvertisingWithEIRData(advData, onAir, (e?: Error | null) => (e ? reject(e) : resolve()))), START_TIMEOUT_MS, 'starting to advertise');
  } catch (e) {
    // A controller that powered on and then stopped answering: release it so the process can exit.
    bleno.removeListener('accept', onAccept);
    bleno.removeListener('disconnect', onDisconnect);
    bleno.removeListener('mtuChange', onMtu);
    shutdownHostStack(bleno);
    throw e;
  }
  linkEvents.onAdvert?.(firstAdvert, 'start');

  return {
    server,
    bleno,
    syncAdvert: (cause) => syncAdvert(cause ?? 'refresh'),
    refreshAdvert: async () => {
      // Settles on the controller's answer to the Enable(1) that follows the new data, or
      // on a connect/disconnect (bleno's restart swallows that answer, but its commands
      // were queued after ours), or after a bound — never on a callback that may not come.
      await new Promise<void>((resolve) => {
        const settle = (): void => {
          clearTimeout(timer);
          for (const e of ['advertisingStart', 'accept', 'disconnect']) bleno.removeListener(e, settle);
          resolve();
        };
        const timer = setTimeout(settle, ADVERT_ACK_TIMEOUT_MS);
        for (const e of ['advertisingStart', 'accept', 'disconnect']) bleno.on(e, settle);
        if (!syncAdvert('refresh', true)) settle();
      });
    },
    pause: async () => {
      paused = true;
      // Stop advertising first so bleno does not restart it on the Disconnection Complete.
      await new Promise<void>((r) => {
        const timer = setTimeout(r, ADVERT_ACK_TIMEOUT_MS);
        bleno.stopAdvertising(() => (clearTimeout(timer), r()));
        bleno.disconnect();
      });
      server.disconnect();
    },
    resume: async () => {
      paused = false;
      const advert = host.advert();
      onAir = Buffer.from(scanResponseEir(advert));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ADVERT_ACK_TIMEOUT_MS);
        bleno.startAdvertisingWithEIRData(advData, onAir, () => (clearTimeout(timer), resolve()));
      });
      linkEvents.onAdvert?.(advert, 'start');
    },
    stop: async () => {
      stopped = true;
      bleno.removeListener('accept', onAccept);
      bleno.removeListener('disconnect', onDisconnect);
      bleno.removeListener('mtuChange', onMtu);
      server.disconnect();
      try {
        // Stop advertising before dropping links: bleno then skips its restart on the
        // Disconnection Complete. The wait is bounded — the callback can be swallowed.
        await new Promise<void>((r) => {
          const timer = setTimeout(r, ADVERT_ACK_TIMEOUT_MS);
          bleno.stopAdvertising(() => (clearTimeout(timer), r()));
          bleno.disconnect();
        });
        bleno.stop?.();
        endDevUpPolling(bleno);
      } catch {
        // the controller may already be gone
      }
      await new Promise((r) => setTimeout(r, 20));
    },
  };
}

export type { FramingError };
