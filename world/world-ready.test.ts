// World.create hands out a world only once its authority answers over HTTP (GET /v1/health),
// which is also the process's first fetch: the HTTP client is loaded before any Door Sync.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { World } from './world';

afterEach(() => vi.restoreAllMocks());

describe('World.create', () => {
  it('asks the authority GET /v1/health, and gets its answer, before it returns', async () => {
    const asked: { url: string; status: number }[] = [];
    const realFetch = globalThis.fetch;
    vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
      const res = await realFetch(input, init);
      asked.push({ url: String(input), status: res.status });
      return res;
    });
    const world = await World.create({ seed: 'world-ready', transport: 'sim', doors: [{ name: 'door' }], phones: ['phone'] });
    try {
      expect(asked[0]).toEqual({ url: `${world.url}/v1/health`, status: 200 });
    } finally {
      await world.close();
    }
  });
});
