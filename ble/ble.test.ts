// The locksync GATT service over the real host stacks: bleno serving, noble connecting,
// through the virtual radio's HCI controllers on ptys. The session host here is a small
// echo lock so this file tests the transport alone; test/ covers the real lock.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRadio, type Radio } from '../radio/radio';
import { encodeMessage, decodeMessage, type Message, SeededRandom, PROTOCOL_VERSION } from '../protocol/index';
import { serveLockOverBle, type BleLockServer } from './peripheral';
import { NobleConnector } from './central';
import type { LockSessionHost } from './session-host';
import { AgentError } from '../mobile-agent/errors';

/** A lock that greets with hello and answers auditRequest with an export of `fromSeq` records. */
function echoLock(lockId: string): LockSessionHost & { received: Message[] } {
  const received: Message[] = [];
  let sessions = 0;
  return {
    lockId,
    received,
    advert: () => ({ lockId, version: 7, flags: 0 }),
    info: () => ({ lockId, protocolVersion: PROTOCOL_VERSION, capabilities: 0, version: 7 }),
    openSession: () => {
      const nonce = new SeededRandom(`${lockId}/${sessions++}`).bytes(16);
      return {
        hello: () =>
          encodeMessage({ type: 'hello', protocolVersion: 1, lockId, version: 7, digest: new Uint8Array(32), nonce, lockTime: 1_800_000_000, capabilities: 0, auditSeq: 0, battery: 90 }),
        handle: (bytes) => {
          const m = decodeMessage(bytes);
          received.push(m);
          if (m.type === 'auditRequest') {
            const records = Array.from({ length: m.fromSeq }, (_, i) => new Uint8Array([0xa3, 1, i % 24, 2, 0, 3, 1]));
            return [encodeMessage({ type: 'auditExport', prevHash: new Uint8Array(32), records })];
          }
          return [encodeMessage({ type: 'timeAck', lockTime: 1_800_000_001 })];
        },
        close: () => undefined,
      };
    },
  };
}

describe('locksync GATT service over bleno ↔ noble through the virtual radio', () => {
  let dir: string;
  let radio: Radio;
  let lock: ReturnType<typeof echoLock>;
  let served: BleLockServer;
  let phone: NobleConnector;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'locksync-ble-'));
    radio = await startRadio({ dir, controllers: ['lock', 'phone'], seed: 11 });
    lock = echoLock('lk-ble-1');
    served = await serveLockOverBle(lock, radio.controller('lock').transport, { advertisingIntervalMs: 20 });
    phone = await NobleConnector.open(radio.controller('phone').transport);
  });

  afterAll(async () => {
    await phone?.close();
    await served?.stop();
    await radio?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('scans the lock by service with its id and advertised version', async () => {
    const found = await phone.scan(2000, 'lk-ble-1');
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ lockId: 'lk-ble-1', version: 7 });
    expect(found[0]!.rssi).toBeLessThan(0);
  });

  it('connects, exchanges MTU, and carries messages both ways, including a multi-frame one', async () => {
    const conn = await phone.connect('lk-ble-1');
    expect(conn.mtu).toBeGreaterThan(23);
    const hello = await conn.next(5000);
    expect(hello).toMatchObject({ type: 'hello', lockId: 'lk-ble-1', version: 7 });
    await conn.send({ type: 'auditRequest', fromSeq: 2000 }); // ~16 KB answer: many notifications
    const exp = await conn.next(10_000);
    expect(exp.type).toBe('auditExport');
    if (exp.type === 'auditExport') expect(exp.records).toHaveLength(2000);
    expect(lock.received.at(-1)).toEqual({ type: 'auditRequest', fromSeq: 2000 });
    await conn.disconnect();
    expect((await conn.closed).reason).toBeTypeOf('number');
  });

  it('reports LOCK_NOT_FOUND for a lock that is not advertising', async () => {
    await expect(phone.connect('lk-absent', { timeoutMs: 500 })).rejects.toMatchObject({ reason: 'LOCK_NOT_FOUND' });
  });

  it('a link dropped by the radio fails the waiting reader with LINK_LOST', async () => {
    const conn = await phone.connect('lk-ble-1');
    await conn.next(5000); // hello
    const waiting = conn.next(10_000);
    expect(radio.faults.dropLink({ controller: 'phone' })).toBe(1);
    const err = await waiting.catch((e) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).reason).toBe('LINK_LOST');
  });
});
