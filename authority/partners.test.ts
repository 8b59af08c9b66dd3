// OpenDOOR partners at the authority: authorized before anything else.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuthorityError } from './errors';
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
