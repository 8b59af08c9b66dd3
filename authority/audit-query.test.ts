// The manager's audit question over the logs the authority stores and verifies: who opened
// a door between two times, with which credential, anchored by which receipt — refusals with
// their reasons. Through the function, the HTTP API (manager token only) and the CLI (a
// separate process: table and --json, and a one-line USAGE refusal).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { World } from '../world/index';
import { auditReport, type AuditReport } from './audit-query';
import { expectFailure, locksync } from '../test/failure-paths/harness';

describe('audit report', () => {
  let world: World;
  let doorId: number;
  let partnerId: number;
  let aliceId: number;
  let t0: number;
  let tRevoked: number;
  beforeAll(async () => {
    world = await World.create({ seed: 'audit-query', doors: [{ name: 'unit' }], phones: ['alice', 'courier'] });
    const a = world.authority;
    const door = world.door('unit');
    doorId = door.doorId;
    const key = a.createKey({ name: 'Unit', doors: [{ doorId, doorcodesEnabled: false }] });
    aliceId = a.addUser({ name: 'Alice' }).id;
    a.assignKey(aliceId, key.id);
    world.enrolPhone('alice', { userId: aliceId });
    partnerId = a.authorizePartner('ParcelCo').partner.id;
    a.assignPartnerToDoor(partnerId, doorId);
    world.enrolPhone('courier', { partnerId });
    world.moveTo('alice', 'unit');
    world.moveTo('courier', 'unit');
    await world.sync('alice', 'unit');
    t0 = a.nowSeconds();
    await world.advance(60_000);
    expect((await world.unlock('courier', 'unit', { passiveSync: false })).reason).toBe('GRANTED');
    await world.advance(60_000);
    expect((await world.unlock('alice', 'unit', { passiveSync: false })).reason).toBe('GRANTED');
    await world.advance(60_000);
    a.unassignPartnerFromDoor(partnerId, doorId);
    await world.sync('alice', 'unit'); // carries the revocation, relays the audit log and the receipt
    tRevoked = a.nowSeconds();
    await world.advance(60_000);
    expect((await world.unlock('courier', 'unit', { passiveSync: false })).reason).toBe('UNKNOWN_CREDENTIAL');
    await world.advance(60_000);
    await world.sync('alice', 'unit'); // relays the refusal; nothing newer to install
  });
  afterAll(async () => world?.close());

  it('names who opened, with which credential, and the receipt anchoring each record', () => {
    const r = auditReport(world.authority, { doorId });
    expect(r.door).toMatchObject({ id: doorId, lockId: world.door('unit').lockId });
    const opened = r.accesses.filter((x) => x.granted);
    expect(opened.map((x) => [x.who.kind, x.who.name, x.method, x.credential?.kind])).toEqual([
      ['partner', 'ParcelCo', 'phone', 'partner-phone'],
      ['user', 'Alice', 'phone', 'phone'],
    ]);
    for (const x of opened) {
      expect(x.verified).toBe(true);
      expect(x.receipt).not.toBeNull();
      expect(x.receipt!.auditSeq).toBeGreaterThanOrEqual(x.seq);
    }
    expect(r.receiptAnchoredThroughSeq).toBeGreaterThanOrEqual(opened[1]!.seq);
  });

  it('lists refusals with their reason, still attributed after the grant is gone', () => {
    const r = auditReport(world.authority, { doorId });
    const refused = r.accesses.filter((x) => !x.granted);
    expect(refused.map((x) => [x.reason, x.who.kind, x.who.id, x.credential?.kind])).toEqual([['UNKNOWN_CREDENTIAL', 'partner', partnerId, 'partner-phone']]);
    expect(auditReport(world.authority, { doorId, grantedOnly: true }).accesses.every((x) => x.granted)).toBe(true);
  });

  it('keeps only records inside the window', () => {
    const all = auditReport(world.authority, { doorId }).accesses;
    const before = auditReport(world.authority, { doorId, from: t0, until: tRevoked }).accesses;
    expect(before.map((x) => x.reason)).toEqual(['GRANTED', 'GRANTED']);
    const after = auditReport(world.authority, { doorId, from: tRevoked + 1 }).accesses;
    expect(after.map((x) => x.reason)).toEqual(['UNKNOWN_CREDENTIAL']);
    expect(all.length).toBe(before.length + after.length);
    expect(() => auditReport(world.authority, { doorId, from: 10, until: 5 })).toThrow(/until is before from/);
  });

  it('is served to the manager over HTTP, and to nobody else', async () => {
    const lockId = world.door('unit').lockId;
    const get = (token: string, q = '') => fetch(`${world.url}/v1/manager/doors/${doorId}/audit${q}`, { headers: { authorization: `Bearer ${token}` } });
    const ok = await get(world.managerToken, `?from=${t0}&until=${tRevoked}&grantedOnly=true`);
    expect(ok.status).toBe(200);
    const body = (await ok.json()) as AuditReport;
    expect(body.door.lockId).toBe(lockId);
    expect(body.accesses.map((x) => x.who.name)).toEqual(['ParcelCo', 'Alice']);
    const phone = await get(world.phone('alice').token as string);
    expect(phone.status).toBe(403);
    expect((await get(world.managerToken, '?grantedOnly=maybe')).status).toBe(400);
  });

  // Hard deadline for four CLI processes on a loaded 2-core machine (not a timing assertion).
  it('locksync authority audit prints the table and --json; a missing door is one USAGE line', { timeout: 180_000 }, async () => {
    const db = join(world.dir, 'authority.db');
    const iso = new Date(tRevoked * 1000 + 1000).toISOString();
    // Four separate processes at once (each opens the database read-only in effect).
    const [table, json, noDoor, badTime] = await Promise.all([
      locksync(['authority', 'audit', '--db', db, '--door', String(doorId)], { deadlineMs: 120_000 }),
      locksync(['authority', 'audit', '--db', db, '--lock', world.door('unit').lockId, '--from', iso, '--json'], { deadlineMs: 120_000 }),
      locksync(['authority', 'audit', '--db', db], { deadlineMs: 120_000 }),
      locksync(['authority', 'audit', '--db', db, '--door', '1', '--from', 'yesterday'], { deadlineMs: 120_000 }),
    ]);
    expect(table.stderr).toBe('');
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/time \(UTC\)\s+outcome\s+reason\s+who\s+credential\s+anchored by/);
    expect(table.stdout).toMatch(/opened\s+GRANTED\s+user \d+ Alice\s+phone #\d+ \(phone\)\s+receipt v\d+/);
    expect(table.stdout).toMatch(/refused\s+UNKNOWN_CREDENTIAL\s+partner \d+ ParcelCo/);
    expect(json.code).toBe(0);
    expect((JSON.parse(json.stdout) as AuditReport).accesses.map((x) => x.reason)).toEqual(['UNKNOWN_CREDENTIAL']);
    expectFailure(noDoor, 'USAGE', /exactly one of --door and --lock/);
    expectFailure(badTime, 'USAGE', /--from "yesterday" is not a time/);
  });
});
