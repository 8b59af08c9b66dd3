// The HTTP API end to end on an ephemeral 127.0.0.1 port: manager setup, a phone carrying
// an update and a receipt, the long-poll uplink, partner routes, and auth failures.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AUDIT_GENESIS, deriveSeed32, keyPairFromSeed, toHex } from '../protocol';
import { type AuthorityServer, startAuthorityServer } from './server';
import { SimLock, decodeUpdate, tempProperty, type TempProperty } from './test-support';
import { applyUpdate } from '../protocol';
import { openApiChecker, type ExchangeChecker } from './openapi-check';

// Every exchange below is also checked against the OpenAPI document (authority/openapi.ts).
const checkExchange: ExchangeChecker = await openApiChecker();
let nonConforming: string[] = [];

let p: TempProperty;
let s: AuthorityServer;
beforeEach(async () => {
  p = tempProperty();
  s = await startAuthorityServer({ dbPath: p.dbPath, port: 0, authority: p.authority, maxWaitSeconds: 10, pollIntervalMs: 50 });
});
afterEach(async () => {
  await s.close();
  p.cleanup();
  const found = nonConforming;
  nonConforming = [];
  expect(found, 'requests/responses that do not match the OpenAPI document').toEqual([]);
});

async function call(method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; json: any }> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${s.url}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const json = await res.json();
  nonConforming.push(...checkExchange({ method, url: path, headers, body, status: res.status, response: json }));
  return { status: res.status, json };
}

