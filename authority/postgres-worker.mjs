// The worker thread behind authority/postgres.ts: it owns one `pg` connection and answers one
// request at a time. The main thread posts a request (with its number) and sleeps on a shared
// word; this worker posts the reply (with the same number) first and then writes the number
// into the word and wakes it, so the reply is always there to be read when the number is.
// Plain JavaScript on purpose: a worker thread starts without the TypeScript loader.

import { workerData } from 'node:worker_threads';

const { port, flag } = workerData;
let client = null;
/** Why the connection can no longer be used (the server ended it, the socket broke), once it happened. */
let lost = null;

function answer(id, reply) {
  port.postMessage({ ...reply, id });
  Atomics.store(flag, 0, id);
  Atomics.notify(flag, 0);
}

function failure(e, extra = {}) {
  return { ok: false, error: { message: e && e.message ? e.message : String(e), code: e && e.code, detail: e && e.detail, constraint: e && e.constraint, ...extra } };
}

async function connect(url, opts) {
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
  const c = new pg.Client({
    connectionString: url,
    statement_timeout: opts.statementTimeoutMs,
    // A transaction left open by a process that stopped talking (descheduled, frozen, killed
    // without closing its socket) must not hold the writer locks forever.
    idle_in_transaction_session_timeout: opts.statementTimeoutMs,
    connectionTimeoutMillis: opts.connectTimeoutMs,
  });
  // A connection that drops between requests: remember it, and say so on the next request
  // without sending anything (the main thread then opens a fresh connection).
  c.on('error', (e) => {
    lost ??= e;
  });
  c.on('end', () => {
    lost ??= new Error('the server closed the connection');
  });
  await c.connect();
  // PostgreSQL 14+: a backend whose client went away (a bridge timeout ends this worker) stops
  // waiting for a lock or running a statement within a second, instead of holding on until
  // statement_timeout. Older servers do not know the setting; they keep the old behaviour.
  await c.query("SELECT set_config('client_connection_check_interval', '1000', false)").catch(() => {});
  client = c;
}

/** An error that means the connection is gone (no SQLSTATE: a socket error; 08: connection exception; 57P01-3: shutdown). */
function connectionGone(e) {
  const code = e && e.code;
  return typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code) || /^(08|57P0[1-3])/.test(code);
}

port.on('message', async (req) => {
  const id = req.id;
  try {
    if (req.kind === 'connect') {
      await connect(req.url, req);
      answer(id, { ok: true, rows: [], rowCount: 0 });
    } else if (req.kind === 'query' || req.kind === 'exec') {
      if (lost !== null || client === null) {
        // Nothing was sent: the statement did not run.
        answer(id, failure(lost ?? new Error('not connected'), { lost: true, notSent: true }));
        return;
      }
      try {
        const r = req.kind === 'query' ? await client.query({ text: req.text, values: req.values }) : await client.query(req.text);
        answer(id, req.kind === 'query' ? { ok: true, rows: r.rows, rowCount: r.rowCount ?? 0 } : { ok: true, rows: [], rowCount: 0 });
      } catch (e) {
        if (connectionGone(e)) lost ??= e;
        answer(id, failure(e, lost !== null ? { lost: true } : {}));
      }
    } else if (req.kind === 'end') {
      const c = client;
      client = null;
      port.close();
      if (c) await c.end().catch(() => {});
    }
  } catch (e) {
    answer(id, failure(e));
  }
});
