// The phone's HTTP client against a server that drops connections: an idempotent GET is sent
// again once on a fresh connection; a POST never is (the authority may have acted on it).
// Its updates fetch: CBOR from an authority that has it, JSON from one that does not, and a
// typed refusal for a body that is neither.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpAuthorityClient } from './authority-client';
import { AgentError } from './errors';
import { deriveSeed32, encodeUpdatesBody, keyPairFromSeed, toHex } from '../protocol/index';
import { startAuthorityServer } from '../authority/server';
import { tempProperty } from '../authority/test-support';

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

describe('HttpAuthorityClient.updates: CBOR when the authority has it, JSON from one that does not', () => {
  const messages = [Uint8Array.from([0xa1, 0x00, 0x01]), new Uint8Array(5000).fill(0x5a)];

  /** A server answering every request with `answer`, recording each request's Accept. */
  async function answering(answer: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<{ url: string; accepts: (string | undefined)[] }> {
    const accepts: (string | undefined)[] = [];
    server = http.createServer((req, res) => {
      accepts.push(req.headers.accept);
      answer(req, res);
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    return { url: `http://127.0.0.1:${(server!.address() as AddressInfo).port}`, accepts };
  }
  const cbor = (body: Uint8Array) => (_req: http.IncomingMessage, res: http.ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/cbor', 'content-length': body.length });
    res.end(body);
  };
  const jsonAnswer = (status: number, body: unknown) => (_req: http.IncomingMessage, res: http.ServerResponse) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify(body));
  };

  it('asks for application/cbor and reads the messages as bytes', async () => {
    const s = await answering(cbor(encodeUpdatesBody({ lockId: 'lk-0001', from: 0, to: 3, messages })));
    const got = await new HttpAuthorityClient(s.url, 'token').updates('lk-0001', 0);
    expect(got).toEqual({ lockId: 'lk-0001', from: 0, to: 3, messages });
    expect(s.accepts[0]).toMatch(/^application\/cbor\b/);
  });

  it('reads a JSON answer (an authority from before CBOR) the same way', async () => {
    const s = await answering(jsonAnswer(200, { lockId: 'lk-0001', from: 2, to: 3, messages: messages.map(toHex) }));
    expect(await new HttpAuthorityClient(s.url, 'token').updates('lk-0001', 2)).toEqual({ lockId: 'lk-0001', from: 2, to: 3, messages });
  });

  it('a malformed CBOR body is AUTHORITY_REFUSED naming why, never a crash', async () => {
    const good = encodeUpdatesBody({ lockId: 'lk-0001', from: 0, to: 3, messages });
    const bad: [string, Uint8Array][] = [
      ['truncated', good.subarray(0, good.length - 10)],
      ['trailing bytes', Uint8Array.from([...good, 0x00])],
      ['an array, not a map', Uint8Array.from([0x80])],
      ['a message as text', Uint8Array.from([0xa4, 0x01, 0x61, 0x78, 0x02, 0x00, 0x03, 0x01, 0x04, 0x81, 0x61, 0x78])],
      ['a byte string claiming 4 GiB', Uint8Array.from([0xa4, 0x01, 0x61, 0x78, 0x02, 0x00, 0x03, 0x01, 0x04, 0x81, 0x5a, 0xff, 0xff, 0xff, 0xff])],
      ['empty', new Uint8Array(0)],
    ];
    for (const [what, body] of bad) {
      const s = await answering(cbor(body));
      const err = await new HttpAuthorityClient(s.url, 'token').updates('lk-0001', 0).catch((e: unknown) => e);
      expect(err, what).toBeInstanceOf(AgentError);
      expect(err, what).toMatchObject({ reason: 'AUTHORITY_REFUSED', authority: { status: 200 } });
      expect((err as AgentError).message, what).toMatch(/application\/cbor body that is not an updates answer/);
      await new Promise<void>((r) => server!.close(() => r()));
      server = undefined;
    }
  });

  it('a JSON success that is not an updates answer (bad hex, missing field) is AUTHORITY_REFUSED', async () => {
    for (const body of [{ lockId: 'lk-0001', from: 0, to: 1, messages: ['zz'] }, { lockId: 'lk-0001', from: 0, messages: [] }]) {
      const s = await answering(jsonAnswer(200, body));
      await expect(new HttpAuthorityClient(s.url, 'token').updates('lk-0001', 0)).rejects.toMatchObject({ reason: 'AUTHORITY_REFUSED', message: /not an updates answer/ });
      await new Promise<void>((r) => server!.close(() => r()));
      server = undefined;
    }
  });

  it('a JSON refusal while CBOR was asked for is classified as before', async () => {
    const s = await answering(jsonAnswer(403, { error: { code: 'FORBIDDEN', message: 'a device token may not …; it takes …' } }));
    await expect(new HttpAuthorityClient(s.url, 'token').updates('lk-0001', 0)).rejects.toMatchObject({ reason: 'AUTHORITY_AUTH_REFUSED', authority: { status: 403, code: 'FORBIDDEN' } });
  });

  it('against the real authority: the CBOR answer holds the very messages of the JSON one', async () => {
    const p = tempProperty();
    const srv = await startAuthorityServer({ dbPath: p.dbPath, port: 0, authority: p.authority });
    try {
      const a = p.authority;
      const doorId = a.addDoor({ name: 'Lobby' }).id;
      const key = a.createKey({ name: 'Residents', doors: [{ doorId, doorcodesEnabled: false }] });
      for (let i = 0; i < 30; i++) {
        const u = a.addUser({ name: `R${i}` });
        a.assignKey(u.id, key.id);
        a.enrolUserDevice(u.id, toHex(keyPairFromSeed(deriveSeed32('client-cbor', String(i))).publicKey));
      }
      const { lockId } = a.provisionLock(doorId);
      const got = await new HttpAuthorityClient(srv.url, p.managerToken).updates(lockId, 0);
      const viaJson = a.updatesFor(lockId, 0);
      expect(got.to).toBe(viaJson.to);
      expect(got.messages.map(toHex)).toEqual(viaJson.messages);
    } finally {
      await srv.close();
      p.cleanup();
    }
  });
});

describe('HttpAuthorityClient.health', () => {
  async function answering(status: number, body: string): Promise<string> {
    server = http.createServer((_req, res) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(body);
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    return `http://127.0.0.1:${(server!.address() as AddressInfo).port}`;
  }

  it('resolves on {status: "ok"}', async () => {
    await expect(new HttpAuthorityClient(await answering(200, '{"status":"ok"}'), '').health()).resolves.toBeUndefined();
  });

  it('another success body is AUTHORITY_REFUSED; a 503 is AUTHORITY_UNREACHABLE (temporary)', async () => {
    await expect(new HttpAuthorityClient(await answering(200, '{"version":1}'), '').health()).rejects.toMatchObject({ reason: 'AUTHORITY_REFUSED', message: /not a health answer/ });
    await new Promise<void>((r) => server!.close(() => r()));
    server = undefined;
    const down = await answering(503, '{"error":{"code":"STORAGE_UNAVAILABLE","message":"PostgreSQL is unreachable"}}');
    await expect(new HttpAuthorityClient(down, '').health()).rejects.toMatchObject({ reason: 'AUTHORITY_UNREACHABLE', authority: { status: 503, code: 'STORAGE_UNAVAILABLE' } });
  });

  it('nothing listening is AUTHORITY_UNREACHABLE', async () => {
    const url = await answering(200, '{}');
    await new Promise<void>((r) => server!.close(() => r()));
    server = undefined;
    await expect(new HttpAuthorityClient(url, '').health()).rejects.toMatchObject({ reason: 'AUTHORITY_UNREACHABLE' });
  });
});
