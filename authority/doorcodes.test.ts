// Doorcodes follow Keys: a doorcode belongs to the (user, door), exists while any of the
// user's Keys has doorcodes on at that door, and is judged at the lock by the lock's own
// decision code (firmware-sim decideCode) on the table the authority served.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fromHex } from '../protocol';
import { decideCode } from '../firmware-sim/access';
import type { Authority } from './authority';
import { SimLock, tempProperty, type TempProperty } from './test-support';

let p: TempProperty;
beforeEach(() => {
  p = tempProperty();
});
afterEach(() => p.cleanup());

function setup() {
  const a = p.authority;
  const lobby = a.addDoor({ name: 'Lobby', kind: 'communal', connected: true });
  const gym = a.addDoor({ name: 'Gym', kind: 'communal' });
  const unit = a.addDoor({ name: 'Unit 1A', kind: 'private' });
  const locks = Object.fromEntries([lobby, gym, unit].map((d) => [d.name, new SimLock(a.provisionLock(d.id))])) as Record<string, SimLock>;
  return { a, lobby, gym, unit, locks };
}

/** What the lock decides for this code now, on the table it holds after a sync. */
function atLock(a: Authority, lock: SimLock, code: string): string {
  lock.sync(a);
  return decideCode(
    {
      lockId: lock.bundle.lockId,
      table: lock.state.table,
      lockSecret: fromHex(lock.bundle.lockSecret),
      timeZone: 'Europe/Berlin',
      nowMs: p.clock.t * 1000,
      monotonicMs: 0,
      clockTrusted: true,
      leaseAnchorS: p.clock.t,
      singleUse: [],
    },
    code,
  ).reason;
}

const hasCode = (a: Authority, userId: number, doorId: number): boolean => a.user(userId).doorcodeDoors.includes(doorId);

describe('editing a Key issues its keyholders doorcodes', () => {
  it('adding a door with doorcodes on gives every current keyholder a unique code there, working at the lock', () => {
    const { a, lobby, gym, locks } = setup();
    const k = a.createKey({ name: 'Resident', doors: [{ doorId: lobby.id }] });
    const ann = a.addUser({ name: 'Ann' });
    const bob = a.addUser({ name: 'Bob' });
    a.assignKey(ann.id, k.id);
    a.assignKey(bob.id, k.id);
    expect(hasCode(a, ann.id, gym.id)).toBe(false);
    a.setKeyDoor(k.id, { doorId: gym.id, doorcodesEnabled: true });
    const annCode = a.doorcodeOf(ann.id, gym.id);
    const bobCode = a.doorcodeOf(bob.id, gym.id);
    expect(annCode).toMatch(/^\d{7}$/);
    expect(annCode).not.toBe(bobCode);
    expect(atLock(a, locks.Gym!, annCode)).toBe('GRANTED');
    expect(atLock(a, locks.Gym!, bobCode)).toBe('GRANTED');
    // Adding it through a whole door set (updateKey) does the same for a later door.
    const unit = a.listDoors().find((d) => d.name === 'Unit 1A')!;
    a.updateKey(k.id, { doors: [{ doorId: lobby.id }, { doorId: gym.id }, { doorId: unit.id }] });
    expect(hasCode(a, ann.id, unit.id) && hasCode(a, bob.id, unit.id)).toBe(true);
    expect(a.doorcodeOf(ann.id, gym.id)).toBe(annCode); // an unchanged door keeps its code
  });

  it('turning doorcodes on for a door already on the Key issues the codes; off, the lock refuses them; on again, they work', () => {
    const { a, gym, locks } = setup();
    const k = a.createKey({ name: 'Amenities', doors: [{ doorId: gym.id, doorcodesEnabled: false }] });
    const ann = a.addUser({ name: 'Ann' });
    expect(a.assignKey(ann.id, k.id).doorcodes).toEqual([]);
    expect(hasCode(a, ann.id, gym.id)).toBe(false);
    a.setKeyDoor(k.id, { doorId: gym.id, doorcodesEnabled: true });
    const code = a.doorcodeOf(ann.id, gym.id);
    expect(atLock(a, locks.Gym!, code)).toBe('GRANTED');
    // "deactivate doorcode access … and affect all keyholders": the lock refuses it by name
    a.setKeyDoor(k.id, { doorId: gym.id, doorcodesEnabled: false });
    expect(atLock(a, locks.Gym!, code)).toBe('DOORCODES_DISABLED');
    a.setKeyDoor(k.id, { doorId: gym.id, doorcodesEnabled: true });
    expect(a.doorcodeOf(ann.id, gym.id)).toBe(code);
    expect(atLock(a, locks.Gym!, code)).toBe('GRANTED');
    // the Key taken away, the code goes
    a.unassignKey(ann.id, k.id);
    expect(hasCode(a, ann.id, gym.id)).toBe(false);
    expect(atLock(a, locks.Gym!, code)).toBe('WRONG_CODE');
  });
});

