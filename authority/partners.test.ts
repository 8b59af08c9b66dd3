// OpenDOOR partners at the authority: authorized before anything else.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Entry, deriveSeed32, keyPairFromSeed, toHex } from '../protocol';
import { AuthorityError } from './errors';
import { startAuthorityServer } from './server';
import { SimLock, tempProperty, type TempProperty } from './test-support';

let p: TempProperty;
beforeEach(() => {
  p = tempProperty();
});
afterEach(() => p.cleanup());

function refusal(fn: () => unknown): AuthorityError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AuthorityError);
    return e as AuthorityError;
  }
  throw new Error('expected a refusal, nothing was thrown');
}

describe('a partner must be authorized before it can be assigned', () => {
  it('a registered (pending) partner is refused by name for every assignment, changing nothing; authorized, it is assigned', () => {
    const a = p.authority;
    const door = a.addDoor({ name: 'Parcel room', kind: 'communal' });
    const lock = new SimLock(a.provisionLock(door.id));
    const key = a.createKey({ name: 'Plain', doors: [{ doorId: door.id }] });
    const parcel = a.registerPartner('ParcelCo');
    expect(parcel.status).toBe('pending');
    const v = a.currentVersion(lock.bundle.lockId);
    const pk = '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c';
    for (const attempt of [
      () => a.assignPartnerToDoor(parcel.id, door.id),
      () => a.createKey({ name: 'Deliveries', doors: [{ doorId: door.id }], partnerId: parcel.id }),
      () => a.updateKey(key.id, { partnerId: parcel.id }),
      () => a.enrolPartnerDevice(parcel.id, pk),
      () => a.terminatePartner(parcel.id),
    ]) {
      const e = refusal(attempt);
      expect(e.code).toBe('PARTNER_NOT_AUTHORIZED');
      expect(e.details).toMatchObject({ partnerId: parcel.id, status: 'pending' });
    }
    expect(a.partner(parcel.id)).toMatchObject({ status: 'pending', doors: [], keys: [], devices: [] });
    expect(a.key(key.id).partnerId).toBeNull();
    expect(a.listKeys()).toHaveLength(1);
    expect(a.currentVersion(lock.bundle.lockId)).toBe(v);
    // A pending partner has no token to call with.
    expect(refusal(() => a.registerPartner('ParcelCo')).code).toBe('CONFLICT');

    const { partner, token } = a.authorizePartner('ParcelCo');
    expect(partner).toMatchObject({ id: parcel.id, status: 'authorized' });
    expect(a.authenticate(token)).toEqual({ kind: 'partner', partnerId: parcel.id });
    a.assignPartnerToDoor(parcel.id, door.id);
    expect(a.partner(parcel.id).doors).toEqual([door.id]);
  });

  it('a terminated partner is refused as such until authorized again', () => {
    const a = p.authority;
    const door = a.addDoor({ name: 'Lobby', kind: 'communal' });
    const { partner } = a.authorizePartner('HomeHub');
    a.terminatePartner(partner.id);
    const e = refusal(() => a.assignPartnerToDoor(partner.id, door.id));
    expect(e.code).toBe('PARTNER_NOT_AUTHORIZED');
    expect(e.details).toMatchObject({ status: 'terminated' });
    a.authorizePartner('HomeHub');
    expect(a.assignPartnerToDoor(partner.id, door.id).doors).toEqual([door.id]);
  });
});

const phoneKey = (label: string): string => toHex(keyPairFromSeed(deriveSeed32('partner-grants', label)).publicKey);
const grantEntries = (l: SimLock, pk: string): Entry[] => [...l.state.table.entries.values()].filter((e) => e.holder === 'partner' && toHex(e.secret) === pk);

function grantSetup() {
  const a = p.authority;
  const unit = a.addDoor({ name: 'Unit 4B', kind: 'private' });
  const lobby = a.addDoor({ name: 'Lobby', kind: 'communal', connected: true });
  const garage = a.addDoor({ name: 'Garage', kind: 'communal' });
  const locks = Object.fromEntries([unit, lobby, garage].map((d) => [d.name, new SimLock(a.provisionLock(d.id))])) as Record<string, SimLock>;
  const { partner: hub } = a.authorizePartner('HomeHub');
  const { partner: parcel } = a.authorizePartner('ParcelCo');
  const hubKey = a.createKey({ name: 'HomeHub units', doors: [{ doorId: unit.id }, { doorId: lobby.id }], partnerId: hub.id });
  const parcelKey = a.createKey({ name: 'Deliveries', doors: [{ doorId: garage.id }], partnerId: parcel.id });
  const sync = () => Object.values(locks).forEach((l) => l.sync(a));
  return { a, unit, lobby, garage, locks, hub, parcel, hubKey, parcelKey, sync };
}

