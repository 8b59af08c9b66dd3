// The property model's rules, as the seed articles state them, checked through the
// tables the locks receive.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ENTRY_FLAGS, dailyCode, doorcodeVerifier, fromHex, keycardVerifier, toHex, type Entry } from '../protocol';
import { AuthorityError } from './errors';
import { SimLock, tempProperty, type TempProperty } from './test-support';

let p: TempProperty;
beforeEach(() => {
  p = tempProperty();
});
afterEach(() => p.cleanup());

function expectCode(fn: () => unknown, code: string): AuthorityError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AuthorityError);
    expect((e as AuthorityError).code).toBe(code);
    return e as AuthorityError;
  }
  throw new Error(`expected ${code}, nothing was thrown`);
}

function setup() {
  const a = p.authority;
  const lobby = a.addDoor({ name: 'Lobby', kind: 'communal', connected: true });
  const gym = a.addDoor({ name: 'Gym', kind: 'communal' });
  const unit = a.addDoor({ name: 'Unit 1A', kind: 'private' });
  const locks = Object.fromEntries([lobby, gym, unit].map((d) => [d.name, new SimLock(a.provisionLock(d.id))])) as Record<string, SimLock>;
  const resident = a.createKey({ name: 'Resident', doors: [{ doorId: lobby.id }, { doorId: unit.id }] });
  const amenity = a.createKey({ name: 'Amenities', doors: [{ doorId: gym.id, doorcodesEnabled: false, schedule: [{ days: ['weekdays'], start: '06:00', end: '22:00' }] }] });
  return { a, lobby, gym, unit, locks, resident, amenity };
}

const entriesOf = (l: SimLock): Entry[] => [...l.state.table.entries.values()];

