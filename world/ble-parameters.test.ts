// A battery lock asks for slower connection parameters once a sync has committed: an L2CAP
// Connection Parameter Update Request on bleno's signalling channel, carried by the radio to
// the phone, whose host answers it and has its controller apply it with LE Connection Update
// (an LL_CONNECTION_UPDATE_IND with an instant) — all in the btsnoop captures.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { traceShow } from '../radio/trace-show';
import { LOCK_IDLE_PARAMETERS } from '../ble/peripheral';
import type { LockConnector } from '../mobile-agent/link';
import { World, controllerName } from './world';

describe('the lock asks for idle connection parameters after a sync (real bleno/noble on the radio)', () => {
  it('sends an L2CAP Connection Parameter Update Request after its receipt; the phone answers and the link moves to 105 ms at its instant', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'locksync-idle-params-'));
    const captureDir = join(dir, 'captures');
    const requests: number[] = [];
    let world: World | undefined;
    try {
      world = await World.create({
        seed: 'idle-params',
        transport: 'ble',
        doors: [{ name: 'Unit 4B' }],
        phones: ['resident'],
        radio: { captureDir, lockIdleParametersAfterSync: true, linkPolicy: { intervalMs: 15 } },
      });
      const a = world.authority;
      const unit = world.door('Unit 4B');
      const key = a.createKey({ name: 'Resident', doors: [{ doorId: unit.doorId, doorcodesEnabled: true }] });
      const user = a.addUser({ name: 'Resident', role: 'resident' });
      a.assignKey(user.id, key.id, { mayShare: false });
      world.enrolPhone('resident', { userId: user.id });
      world.moveTo('resident', 'Unit 4B');
      const radio = world.radio!;
      // Watch the link while the sync runs: after the receipt its interval becomes 105 ms,
      // at the instant the central's LL_CONNECTION_UPDATE_IND named.
      type Update = ReturnType<typeof radio.links>[number]['updates'][number];
      let idleUpdate: Update | undefined;
      let intervalBefore: number | undefined;
      const watch = setInterval(() => {
        for (const l of radio.links()) {
          intervalBefore ??= l.intervalMs;
          idleUpdate ??= l.updates.find((u) => u.kind === 'connection' && u.intervalMs === 105 && l.intervalMs === 105);
        }
      }, 5);
      // The phone's app lingers on the link 1.5 s after its sync (as apps that read more do),
      // so the request, noble's answer and the update's instant all happen on this link.
      const inner = world.phone('resident').connector;
      const lingering: LockConnector = {
        transport: inner.transport,
        scan: (t, f) => inner.scan(t, f),
        forget: (id) => inner.forget(id),
        close: () => inner.close(),
        connect: async (id, o) => {
          const conn = await inner.connect(id, o);
          return new Proxy(conn, {
            get(target, prop) {
              if (prop === 'disconnect') return async () => (await new Promise((res) => setTimeout(res, 1500)), target.disconnect());
              const v = Reflect.get(target, prop, target) as unknown;
              return typeof v === 'function' ? (v as (...args: unknown[]) => unknown).bind(target) : v;
            },
          });
        },
      };
      const r = await world.sync('resident', 'Unit 4B', { connector: lingering });
      clearInterval(watch);
      expect(r.versionAfter).toBeGreaterThan(r.versionBefore);
      requests.push(1);
      const lines: string[] = [];
      traceShow(join(captureDir, `${controllerName('lock', 'Unit 4B')}.btsnoop`), {}, { stdout: (l) => lines.push(l) });
      const lockSide = lines.join('\n');
      // The request leaves the lock's host after its receipt, on the phone's connection handle…
      expect(lockSide).toMatch(/L2CAP LE signalling Connection Parameter Update Request \(id 1\): interval 105\.00–120\.00 ms, latency 4, timeout 6000 ms/);
      const receiptAt = lines.findIndex((l) => /receipt/.test(l));
      const requestAt = lines.findIndex((l) => /Connection Parameter Update Request/.test(l));
      expect(receiptAt).toBeGreaterThanOrEqual(0);
      expect(requestAt).toBeGreaterThan(receiptAt);
      // …and reaches the phone's host over the air.
      const phoneLines: string[] = [];
      traceShow(join(captureDir, `${controllerName('phone', 'resident')}.btsnoop`), {}, { stdout: (l) => phoneLines.push(l) });
      expect(phoneLines.join('\n')).toMatch(/< ACL .*Connection Parameter Update Request \(id 1\)/);
      // The phone's host answers (noble over UART owns its controller: radio/hosts.ts) and
      // asks its controller for the lock's parameters; the link layer applies them at the
      // instant, and both hosts hear LE Connection Update Complete.
      const phoneSide = phoneLines.join('\n');
      expect(phoneSide).toMatch(/> ACL .*Connection Parameter Update Response \(id 1\): Accepted/);
      expect(phoneSide).toMatch(/> CMD LE Connection Update \(0x2013\)/);
      expect(intervalBefore).toBe(15);
      expect(idleUpdate, 'the link layer applied the 105 ms interval at an instant').toBeDefined();
      expect(idleUpdate!.instant).toBeGreaterThan(0);
      expect(idleUpdate!.latency).toBe(LOCK_IDLE_PARAMETERS.latency);
      expect(idleUpdate!.supervisionTimeoutMs).toBe(LOCK_IDLE_PARAMETERS.supervisionTimeoutMs);
      for (const side of [lockSide, phoneSide]) expect(side).toMatch(/< EVT LE Connection Update Complete handle=0x\w+ interval=105\.00 ms latency=4 timeout=6000 ms/);
    } finally {
      await world?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
