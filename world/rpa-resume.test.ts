// A phone's private address rotates between a dropped sync and its retry, through the real
// stacks on the virtual radio: the phone's controller (LE privacy, radio/controller.ts) shows
// the lock a new resolvable private address on the retry, and the lock — which keeps the
// half-received update under the resume token of the phone's framing HELLO (SPEC §13.2,
// §13.3), not under the address — lets the phone resume it, and the sync converges.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deriveSeed32 } from '../protocol/index';
import { resolvesWith } from '../radio/controller';
import { traceShow } from '../radio/trace-show';
import { World, controllerName } from './world';

const SEED = 'rpa-resume';
/** The phone's private address lives this long (model ms); the retry comes after it. */
const ROTATION_MS = 2_000;

describe("a phone's private address rotates between a dropped sync and its retry (real noble/bleno on the radio)", () => {
  it('the retry comes from a new RPA, resumes the update from the bytes the lock holds, and converges', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'locksync-rpa-resume-'));
    const captureDir = join(dir, 'captures');
    let world: World | undefined;
    try {
      world = await World.create({
        seed: SEED,
        transport: 'ble',
        doors: [{ name: 'Unit 7' }],
        phones: ['resident'],
        // The update goes alone, not in a batch: a cut batch is never resumed (its signed
        // time belongs to the dead session, mobile-agent/sync.ts) — a lone update is.
        legacyPhones: ['resident'],
        // MTU 23: the update spans hundreds of frames, so the cut lands mid-message.
        radio: { captureDir, phoneAddressRotationMs: ROTATION_MS, phoneMtu: 23 },
      });
      const a = world.authority;
      const door = world.door('Unit 7');
      const key = a.createKey({ name: 'Unit 7', doors: [{ doorId: door.doorId, doorcodesEnabled: true }] });
      const user = a.addUser({ name: 'Resident', role: 'resident' });
      a.assignKey(user.id, key.id, { mayShare: false });
      for (let i = 0; i < 40; i++) a.assignKey(a.addUser({ name: `Neighbour ${i}`, role: 'resident' }).id, key.id);
      world.enrolPhone('resident', { userId: user.id });
      world.moveTo('resident', 'Unit 7');
      const radio = world.radio!;
      const phoneController = controllerName('phone', 'resident');

      // First attempt: once part of the update is acknowledged, the radio path dies (silently:
      // both ends find out at their supervision timeout), so the lock holds a partial. The
      // app retries after a pause longer than the phone's address lifetime, keeping the
      // update it had in flight (mobile-agent/sync.ts), which the framing resumes.
      let cutAt = 0;
      const retries: string[] = [];
      const versionTarget = a.currentVersion(door.lockId);
      const r = await world.sync('resident', 'Unit 7', {
        attempts: 3,
        backoffMs: ROTATION_MS + 500,
        onEvent: (e) => {
          if (e.phase === 'transfer' && cutAt === 0 && e.acked > 0 && e.acked < e.total) {
            cutAt = e.acked;
            radio.faults.dropLink({ controller: phoneController, afterPackets: 1 });
          }
          if (e.phase === 'retry') retries.push(e.reason);
        },
      });
      expect(cutAt).toBeGreaterThan(0);
      expect(retries.length).toBeGreaterThanOrEqual(1);
      expect(r.attempts).toBeGreaterThanOrEqual(2);
      expect(r.versionAfter).toBe(versionTarget);
      expect(r.versionAfter).toBeGreaterThan(r.versionBefore);

      // The lock saw the phone under two different resolvable private addresses, both the
      // phone's (they resolve with its IRK), never its public one.
      const irk = Buffer.from(deriveSeed32(SEED, `irk:${phoneController}`).slice(0, 16));
      const lockLines: string[] = [];
      traceShow(join(captureDir, `${controllerName('lock', 'Unit 7')}.btsnoop`), {}, { stdout: (l) => lockLines.push(l) });
      const peers = lockLines.flatMap((l) => [...l.matchAll(/LE (?:Enhanced )?Connection Complete status=success .* peer=([0-9a-f:]{17}) \(random\)/g)].map((m) => m[1]!));
      expect(peers.length).toBeGreaterThanOrEqual(2);
      const distinct = [...new Set(peers)];
      expect(distinct.length).toBeGreaterThanOrEqual(2);
      const publicAddress = radio.controllers.find((c) => c.name === phoneController)!.address;
      for (const peer of distinct) {
        expect(peer).not.toBe(publicAddress);
        expect(resolvesWith(irk, Buffer.from(peer.split(':').reverse().map((b) => parseInt(b, 16)))), peer).toBe(true);
      }
      // The phone's HELLO carried the same resume token from both addresses.
      const tokens = lockLines.flatMap((l) => [...l.matchAll(/locksync HELLO .*resume token ([0-9a-f]{16})/g)].map((m) => m[1]!));
      expect(tokens.length).toBeGreaterThanOrEqual(2);
      expect(new Set(tokens).size).toBe(1);
      // The retry resumed: the lock's HELLO to the new address offered what it held, and the
      // phone's START continued from exactly there.
      const offered = lockLines.map((l) => /locksync HELLO .*holds (\d+)\/(\d+) of id (0x[0-9a-f]+)/.exec(l)).find((m) => m !== null);
      expect(offered, "the lock's HELLO on the retry shows the partial").toBeDefined();
      const [, held, total, id] = offered!;
      expect(Number(held)).toBeGreaterThanOrEqual(cutAt);
      expect(lockLines.some((l) => l.includes(`START seq 0 id ${id} total ${total} offset ${held} (resume)`)), `START id ${id} offset ${held}`).toBe(true);
    } finally {
      await world?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
