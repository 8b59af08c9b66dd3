// Command-line entry points of the radio, as commander subcommands of `locksync`:
//   locksync radio up --dir DIR --controllers N|name,name [--seed S] [--capture DIR]
//                     [--time-scale X] [--legacy] [--baud N] [--schedule FILE.json]
//                     [--privacy name,name|all] [--rpa-rotation SECONDS]
//   locksync radio ctl --dir DIR '{"op":"links"}'
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Command } from 'commander';
import { CliError, formatErrorLine, parseIntegerOption } from '../cli/errors';
import { applyCliConventions, isAskedForOutput } from '../cli/program';
import { radioFailure, radioReadyLine } from './lifecycle';
import { startRadio, type ControlRequest, type FaultScheduleEntry } from './radio';

export interface CliIo {
  stdout: (line: string) => void;
  stderr: (line: string) => void;
}

const defaultIo: CliIo = {
  stdout: (line) => process.stdout.write(`${line}\n`),
  stderr: (line) => process.stderr.write(`${line}\n`),
};

/** Kept for callers of radioMain: a usage mistake in the radio's own arguments. */
export class CliUsageError extends CliError {
  constructor(message: string) {
    super('USAGE', message, 'see `locksync radio --help`');
  }
}

export interface RadioCommandOptions {
  io?: CliIo;
  /** Aborting it stops a running `radio up`, as SIGINT/SIGTERM do. */
  signal?: AbortSignal;
  /** Receives each action's exit status (default: process.exitCode). */
  exit?: (code: number) => void;
}

/** `locksync radio up|ctl` as commander subcommands of `program`. */
export function registerRadioCommands(program: Command, options: RadioCommandOptions = {}): Command {
  const io = options.io ?? defaultIo;
  const exit = options.exit ?? ((code: number) => void (process.exitCode = code));
  const radio = program.command('radio').description('virtual BLE radio: HCI controllers on pseudo-terminals for the real noble/bleno stacks (see radio/README.md)');

  radio
    .command('up')
    .description('start the radio: one HCI controller per name on a pty in DIR, a control socket, optional btsnoop captures; runs until SIGINT/SIGTERM')
    .requiredOption('--dir <dir>', 'directory for the controllers\' pty links and control.sock (required)')
    .requiredOption('--controllers <n|names>', 'a count N (named ctrl-1 … ctrl-N) or comma-separated names, e.g. lock-1,phone-1 (required)', parseControllers)
    .option('--seed <seed>', 'seed for addresses, RSSI noise and faults (an integer or any text)', parseSeed)
    .option('--capture <dir>', 'write one btsnoop capture per controller into this directory')
    .option('--time-scale <x>', 'radio time per real time (1 = real time)', parseTimeScale, 1)
    .option('--legacy', 'clear the LE Extended Advertising feature bit so hosts use legacy advertising')
    .option('--baud <n>', 'model each controller\'s HCI UART at this baud rate (10 bits a byte: 1000000 carries about 100 kB/s each way); default: unlimited', parseBaud)
    .option('--schedule <file>', 'JSON fault schedule to apply (see radio/README.md)')
    .option('--privacy <names>', 'controllers (comma-separated, or "all") that, as phones do, appear only under a resolvable private address from their own IRK, whatever address the host asks for')
    .option('--rpa-rotation <seconds>', 'how often a --privacy controller replaces its private address (phones: 900)', (raw: string) => parseIntegerOption('--rpa-rotation', raw, { min: 1, max: 86_400 }), 900)
    .action(async (o: RadioUpOptions) => {
      try {
        exit(await radioUp(o, io, options.signal));
      } catch (error) {
        // A directory owned by a live radio, no pty support: named failures, not bugs.
        throw radioFailure(error);
      }
    });

  radio
    .command('ctl')
    .description('send JSON requests to a running radio\'s control socket and print each response')
    .requiredOption('--dir <dir>', 'the running radio\'s directory (required)')
    .argument('<request...>', 'one or more JSON requests, e.g. \'{"op":"links"}\'')
    .action(async (requests: string[], o: { dir: string }) => exit(await radioCtl(o.dir, requests, io)));
  return radio;
}

/**
 * `locksync radio …` as a library call. `up` runs until SIGINT/SIGTERM (or
 * `options.signal` aborts) and resolves with the exit code; a failure is printed as one
 * line on `io.stderr`.
 */
export async function radioMain(argv: string[], options: { io?: CliIo; signal?: AbortSignal } = {}): Promise<number> {
  const io = options.io ?? defaultIo;
  let code = 0;
  const program = new Command('locksync');
  registerRadioCommands(program, { ...options, io, exit: (c) => void (code = c) });
  applyCliConventions(program);
  program.configureOutput({ writeOut: (s) => io.stdout(s.replace(/\n$/, '')), writeErr: (s) => io.stderr(s.replace(/\n$/, '')) });
  try {
    await program.parseAsync(['radio', ...argv], { from: 'user' });
    return code;
  } catch (error) {
    if (isAskedForOutput(error)) return 0;
    if (error instanceof CliError) {
      io.stderr(error.line);
      return error.exitCode;
    }
    const failure = radioFailure(error);
    if (failure instanceof CliError) {
      io.stderr(failure.line);
      return failure.exitCode;
    }
    io.stderr(formatErrorLine('INTERNAL', (error as Error).message, 'this is a bug in locksync: report it'));
    return 1;
  }
}

function parseControllers(raw: string): number | string[] {
  if (/^\d+$/.test(raw)) return parseIntegerOption('--controllers', raw, { min: 1, max: 64 });
  const names = raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new CliUsageError(`--controllers needs a count or names, got "${raw}"`);
  return names;
}

