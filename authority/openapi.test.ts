// The OpenAPI document against the real server: it validates as OpenAPI (swagger-parser),
// it is served at GET /openapi.json, it describes exactly the routes the server answers, and
// real requests and responses of a whole manager/phone/partner/lock flow conform to it
// (openapi-backend; authority/http.test.ts checks its exchanges the same way).
import SwaggerParser from '@apidevtools/swagger-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveSeed32, keyPairFromSeed, toHex, applyUpdate } from '../protocol';
import { openApiDocument } from './openapi';
import { openApiChecker, type ExchangeChecker } from './openapi-check';
import { type AuthorityServer, startAuthorityServer } from './server';
import { SimLock, decodeUpdate, tempProperty, type TempProperty } from './test-support';

let p: TempProperty;
let s: AuthorityServer;
let check: ExchangeChecker;
const problems: string[] = [];
const seen = new Set<string>();

beforeAll(async () => {
  p = tempProperty();
  s = await startAuthorityServer({ dbPath: p.dbPath, port: 0, authority: p.authority, maxWaitSeconds: 0 });
  check = await openApiChecker();
});
afterAll(async () => {
  await s?.close();
  p?.cleanup();
});

const norm = (path: string): string => path.replace(/\{[^}]*\}/g, '{}');

/** One real call; its request and response are checked against the document. */
async function call(method: string, url: string, token?: string, body?: unknown): Promise<{ status: number; json: any }> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${s.url}${url}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const json = await res.json();
  problems.push(...check({ method, url, headers, body, status: res.status, response: json }));
  seen.add(`${method} ${norm(new URL(url, 'http://x').pathname.replace(/\/(\d+|lk-[0-9a-z-]+)(?=\/|$)/g, '/{}'))}`);
  return { status: res.status, json };
}

