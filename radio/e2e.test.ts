// Real noble (central) against real bleno (peripheral) through the virtual radio, in one
// process, over ptys — the same code path as an nRF52840 running Zephyr's hci_uart.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { summarizeBtsnoop } from './trace-show';
import { discoverPeripheral, startBlenoOn, startNobleOn, stopHost } from './harness';
import { EventCode, parseH4 } from './hci';
import type { BlenoLike, NobleLike } from './hosts';
import { startRadio, type Radio } from './radio';

const SERVICE = '6c0c0001a1b24c3d8e4f5a6b7c8d9e0f';
const DATA_CHAR = '6c0c0002a1b24c3d8e4f5a6b7c8d9e0f';
const BULK = Buffer.from(Array.from({ length: 100 * 1024 }, (_, i) => (i * 31 + (i >> 8)) & 0xff));

interface Peripheral {
  bleno: BlenoLike;
  received: Buffer[];
  stored: Buffer;
  notify: ((data: Buffer) => void) | null;
  disconnects: string[];
}

async function startLock(radio: Radio, name: string, localName: string): Promise<Peripheral> {
  const bleno = await startBlenoOn(radio, name, { advertisingIntervalMs: 20 });
  const state: Peripheral = { bleno, received: [], stored: Buffer.alloc(0), notify: null, disconnects: [] };
  const characteristic = new bleno.Characteristic({
    uuid: DATA_CHAR,
    properties: ['read', 'write', 'writeWithoutResponse', 'notify'],
    onReadRequest: (_connection: unknown, offset: number, callback: (result: number, data?: Buffer) => void) => callback(0, state.stored.subarray(offset)),
    onWriteRequest: (_connection: unknown, data: Buffer, _offset: number, withoutResponse: boolean, callback: (result: number) => void) => {
      state.received.push(Buffer.from(data));
      if (!withoutResponse) state.stored = Buffer.from(data);
      callback(0);
    },
    onSubscribe: (_connection: unknown, _maxValueSize: number, updateValueCallback: (data: Buffer) => void) => {
      state.notify = updateValueCallback;
    },
    onUnsubscribe: () => {
      state.notify = null;
    },
  });
  bleno.on('disconnect', (address: string) => state.disconnects.push(address));
  await new Promise<void>((resolve, reject) =>
    bleno.setServices([new bleno.PrimaryService({ uuid: SERVICE, characteristics: [characteristic] })], (error) => (error ? reject(error) : resolve())),
  );
  await new Promise<void>((resolve, reject) => bleno.startAdvertising(localName, [SERVICE], (error) => (error ? reject(error) : resolve())));
  return state;
}

/** Disconnection Complete events the controller sent to its host. */
function tapDisconnectReasons(radio: Radio, name: string): number[] {
  const reasons: number[] = [];
  radio.controller(name).controller.taps.push({
    record(packet, direction) {
      if (direction !== 'controller-to-host') return;
      const parsed = parseH4(packet);
      if (parsed.type === 'event' && parsed.code === EventCode.DISCONNECTION_COMPLETE) reasons.push(parsed.params[3]!);
    },
  });
  return reasons;
}

function waitFor(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = (): void => {
      if (predicate()) return resolve();
      if (Date.now() - started > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(poll, 5);
    };
    poll();
  });
}

