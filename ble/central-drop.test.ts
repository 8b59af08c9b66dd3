// The noble connector when a link breaks mid-message (regression, issue 16), on noble's own
// Peripheral class with a scripted host stack instead of a radio: a lost notification makes
// every later frame a framing violation (BAD_SEQUENCE). The connector used to fail the
// waiter with PROTOCOL_VIOLATION (not retried by a Door Sync) and call noble's
// disconnectAsync() once per violating frame; noble keeps one exclusive 'disconnect'
// listener per peripheral, so only the last of those calls ever resolved and the sync's own
// disconnect() waited for ever. Now: one drop per connection, LINK_LOST, bounded waits.
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { GATT_SHORT, MessageChannel, encodeMessage, PROTOCOL_VERSION } from '../protocol/index';
import { AgentError } from '../mobile-agent/errors';
import { NobleConnector } from './central';

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const Peripheral = require('@stoprocent/noble/lib/peripheral.js') as new (noble: unknown, id: string, address: string, addressType: string, connectable: boolean, advertisement: unknown, rssi: number) => any;

const LOCK_ID = 'lk-drop-1';

/** A scripted noble: one lock whose notifications pass through `deliver` (which may lose one). */
function scriptedNoble(deliver: (frame: Uint8Array, index: number) => boolean) {
  const noble = new EventEmitter() as EventEmitter & Record<string, any>;
  const hciDisconnects: string[] = [];
  const peripheral = new Peripheral(noble, 'p1', 'c0:1d:00:00:00:01', 'random', true, { localName: LOCK_ID }, -50);
  // The lock's side opens when the phone subscribes (as the peripheral's onSubscribe does).
  const tx = Object.assign(new EventEmitter(), { uuid: GATT_SHORT.tx, subscribeAsync: async () => void setImmediate(() => lock.linkUp(23)) });
  let sent = 0;
  const lock = new MessageChannel({
    write: (f) => {
      if (deliver(f, sent++)) setImmediate(() => tx.emit('data', Buffer.from(f)));
    },
    onMessage: () => undefined,
  });
  const rx = { uuid: GATT_SHORT.rx, write: (b: Buffer) => setImmediate(() => lock.receiveFrame(new Uint8Array(b))) };
  peripheral.discoverSomeServicesAndCharacteristicsAsync = async () => ({ characteristics: [rx, tx] });
  Object.assign(noble, {
    state: 'poweredOn',
    startScanningAsync: async () => void noble.emit('discover', peripheral),
    stopScanningAsync: async () => undefined,
    connectAsync: async () => {
      peripheral.state = 'connected';
      peripheral.mtu = 23;
      return peripheral;
    },
    // What noble does on Disconnection Complete (lib/noble.js _onDisconnect), a little later.
    disconnect: (id: string) => {
      hciDisconnects.push(id);
      setTimeout(() => {
        peripheral.state = 'disconnected';
        lock.linkDown();
        peripheral.emit('disconnect', 0x16);
      }, 5);
    },
  });
  const connector = new (NobleConnector as unknown as new (transport: string, noble: unknown, opts: object) => NobleConnector)('scripted', noble, { fastConnect: false });
  return { connector, lock, hciDisconnects };
}

const hello = encodeMessage({ type: 'hello', protocolVersion: PROTOCOL_VERSION, lockId: LOCK_ID, version: 3, digest: new Uint8Array(32), nonce: new Uint8Array(16), lockTime: 1_800_000_000, capabilities: 0, auditSeq: 0, battery: 90 });

/** Settles within `ms`, or says it hung (a deadline that catches a hang, not a timing goal). */
function within<T>(p: Promise<T>, ms: number): Promise<T | 'hung'> {
  return Promise.race([p, new Promise<'hung'>((r) => setTimeout(() => r('hung'), ms))]);
}

describe('noble connector: a lost notification mid-message', () => {
  it('drops the link once, fails the waiter with LINK_LOST (retryable) and disconnect() returns', async () => {
    // The third DATA frame of the lock's second message (a long audit export) is lost.
    let starts = 0;
    let dataFrames = 0;
    const { connector, lock, hciDisconnects } = scriptedNoble((f) => {
      if (f[0] === 0x80) starts++;
      else if (starts === 2 && (f[0] as number) < 0x80) dataFrames++;
      return !(starts === 2 && dataFrames === 3 && (f[0] as number) < 0x80);
    });
    const conn = await connector.connect(LOCK_ID);
    void lock.send(hello);
    expect((await conn.next(5000)).type).toBe('hello');
    const records = Array.from({ length: 60 }, (_, i) => new Uint8Array([0xa3, 1, i % 24, 2, 0, 3, 1]));
    void lock.send(encodeMessage({ type: 'auditExport', prevHash: new Uint8Array(32), records })).catch(() => undefined);
    const failure = await conn.next(5000).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(failure).toBeInstanceOf(AgentError);
    expect((failure as AgentError).reason).toBe('LINK_LOST');
    expect((failure as AgentError).message).toMatch(/BAD_SEQUENCE/);
    expect(await within(conn.disconnect(), 5000)).not.toBe('hung');
    expect(conn.isOpen).toBe(false);
    expect(hciDisconnects).toEqual(['p1']);
    await connector.close().catch(() => undefined);
  });
});
