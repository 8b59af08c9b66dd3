// Attacks on the audit path and the authority's tokens (issue 11 items 2, 3 and the token
// parts of 1 and 7), in the style of python-tuf's attack tests: each attack asserts the
// named refusal, that the stored state did not move, and that the genuine export / the next
// valid action is accepted afterwards. Self-contained: a real authority over HTTP, real
// firmware-sim locks on emulated flash.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Message,
  SeededRandom,
  answerChallenge,
  auditRecordFromBytes,
  bytesEqual,
  chainAudit,
  decodeMessage,
  deriveSeed32,
  encodeAuditRecord,
  encodeMessage,
  fromHex,
  keyIdOf,
  keyPairFromSeed,
  makeAuditAnchor,
  makeSignedAuditExport,
  toHex,
} from '../../protocol/index';
import { Authority, type ProvisioningBundle } from '../../authority/authority';
import { type AuthorityServer, startAuthorityServer } from '../../authority/server';
import { NorFlash } from '../../firmware-sim/flash';
import { Lock } from '../../firmware-sim/lock';
import { FakeClock } from '../../firmware-sim/time';
import { TEST_GEOMETRY } from '../../firmware-sim/test-authority';

interface SimDoor {
  bundle: ProvisioningBundle;
  flash: NorFlash;
  lock: Lock;
  lockToken: string;
}

const clock = { t: 1_767_000_000 };
const lockClock = new FakeClock(clock.t * 1000);
let dir: string;
let a: Authority;
let server: AuthorityServer;
let managerToken: string;
let doorA: SimDoor;
let doorB: SimDoor;
let alice: { deviceId: number; token: string; secretKey: Uint8Array; credId: number };
let bob: { token: string };
let partner: { id: number; token: string; deviceId: number };

async function call(method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; json: any; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${server.url}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, json: await res.json(), headers: res.headers };
}

function provision(doorId: number, seed: string): SimDoor {
  const bundle = a.provisionLock(doorId);
  const flash = new NorFlash(TEST_GEOMETRY, { seed });
  Lock.provision(
    flash,
    { lockId: bundle.lockId, rootPublicKeys: bundle.rootPublicKeys.map(fromHex), lockSecret: fromHex(bundle.lockSecret), timeZone: bundle.timeZone, policy: bundle.policy },
    deriveSeed32(seed, 'device'),
  );
  const lock = Lock.boot({ flash, clock: lockClock, timers: lockClock, random: new SeededRandom(seed), rtc: { continueAtMs: lockClock.nowMs(), trusted: true } });
  const { token } = a.registerLockDevice(bundle.lockId, toHex(lock.devicePublicKey));
  return { bundle, flash, lock, lockToken: token };
}

function one(d: SimDoor, m: Message | Uint8Array, session = d.lock.openSession()): Message {
  const out = session.handle(m instanceof Uint8Array ? m : encodeMessage(m));
  expect(out).toHaveLength(1);
  return decodeMessage(out[0] as Uint8Array);
}

/** A Door Sync done by the authority's own hands: updates in, receipt back. */
function syncDoor(d: SimDoor): void {
  const s = d.lock.openSession();
  for (const hex of a.updatesFor(d.bundle.lockId, d.lock.version).messages) {
    const r = one(d, fromHex(hex), s);
    expect(r.type).toBe('receipt');
    a.acceptReceipt(d.bundle.lockId, toHex(encodeMessage(r)));
  }
  s.close();
}

function exportOf(d: SimDoor, fromSeq = 0): { hex: string; m: Extract<Message, { type: 'auditExport' }> } {
  const m = one(d, { type: 'auditRequest', fromSeq });
  if (m.type !== 'auditExport') throw new Error(m.type);
  return { hex: toHex(encodeMessage(m)), m };
}

function unlockAlice(d: SimDoor): Extract<Message, { type: 'decision' }> {
  const s = d.lock.openSession();
  const c = one(d, { type: 'unlockRequest', credId: alice.credId }, s);
  if (c.type !== 'challenge') throw new Error(c.type);
  const r = one(d, answerChallenge(c.bodyBytes, alice.secretKey), s);
  if (r.type !== 'decision') throw new Error(r.type);
  return r;
}

