// `npm start -- --seed S` says "replay": the same seed must give the same trace hash — on the
// in-process link and through the real bleno/noble stacks on the virtual radio — and a
// different seed a different one. The hash covers decisions, versions and every session
// message's bytes in order; wall-clock durations and radio timing are left out (and the
// demo says so).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseTrace, traceHash } from '../scenario/trace';

const root = mkdtempSync(join(tmpdir(), 'locksync-replay-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let runs = 0;
function demo(seed: string, transport: 'sim' | 'ble'): { hash: string; stdout: string; messages: number } {
  const out = join(root, `run-${runs++}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'cli/demo.ts', '--out', out, '--seed', seed, '--transport', transport], { encoding: 'utf8', timeout: 120_000 });
  expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
  const trace = parseTrace(readFileSync(join(out, 'trace.json'), 'utf8'));
  const hash = traceHash(trace);
  // The printed hash is the trace file's.
  expect(r.stdout).toContain(`hash ${hash.slice(0, 16)}`);
  const messages = trace.events.filter((e) => e.kind === 'message' && typeof e.detail?.['sha256'] === 'string').length;
  return { hash, stdout: r.stdout, messages };
}

describe('demo replay: the seed reproduces the trace hash', () => {
  it('on the sim link: same seed → same hash, another seed → another hash; session messages are in it', () => {
    const a = demo('2026', 'sim');
    const b = demo('2026', 'sim');
    const c = demo('2027', 'sim');
    expect(b.hash).toBe(a.hash);
    expect(c.hash).not.toBe(a.hash);
    expect(a.messages).toBeGreaterThan(30);
    expect(a.stdout).toMatch(/replay +npm start -- --seed 2026 --transport sim +reproduces this trace hash/);
    expect(a.stdout).toMatch(/not reproduced: wall-clock time/);
  }, 240_000);

  it('through the real stacks: two runs with the same seed give the same hash, and the sim run’s', () => {
    const sim = demo('2026', 'sim');
    const first = demo('2026', 'ble');
    const second = demo('2026', 'ble');
    expect(first.stdout).not.toMatch(/link retr/);
    expect(second.hash).toBe(first.hash);
    expect(first.hash).toBe(sim.hash);
    expect(first.stdout).toMatch(/not reproduced: .*radio and HCI timing/);
  }, 300_000);
});