describe('authority HTTP API', () => {
  it('GET /v1/health answers {status: "ok"} without a token; a refused token is still refused', async () => {
    expect(await call('GET', '/v1/health')).toEqual({ status: 200, json: { status: 'ok' } });
    expect(await call('GET', '/v1/health', p.managerToken)).toEqual({ status: 200, json: { status: 'ok' } });
    const bad = await call('GET', '/v1/health', 'lst_not-a-token');
    expect(bad.status).toBe(401);
  });

  it('listens on 127.0.0.1 only by default', () => {
    expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('manager setup, phone sync with receipt, signed time and audit, pending view', async () => {
    const M = p.managerToken;
    const door = (await call('POST', '/v1/manager/doors', M, { name: 'Lobby', kind: 'communal' })).json;
    const key = await call('POST', '/v1/manager/keys', M, { name: 'Residents', doors: [{ doorId: door.id, schedule: [{ days: ['weekdays'], start: '06:00', end: '22:00' }] }] });
    expect(key.status).toBe(201);
    const user = (await call('POST', '/v1/manager/users', M, { name: 'Ann' })).json;
    expect((await call('POST', `/v1/manager/users/${user.id}/keys`, M, { keyId: key.json.id, mayShare: true })).status).toBe(201);
    const bundle = (await call('POST', '/v1/manager/locks', M, { doorId: door.id })).json;
    expect(bundle).toMatchObject({ lockId: 'lk-0001', timeZone: 'Europe/Berlin' });
    const lock = new SimLock(bundle);
    const reg = (await call('POST', `/v1/manager/locks/${bundle.lockId}/device`, M, { publicKey: toHex(lock.device.publicKey) })).json;
    const phone = keyPairFromSeed(deriveSeed32('http', 'phone'));
    const dev = (await call('POST', `/v1/manager/users/${user.id}/devices`, M, { publicKey: toHex(phone.publicKey) })).json;
    expect(dev.token).toMatch(/^lst_/);

    // the phone fetches the update, the lock applies it, the phone relays the receipt
    const up = await call('GET', `/v1/locks/${bundle.lockId}/updates?from=0`, dev.token);
    expect(up.status).toBe(200);
    expect(up.json).toMatchObject({ lockId: bundle.lockId, from: 0 });
    for (const m of up.json.messages) {
      const r = applyUpdate(lock.state, decodeUpdate(m));
      expect(r.ok).toBe(true);
      if (r.ok) lock.state = r.state;
    }
    expect(lock.version).toBe(up.json.to);
    const me = (await call('GET', '/v1/me/credentials', dev.token)).json;
    expect(me.credentials).toEqual([{ lockId: bundle.lockId, credId: [...lock.state.table.entries.values()].find((e) => e.kind === 'phone')!.credId, deviceId: dev.deviceId }]);
    const rc = await call('POST', `/v1/locks/${bundle.lockId}/receipts`, dev.token, { receipt: lock.receipt() });
    expect(rc).toEqual({ status: 200, json: { lockId: bundle.lockId, version: lock.version, inForce: true } });
    const t = await call('GET', `/v1/locks/${bundle.lockId}/time?nonce=${'ab'.repeat(16)}`, dev.token);
    expect(t.json.signedTime).toMatch(/^[0-9a-f]+$/);
    expect((await call('GET', `/v1/locks/${bundle.lockId}/time?nonce=${'ab'.repeat(16)}`)).status).toBe(401);
    const unsigned = await call('POST', `/v1/locks/${bundle.lockId}/audit`, reg.token, { export: toHex(new Uint8Array([0xa3, 0x00, 0x0c, 0x01, 0x58, 0x20, ...new Uint8Array(32), 0x02, 0x80])) });
    expect(unsigned.status).toBe(422);
    expect(unsigned.json.error).toMatchObject({ code: 'BAD_AUDIT', details: { reason: 'MALFORMED' } });
    const audit = await call('POST', `/v1/locks/${bundle.lockId}/audit`, reg.token, { export: lock.auditExport(AUDIT_GENESIS, [], { oldestSeq: 0 }) });
    expect(audit).toEqual({ status: 200, json: { accepted: 0, anchoredThrough: null } });
    // Receipt and export in one call: each answered as on its own route; a refused one holds back nothing.
    const both = await call('POST', `/v1/locks/${bundle.lockId}/relay`, reg.token, { receipt: lock.receipt({ signer: phone.secretKey }), export: lock.auditExport(AUDIT_GENESIS, [], { oldestSeq: 0 }) });
    expect(both.status).toBe(200);
    expect(both.json.receipt).toMatchObject({ status: 422, error: { code: 'BAD_RECEIPT', details: { reason: 'BAD_SIGNATURE' } } });
    expect(both.json.audit).toEqual({ status: 200, result: { accepted: 0, anchoredThrough: null } });
    const good = await call('POST', `/v1/locks/${bundle.lockId}/relay`, dev.token, { receipt: lock.receipt() });
    expect(good).toEqual({ status: 200, json: { receipt: { status: 200, result: { lockId: bundle.lockId, version: lock.version, inForce: true } } } });
    expect((await call('POST', `/v1/locks/${bundle.lockId}/relay`, dev.token, {})).status).toBe(400);
    expect((await call('POST', `/v1/locks/${bundle.lockId}/relay`, undefined, { receipt: lock.receipt() })).status).toBe(401);

    // the resident invites a guest from the phone; the manager revokes the Key
    const inv = await call('POST', '/v1/me/guests', dev.token, { name: 'Gus', doorIds: [door.id] });
    expect(inv.status).toBe(201);
    await call('DELETE', `/v1/manager/users/${user.id}/keys/${key.json.id}`, M);
    const pending = (await call('GET', '/v1/manager/revocations/pending', M)).json.pending;
    expect(pending.map((x: { holder: string }) => x.holder)).toContain('resident');
    // without a Key at that door the phone may still carry its own removal, then no more
    const own = await call('GET', `/v1/locks/${bundle.lockId}/updates?from=${lock.version}`, dev.token);
    expect(own.status).toBe(200);
    for (const m of own.json.messages) {
      const r = applyUpdate(lock.state, decodeUpdate(m));
      if (r.ok) lock.state = r.state;
    }
    expect((await call('POST', `/v1/locks/${bundle.lockId}/receipts`, reg.token, { receipt: lock.receipt() })).status).toBe(200);
    const gone = await call('GET', `/v1/locks/${bundle.lockId}/updates?from=0`, dev.token);
    expect(gone.status).toBe(403);
    expect(gone.json.error.code).toBe('FORBIDDEN');
    const bad = await call('POST', `/v1/locks/${bundle.lockId}/receipts`, reg.token, { receipt: lock.receipt({ signer: phone.secretKey }) });
    expect(bad.status).toBe(422);
    expect(bad.json.error).toMatchObject({ code: 'BAD_RECEIPT', details: { reason: 'BAD_SIGNATURE' } });
  });

  it('refusals come back as typed JSON errors with the right status', async () => {
    const M = p.managerToken;
    const d = (await call('POST', '/v1/manager/doors', M, { name: 'Lobby' })).json;
    const { partner } = (await call('POST', '/v1/manager/partners', M, { name: 'Parcel Co' })).json;
    await call('PUT', `/v1/manager/doors/${d.id}/partners/${partner.id}`, M);
    const t = await call('POST', `/v1/manager/partners/${partner.id}/terminate`, M);
    expect(t.status).toBe(409);
    expect(t.json.error).toMatchObject({ code: 'PARTNER_STILL_ASSIGNED', details: { doors: [{ doorId: d.id, name: 'Lobby', via: 'door' }] } });
    expect((await call('GET', '/v1/manager/doors/999', M)).json.error.code).toBe('UNKNOWN_DOOR');
    expect((await call('POST', '/v1/manager/doors', M, { name: '' })).status).toBe(400);
    expect((await call('GET', '/v1/nowhere', M)).status).toBe(404);
    expect((await call('PUT', '/v1/manager/doors', M, {})).status).toBe(405);
    const raw = await fetch(`${s.url}/v1/manager/doors`, { method: 'POST', headers: { authorization: `Bearer ${M}` }, body: '{not json' });
    expect(raw.status).toBe(400);
  });

  it('authenticates every route: missing/unknown tokens 401, wrong kind of token 403', async () => {
    const M = p.managerToken;
    const d = (await call('POST', '/v1/manager/doors', M, { name: 'Lobby', connected: true })).json;
    const b1 = (await call('POST', '/v1/manager/locks', M, { doorId: d.id })).json;
    const d2 = (await call('POST', '/v1/manager/doors', M, { name: 'Gym' })).json;
    const b2 = (await call('POST', '/v1/manager/locks', M, { doorId: d2.id })).json;
    const l2 = new SimLock(b2);
    const lockTok = (await call('POST', `/v1/manager/locks/${b2.lockId}/device`, M, { publicKey: toHex(l2.device.publicKey) })).json.token;
    const u = (await call('POST', '/v1/manager/users', M, { name: 'Ann' })).json;
    const dev = (await call('POST', `/v1/manager/users/${u.id}/devices`, M, { publicKey: toHex(keyPairFromSeed(deriveSeed32('h', 'p')).publicKey) })).json;
    expect((await call('GET', '/v1/manager/doors')).status).toBe(401);
    expect((await call('GET', '/v1/manager/doors', 'lst_' + '00'.repeat(32))).status).toBe(401);
    expect((await call('GET', '/v1/manager/doors', 'garbage')).json.error.code).toBe('UNAUTHORIZED');
    expect((await call('GET', '/v1/manager/doors', dev.token)).status).toBe(403);
    expect((await call('GET', `/v1/locks/${b1.lockId}/updates?from=0`)).status).toBe(401);
    expect((await call('GET', `/v1/locks/${b1.lockId}/updates?from=0`, lockTok)).status).toBe(403); // another lock's token
    expect((await call('GET', `/v1/locks/${b2.lockId}/updates?from=0`, lockTok)).status).toBe(200);
    expect((await call('GET', `/v1/uplink/${b1.lockId}?from=0`, dev.token)).status).toBe(403);
    expect((await call('GET', '/v1/partner/credentials', dev.token)).status).toBe(403);
    expect((await call('GET', `/v1/uplink/${b2.lockId}?from=0`, lockTok)).json.error.code).toBe('NOT_CONNECTED');
  });

  it('partners enrol device keys and list their unlock credentials per lock', async () => {
    const M = p.managerToken;
    const d = (await call('POST', '/v1/manager/doors', M, { name: 'Parcel room' })).json;
    const b = (await call('POST', '/v1/manager/locks', M, { doorId: d.id })).json;
    const { partner, token } = (await call('POST', '/v1/manager/partners', M, { name: 'Parcel Co' })).json;
    await call('PUT', `/v1/manager/doors/${d.id}/partners/${partner.id}`, M);
    const enrolled = await call('POST', '/v1/partner/devices', token, { publicKey: toHex(keyPairFromSeed(deriveSeed32('h', 'courier')).publicKey) });
    expect(enrolled.status).toBe(201);
    const creds = (await call('GET', '/v1/partner/credentials', token)).json.credentials;
    expect(creds).toHaveLength(1);
    expect(creds[0]).toMatchObject({ lockId: b.lockId, deviceId: enrolled.json.deviceId });
    // the partner's courier device may carry updates too (explicit partner SDK sync)
    expect((await call('GET', `/v1/locks/${b.lockId}/updates?from=0`, enrolled.json.token)).status).toBe(200);
  });

  it('the uplink long-poll answers as soon as a change for that lock is committed', async () => {
    const M = p.managerToken;
    const d = (await call('POST', '/v1/manager/doors', M, { name: 'Lobby', connected: true })).json;
    const b = (await call('POST', '/v1/manager/locks', M, { doorId: d.id })).json;
    const l = new SimLock(b);
    const tok = (await call('POST', `/v1/manager/locks/${b.lockId}/device`, M, { publicKey: toHex(l.device.publicKey) })).json.token;
    const first = (await call('GET', `/v1/uplink/${b.lockId}?from=0&wait=0`, tok)).json;
    for (const m of first.messages) {
      const r = applyUpdate(l.state, decodeUpdate(m));
      if (r.ok) l.state = r.state;
    }
    expect(first.signedTime).toMatch(/^[0-9a-f]+$/);
    const polling = call('GET', `/v1/uplink/${b.lockId}?from=${l.version}&wait=10`, tok);
    const k = (await call('POST', '/v1/manager/keys', M, { name: 'K', doors: [{ doorId: d.id }] })).json;
    const u = (await call('POST', '/v1/manager/users', M, { name: 'Ann' })).json;
    await call('POST', `/v1/manager/users/${u.id}/keys`, M, { keyId: k.id });
    const got = (await polling).json;
    expect(got.to).toBeGreaterThan(l.version);
    const r = applyUpdate(l.state, decodeUpdate(got.messages[0]));
    expect(r.ok).toBe(true);
  });
});