describe.each([
  { mode: 'legacy', extended: false },
  { mode: 'extended', extended: true },
])('noble ↔ bleno through the radio ($mode advertising commands)', ({ mode, extended }) => {
  let radio: Radio;
  let lock: Peripheral;
  let noble: NobleLike;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `radio-e2e-${mode}-`));

  beforeAll(async () => {
    radio = await startRadio({
      dir,
      controllers: ['lock-1', 'phone-1'],
      seed: 42,
      captureDir: path.join(dir, 'capture'),
      // A fast phone: 7.5 ms interval, 2M PHY, data length 251.
      linkPolicy: { intervalMs: 7.5, phy: '2M' },
    });
    radio.controller('phone-1').setPosition(1, 0);
    radio.controller('lock-1').setPosition(0, 0);
    lock = await startLock(radio, 'lock-1', `lock-${mode}`);
    noble = await startNobleOn(radio, 'phone-1', { extended });
  });

  afterAll(async () => {
    if (noble) await stopHost(noble);
    if (lock) await stopHost(lock.bleno);
    await radio?.close();
  });

  it('scans, connects, discovers, reads and writes, streams 100 KiB both ways, reads RSSI, disconnects and reconnects', async () => {
    const peripheral = await discoverPeripheral(noble, { localName: `lock-${mode}` });
    expect(peripheral.address).toBe(radio.controller('lock-1').address);
    expect(peripheral.connectable).toBeTruthy();
    // Advertising RSSI follows the path-loss model at 1 m: about -40 dBm.
    expect(peripheral.rssi).toBeGreaterThan(-50);
    expect(peripheral.rssi).toBeLessThan(-30);

    await peripheral.connectAsync({ mtu: 247 });
    const { characteristics } = await peripheral.discoverSomeServicesAndCharacteristicsAsync([SERVICE], [DATA_CHAR]);
    const data = characteristics[0];
    expect(data.uuid).toBe(DATA_CHAR);
    expect(peripheral.mtu).toBe(247);

    // The controller used extended or legacy commands as the host chose.
    const link = radio.links()[0]!;
    expect(link.phy).toBe('2M');
    expect(link.intervalMs).toBe(7.5);
    expect(link.dataLength.centralTx).toBe(251);

    // Write with response, read back.
    await data.writeAsync(Buffer.from('hello lock'), false);
    expect((await data.readAsync()).toString()).toBe('hello lock');

    // Long write: more than MTU-3 octets with response → prepare/execute writes.
    const long = Buffer.from(Array.from({ length: 600 }, (_, i) => i & 0xff));
    await data.writeAsync(long, false);
    expect(lock.stored.equals(long)).toBe(true);
    expect((await data.readAsync()).equals(long)).toBe(true); // long read (read blob)

    // 100 KiB central → peripheral as writes without response.
    lock.received = [];
    for (let offset = 0; offset < BULK.length; offset += 244) await data.writeAsync(BULK.subarray(offset, offset + 244), true);
    await waitFor(() => lock.received.reduce((n, b) => n + b.length, 0) >= BULK.length, 20_000, 'bulk writes');
    expect(Buffer.concat(lock.received).equals(BULK)).toBe(true);

    // 100 KiB peripheral → central as notifications.
    const notified: Buffer[] = [];
    data.on('data', (chunk: Buffer, isNotification: boolean) => {
      if (isNotification) notified.push(chunk);
    });
    await data.subscribeAsync();
    await waitFor(() => lock.notify !== null, 5000, 'subscription');
    for (let offset = 0; offset < BULK.length; offset += 244) lock.notify!(BULK.subarray(offset, offset + 244));
    await waitFor(() => notified.reduce((n, b) => n + b.length, 0) >= BULK.length, 20_000, 'bulk notifications');
    expect(Buffer.concat(notified).equals(BULK)).toBe(true);

    const rssi = await peripheral.updateRssiAsync();
    expect(rssi).toBeGreaterThan(-50);
    expect(rssi).toBeLessThan(-30);

    const reasonsAtLock = tapDisconnectReasons(radio, 'lock-1');
    await peripheral.disconnectAsync();
    await waitFor(() => lock.disconnects.length === 1, 5000, 'bleno disconnect');
    expect(reasonsAtLock).toEqual([0x13]); // remote user terminated connection
    expect(radio.links()).toHaveLength(0);

    // bleno re-advertises by itself; noble reconnects to the same peripheral object.
    await peripheral.connectAsync({ mtu: 247 });
    expect(peripheral.state).toBe('connected');
    const again = await peripheral.discoverSomeServicesAndCharacteristicsAsync([SERVICE], [DATA_CHAR]);
    expect((await again.characteristics[0].readAsync()).equals(long)).toBe(true);
    await peripheral.disconnectAsync();
    await waitFor(() => lock.disconnects.length === 2, 5000, 'second bleno disconnect');

    // The capture decodes: ATT writes and notifications, and the mode's own commands.
    const summary = summarizeBtsnoop(fs.readFileSync(path.join(dir, 'capture', 'phone-1.btsnoop')));
    expect(summary.some((line) => line.includes('ATT Write Command'))).toBe(true);
    expect(summary.some((line) => line.includes('ATT Handle Value Notification'))).toBe(true);
    const createConnection = extended ? 'LE Extended Create Connection' : 'LE Create Connection (0x200d)';
    expect(summary.some((line) => line.includes(`CMD ${createConnection}`))).toBe(true);
    expect(summary.some((line) => line.includes(extended ? 'LE Enhanced Connection Complete' : 'EVT LE Connection Complete'))).toBe(true);
  });

  it('a link dropped mid-transfer reaches both hosts as a supervision timeout (0x08)', async () => {
    const peripheral = await discoverPeripheral(noble, { localName: `lock-${mode}` });
    await peripheral.connectAsync({ mtu: 247 });
    const { characteristics } = await peripheral.discoverSomeServicesAndCharacteristicsAsync([SERVICE], [DATA_CHAR]);
    const data = characteristics[0];
    const reasonsAtLock = tapDisconnectReasons(radio, 'lock-1');
    const disconnectsBefore = lock.disconnects.length;
    const nobleReason = new Promise<unknown>((resolve) => peripheral.once('disconnect', resolve));
    lock.received = [];
    radio.faults.dropLink({ controller: 'phone-1', afterPackets: 40 });
    // Keep writing; noble queues what it can't send once the link has gone silent.
    for (let offset = 0; offset < 60 * 244; offset += 244) void data.writeAsync(BULK.subarray(offset, offset + 244), true).catch(() => {});
    expect(await nobleReason).toBe(0x08);
    await waitFor(() => lock.disconnects.length === disconnectsBefore + 1, 5000, 'bleno disconnect');
    expect(reasonsAtLock).toEqual([0x08]);
    const delivered = lock.received.reduce((n, b) => n + b.length, 0);
    expect(delivered).toBeGreaterThan(0);
    expect(delivered).toBeLessThan(60 * 244);
  });
});