describe('OpenAPI document', () => {
  it('is a valid OpenAPI 3.0 document', async () => {
    const api = await SwaggerParser.validate(structuredClone(openApiDocument()) as never);
    expect((api as { openapi?: string }).openapi).toBe('3.0.3');
  });

  it('is served at GET /openapi.json without a token', async () => {
    const r = await call('GET', '/openapi.json');
    expect(r.status).toBe(200);
    expect(r.json).toEqual(openApiDocument());
  });

  it('describes every route the server answers, and only those', () => {
    const doc = openApiDocument() as { paths: Record<string, Record<string, unknown>> };
    const described = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${norm(path)}`)).sort();
    const served = s.routes.map((r) => `${r.method} ${r.path}`).sort();
    expect(served.length).toBeGreaterThan(50);
    expect(described).toEqual(served);
  });

  it('every described operation is answered (not an unknown route or method)', async () => {
    const doc = openApiDocument() as { paths: Record<string, Record<string, unknown>> };
    for (const [path, ops] of Object.entries(doc.paths))
      for (const m of Object.keys(ops)) {
        const url = path.replace('{lockId}', 'lk-0999').replace(/\{\w+\}/g, '999');
        const res = await fetch(`${s.url}${url}`, { method: m.toUpperCase(), headers: { authorization: `Bearer ${p.managerToken}` } });
        const body = (await res.json()) as { error?: { code: string } };
        expect([`${m} ${path}`, body.error?.code]).not.toEqual([`${m} ${path}`, 'NOT_FOUND']);
        expect(body.error?.code, `${m} ${path}`).not.toBe('METHOD_NOT_ALLOWED');
      }
  });

  it('the check catches a response that breaks its schema and a route it does not know', () => {
    const bad = check({ method: 'GET', url: '/v1/manager/doors/1', status: 200, response: { id: 1, name: 'Lobby' } });
    expect(bad.join('\n')).toMatch(/GET \/v1\/manager\/doors\/1 → 200: response .*required property 'kind'/);
    expect(check({ method: 'GET', url: '/v1/nowhere', status: 200, response: {} })).toEqual(['GET /v1/nowhere → 200: no operation in the OpenAPI document']);
    expect(check({ method: 'GET', url: '/v1/nowhere', status: 404, response: { error: { code: 'NOT_FOUND', message: 'no route' } } })).toEqual([]);
    expect(check({ method: 'POST', url: '/v1/manager/doors', body: { kind: 'communal' }, status: 201, response: { id: 1 } }).join('\n')).toMatch(/request .*name/);
    const grant = { id: 1, partnerId: 1, subject: 'flat 12', role: 'guest', publicKey: 'ab'.repeat(32), keyId: null, allDoors: false, doors: [2], credentials: [{ lockId: 'lk-1', credId: 3 }] };
    expect(check({ method: 'GET', url: '/v1/partner/grants/1', status: 200, response: grant })).toEqual([]);
    expect(check({ method: 'GET', url: '/v1/partner/grants/1', status: 200, response: { ...grant, secretKey: '00' } }).join('\n')).toMatch(/additional properties/);
    expect(check({ method: 'GET', url: '/v1/partner/grants/1', status: 200, response: { ...grant, role: 'staff' } }).join('\n')).toMatch(/\/role/);
    expect(check({ method: 'GET', url: '/v1/partner/grants/1', status: 404, response: { error: { code: 'UNKNOWN_KEY', message: 'x' } } }).join('\n')).toMatch(/code/);
    expect(check({ method: 'GET', url: '/v1/partner', status: 401, response: { error: { code: 'UNAUTHORIZED', message: 'x', details: { reason: 'STOLEN' } } } }).join('\n')).toMatch(/reason/);
    expect(check({ method: 'POST', url: '/v1/partner/grants', body: { subject: 'x', publicKey: 'ab'.repeat(32), doorIds: [2], extra: 1 }, status: 201, response: grant }).join('\n')).toMatch(/request .*additional/);
    expect(check({ method: 'POST', url: '/v1/me/token', status: 201, response: { deviceId: 1, token: 'lst_x' } }).join('\n')).toMatch(/tokenExpiresAt/);
    expect(check({ method: 'GET', url: '/v1/manager/doors', status: 503, response: { error: { code: 'STORAGE_UNAVAILABLE', message: 'x' } } })).toEqual([]);
  });

  it('a whole flow of real requests and responses conforms to the document', async () => {
    const M = p.managerToken;
    expect(await call('GET', '/v1/health')).toMatchObject({ status: 200, json: { status: 'ok' } });
    expect((await call('GET', '/v1/manager/property', M)).status).toBe(200);
    expect((await call('PATCH', '/v1/manager/property', M, { name: 'Elm Court' })).status).toBe(200);
    const lobby = (await call('POST', '/v1/manager/doors', M, { name: 'Lobby', kind: 'communal', connected: true })).json;
    const unit = (await call('POST', '/v1/manager/doors', M, { name: 'Unit 1', kind: 'private' })).json;
    expect((await call('PATCH', `/v1/manager/doors/${unit.id}`, M, { name: 'Unit 1A' })).status).toBe(200);
    await call('GET', '/v1/manager/doors', M);
    await call('GET', `/v1/manager/doors/${unit.id}`, M);
    const key = (await call('POST', '/v1/manager/keys', M, { name: 'Residents', doors: [{ doorId: lobby.id }, { doorId: unit.id, schedule: [{ days: ['weekdays'], start: '06:00', end: '22:00' }] }] })).json;
    await call('GET', '/v1/manager/keys', M);
    await call('GET', `/v1/manager/keys/${key.id}`, M);
    await call('PATCH', `/v1/manager/keys/${key.id}`, M, { name: 'Residents A' });
    await call('PUT', `/v1/manager/keys/${key.id}/doors/${unit.id}`, M, { doorcodesEnabled: true });
    const user = (await call('POST', '/v1/manager/users', M, { name: 'Ann' })).json;
    await call('GET', '/v1/manager/users', M);
    expect((await call('POST', `/v1/manager/users/${user.id}/keys`, M, { keyId: key.id, mayShare: true })).status).toBe(201);
    await call('PATCH', `/v1/manager/users/${user.id}/keys/${key.id}`, M, { mayShare: true });
    await call('GET', `/v1/manager/users/${user.id}`, M);
    await call('POST', `/v1/manager/users/${user.id}/doorcodes`, M, { doorId: unit.id, code: '4827163' });
    const card = (await call('POST', `/v1/manager/users/${user.id}/keycards`, M, { uid: '04a1b2c3' })).json;
    await call('POST', `/v1/manager/doors/${unit.id}/daily-codes`, M, { kind: 'daily' });
    const bundle = (await call('POST', '/v1/manager/locks', M, { doorId: unit.id })).json;
    const lobbyBundle = (await call('POST', '/v1/manager/locks', M, { doorId: lobby.id })).json;
    const lock = new SimLock(bundle);
    const reg = (await call('POST', `/v1/manager/locks/${bundle.lockId}/device`, M, { publicKey: toHex(lock.device.publicKey) })).json;
    const lobbyLock = new SimLock(lobbyBundle);
    const lobbyReg = (await call('POST', `/v1/manager/locks/${lobbyBundle.lockId}/device`, M, { publicKey: toHex(lobbyLock.device.publicKey) })).json;
    const phone = keyPairFromSeed(deriveSeed32('openapi', 'phone'));
    const dev = (await call('POST', `/v1/manager/users/${user.id}/devices`, M, { publicKey: toHex(phone.publicKey) })).json;
    // the phone: updates, receipt, signed time, audit, its own views
    const up = (await call('GET', `/v1/locks/${bundle.lockId}/updates?from=0`, dev.token)).json;
    for (const m of up.messages) {
      const r = applyUpdate(lock.state, decodeUpdate(m));
      if (r.ok) lock.state = r.state;
    }
    expect((await call('POST', `/v1/locks/${bundle.lockId}/receipts`, dev.token, { receipt: lock.receipt() })).status).toBe(200);
    await call('GET', `/v1/locks/${bundle.lockId}/time?nonce=${'00'.repeat(16)}`, dev.token);
    await call('POST', `/v1/locks/${bundle.lockId}/audit`, dev.token, { export: 'a0' });
    expect((await call('POST', `/v1/locks/${bundle.lockId}/relay`, dev.token, { receipt: lock.receipt(), export: 'a0' })).json).toMatchObject({ receipt: { status: 200 }, audit: { status: 422 } });
    await call('GET', '/v1/me', dev.token);
    await call('GET', '/v1/me/credentials', dev.token);
    const guest = (await call('POST', '/v1/me/guests', dev.token, { name: 'Gus', doorIds: [unit.id] })).json;
    await call('DELETE', `/v1/me/guests/${guest.guest.id}`, dev.token);
    // the phone rotates its token: the old one is refused as ROTATED; the manager issues another
    const rotated = await call('POST', '/v1/me/token', dev.token);
    expect(rotated.status).toBe(201);
    expect((await call('GET', '/v1/me', dev.token)).json.error.details.reason).toBe('ROTATED');
    const reissued = await call('POST', `/v1/manager/devices/${dev.deviceId}/token`, M);
    expect(reissued.json.deviceId).toBe(dev.deviceId);
    expect((await call('GET', '/v1/me', rotated.json.token)).json.error.details.reason).toBe('ROTATED');
    expect((await call('GET', '/v1/me', reissued.json.token)).status).toBe(200);
    const guest2 = (await call('POST', `/v1/manager/users/${user.id}/guests`, M, { name: 'Gia', doorIds: [unit.id] })).json;
    await call('DELETE', `/v1/manager/guests/${guest2.guest.id}`, M);
    // the connected lobby's uplink
    expect((await call('GET', `/v1/uplink/${lobbyBundle.lockId}?from=0&wait=0`, lobbyReg.token)).status).toBe(200);
    void reg;
    // partners
    const partner = (await call('POST', '/v1/manager/partners', M, { name: 'ParcelCo' })).json;
    await call('GET', '/v1/manager/partners', M);
    await call('GET', `/v1/manager/partners/${partner.partner.id}`, M);
    await call('PUT', `/v1/manager/doors/${unit.id}/partners/${partner.partner.id}`, M);
    await call('GET', '/v1/partner', partner.token);
    const pdev = (await call('POST', '/v1/partner/devices', partner.token, { publicKey: toHex(keyPairFromSeed(deriveSeed32('openapi', 'van')).publicKey) })).json;
    await call('POST', `/v1/manager/partners/${partner.partner.id}/devices`, M, { publicKey: toHex(keyPairFromSeed(deriveSeed32('openapi', 'van-2')).publicKey) });
    await call('GET', '/v1/partner/credentials', partner.token);
    // partner-issued access: its own users, within its scope, its own grants only
    const userKey = toHex(keyPairFromSeed(deriveSeed32('openapi', 'flat-12')).publicKey);
    const grant = await call('POST', '/v1/partner/grants', partner.token, { subject: 'flat 12', role: 'guest', publicKey: userKey, doorIds: [unit.id], validUntil: 2_000_000_000 });
    expect([grant.status, grant.json.doors]).toEqual([201, [unit.id]]);
    const beyond = await call('POST', '/v1/partner/grants', partner.token, { subject: 'flat 13', publicKey: userKey, doorIds: [lobby.id] });
    expect([beyond.status, beyond.json.error.code]).toEqual([409, 'PARTNER_GRANT_OUT_OF_SCOPE']);
    expect((await call('GET', '/v1/partner/grants', partner.token)).json.grants.map((g: { id: number }) => g.id)).toEqual([grant.json.id]);
    expect((await call('GET', `/v1/partner/grants/${grant.json.id}`, partner.token)).json).toEqual(grant.json);
    expect((await call('GET', `/v1/manager/partners/${partner.partner.id}/grants`, M)).json.grants).toEqual([grant.json]);
    // another partner: registered only (pending, no token, not assignable), then authorized
    const other = await call('POST', '/v1/manager/partners', M, { name: 'OtherCo', authorized: false });
    expect([other.status, other.json.partner.status, 'token' in other.json]).toEqual([201, 'pending', false]);
    expect((await call('PUT', `/v1/manager/doors/${unit.id}/partners/${other.json.partner.id}`, M)).json.error.code).toBe('PARTNER_NOT_AUTHORIZED');
    const otherToken = (await call('POST', '/v1/manager/partners', M, { name: 'OtherCo' })).json.token as string;
    expect((await call('GET', `/v1/partner/grants/${grant.json.id}`, otherToken)).json.error.code).toBe('UNKNOWN_GRANT');
    expect((await call('DELETE', `/v1/partner/grants/${grant.json.id}`, otherToken)).status).toBe(404);
    expect((await call('DELETE', `/v1/partner/grants/${grant.json.id}`, partner.token)).json).toEqual({ revoked: grant.json.id });
    expect((await call('GET', `/v1/partner/grants/${grant.json.id}`, partner.token)).status).toBe(404);
    // the partner rotates its API token; the manager can issue it another
    const newPartnerToken = (await call('POST', '/v1/partner/token', partner.token)).json.token as string;
    expect((await call('GET', '/v1/partner', partner.token)).json.error.details.reason).toBe('ROTATED');
    const managerIssued = (await call('POST', `/v1/manager/partners/${partner.partner.id}/token`, M)).json.token as string;
    expect((await call('GET', '/v1/partner', newPartnerToken)).status).toBe(401);
    expect((await call('GET', '/v1/partner', managerIssued)).status).toBe(200);
    await call('GET', `/v1/manager/devices/${pdev.deviceId}/credentials`, M);
    const refused = await call('POST', `/v1/manager/partners/${partner.partner.id}/terminate`, M);
    expect(refused.json.error.code).toBe('PARTNER_STILL_ASSIGNED');
    await call('DELETE', `/v1/manager/doors/${unit.id}/partners/${partner.partner.id}`, M);
    await call('GET', `/v1/manager/partners/${partner.partner.id}/honouring`, M);
    await call('GET', '/v1/manager/revocations/pending', M);
    await call('POST', `/v1/manager/partners/${partner.partner.id}/terminate`, M);
    // views, audit, keys
    await call('GET', '/v1/manager/locks', M);
    await call('GET', `/v1/manager/locks/${bundle.lockId}/audit`, M);
    expect((await call('GET', `/v1/manager/doors/${unit.id}/audit?from=0&grantedOnly=false`, M)).status).toBe(200);
    await call('POST', '/v1/manager/signing-key/rotate', M);
    // removals
    await call('DELETE', `/v1/manager/devices/${pdev.deviceId}`, M);
    await call('DELETE', `/v1/manager/keycards/${card.id}`, M);
    await call('DELETE', `/v1/manager/users/${user.id}/doorcodes/${unit.id}`, M);
    await call('DELETE', `/v1/manager/users/${user.id}/keys/${key.id}`, M);
    await call('DELETE', `/v1/manager/keys/${key.id}/doors/${unit.id}`, M);
    await call('DELETE', `/v1/manager/keys/${key.id}`, M);
    await call('DELETE', `/v1/manager/users/${user.id}`, M);
    const spare = (await call('POST', '/v1/manager/doors', M, { name: 'Spare' })).json;
    await call('DELETE', `/v1/manager/doors/${spare.id}`, M);
    // refusals are described too
    expect((await call('GET', '/v1/manager/doors', 'lst_wrong')).json.error.details.reason).toBe('UNKNOWN');
    expect((await call('GET', '/v1/manager/doors', 'wrong')).json.error.details.reason).toBe('MALFORMED');
    expect((await call('GET', '/v1/manager/doors')).json.error.details.reason).toBe('MISSING');
    expect((await call('POST', '/v1/manager/keys', M, { name: '' })).status).toBe(400);

    expect(problems).toEqual([]);
    const doc = openApiDocument() as { paths: Record<string, Record<string, unknown>> };
    const all = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${norm(path)}`));
    expect(all.filter((op) => !seen.has(op))).toEqual([]);
  });
});
