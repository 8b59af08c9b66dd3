// Reconnecting to a known lock as phones do (SPEC §13.1) through the real host stacks on the
// virtual radio: cached attribute handles checked by one Database Hash read, discovery again
// when the lock's database changed, the framing HELLO ahead of the CCCD write; and the
// pipelined Door Sync with the real lock, beside an old-style phone. Hard deadlines only.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRadio, type Radio } from '../radio/radio';
import { encodeMessage, decodeMessage, SeededRandom, PROTOCOL_VERSION, deriveSeed32, keyPairFromSeed, toHex } from '../protocol/index';
import { serveLockOverBle, type BleLockServer } from './peripheral';
import { NobleConnector } from './central';
import type { LockSessionHost } from './session-host';
import { World } from '../world/index';

/** A lock that greets with hello and answers every message with a timeAck. */
function greetingLock(lockId: string): LockSessionHost {
  let sessions = 0;
  return {
    lockId,
    advert: () => ({ lockId, version: 3, flags: 0 }),
    info: () => ({ lockId, protocolVersion: PROTOCOL_VERSION, capabilities: 0, version: 3 }),
    openSession: () => {
      const nonce = new SeededRandom(`${lockId}/${sessions++}`).bytes(16);
      return {
        hello: () =>
          encodeMessage({ type: 'hello', protocolVersion: 1, lockId, version: 3, digest: new Uint8Array(32), nonce, lockTime: 1_800_000_000, capabilities: 0, auditSeq: 0, battery: 90 }),
        handle: (bytes) => {
          decodeMessage(bytes);
          return [encodeMessage({ type: 'timeAck', lockTime: 1_800_000_001 })];
        },
        close: () => undefined,
      };
    },
  };
}

describe('cached attribute handles over bleno ↔ noble', () => {
  let dir: string;
  let radio: Radio;
  let served: BleLockServer | undefined;
  let phone: NobleConnector;
  const lock = greetingLock('lk-fast-1');

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'locksync-fast-'));
    radio = await startRadio({ dir, controllers: ['lock', 'phone'], seed: 14 });
    served = await serveLockOverBle(lock, radio.controller('lock').transport, { advertisingIntervalMs: 20 });
    phone = await NobleConnector.open(radio.controller('phone').transport);
  }, 60_000);

  afterAll(async () => {
    await phone?.close();
    await served?.stop();
    await radio?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const exchange = async (): Promise<void> => {
    const conn = await phone.connect('lk-fast-1');
    expect(await conn.next(10_000)).toMatchObject({ type: 'hello', lockId: 'lk-fast-1' });
    await conn.send({ type: 'receiptRequest' });
    expect(await conn.next(10_000)).toMatchObject({ type: 'timeAck' });
    await conn.disconnect();
  };

  it('discovers on first contact, then reconnects on cached handles', async () => {
    await exchange();
    expect(phone.lastPath.get('lk-fast-1')).toBe('discovery');
    await exchange();
    expect(phone.lastPath.get('lk-fast-1')).toBe('cached-handles');
  }, 60_000);

  it('a lock whose database changed (a firmware that added a characteristic, moving every handle) is discovered again, and works', async () => {
    await served?.stop();
    served = undefined;
    served = await serveLockOverBle(lock, radio.controller('lock').transport, {
      advertisingIntervalMs: 20,
      extraCharacteristics: [{ uuid: '4c4b00ff53594e4380006c6f636b7379', value: new Uint8Array([1, 2, 3]) }],
    });
    await exchange();
    expect(phone.lastPath.get('lk-fast-1')).toBe('discovery');
    await exchange();
    expect(phone.lastPath.get('lk-fast-1')).toBe('cached-handles');
  }, 60_000);
});

