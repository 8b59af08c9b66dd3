// A batched Door Sync on a lock whose audit ring holds more than one batch answer can carry
// (SPEC §6.5: every answer is one byte string of the batchReply, and a byte string may be at
// most 4,096 B, §2). Found by the soak (30 days, link drops): after some 60 records the lock's
// batchReply could not be decoded by the phone (cbor STRING_LIMIT), so every batched sync of
// that lock failed and nothing reached it any more. The lock now refuses that one item
// OVER_LIMIT, and the phone asks for the export alone.
import { afterAll, describe, expect, it } from 'vitest';
import { type Message, DEFAULT_LIMITS, decodeMessage, encodeMessage } from '../protocol/index';
import { createTestRig, TestAuthority } from '../firmware-sim/test-authority';
import { World } from '../world/index';
import { type SeenMessage, seenMessage } from './session-messages';

const CARD = new Uint8Array([9, 9, 9, 9]);
/** Access records of some 30 B each: well past one batch answer's 4,096 B. */
const RECORDS = 250;

/** A keycard granted n times, the bolt thrown again in between: an audit record each. */
function fillAudit(lock: { presentCard(uid: Uint8Array): { granted: boolean } }, advance: (ms: number) => void, n: number): void {
  for (let i = 0; i < n; i++) {
    expect(lock.presentCard(CARD).granted).toBe(true);
    advance(10_000);
  }
}

describe('audit export too large for a batch answer', () => {
  it('the lock refuses that item OVER_LIMIT (the batchReply still decodes); alone, the same request gets the whole export', () => {
    const rig = createTestRig({ seed: 'batch-audit-size' });
    const first = rig.lock.openSession();
    expect(decodeMessage(first.handle(TestAuthority.message(rig.auth.delta([{ op: 'put', entry: rig.auth.keycardEntry(1, CARD) }])))[0] as Uint8Array).type).toBe('receipt');
    first.close();
    fillAudit(rig.lock, (ms) => rig.clock.advance(ms), RECORDS);
    const s = rig.lock.openSession();
    const request = encodeMessage({ type: 'auditRequest', fromSeq: 0 });
    const out = s.handle(encodeMessage({ type: 'batch', messages: [request] }));
    const reply = decodeMessage(out[0] as Uint8Array); // would throw STRING_LIMIT before
    if (reply.type !== 'batchReply') throw new Error(`expected batchReply, got ${reply.type}`);
    expect(reply.replies.every((r) => r.length <= DEFAULT_LIMITS.maxStringBytes)).toBe(true);
    expect(decodeMessage(reply.replies[0] as Uint8Array)).toMatchObject({ type: 'error', reason: 'OVER_LIMIT' });

    const alone = decodeMessage(s.handle(request)[0] as Uint8Array);
    expect(alone.type).toBe('auditExport');
    expect((alone as Extract<Message, { type: 'auditExport' }>).records.length).toBeGreaterThanOrEqual(RECORDS);
    expect(encodeMessage(alone).length).toBeGreaterThan(DEFAULT_LIMITS.maxStringBytes);
  });

  let world: World | undefined;
  afterAll(async () => world?.close());

  it('a batching phone still syncs such a lock: update in the batch, the export asked for alone, relayed', async () => {
    const seen: SeenMessage[] = [];
    world = await World.create({
      seed: 'batch-audit-size',
      doors: [{ name: 'unit' }],
      phones: ['resident'],
      onSessionMessage: (m) => {
        seen.push(seenMessage(m));
      },
    });
    const a = world.authority;
    const door = world.door('unit');
    const key = a.createKey({ name: 'Unit', doors: [{ doorId: door.doorId }] });
    const ann = a.addUser({ name: 'Ann' });
    a.assignKey(ann.id, key.id);
    a.addKeycard(ann.id, '09090909');
    world.enrolPhone('resident', { userId: ann.id });
    world.moveTo('resident', 'unit');
    await world.sync('resident', 'unit');
    const w = world;
    fillAudit(door.lock, (ms) => w.clock.advance(ms), RECORDS);
    a.setKeyDoor(key.id, { doorId: door.doorId, doorcodesEnabled: false });
    const target = a.currentVersion(door.lockId);
    seen.length = 0;
    const r = await world.sync('resident', 'unit');
    expect(r).toMatchObject({ outcome: 'updated', versionAfter: target, receiptDelivered: true, auditFate: 'delivered' });
    expect(r.auditRecords).toBeGreaterThanOrEqual(RECORDS);
    expect(seen.find((m) => m.type === 'batchReply')?.items).toEqual(['timeAck', 'receipt', 'error']);
    expect(seen.filter((m) => m.direction === 'to-lock').map((m) => m.type)).toContain('auditRequest');
  });
});
