// The outbox: how an authority's answer is classified (transient → retry, caller → stop and
// keep, item → dead letter), and that a dead letter never blocks the rest of the queue.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HttpAuthorityClient, refusalOf, type AuthorityApi } from './authority-client';
import { CourierCache, CourierCacheError } from './courier';
import { AgentError } from './errors';
import { classifyDeliveryFailure, deliverQueued, deliverWithFresh } from './outbox';

const WHAT = 'POST /v1/locks/lk-0001/audit';
const BASE = 'http://127.0.0.1:1';
const body = (code: string, message = 'why') => ({ error: { code, message } });

describe('classifying an authority answer', () => {
  it.each([
    ['no answer at all', new AgentError('AUTHORITY_UNREACHABLE', 'connection refused'), 'transient'],
    ['503', refusalOf(503, body('INTERNAL'), WHAT, BASE), 'transient'],
    ['500 with an HTML body (a proxy)', refusalOf(500, undefined, WHAT, BASE), 'transient'],
    ['429', refusalOf(429, {}, WHAT, BASE), 'transient'],
    ['401', refusalOf(401, body('UNAUTHORIZED'), WHAT, BASE), 'caller'],
    ['403', refusalOf(403, body('FORBIDDEN'), WHAT, BASE), 'caller'],
    ['404 no such route (wrong base URL)', refusalOf(404, body('NOT_FOUND'), WHAT, BASE), 'caller'],
    ['405', refusalOf(405, body('METHOD_NOT_ALLOWED'), WHAT, BASE), 'caller'],
    ['200 that is not JSON (not an authority)', refusalOf(200, undefined, WHAT, BASE), 'caller'],
    ['404 UNKNOWN_LOCK', refusalOf(404, body('UNKNOWN_LOCK'), WHAT, BASE), 'item'],
    ['409 AUDIT_CHAIN_MISMATCH', refusalOf(409, body('AUDIT_CHAIN_MISMATCH'), WHAT, BASE), 'item'],
    ['422 BAD_RECEIPT', refusalOf(422, body('BAD_RECEIPT'), WHAT, BASE), 'item'],
    ['400 VALIDATION', refusalOf(400, body('VALIDATION'), WHAT, BASE), 'item'],
  ] as const)('%s → %s', (_name, err, cls) => {
    expect(classifyDeliveryFailure(err)).toBe(cls);
  });

  it('maps statuses to the exit codes of cli/errors.ts and names what the route takes on 401/403', () => {
    expect(refusalOf(401, body('UNAUTHORIZED', 'unknown bearer token'), WHAT, BASE)).toMatchObject({ reason: 'AUTHORITY_AUTH_REFUSED', exitCode: 12 });
    expect(refusalOf(401, body('UNAUTHORIZED', 'unknown bearer token'), WHAT, BASE).message).toMatch(/HTTP 401 UNAUTHORIZED: unknown bearer token; .* takes a device token/);
    expect(refusalOf(404, body('UNKNOWN_LOCK', 'no lock lk-9'), WHAT, BASE)).toMatchObject({ reason: 'AUTHORITY_REFUSED', exitCode: 13 });
    expect(refusalOf(404, body('UNKNOWN_LOCK', 'no lock lk-9'), WHAT, BASE).message).toMatch(/not found at the authority: HTTP 404 UNKNOWN_LOCK: no lock lk-9/);
    expect(refusalOf(409, body('AUDIT_CHAIN_MISMATCH', 'record 3 differs'), WHAT, BASE).message).toMatch(/HTTP 409 AUDIT_CHAIN_MISMATCH: record 3 differs/);
    expect(refusalOf(502, undefined, WHAT, BASE)).toMatchObject({ reason: 'AUTHORITY_UNREACHABLE', exitCode: 6 });
  });

  it('a value that is not an authority answer is not swallowed', () => {
    expect(() => classifyDeliveryFailure(new TypeError('bug'))).toThrow(TypeError);
  });
});

