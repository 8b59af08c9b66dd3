// `locksync agent …` failure paths, each a separate process with a hard deadline, through
// the real stacks: the virtual radio, `authority serve` over HTTP, `lock run` on bleno and
// the agent on noble. A revocation is pending (the authority is one version ahead of the
// lock) while the agent is given a wrong or missing token, a closed port, a bad URL, bad
// numbers: every case must exit with its documented code and one `error CODE: …` line, and
// leave the lock's flash and the courier cache byte-identical. Then the courier path
// (fetch → sync --offline → deliver) and the dead letters, and a phone key made with
// `agent keygen` that unlocks after enrolment.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Finished, digestTree, expectFailure, locksync, startDaemon, tempDir, timings } from './harness';

const DEADLINE_MS = 60_000; // a hang catcher under a loaded 2-core machine, not a timing goal

let dir: string;
let db: string;
let radioDir: string;
let lockState: string;
let phone: string;
let url: string;
let closedUrl: string;
let residentToken: string;
let partnerToken: string;
let lockId: string;
let annId: number;
let partnerId: number;
let doorId: number;
const daemons: { child: import('node:child_process').ChildProcess; exited: Promise<number | null> }[] = [];

const ok = async (args: string[]): Promise<any> => {
  const r = await locksync(args, { deadlineMs: DEADLINE_MS });
  if (r.code !== 0) throw new Error(`locksync ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? 'null');
};
const auth = (args: string[]): Promise<any> => ok(['authority', ...args, '--db', db, '--json']);
/** Every agent run of this file with its exit code, to report the slowest failure. */
const runs: { args: string; code: number | null; ms: number }[] = [];
const run = async (args: string[]): Promise<Finished> => {
  const r = await locksync(args, { deadlineMs: DEADLINE_MS });
  runs.push({ args: args.join(' '), code: r.code, ms: r.ms });
  return r;
};
const sync = (extra: string[], cache: string): Promise<Finished> => run(['agent', 'sync', '--lock', lockId, '--transport', phone, '--cache', cache, ...extra]);
const lastJson = (r: Finished): any => JSON.parse(r.stdout.trim().split('\n').at(-1) ?? 'null');
let managerToken: string;
/** The authority's view of the lock (over HTTP: a process per look would double the run time). */
const authorityView = async (): Promise<{ version: number; versionInForce: number }> => {
  const res = await fetch(`${url}/v1/manager/locks`, { headers: { authorization: `Bearer ${managerToken}` } });
  const l = ((await res.json()) as { locks: { lockId: string; version: number; versionInForce: number }[] }).locks.find((x) => x.lockId === lockId)!;
  return { version: l.version, versionInForce: l.versionInForce };
};

/** The lock's flash and the phone's cache must be byte-identical after a refused sync. */
async function expectUnchanged(cache: string, body: () => Promise<void>): Promise<void> {
  fs.mkdirSync(cache, { recursive: true });
  const lockBefore = digestTree(lockState);
  const cacheBefore = digestTree(cache);
  const viewBefore = await authorityView();
  await body();
  expect(digestTree(lockState), 'lock flash changed').toBe(lockBefore);
  expect(digestTree(cache), 'courier cache changed').toBe(cacheBefore);
  expect(await authorityView()).toEqual(viewBefore);
}

beforeAll(async () => {
  dir = tempDir('locksync-agent-fail-');
  db = path.join(dir, 'p.db');
  radioDir = path.join(dir, 'radio');
  lockState = path.join(dir, 'lock');
  const radio = await startDaemon(['radio', 'up', '--dir', radioDir, '--controllers', 'lock-1,phone-1', '--seed', '7'], /control\t/, { deadlineMs: DEADLINE_MS });
  daemons.push(radio);
  phone = `uart:${path.join(radioDir, 'phone-1')}`;

  managerToken = (await auth(['init', '--seed', 'agent-fail'])).managerToken;
  const serve = await startDaemon(['authority', 'serve', '--db', db, '--port', '0', '--host', '127.0.0.1', '--json'], /"url"/, { deadlineMs: DEADLINE_MS });
  daemons.push(serve);
  url = (JSON.parse(serve.out().trim().split('\n')[0]!) as { url: string }).url;
  // A port that was just free: nothing listens there.
  const net = await import('node:net');
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  closedUrl = `http://127.0.0.1:${(probe.address() as import('node:net').AddressInfo).port}`;
  await new Promise<void>((r) => probe.close(() => r()));

  const door = await auth(['door', 'add', '--name', 'Lobby', '--communal']);
  doorId = door.id;
  const key = await auth(['key', 'create', '--name', 'Residents', '--door', String(doorId)]);
  const ann = await auth(['user', 'add', '--name', 'Ann']);
  annId = ann.id;
  await auth(['assign', '--user', String(annId), '--key', String(key.id)]);
  const partner = await auth(['partner', 'authorize', '--name', 'Parcel Co']);
  partnerId = partner.partner.id;
  partnerToken = partner.token;
  await auth(['partner', 'assign-door', '--partner', String(partnerId), '--door', String(doorId)]);
  const bundle = path.join(dir, 'bundle.json');
  lockId = (await auth(['provision-lock', '--door', String(doorId), '--out', bundle])).lockId;
  const flashed = await ok(['lock', 'provision', '--state', lockState, '--bundle', bundle, '--seed', 'agent-fail', '--json']);
  await auth(['register-lock', '--lock', lockId, '--public-key', flashed.devicePublicKey]);
  residentToken = (await auth(['device', 'enrol-demo', '--user', String(annId), '--seed', 'ann', '--out', path.join(dir, 'ann.json')])).token;
  await auth(['device', 'enrol-demo', '--partner', String(partnerId), '--seed', 'van', '--out', path.join(dir, 'van.json')]);
  const lock = await startDaemon(['lock', 'run', '--state', lockState, '--transport', `uart:${path.join(radioDir, 'lock-1')}`], /"bleListening"/, { deadlineMs: DEADLINE_MS });
  daemons.push(lock);

  // The lock takes the table; then the manager removes the partner: a revocation is pending.
  const first = await sync(['--authority', url, '--token', residentToken, '--json'], path.join(dir, 'cache-setup'));
  expect(first.code, first.stderr).toBe(0);
  expect(lastJson(first)).toMatchObject({ ok: true, outcome: 'updated', receiptDelivered: true });
  await auth(['partner', 'unassign-door', '--partner', String(partnerId), '--door', String(doorId)]);
  const view = await authorityView();
  expect(view.version).toBeGreaterThan(view.versionInForce);
}, 240_000);