describe('partner-issued access (OpenDOOR)', () => {
  it('a grant through a partner key follows the key: doors added and removed, schedule changes, the key deleted', () => {
    const { a, unit, lobby, garage, locks, hub, hubKey, sync } = grantSetup();
    const pk = phoneKey('resident-1');
    const g = a.grantPartnerAccess(hub.id, { subject: 'hh-user-17', role: 'resident', publicKey: pk, keyId: hubKey.id });
    expect(g).toMatchObject({ partnerId: hub.id, keyId: hubKey.id, allDoors: true, doors: [unit.id, lobby.id] });
    expect(g.credentials.map((c) => c.lockId)).toEqual(['lk-0001', 'lk-0002']);
    sync();
    expect(grantEntries(locks['Unit 4B']!, pk)).toMatchObject([{ kind: 'phone', partnerId: hub.id, keyId: hubKey.id }]);
    expect(grantEntries(locks.Garage!, pk)).toEqual([]);
    // door added to the key: the grant reaches it
    a.setKeyDoor(hubKey.id, { doorId: garage.id, schedule: [{ days: ['weekdays'], start: '08:00', end: '18:00' }] });
    sync();
    expect(grantEntries(locks.Garage!, pk)).toHaveLength(1);
    expect(locks.Garage!.state.table.keyPolicies.get(hubKey.id)?.schedule).toEqual([{ days: 0x1f, start: 480, end: 1080 }]);
    // schedule changed on the key: the lock judges the grant by the new one
    a.setKeyDoor(hubKey.id, { doorId: garage.id, schedule: [{ days: ['sat', 'sun'], start: '10:00', end: '12:00' }] });
    sync();
    expect(locks.Garage!.state.table.keyPolicies.get(hubKey.id)?.schedule).toEqual([{ days: 0x60, start: 600, end: 720 }]);
    // door removed from the key: gone there, pending until that lock syncs
    a.removeKeyDoor(hubKey.id, unit.id);
    expect(a.partnerGrant(hub.id, g.id).doors).toEqual([lobby.id, garage.id]);
    expect(a.pendingRevocations({ doorId: unit.id })).toMatchObject([{ holder: 'partner', partnerId: hub.id }]);
    sync();
    expect(grantEntries(locks['Unit 4B']!, pk)).toEqual([]);
    // key deleted: the grant ends everywhere
    a.deleteKey(hubKey.id);
    expect(() => a.partnerGrant(hub.id, g.id)).toThrow(/no grant/);
    for (const d of [lobby.id, garage.id]) expect(a.pendingRevocations({ partnerId: hub.id, doorId: d }).length).toBeGreaterThan(0);
    sync();
    for (const l of Object.values(locks)) expect(grantEntries(l, pk)).toEqual([]);
  });

  it('a grant on some doors of the key ends at a door removed from it, for good', () => {
    const { a, unit, lobby, hub, hubKey } = grantSetup();
    const g = a.grantPartnerAccess(hub.id, { subject: 'guest-9', role: 'guest', publicKey: phoneKey('guest-9'), keyId: hubKey.id, doorIds: [unit.id] });
    expect(g.doors).toEqual([unit.id]);
    a.removeKeyDoor(hubKey.id, unit.id);
    a.setKeyDoor(hubKey.id, { doorId: unit.id });
    expect(() => a.partnerGrant(hub.id, g.id)).toThrow(/no grant/); // not revived with the door
    expect(a.partnerGrant(hub.id, a.grantPartnerAccess(hub.id, { subject: 'x', publicKey: phoneKey('x'), keyId: hubKey.id, doorIds: [lobby.id] }).id).doors).toEqual([lobby.id]);
  });

  it('never beyond its scope: another partner’s key, a door not on its key, a door it is not assigned to (nothing changes)', () => {
    const { a, unit, garage, hub, hubKey, parcelKey } = grantSetup();
    const v = a.listLocks().map((l) => l.version);
    const pk = phoneKey('r');
    for (const [attempt, details] of [
      [() => a.grantPartnerAccess(hub.id, { subject: 'r', publicKey: pk, keyId: parcelKey.id }), { keyId: parcelKey.id }],
      [() => a.grantPartnerAccess(hub.id, { subject: 'r', publicKey: pk, keyId: hubKey.id, doorIds: [unit.id, garage.id] }), { doors: [garage.id] }],
      [() => a.grantPartnerAccess(hub.id, { subject: 'r', publicKey: pk, doorIds: [garage.id] }), { doors: [garage.id] }],
    ] as const) {
      const e = refusal(attempt);
      expect(e.code).toBe('PARTNER_GRANT_OUT_OF_SCOPE');
      expect(e.details).toMatchObject(details);
    }
    expect(a.partnerGrants(hub.id)).toEqual([]);
    expect(a.listLocks().map((l) => l.version)).toEqual(v);
  });

  it('per-door grants end when the partner is unassigned there, and do not come back with a new assignment', () => {
    const { a, garage, locks, hub, sync } = grantSetup();
    a.assignPartnerToDoor(hub.id, garage.id);
    const pk = phoneKey('courier');
    const g = a.grantPartnerAccess(hub.id, { subject: 'courier-3', role: 'courier', publicKey: pk, doorIds: [garage.id], validUntil: 1_760_086_400 });
    sync();
    expect(grantEntries(locks.Garage!, pk)).toMatchObject([{ validUntil: 1_760_086_400 }]);
    a.unassignPartnerFromDoor(hub.id, garage.id);
    expect(a.pendingRevocations({ doorId: garage.id }).some((r) => r.partnerId === hub.id)).toBe(true);
    a.assignPartnerToDoor(hub.id, garage.id);
    expect(() => a.partnerGrant(hub.id, g.id)).toThrow(/no grant/);
    sync();
    expect(grantEntries(locks.Garage!, pk)).toEqual([]);
  });

  it('each partner lists and revokes only its own grants; another’s is unknown to it', () => {
    const { a, garage, locks, hub, parcel, hubKey, parcelKey, sync } = grantSetup();
    const mine = a.grantPartnerAccess(hub.id, { subject: 'a', publicKey: phoneKey('a'), keyId: hubKey.id });
    const theirs = a.grantPartnerAccess(parcel.id, { subject: 'b', publicKey: phoneKey('b'), keyId: parcelKey.id });
    expect(a.partnerGrants(hub.id).map((g) => g.id)).toEqual([mine.id]);
    expect(refusal(() => a.partnerGrant(hub.id, theirs.id)).code).toBe('UNKNOWN_GRANT');
    expect(refusal(() => a.revokePartnerGrant(hub.id, theirs.id)).code).toBe('UNKNOWN_GRANT');
    expect(a.partnerGrant(parcel.id, theirs.id).credentials).toHaveLength(1);
    sync();
    a.revokePartnerGrant(parcel.id, theirs.id);
    expect(a.pendingRevocations({ doorId: garage.id })).toMatchObject([{ partnerId: parcel.id }]);
    sync();
    expect(grantEntries(locks.Garage!, phoneKey('b'))).toEqual([]);
  });

  it('termination (once unassigned everywhere) leaves no grant behind; grants of a terminated partner are refused', () => {
    const { a, hub, hubKey } = grantSetup();
    a.grantPartnerAccess(hub.id, { subject: 'a', publicKey: phoneKey('a'), keyId: hubKey.id });
    expect(refusal(() => a.terminatePartner(hub.id)).code).toBe('PARTNER_STILL_ASSIGNED');
    a.deleteKey(hubKey.id);
    a.terminatePartner(hub.id);
    expect(a.partnerGrants(hub.id)).toEqual([]);
    expect(refusal(() => a.grantPartnerAccess(hub.id, { subject: 'a', publicKey: phoneKey('a'), doorIds: [1] })).code).toBe('PARTNER_NOT_AUTHORIZED');
  });
});

