// `locksync scenario run FILE [--seed N] [--transport sim|ble] [--out DIR] [--json]` and
// `locksync scenario list`. Exit codes: 0 every expectation passed; 1 an expectation failed
// or the run aborted; 2 the scenario file is invalid (every issue listed with its line).

import { readdirSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import { loadScenario } from './load';
import { ScenarioError } from './validate';
import { runScenario, type RunResult, type ScenarioTransport } from './runner';

export const SCENARIO_DIR = 'fixtures/scenarios';

function parseSeed(text: string): number | string {
  return /^\d+$/.test(text) ? Number(text) : text;
}

function printResult(r: RunResult, out: (s: string) => void): void {
  const passed = r.expectations.filter((e) => e.ok).length;
  out('');
  out(`${r.passed ? 'PASS' : 'FAIL'}  ${r.scenario}  (${passed}/${r.expectations.length} expectations, ${r.transport}, seed ${String(r.seed)})`);
  for (const e of r.expectations.filter((x) => !x.ok)) out(`  FAIL steps[${e.step}] ${e.description}: expected ${e.expected}, got ${e.actual}`);
  out(`  trace     ${r.files.trace}`);
  out(`  timeline  ${r.files.timeline}`);
  for (const c of r.files.captures) out(`  capture   ${c}`);
  out(`  trace hash ${r.traceHash}`);
  if (!r.passed) {
    out(`  seed ${String(r.seed)} — replay with:`);
    out(`    ${r.replayCommand}`);
  }
}

export function registerScenarioCommands(program: Command): void {
  const scenario = program.command('scenario').description('QA scenarios: run a scenario file against a whole simulated property (see scenario/README.md)');

  scenario
    .command('run')
    .description('run a scenario file (YAML or JSON): pass/fail per expectation, trace.json, timeline.html, btsnoop captures on ble')
    .argument('<file>', 'scenario file')
    .option('--seed <n>', 'seed (overrides the file\'s); the same seed gives the same trace hash')
    .option('--transport <t>', 'sim (in-process, deterministic) or ble (bleno/noble over the virtual radio)', 'sim')
    .option('--out <dir>', 'output directory (default: scenario-runs/<file name>-<seed>)')
    .option('--json', 'print the result as JSON instead of text')
    .action(async (file: string, o: { seed?: string; transport: string; out?: string; json?: boolean }) => {
      if (o.transport !== 'sim' && o.transport !== 'ble') {
        process.stderr.write(`error: --transport must be sim or ble, not "${o.transport}"\n`);
        process.exitCode = 2;
        return;
      }
      let sc;
      try {
        sc = loadScenario(file);
      } catch (e) {
        if (!(e instanceof ScenarioError)) throw e;
        process.stderr.write(`${e.message}\n`);
        process.exitCode = 2;
        return;
      }
      // The replay command names the file as it was given (relative to where it was run).
      sc.file = file;
      const seed = o.seed !== undefined ? parseSeed(o.seed) : sc.seed;
      const outDir = resolve(o.out ?? join('scenario-runs', `${basename(file).replace(/\.(ya?ml|json)$/i, '')}-${String(seed)}${o.transport === 'ble' ? '-ble' : ''}`));
      const write = (s: string): void => void process.stdout.write(`${s}\n`);
      if (!o.json) write(`${sc.name} — seed ${String(seed)}, ${o.transport}`);
      const r = await runScenario(sc, { seed, transport: o.transport as ScenarioTransport, outDir, ...(o.json ? {} : { log: write }) });
      if (o.json) {
        const { trace: _trace, ...rest } = r;
        void _trace;
        write(JSON.stringify(rest, null, 2));
      } else printResult(r, write);
      process.exitCode = r.passed ? 0 : 1;
    });

  scenario
    .command('list')
    .description(`list the scenarios in ${SCENARIO_DIR}/ (or DIR)`)
    .argument('[dir]', 'directory', SCENARIO_DIR)
    .action((dir: string) => {
      const files = readdirSync(dir).filter((f) => /\.(ya?ml|json)$/i.test(f)).sort();
      let bad = 0;
      for (const f of files) {
        const path = join(dir, f);
        try {
          const sc = loadScenario(path);
          process.stdout.write(`${relative('.', path)}\n    ${sc.name} (seed ${String(sc.seed)}, ${sc.steps.length} steps)\n`);
        } catch (e) {
          if (!(e instanceof ScenarioError)) throw e;
          bad++;
          process.stdout.write(`${relative('.', path)}\n    INVALID: ${e.message.split('\n')[0] ?? ''}\n`);
        }
      }
      process.exitCode = bad === 0 ? 0 : 2;
    });
}
