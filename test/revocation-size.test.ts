// What a Door Sync carries to revoke a partner: one compact op under a signed head, the
// same size whatever the partner held — and no key certificate the lock already has.
import { describe, expect, it } from 'vitest';
import { World } from '../world/index';

async function revokeAndMeasure(devices: number): Promise<{ bytes: number; versionAfter: number; target: number }> {
  const world = await World.create({ seed: `size-${devices}`, doors: [{ name: 'unit' }], phones: ['resident'] });
  try {
    const a = world.authority;
    const door = world.door('unit');
    const key = a.createKey({ name: 'K', doors: [{ doorId: door.doorId }] });
    const u = a.addUser({ name: 'R', role: 'resident' });
    a.assignKey(u.id, key.id);
    world.enrolPhone('resident', { userId: u.id });
    const { partner } = a.authorizePartner('P');
    a.assignPartnerToDoor(partner.id, door.doorId);
    for (let i = 0; i < devices; i++) a.enrolDeviceWithNewKey({ partnerId: partner.id }, `p-device-${i}`);
    world.moveTo('resident', 'unit');
    await world.sync('resident', 'unit'); // installs the table and the signing-key certificate
    a.unassignPartnerFromDoor(partner.id, door.doorId);
    let bytes = -1;
    const r = await world.sync('resident', 'unit', { onEvent: (e) => e.phase === 'fetched' && (bytes = e.bytes) });
    return { bytes, versionAfter: r.versionAfter, target: a.currentVersion(door.lockId) };
  } finally {
    await world.close();
  }
}

describe('a partner revocation on the wire', () => {
  it('is one signed delta of at most 160 bytes whether the partner held 1 or 300 credentials', async () => {
    const small = await revokeAndMeasure(1);
    const large = await revokeAndMeasure(300);
    for (const r of [small, large]) {
      expect(r.versionAfter).toBe(r.target);
      expect(r.bytes).toBeGreaterThan(0);
      expect(r.bytes).toBeLessThanOrEqual(160);
    }
    // Only the lock id/version digits can differ.
    expect(Math.abs(large.bytes - small.bytes)).toBeLessThanOrEqual(4);
  });
});
