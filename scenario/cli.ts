// `locksync scenario run FILE [--seed N] [--transport sim|ble] [--out DIR] [--junit FILE] [--json]`
// and `locksync scenario list [DIR]`. Exit codes: 0 every expectation passed; 1 an
// expectation failed; 2 (USAGE) the scenario file is invalid or missing (every issue listed
// with its line, then one `error USAGE:` line).

import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { CliError } from '../cli/errors';
import { oneOf } from '../cli/program';
import { junitForInvalid, junitForRun } from './junit';
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

/** The scenarios that ship with locksync (the default of `scenario list`). */
const BUILTIN_SCENARIOS = fileURLToPath(new URL(`../${SCENARIO_DIR}/`, import.meta.url));

function writeReport(file: string, text: string): void {
  try {
    mkdirSync(dirname(resolve(file)), { recursive: true });
    writeFileSync(file, text);
  } catch (e) {
    throw new CliError('USAGE', `cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'pass a writable path');
  }
}

/**
 * Paths given on the command line (scenario files, --out, --junit, list DIR) are relative
 * to the working directory the command was run in, like any Unix tool's.
 */
export function registerScenarioCommands(program: Command): void {
  const scenario = program.command('scenario').description('QA scenarios: run a scenario file against a whole simulated property (see scenario/README.md)');

  scenario
    .command('run')
    .description('run a scenario file (YAML or JSON): pass/fail per expectation, trace.json, timeline.html, btsnoop captures on ble; exit 0 all passed, 1 an expectation failed, 2 an invalid file')
    .argument('<file>', 'scenario file (relative to the working directory)')
    .option('--seed <n>', "seed (overrides the file's); the same seed gives the same trace hash")
    .option('--transport <t>', 'sim (in-process, deterministic) or ble (bleno/noble over the virtual radio)', oneOf('--transport', ['sim', 'ble'] as const), 'sim')
    .option('--out <dir>', 'output directory (default: scenario-runs/<file name>-<seed>)')
    .option('--junit <file>', 'also write a JUnit XML report: one test case per expectation, the replay command in system-out')
    .option('--json', 'print the result as JSON instead of text')
    .action(async (file: string, o: { seed?: string; transport: ScenarioTransport; out?: string; junit?: string; json?: boolean }) => {
      const started = Date.now();
      const timestamp = new Date(started).toISOString().replace(/\.\d+Z$/, '');
      let sc;
      try {
        sc = loadScenario(resolve(file));
      } catch (e) {
        if (!(e instanceof ScenarioError)) throw e;
        if (o.junit !== undefined) writeReport(o.junit, junitForInvalid(file, ScenarioError.format(e.issues, file), timestamp));
        const only = e.issues.length === 1 ? e.issues[0] : undefined;
        if (only !== undefined && only.path === '') throw new CliError('USAGE', `scenario ${file}: ${only.message}`, 'pass an existing .yaml, .yml or .json scenario file (paths are relative to the working directory)');
        for (const line of ScenarioError.format(e.issues, file).split('\n').slice(1)) process.stderr.write(`${line}\n`);
        throw new CliError('USAGE', `${file} is not a valid scenario: ${e.issues.length} problem(s), listed above`, 'fix them (see scenario/README.md for the format)');
      }
      // The replay command names the file as it was given (relative to where it was run).
      sc.file = file;
      const seed = o.seed !== undefined ? parseSeed(o.seed) : sc.seed;
      const outDir = resolve(o.out ?? join('scenario-runs', `${basename(file).replace(/\.(ya?ml|json)$/i, '')}-${String(seed)}${o.transport === 'ble' ? '-ble' : ''}`));
      const write = (s: string): void => void process.stdout.write(`${s}\n`);
      if (!o.json) write(`${sc.name} — seed ${String(seed)}, ${o.transport}`);
      const r = await runScenario(sc, { seed, transport: o.transport, outDir, ...(o.json ? {} : { log: write }) });
      if (o.junit !== undefined) writeReport(o.junit, junitForRun(r, { file, seconds: (Date.now() - started) / 1000, timestamp }));
      if (o.json) {
        const { trace: _trace, ...rest } = r;
        void _trace;
        write(JSON.stringify(rest, null, 2));
      } else printResult(r, write);
      if (o.junit !== undefined && !o.json) write(`  junit     ${resolve(o.junit)}`);
      if (!r.passed) {
        const failed = r.expectations.filter((e) => !e.ok);
        const first = failed[0];
        throw new CliError(
          'EXPECTATION_FAILED',
          `${failed.length} of ${r.expectations.length} expectations failed in ${r.scenario}${first ? `, first at step ${first.step}: ${first.description} (expected ${first.expected}, got ${first.actual})` : ''}`,
          `the FAIL lines above say which; reproduce with \`${r.replayCommand}\``,
        );
      }
    });

  scenario
    .command('list')
    .description(`list the scenarios in DIR (default: the ${SCENARIO_DIR}/ that ships with locksync); exit 2 if any is invalid`)
    .argument('[dir]', 'directory of scenario files (relative to the working directory)')
    .action((dirArg: string | undefined) => {
      const dir = dirArg ?? BUILTIN_SCENARIOS;
      let files: string[];
      try {
        files = readdirSync(dir).filter((f) => /\.(ya?ml|json)$/i.test(f)).sort();
      } catch (e) {
        throw new CliError('USAGE', `cannot list ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'pass a directory of scenario files');
      }
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
      if (bad > 0) throw new CliError('USAGE', `${bad} of ${files.length} scenario file(s) in ${relative('.', dir) || '.'} are invalid`, 'run `locksync scenario run FILE` on each INVALID one to see its issues');
    });
}