const storedLog = (d: SimDoor) => JSON.stringify(a.auditLog(d.bundle.lockId));
const postAudit = (d: SimDoor, token: string, hex: string) => call('POST', `/v1/locks/${d.bundle.lockId}/audit`, token, { export: hex });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'locksync-adv-audit-'));
  const init = Authority.init({ dbPath: join(dir, 'p.db'), seed: 'adversarial-audit', timeZone: 'Europe/Berlin', now: () => clock.t });
  a = init.authority;
  managerToken = init.managerToken;
  server = await startAuthorityServer({ dbPath: join(dir, 'p.db'), authority: a, port: 0, timeRateLimit: { requests: 5, windowSeconds: 60 } });
  const dA = a.addDoor({ name: 'Unit A' });
  const dB = a.addDoor({ name: 'Unit B' });
  const kA = a.createKey({ name: 'A', doors: [{ doorId: dA.id }] });
  const kB = a.createKey({ name: 'B', doors: [{ doorId: dB.id }] });
  const uA = a.addUser({ name: 'Alice' });
  const uB = a.addUser({ name: 'Bob' });
  a.assignKey(uA.id, kA.id);
  a.assignKey(uB.id, kB.id);
  const p = a.authorizePartner('Parcel Co');
  a.assignPartnerToDoor(p.partner.id, dA.id);
  doorA = provision(dA.id, 'door-a');
  doorB = provision(dB.id, 'door-b');
  const ea = a.enrolDeviceWithNewKey({ userId: uA.id }, 'alice');
  alice = { deviceId: ea.deviceId, token: ea.token, secretKey: fromHex(ea.credentialFile.secretKey), credId: ea.credentialFile.credentials.find((c) => c.lockId === doorA.bundle.lockId)!.credId };
  bob = { token: a.enrolDeviceWithNewKey({ userId: uB.id }, 'bob').token };
  const ep = a.enrolDeviceWithNewKey({ partnerId: p.partner.id }, 'parcel');
  partner = { id: p.partner.id, token: ep.token, deviceId: ep.deviceId };
  syncDoor(doorA);
  syncDoor(doorB);
  expect(unlockAlice(doorA).granted).toBe(true);
});

