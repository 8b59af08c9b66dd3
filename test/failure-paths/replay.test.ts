// `locksync replay` as a separate process: a capture replayed against a state directory
// that is not the captured lock's state is a finding (exit 8, PROTOCOL_VIOLATION) with one
// error line after the report, and the state directory is never written.
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT, digestTree, expectFailure, locksync, tempDir } from './harness';

const DEADLINE_MS = 60_000;
const CAPTURE = path.join(ROOT, 'fixtures', 'captures', 'demo-lock-unit-4b.btsnoop'); // the demo's lk-0002
let state: string;

const ok = async (args: string[]): Promise<any> => {
  const r = await locksync(args, { deadlineMs: DEADLINE_MS });
  if (r.code !== 0) throw new Error(`locksync ${args.join(' ')} exited ${r.code}\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? 'null');
};

beforeAll(async () => {
  const dir = tempDir('locksync-replay-fail-');
  const db = path.join(dir, 'p.db');
  await ok(['authority', 'init', '--db', db, '--seed', 'another-property', '--json']);
  // Two doors so the second lock is lk-0002, the id the capture names — but another
  // property's lock, with another table and keys.
  await ok(['authority', 'door', 'add', '--db', db, '--name', 'One', '--json']);
  const door = await ok(['authority', 'door', 'add', '--db', db, '--name', 'Two', '--json']);
  await ok(['authority', 'provision-lock', '--db', db, '--door', '1', '--json']);
  const bundle = path.join(dir, 'bundle.json');
  const lock = await ok(['authority', 'provision-lock', '--db', db, '--door', String(door.id), '--out', bundle, '--json']);
  expect(lock.lockId).toBe('lk-0002');
  state = path.join(dir, 'lock');
  await ok(['lock', 'provision', '--state', state, '--bundle', bundle, '--seed', 'x', '--json']);
}, 120_000);

describe('locksync replay failure paths', () => {
  it("a state that is not the captured lock's: the report, then exit 8 with one line naming the first difference; the state untouched", async () => {
    expect(fs.existsSync(CAPTURE)).toBe(true);
    const before = digestTree(state);
    const r = await locksync(['replay', CAPTURE, '--state', state], { deadlineMs: DEADLINE_MS });
    expectFailure(r, 'PROTOCOL_VIOLATION', /disagrees with the captured lock at record \d+: captured hello .* simulated hello/);
    expect(r.stdout).toMatch(/lk-0002/);
    expect(digestTree(state)).toBe(before);
  });

  it('replay without --state: usage (exit 2)', async () => {
    expectFailure(await locksync(['replay', CAPTURE], { deadlineMs: DEADLINE_MS }), 'USAGE', /--state/);
  });
});
