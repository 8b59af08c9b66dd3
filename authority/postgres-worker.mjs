// The worker thread behind authority/postgres.ts: it owns one `pg` connection and answers one
// request at a time. The main thread posts a request and sleeps on a shared flag; this worker
// posts the reply first and then raises the flag, so the reply is always there to be read.
// Plain JavaScript on purpose: a worker thread starts without the TypeScript loader.

import { workerData } from 'node:worker_threads';

const { port, flag } = workerData;
let client = null;

function answer(reply) {
  port.postMessage(reply);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
}

function failure(e) {
  return { ok: false, error: { message: e && e.message ? e.message : String(e), code: e && e.code, detail: e && e.detail, constraint: e && e.constraint } };
}

async function connect(url, statementTimeoutMs) {
  let pg;
  try {
    pg = (await import('pg')).default;
  } catch (e) {
    throw Object.assign(new Error(`the PostgreSQL driver (npm package "pg") is not installed: ${e.message}`), { code: undefined });
  }
  // 64-bit integers and numerics come back as JavaScript numbers, as SQLite gives them; every
  // integer the authority stores is a safe integer (unix seconds, versions, ids, counters).
  pg.types.setTypeParser(20, (v) => Number(v));
  pg.types.setTypeParser(1700, (v) => Number(v));
  const c = new pg.Client({ connectionString: url, statement_timeout: statementTimeoutMs, connectionTimeoutMillis: 8000 });
  // A connection that drops between requests surfaces on the next query as an error.
  c.on('error', () => {});
  await c.connect();
  client = c;
}

port.on('message', async (req) => {
  try {
    if (req.kind === 'connect') {
      await connect(req.url, req.statementTimeoutMs);
      answer({ ok: true, rows: [], rowCount: 0 });
    } else if (req.kind === 'query') {
      const r = await client.query({ text: req.text, values: req.values });
      answer({ ok: true, rows: r.rows, rowCount: r.rowCount ?? 0 });
    } else if (req.kind === 'exec') {
      await client.query(req.text);
      answer({ ok: true, rows: [], rowCount: 0 });
    } else if (req.kind === 'end') {
      const c = client;
      client = null;
      port.close();
      if (c) await c.end().catch(() => {});
    }
  } catch (e) {
    answer(failure(e));
  }
});
