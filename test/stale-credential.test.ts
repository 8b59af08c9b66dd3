// When a phone's access to a door moves from one grant to another, its app holds the current
// grants first and keeps the older ones behind them; the agent presents them in that order
// and moves on after UNKNOWN_CREDENTIAL or EXPIRED, so a lock that has (or has not yet)
// synced the change admits the phone by whichever entry it holds for the same phone key.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { World } from '../world/index';
import { candidateCredentials, RETRY_WITH_NEXT_CREDENTIAL } from '../mobile-agent/credential';

describe('stale phone credentials', () => {
  let world: World;
  let userId: number;
  let keyA: number;
  let keyB: number;
  beforeAll(async () => {
    world = await World.create({ seed: 'stale-credential', doors: [{ name: 'pool' }], phones: ['carol'] });
    const a = world.authority;
    const door = world.door('pool');
    keyA = a.createKey({ name: 'Amenities', doors: [{ doorId: door.doorId, doorcodesEnabled: false }] }).id;
    keyB = a.createKey({ name: 'Staff', doors: [{ doorId: door.doorId, doorcodesEnabled: false }] }).id;
    userId = a.addUser({ name: 'Carol', role: 'staff' }).id;
    a.assignKey(userId, keyA);
    a.assignKey(userId, keyB);
    world.enrolPhone('carol', { userId });
    world.moveTo('carol', 'pool');
    await world.sync('carol', 'pool');
  });
  afterAll(async () => world?.close());

  it('the phone lists the grants the authority issues now before the ones it kept', () => {
    const door = world.door('pool');
    const before = candidateCredentials(world.credentialOf('carol'), door.lockId);
    expect(before).toHaveLength(2);
    world.authority.unassignKey(userId, keyA);
    const current = world.authority.credentialsForDevice(world.phone('carol').deviceId as number).map((g) => g.credId);
    expect(current).toHaveLength(1);
    const after = candidateCredentials(world.credentialOf('carol'), door.lockId);
    expect(after).toHaveLength(2);
    expect(after[0]).toBe(current[0]);
    expect(after[1]).toBe(before.find((id) => id !== current[0]));
  });

  it('after the sync the lock holds only the remaining entry and the phone is admitted at the first try', async () => {
    await world.sync('carol', 'pool');
    const r = await world.unlock('carol', 'pool', { passiveSync: false });
    expect(r.reason).toBe('GRANTED');
    expect(r.attempts).toHaveLength(1);
  });

  it('an id the lock does not hold is followed by the next one; the granted id is reported', async () => {
    const door = world.door('pool');
    const c = world.credentialOf('carol');
    const live = candidateCredentials(c, door.lockId)[0] as number;
    const unknown = { lockId: door.lockId, credId: 0x7fff_fff0 };
    const r = await world.unlock('carol', 'pool', { passiveSync: false, credential: { ...c, credentials: [unknown, { lockId: door.lockId, credId: live }] } });
    expect(r.attempts).toEqual([
      { credId: unknown.credId, reason: 'UNKNOWN_CREDENTIAL' },
      { credId: live, reason: 'GRANTED' },
    ]);
    expect(r).toMatchObject({ granted: true, credId: live, reason: 'GRANTED' });
  });

  it('when no id is honoured the first refusal stands, and every id was tried once', async () => {
    const door = world.door('pool');
    const c = world.credentialOf('carol');
    const ids = [0x7fff_fff1, 0x7fff_fff2];
    const r = await world.unlock('carol', 'pool', { passiveSync: false, credential: { ...c, credentials: ids.map((credId) => ({ lockId: door.lockId, credId })) } });
    expect(r).toMatchObject({ granted: false, reason: 'UNKNOWN_CREDENTIAL', credId: ids[0] });
    expect(r.attempts.map((a) => a.credId)).toEqual(ids);
  });

  it('only refusals about the presented id move on', () => {
    expect([...RETRY_WITH_NEXT_CREDENTIAL].sort()).toEqual(['EXPIRED', 'UNKNOWN_CREDENTIAL']);
  });
});
