// `locksync agent …`: the phone, from a terminal or a script.
//
// Every command ends one way: its result on stdout (text, or one JSON document with
// --json), and — when the exit code is not 0 — exactly one line on stderr,
// `error CODE: what happened — what to do`, CODE being the exit code's name in
// cli/errors.ts. `agent sync` exits 0 only when the lock holds the version the authority
// says is current and the authority has its receipt; every other outcome has its own code.

import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { CliError, EXIT_CODES, type ExitCodeName, formatErrorLine, parseIntegerOption, reportFailure } from '../cli/errors';
import { LOCK_ID_PATTERN, auditRecordFromBytes, decodeMessage, keyPairFromSeed, toHex } from '../protocol/index';
import { AgentError } from './errors';
import { HttpAuthorityClient, PHONE_ROUTE_TOKENS } from './authority-client';
import { CourierCache, CourierCacheError, type DeadLetter, type OutboxItem } from './courier';
import { readCredentialFile, CredentialFileError } from './credential';
import { doorSync, type SyncEvent, type SyncResult } from './sync';
import { deliverQueued } from './outbox';
import { unlock } from './unlock';
import { openConnector } from './transports';

/** Exit code for an unlock the lock refused (a decision, not a failure of the agent). */
export const EXIT_ACCESS_REFUSED = EXIT_CODES.UNLOCK_REFUSED;

const TRANSPORT_HELP = 'uart:PATH[@BAUD] (virtual radio pty or HCI dongle) | hci:N (required)';
const CACHE_HELP = 'courier cache directory: updates carried offline, the receipt outbox and its dead letters';
const DEFAULT_CACHE = '.locksync-courier';

interface CommonOpts {
  transport: string;
  json?: boolean;
}

/** What a command ends with: exit code, JSON document, text; `failure` → the stderr line. */
interface Ending {
  exit: number;
  out: unknown;
  text: string;
  failure?: { code: ExitCodeName; what: string; todo: string };
}

// ---------------------------------------------------------------------------
// Option checks (usage errors, exit 2, before anything is opened)

/** `--authority` must be an absolute http(s) URL. */
export function parseAuthorityUrl(raw: string): string {
  let u: URL | undefined;
  try {
    u = new URL(raw);
  } catch {
    u = undefined;
  }
  if (u === undefined || (u.protocol !== 'http:' && u.protocol !== 'https:'))
    throw new CliError('USAGE', `--authority must be an http(s) URL, got "${raw}"`, 'pass the base URL of `locksync authority serve`, e.g. --authority http://127.0.0.1:8080');
  return raw;
}

/** `--lock` must be a lock id (it also names the lock's courier cache file). */
function checkLockId(id: string | undefined): void {
  if (id !== undefined && !LOCK_ID_PATTERN.test(id))
    throw new CliError('USAGE', `--lock must be a lock id like lk-0001, got "${id}"`, '`locksync agent scan` lists the locks in range; `authority locks` the registered ones');
}

function authorityClient(o: { authority: string; token?: string }, command: string): HttpAuthorityClient {
  const url = parseAuthorityUrl(o.authority);
  const token = o.token ?? process.env.LOCKSYNC_TOKEN ?? '';
  if (token.trim() === '')
    throw new CliError('USAGE', `agent ${command} talks to the authority but no token was given`, `pass --token with ${PHONE_ROUTE_TOKENS}, or set LOCKSYNC_TOKEN`);
  return new HttpAuthorityClient(url, token.trim());
}

/** "2026-11-27T15:01:02.000Z (age 3 min)". */
export function describeFetch(fetchedAt: string, now: Date = new Date()): string {
  return `${fetchedAt} (age ${formatAge(now.getTime() - Date.parse(fetchedAt))})`;
}

