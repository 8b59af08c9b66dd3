// GET /v1/locks/{id}/updates in both media types: JSON (messages as hex) by default,
// application/cbor (messages as byte strings) when Accept asks — the same messages byte for
// byte — refusals as JSON either way; and the snapshot the authority keeps for re-serving is
// never served once the lock's table, the signing key or the certificates asked for change.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeMessage, decodeUpdatesBody, deriveSeed32, fromHex, keyIdOf, keyPairFromSeed, toHex, type Update } from '../protocol';
import { type AuthorityServer, acceptsCbor, startAuthorityServer } from './server';
import { tempProperty, type TempProperty } from './test-support';
import { openApiChecker } from './openapi-check';

const checkExchange = await openApiChecker();

let p: TempProperty;
let s: AuthorityServer;
let lockId: string;
let keyId: number;
let doorId: number;
beforeEach(async () => {
  p = tempProperty();
  s = await startAuthorityServer({ dbPath: p.dbPath, port: 0, authority: p.authority });
  const a = p.authority;
  doorId = a.addDoor({ name: 'Lobby', kind: 'communal' }).id;
  keyId = a.createKey({ name: 'Residents', doors: [{ doorId, doorcodesEnabled: false }] }).id;
  // Enough phones that a fresh lock is sent a snapshot rather than a delta from empty.
  for (let i = 0; i < 24; i++) addResident(`Resident ${i}`);
  lockId = a.provisionLock(doorId).lockId;
});
afterEach(async () => {
  await s.close();
  p.cleanup();
});

function addResident(name: string): void {
  const a = p.authority;
  const u = a.addUser({ name });
  a.assignKey(u.id, keyId);
  a.enrolUserDevice(u.id, toHex(keyPairFromSeed(deriveSeed32('updates-cbor', name)).publicKey));
}

interface Answer {
  status: number;
  contentType: string;
  vary: string | null;
  bytes: Uint8Array;
}

async function get(path: string, accept?: string, token: string | null = p.managerToken): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (accept !== undefined) headers.accept = accept;
  const res = await fetch(`${s.url}${path}`, { headers });
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', vary: res.headers.get('vary'), bytes: new Uint8Array(await res.arrayBuffer()) };
}

const json = (a: Answer): any => JSON.parse(new TextDecoder().decode(a.bytes));

/** The JSON answer, checked against the OpenAPI document. */
async function getJson(path: string, accept?: string): Promise<{ lockId: string; from: number; to: number; messages: string[] }> {
  const a = await get(path, accept);
  expect(a.status).toBe(200);
  expect(a.contentType).toMatch(/^application\/json/);
  expect(a.vary).toBe('Accept');
  const body = json(a);
  expect(checkExchange({ method: 'GET', url: path, headers: accept === undefined ? {} : { accept }, status: a.status, response: body })).toEqual([]);
  return body;
}

async function getCbor(path: string, accept = 'application/cbor'): Promise<ReturnType<typeof decodeUpdatesBody>> {
  const a = await get(path, accept);
  expect(a.status).toBe(200);
  expect(a.contentType).toBe('application/cbor');
  expect(a.vary).toBe('Accept');
  return decodeUpdatesBody(a.bytes);
}

function updateOf(m: Uint8Array): Update {
  const d = decodeMessage(m);
  if (d.type !== 'snapshot' && d.type !== 'delta') throw new Error(`not an update: ${d.type}`);
  return d.update;
}