describe('Keys, not doors', () => {
  it('a user reaches exactly the doors of the Keys assigned, with per-door Key policies', () => {
    const { a, locks, resident, amenity } = setup();
    const ann = a.addUser({ name: 'Ann' });
    a.assignKey(ann.id, resident.id);
    a.assignKey(ann.id, amenity.id);
    const dev = a.enrolDeviceWithNewKey({ userId: ann.id }, 's');
    for (const l of Object.values(locks)) l.sync(a);
    const phones = (l: SimLock) => entriesOf(l).filter((e) => e.kind === 'phone');
    expect(phones(locks.Lobby!).map((e) => e.keyId)).toEqual([resident.id]);
    expect(phones(locks.Gym!).map((e) => e.keyId)).toEqual([amenity.id]);
    expect(locks.Gym!.state.table.keyPolicies.get(amenity.id)).toEqual({ keyId: amenity.id, doorcodesEnabled: false, schedule: [{ days: 0x1f, start: 360, end: 1320 }] });
    expect(phones(locks['Unit 1A']!)[0]!.secret).toEqual(fromHex(dev.credentialFile.publicKey));
    expect(dev.credentialFile.credentials.map((c) => c.lockId).sort()).toEqual(['lk-0001', 'lk-0002', 'lk-0003']);
    expect(dev.credentialFile.holder).toBe('resident');
  });

  it('refuses unknown ids, duplicates and manager assignment of guest keys, changing nothing', () => {
    const { a, lobby, resident } = setup();
    const ann = a.addUser({ name: 'Ann' });
    expectCode(() => a.assignKey(ann.id, 999), 'UNKNOWN_KEY');
    expectCode(() => a.assignKey(999, resident.id), 'UNKNOWN_USER');
    a.assignKey(ann.id, resident.id);
    expectCode(() => a.assignKey(ann.id, resident.id), 'CONFLICT');
    const g = a.inviteGuest(ann.id, { name: 'Gus', doorIds: [lobby.id] });
    const bob = a.addUser({ name: 'Bob' });
    expectCode(() => a.assignKey(bob.id, g.keys[0]!.id), 'FORBIDDEN_TRANSITION');
    expectCode(() => a.assignKey(g.guest.id, resident.id), 'FORBIDDEN_TRANSITION');
    expectCode(() => a.updateKey(g.keys[0]!.id, { name: 'x' }), 'FORBIDDEN_TRANSITION');
    // nothing half-applied: a Key naming one good and one unknown door is not created
    const before = a.listKeys().length;
    const v = a.currentVersion('lk-0001');
    expectCode(() => a.createKey({ name: 'Bad', doors: [{ doorId: lobby.id }, { doorId: 4242 }] }), 'UNKNOWN_DOOR');
    expect(a.listKeys().length).toBe(before);
    expect(a.currentVersion('lk-0001')).toBe(v);
  });

  it('a schedule allows at most 8 windows on any day and no window across midnight', () => {
    const { a, gym } = setup();
    const w = (i: number) => ({ days: ['mon'], start: i * 60, end: i * 60 + 30 });
    const eight = Array.from({ length: 8 }, (_, i) => w(i));
    const k = a.createKey({ name: 'Eight', doors: [{ doorId: gym.id, schedule: eight }] });
    expect(k.doors[0]!.schedule).toHaveLength(8);
    const e = expectCode(() => a.setKeyDoor(k.id, { doorId: gym.id, schedule: [...eight, w(9)] }), 'VALIDATION');
    expect(e.details).toMatchObject({ reason: 'OVER_LIMIT', limitPerDay: 8 });
    // eight on Monday plus more on Tuesday is fine
    a.setKeyDoor(k.id, { doorId: gym.id, schedule: [...eight, { days: ['tue'], start: '01:00', end: '02:00' }] });
    expectCode(() => a.setKeyDoor(k.id, { doorId: gym.id, schedule: [{ days: ['fri'], start: '22:00', end: '02:00' }] }), 'VALIDATION');
    expect(a.key(k.id).doors[0]!.schedule).toHaveLength(9);
  });

  it('only the locks of affected doors get a new version; credIds survive recompiles', () => {
    const { a, locks, resident, amenity, gym } = setup();
    const ann = a.addUser({ name: 'Ann' });
    a.assignKey(ann.id, resident.id);
    a.assignKey(ann.id, amenity.id);
    a.enrolDeviceWithNewKey({ userId: ann.id }, 's');
    for (const l of Object.values(locks)) l.sync(a);
    const ids = entriesOf(locks.Gym!).map((e) => e.credId);
    const lobbyV = a.currentVersion('lk-0001');
    a.setKeyDoor(amenity.id, { doorId: gym.id, doorcodesEnabled: false, schedule: [{ days: ['daily'], start: '07:00', end: '21:00' }] });
    expect(a.currentVersion('lk-0001')).toBe(lobbyV);
    const s = locks.Gym!.sync(a);
    expect(s.types).toEqual(['delta']);
    expect(entriesOf(locks.Gym!).map((e) => e.credId)).toEqual(ids);
    expect(locks.Gym!.state.table.keyPolicies.get(amenity.id)!.schedule).toEqual([{ days: 0x7f, start: 420, end: 1260 }]);
  });
});

