// A fleet spread over worker processes: every shard joins the one property (here a SQLite
// file shared by the workers' authority processes), provisions its own locks, and every lock
// is synced once with its receipt at the authority.
import { describe, expect, it } from 'vitest';
import { benchShardedFleet } from '../bench/fleet-shards';

describe('fleet across processes', () => {
  it('two worker processes, one property: every lock of every shard is synced, requests are timed', async () => {
    const r = await benchShardedFleet({ locks: 6, workers: 2, credentialsPerLock: 2 });
    expect(r.errors).toEqual([]);
    expect(r.synced).toBe(6);
    expect(r.requests).toBeGreaterThanOrEqual(6 * 2); // at least fetch + receipt per sync
    expect(r.requestP99Ms).toBeGreaterThan(0);
  }, 300_000);
});
