// The lock's GATT server on bleno: the locksync service (protocol/gatt.ts) over any
// transport bleno can drive — `uart:PATH` (virtual radio pty or an HCI-over-UART dongle)
// or `hci:N` (Linux HCI socket). bleno is loaded lazily by radio/hosts.ts.

import { GATT_SHORT, advertisingEir, scanResponseEir, encodeLockInfo, type FramingError } from '../protocol/index';
import { loadBleno, waitForPoweredOn, type BleFamily, type BlenoLike } from '../radio/hosts';
import { LockLinkServer, type LockLinkEvents } from './lock-server';
import type { LockSessionHost } from './session-host';

export interface BlePeripheralOptions {
  advertisingIntervalMs?: number;
  family?: BleFamily;
  poweredOnTimeoutMs?: number;
  events?: LockLinkEvents;
}

export interface BleLockServer {
  readonly server: LockLinkServer;
  readonly bleno: BlenoLike;
  /** Re-advertise (after the table version or flags changed). */
  refreshAdvert(): Promise<void>;
  stop(): Promise<void>;
}

const RESULT_SUCCESS = 0x00;

export async function serveLockOverBle(host: LockSessionHost, transport: string, opts: BlePeripheralOptions = {}): Promise<BleLockServer> {
  const previous = process.env.BLENO_ADVERTISING_INTERVAL;
  // bleno reads its advertising interval from the environment when it initialises.
  if (opts.advertisingIntervalMs !== undefined) process.env.BLENO_ADVERTISING_INTERVAL = String(opts.advertisingIntervalMs);
  let bleno: BlenoLike;
  try {
    bleno = await loadBleno(transport, opts.family === undefined ? {} : { family: opts.family });
    await waitForPoweredOn(bleno, opts.poweredOnTimeoutMs ?? 10_000);
  } finally {
    if (opts.advertisingIntervalMs !== undefined) {
      if (previous === undefined) delete process.env.BLENO_ADVERTISING_INTERVAL;
      else process.env.BLENO_ADVERTISING_INTERVAL = previous;
    }
  }
  const events: LockLinkEvents = { ...opts.events };
  const server = new LockLinkServer(host, events);
  server.requestDisconnect = () => bleno.disconnect();

  const tx = new bleno.Characteristic({
    uuid: GATT_SHORT.tx,
    properties: ['notify'],
    onSubscribe: (_handle: unknown, maxValueSize: number, updateValueCallback: (data: Buffer) => void) => {
      const mtu = Math.max(23, Math.min(517, (bleno.mtu as number | undefined) ?? maxValueSize + 3));
      server.connect(mtu, (frame) => updateValueCallback(Buffer.from(frame)));
    },
    onUnsubscribe: () => server.disconnect(),
  });
  const rx = new bleno.Characteristic({
    uuid: GATT_SHORT.rx,
    properties: ['write', 'writeWithoutResponse'],
    onWriteRequest: (_handle: unknown, data: Buffer, _offset: number, withoutResponse: boolean, callback: (result: number) => void) => {
      server.receiveFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice());
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
  const service = new bleno.PrimaryService({ uuid: GATT_SHORT.service, characteristics: [rx, tx, info] });

  const onDisconnect = () => server.disconnect();
  const onMtu = (mtu: number) => server.setMtu(Math.max(23, Math.min(517, mtu)));
  bleno.on('disconnect', onDisconnect);
  bleno.on('mtuChange', onMtu);

  await new Promise<void>((resolve, reject) => bleno.setServices([service], (e?: Error | null) => (e ? reject(e) : resolve())));
  const advertise = () =>
    new Promise<void>((resolve, reject) =>
      bleno.startAdvertisingWithEIRData(Buffer.from(advertisingEir()), Buffer.from(scanResponseEir(host.advert())), (e?: Error | null) =>
        e ? reject(e) : resolve(),
      ),
    );
  await advertise();

  return {
    server,
    bleno,
    refreshAdvert: async () => {
      await new Promise<void>((r) => bleno.stopAdvertising(() => r()));
      await advertise();
    },
    stop: async () => {
      bleno.removeListener('disconnect', onDisconnect);
      bleno.removeListener('mtuChange', onMtu);
      server.disconnect();
      try {
        bleno.disconnect();
        await new Promise<void>((r) => bleno.stopAdvertising(() => r()));
        bleno.stop?.();
      } catch {
        // the controller may already be gone
      }
      await new Promise((r) => setTimeout(r, 20));
    },
  };
}

export type { FramingError };