describe('May Share Key and guests', () => {
  it('guests get one Key per door, only where the resident may share', () => {
    const { a, lobby, gym, unit, resident, amenity } = setup();
    const ann = a.addUser({ name: 'Ann' });
    a.assignKey(ann.id, resident.id, { mayShare: true });
    a.assignKey(ann.id, amenity.id, { mayShare: false });
    const refused = expectCode(() => a.inviteGuest(ann.id, { name: 'Gus', doorIds: [lobby.id, gym.id] }), 'SHARING_NOT_ALLOWED');
    expect(refused.details).toEqual({ doors: [gym.id] });
    expect(a.listUsers().filter((u) => u.role === 'guest')).toHaveLength(0);
    const g = a.inviteGuest(ann.id, { name: 'Gus', doorIds: [lobby.id, unit.id] });
    expect(g.keys.map((k) => k.doors.map((d) => d.doorId))).toEqual([[lobby.id], [unit.id]]);
    expect(g.keys.every((k) => k.guestOf !== null)).toBe(true);
    const staff = a.addUser({ name: 'Sam', role: 'staff' });
    a.assignKey(staff.id, resident.id);
    expectCode(() => a.inviteGuest(staff.id, { name: 'X', doorIds: [lobby.id] }), 'FORBIDDEN_TRANSITION');
  });

  it('guest credentials chain to the resident, follow the resident Key settings, and go when the resident loses access', () => {
    const { a, lobby, locks, resident } = setup();
    a.setProperty({ policy: { leaseSeconds: 86_400 } });
    const ann = a.addUser({ name: 'Ann' });
    a.assignKey(ann.id, resident.id, { mayShare: true });
    const annDev = a.enrolDeviceWithNewKey({ userId: ann.id }, 's');
    const g = a.inviteGuest(ann.id, { name: 'Gus', doorIds: [lobby.id] });
    const gusDev = a.enrolDeviceWithNewKey({ userId: g.guest.id }, 's');
    const lock = locks.Lobby!;
    lock.sync(a);
    const annPhone = entriesOf(lock).find((e) => e.kind === 'phone' && e.holder === 'resident')!;
    const guest = entriesOf(lock).find((e) => e.holder === 'guest')!;
    expect(guest.parent).toBeDefined();
    expect(lock.state.table.entries.get(guest.parent!)!.keyId).toBe(resident.id);
    expect(guest.flags & ENTRY_FLAGS.LEASE).toBe(ENTRY_FLAGS.LEASE);
    expect(annPhone.flags & ENTRY_FLAGS.LEASE).toBe(0);
    expect(gusDev.credentialFile.holder).toBe('guest');
    expect(gusDev.credentialFile.credentials).toEqual([{ lockId: lock.bundle.lockId, credId: guest.credId }]);
    void annDev;
    // resident loses the Key → guest goes too, by cascade at the lock
    a.unassignKey(ann.id, resident.id);
    const r = a.updatesFor(lock.bundle.lockId, lock.version);
    lock.sync(a);
    expect(entriesOf(lock).filter((e) => e.holder === 'guest' || e.holder === 'resident')).toEqual([]);
    expect(a.listKeys().filter((k) => k.guestOf !== null)).toEqual([]);
    expect(r.messages).toHaveLength(1);
    expect(a.credentialsForDevice(gusDev.deviceId)).toEqual([]);
  });

  it('turning May Share Key off withdraws guests already shared from that Key', () => {
    const { a, lobby, locks, resident } = setup();
    const ann = a.addUser({ name: 'Ann' });
    a.assignKey(ann.id, resident.id, { mayShare: true });
    a.enrolDeviceWithNewKey({ userId: ann.id }, 's');
    const g = a.inviteGuest(ann.id, { name: 'Gus', doorIds: [lobby.id] });
    a.enrolDeviceWithNewKey({ userId: g.guest.id }, 's');
    locks.Lobby!.sync(a);
    expect(entriesOf(locks.Lobby!).some((e) => e.holder === 'guest')).toBe(true);
    a.setMayShare(ann.id, resident.id, false);
    locks.Lobby!.sync(a);
    expect(entriesOf(locks.Lobby!).some((e) => e.holder === 'guest')).toBe(false);
    expectCode(() => a.inviteGuest(ann.id, { name: 'Gus2', doorIds: [lobby.id] }), 'SHARING_NOT_ALLOWED');
  });

  it('removing a resident removes their guests\u2019 access at every door', () => {
    const { a, lobby, unit, locks, resident } = setup();
    const ann = a.addUser({ name: 'Ann' });
    a.assignKey(ann.id, resident.id);
    a.enrolDeviceWithNewKey({ userId: ann.id }, 's');
    const g = a.inviteGuest(ann.id, { name: 'Gus', doorIds: [lobby.id, unit.id] });
    a.enrolDeviceWithNewKey({ userId: g.guest.id }, 's');
    for (const l of [locks.Lobby!, locks['Unit 1A']!]) l.sync(a);
    a.removeUser(ann.id);
    for (const l of [locks.Lobby!, locks['Unit 1A']!]) {
      l.sync(a);
      expect(entriesOf(l)).toEqual([]);
    }
  });
});

