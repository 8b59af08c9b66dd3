// A world's lock on a device profile does the same things as on the host, and its work is
// paid on the world clock: the same sync and unlock advance the clock by the priced work.

import { describe, expect, it } from 'vitest';
import { chargeFor, DEVICE_PROFILES } from '../firmware-sim/device-profile';
import { World } from './index';

async function run(device: 'host' | 'nrf52840'): Promise<{ unlockAdvanceMs: number; lockChargeMs: number; granted: boolean; version: number }> {
  const world = await World.create({ seed: 'world-device', doors: [{ name: 'unit' }], phones: ['resident'], device });
  try {
    const a = world.authority;
    const door = world.door('unit');
    const key = a.createKey({ name: 'Unit', doors: [{ doorId: door.doorId }] });
    const ann = a.addUser({ name: 'Ann' });
    a.assignKey(ann.id, key.id);
    world.enrolPhone('resident', { userId: ann.id });
    world.moveTo('resident', 'unit');
    const s = await world.sync('resident', 'unit');
    const t0 = world.clock.nowMs();
    const w0 = { ...door.lock.device.total };
    const u = await world.unlock('resident', 'unit');
    const w1 = door.lock.device.total;
    const work = { verifies: w1.verifies - w0.verifies, signs: w1.signs - w0.signs, sha256Blocks: w1.sha256Blocks - w0.sha256Blocks, bytesProgrammed: w1.bytesProgrammed - w0.bytesProgrammed, erases: w1.erases - w0.erases };
    expect(work.verifies).toBeGreaterThanOrEqual(1);
    return {
      unlockAdvanceMs: world.clock.nowMs() - t0,
      lockChargeMs: device === 'host' ? 0 : chargeFor(DEVICE_PROFILES[device], work).totalMs,
      granted: u.granted,
      version: s.versionAfter,
    };
  } finally {
    await world.close();
  }
}

describe('World option device', () => {
  it('nrf52840: the same outcome as on the host; the unlock advances the world clock by the lock\'s priced work (host: by nothing)', async () => {
    const host = await run('host');
    const nrf = await run('nrf52840');
    expect(nrf.granted).toBe(true);
    expect(nrf.granted).toBe(host.granted);
    expect(nrf.version).toBe(host.version);
    expect(host.unlockAdvanceMs).toBe(0);
    expect(nrf.lockChargeMs).toBeGreaterThanOrEqual(DEVICE_PROFILES.nrf52840.ed25519VerifyMs);
    expect(nrf.unlockAdvanceMs).toBeCloseTo(nrf.lockChargeMs, 2);
  }, 120_000);
});
