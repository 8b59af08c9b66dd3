// Runs `locksync …` as a separate process with a hard deadline, for the failure-path tests:
// every failure must end within its stated timeout, with its documented exit code and one
// line `error CODE: what — what to do` on stderr, never a stack trace.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { EXIT_CODES, type ExitCodeName } from '../../cli/errors';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = path.join(ROOT, 'bin', 'locksync.js');

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  ms: number;
}

export interface RunOptions {
  /** Hard deadline: the process is killed and the test fails past it. */
  deadlineMs?: number;
  cwd?: string;
  env?: Record<string, string | undefined>;
  input?: string;
}

/** Every run's wall time, so a suite can report the slowest failure path. */
export const timings: { args: string; ms: number }[] = [];

export function childEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.LOCKSYNC_TOKEN;
  delete env.LOCKSYNC_BLE_FAMILY;
  delete env.LOCKSYNC_DEBUG;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Runs one command to completion, killing it (and failing) past the deadline. */
export function locksync(args: string[], opts: RunOptions = {}): Promise<Finished> {
  const deadlineMs = opts.deadlineMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: opts.cwd ?? ROOT,
      env: childEnv(opts.env),
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`locksync ${args.join(' ')} still running after its ${deadlineMs} ms deadline\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, deadlineMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const ms = Date.now() - started;
      timings.push({ args: args.join(' '), ms });
      resolve({ code, signal, stdout, stderr, ms });
    });
  });
}

/** Starts a long-running command; resolves once `ready` matches its output. */
export function startDaemon(args: string[], ready: RegExp, opts: RunOptions = {}): Promise<{ child: ChildProcess; out: () => string; exited: Promise<number | null> }> {
  const deadlineMs = opts.deadlineMs ?? 30_000;
  const child = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? ROOT, env: childEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`locksync ${args.join(' ')} not ready after ${deadlineMs} ms\n${out}`));
    }, deadlineMs);
    const check = (d: string): void => {
      out += d;
      if (ready.test(out)) {
        clearTimeout(timer);
        resolve({ child, out: () => out, exited });
      }
    };
    child.stdout.setEncoding('utf8').on('data', check);
    child.stderr.setEncoding('utf8').on('data', check);
    child.on('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`locksync ${args.join(' ')} exited ${code} before it was ready\n${out}`));
    });
  });
}

const STACK_FRAME = /^\s+at\s.+[(:]\d+/m;

/**
 * Asserts the failure contract: the documented exit code, exactly one non-empty stderr line
 * `error CODE: what — what to do`, and no stack frame anywhere in the output.
 */
export function expectFailure(r: Finished, code: ExitCodeName, detail?: RegExp): string {
  const context = `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  expect(r.code, context).toBe(EXIT_CODES[code]);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  const errorLines = lines.filter((l) => l.startsWith('error '));
  expect(errorLines, context).toHaveLength(1);
  const line = errorLines[0] ?? '';
  expect(line, context).toMatch(new RegExp(`^error ${code}: .+ — .+$`));
  expect(r.stderr + r.stdout, context).not.toMatch(STACK_FRAME);
  if (detail) expect(line, context).toMatch(detail);
  return line;
}

/** A digest of every file under `dir`, to assert a refused command left state unchanged. */
export function digestTree(dir: string): string {
  const h = crypto.createHash('sha256');
  const walk = (d: string): void => {
    for (const name of fs.readdirSync(d).sort()) {
      const p = path.join(d, name);
      const st = fs.statSync(p);
      if (st.isDirectory()) walk(p);
      // Sockets and other non-files (a running lock's control.sock) have no content to read.
      else if (st.isFile()) h.update(`${path.relative(dir, p)}\0`).update(fs.readFileSync(p));
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return h.digest('hex');
}

export function tempDir(prefix = 'locksync-fail-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