export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 120) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 48) return `${h} h ${min % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

// ---------------------------------------------------------------------------
// Output

/** Progress: a bar on a TTY, JSON lines otherwise. */
function progressReporter(json: boolean | undefined): (e: SyncEvent) => void {
  const tty = process.stderr.isTTY && !json;
  return (e) => {
    if (!tty) {
      process.stderr.write(`${JSON.stringify({ event: 'sync', ...e })}\n`);
      return;
    }
    if (e.phase === 'transfer') {
      const width = 30;
      const done = Math.round((e.acked / Math.max(1, e.total)) * width);
      process.stderr.write(`\r  [${'#'.repeat(done)}${'.'.repeat(width - done)}] ${e.acked}/${e.total} B`);
      if (e.acked === e.total) process.stderr.write('\n');
    } else process.stderr.write(`  ${describe(e)}\n`);
  };
}

function describe(e: SyncEvent): string {
  switch (e.phase) {
    case 'connecting':
      return `connecting (attempt ${e.attempt})…`;
    case 'connected':
      return `connected; lock is at version ${e.lockVersion}`;
    case 'fetched':
      return `carrying v${e.from}→v${e.to} (${e.bytes} B, from ${e.source === 'cache' && e.fetchedAt ? `cache fetched at ${describeFetch(e.fetchedAt)}` : e.source})`;
    case 'time':
      return 'lock clock set from authority-signed time';
    case 'receipt':
      return `receipt: version ${e.version} in force`;
    case 'refused':
      return `lock refused: ${e.code} ${e.detail}`;
    case 'audit':
      return `audit log: ${e.records} record(s)`;
    case 'relayed':
      return e.to === 'authority' ? 'relayed to the authority' : 'kept in the outbox for later delivery';
    case 'deadLettered':
      return `the authority refused the ${e.kind} ${e.id} for good (HTTP ${e.status}${e.code ? ` ${e.code}` : ''}: ${e.reason}); moved to the dead letters`;
    case 'retry':
      return `link trouble (${e.reason}); retrying in ${e.delayMs} ms`;
    case 'done':
      return `done: version ${e.version}`;
    default:
      return JSON.stringify(e);
  }
}

function jsonFailure(code: string, what: string, todo: string, extra: Record<string, unknown> = {}): unknown {
  return { ok: false, outcome: 'failed', error: { code, exitCode: EXIT_CODES[code as ExitCodeName] ?? EXIT_CODES.INTERNAL, message: what, advice: todo }, ...extra };
}

async function run(json: boolean | undefined, body: () => Promise<Ending>): Promise<void> {
  try {
    const r = await body();
    const printed = json ? JSON.stringify(r.out) : r.text;
    if (printed !== '') process.stdout.write(`${printed}\n`);
    if (r.failure) process.stderr.write(`${formatErrorLine(r.failure.code, r.failure.what, r.failure.todo)}\n`);
    process.exitCode = r.exit;
  } catch (e) {
    let code: ExitCodeName;
    let what: string;
    let todo: string;
    let extra: Record<string, unknown> = {};
    if (e instanceof AgentError) {
      code = e.reason;
      what = e.detail;
      todo = e.advice;
      if (e.lockError) extra = { lockError: e.lockError };
      if (e.authority) extra = { ...extra, authority: e.authority };
    } else if (e instanceof CliError) {
      code = e.code;
      what = e.what;
      todo = e.todo;
    } else if (e instanceof CredentialFileError) {
      code = 'BAD_STATE';
      what = e.message;
      todo = 'pass the credential file `authority device enrol-demo` or `authority device credential-file` wrote';
    } else if (e instanceof CourierCacheError) {
      code = 'BAD_STATE';
      what = e.message;
      todo = 'move the file aside (it is not a courier cache file) or pass another --cache directory';
    } else {
      process.exitCode = reportFailure(e);
      return;
    }
    if (json) process.stdout.write(`${JSON.stringify(jsonFailure(code, what, todo, extra))}\n`);
    process.stderr.write(`${formatErrorLine(code, what, todo)}\n`);
    process.exitCode = EXIT_CODES[code];
  }
}

function deadLetterSummary(d: DeadLetter): Record<string, unknown> {
  return { id: d.id, lockId: d.lockId, kind: d.kind, collectedAt: d.collectedAt, refusedAt: d.refusedAt, refusal: d.refusal };
}

function itemSummary(i: OutboxItem): Record<string, unknown> {
  return { id: i.id, lockId: i.lockId, kind: i.kind, collectedAt: i.collectedAt, attempts: i.attempts, ...(i.lastError !== undefined ? { lastError: i.lastError } : {}) };
}

/** What a receipt or audit export says, for `outbox show`. */
function describeMessage(kind: string, bytes: Uint8Array): Record<string, unknown> {
  try {
    const m = decodeMessage(bytes);
    if (m.type === 'receipt') return { type: 'receipt', lockId: m.body.lockId, version: m.body.version, lockTime: m.body.lockTime, auditSeq: m.body.auditSeq, bytes: bytes.length };
    if (m.type === 'auditExport') {
      const seqs = m.records.map((r) => auditRecordFromBytes(r).seq);
      return { type: 'auditExport', records: m.records.length, firstSeq: seqs[0] ?? null, lastSeq: seqs.at(-1) ?? null, bytes: bytes.length };
    }
    return { type: m.type, bytes: bytes.length };
  } catch (e) {
    return { type: kind, bytes: bytes.length, undecodable: (e as Error).message };
  }
}

// ---------------------------------------------------------------------------
// agent sync: outcome → exit code, text and the stderr line

export function syncEnding(r: SyncResult, o: { offline: boolean; authority?: string }): Ending {
  const lock = r.lockId;
  const fromCache = r.cacheFetchedAt !== undefined ? `from cache fetched at ${describeFetch(r.cacheFetchedAt)}` : 'from cache';
  const deliverHint = `run \`locksync agent deliver --authority ${o.authority ?? 'URL'} --token TOKEN\` when the authority is reachable`;
  const notes: string[] = [];
  for (const d of r.deadLettered)
    notes.push(
      `the authority refused the ${d.kind} ${d.id} for good (HTTP ${d.refusal.status}${d.refusal.code ? ` ${d.refusal.code}` : ''}: ${d.refusal.reason}); it is in the dead letters: \`locksync agent outbox show ${d.id}\``,
    );
  if (r.auditFate === 'queued' && r.receiptFate !== 'queued') notes.push('the audit log is queued in the outbox, not yet delivered');
  let exit: number = EXIT_CODES.OK;
  let text: string;
  let failure: Ending['failure'];
  const changed = `${lock} now enforces version ${r.versionAfter} (was ${r.versionBefore})`;
  switch (r.outcome) {
    case 'up-to-date':
      text = `Door Sync OK: ${lock} is up to date at version ${r.versionAfter}, the authority's current`;
      break;
    case 'updated':
      text = `Door Sync OK: ${changed}; receipt delivered`;
      break;
    case 'receipt-queued':
      exit = EXIT_CODES.RECEIPT_QUEUED;
      text = `Door Sync: ${changed}; receipt queued, not delivered`;
      failure = { code: 'RECEIPT_QUEUED', what: `${lock} committed version ${r.versionAfter} but its receipt is only queued (${r.queuedBecause ?? 'not delivered'})`, todo: deliverHint };
      break;
    case 'receipt-refused': {
      exit = EXIT_CODES.AUTHORITY_REFUSED;
      const ref = r.receiptRefusal;
      const dead = r.deadLettered.find((d) => d.kind === 'receipt');
      text = `Door Sync: ${changed}; the authority refused the receipt`;
      failure = {
        code: 'AUTHORITY_REFUSED',
        what: `${lock} committed version ${r.versionAfter} but the authority refused its receipt (HTTP ${ref?.status ?? '?'}${ref?.code ? ` ${ref.code}` : ''}: ${ref?.reason ?? 'refused'})`,
        todo: `it is kept as dead letter ${dead?.id ?? '?'}: inspect it with \`locksync agent outbox show ${dead?.id ?? 'ID'}\`, and requeue it once the authority's record of the lock is fixed`,
      };
      break;
    }
    case 'from-cache': {
      const why = o.offline ? 'the authority was not asked (--offline)' : `the authority was unreachable (${r.authorityError ?? 'no answer'})`;
      text = `Door Sync ${fromCache}: ${changed}; ${why}`;
      if (r.receiptFate === 'delivered') text += '; receipt delivered';
      else {
        exit = EXIT_CODES.RECEIPT_QUEUED;
        text += '; receipt queued, not delivered';
        failure = { code: 'RECEIPT_QUEUED', what: `${lock} committed version ${r.versionAfter} ${fromCache}; its receipt is only queued`, todo: deliverHint };
      }
      break;
    }
    case 'nothing-cached': {
      const held = r.cacheFetchedAt !== undefined ? `the cache's newest for it was fetched at ${describeFetch(r.cacheFetchedAt)}` : 'the cache holds no update for it';
      text = '';
      if (o.offline) {
        exit = EXIT_CODES.NOTHING_TO_DELIVER;
        failure = {
          code: 'NOTHING_TO_DELIVER',
          what: `--offline: the courier cache carries nothing newer than version ${r.versionAfter} for ${lock} (${held}); the lock is unchanged`,
          todo: `fetch its updates while online (\`locksync agent fetch --lock ${lock} --from ${r.versionAfter} …\`), or sync online`,
        };
      } else {
        exit = EXIT_CODES.AUTHORITY_UNREACHABLE;
        failure = {
          code: 'AUTHORITY_UNREACHABLE',
          what: `${r.authorityError ?? 'the authority could not be reached'}; the courier cache carries nothing newer than version ${r.versionAfter} for ${lock} (${held}); the lock is unchanged`,
          todo: 'check the network and the --authority URL and repeat',
        };
      }
      break;
    }
    case 'behind':
      text = '';
      exit = EXIT_CODES.PROTOCOL_VIOLATION;
      failure = {
        code: 'PROTOCOL_VIOLATION',
        what: `${lock} is at version ${r.versionAfter} after the sync but the authority's current is ${r.authorityVersion ?? '?'}, and nothing was refused`,
        todo: 'capture a trace (radio --capture) and file a bug',
      };
      break;
  }
  if (notes.length > 0 && text !== '') text += `\nnote: ${notes.join('\nnote: ')}`;
  const out: Record<string, unknown> = {
    ok: exit === EXIT_CODES.OK,
    outcome: r.outcome,
    exitCode: exit,
    lockId: lock,
    versionBefore: r.versionBefore,
    versionAfter: r.versionAfter,
    source: r.source,
    ...(r.authorityVersion !== undefined ? { authorityVersion: r.authorityVersion } : {}),
    ...(r.cacheFetchedAt !== undefined ? { cache: { fetchedAt: r.cacheFetchedAt, ageSeconds: Math.round((Date.now() - Date.parse(r.cacheFetchedAt)) / 1000) } } : {}),
    ...(r.authorityError !== undefined ? { authorityError: r.authorityError } : {}),
    receiptDelivered: r.receiptDelivered,
    receiptFate: r.receiptFate,
    auditFate: r.auditFate,
    auditRecords: r.auditRecords,
    ...(r.queuedBecause !== undefined ? { queuedBecause: r.queuedBecause } : {}),
    deadLettered: r.deadLettered.map(deadLetterSummary),
    attempts: r.attempts,
    updateBytes: r.updateBytes,
    ...(r.receipt ? { receipt: toHex(r.receipt) } : {}),
  };
  if (failure) out.error = { code: failure.code, exitCode: exit, message: failure.what, advice: failure.todo };
  const ending: Ending = { exit, out, text };
  if (failure) ending.failure = failure;
  return ending;
}

