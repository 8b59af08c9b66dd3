// The authority served from its own worker thread (WorldOptions.authorityThread): the same
// property and the same clock as the world's own Authority handle, over the real stacks.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeMessage } from '../protocol/index';
import { FakeClock } from '../firmware-sim/index';
import { startAuthorityThread } from './authority-thread';
import { World } from './world';

describe('WorldOptions.authorityThread', () => {
  it('a Door Sync over noble/bleno lands through the thread, which signs time with the world clock as it moves', { timeout: 60_000 }, async () => {
    const world = await World.create({ seed: 'authority-thread', transport: 'ble', authorityThread: true, doors: [{ name: 'door' }], phones: ['resident'] });
    try {
      const a = world.authority;
      const door = world.door('door');
      const key = a.createKey({ name: 'Residents', doors: [{ doorId: door.doorId }] });
      const resident = a.addUser({ name: 'Resident', role: 'resident' });
      a.assignKey(resident.id, key.id);
      world.enrolPhone('resident', { userId: resident.id });
      world.moveTo('resident', 'door');
      const r = await world.sync('resident', 'door', { attempts: 1 });
      expect(r.receiptDelivered).toBe(true);
      // The receipt reached the database through the thread: this thread's handle reads it.
      expect(a.listLocks().find((l) => l.lockId === door.lockId)?.versionInForce).toBe(r.versionAfter);
      await world.advance(90 * 60_000);
      const time = decodeMessage(await world.authorityClientFor('resident').signedTime(door.lockId, new Uint8Array(16).fill(7)));
      if (time.type !== 'signedTime') throw new Error(`expected signed time, got ${time.type}`);
      expect(time.body.time).toBe(Math.floor(world.clock.nowMs() / 1000));
    } finally {
      await world.close();
    }
    // Closed: nothing answers at its address any more.
    await expect(fetch(`${world.url}/v1/health`)).rejects.toThrow();
  });

  it('a property the thread cannot open fails the start in one line, and the clock is no longer mirrored', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'locksync-authority-thread-'));
    const clock = new FakeClock(1_800_000_000_000);
    try {
      await expect(startAuthorityThread({ dbPath: join(dir, 'missing.db'), host: '127.0.0.1', maxWaitSeconds: 0, clock })).rejects.toThrow(/^authority thread: NOT_INITIALIZED: .*missing\.db does not exist/);
      expect(clock.onChange).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('FakeClock.onChange', () => {
  it('hears every move of the clock, each before the timers due at that time fire', () => {
    const clock = new FakeClock(1000);
    const heard: string[] = [];
    clock.onChange = (ms) => heard.push(`now ${ms}`);
    clock.setTimer(10, () => heard.push(`timer at ${clock.nowMs()}`));
    clock.setTimer(25, () => heard.push(`timer at ${clock.nowMs()}`));
    clock.advance(30);
    clock.advance(0);
    expect(heard).toEqual(['now 1010', 'timer at 1010', 'now 1025', 'timer at 1025', 'now 1030']);
  });
});
