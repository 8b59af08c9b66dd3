// The offline courier: a phone fetches a door's update while it has network, carries it to
// a lock with no authority reachable, keeps the lock's signed receipt, and delivers it when
// it is back online — after which the authority knows the revocation is in force there.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { World } from '../world/index';
import { HttpAuthorityClient } from '../mobile-agent/authority-client';
import { deliverOutbox } from '../mobile-agent/sync';
import { AgentError } from '../mobile-agent/errors';

describe('offline courier', () => {
  let world: World;
  let partnerId: number;
  beforeAll(async () => {
    world = await World.create({ seed: 'courier', doors: [{ name: 'cellar' }], phones: ['staff'] });
    const a = world.authority;
    const door = world.door('cellar');
    const key = a.createKey({ name: 'Cellar', doors: [{ doorId: door.doorId }] });
    const staff = a.addUser({ name: 'Sam', role: 'staff' });
    a.assignKey(staff.id, key.id);
    world.enrolPhone('staff', { userId: staff.id });
    partnerId = a.authorizePartner('Wine Co').partner.id;
    a.assignPartnerToDoor(partnerId, door.doorId);
    a.enrolDeviceWithNewKey({ partnerId }, 'wine-co-van');
    world.moveTo('staff', 'cellar');
    await world.sync('staff', 'cellar');
    world.moveTo('staff', null);
  });
  afterAll(async () => world?.close());

  it('carries a fetched revocation to the lock offline and delivers the receipt later', async () => {
    const a = world.authority;
    const door = world.door('cellar');
    a.unassignPartnerFromDoor(partnerId, door.doorId);
    const target = a.currentVersion(door.lockId);
    expect(target).toBeGreaterThan(door.lock.version);
    const phone = world.phone('staff');

    // Online, at the office: fetch what the cellar door needs.
    const online = world.authorityClientFor('staff');
    phone.cache.storeUpdates(await online.updates(door.lockId, door.lock.version));
    expect(phone.cache.newestVersion(door.lockId)).toBe(target);

    // In the cellar, no network: the authority is unreachable.
    const unreachable = new HttpAuthorityClient('http://127.0.0.1:9', 'x', 500);
    world.moveTo('staff', 'cellar');
    // The cache stands in for the authority only because the caller asks for it.
    const r = await world.sync('staff', 'cellar', { authority: unreachable, cacheFallback: true });
    world.moveTo('staff', null);
    expect(r.versionAfter).toBe(target);
    expect(door.lock.version).toBe(target);
    expect(r.receiptDelivered).toBe(false);
    expect(r).toMatchObject({ outcome: 'from-cache', source: 'cache', receiptFate: 'queued', auditFate: 'queued' });
    expect(r.authorityError).toMatch(/^GET \/v1\/locks\/.*\/updates at http:\/\/127.0.0.1:9/);
    expect(Date.parse(r.cacheFetchedAt ?? '')).toBeGreaterThan(0);
    expect(phone.cache.outbox(door.lockId).map((o) => o.kind)).toEqual(['receipt', 'audit']);
    // The authority has not heard yet: the revocation still shows as pending.
    expect(a.pendingRevocations({ partnerId }).length).toBeGreaterThan(0);

    // Back online: deliver.
    const delivered = await deliverOutbox(phone.cache, online);
    expect(delivered).toBe(2);
    expect(phone.cache.outbox(door.lockId)).toEqual([]);
    expect(a.listLocks().find((l) => l.lockId === door.lockId)?.versionInForce).toBe(target);
    expect(a.pendingRevocations({ partnerId })).toEqual([]);
  });

  it('without cacheFallback an unreachable authority fails the sync, even with a usable cache, and the lock is unchanged', async () => {
    const a = world.authority;
    const door = world.door('cellar');
    a.assignPartnerToDoor(partnerId, door.doorId);
    const phone = world.phone('staff');
    phone.cache.storeUpdates(await world.authorityClientFor('staff').updates(door.lockId, door.lock.version));
    expect(phone.cache.newestVersion(door.lockId)).toBeGreaterThan(door.lock.version);
    const before = door.lock.version;
    const unreachable = new HttpAuthorityClient('http://127.0.0.1:9', 'x', 500);
    world.moveTo('staff', 'cellar');
    const err = await world.sync('staff', 'cellar', { authority: unreachable }).catch((e) => e);
    world.moveTo('staff', null);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).reason).toBe('AUTHORITY_UNREACHABLE');
    expect(door.lock.version).toBe(before);
  });

  it('with nothing cached and no authority, the sync says what to do', async () => {
    const unreachable = new HttpAuthorityClient('http://127.0.0.1:9', 'x', 500);
    world.moveTo('staff', 'cellar');
    const err = await world.sync('staff', 'cellar', { authority: unreachable, cache: undefined as never }).catch((e) => e);
    world.moveTo('staff', null);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).reason).toBe('AUTHORITY_UNREACHABLE');
    expect((err as AgentError).exitCode).toBe(6);
  });
});

describe('the fetched chain in the courier cache', () => {
  let world: World;
  beforeAll(async () => {
    world = await World.create({ seed: 'courier-store-order', doors: [{ name: 'lobby' }], phones: ['resident'] });
    const a = world.authority;
    const door = world.door('lobby');
    const key = a.createKey({ name: 'Residents', doors: [{ doorId: door.doorId }] });
    a.batch(() => {
      for (let i = 0; i < 200; i++) {
        const u = a.addUser({ name: `Resident ${i}`, role: 'resident' });
        a.assignKey(u.id, key.id);
        if (i === 0) world.enrolPhone('resident', { userId: u.id });
        else a.enrolDeviceWithNewKey({ userId: u.id }, `resident-${i}`);
      }
    });
    world.moveTo('resident', 'lobby');
  });
  afterAll(async () => world?.close());

  it('is written even when the sync fails after fetching it', async () => {
    const door = world.door('lobby');
    const phone = world.phone('resident');
    const err = await world
      .sync('resident', 'lobby', {
        attempts: 1,
        courierFilter: () => {
          throw new Error('courier hook failed');
        },
      })
      .catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/courier hook failed/);
    expect(door.lock.version).toBe(0);
    expect(phone.cache.newestVersion(door.lockId)).toBe(world.authority.currentVersion(door.lockId));
  });

  it('is written after the first frames of a lone update have gone, not before', async () => {
    const door = world.door('lobby');
    const phone = world.phone('resident');
    const order: string[] = [];
    const store = phone.cache.storeUpdates.bind(phone.cache);
    phone.cache.storeUpdates = (u) => {
      order.push('store');
      store(u);
    };
    const connect = phone.connector.connect.bind(phone.connector);
    phone.connector.connect = async (lockId, opts) => {
      const conn = await connect(lockId, opts);
      const sendRaw = conn.sendRaw.bind(conn);
      conn.sendRaw = (bytes) => {
        order.push(`send ${bytes.length > 4096 ? 'large update' : 'small'}`);
        return sendRaw(bytes);
      };
      return conn;
    };
    const r = await world.sync('resident', 'lobby', { attempts: 1 });
    expect(r.updateBytes).toBeGreaterThan(4096);
    expect(order.slice(0, 2)).toEqual(['send large update', 'store']);
    expect(door.lock.version).toBe(world.authority.currentVersion(door.lockId));
  });
});
