// The mission, end to end: a partner revoked at the authority keeps opening an offline
// door until a phone's Door Sync lands there, and stops the moment it does.
//
// Runs twice: on the in-process `sim` link, and through the real host stacks — the lock
// a GATT server on bleno, the phones GATT clients on noble, over the virtual radio's HCI
// controllers on ptys, with the authority on SQLite behind real HTTP.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { World } from '../world/index';
import { AgentError } from '../mobile-agent/errors';
import { encodeTable, toHex, decodeMessage } from '../protocol/index';

const RESIDENTS = 150; // enough credentials that a sync spans several acknowledgement windows at MTU 185

interface Cast {
  world: World;
  /** The update messages the installing sync carried (a courier could have kept them). */
  installUpdate: Uint8Array[];
  partnerId: number;
  doorId: number;
  aliceId: number;
}

async function buildWorld(transport: 'sim' | 'ble'): Promise<Cast> {
  const world = await World.create({
    seed: `mission-${transport}`,
    transport,
    doors: [{ name: 'unit-4b' }],
    phones: ['alice', 'partner', 'courier'],
    radio: { linkPolicy: { intervalMs: 7.5, phy: '2M' } },
  });
  const a = world.authority;
  const doorId = world.door('unit-4b').doorId;
  const key = a.createKey({ name: 'Unit 4B', doors: [{ doorId, doorcodesEnabled: true }] });
  const alice = a.addUser({ name: 'Alice', role: 'resident' });
  a.assignKey(alice.id, key.id, { mayShare: true });
  for (let i = 0; i < RESIDENTS; i++) {
    const u = a.addUser({ name: `Resident ${i}`, role: 'resident' });
    a.assignKey(u.id, key.id);
    a.enrolDeviceWithNewKey({ userId: u.id }, `mission:resident:${i}`);
  }
  const { partner } = a.authorizePartner('FastParcel');
  a.assignPartnerToDoor(partner.id, doorId);
  world.enrolPhone('alice', { userId: alice.id });
  world.enrolPhone('partner', { partnerId: partner.id });
  world.enrolPhone('courier', { userId: alice.id });
  return { world, partnerId: partner.id, doorId, aliceId: alice.id, installUpdate: [] };
}

/** Everything the lock would lose or change: table bytes, head, version floor. */
function lockFingerprint(world: World, door: string): string {
  const d = world.door(door).lock.durable;
  return `${toHex(encodeTable(d.tableState.table))}|${d.tableState.head?.version}|${toHex(d.tableState.head?.digest ?? new Uint8Array())}|${d.tableState.versionFloor}`;
}