describe('range', () => {
  it('a phone walking out of range loses the link by supervision timeout and stops hearing adverts', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'radio-range-'));
    const radio = await startRadio({ dir, controllers: ['lock-1', 'phone-1'], seed: 3, linkPolicy: { intervalMs: 15, supervisionTimeoutMs: 300 } });
    const lock = await startLock(radio, 'lock-1', 'range-lock');
    const noble = await startNobleOn(radio, 'phone-1');
    try {
      radio.controller('phone-1').setPosition(2, 0);
      const peripheral = await discoverPeripheral(noble, { localName: 'range-lock' });
      await peripheral.connectAsync({ mtu: 185 });
      // Exchange traffic first: a link that never carried a packet fails with 0x3E instead.
      await peripheral.discoverSomeServicesAndCharacteristicsAsync([SERVICE], [DATA_CHAR]);
      const reasonsAtLock = tapDisconnectReasons(radio, 'lock-1');
      const reason = new Promise<unknown>((resolve) => peripheral.once('disconnect', resolve));
      const range = radio.medium.rangeM();
      radio.controller('phone-1').setPosition(range * 3, 0);
      expect(await reason).toBe(0x08);
      await waitFor(() => lock.disconnects.length === 1, 5000, 'bleno disconnect');
      expect(reasonsAtLock).toEqual([0x08]);
      // bleno advertises again, but nobody out there hears it.
      await expect(discoverPeripheral(noble, { localName: 'range-lock', timeoutMs: 600 })).rejects.toThrow(/no peripheral/);
      // Walking back in, the lock is found again.
      radio.controller('phone-1').setPosition(1, 0);
      const back = await discoverPeripheral(noble, { localName: 'range-lock', timeoutMs: 3000 });
      expect(back.address).toBe(radio.controller('lock-1').address);
    } finally {
      await stopHost(noble);
      await stopHost(lock.bleno);
      await radio.close();
    }
  });
});