describe('a doorcode belongs to the (user, door), not to the first Key', () => {
  function twoKeys() {
    const s = setup();
    const { a, lobby, unit } = s;
    const first = s.a.createKey({ name: 'Resident', doors: [{ doorId: lobby.id }, { doorId: unit.id }] });
    const second = a.createKey({ name: 'Lobby only', doors: [{ doorId: lobby.id }] });
    const ann = a.addUser({ name: 'Ann' });
    a.assignKey(ann.id, first.id);
    expect(a.assignKey(ann.id, second.id).doorcodes).toEqual([]); // she already has one at the lobby
    return { ...s, first, second, ann, code: a.doorcodeOf(ann.id, lobby.id) };
  }

  it('unassigning the Key the code came from keeps it (the other Key still grants it), working at the lock', () => {
    const { a, lobby, unit, locks, first, second, ann, code } = twoKeys();
    a.unassignKey(ann.id, first.id);
    expect(a.doorcodeOf(ann.id, lobby.id)).toBe(code);
    expect(hasCode(a, ann.id, unit.id)).toBe(false); // no other grant there
    expect(atLock(a, locks.Lobby!, code)).toBe('GRANTED');
    const e = [...locks.Lobby!.state.table.entries.values()].find((x) => x.kind === 'doorcode')!;
    expect(e.keyId).toBe(second.id); // now held under the Key that still gives it
    a.unassignKey(ann.id, second.id);
    expect(hasCode(a, ann.id, lobby.id)).toBe(false);
    expect(atLock(a, locks.Lobby!, code)).toBe('WRONG_CODE');
  });

  it('removing the door from that Key (removeKeyDoor or a new door set) keeps the code while another Key grants it', () => {
    const { a, lobby, locks, first, second, ann, code } = twoKeys();
    a.removeKeyDoor(first.id, lobby.id);
    expect(a.doorcodeOf(ann.id, lobby.id)).toBe(code);
    expect(atLock(a, locks.Lobby!, code)).toBe('GRANTED');
    a.updateKey(second.id, { doors: [] });
    expect(hasCode(a, ann.id, lobby.id)).toBe(false);
    expect(atLock(a, locks.Lobby!, code)).toBe('WRONG_CODE');
  });

  it('deleting that Key keeps the code; turning doorcodes off on it moves the code to the Key with them on', () => {
    const { a, lobby, locks, first, second, ann, code } = twoKeys();
    a.setKeyDoor(first.id, { doorId: lobby.id, doorcodesEnabled: false });
    expect(a.doorcodeOf(ann.id, lobby.id)).toBe(code);
    expect(atLock(a, locks.Lobby!, code)).toBe('GRANTED'); // under `second`, whose policy allows codes
    a.setKeyDoor(first.id, { doorId: lobby.id, doorcodesEnabled: true });
    a.deleteKey(second.id);
    expect(a.doorcodeOf(ann.id, lobby.id)).toBe(code);
    expect(atLock(a, locks.Lobby!, code)).toBe('GRANTED');
    a.deleteKey(first.id);
    expect(hasCode(a, ann.id, lobby.id)).toBe(false);
    expect(atLock(a, locks.Lobby!, code)).toBe('WRONG_CODE');
  });

  it('a code revoked by hand is issued again when the user’s Keys change there (each keyholder has one)', () => {
    const { a, lobby, first, ann } = twoKeys();
    a.revokeDoorcode(ann.id, lobby.id);
    expect(hasCode(a, ann.id, lobby.id)).toBe(false);
    a.unassignKey(ann.id, first.id);
    expect(a.doorcodeOf(ann.id, lobby.id)).toMatch(/^\d{7}$/);
  });

  it('a refused edit leaves codes and versions as they were', () => {
    const { a, lobby, locks, first, ann, code } = twoKeys();
    const v = a.currentVersion(locks.Lobby!.bundle.lockId);
    expect(() => a.updateKey(first.id, { doors: [{ doorId: lobby.id }, { doorId: 4242 }] })).toThrow(/no door 4242/);
    expect(a.doorcodeOf(ann.id, lobby.id)).toBe(code);
    expect(a.currentVersion(locks.Lobby!.bundle.lockId)).toBe(v);
  });
});