// ---------------------------------------------------------------------------

export function registerAgentCommands(program: Command): void {
  const agent = program.command('agent').description('the phone: scan, Door Sync, unlock, courier, outbox, key pair (BLE central on noble)');

  agent
    .command('scan')
    .description('list nearby locks with RSSI and their advertised table version (exit 3 if --lock is not heard)')
    .requiredOption('--transport <spec>', TRANSPORT_HELP)
    .option('--timeout <ms>', 'scan duration in milliseconds', '3000')
    .option('--lock <id>', 'only this lock; exit 3 (LOCK_NOT_FOUND) if it is not heard')
    .option('--min-rssi <dBm>', 'only locks heard at this RSSI or stronger, e.g. -70')
    .option('--json', 'machine-readable output')
    .action(async (o: CommonOpts & { timeout: string; lock?: string; minRssi?: string }) =>
      run(o.json, async () => {
        checkLockId(o.lock);
        const timeoutMs = parseIntegerOption('--timeout', o.timeout, { min: 100, max: 600_000 });
        const minRssi = o.minRssi === undefined ? undefined : parseIntegerOption('--min-rssi', o.minRssi, { min: -127, max: 20 });
        const c = await openConnector(o.transport);
        try {
          const heard = await c.scan(timeoutMs);
          const locks = heard.filter((l) => (o.lock === undefined || l.lockId === o.lock) && (minRssi === undefined || l.rssi >= minRssi));
          if (o.lock !== undefined && locks.length === 0) {
            const near = heard.find((l) => l.lockId === o.lock);
            throw new AgentError(
              'LOCK_NOT_FOUND',
              near ? `${o.lock} was heard at ${near.rssi} dBm, weaker than --min-rssi ${minRssi}` : `${o.lock} was not heard in ${timeoutMs} ms (${heard.length} other lock(s) were)`,
            );
          }
          const text = locks.length === 0 ? 'no locks in range' : locks.map((l) => `${l.lockId}  rssi ${l.rssi} dBm  version ${l.version ?? '?'}  ${l.address ?? ''}`).join('\n');
          return { exit: 0, out: { ok: true, locks }, text };
        } finally {
          await c.close();
        }
      }),
    );

  agent
    .command('sync')
    .summary('Door Sync: carry pending updates to a lock, relay its signed receipt')
    .description(
      'Door Sync: carry pending updates to a lock and relay its signed receipt. Exit 0 only when the lock holds the authority\'s current version and the authority has the receipt; 14 receipt queued, 12 token refused, 13 authority refused, 6 unreachable, 7 nothing cached (--offline)',
    )
    .requiredOption('--lock <id>', 'lock id, e.g. lk-0001 (required)')
    .requiredOption('--transport <spec>', TRANSPORT_HELP)
    .option('--authority <url>', 'authority base URL, http(s)://HOST:PORT (required unless --offline)')
    .option('--token <token>', `bearer token: ${PHONE_ROUTE_TOKENS} (or LOCKSYNC_TOKEN)`)
    .option('--cache <dir>', CACHE_HELP, DEFAULT_CACHE)
    .option('--offline', 'do not ask the authority: carry updates fetched earlier (agent fetch); the receipt is queued')
    .option('--cache-fallback', 'if the authority cannot be reached, carry updates fetched earlier instead of failing (the output says from when)')
    .option('--attempts <n>', 'connection attempts before giving up (1–20)', '4')
    .option('--json', 'machine-readable output: one document with an "outcome" field')
    .action(async (o: CommonOpts & { lock: string; authority?: string; token?: string; cache: string; offline?: boolean; cacheFallback?: boolean; attempts: string }) =>
      run(o.json, async () => {
        checkLockId(o.lock);
        const attempts = parseIntegerOption('--attempts', o.attempts, { min: 1, max: 20 });
        if (o.offline && o.authority !== undefined)
          throw new CliError('USAGE', '--offline and --authority together: --offline does not ask the authority', 'drop --authority to sync from the cache, or drop --offline (add --cache-fallback to use the cache only when the authority is unreachable)');
        if (o.offline && o.cacheFallback) throw new CliError('USAGE', '--offline and --cache-fallback together', 'use --offline to never ask the authority, or --authority URL --cache-fallback');
        if (!o.offline && o.authority === undefined)
          throw new CliError('USAGE', 'agent sync needs --authority URL', 'pass --authority http://HOST:PORT with --token, or --offline to carry updates fetched earlier');
        const authority = o.authority !== undefined ? authorityClient({ authority: o.authority, ...(o.token !== undefined ? { token: o.token } : {}) }, 'sync') : undefined;
        const cache = new CourierCache(o.cache);
        const connector = await openConnector(o.transport);
        try {
          const syncOpts: Parameters<typeof doorSync>[0] = { lockId: o.lock, connector, cache, attempts, onEvent: progressReporter(o.json) };
          if (authority) syncOpts.authority = authority;
          if (o.cacheFallback) syncOpts.cacheFallback = true;
          let r: SyncResult;
          try {
            r = await doorSync(syncOpts);
          } catch (e) {
            if (e instanceof AgentError && e.reason === 'AUTHORITY_UNREACHABLE' && !o.cacheFallback)
              throw new AgentError(e.reason, e.detail, undefined, {
                advice: `${e.advice}; to carry updates fetched earlier instead, add --cache-fallback (or use --offline)`,
                ...(e.authority ? { authority: e.authority } : {}),
              });
            throw e;
          }
          return syncEnding(r, { offline: o.offline === true, ...(o.authority !== undefined ? { authority: o.authority } : {}) });
        } finally {
          await connector.close();
        }
      }),
    );

  agent
    .command('fetch')
    .description('courier mode: fetch updates for a lock now, carry them later with `agent sync --offline`')
    .requiredOption('--lock <id>', 'lock id (required)')
    .requiredOption('--authority <url>', 'authority base URL, http(s)://HOST:PORT (required)')
    .option('--token <token>', `bearer token: ${PHONE_ROUTE_TOKENS} (or LOCKSYNC_TOKEN)`)
    .option('--from <version>', 'version the lock is known to hold (0 = any: a snapshot)', '0')
    .option('--cache <dir>', CACHE_HELP, DEFAULT_CACHE)
    .option('--json', 'machine-readable output')
    .action(async (o: { lock: string; authority: string; token?: string; from: string; cache: string; json?: boolean }) =>
      run(o.json, async () => {
        checkLockId(o.lock);
        const from = parseIntegerOption('--from', o.from, { min: 0 });
        const client = authorityClient(o, 'fetch');
        const u = await client.updates(o.lock, from);
        const fetchedAt = new Date();
        new CourierCache(o.cache).storeUpdates(u, fetchedAt);
        const text =
          u.to > from ? `carrying ${o.lock} v${u.from}→v${u.to} (${u.messages.length} message(s)), fetched at ${fetchedAt.toISOString()}` : `${o.lock}: nothing newer than v${from} at the authority (current v${u.to})`;
        return { exit: 0, out: { ok: true, lockId: u.lockId, from: u.from, to: u.to, messages: u.messages.length, fetchedAt: fetchedAt.toISOString() }, text };
      }),
    );

  agent
    .command('deliver')
    .summary('deliver queued receipts and audit logs; permanent refusals become dead letters')
    .description(
      'deliver queued receipts and audit logs, each on its own; a permanent refusal moves the item to the dead letters (exit 13), a transient failure keeps it queued (exit 6)',
    )
    .requiredOption('--authority <url>', 'authority base URL, http(s)://HOST:PORT (required)')
    .option('--token <token>', `bearer token: ${PHONE_ROUTE_TOKENS} (or LOCKSYNC_TOKEN)`)
    .option('--cache <dir>', CACHE_HELP, DEFAULT_CACHE)
    .option('--json', 'machine-readable output')
    .action(async (o: { authority: string; token?: string; cache: string; json?: boolean }) =>
      run(o.json, async () => {
        const client = authorityClient(o, 'deliver');
        const report = await deliverQueued(new CourierCache(o.cache), client);
        const out = {
          ok: false,
          delivered: report.delivered.map(itemSummary),
          kept: report.kept.map(itemSummary),
          deadLettered: report.deadLettered.map(deadLetterSummary),
        };
        const lines = [
          report.delivered.length + report.kept.length + report.deadLettered.length === 0
            ? 'nothing queued'
            : `delivered ${report.delivered.length} item(s); ${report.kept.length} still queued; ${report.deadLettered.length} refused for good (dead letters)`,
          ...report.deadLettered.map((d) => `dead letter ${d.id}: ${d.kind} for ${d.lockId} — HTTP ${d.refusal.status}${d.refusal.code ? ` ${d.refusal.code}` : ''}: ${d.refusal.reason}`),
        ];
        let ending: Ending = { exit: 0, out: { ...out, ok: true }, text: lines.join('\n') };
        const stop = report.stoppedBy;
        if (stop) {
          const e = stop.error;
          ending = {
            exit: e.exitCode,
            out: { ...out, error: { code: e.reason, exitCode: e.exitCode, message: e.detail, advice: e.advice } },
            text: ending.text,
            failure: { code: e.reason, what: `${e.detail}; ${report.kept.length} item(s) stay queued`, todo: e.advice },
          };
        } else if (report.deadLettered.length > 0) {
          const first = report.deadLettered[0] as DeadLetter;
          const what = `the authority refused ${report.deadLettered.length} item(s) for good, first ${first.id} (${first.kind} for ${first.lockId}: HTTP ${first.refusal.status}${first.refusal.code ? ` ${first.refusal.code}` : ''}: ${first.refusal.reason}); moved to the dead letters, the rest of the queue is unaffected`;
          const todo = `inspect with \`locksync agent outbox show ${first.id}\`; \`agent outbox requeue ID\` once the cause is fixed, or \`agent outbox drop ID\``;
          ending = { exit: EXIT_CODES.AUTHORITY_REFUSED, out: { ...out, error: { code: 'AUTHORITY_REFUSED', exitCode: EXIT_CODES.AUTHORITY_REFUSED, message: what, advice: todo } }, text: ending.text, failure: { code: 'AUTHORITY_REFUSED', what, todo } };
        }
        return ending;
      }),
    );

  const outbox = agent.command('outbox').description('the receipt/audit outbox and its dead letters (items the authority refused for good)');
  outbox
    .command('list')
    .description('list queued items and dead letters')
    .option('--cache <dir>', CACHE_HELP, DEFAULT_CACHE)
    .option('--lock <id>', 'only this lock')
    .option('--json', 'machine-readable output')
    .action(async (o: { cache: string; lock?: string; json?: boolean }) =>
      run(o.json, async () => {
        checkLockId(o.lock);
        const cache = new CourierCache(o.cache, { create: false });
        const queued = cache.queued(o.lock);
        const dead = cache.deadLetters(o.lock);
        const lines = [
          ...queued.map((i) => `queued  ${i.id}  ${i.lockId}  ${i.kind.padEnd(7)}  collected ${i.collectedAt}${i.attempts > 0 ? `  ${i.attempts} failed attempt(s): ${i.lastError ?? ''}` : ''}`),
          ...dead.map((d) => `dead    ${d.id}  ${d.lockId}  ${d.kind.padEnd(7)}  refused ${d.refusedAt}: HTTP ${d.refusal.status}${d.refusal.code ? ` ${d.refusal.code}` : ''}: ${d.refusal.reason}`),
        ];
        return {
          exit: 0,
          out: { ok: true, queued: queued.map(itemSummary), deadLetters: dead.map(deadLetterSummary) },
          text: lines.length === 0 ? 'outbox empty, no dead letters' : lines.join('\n'),
        };
      }),
    );
  const findItem = (cache: CourierCache, id: string) => {
    const hit = cache.find(id);
    if (hit === undefined) throw new CliError('USAGE', `no outbox item or dead letter "${id}" in ${cache.dir}`, 'list them with `locksync agent outbox list` (pass the same --cache)');
    if (hit.state === 'ambiguous') throw new CliError('USAGE', `"${id}" matches ${hit.ids.join(', ')}`, 'give more characters of the id');
    return hit;
  };
  outbox
    .command('show')
    .description('show one queued item or dead letter: what it holds and why it was refused')
    .argument('<id>', 'item id from `agent outbox list` (a unique prefix of 4+ characters works)')
    .option('--cache <dir>', CACHE_HELP, DEFAULT_CACHE)
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: { cache: string; json?: boolean }) =>
      run(o.json, async () => {
        const hit = findItem(new CourierCache(o.cache, { create: false }), id);
        const item = hit.item;
        const content = describeMessage(item.kind, item.message);
        const base = hit.state === 'dead' ? deadLetterSummary(hit.item) : itemSummary(item);
        const out = { ok: true, state: hit.state, ...base, content, message: toHex(item.message) };
        const lines = [
          `${item.id}: ${item.kind} for ${item.lockId}, ${hit.state === 'dead' ? 'dead letter' : 'queued'}`,
          `  collected ${item.collectedAt}`,
          `  content   ${Object.entries(content).map(([k, v]) => `${k}=${String(v)}`).join(' ')}`,
        ];
        if (hit.state === 'dead') {
          const r = hit.item.refusal;
          lines.push(`  refused   ${hit.item.refusedAt}: HTTP ${r.status}${r.code ? ` ${r.code}` : ''}: ${r.reason}`);
        } else if (item.lastError !== undefined) lines.push(`  ${item.attempts} failed attempt(s), last: ${item.lastError}`);
        return { exit: 0, out, text: lines.join('\n') };
      }),
    );
  // requeue and drop act on one dead letter each; only the action and its words differ.
  const deadLetterCommand = (name: 'requeue' | 'drop', description: string, notDead: string, act: (cache: CourierCache, lockId: string, id: string) => void, done: string): void => {
    outbox
      .command(name)
      .description(description)
      .argument('<id>', 'dead letter id from `agent outbox list`')
      .option('--cache <dir>', CACHE_HELP, DEFAULT_CACHE)
      .option('--json', 'machine-readable output')
      .action(async (id: string, o: { cache: string; json?: boolean }) =>
        run(o.json, async () => {
          const cache = new CourierCache(o.cache);
          const hit = findItem(cache, id);
          if (hit.state !== 'dead') throw new CliError('USAGE', `${hit.item.id} is queued, not a dead letter${notDead}`, '`agent deliver` sends queued items');
          act(cache, hit.item.lockId, hit.item.id);
          return { exit: 0, out: { ok: true, [done]: hit.item.id }, text: `${done} ${hit.item.id}` };
        }),
      );
  };
  deadLetterCommand('requeue', 'put a dead letter back in the queue (after the cause was fixed at the authority); `agent deliver` sends it', '', (c, lockId, id) => c.requeue(lockId, id), 'requeued');
  deadLetterCommand('drop', 'forget a dead letter for good', '; only dead letters can be dropped', (c, lockId, id) => c.dropDeadLetter(lockId, id), 'dropped');

  agent
    .command('keygen')
    .summary('make a phone key pair for `authority device enrol --public-key`')
    .description(
      'make a phone key pair: writes the secret key (hex, mode 0600) and prints the public key for `authority device enrol --public-key`; then `authority device credential-file --secret-key-file` writes the credential file `agent unlock` reads',
    )
    .requiredOption('--out <file>', 'where to write the secret key (hex); must not exist (required)')
    .option('--json', 'machine-readable output')
    .action(async (o: { out: string; json?: boolean }) =>
      run(o.json, async () => {
        const kp = keyPairFromSeed(new Uint8Array(randomBytes(32)));
        try {
          writeFileSync(o.out, `${toHex(kp.secretKey)}\n`, { mode: 0o600, flag: 'wx' });
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'EEXIST') throw new CliError('USAGE', `${o.out} already exists (it may hold a phone's secret key)`, 'choose another --out; keygen never overwrites a key');
          throw new CliError('BAD_STATE', `cannot write ${o.out}: ${code ?? (e as Error).message}`, 'choose a writable --out path');
        }
        const publicKey = toHex(kp.publicKey);
        const text = [
          `public key ${publicKey}`,
          `secret key written to ${o.out} (mode 0600)`,
          'next: locksync authority device enrol --db DB --user ID --public-key <public key>   (prints deviceId and token)',
          `      locksync authority device credential-file --db DB --device <deviceId> --secret-key-file ${o.out} --out phone.json`,
        ].join('\n');
        return { exit: 0, out: { ok: true, publicKey, secretKeyFile: o.out }, text };
      }),
    );

  agent
    .command('unlock')
    .description('present a phone credential by challenge–response; passive sync afterwards (exit 11 if the lock refuses)')
    .requiredOption('--credential <file>', 'phone credential JSON (`authority device credential-file` or `enrol-demo`) (required)')
    .requiredOption('--lock <id>', 'lock id (required)')
    .requiredOption('--transport <spec>', TRANSPORT_HELP)
    .option('--authority <url>', 'authority base URL, for the passive sync')
    .option('--token <token>', `bearer token for the passive sync: ${PHONE_ROUTE_TOKENS} (or LOCKSYNC_TOKEN)`)
    .option('--cache <dir>', CACHE_HELP, DEFAULT_CACHE)
    .option('--no-passive-sync', 'skip the sync after the decision (a failed passive sync is reported beside the decision, which stands)')
    .option('--json', 'machine-readable output')
    .action(async (o: CommonOpts & { credential: string; lock: string; authority?: string; token?: string; cache: string; passiveSync: boolean }) =>
      run(o.json, async () => {
        checkLockId(o.lock);
        const authority = o.authority !== undefined && o.passiveSync ? authorityClient({ authority: o.authority, ...(o.token !== undefined ? { token: o.token } : {}) }, 'unlock') : undefined;
        const credential = readCredentialFile(o.credential);
        const connector = await openConnector(o.transport);
        try {
          const opts: Parameters<typeof unlock>[0] = { lockId: o.lock, credential, connector, cache: new CourierCache(o.cache), passiveSync: o.passiveSync };
          if (authority) opts.authority = authority;
          const r = await unlock(opts);
          const syncNote = r.sync ? `; passive sync: ${r.sync.outcome}, v${r.sync.versionAfter}` : r.syncFailure ? `; passive sync failed: ${r.syncFailure.message}` : '';
          const tried = r.attempts.length > 1 ? `; tried ${r.attempts.map((x) => `${x.credId} ${x.reason}`).join(', ')}` : '';
          const text = `${r.granted ? 'UNLOCKED' : 'REFUSED'} ${o.lock}: ${r.reason} (credential ${r.credId}, audit #${r.auditSeq}${tried})${syncNote}`;
          const out = {
            ok: true, // the agent got a decision; `granted` is the decision (exit 11 when refused)
            lockId: r.lockId,
            credId: r.credId,
            granted: r.granted,
            reason: r.reason,
            auditSeq: r.auditSeq,
            lockVersion: r.lockVersion,
            attempts: r.attempts,
            ...(r.sync ? { sync: { ...r.sync, receipt: undefined, deadLettered: r.sync.deadLettered.map(deadLetterSummary) } } : {}),
            ...(r.syncFailure ? { syncFailure: { code: r.syncFailure.reason, message: r.syncFailure.detail } } : {}),
          };
          const ending: Ending = { exit: r.granted ? 0 : EXIT_ACCESS_REFUSED, out, text };
          if (!r.granted) ending.failure = { code: 'UNLOCK_REFUSED', what: `${o.lock} refused credential ${r.credId}: ${r.reason}`, todo: 'the lock decided from the table it holds; ask the property manager if you should have access' };
          return ending;
        } finally {
          await connector.close();
        }
      }),
    );
}