describe('pipelined Door Sync with the real lock over bleno ↔ noble', () => {
  let world: World;
  const toLock: { phone: string; type: string }[] = [];
  let current = '';
  let partnerId: number;
  let doorId: number;

  beforeAll(async () => {
    world = await World.create({
      seed: 'fast-connect',
      transport: 'ble',
      doors: [{ name: 'unit' }],
      phones: ['resident', 'old'],
      legacyPhones: ['old'],
      onSessionMessage: (m) => {
        if (m.direction === 'to-lock') toLock.push({ phone: current, type: decodeMessage(m.bytes).type });
      },
    });
    const a = world.authority;
    doorId = world.door('unit').doorId;
    const key = a.createKey({ name: 'Unit', doors: [{ doorId }] });
    const ann = a.addUser({ name: 'Ann' });
    a.assignKey(ann.id, key.id);
    world.enrolPhone('resident', { userId: ann.id });
    world.enrolPhone('old', { userId: ann.id });
    partnerId = a.authorizePartner('Parcel Co').partner.id;
    a.assignPartnerToDoor(partnerId, doorId);
    a.enrolDeviceWithNewKey({ partnerId }, 'parcel-van');
  }, 120_000);
  afterAll(async () => world?.close());

  const revoke = (): number => {
    const a = world.authority;
    if (a.partner(partnerId).doors.includes(doorId)) a.unassignPartnerFromDoor(partnerId, doorId);
    else a.assignPartnerToDoor(partnerId, doorId);
    return a.currentVersion(world.door('unit').lockId);
  };

  const syncAs = async (phone: string): Promise<Awaited<ReturnType<World['sync']>>> => {
    current = phone;
    world.moveTo(phone, 'unit');
    try {
      return await world.sync(phone, 'unit');
    } finally {
      world.moveTo(phone, null);
    }
  };

  it('first contact discovers; the revocation after it rides cached handles and one batch, and lands', async () => {
    await syncAs('resident');
    const connector = world.phone('resident').connector as NobleConnector;
    expect(connector.lastPath.get(world.door('unit').lockId)).toBe('discovery');
    const target = revoke();
    toLock.length = 0;
    const r = await syncAs('resident');
    expect(r).toMatchObject({ outcome: 'updated', versionAfter: target, receiptDelivered: true });
    expect(connector.lastPath.get(world.door('unit').lockId)).toBe('cached-handles');
    expect(toLock.map((m) => m.type)[0]).toBe('batch');
  }, 120_000);

  it('an old-style phone (scan, discovery, subscribe, one request at a time) still syncs with the same lock', async () => {
    const target = revoke();
    toLock.length = 0;
    const r = await syncAs('old');
    expect(r).toMatchObject({ outcome: 'updated', versionAfter: target, receiptDelivered: true });
    expect((world.phone('old').connector as NobleConnector).lastPath.get(world.door('unit').lockId)).toBe('legacy');
    expect(toLock.map((m) => m.type)).not.toContain('batch');
    expect(toLock.map((m) => m.type)).toEqual(expect.arrayContaining(['signedTime', 'delta', 'auditRequest']));
  }, 120_000);
});

describe('a first-contact snapshot over bleno ↔ noble: lean discovery, decoded at the lock while it arrives', () => {
  let world: World;
  const decoded: Record<string, unknown>[] = [];

  beforeAll(async () => {
    world = await World.create({
      seed: 'fast-connect/stream',
      transport: 'ble',
      doors: [{ name: 'lobby' }],
      phones: ['resident'],
      onLockLog: (_door, event, fields) => {
        if (event === 'decodedWhileArriving') decoded.push(fields);
      },
    });
    const a = world.authority;
    const doorId = world.door('lobby').doorId;
    const { resident } = a.batch(() => {
      const key = a.createKey({ name: 'Lobby', doors: [{ doorId, doorcodesEnabled: false }] });
      const resident = a.addUser({ name: 'Resident' });
      a.assignKey(resident.id, key.id);
      for (let i = 1; i < 300; i++) {
        const u = a.addUser({ name: `Neighbour ${i}` });
        a.assignKey(u.id, key.id);
        a.enrolUserDevice(u.id, toHex(keyPairFromSeed(deriveSeed32('fast-connect/stream', `neighbour:${i}`)).publicKey));
      }
      return { resident };
    });
    world.enrolPhone('resident', { userId: resident.id });
  }, 120_000);
  afterAll(async () => world?.close());

  it('a 300-credential snapshot lands; the lock had decoded most of it before its last frame', async () => {
    world.moveTo('resident', 'lobby');
    const r = await world.sync('resident', 'lobby');
    world.moveTo('resident', null);
    expect(r).toMatchObject({ outcome: 'updated', receiptDelivered: true });
    expect(r.versionAfter).toBe(world.authority.currentVersion(world.door('lobby').lockId));
    expect(world.door('lobby').lock.durable.tableState.table.entries.size).toBe(300);
    expect((world.phone('resident').connector as NobleConnector).lastPath.get(world.door('lobby').lockId)).toBe('discovery');
    expect(decoded).toHaveLength(1);
    const [d] = decoded as { bytes: number; early: number }[];
    expect(d?.bytes).toBe(r.updateBytes);
    expect(d?.early).toBeGreaterThan((d?.bytes ?? 0) / 2);
  }, 120_000);
});
