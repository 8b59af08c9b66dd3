// The partner and token commands as a user runs them: separate processes, one error line,
// the documented exit code, and a refused command leaving the property unchanged.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Authority } from './authority';
import { expectFailure, locksync, tempDir } from '../test/failure-paths/harness';

const dir = tempDir('locksync-authority-partners-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const db = join(dir, 'p.db');
const PK = '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c';
const run = (...args: string[]) => locksync(['authority', ...args, '--db', db], { deadlineMs: 60_000 });
const json = async (...args: string[]) => {
  const r = await run(...args, '--json');
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string);
};
const state = (): string => {
  const a = Authority.open({ dbPath: db });
  try {
    return JSON.stringify([a.listPartners(), a.listKeys(), a.listLocks(), a.partnerGrants(1)]);
  } finally {
    a.close();
  }
};

describe('locksync authority partner … / device rotate-token', () => {
  it('register → assign refused (13), authorize → grant on its key, beyond it refused (13), rotate a token', async () => {
    await json('init', '--seed', 'cli-partners');
    const door = await json('door', 'add', '--name', 'Unit 4B');
    await json('provision-lock', '--door', String(door.id));
    const pending = await json('partner', 'register', '--name', 'HomeHub');
    expect(pending.status).toBe('pending');
    let before = state();
    expectFailure(await run('partner', 'assign-door', '--partner', String(pending.id), '--door', String(door.id)), 'AUTHORITY_REFUSED', /PARTNER_NOT_AUTHORIZED/);
    expect(state()).toBe(before);
    await json('partner', 'authorize', '--name', 'HomeHub');
    const key = await json('partner', 'key', '--partner', String(pending.id), '--name', 'HomeHub units', '--door', String(door.id));
    const grant = await json('partner', 'grant', '--partner', String(pending.id), '--subject', 'hh-17', '--role', 'courier', '--public-key', PK, '--key', String(key.id));
    expect(grant).toMatchObject({ keyId: key.id, doors: [door.id], credentials: [{ lockId: 'lk-0001' }] });
    before = state();
    expectFailure(await run('partner', 'grant', '--partner', String(pending.id), '--subject', 'x', '--public-key', PK, '--doors', String(door.id)), 'AUTHORITY_REFUSED', /PARTNER_GRANT_OUT_OF_SCOPE/);
    expectFailure(await run('partner', 'grant', '--partner', String(pending.id), '--subject', 'x', '--role', 'landlord', '--public-key', PK, '--key', String(key.id)), 'USAGE', /--role/);
    expect(state()).toBe(before);
    expect((await json('partner', 'grants', '--partner', String(pending.id))).map((g: { id: number }) => g.id)).toEqual([grant.id]);
    const dev = await json('device', 'enrol', '--partner', String(pending.id), '--public-key', '8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c');
    const rotated = await json('device', 'rotate-token', '--device', String(dev.deviceId));
    expect(rotated.token).not.toBe(dev.token);
    expect(rotated.tokenExpiresAt).toBeGreaterThan(0);
    expectFailure(await run('device', 'rotate-token', '--device', '99'), 'AUTHORITY_REFUSED', /UNKNOWN_DEVICE/);
    expect(await json('partner', 'revoke-grant', '--partner', String(pending.id), '--grant', String(grant.id))).toEqual({ revoked: grant.id });
  }, 180_000);
});
