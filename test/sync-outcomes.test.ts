// What a Door Sync reports, outcome by outcome, on the in-process link with a real
// authority behind HTTP: a revocation is pending (the authority is one version ahead of the
// lock) and the authority answers, refuses, or cannot be reached. The CLI maps each outcome
// to its exit code (mobile-agent/cli.ts syncEnding); those mappings are checked here too.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { World } from '../world/index';
import { HttpAuthorityClient, refusalOf, type AuthorityApi } from '../mobile-agent/authority-client';
import { AgentError } from '../mobile-agent/errors';
import { syncEnding } from '../mobile-agent/cli';
import { EXIT_CODES } from '../cli/errors';
import { digestTree } from './failure-paths/harness';

const unreachable = () => new HttpAuthorityClient('http://127.0.0.1:9', 'lst_x', 500);

/** The real authority, with one route's answer replaced. */
function withFailing(inner: AuthorityApi, route: keyof AuthorityApi, error: () => AgentError): AuthorityApi {
  const api: AuthorityApi = {
    updates: (...a) => inner.updates(...a),
    signedTime: (...a) => inner.signedTime(...a),
    postReceipt: (...a) => inner.postReceipt(...a),
    postAudit: (...a) => inner.postAudit(...a),
  };
  api[route] = (async () => {
    throw error();
  }) as never;
  return api;
}

