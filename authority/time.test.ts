// The authority's side of SPEC §8: signed time names the lock's current table (so only a
// lock holding it refreshes its lease), and the root-signed floor reset.
import { afterEach, describe, expect, it } from 'vitest';
import { checkFloorReset, checkSignedTime, decodeMessage, fromHex } from '../protocol';
import { AuthorityError } from './errors';
import { SimLock, type TempProperty, tempProperty } from './test-support';

let p: TempProperty;
afterEach(() => p?.cleanup());

function timeOf(hex: string) {
  const m = decodeMessage(fromHex(hex));
  if (m.type !== 'signedTime') throw new Error(`expected signedTime, got ${m.type}`);
  return m;
}

describe('signed time names the table current for the lock', () => {
  it('refreshes the lease of a lock holding that table; not of one a revocation has not reached', () => {
    p = tempProperty();
    const a = p.authority;
    const d = a.addDoor({ name: 'Lobby' });
    const lock = new SimLock(a.provisionLock(d.id));
    const u = a.addUser({ name: 'Ann' });
    const k = a.createKey({ name: 'K', doors: [{ doorId: d.id }] });
    a.assignKey(u.id, k.id);
    lock.sync(a);
    const nonce = new Uint8Array(16).fill(3);
    p.clock.t += 60;
    const t1 = timeOf(a.signedTime(lock.bundle.lockId, Buffer.from(nonce).toString('hex')));
    expect(t1.body).toMatchObject({ version: lock.version, time: p.clock.t });
    expect(checkSignedTime(lock.state, t1, { nonce, used: false })).toMatchObject({ leaseRefreshed: true, leaseAnchor: p.clock.t });
    // A change the lock has not received yet: the time names the newer version.
    a.unassignKey(u.id, k.id);
    p.clock.t += 60;
    const t2 = timeOf(a.signedTime(lock.bundle.lockId));
    expect(t2.body.version).toBe(lock.version + 1);
    expect(t2.body.nonce).toBeUndefined();
    expect(checkSignedTime(lock.state, t2, { nonce, used: false })).toMatchObject({ leaseRefreshed: false, newestIssuedAt: p.clock.t });
    lock.sync(a);
    expect(checkSignedTime(lock.state, t2, { nonce, used: false }).leaseRefreshed).toBe(true);
  });
});

describe('reset-floor', () => {
  it('signs a floor reset with the offline root for one session; refuses bad input with a named code', () => {
    p = tempProperty();
    const a = p.authority;
    const lock = new SimLock(a.provisionLock(a.addDoor({ name: 'Lobby' }).id));
    const nonce = new Uint8Array(16).fill(5);
    const r = a.floorReset(lock.bundle.lockId, Buffer.from(nonce).toString('hex'), { versionFloor: 4 });
    expect(r).toMatchObject({ lockId: lock.bundle.lockId, time: p.clock.t, versionFloor: 4 });
    const m = decodeMessage(fromHex(r.floorReset));
    if (m.type !== 'floorReset') throw new Error('floorReset expected');
    expect(checkFloorReset(lock.state, m, { nonce, used: false })).toMatchObject({ versionFloor: 4, newestIssuedAt: p.clock.t });
    expect(() => checkFloorReset(lock.state, m, { nonce: new Uint8Array(16), used: false })).toThrow(expect.objectContaining({ reason: 'BAD_NONCE' }));
    expect(() => a.floorReset('lk-9999', Buffer.from(nonce).toString('hex'), { versionFloor: 0 })).toThrow(AuthorityError);
    expect(() => a.floorReset(lock.bundle.lockId, 'abcd', { versionFloor: 0 })).toThrow(AuthorityError);
    expect(() => a.floorReset(lock.bundle.lockId, Buffer.from(nonce).toString('hex'), { versionFloor: -1 })).toThrow(AuthorityError);
  });
});
