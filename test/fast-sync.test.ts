// The pipelined Door Sync (SPEC §6.5, §14.1): signed time, update and audit request go to
// the lock as one `batch` and come back as one `batchReply`. Checked at the lock's session
// (what a batch does to its state, refusal by refusal) and end to end on the in-process
// link with the real authority over HTTP (the phone batches, an old-style phone does not,
// both end with the update in force and the receipt at the authority).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestRig } from '../firmware-sim/test-authority';
import { TestAuthority } from '../firmware-sim/test-authority';
import { type Message, MAX_BATCH_ITEMS, decodeMessage, encode, encodeMessage, makeDelta, signHead, tableDigest, keyPairFromSeed, deriveSeed32, ProtocolError, cmap } from '../protocol/index';
import { World } from '../world/index';
import { type SeenMessage, seenMessage } from './session-messages';
import { AgentError } from '../mobile-agent/errors';
import type { LockConnector } from '../mobile-agent/link';
import type { AuthorityApi } from '../mobile-agent/authority-client';

const UID = new Uint8Array([4, 1, 2, 3]);

function replies(session: { handle(b: Uint8Array): Uint8Array[] }, items: Uint8Array[]): Message[] {
  const out = session.handle(encodeMessage({ type: 'batch', messages: items }));
  expect(out).toHaveLength(1);
  const reply = decodeMessage(out[0] as Uint8Array);
  if (reply.type !== 'batchReply') throw new Error(`expected batchReply, got ${reply.type}`);
  return reply.replies.map((r) => decodeMessage(r));
}

describe('batch at the lock session', () => {
  it('answers signed time, update and audit request in order, exactly as the lone messages would be (R-BATCH-2)', () => {
    const rig = createTestRig({ seed: 'batch/ok' });
    const a = rig.auth;
    const s = rig.lock.openSession();
    const update = TestAuthority.message(a.delta([{ op: 'put', entry: a.keycardEntry(1, UID) }]));
    const hello = decodeMessage(s.hello());
    if (hello.type !== 'hello') throw new Error('no hello');
    expect(hello.capabilities & 0x80).toBe(0x80); // the lock offers batches
    const r = replies(s, [a.signedTime(hello.nonce), update, encodeMessage({ type: 'auditRequest', fromSeq: 0 })]);
    expect(r.map((m) => m.type)).toEqual(['timeAck', 'receipt', 'auditExport']);
    expect(r[1]).toMatchObject({ type: 'receipt', body: { version: 1 } });
    // The receipt is bound to this session's nonce, as a lone update's is.
    expect(Buffer.from((r[1] as Extract<Message, { type: 'receipt' }>).body.nonce).equals(Buffer.from(hello.nonce))).toBe(true);
    expect(rig.lock.version).toBe(1);
    expect(rig.lock.presentCard(UID).reason).toBe('GRANTED');
  });

  it('a refused update mid-batch leaves the flash byte-identical and the rest is answered NOT_ATTEMPTED; sent alone afterwards it applies (R-BATCH-3)', () => {
    const rig = createTestRig({ seed: 'batch/refused' });
    const a = rig.auth;
    const s = rig.lock.openSession();
    const hello = decodeMessage(s.hello());
    if (hello.type !== 'hello') throw new Error('no hello');
    const good = a.delta([{ op: 'put', entry: a.keycardEntry(1, UID) }]);
    const intruder = keyPairFromSeed(deriveSeed32('batch', 'intruder'));
    const ops = good.type === 'delta' ? good.ops : [];
    const forged = TestAuthority.message(
      makeDelta({
        base: { version: 0, digest: tableDigest(rig.lock.durable.tableState.table) },
        ops,
        head: signHead({ lockId: 'lk-0001', version: 1, digest: tableDigest(a.table), issuedAt: a.now, keyId: a.signer.keyId }, intruder.secretKey),
      }),
    );
    const before = rig.flash.image();
    const flashOps = rig.flash.operations;
    const r = replies(s, [forged, TestAuthority.message(good), encodeMessage({ type: 'auditRequest', fromSeq: 0 })]);
    expect(r).toMatchObject([
      { type: 'error', reason: 'BAD_SIGNATURE' },
      { type: 'error', reason: 'NOT_ATTEMPTED' },
      { type: 'error', reason: 'NOT_ATTEMPTED' },
    ]);
    expect(rig.flash.operations).toBe(flashOps);
    expect(Buffer.compare(rig.flash.image(), before)).toBe(0);
    expect(rig.lock.version).toBe(0);
    // Nothing of the not-attempted items was done: the genuine update applies when sent alone.
    expect(decodeMessage(s.handle(TestAuthority.message(good))[0] as Uint8Array)).toMatchObject({ type: 'receipt', body: { version: 1 } });
  });

  it('a stale signed time first stops the batch before the update (nothing applied), with its own typed error', () => {
    const rig = createTestRig({ seed: 'batch/time' });
    const a = rig.auth;
    const s = rig.lock.openSession();
    const update = TestAuthority.message(a.delta([{ op: 'put', entry: a.keycardEntry(1, UID) }]));
    const wrongNonce = new Uint8Array(16).fill(7);
    const r = replies(s, [a.signedTime(wrongNonce), update]);
    expect(r[0]).toMatchObject({ type: 'error' });
    expect(r[1]).toMatchObject({ type: 'error', reason: 'NOT_ATTEMPTED' });
    expect(rig.lock.version).toBe(0);
  });

  it('carries only Door Sync requests: unlock and nested batches are UNEXPECTED_MESSAGE; malformed batches are refused by the decoder', () => {
    const rig = createTestRig({ seed: 'batch/shape' });
    const s = rig.lock.openSession();
    const nested = encodeMessage({ type: 'batch', messages: [encodeMessage({ type: 'receiptRequest' })] });
    expect(replies(s, [nested, encodeMessage({ type: 'receiptRequest' })])).toMatchObject([
      { type: 'error', reason: 'UNEXPECTED_MESSAGE' },
      { type: 'error', reason: 'NOT_ATTEMPTED' },
    ]);
    expect(replies(s, [encodeMessage({ type: 'unlockRequest', credId: 1 })])).toMatchObject([{ type: 'error', reason: 'UNEXPECTED_MESSAGE' }]);
    expect(replies(s, [new Uint8Array([0xa1, 0x00, 0x03])])).toMatchObject([{ type: 'error', reason: 'MALFORMED' }]);
    const refusal = (bytes: Uint8Array): string => {
      try {
        decodeMessage(bytes);
        return 'accepted';
      } catch (e) {
        return (e as ProtocolError).reason;
      }
    };
    expect(refusal(encode(cmap([[0, 19], [1, []]])))).toBe('MALFORMED');
    expect(refusal(encode(cmap([[0, 19], [1, Array.from({ length: MAX_BATCH_ITEMS + 1 }, () => new Uint8Array([0xa1, 0, 15]))]])))).toBe('OVER_LIMIT');
    expect(refusal(encode(cmap([[0, 19], [1, [7]]])))).toBe('MALFORMED');
    // And the session answers a malformed batch with the decoder's typed error.
    expect(decodeMessage(s.handle(encode(cmap([[0, 19], [1, []]])))[0] as Uint8Array)).toMatchObject({ type: 'error', reason: 'MALFORMED' });
  });
});

