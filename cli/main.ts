// `locksync`: one CLI, a subcommand per component.
//   lock       the lock firmware simulator (provision, run, inspect, keypad, present)
//   agent      the phone (scan, sync, fetch, deliver, unlock)
//   authority  the cloud (init, serve, manager operations)
//   radio      the virtual BLE radio (up, ctl)
//   trace      btsnoop captures decoded down to locksync messages (show)
//   replay     a captured sync replayed against a simulated lock (radio/replay.ts)
//   panel      a live web page over the demo's world (world/panel.ts)
//   scenario   QA scenarios (run)
//   demo       the end-to-end story (same as `npm start`)

import { Command } from 'commander';
import { registerAgentCommands } from '../mobile-agent/cli';
import { registerAuthorityCommands } from '../authority/cli';
import { registerLockCommands } from '../firmware-sim/cli';
import { registerScenarioCommands } from '../scenario/cli';
import { radioMain } from '../radio/index';
import { registerTraceCommands } from '../radio/trace-show';
import { registerReplayCommand } from '../radio/replay';
import { registerPanelCommand } from '../world/panel';
import { bleLockTransportFactory } from '../ble/lock-transport';

export function buildProgram(): Command {
  const program = new Command('locksync')
    .description('Smart-lock firmware simulator, signed offline Door Sync over BLE, courier agent, authority and a virtual BLE radio')
    .showHelpAfterError();

  // uart:/hci: locks serve the GATT service on bleno (loaded only when such a lock starts).
  registerLockCommands(program, { transportFactory: (spec) => bleLockTransportFactory(spec) });
  registerAgentCommands(program);
  registerAuthorityCommands(program);
  registerScenarioCommands(program);
  registerTraceCommands(program);
  registerReplayCommand(program);
  registerPanelCommand(program);

  // These tools parse their own arguments (radio/cli.ts, cli/demo.ts).
  const passThrough = (name: string, description: string, run: (args: string[]) => Promise<number>): void => {
    program
      .command(name)
      .description(description)
      .helpOption(false)
      .allowUnknownOption()
      .argument('[args...]')
      .action(async (args: string[]) => {
        process.exitCode = await run(args);
      });
  };
  passThrough('radio', 'virtual BLE radio: `radio up --dir DIR --controllers N`, `radio ctl --dir DIR <op> …` (see radio/README.md)', radioMain);
  passThrough('demo', 'the end-to-end story through the real stacks (same as `npm start`; `demo --help` for options)', async (args) => {
    const { spawnSync } = await import('node:child_process');
    const script = new URL('./demo.ts', import.meta.url).pathname;
    return spawnSync(process.execPath, ['--import', 'tsx', script, ...args], { stdio: 'inherit' }).status ?? 1;
  });
  return program;
}

// `locksync trace show FILE | head`: a closed pipe ends the output, like any Unix tool.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

await buildProgram().parseAsync(process.argv);
