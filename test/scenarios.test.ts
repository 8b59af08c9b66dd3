// Every QA scenario in fixtures/scenarios/ runs on the in-process link and every
// expectation passes; runs are reproducible from their seed; one scenario also runs
// through the real bleno/noble stacks over the virtual radio and leaves btsnoop captures.

import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadScenario } from '../scenario/load';
import { runScenario, type RunResult } from '../scenario/runner';
import { parseTrace, traceHash } from '../scenario/trace';

const DIR = 'fixtures/scenarios';
const files = readdirSync(DIR)
  .filter((f) => /\.(ya?ml|json)$/.test(f))
  .sort();
const out = mkdtempSync(join(tmpdir(), 'locksync-scenarios-test-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function failures(r: RunResult): string {
  return r.expectations
    .filter((e) => !e.ok)
    .map((e) => `steps[${e.step}] ${e.description}: expected ${e.expected}, got ${e.actual}`)
    .join('\n');
}

describe('scenarios on sim', () => {
  it('there are at least 15 scenario files', () => {
    expect(files.length).toBeGreaterThanOrEqual(15);
  });

  for (const f of files) {
    it(f, async () => {
      const r = await runScenario(loadScenario(join(DIR, f)), { outDir: join(out, f) });
      expect(failures(r), `replay: ${r.replayCommand}`).toBe('');
      expect(r.passed).toBe(true);
      expect(r.expectations.length).toBeGreaterThan(0);
      // The written trace is the returned one, and hashes the same.
      const written = parseTrace(readFileSync(r.files.trace, 'utf8'));
      expect(traceHash(written)).toBe(r.traceHash);
      expect(readFileSync(r.files.timeline, 'utf8')).toContain(r.traceHash);
    });
  }
});

describe('determinism', () => {
  const file = join(DIR, '17-reordered-and-duplicated-updates.yaml');

  it('the same seed gives the same trace hash; another seed still passes with another hash', async () => {
    const sc = loadScenario(file);
    const a = await runScenario(sc, { seed: 4242, outDir: join(out, 'det-a') });
    const b = await runScenario(sc, { seed: 4242, outDir: join(out, 'det-b') });
    const c = await runScenario(sc, { seed: 7, outDir: join(out, 'det-c') });
    expect(a.passed && b.passed && c.passed).toBe(true);
    expect(b.traceHash).toBe(a.traceHash);
    expect(readFileSync(b.files.trace, 'utf8').replace(/"startedAt": "[^"]*"/, '')).toBe(readFileSync(a.files.trace, 'utf8').replace(/"startedAt": "[^"]*"/, ''));
    // Keys, tokens and lock randomness follow the seed, so the traced bytes differ.
    expect(c.traceHash).not.toBe(a.traceHash);
  });

  it('a failing expectation fails the run and names the command that replays it', async () => {
    const text = readFileSync(join(DIR, '01-partner-unassigned-offline-door.yaml'), 'utf8').replace('expect: { decision: UNKNOWN_CREDENTIAL }', 'expect: { decision: GRANTED }');
    const sc = loadScenario(text, 'yaml');
    sc.file = 'broken.yaml';
    const r = await runScenario(sc, { seed: 9, outDir: join(out, 'broken') });
    expect(r.passed).toBe(false);
    expect(r.expectations.filter((e) => !e.ok)).toEqual([{ step: 4, description: 'decision', expected: 'GRANTED', actual: 'UNKNOWN_CREDENTIAL', ok: false }]);
    expect(r.replayCommand).toBe('locksync scenario run broken.yaml --seed 9');
  });
});

describe('a scenario through the real stacks (bleno ↔ noble over the virtual radio)', () => {
  it('01 partner unassigned from an offline door passes on ble and writes btsnoop captures', async () => {
    const r = await runScenario(loadScenario(join(DIR, '01-partner-unassigned-offline-door.yaml')), { transport: 'ble', outDir: join(out, 'ble') });
    expect(failures(r), `replay: ${r.replayCommand}`).toBe('');
    expect(r.passed).toBe(true);
    expect(r.replayCommand).toContain('--transport ble');
    const lockCapture = r.files.captures.find((c) => c.endsWith('lock-lk-0001.btsnoop'));
    expect(lockCapture).toBeDefined();
    expect(statSync(lockCapture as string).size).toBeGreaterThan(1000);
  }, 60_000);

  it('13 sync interrupted and resumed passes on ble: a link dropped at packet 12 on the worst link profile', async () => {
    const r = await runScenario(loadScenario(join(DIR, '13-sync-interrupted-and-resumed.yaml')), { transport: 'ble', outDir: join(out, 'ble-13') });
    expect(failures(r), `replay: ${r.replayCommand}`).toBe('');
    expect(r.passed).toBe(true);
    expect(r.trace.events.some((e) => e.kind === 'fault')).toBe(true);
  }, 90_000);
});
