// `locksync conformance` as a separate process: its verdicts and failures, each with its
// documented exit code and one `error CODE: … — …` line.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { expectFailure, locksync, tempDir } from './harness';

const dir = tempDir('locksync-conformance-fail-');
/** A hard deadline against hangs, generous for a loaded 2-core machine; not a timing goal. */
const LONG = { deadlineMs: 90_000 };
const ZERO_KEY = '00'.repeat(32);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('locksync conformance', () => {
  it('the reference lock passes: exit 0, PASS lines naming SPEC sections, JUnit and report files', async () => {
    const junit = path.join(dir, 'ok.xml');
    const report = path.join(dir, 'ok.txt');
    const r = await locksync(['conformance', '--only', 'hello.,time.accept,unlock.replay', '--junit', junit, '--report', report], LONG);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^PASS {2}hello\.fields +§6\.1, §6\.2, §12\.4 /m);
    expect(r.stdout).toContain('4 cases: 4 passed, 0 failed, 0 skipped');
    expect(fs.readFileSync(junit, 'utf8')).toContain('<testsuites name="locksync conformance" tests="4" failures="0"');
    expect(fs.readFileSync(report, 'utf8')).toMatch(/^PASS {2}unlock\.replay +§9\.2 step 2/m);
  }, 120_000);

  it('a lock that breaks a case: exit 18 naming the case and SPEC section; the JUnit failure has the replay command', async () => {
    const junit = path.join(dir, 'fail.xml');
    const r = await locksync(['conformance', '--mutant', 'accepts-rollback', '--only', 'refuse.', '--junit', junit], LONG);
    expectFailure(r, 'EXPECTATION_FAILED', /2 of 13 conformance cases failed on lk-conf-0001, first refuse\.rollback-replay \(§5\.4 step 5\): replayed older snapshot: expected error ROLLBACK, the lock answered receipt v\d+ — .*--only refuse\.rollback-replay/);
    expect(r.stdout).toMatch(/^FAIL {2}refuse\.rollback-replay/m);
    const xml = fs.readFileSync(junit, 'utf8');
    expect(xml).toContain('failures="2"');
    expect(xml).toContain('replay: locksync conformance --transport sim --lock lk-conf-0001 --seed conformance --mutant accepts-rollback --only refuse.');
  }, 120_000);

  it('a transport that cannot be opened: exit 10', async () => {
    const r = await locksync(['conformance', '--transport', `uart:${path.join(dir, 'no-such-pty')}`, '--device-key', ZERO_KEY], LONG);
    expectFailure(r, 'TRANSPORT_UNAVAILABLE', /no-such-pty/);
  }, 120_000);

  it('usage mistakes: exit 2, one line each', async () => {
    expectFailure(await locksync(['conformance', '--transport', 'hci:0'], LONG), 'USAGE', /--device-key is required on hci:0/);
    expectFailure(await locksync(['conformance', '--transport', 'hci:0', '--device-key', 'abcd'], LONG), 'USAGE', /--device-key must be 64 hex digits/);
    expectFailure(await locksync(['conformance', '--only', 'no.such'], LONG), 'USAGE', /--only names no case: no\.such/);
    expectFailure(await locksync(['conformance', '--self-test', '--transport', 'hci:0'], LONG), 'USAGE', /--self-test runs on the in-process reference lock only/);
    expectFailure(await locksync(['conformance', '--lock', 'Bad Id'], LONG), 'USAGE', /--lock Bad Id is not a lock id/);
  }, 240_000);

  it('--provision-bundle writes the bundle `lock provision` takes (the suite root key is the lock root)', async () => {
    const bundle = path.join(dir, 'bundle.json');
    const r = await locksync(['conformance', '--provision-bundle', bundle, '--seed', 'bench-7', '--lock', 'lk-dut-1'], LONG);
    expect(r.code, r.stderr).toBe(0);
    const b = JSON.parse(fs.readFileSync(bundle, 'utf8')) as { lockId: string; rootPublicKeys: string[] };
    expect(b.lockId).toBe('lk-dut-1');
    expect(b.rootPublicKeys).toHaveLength(1);
    const p = await locksync(['lock', 'provision', '--state', path.join(dir, 'dut'), '--bundle', bundle, '--json'], LONG);
    expect(p.code, p.stderr).toBe(0);
    expect(JSON.parse(p.stdout)).toMatchObject({ lockId: 'lk-dut-1' });
  }, 120_000);
});