describe('partners', () => {
  it('must be authorized first; per-door assignment puts partner entries with partnerId and LEASE', () => {
    const { a, lobby, locks } = setup();
    a.setProperty({ policy: { leaseSeconds: 3600 } });
    expectCode(() => a.assignPartnerToDoor(7, lobby.id), 'UNKNOWN_PARTNER');
    const { partner } = a.authorizePartner('Parcel Co');
    expectCode(() => a.authorizePartner('Parcel Co'), 'CONFLICT');
    a.assignPartnerToDoor(partner.id, lobby.id);
    const dev = a.enrolDeviceWithNewKey({ partnerId: partner.id }, 's');
    locks.Lobby!.sync(a);
    const e = entriesOf(locks.Lobby!).find((x) => x.holder === 'partner')!;
    expect(e).toMatchObject({ partnerId: partner.id, kind: 'phone', flags: ENTRY_FLAGS.LEASE });
    expect(dev.credentialFile).toMatchObject({ holder: 'partner', credentials: [{ lockId: 'lk-0001', credId: e.credId }] });
  });

  it('a partner key can be edited but never lose or change its partner, only be deleted', () => {
    const { a, lobby, gym, unit } = setup();
    const { partner: p1 } = a.authorizePartner('P1');
    const { partner: p2 } = a.authorizePartner('P2');
    const k = a.createKey({ name: 'Deliveries', doors: [{ doorId: lobby.id }], partnerId: p1.id });
    expectCode(() => a.updateKey(k.id, { partnerId: p2.id }), 'FORBIDDEN_TRANSITION');
    expectCode(() => a.updateKey(k.id, { partnerId: null }), 'FORBIDDEN_TRANSITION');
    const edited = a.updateKey(k.id, { name: 'Deliveries 2', doors: [{ doorId: gym.id, doorcodesEnabled: false, schedule: [{ days: ['daily'], start: '08:00', end: '18:00' }] }, { doorId: unit.id }] });
    expect(edited).toMatchObject({ name: 'Deliveries 2', partnerId: p1.id });
    expect(edited.doors.map((d) => d.doorId)).toEqual([gym.id, unit.id]);
    // same partner again is not a change
    expect(a.updateKey(k.id, { partnerId: p1.id }).partnerId).toBe(p1.id);
    // an ordinary Key can become a partner key (once)
    const plain = a.createKey({ name: 'Plain', doors: [{ doorId: lobby.id }] });
    expect(a.updateKey(plain.id, { partnerId: p2.id }).partnerId).toBe(p2.id);
    expectCode(() => a.updateKey(plain.id, { partnerId: null }), 'FORBIDDEN_TRANSITION');
    a.deleteKey(k.id);
    expectCode(() => a.key(k.id), 'UNKNOWN_KEY');
  });

  it('terminating is refused while the partner is assigned anywhere, listing the doors', () => {
    const { a, lobby, gym, locks } = setup();
    const { partner, token } = a.authorizePartner('Parcel Co');
    a.assignPartnerToDoor(partner.id, lobby.id);
    const k = a.createKey({ name: 'PK', doors: [{ doorId: gym.id }], partnerId: partner.id });
    a.enrolDeviceWithNewKey({ partnerId: partner.id }, 's');
    const e = expectCode(() => a.terminatePartner(partner.id), 'PARTNER_STILL_ASSIGNED');
    expect(e.details).toEqual({
      doors: [
        { doorId: lobby.id, name: 'Lobby', via: 'door' },
        { doorId: gym.id, name: 'Gym', via: 'key', keyId: k.id },
      ],
      keys: [k.id],
    });
    expect(a.partner(partner.id).status).toBe('authorized');
    a.unassignPartnerFromDoor(partner.id, lobby.id);
    expectCode(() => a.terminatePartner(partner.id), 'PARTNER_STILL_ASSIGNED');
    a.deleteKey(k.id);
    expect(a.terminatePartner(partner.id).status).toBe('terminated');
    expectCode(() => a.authenticate(token), 'UNAUTHORIZED');
    expectCode(() => a.assignPartnerToDoor(partner.id, lobby.id), 'PARTNER_NOT_AUTHORIZED');
    for (const l of Object.values(locks)) {
      l.sync(a);
      expect(entriesOf(l).some((x) => x.holder === 'partner')).toBe(false);
    }
  });
});