describe('a fresh lock and an update too large to batch', () => {
  it('the update goes alone; then the signed time (verifiable only after it) and the audit request share one batch', async () => {
    const seen: SeenMessage[] = [];
    const world = await World.create({
      seed: 'fast-sync-large',
      doors: [{ name: 'unit' }],
      phones: ['resident'],
      onSessionMessage: (m) => {
        seen.push(seenMessage(m));
      },
    });
    try {
      const a = world.authority;
      const key = a.createKey({ name: 'Unit', doors: [{ doorId: world.door('unit').doorId }] });
      const ann = a.addUser({ name: 'Ann' });
      a.assignKey(ann.id, key.id);
      world.enrolPhone('resident', { userId: ann.id });
      // 200 keycards: a first update well above the 4,096 B a batch may carry.
      a.batch(() => {
        for (let i = 0; i < 200; i++) a.addKeycard(ann.id, (0x04000000 + i).toString(16).padStart(8, '0'));
      });
      world.moveTo('resident', 'unit');
      const r = await world.sync('resident', 'unit');
      expect(r).toMatchObject({ outcome: 'updated', versionBefore: 0, receiptDelivered: true, auditFate: 'delivered' });
      expect(r.updateBytes).toBeGreaterThan(4096);
      const toLock = seen.filter((m) => m.direction === 'to-lock');
      expect(toLock.map((m) => m.type)).toEqual(['snapshot', 'batch', 'auditAnchor']);
      expect(toLock[1]?.items).toEqual(['signedTime', 'auditRequest']);
      expect(seen.find((m) => m.type === 'batchReply')?.items).toEqual(['timeAck', 'auditExport']);
    } finally {
      await world.close();
    }
  });
});