describe('partner grants over HTTP (the partner’s own token)', () => {
  it('POST/GET/DELETE /v1/partner/grants: own grants only; other partners and other tokens see nothing', async () => {
    const { a, unit, hubKey } = grantSetup();
    // Two partners of its own, with their tokens (authorizing prints a partner's token once).
    const s = await startAuthorityServer({ dbPath: p.dbPath, port: 0, authority: a });
    try {
      const one = a.authorizePartner('One');
      const two = a.authorizePartner('Two');
      const k1 = a.createKey({ name: 'One units', doors: [{ doorId: unit.id }], partnerId: one.partner.id });
      const call = async (method: string, path: string, token: string, body?: unknown) => {
        const res = await fetch(`${s.url}${path}`, {
          method,
          headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        });
        return { status: res.status, json: (await res.json()) as any };
      };
      const made = await call('POST', '/v1/partner/grants', one.token, { subject: 'u1', role: 'guest', publicKey: phoneKey('u1'), keyId: k1.id });
      expect(made.status).toBe(201);
      expect(made.json).toMatchObject({ partnerId: one.partner.id, role: 'guest', doors: [unit.id], credentials: [{ lockId: 'lk-0001' }] });
      const beyond = await call('POST', '/v1/partner/grants', one.token, { subject: 'u1', publicKey: phoneKey('u1'), keyId: hubKey.id });
      expect(beyond.status).toBe(409);
      expect(beyond.json.error.code).toBe('PARTNER_GRANT_OUT_OF_SCOPE');
      expect((await call('GET', '/v1/partner/grants', one.token)).json.grants).toHaveLength(1);
      expect((await call('GET', '/v1/partner/grants', two.token)).json.grants).toEqual([]);
      const peek = await call('GET', `/v1/partner/grants/${made.json.id}`, two.token);
      expect([peek.status, peek.json.error.code]).toEqual([404, 'UNKNOWN_GRANT']);
      expect((await call('DELETE', `/v1/partner/grants/${made.json.id}`, two.token)).status).toBe(404);
      expect((await call('GET', '/v1/partner/grants', p.managerToken)).status).toBe(403);
      expect((await call('GET', `/v1/manager/partners/${one.partner.id}/grants`, p.managerToken)).json.grants).toHaveLength(1);
      const gone = await call('DELETE', `/v1/partner/grants/${made.json.id}`, one.token);
      expect([gone.status, gone.json]).toEqual([200, { revoked: made.json.id }]);
      expect((await call('GET', '/v1/partner/grants', one.token)).json.grants).toEqual([]);
    } finally {
      await s.close();
    }
  });
});