describe('doorcodes, keycards, daily codes', () => {
  it('doorcodes appear only as verifiers under the lock secret, are unique per door, and are never stored in plain', () => {
    const { a, lobby, gym, locks, resident } = setup();
    const ann = a.addUser({ name: 'Ann' });
    const { doorcodes } = a.assignKey(ann.id, resident.id);
    expect(doorcodes.map((d) => d.doorId).sort()).toEqual([lobby.id, 3].sort());
    const chosen = a.issueDoorcode(ann.id, lobby.id, '7654321');
    expect(chosen).toEqual({ doorId: lobby.id, keyId: resident.id, code: '7654321' });
    expect(a.doorcodeOf(ann.id, lobby.id)).toBe('7654321');
    const bob = a.addUser({ name: 'Bob' });
    a.assignKey(bob.id, resident.id);
    expectCode(() => a.issueDoorcode(bob.id, lobby.id, '7654321'), 'CONFLICT');
    expectCode(() => a.issueDoorcode(bob.id, lobby.id, '123'), 'VALIDATION');
    expectCode(() => a.issueDoorcode(bob.id, gym.id), 'DOORCODES_DISABLED');
    const lock = locks.Lobby!;
    lock.sync(a);
    const codes = entriesOf(lock).filter((e) => e.kind === 'doorcode');
    expect(codes).toHaveLength(2);
    const secret = fromHex(lock.bundle.lockSecret);
    expect(codes.some((e) => Buffer.from(e.secret).equals(Buffer.from(doorcodeVerifier(secret, '7654321'))))).toBe(true);
    // the storage (SQLite file and WAL, or every PostgreSQL row) holds neither the code nor the lock secret
    const raw = p.rawStorage();
    expect(raw.includes(Buffer.from('Lobby'))).toBe(true); // sanity: the scan sees stored data
    expect(raw.includes(Buffer.from('7654321'))).toBe(false);
    expect(raw.includes(Buffer.from(lock.bundle.lockSecret, 'hex'))).toBe(false);
  });

  it('deleting (or unassigning) a Key deletes its doorcodes, and the lock drops them with one removeKey op', () => {
    const { a, lobby, locks, resident } = setup();
    const ann = a.addUser({ name: 'Ann' });
    a.assignKey(ann.id, resident.id);
    expect(a.user(ann.id).doorcodeDoors).toHaveLength(2);
    a.unassignKey(ann.id, resident.id);
    expect(a.user(ann.id).doorcodeDoors).toEqual([]);
    a.assignKey(ann.id, resident.id);
    const lock = locks.Lobby!;
    lock.sync(a);
    expect(entriesOf(lock).filter((e) => e.kind === 'doorcode')).toHaveLength(1);
    a.deleteKey(resident.id);
    expect(a.user(ann.id).doorcodeDoors).toEqual([]);
    expectCode(() => a.doorcodeOf(ann.id, lobby.id), 'UNKNOWN_DOORCODE');
    const r = a.updatesFor(lock.bundle.lockId, lock.version);
    const m = (r.messages[0] as string);
    lock.sync(a);
    expect(entriesOf(lock)).toEqual([]);
    expect(lock.state.table.keyPolicies.size).toBe(0);
    expect(m.length / 2).toBeLessThan(400);
  });

  it('keycards compile to verifiers under each lock secret', () => {
    const { a, locks, resident } = setup();
    const ann = a.addUser({ name: 'Ann' });
    a.assignKey(ann.id, resident.id);
    const card = a.addKeycard(ann.id, '04a1b2c3d4e5f6');
    expectCode(() => a.addKeycard(ann.id, '04a1b2c3d4e5f6'), 'CONFLICT');
    expectCode(() => a.addKeycard(ann.id, '0102'), 'VALIDATION');
    const lock = locks.Lobby!;
    lock.sync(a);
    const e = entriesOf(lock).find((x) => x.kind === 'keycard')!;
    expect(e.secret).toEqual(keycardVerifier(fromHex(lock.bundle.lockSecret), fromHex('04a1b2c3d4e5f6')));
    a.removeKeycard(card.id);
    lock.sync(a);
    expect(entriesOf(lock).some((x) => x.kind === 'keycard')).toBe(false);
  });

  it('daily codes derive from the lock secret, one slot per issue, until the slots run out', () => {
    const { a, gym, locks } = setup();
    a.updateDoor(gym.id, { policy: { dailyCodeSlots: 2 } });
    const c0 = a.issueDailyCode(gym.id, { date: '2025-03-30' });
    const c1 = a.issueDailyCode(gym.id, { date: '2025-03-30' });
    const s0 = a.issueDailyCode(gym.id, { date: '2025-03-30', kind: 'dailySingleUse' });
    const secret = fromHex(locks.Gym!.bundle.lockSecret);
    expect([c0.slot, c1.slot, s0.slot]).toEqual([0, 1, 0]);
    expect(c0.code).toBe(dailyCode(secret, '2025-03-30', 0, 'daily'));
    expect(s0.code).toBe(dailyCode(secret, '2025-03-30', 0, 'dailySingleUse'));
    expectCode(() => a.issueDailyCode(gym.id, { date: '2025-03-30' }), 'DAILY_CODES_EXHAUSTED');
    expectCode(() => a.issueDailyCode(gym.id, { date: '30/03/2025' }), 'VALIDATION');
    // default date is today in the property time zone (Europe/Berlin): 23:30 UTC is tomorrow there
    p.clock.t = Date.UTC(2025, 5, 1, 23, 30) / 1000;
    expect(a.issueDailyCode(gym.id).date).toBe('2025-06-02');
    locks.Gym!.sync(a);
    expect(locks.Gym!.state.table.policy.dailyCodeSlots).toBe(2);
  });
});