describe('pipelined Door Sync end to end (in-process link, authority over HTTP)', () => {
  let world: World;
  const seen: (SeenMessage & { phone: string })[] = [];
  let partnerId: number;
  let doorId: number;
  let current = '';

  beforeAll(async () => {
    world = await World.create({
      seed: 'fast-sync',
      doors: [{ name: 'unit' }],
      phones: ['resident', 'old'],
      legacyPhones: ['old'],
      onSessionMessage: (m) => {
        seen.push({ phone: current, ...seenMessage(m) });
      },
    });
    const a = world.authority;
    const door = world.door('unit');
    doorId = door.doorId;
    const key = a.createKey({ name: 'Unit', doors: [{ doorId }] });
    const ann = a.addUser({ name: 'Ann' });
    a.assignKey(ann.id, key.id);
    world.enrolPhone('resident', { userId: ann.id });
    world.enrolPhone('old', { userId: ann.id });
    partnerId = a.authorizePartner('Parcel Co').partner.id;
    a.assignPartnerToDoor(partnerId, doorId);
    a.enrolDeviceWithNewKey({ partnerId }, 'parcel-van');
    world.moveTo('resident', 'unit');
    world.moveTo('old', 'unit');
    current = 'resident';
    await world.sync('resident', 'unit');
  });
  afterAll(async () => world?.close());

  const toggleRevocation = (): number => {
    const a = world.authority;
    if (a.partner(partnerId).doors.includes(doorId)) a.unassignPartnerFromDoor(partnerId, doorId);
    else a.assignPartnerToDoor(partnerId, doorId);
    return a.currentVersion(world.door('unit').lockId);
  };

  it('a phone that batches: one batch (time, update, audit request) answered by one batchReply (timeAck, receipt, audit export)', async () => {
    const target = toggleRevocation();
    seen.length = 0;
    current = 'resident';
    const r = await world.sync('resident', 'unit');
    expect(r).toMatchObject({ outcome: 'updated', versionAfter: target, receiptDelivered: true, auditFate: 'delivered' });
    const toLock = seen.filter((m) => m.direction === 'to-lock').map((m) => m.type);
    expect(toLock[0]).toBe('batch');
    expect(seen.find((m) => m.type === 'batch')?.items).toEqual(['signedTime', 'delta', 'auditRequest']);
    expect(seen.find((m) => m.type === 'batchReply')?.items).toEqual(['timeAck', 'receipt', 'auditExport']);
    expect(toLock).not.toContain('delta'); // nothing sent twice
    expect(world.door('unit').lock.version).toBe(target);
  });

  it('a new process (a connector that never met the lock) fetches the updates while connecting: the courier cache remembers the version the lock is at', async () => {
    const lockId = world.door('unit').lockId;
    const phone = world.phone('resident');
    expect(phone.cache.expectedHello(lockId)?.version).toBe(world.door('unit').lock.version);
    const target = toggleRevocation();
    const inner = phone.connector;
    const fresh: LockConnector = { transport: inner.transport, scan: (t, f) => inner.scan(t, f), connect: (l, o) => inner.connect(l, o), forget: (l) => inner.forget(l), close: async () => undefined };
    const order: string[] = [];
    const client = world.authorityClientFor('resident');
    const authority: AuthorityApi = {
      updates: (...a) => (order.push(`updates from v${a[1]}`), client.updates(...a)),
      signedTime: (...a) => client.signedTime(...a),
      postReceipt: (...a) => client.postReceipt(...a),
      postAudit: (...a) => client.postAudit(...a),
    };
    current = 'resident';
    const r = await world.sync('resident', 'unit', { connector: fresh, authority, onEvent: (e) => e.phase === 'connected' && order.push('hello') });
    expect(r).toMatchObject({ outcome: 'updated', versionAfter: target });
    expect(order).toEqual([`updates from v${r.versionBefore}`, 'hello']);
    expect(phone.cache.expectedHello(lockId)?.version).toBe(target);
  });

  it('an old-style phone (no batches) still syncs against the same lock, one request at a time', async () => {
    const target = toggleRevocation();
    seen.length = 0;
    current = 'old';
    const r = await world.sync('old', 'unit');
    expect(r).toMatchObject({ outcome: 'updated', versionAfter: target, receiptDelivered: true });
    const toLock = seen.filter((m) => m.direction === 'to-lock').map((m) => m.type);
    expect(toLock).not.toContain('batch');
    expect(toLock).toEqual(expect.arrayContaining(['signedTime', 'delta', 'auditRequest']));
    expect(world.door('unit').lock.version).toBe(target);
  });

  it('a refused update in the batch: the lock keeps its table, the sync fails REFUSED_BY_LOCK naming the code, the audit export is still fetched alone and relayed', async () => {
    const before = world.door('unit').lock.version;
    toggleRevocation();
    seen.length = 0;
    current = 'resident';
    // A courier that flips one byte of the head's signature.
    const tamper = (messages: Uint8Array[]): Uint8Array[] =>
      messages.map((m) => {
        const b = m.slice();
        b[b.length - 5] = (b[b.length - 5] as number) ^ 0x01;
        return b;
      });
    const err = await world.sync('resident', 'unit', { courierFilter: tamper }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).reason).toBe('REFUSED_BY_LOCK');
    expect(world.door('unit').lock.version).toBe(before);
    const reply = seen.find((m) => m.type === 'batchReply');
    expect(reply?.items?.[1]).toBe('error');
    expect(reply?.items?.[2]).toBe('error'); // NOT_ATTEMPTED: the audit request goes alone next
    expect(seen.filter((m) => m.direction === 'to-lock').map((m) => m.type)).toContain('auditRequest');
    // The honest sync that follows brings the lock up to date.
    const r = await world.sync('resident', 'unit');
    expect(r.outcome).toBe('updated');
  });
});
