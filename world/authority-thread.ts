// The authority's HTTP API served from a worker thread of its own.
//
// A cloud authority runs on its own machine. In one process, its CPU — building a
// 10,000-credential snapshot answer, verifying and storing a receipt — took turns on one
// event loop with the virtual radio, both host stacks and the locks: a snapshot fetched
// while the phone connects held noble's next HCI command back by ~20 ms, and the figures
// measured this machine's scheduling instead of the link. The worker opens the same
// property (a SQLite file or a PostgreSQL URL) as the world's own Authority handle, as
// `authority serve` does beside a manager's CLI in another process, and reads the world
// clock from shared memory, so both sign with the same time.
import { Worker } from 'node:worker_threads';
import type { FakeClock } from '../firmware-sim/index';

export interface AuthorityThreadOptions {
  dbPath: string;
  keyDir?: string;
  host: string;
  /** Upper bound on the uplink long-poll wait, seconds. */
  maxWaitSeconds: number;
  /** The world clock: mirrored to the worker on every change. */
  clock: FakeClock;
  /** How long the worker may take to open the property and listen (default 15 s). */
  startTimeoutMs?: number;
}

/** What the world needs of a running authority server: where it listens, and how to stop it. */
export interface AuthorityThread {
  readonly url: string;
  close(): Promise<void>;
}

/** Messages the worker posts: its address once it listens, or why it could not. */
export type AuthorityThreadReport = { kind: 'listening'; url: string } | { kind: 'failed'; code: string; message: string };

const CLOSE_TIMEOUT_MS = 5000;

export async function startAuthorityThread(opts: AuthorityThreadOptions): Promise<AuthorityThread> {
  // Whole milliseconds in one 64-bit word: read and written with Atomics, so the worker never
  // sees half of an update. The authority's clock is whole seconds, so nothing is lost.
  const shared = new BigInt64Array(new SharedArrayBuffer(8));
  const publish = (ms: number): void => void Atomics.store(shared, 0, BigInt(Math.floor(ms)));
  publish(opts.clock.nowMs());
  const before = opts.clock.onChange;
  opts.clock.onChange = (ms) => {
    publish(ms);
    before?.(ms);
  };
  const worker = new Worker(new URL('./authority-thread-worker.mjs', import.meta.url), {
    workerData: { dbPath: opts.dbPath, keyDir: opts.keyDir, host: opts.host, maxWaitSeconds: opts.maxWaitSeconds, clock: shared.buffer },
  });
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  let url: string;
  try {
    url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the authority thread did not listen within ${opts.startTimeoutMs ?? 15_000} ms`)), opts.startTimeoutMs ?? 15_000);
      const settle = (f: () => void): void => {
        clearTimeout(timer);
        f();
      };
      worker.on('message', (m: AuthorityThreadReport) => {
        if (m.kind === 'listening') settle(() => resolve(m.url));
        else if (m.kind === 'failed') settle(() => reject(Object.assign(new Error(`authority thread: ${m.message}`), { code: m.code })));
      });
      worker.once('error', (e) => settle(() => reject(e)));
      void exited.then((code) => settle(() => reject(new Error(`the authority thread exited (code ${code}) before it listened`))));
    });
  } catch (e) {
    opts.clock.onChange = before;
    await worker.terminate();
    throw e;
  }
  let closing: Promise<void> | undefined;
  // After the start, a thread that dies (an exception its server did not catch) says so once,
  // in one line: the phone's calls then fail as AUTHORITY_UNREACHABLE, and this is why. An
  // 'error' event without a listener would take this whole process down instead.
  worker.on('error', (e: Error) => {
    if (closing === undefined) process.stderr.write(`error AUTHORITY_THREAD: the authority thread stopped: ${e.message} — the world's authority is unreachable from now on\n`);
  });
  return {
    url,
    close: () =>
      (closing ??= (async () => {
        opts.clock.onChange = before;
        worker.postMessage('close');
        // A worker that does not wind down in time (a request stuck in the database) is ended.
        const timer = setTimeout(() => void worker.terminate(), CLOSE_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      })()),
  };
}
