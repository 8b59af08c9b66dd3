// The table in scenario/README.md maps every rule sentence of the seed articles to the
// scenarios that check it. Every file it names exists and loads; every file not marked
// "(pending merge)" sits in fixtures/scenarios/, where test/scenarios.test.ts runs each one;
// pending files sit in fixtures/scenarios/pending/, out of that run list.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadScenario } from '../scenario/load';

const DIR = 'fixtures/scenarios';
const PENDING = join(DIR, 'pending');
/** Pending files that use actions another branch adds: only their presence is checked. */
// Pending files whose actions the scenario format does not have yet (none today).
const PENDING_FORMAT = new Set<string>();

interface Row {
  n: number;
  article: string;
  rule: string;
  files: { file: string; pending: boolean }[];
}

function readTable(): Row[] {
  const text = readFileSync('scenario/README.md', 'utf8');
  const start = text.indexOf('## Seed rules and their scenarios');
  expect(start).toBeGreaterThan(0);
  const rows: Row[] = [];
  for (const line of text.slice(start).split('\n')) {
    const m = /^\| (\d+) \| (\w+) \| (.+) \| (.+) \|$/.exec(line);
    if (m === null) continue;
    const files = (m[4] as string).split(',').map((cell) => {
      const f = /^\s*([\w.-]+\.yaml)( \*\(pending merge\)\*)?\s*$/.exec(cell);
      if (f === null) throw new Error(`rule ${m[1]}: "${cell}" is not a scenario file name`);
      return { file: f[1] as string, pending: f[2] !== undefined };
    });
    rows.push({ n: Number(m[1]), article: m[2] as string, rule: m[3] as string, files });
  }
  return rows;
}

describe('seed rule table (scenario/README.md)', () => {
  const rows = readTable();
  const runList = new Set(readdirSync(DIR).filter((f) => f.endsWith('.yaml')));

  it('lists every rule once, numbered in order, from the five articles', () => {
    expect(rows.length).toBeGreaterThanOrEqual(40);
    expect(rows.map((r) => r.n)).toEqual(rows.map((_, i) => i + 1));
    expect(new Set(rows.map((r) => r.article))).toEqual(new Set(['Remove', 'OpenDOOR', 'OpenKit', 'Keys', 'Sharing']));
  });

  it('every rule has at least one scenario that runs now', () => {
    const only = rows.filter((r) => r.files.every((f) => f.pending)).map((r) => r.n);
    expect(only).toEqual([]);
  });

  it('every scenario named is in the run list, or in pending/ when marked pending', () => {
    for (const r of rows)
      for (const f of r.files) {
        if (f.pending) {
          expect(existsSync(join(PENDING, f.file)), `rule ${r.n}: ${f.file} in pending/`).toBe(true);
          expect(runList.has(f.file), `rule ${r.n}: ${f.file} is pending but in the run list`).toBe(false);
        } else expect(runList.has(f.file), `rule ${r.n}: ${f.file} in ${DIR}`).toBe(true);
      }
  });

  it('every scenario named loads, pending ones included when their format exists', () => {
    const named = new Map<string, boolean>();
    for (const r of rows) for (const f of r.files) named.set(f.file, f.pending);
    for (const [file, pending] of named) {
      if (pending && PENDING_FORMAT.has(file)) continue;
      const sc = loadScenario(join(pending ? PENDING : DIR, file));
      expect(sc.steps.length, file).toBeGreaterThan(0);
    }
  });
});