describe('GET /v1/locks/{id}/updates: JSON by default, CBOR when Accept asks', () => {
  it('both answers carry the same fields and byte-identical messages (a snapshot, then a delta)', async () => {
    const snapshotPath = `/v1/locks/${lockId}/updates?from=0`;
    const viaJson = await getJson(snapshotPath);
    const viaCbor = await getCbor(snapshotPath);
    expect(viaJson.messages.length).toBe(1);
    expect({ lockId: viaCbor.lockId, from: viaCbor.from, to: viaCbor.to }).toEqual({ lockId: viaJson.lockId, from: viaJson.from, to: viaJson.to });
    expect(viaCbor.messages.map(toHex)).toEqual(viaJson.messages);
    expect(updateOf(viaCbor.messages[0] as Uint8Array).type).toBe('snapshot');

    const held = viaJson.to;
    addResident('Di');
    const deltaPath = `/v1/locks/${lockId}/updates?from=${held}`;
    const dj = await getJson(deltaPath, 'application/json');
    const dc = await getCbor(deltaPath, 'application/cbor, application/json;q=0.5');
    expect(dc.to).toBe(held + 1);
    expect(dc.messages.map(toHex)).toEqual(dj.messages);
    expect(updateOf(dc.messages[0] as Uint8Array).type).toBe('delta');

    // Up to date: no messages, in both.
    const none = `/v1/locks/${lockId}/updates?from=${held + 1}`;
    expect((await getJson(none)).messages).toEqual([]);
    expect((await getCbor(none)).messages).toEqual([]);
  });

  it('JSON for a client that prefers it or names neither type; CBOR only at a q no lower than JSON\'s', async () => {
    const path = `/v1/locks/${lockId}/updates?from=0`;
    for (const accept of ['application/json', '*/*', 'application/json, application/cbor;q=0.5', 'application/cbor;q=0, */*', 'text/html'])
      expect((await get(path, accept)).contentType, accept).toMatch(/^application\/json/);
    for (const accept of ['application/cbor', 'application/cbor, application/json;q=0.9', 'Application/CBOR;q=0.5, */*;q=0.1'])
      expect((await get(path, accept)).contentType, accept).toBe('application/cbor');
    expect(acceptsCbor(undefined)).toBe(false);
    expect(acceptsCbor('application/cbor;q=0.5, application/json;q=0.5')).toBe(true);
    expect(acceptsCbor('application/json;q=0.6, application/cbor;q=0.5')).toBe(false);
  });

  it('refusals stay JSON error bodies when CBOR was asked for', async () => {
    const tooNew = await get(`/v1/locks/${lockId}/updates?from=99`, 'application/cbor');
    expect(tooNew.status).toBe(409);
    expect(tooNew.contentType).toMatch(/^application\/json/);
    expect(json(tooNew).error.code).toBe('UNKNOWN_VERSION');
    const noToken = await get(`/v1/locks/${lockId}/updates?from=0`, 'application/cbor', null);
    expect(noToken.status).toBe(401);
    expect(json(noToken).error.code).toBe('UNAUTHORIZED');
    const noLock = await get('/v1/locks/lk-9999/updates?from=0', 'application/cbor');
    expect(noLock.contentType).toMatch(/^application\/json/);
    expect(json(noLock).error.code).toMatch(/UNKNOWN_LOCK|FORBIDDEN/);
  });
});

describe('the snapshot served for a version', () => {
  it('is served again unchanged for the same version, and never after a change, a key rotation, or a different certificate ask', async () => {
    const path = `/v1/locks/${lockId}/updates?from=0`;
    const first = (await getCbor(path)).messages[0] as Uint8Array;
    expect(toHex((await getCbor(path)).messages[0] as Uint8Array)).toBe(toHex(first));
    expect(fromHex((await getJson(path)).messages[0] as string)).toEqual(first);
    const v1 = updateOf(first);
    expect(v1.certs.length).toBe(1);

    // The lock already holds the current certificate: the same version without it.
    const serial = v1.certs[0]!.cert.serial;
    const noCert = updateOf((await getCbor(`${path}&certSerial=${serial}`)).messages[0] as Uint8Array);
    expect(noCert.head.head.version).toBe(v1.head.head.version);
    expect(noCert.certs).toEqual([]);
    expect(updateOf((await getCbor(path)).messages[0] as Uint8Array).certs.length).toBe(1);

    // A change: a new version with the new credential, not v1 again.
    addResident('Di');
    const v2 = updateOf((await getCbor(path)).messages[0] as Uint8Array);
    expect(v2.type).toBe('snapshot');
    expect(v2.head.head.version).toBe(v1.head.head.version + 1);
    if (v2.type !== 'snapshot' || v1.type !== 'snapshot') throw new Error('snapshots expected');
    expect(v2.table.entries.size).toBe(v1.table.entries.size + 1);

    // A key rotation re-signs the same version's head: served under the new key, with its certificate.
    const rotated = p.authority.rotateSigningKey();
    const v2r = updateOf((await getCbor(path)).messages[0] as Uint8Array);
    expect(v2r.head.head.version).toBe(v2.head.head.version);
    expect(toHex(v2r.head.head.keyId)).toBe(rotated.keyId);
    expect(toHex(v2r.head.head.keyId)).not.toBe(toHex(v2.head.head.keyId));
    expect(v2r.certs.map((c) => c.cert.serial)).toEqual([rotated.serial]);
    expect(toHex(keyIdOf(v2r.certs[0]!.cert.publicKey))).toBe(rotated.keyId);
  });
});
