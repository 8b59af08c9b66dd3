// Device tokens expire and rotate; a partner's termination kills its tokens; every 401
// names its reason — in the API and over HTTP.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deriveSeed32, keyPairFromSeed, toHex } from '../protocol';
import { AuthorityError } from './errors';
import { startAuthorityServer } from './server';
import { tempProperty, type TempProperty } from './test-support';

let p: TempProperty;
beforeEach(() => {
  p = tempProperty({ deviceTokenSeconds: 3_600 });
});
afterEach(() => p.cleanup());

const pk = (label: string): string => toHex(keyPairFromSeed(deriveSeed32('tokens', label)).publicKey);

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AuthorityError);
    expect((e as AuthorityError).code).toBe('UNAUTHORIZED');
    return String((e as AuthorityError).details?.['reason']);
  }
  throw new Error('expected UNAUTHORIZED, the token was accepted');
}

describe('device tokens', () => {
  it('expire after their lifetime; rotation before then gives a fresh lifetime and retires the old token', () => {
    const a = p.authority;
    const ann = a.addUser({ name: 'Ann' });
    const dev = a.enrolUserDevice(ann.id, pk('ann'));
    expect(dev.tokenExpiresAt).toBe(p.clock.t + 3_600);
    expect(a.authenticate(dev.token)).toMatchObject({ kind: 'device', deviceId: dev.deviceId });
    p.clock.t += 3_000;
    const fresh = a.rotateDeviceToken(dev.deviceId);
    expect(fresh.tokenExpiresAt).toBe(p.clock.t + 3_600);
    expect(reasonOf(() => a.authenticate(dev.token))).toBe('ROTATED');
    p.clock.t += 3_599;
    expect(a.authenticate(fresh.token)).toMatchObject({ deviceId: dev.deviceId });
    p.clock.t += 1;
    expect(reasonOf(() => a.authenticate(fresh.token))).toBe('EXPIRED');
    // the manager can still issue a new one for an expired device
    expect(a.authenticate(a.rotateDeviceToken(dev.deviceId).token)).toMatchObject({ deviceId: dev.deviceId });
  });

  it('names every other refusal: missing, malformed, unknown, revoked; a revoked device cannot rotate', () => {
    const a = p.authority;
    expect(reasonOf(() => a.authenticate(undefined))).toBe('MISSING');
    expect(reasonOf(() => a.authenticate('Bearer x'))).toBe('MALFORMED');
    expect(reasonOf(() => a.authenticate('lst_00'))).toBe('UNKNOWN');
    const { partner, token: partnerToken } = a.authorizePartner('HomeHub');
    const dev = a.enrolPartnerDevice(partner.id, pk('hub'));
    const staff = a.addUser({ name: 'Sam', role: 'staff' });
    const phone = a.enrolUserDevice(staff.id, pk('sam'));
    a.revokeDevice(phone.deviceId);
    expect(reasonOf(() => a.authenticate(phone.token))).toBe('UNKNOWN'); // its row is gone with it
    const rotated = a.rotatePartnerToken(partner.id);
    expect(reasonOf(() => a.authenticate(partnerToken))).toBe('ROTATED');
    expect(a.authenticate(rotated.token)).toEqual({ kind: 'partner', partnerId: partner.id });
    // terminating the partner revokes its API token and its devices' tokens
    a.terminatePartner(partner.id);
    expect(reasonOf(() => a.authenticate(rotated.token))).toBe('PARTNER_TERMINATED');
    expect(reasonOf(() => a.authenticate(dev.token))).toBe('PARTNER_TERMINATED');
    expect(() => a.rotateDeviceToken(dev.deviceId)).toThrow(/terminated/);
  });

  it('over HTTP: 401 with the reason; a device rotates its own token', async () => {
    const a = p.authority;
    const ann = a.addUser({ name: 'Ann' });
    const dev = a.enrolUserDevice(ann.id, pk('ann'));
    const s = await startAuthorityServer({ dbPath: p.dbPath, port: 0, authority: a });
    try {
      const call = async (method: string, path: string, token: string) => {
        const res = await fetch(`${s.url}${path}`, { method, headers: { authorization: `Bearer ${token}` } });
        return { status: res.status, json: (await res.json()) as any };
      };
      const rot = await call('POST', '/v1/me/token', dev.token);
      expect(rot.status).toBe(201);
      expect(rot.json).toMatchObject({ deviceId: dev.deviceId, tokenExpiresAt: p.clock.t + 3_600 });
      const old = await call('GET', '/v1/me', dev.token);
      expect([old.status, old.json.error.code, old.json.error.details.reason]).toEqual([401, 'UNAUTHORIZED', 'ROTATED']);
      expect((await call('GET', '/v1/me', rot.json.token)).status).toBe(200);
      p.clock.t += 3_600;
      const late = await call('GET', '/v1/me', rot.json.token);
      expect([late.status, late.json.error.details.reason]).toEqual([401, 'EXPIRED']);
      const byManager = await call('POST', `/v1/manager/devices/${dev.deviceId}/token`, p.managerToken);
      expect((await call('GET', '/v1/me', byManager.json.token)).status).toBe(200);
    } finally {
      await s.close();
    }
  });
});
