// BleLockTransport through the real bleno and noble on the virtual radio: the advert
// follows the lock's version, including the case bleno gets wrong by itself (it re-enables
// advertising after a disconnect with the data from before).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRadio, type Radio } from '../radio/radio';
import { encodeMessage, PROTOCOL_VERSION } from '../protocol/index';
import { NobleConnector } from './central';
import { BleLockTransport, bleLockTransportFactory } from './lock-transport';
import type { LockSessionHost } from './session-host';

/** A lock whose version the test sets; sessions only say hello. */
function settableLock(lockId: string): LockSessionHost & { version: number } {
  const lock = {
    lockId,
    version: 1,
    advert: () => ({ lockId, version: lock.version, flags: 0 }),
    info: () => ({ lockId, protocolVersion: PROTOCOL_VERSION, capabilities: 0, version: lock.version }),
    openSession: () => ({
      hello: () =>
        encodeMessage({ type: 'hello', protocolVersion: 1, lockId, version: lock.version, digest: new Uint8Array(32), nonce: new Uint8Array(16), lockTime: 1_800_000_000, capabilities: 0, auditSeq: 0, battery: 90 }),
      handle: () => [],
      close: () => undefined,
    }),
  };
  return lock;
}

describe('BleLockTransport: advert refresh through bleno on the virtual radio', () => {
  let dir: string;
  let radio: Radio;
  let lock: ReturnType<typeof settableLock>;
  let transport: BleLockTransport;
  let phone: NobleConnector;
  const log: Array<{ event: string } & Record<string, unknown>> = [];

  const advertisedVersion = async (): Promise<number | undefined> => (await phone.scan(2000, lock.lockId))[0]?.version;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'locksync-blet-'));
    radio = await startRadio({ dir, controllers: ['lock', 'phone'], seed: 23 });
    lock = settableLock('lk-0042');
    // The poll is pushed out of the way so only the disconnect path can refresh the advert.
    transport = new BleLockTransport(radio.controller('lock').transport, { advertisingIntervalMs: 20, advertPollMs: 3_600_000, log: (event, f) => log.push({ event, ...f }) });
    await transport.start(lock);
    phone = await NobleConnector.open(radio.controller('phone').transport);
  });

  afterAll(async () => {
    await phone?.close();
    await transport?.stop();
    await radio?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the factory leaves sim to the lock CLI and takes uart:/hci:', () => {
    expect(bleLockTransportFactory('sim')).toBeUndefined();
    expect(bleLockTransportFactory('uart:/dev/ttyACM0')).toBeInstanceOf(BleLockTransport);
    expect(bleLockTransportFactory('hci:0')).toBeInstanceOf(BleLockTransport);
    expect(() => bleLockTransportFactory('bluetooth:1')).toThrow(/unknown transport/);
  });

  it('a version that changed during a connection is on the air as soon as the phone is gone', async () => {
    expect(await advertisedVersion()).toBe(1);
    const conn = await phone.connect(lock.lockId);
    await conn.next(5000); // hello
    lock.version = 2; // changed without a handled request: only the disconnect path sees it
    await conn.disconnect();
    expect(await advertisedVersion()).toBe(2);
    const adverts = log.filter((e) => e.event === 'bleAdvert');
    expect(adverts.at(-1)).toMatchObject({ version: 2, cause: 'disconnect' });
    const events = log.map((e) => e.event);
    expect(events.indexOf('bleConnect')).toBeLessThan(events.indexOf('bleDisconnect'));
    expect(log.find((e) => e.event === 'bleDisconnect')).toMatchObject({ messagesOut: 1 });
  });

  it('refreshAdvert settles even when a phone connects at the same moment, and the new version is advertised', async () => {
    lock.version = 3;
    const connecting = phone.connect(lock.lockId);
    await transport.server!.refreshAdvert();
    const conn = await connecting;
    await conn.next(5000);
    await conn.disconnect();
    expect(await advertisedVersion()).toBe(3);
  });
});
