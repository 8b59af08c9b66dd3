// The phone's HTTP client against a server that drops connections: an idempotent GET is sent
// again once on a fresh connection; a POST never is (the authority may have acted on it).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpAuthorityClient } from './authority-client';
import { AgentError } from './errors';

let server: http.Server | undefined;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

/** A server that destroys the first `drops` requests' sockets, then answers. */
async function flakyServer(drops: number): Promise<{ url: string; seen: () => number }> {
  let seen = 0;
  server = http.createServer((req, res) => {
    seen++;
    if (seen <= drops) {
      req.socket.destroy();
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(req.method === 'GET' ? { signedTime: 'a0' } : { version: 1 }));
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server!.address() as AddressInfo).port}`, seen: () => seen };
}

describe('HttpAuthorityClient on a connection the server reset', () => {
  it('sends a GET again once and succeeds', async () => {
    const s = await flakyServer(1);
    const client = new HttpAuthorityClient(s.url, 'token');
    await expect(client.signedTime('lk-0001', new Uint8Array(16))).resolves.toEqual(Uint8Array.from([0xa0]));
    expect(s.seen()).toBe(2);
  });

  it('does not send a GET a third time: two resets are AUTHORITY_UNREACHABLE', async () => {
    const s = await flakyServer(2);
    const client = new HttpAuthorityClient(s.url, 'token');
    await expect(client.signedTime('lk-0001', new Uint8Array(16))).rejects.toMatchObject({ reason: 'AUTHORITY_UNREACHABLE' });
    expect(s.seen()).toBe(2);
  });

  it('never sends a POST again: the authority may have acted on it', async () => {
    const s = await flakyServer(1);
    const client = new HttpAuthorityClient(s.url, 'token');
    const err = await client.postReceipt('lk-0001', new Uint8Array([1])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect(err).toMatchObject({ reason: 'AUTHORITY_UNREACHABLE' });
    expect(s.seen()).toBe(1);
  });
});