describe('HttpAuthorityClient against a live HTTP server', () => {
  let server: Server;
  let url: string;
  let answer: { status: number; body: string } = { status: 200, body: '{}' };
  beforeAll(async () => {
    server = createServer((_req, res) => {
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(answer.body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => new Promise<void>((r) => server.close(() => r())));

  it.each([
    [401, JSON.stringify(body('UNAUTHORIZED', 'unknown bearer token')), 'AUTHORITY_AUTH_REFUSED'],
    [403, JSON.stringify(body('FORBIDDEN', 'a partner token may not call it')), 'AUTHORITY_AUTH_REFUSED'],
    [404, JSON.stringify(body('UNKNOWN_LOCK', 'no lock lk-0001')), 'AUTHORITY_REFUSED'],
    [409, JSON.stringify(body('AUDIT_CHAIN_MISMATCH', 'differs')), 'AUTHORITY_REFUSED'],
    [503, '<html>busy</html>', 'AUTHORITY_UNREACHABLE'],
    [200, '<html>a web page</html>', 'AUTHORITY_REFUSED'],
  ] as const)('HTTP %i → %s', async (status, text, reason) => {
    answer = { status, body: text };
    const err = await new HttpAuthorityClient(url, 'lst_x').postAudit('lk-0001', new Uint8Array([1])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).reason).toBe(reason);
    expect((err as AgentError).authority?.status).toBe(status);
  });

  it('a closed port is unreachable, named as such', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const err = (await new HttpAuthorityClient(`http://127.0.0.1:${port}`, 'lst_x').updates('lk-0001', 0).catch((e: unknown) => e)) as AgentError;
    expect(err.reason).toBe('AUTHORITY_UNREACHABLE');
    expect(err.message).toMatch(/connection refused/);
    expect(err.authority).toBeUndefined();
  });
});

/** An authority whose answers the test scripts, per item kind. */
function scriptedAuthority(answers: { receipt?: (n: number) => AgentError | undefined; audit?: (n: number) => AgentError | undefined }) {
  const posted: { kind: 'receipt' | 'audit'; bytes: number[] }[] = [];
  let n = 0;
  const api: AuthorityApi = {
    updates: async () => ({ lockId: 'lk-0001', from: 0, to: 0, messages: [] }),
    signedTime: async () => new Uint8Array(),
    postReceipt: async (_l, m) => {
      const e = answers.receipt?.(n++);
      if (e) throw e;
      posted.push({ kind: 'receipt', bytes: [...m] });
      return { version: 1 };
    },
    postAudit: async (_l, m) => {
      const e = answers.audit?.(n++);
      if (e) throw e;
      posted.push({ kind: 'audit', bytes: [...m] });
      return { accepted: 1 };
    },
  };
  return { api, posted };
}

describe('delivering the outbox', () => {
  let dir: string;
  let cache: CourierCache;
  const mismatch = () => refusalOf(409, body('AUDIT_CHAIN_MISMATCH', 'record 3 differs from the stored chain'), WHAT, BASE);
  const fill = (): string[] => [
    cache.queue('lk-0001', 'receipt', new Uint8Array([1])),
    cache.queue('lk-0001', 'audit', new Uint8Array([2])),
    cache.queue('lk-0001', 'receipt', new Uint8Array([3])),
    cache.queue('lk-0002', 'receipt', new Uint8Array([4])),
  ];
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const fresh = () => {
    dir = mkdtempSync(join(tmpdir(), 'locksync-outbox-'));
    cache = new CourierCache(dir);
  };

  it('a permanent refusal dead-letters that item with its reason; the items behind it are delivered', async () => {
    fresh();
    const [r1, a1, r2, r4] = fill();
    const { api, posted } = scriptedAuthority({ audit: mismatch });
    const report = await deliverQueued(cache, api);
    expect(report.delivered.map((d) => d.id)).toEqual([r1, r2, r4]);
    expect(report.deadLettered.map((d) => d.id)).toEqual([a1]);
    expect(report.stoppedBy).toBeUndefined();
    expect(posted.map((p) => p.bytes[0])).toEqual([1, 3, 4]);
    expect(cache.queued()).toEqual([]);
    const [dead] = cache.deadLetters();
    expect(dead).toMatchObject({ id: a1, lockId: 'lk-0001', kind: 'audit', refusal: { status: 409, code: 'AUDIT_CHAIN_MISMATCH', reason: 'record 3 differs from the stored chain' } });
    expect([...(dead?.message ?? [])]).toEqual([2]);

    // A later delivery is not blocked (nor retried) by the dead letter.
    const again = await deliverQueued(cache, scriptedAuthority({}).api);
    expect(again).toMatchObject({ delivered: [], kept: [], deadLettered: [] });

    // Found by a unique prefix; requeued after the cause is fixed, it is delivered.
    expect(cache.find((a1 ?? '').slice(0, 6))).toMatchObject({ state: 'dead', item: { id: a1 } });
    expect(cache.requeue('lk-0001', a1 ?? '')).toBe(true);
    expect(cache.queued().map((q) => q.id)).toEqual([a1]);
    const fixed = await deliverQueued(cache, scriptedAuthority({}).api);
    expect(fixed.delivered.map((d) => d.id)).toEqual([a1]);
    expect(cache.deadLetters()).toEqual([]);
  });

  it('a transient failure keeps every item queued, counts the attempt, and stops', async () => {
    fresh();
    const ids = fill();
    const down = () => new AgentError('AUTHORITY_UNREACHABLE', 'connection refused');
    const { api, posted } = scriptedAuthority({ receipt: down, audit: down });
    const report = await deliverQueued(cache, api);
    expect(posted).toEqual([]);
    expect(report.delivered).toEqual([]);
    expect(report.deadLettered).toEqual([]);
    expect(report.kept.map((k) => k.id)).toEqual(ids);
    expect(report.stoppedBy?.class).toBe('transient');
    expect(cache.queued().map((q) => q.id)).toEqual(ids);
    expect(cache.outbox('lk-0001')[0]).toMatchObject({ attempts: 1, lastError: expect.stringMatching(/connection refused/) });
    expect(cache.deadLetters()).toEqual([]);
  });

  it('a refused token (401) keeps every item queued and dead-letters nothing: the token is wrong, not the items', async () => {
    fresh();
    const ids = fill();
    const refused = () => refusalOf(401, body('UNAUTHORIZED', 'unknown bearer token'), WHAT, BASE);
    const report = await deliverQueued(cache, scriptedAuthority({ receipt: refused, audit: refused }).api);
    expect(report.stoppedBy?.class).toBe('caller');
    expect(report.stoppedBy?.error.reason).toBe('AUTHORITY_AUTH_REFUSED');
    expect(cache.queued().map((q) => q.id)).toEqual(ids);
    expect(cache.deadLetters()).toEqual([]);
  });

  it('a fresh receipt and audit export go in one relay call, each judged on its own: a refused export is dead-lettered, the receipt delivered', async () => {
    fresh();
    const calls: string[] = [];
    const api: AuthorityApi = {
      ...scriptedAuthority({}).api,
      postReceipt: async () => (calls.push('receipt'), { version: 1 }),
      postAudit: async () => (calls.push('audit'), { accepted: 1 }),
      postRelay: async (_l, items) => {
        calls.push(`relay ${Object.keys(items).join('+')}`);
        return { receipt: { ok: true, version: 1 }, audit: { ok: false, error: mismatch() } };
      },
    };
    const report = await deliverWithFresh(cache, api, 'lk-0001', [
      { kind: 'receipt', message: new Uint8Array([7]) },
      { kind: 'audit', message: new Uint8Array([8]) },
    ]);
    expect(calls).toEqual(['relay receipt+audit']);
    expect(report.delivered.map((d) => d.id)).toEqual([report.freshIds[0]]);
    expect(report.deadLettered.map((d) => d.id)).toEqual([report.freshIds[1]]);
    expect(report.stoppedBy).toBeUndefined();
    expect(cache.queued()).toEqual([]);
  });

  it('a relay call that gets no answer keeps both fresh items queued and stops', async () => {
    fresh();
    const api: AuthorityApi = {
      ...scriptedAuthority({}).api,
      postRelay: async () => {
        throw new AgentError('AUTHORITY_UNREACHABLE', 'connection refused');
      },
    };
    const report = await deliverWithFresh(cache, api, 'lk-0001', [
      { kind: 'receipt', message: new Uint8Array([7]) },
      { kind: 'audit', message: new Uint8Array([8]) },
    ]);
    expect(report.delivered).toEqual([]);
    expect(report.stoppedBy?.class).toBe('transient');
    expect(cache.queued().map((q) => q.id)).toEqual(report.freshIds);
    expect(cache.deadLetters()).toEqual([]);
  });

  it('the same bytes queued twice are one item; a cache file written before item ids still reads', async () => {
    fresh();
    const a = cache.queue('lk-0003', 'receipt', new Uint8Array([9]));
    expect(cache.queue('lk-0003', 'receipt', new Uint8Array([9]))).toBe(a);
    expect(cache.outbox('lk-0003')).toHaveLength(1);
    writeFileSync(join(dir, 'lk-0004.json'), JSON.stringify({ lockId: 'lk-0004', updates: [], outbox: [{ kind: 'audit', message: '0a0b', collectedAt: '2026-01-01T00:00:00.000Z' }] }));
    const [old] = cache.outbox('lk-0004');
    expect(old).toMatchObject({ kind: 'audit', attempts: 0 });
    expect(old?.id).toMatch(/^[0-9a-f]{12}$/);
    cache.remove('lk-0004', old?.id ?? '');
    expect(cache.outbox('lk-0004')).toEqual([]);
  });

  it('a cache file that is not JSON is a named error, and is left as it was', () => {
    fresh();
    const p = join(dir, 'lk-0005.json');
    writeFileSync(p, '{ truncated');
    expect(() => cache.outbox('lk-0005')).toThrow(CourierCacheError);
    expect(readFileSync(p, 'utf8')).toBe('{ truncated');
  });
});

describe('a --cache that is a file, not a directory', () => {
  it('listing and writing end as CourierCacheError (exit 16), not an internal error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'locksync-cache-file-'));
    const file = join(dir, 'not-a-dir');
    writeFileSync(file, 'x');
    expect(() => new CourierCache(file)).toThrow(CourierCacheError);
    const cache = new CourierCache(file, { create: false });
    expect(() => cache.locks()).toThrow(CourierCacheError);
    expect(() => cache.queue('lk-0001', 'receipt', new Uint8Array([1]))).toThrow(CourierCacheError);
    expect(readFileSync(file, 'utf8')).toBe('x');
    rmSync(dir, { recursive: true, force: true });
  });
});