describe('bulk provisioning (a fleet of doors in a few statements)', () => {
  // The twin property provisions one door at a time; the bulk calls must issue the same
  // lock ids, secrets and tokens (the same seeded draws), and compile the same tables.
  let twin: TempProperty;
  beforeEach(() => {
    twin = tempProperty();
  });
  afterEach(() => twin.cleanup());

  it('addDoorsWithLocks + registerLockDevices give what addDoor + provisionLock + registerLockDevice give, one after another', () => {
    const a = p.authority;
    const b = twin.authority;
    const names = ['Lobby', 'Unit 1', 'Unit 2'];
    const bulk = a.batch(() => {
      const made = a.addDoorsWithLocks(names.map((name, i) => ({ name, kind: i === 0 ? 'communal' : 'private', connected: i === 0 })));
      const key = a.createKey({ name: 'Residents', doors: made.map((m) => ({ doorId: m.door.id, doorcodesEnabled: false })) });
      const ann = a.addUser({ name: 'Ann' });
      a.assignKey(ann.id, key.id);
      return made;
    });
    const one = b.batch(() => {
      const made = names.map((name, i) => {
        const door = b.addDoor({ name, kind: i === 0 ? 'communal' : 'private', connected: i === 0 });
        return { door: b.door(door.id), bundle: b.provisionLock(door.id) };
      });
      const key = b.createKey({ name: 'Residents', doors: made.map((m) => ({ doorId: m.door.id, doorcodesEnabled: false })) });
      const ann = b.addUser({ name: 'Ann' });
      b.assignKey(ann.id, key.id);
      return made;
    });
    expect(bulk.map((m) => m.bundle)).toEqual(one.map((m) => m.bundle));
    expect(bulk.map((m) => m.door)).toEqual(one.map((m) => ({ ...m.door, lockId: m.bundle.lockId })));
    expect(a.listDoors()).toEqual(b.listDoors());
    // Each lock compiled once, at the end of the batch: version 1 is the full table.
    expect(a.listLocks().map((l) => [l.lockId, l.version])).toEqual([['lk-0001', 1], ['lk-0002', 1], ['lk-0003', 1]]);
    expect(bulk.map((m) => a.updatesFor(m.bundle.lockId, 0).messages)).toEqual(one.map((m) => b.updatesFor(m.bundle.lockId, 0).messages));
    const devices = bulk.map((m) => ({ lockId: m.bundle.lockId, devicePublicKey: toHex(new SimLock(m.bundle).device.publicKey) }));
    const tokens = a.registerLockDevices(devices);
    expect(tokens).toEqual(devices.map((d) => b.registerLockDevice(d.lockId, d.devicePublicKey)));
    expect(a.listLocks().every((l) => l.deviceRegistered)).toBe(true);
    // Registering the same keys again is allowed (as registerLockDevice allows it) and issues new tokens.
    expect(a.registerLockDevices(devices.slice(0, 1))[0]!.token).not.toBe(tokens[0]!.token);
  });

  it('more doors than one multi-row statement holds', () => {
    const a = p.authority;
    const made = a.addDoorsWithLocks(Array.from({ length: 7 }, (_, i) => ({ name: `Unit ${i}` })), { rowsPerStatement: 3 });
    expect(new Set(made.map((m) => m.door.id)).size).toBe(7);
    expect(made.map((m) => m.bundle.lockId)).toEqual(['lk-0001', 'lk-0002', 'lk-0003', 'lk-0004', 'lk-0005', 'lk-0006', 'lk-0007']);
    expect(a.listDoors().map((d) => [d.name, d.lockId])).toEqual(made.map((m) => [m.door.name, m.bundle.lockId]));
    const tokens = a.registerLockDevices(made.map((m) => ({ lockId: m.bundle.lockId, devicePublicKey: toHex(new SimLock(m.bundle).device.publicKey) })), { rowsPerStatement: 2 });
    expect(new Set(tokens.map((t) => t.token)).size).toBe(7);
    expect(a.listLocks().filter((l) => l.deviceRegistered)).toHaveLength(7);
    expectCode(() => a.addDoorsWithLocks([{ name: 'Unit 8' }], { rowsPerStatement: 0 }), 'VALIDATION');
  });

  it('refuses a taken or repeated name, a bad kind, an unknown or already-keyed lock, changing nothing', () => {
    const a = p.authority;
    a.addDoor({ name: 'Lobby' });
    expectCode(() => a.addDoorsWithLocks([{ name: 'Unit 1' }, { name: 'Lobby' }]), 'CONFLICT');
    expectCode(() => a.addDoorsWithLocks([{ name: 'Unit 1' }, { name: 'Unit 1' }]), 'CONFLICT');
    expectCode(() => a.addDoorsWithLocks([{ name: 'Unit 1' }, { name: 'Unit 2', kind: 'garage' as never }]), 'VALIDATION');
    expect(a.listDoors().map((d) => d.name)).toEqual(['Lobby']);
    expect(a.listLocks()).toEqual([]);
    const [made] = a.addDoorsWithLocks([{ name: 'Unit 1' }]);
    expect(made!.bundle.lockId).toBe('lk-0001'); // the refused calls drew no lock id
    const key = toHex(new SimLock(made!.bundle).device.publicKey);
    expectCode(() => a.registerLockDevices([{ lockId: 'lk-0001', devicePublicKey: key }, { lockId: 'lk-0099', devicePublicKey: key }]), 'UNKNOWN_LOCK');
    expectCode(() => a.registerLockDevices([{ lockId: 'lk-0001', devicePublicKey: key }, { lockId: 'lk-0001', devicePublicKey: key }]), 'VALIDATION');
    expectCode(() => a.registerLockDevices([{ lockId: 'lk-0001', devicePublicKey: 'abcd' }]), 'VALIDATION');
    expect(a.listLocks()[0]!.deviceRegistered).toBe(false);
    a.registerLockDevices([{ lockId: 'lk-0001', devicePublicKey: key }]);
    expectCode(() => a.registerLockDevices([{ lockId: 'lk-0001', devicePublicKey: '11'.repeat(32) }]), 'CONFLICT');
  });
});
