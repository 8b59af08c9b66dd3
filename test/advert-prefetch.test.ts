// The updates fetched on the lock's advertisement (SPEC §14.1): at a first contact, or at a
// lock that moved on since the phone last met it, the phone asks the authority for the
// updates from the advertised version before it connects, and uses them only if the signed
// hello names that version and certificate serial. End to end on the in-process link with
// the real authority over HTTP; the order of the authority calls and the hello is what
// shows when the fetch happened.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { World } from '../world/index';
import type { DiscoveredLock, LockConnection, LockConnector } from '../mobile-agent/link';
import { decodeMessage, deriveSeed32, keyPairFromSeed, toHex } from '../protocol/index';
import type { AuthorityApi } from '../mobile-agent/authority-client';

describe('Door Sync fetches the updates on the advertised version', () => {
  let world: World;
  let partnerId: number;
  const phones = ['ann', 'bob', 'cat', 'dan', 'eve', 'fay'];

  beforeAll(async () => {
    world = await World.create({ seed: 'advert-prefetch', doors: [{ name: 'fresh' }, { name: 'unit' }, { name: 'late' }, { name: 'trail' }], phones });
    const a = world.authority;
    const doors = [world.door('fresh').doorId, world.door('unit').doorId, world.door('late').doorId, world.door('trail').doorId];
    const key = a.createKey({ name: 'Home', doors: doors.map((doorId) => ({ doorId })) });
    const user = a.addUser({ name: 'Ann' });
    a.assignKey(user.id, key.id);
    for (const p of phones) world.enrolPhone(p, { userId: user.id });
    partnerId = a.authorizePartner('Parcel Co').partner.id;
    a.enrolDeviceWithNewKey({ partnerId }, 'parcel-van'); // a partner with a device: a door change is a table change
  });
  afterAll(async () => world?.close());

  /** A change at the door 'unit': the partner joins or leaves it. The new version. */
  const changeUnit = (): number => {
    const a = world.authority;
    const doorId = world.door('unit').doorId;
    if (a.partner(partnerId).doors.includes(doorId)) a.unassignPartnerFromDoor(partnerId, doorId);
    else a.assignPartnerToDoor(partnerId, doorId);
    return a.currentVersion(world.door('unit').lockId);
  };

  /** Sync with the authority calls and the hello logged in order; `advert` rewrites what the scan heard. */
  async function syncLogged(phone: string, door: string, advert?: (a: DiscoveredLock) => DiscoveredLock) {
    const order: string[] = [];
    const client = world.authorityClientFor(phone);
    const authority: AuthorityApi = {
      updates: (lockId, from, certSerial) => (order.push(`updates v${from}${certSerial === undefined ? '' : ` cert ${certSerial}`}`), client.updates(lockId, from, certSerial)),
      signedTime: (...a) => client.signedTime(...a),
      postReceipt: (...a) => client.postReceipt(...a),
      postAudit: (...a) => client.postAudit(...a),
    };
    const inner = world.phone(phone).connector;
    const connector: LockConnector = {
      transport: inner.transport,
      scan: (t, f) => inner.scan(t, f),
      connect: (lockId, o = {}) => {
        const { onAdvert, ...rest } = o;
        return inner.connect(lockId, onAdvert === undefined ? rest : { ...rest, onAdvert: (a) => onAdvert(advert ? advert(a) : a) });
      },
      forget: (l) => inner.forget(l),
      close: async () => undefined,
    };
    world.moveTo(phone, door);
    try {
      const r = await world.sync(phone, door, { connector, authority, onEvent: (e) => e.phase === 'connected' && order.push('hello') });
      return { r, order };
    } finally {
      world.moveTo(phone, null);
    }
  }

  it('first contact with a fresh lock: the snapshot is fetched from the advertised v0 before the hello, and used (one fetch)', async () => {
    const target = world.authority.currentVersion(world.door('fresh').lockId);
    expect(target).toBeGreaterThan(0);
    expect(world.phone('ann').cache.expectedHello(world.door('fresh').lockId)).toBeUndefined();
    const { r, order } = await syncLogged('ann', 'fresh');
    expect(r).toMatchObject({ outcome: 'updated', versionBefore: 0, versionAfter: target, receiptDelivered: true });
    expect(order).toEqual(['updates v0', 'hello']);
    expect(world.door('fresh').lock.version).toBe(target);
  });

  it('an advert whose version the hello does not confirm (stale or forged): its fetch is dropped and the updates are fetched from the hello', async () => {
    await syncLogged('bob', 'unit'); // the lock holds a version and a certificate now
    const before = world.door('unit').lock.version;
    const target = changeUnit();
    const { r, order } = await syncLogged('cat', 'unit', (a) => ({ ...a, version: before + 5 }));
    expect(r).toMatchObject({ outcome: 'updated', versionBefore: before, versionAfter: target });
    const cert = world.door('unit').lock.durable.tableState.trust.certFloor;
    expect(order).toEqual([`updates v${before + 5}`, 'hello', `updates v${before} cert ${cert}`]);
  });

  it('a first contact with a lock that already holds a certificate: the advert fetch asked for none, the hello names one — fetched again for it', async () => {
    const before = world.door('unit').lock.version;
    const target = changeUnit();
    const { r, order } = await syncLogged('dan', 'unit');
    expect(r).toMatchObject({ outcome: 'updated', versionBefore: before, versionAfter: target });
    const cert = world.door('unit').lock.durable.tableState.trust.certFloor;
    expect(order).toEqual([`updates v${before}`, 'hello', `updates v${before} cert ${cert}`]);
  });

  it('an advert without a table version: nothing is fetched before the hello', async () => {
    const before = world.door('unit').lock.version;
    const target = changeUnit();
    const { r, order } = await syncLogged('eve', 'unit', ({ version: _dropped, ...a }) => a);
    expect(r).toMatchObject({ outcome: 'updated', versionAfter: target });
    const cert = world.door('unit').lock.durable.tableState.trust.certFloor;
    expect(order).toEqual(['hello', `updates v${before} cert ${cert}`]);
  });

  it('a lock that moved on since the phone met it: the remembered version and the advertised one are both asked for, the advertised one is used', async () => {
    await syncLogged('fay', 'unit');
    const remembered = world.door('unit').lock.version;
    changeUnit();
    await syncLogged('bob', 'unit'); // another phone brings the lock forward
    const advertised = world.door('unit').lock.version;
    const target = changeUnit();
    const cert = world.door('unit').lock.durable.tableState.trust.certFloor;
    const { r, order } = await syncLogged('fay', 'unit');
    expect(r).toMatchObject({ outcome: 'updated', versionBefore: advertised, versionAfter: target });
    expect(order).toEqual([`updates v${remembered} cert ${cert}`, `updates v${advertised} cert ${cert}`, 'hello']);
  });

  it('a first contact does not hold the update back for the signed time, which can only follow it', async () => {
    // The signed time is answered only once the update is on its way to the lock: a phone
    // that waited for the time before sending the update would never send it.
    let release!: () => void;
    const updateSent = new Promise<void>((r) => (release = r));
    const client = world.authorityClientFor('ann');
    const order: string[] = [];
    const authority: AuthorityApi = {
      updates: (...a) => client.updates(...a),
      signedTime: async (...a) => {
        await updateSent;
        order.push('time fetched');
        return client.signedTime(...a);
      },
      postReceipt: (...a) => client.postReceipt(...a),
      postAudit: (...a) => client.postAudit(...a),
    };
    world.moveTo('ann', 'late');
    try {
      const r = await world.sync('ann', 'late', {
        authority,
        messageTimeoutMs: 5000,
        courierFilter: (messages) => (order.push('update sent'), release(), messages),
        onEvent: (e) => e.phase === 'time' && order.push('time at lock'),
      });
      expect(r).toMatchObject({ outcome: 'updated', versionBefore: 0, receiptDelivered: true });
      expect(order).toEqual(['update sent', 'time fetched', 'time at lock']);
    } finally {
      world.moveTo('ann', null);
    }
  });

  it('a first contact sends the signed time and the audit request in one batch right behind the update, before reading its receipt', async () => {
    const steps: string[] = [];
    const inner = world.phone('bob').connector;
    const logged = (c: LockConnection): LockConnection =>
      Object.assign(Object.create(c) as LockConnection, {
        send: (m: Parameters<LockConnection['send']>[0]) => (steps.push(`send ${m.type}`), c.send(m)),
        sendRaw: (b: Uint8Array) => (steps.push(`send ${decodeMessage(b).type}`), c.sendRaw(b)),
        next: async (t: number) => {
          const m = await c.next(t);
          steps.push(`read ${m.type}`);
          return m;
        },
      });
    const connector: LockConnector = {
      transport: inner.transport,
      scan: (t, f) => inner.scan(t, f),
      connect: async (lockId, o = {}) => logged(await inner.connect(lockId, o)),
      forget: (l) => inner.forget(l),
      close: async () => undefined,
    };
    // A table too large for a batch (over 4,096 B): 150 residents with phones at this door.
    const a = world.authority;
    a.batch(() => {
      const key = a.createKey({ name: 'Trail', doors: [{ doorId: world.door('trail').doorId }] });
      for (let i = 0; i < 150; i++) {
        const u = a.addUser({ name: `Trail ${i}` });
        a.assignKey(u.id, key.id);
        a.enrolUserDevice(u.id, toHex(keyPairFromSeed(deriveSeed32('advert-prefetch/trail', `${i}`)).publicKey));
      }
    });
    world.moveTo('bob', 'trail');
    try {
      const r = await world.sync('bob', 'trail', { connector });
      expect(r).toMatchObject({ outcome: 'updated', versionBefore: 0, receiptDelivered: true });
    } finally {
      world.moveTo('bob', null);
    }
    // The time could not go first (the lock held no certificate): it follows the snapshot at once.
    expect(steps.slice(0, 5)).toEqual(['read hello', 'send snapshot', 'send batch', 'read receipt', 'read batchReply']);
    expect(world.door('trail').lock.rtc.trusted).toBe(true);
  });
});