for (const transport of ['sim', 'ble'] as const) {
  describe(`mission over ${transport === 'sim' ? 'the in-process link' : 'real bleno ↔ noble through the virtual radio'}`, () => {
    let cast: Cast;

    beforeAll(async () => {
      cast = await buildWorld(transport);
    });
    afterAll(async () => {
      await cast?.world.close();
    });

    it('installs: a first Door Sync brings the fresh lock to the authority’s version', async () => {
      const { world } = cast;
      world.moveTo('alice', 'unit-4b');
      const phases: string[] = [];
      const r = await world.sync('alice', 'unit-4b', { courierFilter: (m) => (cast.installUpdate = m), onEvent: (e) => phases.push(e.phase) });
      // A fresh lock can verify signed time only once the update brought the key certificate.
      expect(phases.indexOf('time')).toBeGreaterThan(phases.indexOf('receipt'));
      expect(cast.installUpdate.length).toBeGreaterThan(0);
      expect(r.versionBefore).toBe(0);
      expect(r.versionAfter).toBe(world.authority.currentVersion(world.door('unit-4b').lockId));
      expect(r.receiptDelivered).toBe(true);
      world.moveTo('alice', null);
    });

    it('1. a partner assigned to the door can unlock', async () => {
      const { world } = cast;
      world.moveTo('partner', 'unit-4b');
      const r = await world.unlock('partner', 'unit-4b', { passiveSync: false });
      expect(r).toMatchObject({ granted: true, reason: 'GRANTED' });
    });

    it('2. after the manager removes the partner, it still unlocks at the offline lock and the authority reports the revocation pending', async () => {
      const { world, partnerId, doorId } = cast;
      const lockId = world.door('unit-4b').lockId;
      const before = world.authority.currentVersion(lockId);
      world.authority.unassignPartnerFromDoor(partnerId, doorId);
      expect(world.authority.currentVersion(lockId)).toBe(before + 1);

      const r = await world.unlock('partner', 'unit-4b', { passiveSync: false });
      expect(r).toMatchObject({ granted: true, reason: 'GRANTED' });

      const pending = world.authority.pendingRevocations({ doorId });
      expect(pending.length).toBeGreaterThan(0);
      expect(pending.every((p) => p.partnerId === partnerId && p.removedInVersion === before + 1 && p.versionInForce === before)).toBe(true);
      expect(world.authority.doorsHonouringPartner(partnerId).map((d) => d.doorId)).toEqual([doorId]);
    });

    it('5a. a replayed old update is refused and changes nothing', async () => {
      const { world } = cast;
      // The courier kept the update that installed the lock and replays it now.
      const old = cast.installUpdate;
      const fingerprint = lockFingerprint(world, 'unit-4b');
      world.moveTo('courier', 'unit-4b');
      const err = await world.sync('courier', 'unit-4b', { courierFilter: () => old, offline: false }).catch((e) => e);
      expect(err).toBeInstanceOf(AgentError);
      expect(err).toMatchObject({ reason: 'REFUSED_BY_LOCK', lockError: 'ROLLBACK' });
      expect(lockFingerprint(world, 'unit-4b')).toBe(fingerprint);
      world.moveTo('courier', null);
    });

    it('5b. a phone moved out of range mid-sync fails with "out of range" and leaves the table exactly as it was', async () => {
      const { world, aliceId } = cast;
      // A bigger change to carry: every resident gets a fresh doorcode.
      const lockId = world.door('unit-4b').lockId;
      const doorId = world.door('unit-4b').doorId;
      for (const u of world.authority.listUsers().filter((x) => x.role === 'resident' && x.id !== aliceId)) world.authority.issueDoorcode(u.id, doorId);
      const fingerprint = lockFingerprint(world, 'unit-4b');
      const versionBefore = world.door('unit-4b').lock.version;
      world.moveTo('courier', 'unit-4b');
      let moved = false;
      const err = await world
        .sync('courier', 'unit-4b', {
          attempts: 2,
          backoffMs: 50,
          onEvent: (e) => {
            // Walk away once the update is partly across.
            if (!moved && e.phase === 'transfer' && e.acked > 0 && e.acked < e.total) {
              moved = true;
              if (transport === 'ble') world.placeAt('courier', 'unit-4b', 200);
              else {
                world.moveTo('courier', null);
                world.simAir?.setInRange(lockId, false);
              }
            }
          },
        })
        .catch((e) => e);
      world.simAir?.setInRange(lockId, true);
      expect(moved).toBe(true);
      expect(err).toBeInstanceOf(AgentError);
      expect(['LINK_LOST', 'LOCK_NOT_FOUND']).toContain((err as AgentError).reason);
      expect(String(err.message) + String(err.reason)).toMatch(/out of range|supervision timeout|not advertising in range/);
      expect(world.door('unit-4b').lock.version).toBe(versionBefore);
      expect(lockFingerprint(world, 'unit-4b')).toBe(fingerprint);
      world.moveTo('courier', null);
    });

    it('3 + 5c. the resident’s Door Sync, broken by a link drop halfway, resumes and lands the revocation: the receipt reaches the authority, which reports the door in force at the new version', async () => {
      const { world, partnerId, doorId } = cast;
      const lockId = world.door('unit-4b').lockId;
      const target = world.authority.currentVersion(lockId);
      world.moveTo('alice', 'unit-4b');
      const events: string[] = [];
      let dropped = false;
      const r = await world.sync('alice', 'unit-4b', {
        attempts: 4,
        // Long enough for both ends to notice the dead link (supervision timeout) and the
        // lock to advertise again, as a phone app's retry would be.
        backoffMs: 500,
        onEvent: (e) => {
          events.push(e.phase);
          if (!dropped && e.phase === 'transfer' && e.acked > 0 && e.acked < e.total) {
            dropped = true;
            if (transport === 'ble') world.radio?.faults.dropLink({ controller: world.phone('alice').controller as string });
            else world.simAir?.dropLink(lockId);
          }
        },
      });
      expect(dropped).toBe(true);
      expect(events).toContain('retry');
      expect(r.attempts).toBeGreaterThan(1);
      expect(r.versionAfter).toBe(target);
      expect(world.door('unit-4b').lock.version).toBe(target);
      expect(r.receiptDelivered).toBe(true);
      const receipt = decodeMessage(r.receipt as Uint8Array);
      expect(receipt.type === 'receipt' && receipt.body.version).toBe(target);
      const lockRow = world.authority.listLocks().find((l) => l.lockId === lockId);
      expect(lockRow?.versionInForce).toBe(target);
      expect(world.authority.pendingRevocations({ doorId })).toEqual([]);
      expect(world.authority.doorsHonouringPartner(partnerId)).toEqual([]);
      world.moveTo('alice', null);
    });

    it('4. the partner is now refused with its reason — and so after a lock reboot', async () => {
      const { world } = cast;
      const r = await world.unlock('partner', 'unit-4b', { passiveSync: false });
      expect(r).toMatchObject({ granted: false, reason: 'UNKNOWN_CREDENTIAL' });
      await world.reboot('unit-4b');
      world.moveTo('partner', 'unit-4b');
      const again = await world.unlock('partner', 'unit-4b', { passiveSync: false });
      expect(again).toMatchObject({ granted: false, reason: 'UNKNOWN_CREDENTIAL' });
      // The resident still gets in after the reboot.
      world.moveTo('alice', 'unit-4b');
      const alice = await world.unlock('alice', 'unit-4b', { passiveSync: false });
      expect(alice).toMatchObject({ granted: true, reason: 'GRANTED' });
    });
  });
}