afterAll(async () => {
  await server?.close();
  a?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('audit poisoning (issue 11 item 2)', () => {
  it('fabricated records between two receipt heads: refused unsigned; the genuine export is then accepted, not refused forever', async () => {
    // two receipt heads with records between them
    const r1 = one(doorA, { type: 'receiptRequest' });
    a.acceptReceipt(doorA.bundle.lockId, toHex(encodeMessage(r1)));
    unlockAlice(doorA);
    unlockAlice(doorA);
    const r2 = one(doorA, { type: 'receiptRequest' });
    a.acceptReceipt(doorA.bundle.lockId, toHex(encodeMessage(r2)));
    if (r1.type !== 'receipt' || r2.type !== 'receipt') throw new Error('receipts');
    const fake = [r1.body.auditSeq + 1, r1.body.auditSeq + 2].map((seq) => encodeAuditRecord({ seq, time: clock.t, event: 'access', credId: 999, reason: 0, value: 0 }));
    const forged = toHex(encodeMessage({ type: 'auditExport', prevHash: r1.body.auditHead, records: fake }));
    const before = storedLog(doorA);
    const res = await postAudit(doorA, alice.token, forged);
    expect(res.status).toBe(422);
    expect(res.json.error).toMatchObject({ code: 'BAD_AUDIT', details: { reason: 'MALFORMED' } });
    // signed with the attacker's own key instead of the lock's
    const signedByPhone = toHex(encodeMessage(makeSignedAuditExport(doorA.bundle.lockId, r1.body.auditHead, fake, 1, 0, alice.secretKey)));
    expect((await postAudit(doorA, alice.token, signedByPhone)).json.error).toMatchObject({ code: 'BAD_AUDIT', details: { reason: 'BAD_SIGNATURE' } });
    expect(storedLog(doorA)).toBe(before);
    const genuine = await postAudit(doorA, alice.token, exportOf(doorA).hex);
    expect(genuine.status).toBe(200);
    expect(genuine.json.anchoredThrough).toBe(doorA.lock.storage.auditHead().seq);
    expect(a.auditLog(doorA.bundle.lockId).every((r) => r.anchored && r.credId !== 999)).toBe(true);
  });

  it("an export from lock B under lock A's id: refused (BAD_SIGNATURE), nothing stored", async () => {
    const before = storedLog(doorA);
    const fromB = exportOf(doorB).hex;
    const r = await postAudit(doorA, managerToken, fromB);
    expect(r.status).toBe(422);
    expect(r.json.error).toMatchObject({ code: 'BAD_AUDIT', details: { reason: 'BAD_SIGNATURE' } });
    expect(storedLog(doorA)).toBe(before);
    expect((await postAudit(doorB, managerToken, fromB)).status).toBe(200);
  });

  it('a genuine export truncated or with one record altered under its signature: BROKEN_CHAIN', async () => {
    unlockAlice(doorA);
    const { m } = exportOf(doorA);
    const before = storedLog(doorA);
    const truncated = toHex(encodeMessage({ ...m, records: m.records.slice(0, -1) }));
    expect((await postAudit(doorA, alice.token, truncated)).json.error).toMatchObject({ code: 'BAD_AUDIT', details: { reason: 'BROKEN_CHAIN' } });
    const last = auditRecordFromBytes(m.records.at(-1)!);
    const altered = toHex(encodeMessage({ ...m, records: [...m.records.slice(0, -1), encodeAuditRecord({ ...last, credId: 4242 })] }));
    expect((await postAudit(doorA, alice.token, altered)).json.error).toMatchObject({ code: 'BAD_AUDIT', details: { reason: 'BROKEN_CHAIN' } });
    expect(storedLog(doorA)).toBe(before);
    expect((await postAudit(doorA, alice.token, exportOf(doorA).hex)).status).toBe(200);
  });

  it('a courier that exports only a tail (skipping records the authority lacks) gets AUDIT_CHAIN_GAP and no anchor', async () => {
    const held = doorA.lock.storage.auditHead().seq;
    for (let i = 0; i < 3; i++) unlockAlice(doorA);
    const tail = exportOf(doorA, held + 3).hex; // skips held+1, held+2
    const before = storedLog(doorA);
    const r = await postAudit(doorA, alice.token, tail);
    expect(r.status).toBe(409);
    expect(r.json.error.code).toBe('AUDIT_CHAIN_GAP');
    expect(r.json.anchor).toBeUndefined();
    expect(storedLog(doorA)).toBe(before);
    const ok = await postAudit(doorA, alice.token, exportOf(doorA).hex);
    expect(ok.json.anchoredThrough).toBe(doorA.lock.storage.auditHead().seq);
  });

  it('records fabricated before exports were signed (stored unanchored) are replaced by the genuine signed chain', async () => {
    const head = doorA.lock.storage.auditHead();
    const fake = encodeAuditRecord({ seq: head.seq + 1, time: clock.t, event: 'access', credId: 777, reason: 0, value: 0 });
    a.db
      .prepare('INSERT INTO audit_records (lock_id, seq, record, chain_hash, anchored, received_at) VALUES (?, ?, ?, ?, 0, 0)')
      .run(doorA.bundle.lockId, head.seq + 1, Buffer.from(fake), Buffer.from(chainAudit(head.hash, fake)));
    unlockAlice(doorA);
    const r = await postAudit(doorA, alice.token, exportOf(doorA).hex);
    expect(r.status).toBe(200);
    const log = a.auditLog(doorA.bundle.lockId);
    expect(log.find((x) => x.seq === head.seq + 1)).toMatchObject({ credId: alice.credId, anchored: true });
  });

  it("a resident of another door may not upload (or read) this lock's data: 403, nothing stored", async () => {
    const before = storedLog(doorA);
    const r = await postAudit(doorA, bob.token, exportOf(doorA).hex);
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe('FORBIDDEN');
    expect(storedLog(doorA)).toBe(before);
    expect((await call('GET', `/v1/locks/${doorA.bundle.lockId}/updates?from=0`, bob.token)).status).toBe(403);
    expect((await call('GET', `/v1/locks/${doorB.bundle.lockId}/updates?from=0`, bob.token)).status).toBe(200);
    expect((await call('GET', `/v1/locks/${doorA.bundle.lockId}/updates?from=0`, alice.token)).status).toBe(200);
  });
});

describe('audit acknowledgement at the lock (issue 11 item 3)', () => {
  it('a forged, foreign or mismatched anchor is refused with the flash byte-identical; the genuine one is accepted', async () => {
    unlockAlice(doorA);
    const posted = await postAudit(doorA, alice.token, exportOf(doorA).hex);
    const genuine = decodeMessage(fromHex(posted.json.anchor));
    if (genuine.type !== 'auditAnchor') throw new Error(genuine.type);
    const image = doorA.flash.image();
    const anchoredBefore = doorA.lock.storage.auditAnchoredSeq;
    const attacker = keyPairFromSeed(deriveSeed32('adv', 'attacker'));
    const forged = makeAuditAnchor({ ...genuine.body, seq: genuine.body.seq, keyId: keyIdOf(attacker.publicKey) }, attacker.secretKey);
    expect(one(doorA, forged)).toMatchObject({ type: 'error', reason: 'UNTRUSTED_KEY' });
    const tampered = { ...genuine, signature: genuine.signature.map((b, i) => (i === 0 ? b ^ 1 : b)) };
    expect(one(doorA, tampered)).toMatchObject({ type: 'error', reason: 'BAD_SIGNATURE' });
    // lock B's anchor replayed to lock A
    const bAnchor = decodeMessage(fromHex((await postAudit(doorB, managerToken, exportOf(doorB).hex)).json.anchor));
    expect(one(doorA, bAnchor)).toMatchObject({ type: 'error', reason: 'WRONG_LOCK' });
    expect(bytesEqual(doorA.flash.image(), image)).toBe(true);
    expect(doorA.lock.storage.auditAnchoredSeq).toBe(anchoredBefore);
    expect(one(doorA, genuine)).toEqual({ type: 'auditAnchored', anchoredSeq: genuine.body.seq });
    expect(one(doorB, bAnchor)).toMatchObject({ type: 'auditAnchored' });
  });

  it('1,600 garbage unlock responses do not evict an unexported grant; the export is accepted and anchored', async () => {
    const grant = unlockAlice(doorA);
    const s = doorA.lock.openSession();
    const c = one(doorA, { type: 'unlockRequest', credId: alice.credId }, s);
    if (c.type !== 'challenge') throw new Error(c.type);
    const garbage = encodeMessage({ type: 'unlockResponse', challengeBytes: c.bodyBytes, signature: new Uint8Array(64) });
    for (let i = 0; i < 1600; i++) expect(one(doorA, garbage, s)).toMatchObject({ type: 'decision', granted: false });
    const { hex, m } = exportOf(doorA);
    expect(m.records.map(auditRecordFromBytes).find((r) => r.seq === grant.auditSeq)).toMatchObject({ reason: 0, credId: alice.credId });
    const r = await postAudit(doorA, alice.token, hex);
    expect(r.status).toBe(200);
    expect(one(doorA, fromHex(r.json.anchor))).toMatchObject({ type: 'auditAnchored', anchoredSeq: doorA.lock.storage.auditHead().seq });
  });
});

describe('tokens (issue 11 items 1 and 7)', () => {
  it('GET /time needs a token entitled to the lock and is rate-limited per token and lock (429, Retry-After)', async () => {
    const path = (d: SimDoor) => `/v1/locks/${d.bundle.lockId}/time?nonce=${'ab'.repeat(16)}`;
    expect((await call('GET', path(doorA))).status).toBe(401);
    expect((await call('GET', path(doorA), bob.token)).status).toBe(403);
    for (let i = 0; i < 5; i++) expect((await call('GET', path(doorA), alice.token)).status).toBe(200);
    const limited = await call('GET', path(doorA), alice.token);
    expect(limited.status).toBe(429);
    expect(limited.json.error.code).toBe('RATE_LIMITED');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    // another lock or another token has its own window
    expect((await call('GET', path(doorB), bob.token)).status).toBe(200);
    clock.t += 61;
    expect((await call('GET', path(doorA), alice.token)).status).toBe(200);
  });

  it('enrolment refuses small-order and non-canonical Ed25519 keys (WEAK_PUBLIC_KEY), storing nothing', async () => {
    const users = a.listUsers();
    const uid = users.find((u) => u.name === 'Alice')!.id;
    const count = () => (a.db.prepare('SELECT COUNT(*) AS n FROM devices').get() as { n: number }).n;
    const n = count();
    for (const weak of [
      '0100000000000000000000000000000000000000000000000000000000000000',
      'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
      'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    ]) {
      const r = await call('POST', `/v1/manager/users/${uid}/devices`, managerToken, { publicKey: weak });
      expect(r.status).toBe(400);
      expect(r.json.error.code).toBe('WEAK_PUBLIC_KEY');
    }
    expect(count()).toBe(n);
    const good = keyPairFromSeed(deriveSeed32('adv', 'alice-second-phone'));
    expect((await call('POST', `/v1/manager/users/${uid}/devices`, managerToken, { publicKey: toHex(good.publicKey) })).status).toBe(201);
  });

  it("terminating a partner kills its devices' tokens, and re-authorising does not revive them", async () => {
    expect((await call('GET', '/v1/me', partner.token)).status).toBe(200);
    a.unassignPartnerFromDoor(partner.id, doorA.bundle.doorId);
    // while its revocation is pending it may still carry the update that removes it
    expect((await call('GET', `/v1/locks/${doorA.bundle.lockId}/updates?from=${doorA.lock.version}`, partner.token)).status).toBe(200);
    a.terminatePartner(partner.id);
    const before = storedLog(doorA);
    for (const r of [await call('GET', '/v1/me', partner.token), await postAudit(doorA, partner.token, exportOf(doorA).hex)]) {
      expect(r.status).toBe(401);
      expect(r.json.error.code).toBe('UNAUTHORIZED');
    }
    expect(storedLog(doorA)).toBe(before);
    a.authorizePartner('Parcel Co');
    expect((await call('GET', '/v1/me', partner.token)).status).toBe(401);
    // the genuine courier still delivers
    syncDoor(doorA);
    expect((await postAudit(doorA, alice.token, exportOf(doorA).hex)).status).toBe(200);
  });

  it('a unassigned partner whose revocation is in force may no longer read the lock', async () => {
    const p2 = a.authorizePartner('Van Co');
    a.assignPartnerToDoor(p2.partner.id, doorB.bundle.doorId);
    const dev = a.enrolDeviceWithNewKey({ partnerId: p2.partner.id }, 'van');
    expect((await call('GET', `/v1/locks/${doorB.bundle.lockId}/updates?from=0`, dev.token)).status).toBe(200);
    a.unassignPartnerFromDoor(p2.partner.id, doorB.bundle.doorId);
    syncDoor(doorB);
    expect((await call('GET', `/v1/locks/${doorB.bundle.lockId}/updates?from=0`, dev.token)).status).toBe(403);
  });
});

describe('the Door Sync carries the anchor back (agent relay)', () => {
  it('after a phone sync the lock holds the authority anchor through its newest exported record', async () => {
    const { World } = await import('../../world/index');
    const world = await World.create({ seed: 'adv-anchor', doors: [{ name: 'cellar' }], phones: ['staff'] });
    try {
      const w = world.authority;
      const door = world.door('cellar');
      const key = w.createKey({ name: 'Cellar', doors: [{ doorId: door.doorId }] });
      const staff = w.addUser({ name: 'Sam', role: 'staff' });
      w.assignKey(staff.id, key.id);
      world.enrolPhone('staff', { userId: staff.id });
      world.moveTo('staff', 'cellar');
      expect(door.lock.storage.auditAnchoredSeq).toBe(0);
      const r = await world.sync('staff', 'cellar');
      expect(r.auditRecords).toBeGreaterThan(0);
      const held = w.auditLog(door.lockId);
      expect(held.length).toBeGreaterThan(0);
      expect(door.lock.storage.auditAnchoredSeq).toBe(held.at(-1)!.seq);
    } finally {
      await world.close();
    }
  });
});