describe('Door Sync outcomes with a revocation pending', () => {
  let world: World;
  let partnerId: number;
  let doorId: number;
  let lockId: string;

  beforeAll(async () => {
    world = await World.create({ seed: 'sync-outcomes', doors: [{ name: 'unit' }], phones: ['resident'] });
    const a = world.authority;
    const door = world.door('unit');
    doorId = door.doorId;
    lockId = door.lockId;
    const key = a.createKey({ name: 'Unit', doors: [{ doorId }] });
    const ann = a.addUser({ name: 'Ann' });
    a.assignKey(ann.id, key.id);
    world.enrolPhone('resident', { userId: ann.id });
    partnerId = a.authorizePartner('Parcel Co').partner.id;
    a.assignPartnerToDoor(partnerId, doorId);
    a.enrolDeviceWithNewKey({ partnerId }, 'parcel-van'); // its credential is what a revocation removes
    world.moveTo('resident', 'unit');
    await world.sync('resident', 'unit');
  });
  afterAll(async () => world?.close());

  /** Makes the authority one version ahead of the lock (a partner assigned or removed). */
  const pendRevocation = (): { before: number; target: number } => {
    const a = world.authority;
    const assigned = a.partner(partnerId).doors.includes(doorId);
    if (assigned) a.unassignPartnerFromDoor(partnerId, doorId);
    else a.assignPartnerToDoor(partnerId, doorId);
    const before = world.door('unit').lock.version;
    const target = a.currentVersion(lockId);
    expect(target).toBeGreaterThan(before);
    return { before, target };
  };
  const outboxIds = () => world.phone('resident').cache.queued(lockId).map((q) => q.id);

  beforeEach(async () => {
    // Each case starts from a lock that holds the authority's current version and an empty outbox.
    const phone = world.phone('resident');
    for (const q of phone.cache.queued(lockId)) phone.cache.remove(lockId, q.id);
    if (world.door('unit').lock.version < world.authority.currentVersion(lockId)) await world.sync('resident', 'unit');
  });

  it('up to date: the authority was asked and the lock holds its current version → exit 0', async () => {
    const r = await world.sync('resident', 'unit');
    expect(r).toMatchObject({ outcome: 'up-to-date', source: 'authority', authorityVersion: r.versionAfter, versionBefore: r.versionAfter });
    expect(syncEnding(r, { offline: false }).exit).toBe(0);
  });

  it('updated: committed and the receipt delivered → exit 0, and the authority has it in force', async () => {
    const { before, target } = pendRevocation();
    const r = await world.sync('resident', 'unit');
    expect(r).toMatchObject({ outcome: 'updated', versionBefore: before, versionAfter: target, authorityVersion: target, receiptFate: 'delivered', auditFate: 'delivered' });
    expect(world.authority.listLocks().find((l) => l.lockId === lockId)?.versionInForce).toBe(target);
    const end = syncEnding(r, { offline: false });
    expect(end.exit).toBe(0);
    expect(end.text).toMatch(/^Door Sync OK: .* now enforces version/);
  });

  it.each([
    ['401', 'AUTHORITY_AUTH_REFUSED', () => refusalOf(401, { error: { code: 'UNAUTHORIZED', message: 'unknown bearer token' } }, 'GET /v1/locks/x/updates', 'http://a')],
    ['404', 'AUTHORITY_REFUSED', () => refusalOf(404, { error: { code: 'UNKNOWN_LOCK', message: 'no such lock' } }, 'GET /v1/locks/x/updates', 'http://a')],
    ['no answer', 'AUTHORITY_UNREACHABLE', () => new AgentError('AUTHORITY_UNREACHABLE', 'connection refused')],
  ] as const)('updates refused (%s): the sync fails with %s and the lock and cache are unchanged, even with a usable cache', async (_n, reason, error) => {
    const { before } = pendRevocation();
    // A usable chain in the cache must not answer for the authority unless asked to.
    const phone = world.phone('resident');
    phone.cache.storeUpdates(await world.authorityClientFor('resident').updates(lockId, before));
    const cacheBefore = digestTree(phone.cache.dir);
    const err = await world.sync('resident', 'unit', { authority: withFailing(world.authorityClientFor('resident'), 'updates', error) }).catch((e: unknown) => e);
    expect(digestTree(phone.cache.dir)).toBe(cacheBefore);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).reason).toBe(reason);
    expect(world.door('unit').lock.version).toBe(before);
    expect(outboxIds()).toEqual([]);
  });

  it('a real wrong token: 401 from the authority, naming the tokens the route takes', async () => {
    const { before } = pendRevocation();
    const err = (await world.sync('resident', 'unit', { authority: new HttpAuthorityClient(world.url, 'lst_wrong') }).catch((e: unknown) => e)) as AgentError;
    expect(err.reason).toBe('AUTHORITY_AUTH_REFUSED');
    expect(err.exitCode).toBe(EXIT_CODES.AUTHORITY_AUTH_REFUSED);
    expect(err.message).toMatch(/HTTP 401 UNAUTHORIZED: unknown bearer token; GET \/v1\/locks\/lk-\d+\/updates takes a device token/);
    expect(world.door('unit').lock.version).toBe(before);
  });

  it('receipt queued: committed, but the receipt could not be posted → outcome receipt-queued, exit 14; a later sync delivers it', async () => {
    const { before, target } = pendRevocation();
    const r = await world.sync('resident', 'unit', { authority: withFailing(world.authorityClientFor('resident'), 'postReceipt', () => new AgentError('AUTHORITY_UNREACHABLE', 'connection reset')) });
    expect(r).toMatchObject({ outcome: 'receipt-queued', versionBefore: before, versionAfter: target, receiptDelivered: false, receiptFate: 'queued' });
    expect(r.queuedBecause).toMatch(/connection reset/);
    const end = syncEnding(r, { offline: false });
    expect(end.exit).toBe(EXIT_CODES.RECEIPT_QUEUED);
    expect(end.failure?.code).toBe('RECEIPT_QUEUED');
    expect(end.out).toMatchObject({ ok: false, outcome: 'receipt-queued', exitCode: 14 });
    expect(world.authority.listLocks().find((l) => l.lockId === lockId)?.versionInForce).toBe(before);
    expect(outboxIds().length).toBeGreaterThan(0);

    const next = await world.sync('resident', 'unit');
    expect(next.outcome).toBe('up-to-date');
    expect(outboxIds()).toEqual([]);
    expect(world.authority.listLocks().find((l) => l.lockId === lockId)?.versionInForce).toBe(target);
  });

  it('audit refused for good (409 AUDIT_CHAIN_MISMATCH): the receipt still lands, the audit is dead-lettered, and later syncs are not blocked', async () => {
    const { target } = pendRevocation();
    const mismatch = () => refusalOf(409, { error: { code: 'AUDIT_CHAIN_MISMATCH', message: 'record 0 differs from the stored chain' } }, 'POST /v1/locks/x/audit', 'http://a');
    const r = await world.sync('resident', 'unit', { authority: withFailing(world.authorityClientFor('resident'), 'postAudit', mismatch) });
    expect(r).toMatchObject({ outcome: 'updated', versionAfter: target, receiptFate: 'delivered', auditFate: 'dead-lettered' });
    expect(r.deadLettered).toEqual([expect.objectContaining({ kind: 'audit', refusal: { status: 409, code: 'AUDIT_CHAIN_MISMATCH', reason: 'record 0 differs from the stored chain' } })]);
    expect(world.authority.listLocks().find((l) => l.lockId === lockId)?.versionInForce).toBe(target);
    const end = syncEnding(r, { offline: false });
    expect(end.exit).toBe(0);
    expect(end.text).toMatch(/note: the authority refused the audit [0-9a-f]{12} for good \(HTTP 409 AUDIT_CHAIN_MISMATCH/);
    expect(outboxIds()).toEqual([]);

    const next = await world.sync('resident', 'unit');
    expect(next).toMatchObject({ outcome: 'up-to-date', auditFate: 'delivered', deadLettered: [] });
    expect(world.phone('resident').cache.deadLetters(lockId)).toHaveLength(1);
  });

  it('receipt refused for good → outcome receipt-refused, exit 13, the receipt in the dead letters', async () => {
    pendRevocation();
    const bad = () => refusalOf(422, { error: { code: 'BAD_RECEIPT', message: 'receipt signature does not verify with the lock device key' } }, 'POST /v1/locks/x/receipts', 'http://a');
    const r = await world.sync('resident', 'unit', { authority: withFailing(world.authorityClientFor('resident'), 'postReceipt', bad) });
    expect(r).toMatchObject({ outcome: 'receipt-refused', receiptFate: 'dead-lettered', receiptRefusal: { status: 422, code: 'BAD_RECEIPT' } });
    const end = syncEnding(r, { offline: false });
    expect(end.exit).toBe(EXIT_CODES.AUTHORITY_REFUSED);
    expect(end.failure?.what).toMatch(/refused its receipt \(HTTP 422 BAD_RECEIPT/);
  });

  it('cache fallback, asked for: from-cache with the fetch time, receipt queued → exit 14', async () => {
    const { before, target } = pendRevocation();
    world.phone('resident').cache.storeUpdates(await world.authorityClientFor('resident').updates(lockId, before), new Date(Date.now() - 90 * 60_000));
    const r = await world.sync('resident', 'unit', { authority: unreachable(), cacheFallback: true });
    expect(r).toMatchObject({ outcome: 'from-cache', source: 'cache', versionAfter: target, receiptFate: 'queued' });
    const end = syncEnding(r, { offline: false });
    expect(end.exit).toBe(EXIT_CODES.RECEIPT_QUEUED);
    expect(end.text).toMatch(/^Door Sync from cache fetched at \d{4}-\d\d-\d\dT[\d:.]+Z \(age 90 min\): .* the authority was unreachable/);
    expect(end.out).toMatchObject({ outcome: 'from-cache', cache: { ageSeconds: expect.any(Number) } });
  });

  it('offline with nothing newer cached → nothing-cached, exit 7, the lock unchanged', async () => {
    const { before } = pendRevocation();
    const r = await world.sync('resident', 'unit', { offline: true });
    expect(r).toMatchObject({ outcome: 'nothing-cached', versionAfter: before });
    expect(world.door('unit').lock.version).toBe(before);
    const end = syncEnding(r, { offline: true });
    expect(end.exit).toBe(EXIT_CODES.NOTHING_TO_DELIVER);
    expect(end.text).toBe('');
  });

  it('cache fallback with nothing newer cached → exit 6 naming both', async () => {
    const { before } = pendRevocation();
    const r = await world.sync('resident', 'unit', { authority: unreachable(), cacheFallback: true });
    expect(r).toMatchObject({ outcome: 'nothing-cached', versionAfter: before });
    const end = syncEnding(r, { offline: false });
    expect(end.exit).toBe(EXIT_CODES.AUTHORITY_UNREACHABLE);
    expect(end.failure?.what).toMatch(/^GET \/v1\/locks\/lk-\d+\/updates at http:\/\/127\.0\.0\.1:9: .*; the courier cache carries nothing newer than version \d+/);
  });
});
