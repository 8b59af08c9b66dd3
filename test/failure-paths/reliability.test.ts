// Failure paths of the reliability commands, each a separate process with a hard deadline:
// locksync soak, npm run powerloss (firmware-sim/powerloss-run.ts) and npm run
// flash-lifetime (firmware-sim/lifetime.ts): a bad option is USAGE (2) in one line.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, childEnv, expectFailure, locksync, type Finished } from './harness';

/** A tsx script as its own process, with a hard deadline. */
function script(file: string, args: string[], deadlineMs = 60_000): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, file), ...args], { cwd: ROOT, env: childEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${file} ${args.join(' ')} did not end within ${deadlineMs} ms`));
    }, deadlineMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr } as Finished);
    });
  });
}

describe('reliability commands: failure paths', () => {
  it('locksync soak --link-drop-rate 2 → USAGE naming the option', async () => {
    expectFailure(await locksync(['soak', '--link-drop-rate', '2']), 'USAGE', /--link-drop-rate must be a number from 0 to 1/);
  });
  it('locksync soak --days 0 → USAGE', async () => {
    expectFailure(await locksync(['soak', '--days', '0']), 'USAGE', /--days must be an integer/);
  });
  it('npm run powerloss -- --mode sideways → USAGE; --cuts abc → USAGE', async () => {
    expectFailure(await script('firmware-sim/powerloss-run.ts', ['--mode', 'sideways']), 'USAGE', /--mode must be atomic, outOfOrder or both/);
    expectFailure(await script('firmware-sim/powerloss-run.ts', ['--cuts', 'abc']), 'USAGE', /--cuts must be an integer/);
  });
  it('npm run flash-lifetime -- --days 0 → USAGE', async () => {
    expectFailure(await script('firmware-sim/lifetime.ts', ['--days', '0']), 'USAGE', /--days must be an integer/);
  });
  it('npm run powerloss -- --cuts 40 runs the schedule and prints cut points per second', async () => {
    const r = await script('firmware-sim/powerloss-run.ts', ['--cuts', '40', '--mode', 'atomic', '--seed', '3'], 120_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/atomic: \d+ cut points over .* cut points\/s/);
  });
});
