// Command-line entry points the project CLI delegates to:
//   locksync radio up --dir DIR --controllers N|name,name [--seed S] [--capture DIR]
//                     [--time-scale X] [--legacy] [--schedule FILE.json]
//   locksync radio ctl --dir DIR '{"op":"links"}'
//   locksync trace show FILE
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { summarizeBtsnoop } from './btsnoop';
import { startRadio, type ControlRequest, type FaultScheduleEntry } from './radio';
import { CliError, reportFailure } from '../cli/errors';
import { radioFailure, radioReadyLine } from './lifecycle';

export interface CliIo {
  stdout: (line: string) => void;
  stderr: (line: string) => void;
}

const defaultIo: CliIo = {
  stdout: (line) => process.stdout.write(`${line}\n`),
  stderr: (line) => process.stderr.write(`${line}\n`),
};

export class CliUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliUsageError';
  }
}

const RADIO_USAGE = [
  'usage: locksync radio up --dir DIR --controllers N|name,name,... [--seed S] [--capture DIR] [--time-scale X] [--legacy] [--schedule FILE.json]',
  '       locksync radio ctl --dir DIR \'{"op":"list"}\'',
];

function parseFlags(args: string[], booleans: string[]): { flags: Map<string, string>; positional: string[] } {
  const flags = new Map<string, string>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const [name, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
    if (booleans.includes(name)) {
      flags.set(name, 'true');
    } else if (inline !== undefined) {
      flags.set(name, inline);
    } else {
      const value = args[++i];
      if (value === undefined) throw new CliUsageError(`--${name} needs a value`);
      flags.set(name, value);
    }
  }
  return { flags, positional };
}

/**
 * `locksync radio …`. `up` runs until SIGINT/SIGTERM (or `options.signal` aborts) and
 * resolves with the exit code.
 */
export async function radioMain(argv: string[], options: { io?: CliIo; signal?: AbortSignal } = {}): Promise<number> {
  const io = options.io ?? defaultIo;
  const [command, ...rest] = argv;
  try {
    if (command === 'up') return await radioUp(rest, io, options.signal);
    if (command === 'ctl') return await radioCtl(rest, io);
    throw new CliUsageError(command ? `unknown radio command "${command}"` : 'missing radio command');
  } catch (error) {
    if (error instanceof CliUsageError) {
      io.stderr(error.message);
      for (const line of RADIO_USAGE) io.stderr(line);
      return 2;
    }
    const failure = radioFailure(error);
    if (failure instanceof CliError) return reportFailure(failure);
    io.stderr(`radio: ${(error as Error).message}`);
    return 1;
  }
}

async function radioUp(args: string[], io: CliIo, signal?: AbortSignal): Promise<number> {
  const { flags } = parseFlags(args, ['legacy']);
  const dir = flags.get('dir');
  const controllersFlag = flags.get('controllers');
  if (!dir || !controllersFlag) throw new CliUsageError('--dir and --controllers are required');
  const controllers = /^\d+$/.test(controllersFlag) ? Number(controllersFlag) : controllersFlag.split(',').map((s) => s.trim()).filter(Boolean);
  const timeScale = flags.has('time-scale') ? Number(flags.get('time-scale')) : 1;
  if (!(timeScale > 0)) throw new CliUsageError('--time-scale must be a positive number');
  const seedFlag = flags.get('seed');
  const schedulePath = flags.get('schedule');
  const faultSchedule = schedulePath ? (JSON.parse(fs.readFileSync(schedulePath, 'utf8')) as FaultScheduleEntry[]) : undefined;
  const captureDir = flags.get('capture');
  const radio = await startRadio({
    dir,
    controllers,
    timeScale,
    extendedAdvertising: !flags.has('legacy'),
    ...(seedFlag !== undefined ? { seed: /^\d+$/.test(seedFlag) ? Number(seedFlag) : seedFlag } : {}),
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

async function radioCtl(args: string[], io: CliIo): Promise<number> {
  const { flags, positional } = parseFlags(args, []);
  const dir = flags.get('dir');
  if (!dir || positional.length === 0) throw new CliUsageError('ctl needs --dir and a JSON request');
  for (const text of positional) {
    const response = await sendControlRequest(path.join(dir, 'control.sock'), JSON.parse(text) as ControlRequest);
    io.stdout(JSON.stringify(response));
    if (!response.ok) return 1;
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

/** `locksync trace show FILE`: prints a summary of a btsnoop capture. */
export async function traceMain(argv: string[], options: { io?: CliIo } = {}): Promise<number> {
  const io = options.io ?? defaultIo;
  const [command, file] = argv;
  if (command !== 'show' || !file) {
    io.stderr('usage: locksync trace show FILE.btsnoop');
    return 2;
  }
  try {
    for (const line of summarizeBtsnoop(fs.readFileSync(file))) io.stdout(line);
    return 0;
  } catch (error) {
    io.stderr(`trace: ${(error as Error).message}`);
    return 1;
  }
}
