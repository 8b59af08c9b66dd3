// `npm run fuzz`: the decoder, message and framing properties at a million runs each (or
// `--runs N` / FUZZ_RUNS), printing runs, escapes and time per property. Unlike a test, an
// escape does not stop the run: every run is made, escapes are counted, and the first one
// of each property is printed with the seed and path that replay it. Exit 1 if any escaped.
//
//   npm run fuzz                                  # 1,000,000 runs of each property
//   npm run fuzz -- --runs 100000 --only framing  # fewer runs, one group (substring match)
//   npm run fuzz -- --seed 42 --json              # fixed seed; one JSON line per property
import fc from 'fast-check';
import { FUZZ_PROPERTIES, type FuzzProperty } from './properties';

interface Options {
  runs: number;
  seed: number;
  only: string | undefined;
  json: boolean;
}

function usage(message: string): never {
  process.stderr.write(`error USAGE: ${message} — usage: npm run fuzz -- [--runs N] [--seed N] [--only TEXT] [--json]\n`);
  process.exit(2);
}

function positiveInteger(flag: string, text: string | undefined): number {
  if (text === undefined || !/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) usage(`${flag} takes a non-negative integer, not "${text ?? ''}"`);
  return Number(text);
}

function parseArgs(argv: string[]): Options {
  const options: Options = {
    runs: positiveInteger('FUZZ_RUNS', process.env.FUZZ_RUNS ?? '1000000'),
    seed: process.env.FUZZ_SEED !== undefined ? positiveInteger('FUZZ_SEED', process.env.FUZZ_SEED) : Date.now() % 2 ** 31,
    only: undefined,
    json: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--runs') options.runs = positiveInteger('--runs', argv[++i]);
    else if (arg === '--seed') options.seed = positiveInteger('--seed', argv[++i]);
    else if (arg === '--only') options.only = argv[++i] ?? usage('--only takes a text');
    else if (arg === '--json') options.json = true;
    else usage(`unknown argument "${String(arg)}"`);
  }
  if (options.runs < 1) usage('--runs must be at least 1');
  return options;
}

export interface FuzzResult {
  group: string;
  property: string;
  runs: number;
  escapes: number;
  seconds: number;
  seed: number;
  firstEscape?: { message: string; counterexamplePath?: string };
}

/** Runs one property `runs` times, counting escapes instead of stopping at the first. */
export function fuzz(p: FuzzProperty, runs: number, seed: number): FuzzResult {
  let escapes = 0;
  let first: string | undefined;
  const started = performance.now();
  const details = fc.check(
    fc.property(p.arbitrary, (args) => {
      try {
        p.check(args);
      } catch (e) {
        escapes++;
        first ??= (e as Error)?.message ?? String(e);
      }
      return true;
    }),
    { numRuns: runs, seed },
  );
  const seconds = (performance.now() - started) / 1000;
  const result: FuzzResult = { group: p.group, property: p.name, runs: details.numRuns, escapes, seconds, seed };
  if (first !== undefined) {
    // Replay the property as a test would, to get fast-check's shrunk counterexample path.
    const replay = fc.check(fc.property(p.arbitrary, (args) => void p.check(args)), { numRuns: runs, seed });
    result.firstEscape = replay.counterexamplePath !== null ? { message: first, counterexamplePath: replay.counterexamplePath } : { message: first };
  }
  return result;
}

function main(): void {
  const options = parseArgs(process.argv.slice(2));
  const chosen = FUZZ_PROPERTIES.filter((p) => options.only === undefined || `${p.group}: ${p.name}`.includes(options.only));
  if (chosen.length === 0) usage(`--only "${options.only ?? ''}" matches no property`);
  if (!options.json) {
    console.log(`fuzz: ${chosen.length} properties × ${options.runs.toLocaleString('en-US')} runs, seed ${options.seed} (Node ${process.version})`);
  }
  let escaped = 0;
  const total = performance.now();
  for (const p of chosen) {
    const r = fuzz(p, options.runs, options.seed);
    escaped += r.escapes;
    if (options.json) console.log(JSON.stringify(r));
    else {
      const perRun = ((r.seconds * 1e6) / r.runs).toFixed(1);
      console.log(
        `${r.escapes === 0 ? 'ok  ' : 'FAIL'} ${r.group}: ${r.property} — ${r.runs.toLocaleString('en-US')} runs, ${r.escapes} escapes, ${r.seconds.toFixed(1)} s (${perRun} µs/run)`,
      );
      if (r.firstEscape) {
        console.log(`     first escape: ${r.firstEscape.message}`);
        if (r.firstEscape.counterexamplePath) console.log(`     replay: { seed: ${r.seed}, path: "${r.firstEscape.counterexamplePath}" }`);
      }
    }
  }
  if (!options.json) console.log(`fuzz: ${escaped} escapes in total, ${((performance.now() - total) / 1000).toFixed(1)} s`);
  process.exitCode = escaped === 0 ? 0 : 1;
}

main();