function parseSeed(raw: string): number | string {
  return /^\d+$/.test(raw) ? Number(raw) : raw;
}

function parseBaud(raw: string): number {
  // 1200 baud is the slowest rate anyone configures an HCI UART at; 12 Mbaud is above the fastest USB-serial bridges.
  return parseIntegerOption('--baud', raw, { min: 1200, max: 12_000_000 });
}

function parseTimeScale(raw: string): number {
  const x = Number(raw);
  if (raw.trim() === '' || !(x > 0) || !Number.isFinite(x)) throw new CliUsageError(`--time-scale must be a positive number, got "${raw}"`);
  return x;
}

interface RadioUpOptions {
  dir: string;
  controllers: number | string[];
  seed?: number | string;
  capture?: string;
  timeScale: number;
  legacy?: boolean;
  baud?: number;
  schedule?: string;
  privacy?: string;
  rpaRotation: number;
}

function readFaultSchedule(file: string): FaultScheduleEntry[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CliError('BAD_STATE', `cannot read the fault schedule ${file}: ${(e as Error).message}`, 'pass an existing JSON file to --schedule');
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (!Array.isArray(parsed)) throw new Error('it is not a JSON array');
    return parsed as FaultScheduleEntry[];
  } catch (e) {
    throw new CliError('BAD_STATE', `the fault schedule ${file} is not a JSON array of faults: ${(e as Error).message}`, 'fix the file (see radio/README.md for the format)');
  }
}

async function radioUp(o: RadioUpOptions, io: CliIo, signal?: AbortSignal): Promise<number> {
  const { dir, controllers, timeScale } = o;
  const seedFlag = o.seed;
  const faultSchedule = o.schedule !== undefined ? readFaultSchedule(o.schedule) : undefined;
  const captureDir = o.capture;
  const names = typeof controllers === 'number' ? Array.from({ length: controllers }, (_, i) => `ctrl-${i + 1}`) : controllers;
  const perController: NonNullable<Parameters<typeof startRadio>[0]['perController']> = {};
  if (o.privacy !== undefined) {
    const chosen = o.privacy === 'all' ? names : o.privacy.split(',').map((n) => n.trim()).filter((n) => n.length > 0);
    const unknown = chosen.filter((n) => !names.includes(n));
    if (unknown.length > 0 || chosen.length === 0) {
      throw new CliError('USAGE', `--privacy names ${unknown.length > 0 ? unknown.join(', ') : 'nothing'}, not one of the controllers (${names.join(', ')})`, 'pass controller names from --controllers, or "all"');
    }
    // Each controller's IRK comes from the seed and its name: a run reproduces its addresses.
    for (const name of chosen) perController[name] = { privacy: { irk: createHash('sha256').update(`locksync-irk:${String(seedFlag ?? '')}:${name}`).digest().subarray(0, 16), rotationMs: o.rpaRotation * 1000 } };
  }
  const radio = await startRadio({
    perController,
    dir,
    controllers,
    timeScale,
    extendedAdvertising: o.legacy !== true,
    ...(o.baud !== undefined ? { uartBaud: o.baud } : {}),
    ...(seedFlag !== undefined ? { seed: seedFlag } : {}),
    ...(captureDir !== undefined ? { captureDir } : {}),
    ...(faultSchedule !== undefined ? { faultSchedule } : {}),
  });
  for (const c of radio.controllers) io.stdout(`${c.name}\t${c.address}\t${c.transport}${captureDir ? `\t${path.join(path.resolve(captureDir), `${c.name}.btsnoop`)}` : ''}`);
  io.stdout(`control\t${radio.controlSocketPath}`);
  io.stdout(radioReadyLine(radio, captureDir));
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.removeListener('SIGINT', stop);
      process.removeListener('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    if (signal) {
      if (signal.aborted) stop();
      else signal.addEventListener('abort', stop, { once: true });
    }
  });
  await radio.close();
  return 0;
}

async function radioCtl(dir: string, requests: string[], io: CliIo): Promise<number> {
  const socketPath = path.join(dir, 'control.sock');
  for (const text of requests) {
    let request: ControlRequest;
    try {
      request = JSON.parse(text) as ControlRequest;
    } catch (e) {
      throw new CliUsageError(`request ${JSON.stringify(text)} is not JSON: ${(e as Error).message}`);
    }
    let response: Awaited<ReturnType<typeof sendControlRequest>>;
    try {
      response = await sendControlRequest(socketPath, request);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ECONNREFUSED') throw new CliError('TRANSPORT_UNAVAILABLE', `no radio is running in ${dir} (${socketPath}: ${code})`, 'start one with `locksync radio up --dir DIR --controllers …`, or pass its --dir');
      if (/no answer/.test((e as Error).message)) throw new CliError('TIMEOUT', (e as Error).message, 'check that the radio in that directory is alive');
      throw e;
    }
    io.stdout(JSON.stringify(response));
    if (!response.ok) throw new CliError('USAGE', `the radio refused ${JSON.stringify(text)}: ${response.error ?? 'no reason given'}`, 'see radio/README.md for the control operations');
  }
  return 0;
}

/** One request/response on a radio's control socket (newline-delimited JSON). */
export function sendControlRequest(socketPath: string, request: ControlRequest, timeoutMs = 5000): Promise<{ id: unknown; ok: boolean; result?: unknown; error?: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    let buffered = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer from ${socketPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify({ id: 1, ...request })}\n`));
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      clearTimeout(timer);
      socket.end();
      resolve(JSON.parse(buffered.slice(0, newline)) as { id: unknown; ok: boolean; result?: unknown; error?: string });
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}
