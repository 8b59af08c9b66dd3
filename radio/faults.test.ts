// Faults on the controller clock: blackout windows, HCI latency jitter, host-robustness
// corruption, a mid-session HCI_Reset, a terminate with a chosen reason, a seeded schedule.
import { describe, expect, it } from 'vitest';
import { EventCode, Op } from './hci';
import type { ManualClock } from './clock';
import { MiniHost, connectPair, createMiniWorld, type MiniWorld } from './mini-host';
import { startRadio, type Radio } from './radio';

function pair(seed = 1) {
  const world = createMiniWorld({ seed, policies: [{ intervalMs: 30, supervisionTimeoutMs: 400 }, {}] });
  const [central, peripheral] = world.hosts as [MiniHost, MiniHost];
  const handles = connectPair(world, central, peripheral);
  world.clock.advanceBy(100_000);
  return { world, central, peripheral, ...handles };
}

const reasons = (host: MiniHost): number[] => host.eventsWithCode(EventCode.DISCONNECTION_COMPLETE).map((e) => e.params[3]!);

describe('faults', () => {
  it('a blackout shorter than the supervision timeout is survived; a longer one kills the link with 0x08', () => {
    const { world, central, peripheral } = pair();
    const now = world.clock.nowUs();
    world.medium.blackouts.push({ startUs: now, endUs: now + 300_000, controllers: ['c2'] });
    world.clock.advanceBy(1_000_000);
    expect(reasons(central)).toEqual([]);
    const later = world.clock.nowUs();
    world.medium.blackouts.push({ startUs: later, endUs: later + 600_000, controllers: [] });
    world.clock.advanceBy(1_000_000);
    expect(reasons(central)).toEqual([0x08]);
    expect(reasons(peripheral)).toEqual([0x08]);
  });

  it('mid-session HCI_Reset: the resetting host hears nothing, the peer times out with 0x08', () => {
    const { world, central, peripheral } = pair();
    central.command(Op.RESET);
    world.clock.advanceBy(1_000_000);
    expect(reasons(central)).toEqual([]);
    expect(reasons(peripheral)).toEqual([0x08]);
    expect(world.air.links.size).toBe(0);
  });

  it('host Disconnect: peer gets the given reason, local host 0x16', () => {
    const { world, central, peripheral, centralHandle } = pair();
    expect(central.command(Op.DISCONNECT, Buffer.from([centralHandle, 0, 0x13]))).toMatchObject({ kind: 'status', status: 0 });
    world.clock.advanceBy(100_000);
    expect(reasons(central)).toEqual([0x16]);
    expect(reasons(peripheral)).toEqual([0x13]);
  });

  it('latency jitter delays controller→host packets but keeps their order', () => {
    const { world, central, peripheral, centralHandle } = pair();
    peripheral.controller.jitterUs = 20_000;
    const sentAt = world.clock.nowUs();
    for (let i = 0; i < 5; i++) central.sendAcl(centralHandle, 0, Buffer.from([1, 0, 4, 0, i]));
    world.clock.advanceBy(200_000);
    expect(peripheral.acl.map((p) => p.data[4])).toEqual([0, 1, 2, 3, 4]);
    expect(peripheral.acl.at(-1)!.atUs - sentAt).toBeGreaterThan(0);
  });

  it('HCI corruption (host-robustness fault) flips bits only in the packets it is told to', () => {
    const { world, central } = pair();
    void world;
    central.controller.corruptHciBytes(1, 1);
    const before = central.port.received.length;
    central.command(Op.READ_BD_ADDR);
    const corrupted = central.port.received[before]!;
    const clean = central.command(Op.READ_BD_ADDR);
    expect(clean.status).toBe(0);
    expect(corrupted.equals(central.port.received.at(-1)!)).toBe(false);
  });

  it('a seeded schedule drops the link at a model time with the chosen reason, deterministically', async () => {
    const run = async (seed: number): Promise<Array<[number, number]>> => {
      const radio: Radio = await startRadio({ dir: '/tmp/radio-faults-unused', controllers: ['phone', 'lock'], transport: 'memory', seed });
      const clock = radio.clock as ManualClock;
      const [phone, lock] = radio.controllers.map((c) => {
        const host = new MiniHost(c.controller, clock);
        host.initialize();
        return host;
      }) as [MiniHost, MiniHost];
      connectPair({ clock } as MiniWorld, phone, lock);
      radio.faults.schedule([{ atMs: 500, op: 'dropLink', controller: 'phone', mode: 'terminate', reason: 0x3d }]);
      clock.advanceTo(1_000_000);
      const events = [phone, lock].flatMap((h) => h.eventsWithCode(EventCode.DISCONNECTION_COMPLETE).map((e): [number, number] => [e.params[3]!, e.atUs]));
      await radio.close();
      return events;
    };
    const first = await run(11);
    expect(first).toEqual([[0x3d, 500_000], [0x3d, 500_000]]);
    expect(await run(11)).toEqual(first);
  });
});
