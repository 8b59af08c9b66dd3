// A fleet spread over worker processes: every shard joins the one property (here a SQLite
// file shared by the workers' authority processes), provisions its own locks in chunks
// (bulk statements), and every lock is synced once with its receipt at the authority.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { benchShardedFleet, collectOutput } from '../bench/fleet-shards';
import { World } from '../world/index';

describe('fleet across processes', () => {
  it('two worker processes, one property, locks provisioned in chunks: every lock of every shard is synced, requests are timed', async () => {
    // 7 locks: shards of 4 and 3, chunks of 2 — so a shard's last chunk is a partial one.
    const r = await benchShardedFleet({ locks: 7, workers: 2, credentialsPerLock: 2, chunk: 2 });
    expect(r.errors).toEqual([]);
    expect(r.provisioned).toBe(7);
    expect(r.synced).toBe(7);
    expect(r.inForceAtAuthority).toBe(7); // the authority's own count agrees with the shards'
    expect(r.requests).toBeGreaterThanOrEqual(7 * 2); // at least fetch + receipt per sync
    expect(r.requestP99Ms).toBeGreaterThan(0);
    expect(r.serverP99Ms).toBeGreaterThan(0);
    expect(r.databaseBytes).toBeGreaterThan(0);
    expect(r.setupRoundTripsPerLock).toBe(0); // SQLite: no PostgreSQL round trips
  }, 300_000);

  it('in waves (each chunk synced as soon as it is provisioned) every lock is synced too', async () => {
    const r = await benchShardedFleet({ locks: 4, workers: 2, credentialsPerLock: 1, chunk: 1, mode: 'waves' });
    expect(r.errors).toEqual([]);
    expect(r.synced).toBe(4);
  }, 300_000);
});

describe("a worker's report", () => {
  it('arrives whole when it is megabytes long and the worker exits right after it (written before exit, read on close)', async () => {
    // A shard's report is its last stdout line; at 100,000 locks it carries every request's
    // latency (over a megabyte), and a reader that stopped at 'exit' lost its end.
    const script = "import { exitAfterWriting } from './bench/fleet-shards.ts'; process.stdout.write('progress\\n'); exitAfterWriting(JSON.stringify({ samples: Array.from({ length: 400000 }, (_, i) => i) }) + '\\n', 0);";
    for (let i = 0; i < 3; i++) {
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      const { code, out } = await collectOutput(child);
      expect(code).toBe(0);
      const report = JSON.parse(out.trim().split('\n').at(-1) ?? '') as { samples: number[] };
      expect(report.samples).toHaveLength(400000);
    }
  }, 60_000);
});

describe('a world adopting locks provisioned in bulk', () => {
  it('installs, registers and serves them; a phone syncs each; a door already in the world is refused', async () => {
    const w = await World.create({ seed: 'bulk-doors', transport: 'sim', doors: [], phones: ['resident'] });
    try {
      const a = w.authority;
      const user = a.addUser({ name: 'Resident' });
      w.enrolPhone('resident', { userId: user.id });
      const specs = [{ name: 'Unit 1' }, { name: 'Unit 2' }];
      const made = a.batch(() => {
        const m = a.addDoorsWithLocks(specs);
        const key = a.createKey({ name: 'Units', doors: m.map((x) => ({ doorId: x.door.id, doorcodesEnabled: false })) });
        a.assignKey(user.id, key.id);
        return m;
      });
      const entries = made.map((m, i) => ({ spec: specs[i]!, info: m.door, bundle: m.bundle }));
      await w.addProvisionedDoors(entries);
      expect(a.listLocks().map((l) => [l.lockId, l.version, l.deviceRegistered])).toEqual([
        ['lk-0001', 1, true],
        ['lk-0002', 1, true],
      ]);
      for (const s of specs) {
        w.moveTo('resident', s.name);
        const r = await w.sync('resident', s.name, { attempts: 1 });
        expect(r.receiptDelivered).toBe(true);
        expect(r.versionAfter).toBe(1);
        // The lock's token (registered in bulk) is the one its uplink would use.
        expect(w.door(s.name).lockToken).toMatch(/^lst_/);
      }
      await expect(w.addProvisionedDoors(entries.slice(0, 1))).rejects.toThrow(/already in this world/);
    } finally {
      await w.close();
    }
  }, 120_000);
});