afterAll(async () => {
  for (const d of [...daemons].reverse()) {
    if (d.child.exitCode === null && d.child.signalCode === null) {
      d.child.kill('SIGTERM');
      const killer = setTimeout(() => d.child.kill('SIGKILL'), 10_000);
      await d.exited;
      clearTimeout(killer);
    }
  }
  const slowest = [...timings].sort((a, b) => b.ms - a.ms)[0];
  const failures = runs.filter((r) => r.code !== 0).sort((a, b) => b.ms - a.ms);
  if (slowest) process.stdout.write(`agent failure paths: ${timings.length} processes, slowest ${slowest.ms} ms: locksync ${slowest.args}\n`);
  if (failures[0])
    process.stdout.write(`agent failure paths: ${failures.length} failing runs, slowest to exit ${failures[0].ms} ms (exit ${failures[0].code}): locksync ${failures[0].args}\n`);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('agent sync with a revocation pending never says OK when the authority did not answer yes', () => {
  it('a wrong token: exit 12, naming HTTP 401 and the token the route takes; lock, cache and authority unchanged', async () => {
    const cache = path.join(dir, 'cache-a');
    await expectUnchanged(cache, async () => {
      const r = await sync(['--authority', url, '--token', 'lst_not-a-real-token'], cache);
      expectFailure(r, 'AUTHORITY_AUTH_REFUSED', /HTTP 401 UNAUTHORIZED: unknown bearer token; GET \/v1\/locks\/lk-\d+\/updates takes a device token/);
      expect(r.stdout).not.toMatch(/OK/);
    });
  });

  it('a partner token (wrong kind): exit 12, naming HTTP 403 and the kinds the route takes; --json says so on stdout', async () => {
    const cache = path.join(dir, 'cache-a');
    await expectUnchanged(cache, async () => {
      const r = await sync(['--authority', url, '--token', partnerToken, '--json'], cache);
      expectFailure(r, 'AUTHORITY_AUTH_REFUSED', /HTTP 403 FORBIDDEN: a partner token may not call GET .* it takes a device token/);
      expect(lastJson(r)).toMatchObject({ ok: false, outcome: 'failed', error: { code: 'AUTHORITY_AUTH_REFUSED', exitCode: 12 } });
    });
  });

  it('no token at all: a usage error (exit 2) before anything is contacted', async () => {
    const cache = path.join(dir, 'cache-a');
    await expectUnchanged(cache, async () => {
      expectFailure(await sync(['--authority', url], cache), 'USAGE', /no token was given — pass --token with a device token/);
    });
  });

  it('the authority on a closed port: exit 6, even though the cache could answer, and it is not asked to', async () => {
    // A cache that holds the pending update: without --cache-fallback it must not be used.
    const cache = path.join(dir, 'cache-b');
    const lockVersion = (await authorityView()).versionInForce;
    await ok(['agent', 'fetch', '--lock', lockId, '--authority', url, '--token', residentToken, '--from', String(lockVersion), '--cache', cache, '--json']);
    await expectUnchanged(cache, async () => {
      expectFailure(await sync(['--authority', closedUrl, '--token', residentToken], cache), 'AUTHORITY_UNREACHABLE', /connection refused/);
    });
  });

  it.each([['notaurl'], ['ftp://127.0.0.1/'], ['127.0.0.1:8080']])('--authority %s: a usage error (exit 2)', async (bad) => {
    const cache = path.join(dir, 'cache-a');
    await expectUnchanged(cache, async () => {
      expectFailure(await sync(['--authority', bad, '--token', residentToken], cache), 'USAGE', /--authority must be an http\(s\) URL/);
    });
  });

  it('--offline with nothing cached: exit 7, the lock unchanged', async () => {
    const cache = path.join(dir, 'cache-empty');
    await expectUnchanged(cache, async () => {
      expectFailure(await sync(['--offline'], cache), 'NOTHING_TO_DELIVER', /--offline: the courier cache carries nothing newer than version \d+/);
    });
  });

  it('--cache-fallback with the authority unreachable and nothing cached: exit 6 naming both', async () => {
    const cache = path.join(dir, 'cache-empty');
    await expectUnchanged(cache, async () => {
      expectFailure(await sync(['--authority', closedUrl, '--token', residentToken, '--cache-fallback'], cache), 'AUTHORITY_UNREACHABLE', /connection refused.*the courier cache carries nothing newer/);
    });
  });

  it.each([
    ['--attempts abc', ['--attempts', 'abc'], /--attempts must be an integer/],
    ['--attempts 0', ['--attempts', '0'], /--attempts must be an integer from 1 to 20/],
    ['--offline with --authority', ['--offline'], /--offline and --authority together/],
  ])('%s: a usage error (exit 2)', async (_name, extra, detail) => {
    const cache = path.join(dir, 'cache-a');
    await expectUnchanged(cache, async () => {
      expectFailure(await sync(['--authority', url, '--token', residentToken, ...extra], cache), 'USAGE', detail);
    });
  });

  it('no --authority and no --offline: a usage error (exit 2)', async () => {
    expectFailure(await sync([], path.join(dir, 'cache-a')), 'USAGE', /agent sync needs --authority URL/);
  });
});

describe('other agent commands', () => {
  it('fetch for a lock the authority does not know: exit 13 naming what was not found', async () => {
    const r = await run(['agent', 'fetch', '--lock', 'lk-9999', '--authority', url, '--token', residentToken, '--cache', path.join(dir, 'cache-c')]);
    expectFailure(r, 'AUTHORITY_REFUSED', /not found at the authority: HTTP 404 UNKNOWN_LOCK: .*lk-9999/);
  });

  it('fetch --from abc: exit 2', async () => {
    expectFailure(await run(['agent', 'fetch', '--lock', lockId, '--authority', url, '--token', residentToken, '--from', 'abc']), 'USAGE', /--from must be an integer/);
  });

  it('--lock that is not a lock id (it would name a file outside the cache): exit 2', async () => {
    expectFailure(await run(['agent', 'fetch', '--lock', '../escape', '--authority', url, '--token', residentToken, '--cache', path.join(dir, 'cache-c')]), 'USAGE', /--lock must be a lock id/);
    expect(fs.existsSync(path.join(dir, 'escape.json'))).toBe(false);
  });

  it('outbox list on a cache directory that does not exist: empty, exit 0, and nothing created', async () => {
    const missing = path.join(dir, 'no-such-cache');
    expect(await ok(['agent', 'outbox', 'list', '--cache', missing, '--json'])).toEqual({ ok: true, queued: [], deadLetters: [] });
    expect(fs.existsSync(missing)).toBe(false);
  });

  it('fetch with a bad URL: exit 2', async () => {
    expectFailure(await run(['agent', 'fetch', '--lock', lockId, '--authority', 'notaurl', '--token', residentToken]), 'USAGE', /--authority must be an http\(s\) URL/);
  });

  it.each([
    ['--timeout abc', ['--timeout', 'abc'], /--timeout must be an integer/],
    ['--min-rssi abc', ['--min-rssi', 'abc'], /--min-rssi must be an integer/],
  ])('scan %s: exit 2', async (_n, extra, detail) => {
    expectFailure(await run(['agent', 'scan', '--transport', phone, ...extra]), 'USAGE', detail);
  });

  it('scan --lock for a lock not on the air: exit 3; --lock and --min-rssi filter the list', async () => {
    expectFailure(await run(['agent', 'scan', '--transport', phone, '--timeout', '1500', '--lock', 'lk-9999']), 'LOCK_NOT_FOUND', /lk-9999 was not heard in 1500 ms/);
    const seen = await ok(['agent', 'scan', '--transport', phone, '--timeout', '1500', '--lock', lockId, '--json']);
    expect(seen.locks.map((l: { lockId: string }) => l.lockId)).toEqual([lockId]);
    const strong = await ok(['agent', 'scan', '--transport', phone, '--timeout', '1500', '--min-rssi', '20', '--json']);
    expect(strong.locks).toEqual([]);
  });

  it('unlock with a missing or malformed credential file: exit 16 (bad state)', async () => {
    expectFailure(await run(['agent', 'unlock', '--credential', path.join(dir, 'nope.json'), '--lock', lockId, '--transport', phone]), 'BAD_STATE', /nope\.json: ENOENT/);
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, '{"holder":"resident","secretKey":"zz"}');
    expectFailure(await run(['agent', 'unlock', '--credential', bad, '--lock', lockId, '--transport', phone]), 'BAD_STATE', /secretKey must be 64 hex digits/);
  });

  it('a corrupt courier cache file: exit 16, the file left as it was', async () => {
    const cache = path.join(dir, 'cache-corrupt');
    fs.mkdirSync(cache, { recursive: true });
    fs.writeFileSync(path.join(cache, `${lockId}.json`), '{"lockId": "lk-');
    const before = digestTree(cache);
    expectFailure(await run(['agent', 'outbox', 'list', '--cache', cache]), 'BAD_STATE', /is not JSON/);
    expect(digestTree(cache)).toBe(before);
  });

  it('outbox show for an id that does not exist: exit 2', async () => {
    expectFailure(await run(['agent', 'outbox', 'show', 'feedbeef', '--cache', path.join(dir, 'cache-empty')]), 'USAGE', /no outbox item or dead letter "feedbeef"/);
  });
});

describe('the courier path and the outbox', () => {
  it('sync --offline carries a fetched update: from cache fetched at T (age A), receipt queued → exit 14; deliver retries transient and token failures, then delivers', async () => {
    const cache = path.join(dir, 'cache-b'); // holds the pending update (fetched above)
    const before = await authorityView();
    const r = await sync(['--offline', '--json'], cache);
    expectFailure(r, 'RECEIPT_QUEUED', /committed version \d+ from cache fetched at \S+ \(age [^)]+\); its receipt is only queued — run `locksync agent deliver/);
    expect(lastJson(r)).toMatchObject({ ok: false, outcome: 'from-cache', exitCode: 14, source: 'cache', versionAfter: before.version, receiptFate: 'queued', cache: { fetchedAt: expect.any(String) } });
    expect(await authorityView()).toEqual(before); // the authority has not heard yet

    const queued = await ok(['agent', 'outbox', 'list', '--cache', cache, '--json']);
    expect(queued.queued.map((q: { kind: string }) => q.kind)).toEqual(['receipt', 'audit']);

    expectFailure(await run(['agent', 'deliver', '--authority', closedUrl, '--token', residentToken, '--cache', cache]), 'AUTHORITY_UNREACHABLE', /connection refused .*; 2 item\(s\) stay queued/);
    const afterTransient = await ok(['agent', 'outbox', 'list', '--cache', cache, '--json']);
    expect(afterTransient.queued).toHaveLength(2);
    expect(afterTransient.queued[0]).toMatchObject({ attempts: 1, lastError: expect.stringMatching(/connection refused/) });
    expect(afterTransient.deadLetters).toEqual([]);

    expectFailure(await run(['agent', 'deliver', '--authority', url, '--token', 'lst_wrong', '--cache', cache]), 'AUTHORITY_AUTH_REFUSED', /HTTP 401/);
    expect((await ok(['agent', 'outbox', 'list', '--cache', cache, '--json'])).queued).toHaveLength(2);

    const delivered = await ok(['agent', 'deliver', '--authority', url, '--token', residentToken, '--cache', cache, '--json']);
    expect(delivered).toMatchObject({ ok: true, kept: [], deadLettered: [] });
    expect(delivered.delivered).toHaveLength(2);
    const now = await authorityView();
    expect(now.versionInForce).toBe(now.version);
  });

  it('a permanent refusal is dead-lettered with its reason, listed and shown; it blocks nothing after', async () => {
    const cache = path.join(dir, 'cache-dead');
    fs.mkdirSync(cache, { recursive: true });
    // An item the authority can never accept (not a protocol message), ahead of nothing else.
    fs.writeFileSync(path.join(cache, `${lockId}.json`), JSON.stringify({ lockId, updates: [], outbox: [{ kind: 'audit', message: '00', collectedAt: '2026-01-01T00:00:00.000Z' }] }));
    const r = await run(['agent', 'deliver', '--authority', url, '--token', residentToken, '--cache', cache]);
    const line = expectFailure(r, 'AUTHORITY_REFUSED', /refused 1 item\(s\) for good, first [0-9a-f]{12} \(audit for lk-\d+: HTTP 422 BAD_MESSAGE: .*\); moved to the dead letters/);
    expect(r.stdout).not.toMatch(/check the network/);
    expect(line).not.toMatch(/UNREACHABLE/);
    const listed = await ok(['agent', 'outbox', 'list', '--cache', cache, '--json']);
    expect(listed.queued).toEqual([]);
    expect(listed.deadLetters).toEqual([expect.objectContaining({ lockId, kind: 'audit', refusal: expect.objectContaining({ status: 422, code: 'BAD_MESSAGE' }) })]);
    const id = listed.deadLetters[0].id as string;
    const shown = await ok(['agent', 'outbox', 'show', id.slice(0, 6), '--cache', cache, '--json']);
    expect(shown).toMatchObject({ ok: true, state: 'dead', id, refusal: { status: 422, code: 'BAD_MESSAGE' }, message: '00' });
    const text = await run(['agent', 'outbox', 'show', id, '--cache', cache]);
    expect(text.stdout).toMatch(/refused .*HTTP 422 BAD_MESSAGE/);

    // Not blocked: nothing queued any more; a sync with this cache is not held back.
    expect(await ok(['agent', 'deliver', '--authority', url, '--token', residentToken, '--cache', cache, '--json'])).toMatchObject({ ok: true, delivered: [], kept: [] });
    const s = await sync(['--authority', url, '--token', residentToken, '--json'], cache);
    expect(s.code, s.stderr).toBe(0);
    expect(lastJson(s)).toMatchObject({ ok: true, outcome: 'up-to-date', receiptFate: 'none', deadLettered: [] });

    expect(await ok(['agent', 'outbox', 'drop', id, '--cache', cache, '--json'])).toMatchObject({ ok: true, dropped: id });
    expect((await ok(['agent', 'outbox', 'list', '--cache', cache, '--json'])).deadLetters).toEqual([]);
  });
});

describe('agent keygen: a phone key for the non-demo enrolment path', () => {
  it('keygen → device enrol --public-key → device credential-file → sync → unlock is granted; keygen refuses to overwrite', async () => {
    const keyFile = path.join(dir, 'phone.key');
    const made = await ok(['agent', 'keygen', '--out', keyFile, '--json']);
    expect(made.publicKey).toMatch(/^[0-9a-f]{64}$/);
    expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
    const keyBefore = fs.readFileSync(keyFile, 'utf8');
    expectFailure(await run(['agent', 'keygen', '--out', keyFile]), 'USAGE', /already exists/);
    expect(fs.readFileSync(keyFile, 'utf8')).toBe(keyBefore);

    const enrolled = await auth(['device', 'enrol', '--user', String(annId), '--public-key', made.publicKey]);
    const credFile = path.join(dir, 'phone.json');
    await auth(['device', 'credential-file', '--device', String(enrolled.deviceId), '--secret-key-file', keyFile, '--out', credFile]);
    // The new phone's credential reaches the lock with a sync made with its own device token.
    const s = await sync(['--authority', url, '--token', enrolled.token, '--json'], path.join(dir, 'cache-phone'));
    expect(s.code, s.stderr).toBe(0);
    expect(lastJson(s)).toMatchObject({ ok: true, outcome: 'updated' });
    const u = await ok(['agent', 'unlock', '--credential', credFile, '--lock', lockId, '--transport', phone, '--no-passive-sync', '--json']);
    expect(u).toMatchObject({ granted: true, reason: 'GRANTED' });
  });
});

describe('the lock refuses, the link drops, a peer does not answer: exits 5, 4 and 9', () => {
  /** A new table version at the authority (the partner back on the door): an update to carry. */
  const pendingChange = async (): Promise<void> => {
    await auth(['partner', 'assign-door', '--partner', String(partnerId), '--door', String(doorId)]);
    const view = await authorityView();
    expect(view.version).toBeGreaterThan(view.versionInForce);
  };

  it('a cached update altered on the phone is refused by the lock: exit 5 naming its code, the lock unchanged', async () => {
    await pendingChange();
    const cache = path.join(dir, 'cache-tampered');
    const from = (await authorityView()).versionInForce;
    await ok(['agent', 'fetch', '--lock', lockId, '--authority', url, '--token', residentToken, '--from', String(from), '--cache', cache, '--json']);
    // Flip one bit in the last byte of the cached update: inside its head's signature. (The
    // chain's bytes sit in the file the lock's cache JSON names, back to back.)
    const f = JSON.parse(fs.readFileSync(path.join(cache, `${lockId}.json`), 'utf8')) as { updates: { file: string; lengths: number[] }[] };
    const chain = path.join(cache, f.updates[0]!.file);
    const bytes = fs.readFileSync(chain);
    const last = f.updates[0]!.lengths[0]! - 1;
    bytes[last] = bytes[last]! ^ 0x01;
    fs.writeFileSync(chain, bytes);
    // The table in force, read from the flash by the independent reader. (Not the whole state
    // directory: the refusal itself is audited, and the session's audit export writes it.)
    const table = async (): Promise<unknown> => {
      const r = await ok(['lock', 'inspect', '--state', lockState, '--json']);
      const f = r.inForce as { version: number; headDigest: string; entries: number; versionFloor: number };
      return { version: f.version, headDigest: f.headDigest, entries: f.entries, versionFloor: f.versionFloor };
    };
    const before = await table();
    const r = await sync(['--offline', '--attempts', '1'], cache);
    expectFailure(r, 'REFUSED_BY_LOCK', /BAD_SIGNATURE/);
    expect(await table(), 'the table in force changed').toEqual(before);
  });

  it('the link dropped mid-sync with no attempts left: exit 4', async () => {
    // The update from the case above is still pending. Drop the link through the radio's
    // control socket the moment the agent reports it is connected.
    const { spawn } = await import('node:child_process');
    const net = await import('node:net');
    const { BIN, ROOT, childEnv } = await import('./harness');
    const args = ['agent', 'sync', '--lock', lockId, '--transport', phone, '--cache', path.join(dir, 'cache-drop'), '--authority', url, '--token', residentToken, '--attempts', '1'];
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let dropped = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (!dropped && stderr.includes('"phase":"connected"')) {
        dropped = true;
        const socket = net.createConnection(path.join(radioDir, 'control.sock'));
        socket.on('connect', () => socket.end(`${JSON.stringify({ id: 1, op: 'dropLink', controller: 'lock-1', mode: 'terminate', reason: 0x08 })}\n`));
        socket.on('error', () => undefined);
      }
    });
    const started = Date.now();
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => (child.kill('SIGKILL'), reject(new Error(`agent sync still running after ${DEADLINE_MS} ms\n${stderr}`))), DEADLINE_MS);
      child.on('close', (c) => (clearTimeout(timer), resolve(c)));
    });
    runs.push({ args: args.join(' '), code, ms: Date.now() - started });
    expect(dropped).toBe(true);
    expectFailure({ code, signal: null, stdout, stderr: stderr.split('\n').filter((l) => !l.startsWith('{')).join('\n'), ms: 0 }, 'LINK_LOST');
  });

  it('radio ctl to a radio whose control socket accepts but never answers: exit 9 within its 5 s timeout', async () => {
    const net = await import('node:net');
    const silentDir = path.join(dir, 'silent-radio');
    fs.mkdirSync(silentDir);
    const held: import('node:net').Socket[] = [];
    const server = net.createServer((s) => void held.push(s));
    await new Promise<void>((r) => server.listen(path.join(silentDir, 'control.sock'), r));
    try {
      expectFailure(await run(['radio', 'ctl', '--dir', silentDir, '{"op":"list"}']), 'TIMEOUT', /no answer .* within 5000 ms/);
    } finally {
      for (const s of held) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
