// A Door Sync cut at every frame of the in-memory link (ble/sim.ts), both dialogues: the
// batched one (signed time, update and audit request in one `batch`, SPEC §6.5) and the
// sequential one a phone without batches uses (pipeline: false: the update goes alone and
// resumes from the bytes the lock holds). At every cut the retried sync converges: the lock
// holds the authority's version, its table is its signed head, and the authority holds
// exactly one receipt for that version. The real-stack sweep is radio/link-loss.test.ts.
//
// Regression (issue 16): a lone update whose last frame the lock acknowledged, cut before
// its receipt came back, was forgotten by the retry: the next connection found nothing to
// send, the receipt never reached the authority, and the sync ended receipt-queued.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableDigest, toHex } from '../protocol/index';
import { World } from '../world/index';

const uidHex = (n: number) => `04${n.toString(16).padStart(6, '0')}`;

for (const pipeline of [true, false]) {
  describe(`Door Sync cut at every frame of the sim link (${pipeline ? 'batched' : 'sequential'} dialogue)`, () => {
    let world: World;
    let cardUser: number;
    let next = 0;
    beforeAll(async () => {
      world = await World.create({ seed: `sync-link-loss/${pipeline}`, doors: [{ name: 'Door' }], phones: ['alice'], simMtu: 23 });
      const a = world.authority;
      const door = world.door('Door');
      const key = a.createKey({ name: 'cards', doors: [{ doorId: door.doorId }] });
      const alice = a.addUser({ name: 'Alice' });
      a.assignKey(alice.id, key.id);
      cardUser = alice.id;
      world.enrolPhone('alice', { userId: alice.id });
      world.moveTo('alice', 'Door');
      await world.sync('alice', 'Door', { pipeline });
    });
    afterAll(async () => world?.close());

    const receipts = (lockId: string, version: number) =>
      (world.authority.db.prepare('SELECT COUNT(*) AS n FROM receipts WHERE lock_id = ? AND version = ?').get(lockId, version) as { n: number }).n;

    it('converges at every cut point with no partial state and one receipt', async () => {
      const door = world.door('Door');
      const air = world.simAir as NonNullable<typeof world.simAir>;
      world.authority.addKeycard(cardUser, uidHex(0x100 + next++));
      const start = air.framesCarried;
      expect((await world.sync('alice', 'Door', { pipeline })).outcome).toBe('updated');
      const total = air.framesCarried - start;
      expect(total).toBeGreaterThan(10);
      const failed: string[] = [];
      for (let k = 1; k <= total; k++) {
        world.authority.addKeycard(cardUser, uidHex(0x100 + next++));
        const target = world.authority.currentVersion(door.lockId);
        const where = `cut after frame ${k}/${total}`;
        // The cut fires once, on the first connection of this sync.
        const sync = world.sync('alice', 'Door', { pipeline, attempts: 4, backoffMs: 1 });
        air.dropLink(door.lockId, k);
        try {
          const r = await sync;
          expect(r.outcome, `${where} (${r.queuedBecause ?? ''})`).toBe('updated');
          const ts = door.lock.durable.tableState;
          expect(door.lock.version, where).toBe(target);
          expect(toHex(tableDigest(ts.table)), where).toBe(toHex(ts.head?.digest ?? new Uint8Array(0)));
          expect(receipts(door.lockId, target), `${where}: receipts at the authority`).toBe(1);
        } catch (e) {
          failed.push(`${where}: ${(e as Error).message.split('\n')[0]}`);
          await world.sync('alice', 'Door', { pipeline }).catch(() => undefined);
        }
      }
      expect(failed).toEqual([]);
    }, 120_000);

    // Regression (issue 16, the real-stack sweep's small delta at PDU 17): the audit anchor
    // the phone carries back after relaying is cut by the link; the sync is done. The next
    // sync must not resume that anchor: the lock's auditAnchored would arrive where the new
    // session expects its batchReply (PROTOCOL_VIOLATION).
    it('an audit anchor cut by the link does not leak into the next sync', async () => {
      const door = world.door('Door');
      const air = world.simAir as NonNullable<typeof world.simAir>;
      world.authority.addKeycard(cardUser, uidHex(0x100 + next++));
      const cut = await world.sync('alice', 'Door', {
        pipeline,
        onEvent: (e) => {
          if (e.phase === 'relayed') air.dropLink(door.lockId, 2); // mid-anchor (7 frames at MTU 23)
        },
      });
      expect(cut.outcome).toBe('updated');
      world.authority.addKeycard(cardUser, uidHex(0x100 + next++));
      const target = world.authority.currentVersion(door.lockId);
      const r = await world.sync('alice', 'Door', { pipeline, attempts: 1 });
      expect(r.outcome).toBe('updated');
      expect(door.lock.version).toBe(target);
      expect(receipts(door.lockId, target)).toBe(1);
    }, 60_000);
  });
}
