// `locksync`: one CLI, a subcommand per component.
//   lock       the lock firmware simulator (provision, run, inspect, keypad, present)
//   agent      the phone (scan, sync, fetch, deliver, unlock)
//   authority  the cloud (init, serve, manager operations)
//   radio      the virtual BLE radio (up, ctl)
//   trace      btsnoop captures decoded down to locksync messages (show)
//   replay     a captured sync replayed against a simulated lock (radio/replay.ts)
//   panel      a live web page over a world (world/panel.ts)
//   scenario   QA scenarios (run, list)
//   demo       the end-to-end story (same as `npm start`)
//   conformance  certify a lock under test over BLE (conformance/)
//
// Every failure ends here: whatever an action throws goes through reportFailure (one line
// `error CODE: what — what to do`, the code's exit status); usage mistakes are USAGE (2).

import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command } from 'commander';
import { reportFailure } from './errors';
import { applyCliConventions, isAskedForOutput } from './program';

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** How long a failed command may take to wind down before the process exits anyway. */
const FAILED_GRACE_MS = 2000;

/**
 * Each top-level command and how to load it. A command's module graph (authority, radio,
 * world, …) is imported only when that command runs: a `locksync agent sync` process does not
 * load the authority's SQL layer or the radio, which roughly halves its start-up time under
 * tsx. Help at the top level, or a name that is not here, loads them all.
 */
type Register = (program: Command) => unknown;

const SUBCOMMANDS: Readonly<Record<string, () => Promise<Register>>> = {
  // uart:/hci: locks serve the GATT service on bleno (loaded only when such a lock starts).
  lock: async () => {
    const [{ registerLockCommands }, { bleLockTransportFactory }] = await Promise.all([import('../firmware-sim/cli'), import('../ble/lock-transport')]);
    return (p) => registerLockCommands(p, { transportFactory: (spec) => bleLockTransportFactory(spec) });
  },
  agent: async () => (await import('../mobile-agent/cli')).registerAgentCommands,
  authority: async () => (await import('../authority/cli')).registerAuthorityCommands,
  radio: async () => (await import('../radio/cli')).registerRadioCommands,
  scenario: async () => (await import('../scenario/cli')).registerScenarioCommands,
  trace: async () => (await import('../radio/trace-show')).registerTraceCommands,
  replay: async () => (await import('../radio/replay')).registerReplayCommand,
  panel: async () => (await import('../world/panel')).registerPanelCommand,
  soak: async () => (await import('../world/soak')).registerSoakCommand,
  demo: async () => (await import('./demo-command')).registerDemoCommand,
  conformance: async () => (await import('../conformance/cli')).registerConformanceCommand,
};

/**
 * The `locksync` program. With `only` naming a top-level command, just that command is
 * registered (what `main` does for `locksync NAME …`); without it, all of them.
 */
export async function buildProgram(only?: string): Promise<Command> {
  const program = new Command('locksync')
    .description('Smart-lock firmware simulator, signed offline Door Sync over BLE, courier agent, authority and a virtual BLE radio')
    .version(packageVersion(), '-V, --version', 'print the locksync version');
  const one = only !== undefined && Object.hasOwn(SUBCOMMANDS, only) ? SUBCOMMANDS[only] : undefined;
  // Imported together, registered in the table's order (the order `--help` lists them).
  const registers = await Promise.all((one !== undefined ? [one] : Object.values(SUBCOMMANDS)).map((load) => load()));
  for (const register of registers) register(program);
  return applyCliConventions(program);
}

/** Runs `locksync` with `argv` (node, script, args…) and sets the process's exit status. */
export async function main(argv: string[] = process.argv): Promise<void> {
  // `locksync trace show FILE | head`: a closed pipe ends the output, like any Unix tool.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  }
  // `npm run locksync -- …` runs in the package root; the paths on its command line are
  // relative to where the user typed it, as with an installed `locksync`.
  if (process.env.npm_lifecycle_event === 'locksync' && process.env.INIT_CWD) process.chdir(process.env.INIT_CWD);

  try {
    // argv[2] is the top-level command unless it is an option (`--help`, `-V`).
    const first = argv[2];
    await (await buildProgram(first !== undefined && !first.startsWith('-') ? first : undefined)).parseAsync(argv);
  } catch (e) {
    if (isAskedForOutput(e)) process.exitCode = 0;
    // A failed command may leave handles open (a server, a BLE stack): end the process now.
    else process.exit(reportFailure(e));
  }
  // A command that failed without throwing (it set its exit code and returned) has written
  // its error line; anything still holding the event loop now (a native BLE binding, a
  // serial port that never opened) must not turn that failure into a hang: leave after a
  // short grace period for pending writes. Only on failure — a successful action may return
  // with a server still serving (authority serve).
  if (process.exitCode !== undefined && process.exitCode !== 0) setTimeout(() => process.exit(), FAILED_GRACE_MS).unref();
}

// `tsx cli/main.ts …` (npm run locksync) runs it; bin/locksync.js calls main() itself, and
// tests import buildProgram without running anything.
const entry = process.argv[1];
if (entry !== undefined && existsSync(entry) && import.meta.url === pathToFileURL(realpathSync(entry)).href) await main();
