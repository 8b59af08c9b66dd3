// The courier cache's file layout: a fetched chain's bytes in their own file beside the
// lock's JSON (which stays small however large the snapshot), read back byte for byte; a
// cache written with hex messages inside the JSON still reads; a chain whose file is gone
// or cut is a named CourierCacheError, not a crash or a wrong update.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SeededRandom, toHex } from '../protocol/index';
import { CourierCache, CourierCacheError } from './courier';

const dirs: string[] = [];
function cacheDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'locksync-courier-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A snapshot-shaped message (its first four bytes are a snapshot's: {0: 4, 1: …}) and a delta-shaped one. */
function messages(seed: string): { snapshot: Uint8Array; delta: Uint8Array } {
  const r = new SeededRandom(seed);
  const snapshot = new Uint8Array([0xa2, 0x00, 0x04, 0x01, ...r.bytes(299_999)]);
  const delta = new Uint8Array([0xa2, 0x00, 0x03, 0x01, ...r.bytes(199)]);
  return { snapshot, delta };
}

describe('courier cache files', () => {
  it('keeps a 300 kB chain beside a small JSON, and gives back the same bytes', () => {
    const dir = cacheDir();
    const cache = new CourierCache(dir);
    const { snapshot, delta } = messages('courier-cache/1');
    cache.storeUpdates({ lockId: 'lk-1', from: 0, to: 4, messages: [snapshot, delta] });
    expect(fs.statSync(path.join(dir, 'lk-1.json')).size).toBeLessThan(2048);
    const got = cache.updatesFor('lk-1', 0);
    expect(got?.messages.map(toHex)).toEqual([toHex(snapshot), toHex(delta)]);
    // A chain that starts with a snapshot serves a lock at any older version too.
    expect(new CourierCache(dir).updatesFor('lk-1', 2)?.to).toBe(4);
    // Replacing the chain from the same version leaves one chain file, the new one.
    const next = messages('courier-cache/2');
    cache.storeUpdates({ lockId: 'lk-1', from: 0, to: 5, messages: [next.snapshot] });
    expect(fs.readdirSync(dir).filter((n) => n.endsWith('.bin'))).toHaveLength(1);
    expect(toHex(cache.updatesFor('lk-1', 0)?.messages[0] as Uint8Array)).toBe(toHex(next.snapshot));
  });

  it('a delta chain serves only the version it starts from', () => {
    const cache = new CourierCache(cacheDir());
    const { delta } = messages('courier-cache/3');
    cache.storeUpdates({ lockId: 'lk-1', from: 3, to: 4, messages: [delta] });
    expect(cache.updatesFor('lk-1', 3)?.to).toBe(4);
    expect(cache.updatesFor('lk-1', 2)).toBeUndefined();
  });

  it('reads a cache written with the messages as hex inside the JSON', () => {
    const dir = cacheDir();
    const { snapshot } = messages('courier-cache/4');
    fs.writeFileSync(
      path.join(dir, 'lk-1.json'),
      JSON.stringify({ lockId: 'lk-1', updates: [{ from: 0, to: 2, messages: [toHex(snapshot)], fetchedAt: '2026-11-01T00:00:00.000Z' }], outbox: [] }),
    );
    const got = new CourierCache(dir).updatesFor('lk-1', 1);
    expect(got?.to).toBe(2);
    expect(toHex(got?.messages[0] as Uint8Array)).toBe(toHex(snapshot));
  });

  it('a chain file that is gone or cut is a CourierCacheError naming the file and what to do', () => {
    const dir = cacheDir();
    const cache = new CourierCache(dir);
    cache.storeUpdates({ lockId: 'lk-1', from: 0, to: 4, messages: [messages('courier-cache/5').snapshot] });
    const bin = fs.readdirSync(dir).find((n) => n.endsWith('.bin')) as string;
    fs.truncateSync(path.join(dir, bin), 1000);
    expect(() => cache.updatesFor('lk-1', 0)).toThrow(CourierCacheError);
    expect(() => cache.updatesFor('lk-1', 0)).toThrow(/holds 1000 bytes, its chain names 300003: delete .*lk-1\.json/);
    fs.rmSync(path.join(dir, bin));
    expect(() => cache.updatesFor('lk-1', 0)).toThrow(/cannot be read \(ENOENT\)/);
  });
});
