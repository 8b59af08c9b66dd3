// Inside the authority's worker thread (authority-thread.ts): open the property, serve its
// HTTP API on an ephemeral port, report the address, and close when told.
import { parentPort, workerData } from 'node:worker_threads';
import { AuthorityError, startAuthorityServer } from '../authority/index';
import type { AuthorityThreadReport } from './authority-thread';

const data = workerData as { dbPath: string; keyDir?: string; host: string; maxWaitSeconds: number; clock: SharedArrayBuffer };
const port = parentPort;
if (port === null) throw new Error('authority-thread-serve runs only as a worker thread');
const clock = new BigInt64Array(data.clock);
const report = (m: AuthorityThreadReport): void => port.postMessage(m);

try {
  const server = await startAuthorityServer({
    dbPath: data.dbPath,
    ...(data.keyDir !== undefined ? { keyDir: data.keyDir } : {}),
    port: 0,
    host: data.host,
    maxWaitSeconds: data.maxWaitSeconds,
    now: () => Math.floor(Number(Atomics.load(clock, 0)) / 1000),
  });
  port.on('message', (m: unknown) => {
    if (m !== 'close') return;
    void server
      .close()
      .catch(() => undefined)
      .then(() => port.close()); // nothing left to keep the thread: it exits, which close() waits for
  });
  report({ kind: 'listening', url: server.url });
} catch (e) {
  report({ kind: 'failed', code: e instanceof AuthorityError ? e.code : 'INTERNAL', message: (e as Error).message });
  port.close();
}
