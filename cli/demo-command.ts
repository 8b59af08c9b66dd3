// The demo's arguments, parsed by commander both for `npm start -- …` (cli/demo.ts run
// directly) and for `locksync demo …`, so both take the same options and give the same help.

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { reportFailure } from './errors';
import { applyCliConventions, isAskedForOutput, oneOf } from './program';

export interface DemoArgs {
  seed: string;
  out: string;
  transport: 'ble' | 'sim';
}

const DESCRIPTION =
  "the end-to-end story through the real stacks (same as `npm start`): virtual radio, authority (SQLite + HTTP), an offline and an internet-connected lock on bleno, a resident's and a partner's phone on noble. " +
  'Writes DIR/capture/*.btsnoop, DIR/trace.json and DIR/timeline.html. Exit 0 only if every step behaved as told.';

function demoOptions(cmd: Command): Command {
  return cmd
    .description(DESCRIPTION)
    .summary('the end-to-end story through the real stacks (same as `npm start`)')
    .option('--seed <seed>', 'seed for keys, clocks and radio faults (the replay value)', '2026')
    .option('--out <dir>', 'output directory for captures, trace.json and timeline.html', 'out/demo')
    .option('--transport <kind>', 'ble (bleno ↔ noble over the virtual radio) or sim (in-process link)', oneOf('--transport', ['ble', 'sim'] as const), 'ble');
}

/** `locksync demo …`: runs cli/demo.ts in its own process (it owns its event loop and exit code). */
export function registerDemoCommand(program: Command): Command {
  return demoOptions(program.command('demo')).action((o: DemoArgs) => {
    const script = fileURLToPath(new URL('./demo.ts', import.meta.url));
    const r = spawnSync(process.execPath, ['--import', 'tsx', script, '--seed', o.seed, '--out', o.out, '--transport', o.transport], { stdio: 'inherit' });
    process.exitCode = r.status ?? 1;
  });
}

/** `npm start -- …`: the parsed options; prints help or a usage error and exits instead. */
export function parseDemoArgs(argv: string[]): DemoArgs {
  let parsed: DemoArgs | undefined;
  const cmd = applyCliConventions(demoOptions(new Command('npm start --')).action((o: DemoArgs) => void (parsed = o)));
  try {
    cmd.parse(argv, { from: 'user' });
  } catch (e) {
    process.exit(isAskedForOutput(e) ? 0 : reportFailure(e));
  }
  if (parsed === undefined) throw new Error('demo arguments were not parsed');
  return parsed;
}
