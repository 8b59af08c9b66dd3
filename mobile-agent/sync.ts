// Door Sync: what the phone does when a person taps Sync near a door.
//
//   connect → lock hello (version, nonce) → fetch updates from that version (authority, or
//   the courier cache when offline) → signed time bound to the nonce → update(s) → signed
//   receipt → audit export → relay receipt and audit to the authority (or queue them).
//
// A link lost mid-transfer is retried with exponential backoff; the framing resumes the
// message from the bytes the lock already holds, so a retry never starts over. If the lock
// committed but the receipt was lost with the link, the next connection's hello shows the
// new version and the phone asks for a receipt instead of resending.

import { type Message, decodeMessage, encodeMessage, ProtocolError } from '../protocol/index';
import type { AuthorityApi, PendingUpdates } from './authority-client';
import type { CourierCache } from './courier';
import { AgentError } from './errors';
import type { LockConnection, LockConnector } from './link';

export type SyncEvent =
  | { phase: 'connecting'; attempt: number }
  | { phase: 'connected'; lockVersion: number; rssi?: number }
  | { phase: 'fetched'; from: number; to: number; bytes: number; source: 'authority' | 'cache' }
  | { phase: 'time'; lockTime: number }
  | { phase: 'transfer'; acked: number; total: number }
  | { phase: 'receipt'; version: number }
  | { phase: 'refused'; code: string; detail: string }
  | { phase: 'audit'; records: number }
  | { phase: 'relayed'; to: 'authority' | 'outbox' }
  | { phase: 'retry'; attempt: number; delayMs: number; reason: string }
  | { phase: 'done'; version: number };

export interface SyncOptions {
  lockId: string;
  connector: LockConnector;
  /** Online: fetch updates and signed time here, relay receipts here. */
  authority?: AuthorityApi;
  /** Courier cache: updates carried offline, receipts queued for later. */
  cache?: CourierCache;
  attempts?: number;
  backoffMs?: number;
  messageTimeoutMs?: number;
  connectTimeoutMs?: number;
  onEvent?: (e: SyncEvent) => void;
  /** Test/scenario hook: what a hostile or buggy courier does to the update chain. */
  courierFilter?: (messages: Uint8Array[]) => Uint8Array[];
  /** Injectable sleep (scenarios run on a simulated clock). */
  sleep?: (ms: number) => Promise<void>;
}

export interface SyncResult {
  lockId: string;
  versionBefore: number;
  versionAfter: number;
  /** Encoded receipt message from the lock, if the lock committed something or was asked. */
  receipt?: Uint8Array;
  receiptDelivered: boolean;
  auditRecords: number;
  attempts: number;
  /** Bytes of update messages carried to the lock. */
  updateBytes: number;
}

interface SyncContext {
  opts: SyncOptions;
  timeout: number;
  versionBefore: number | undefined;
  /** An update whose transfer a dropped link cut: it stays queued in the lock's channel. */
  inFlight: { target: number } | undefined;
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function doorSync(opts: SyncOptions): Promise<SyncResult> {
  const attempts = opts.attempts ?? 4;
  const sleep = opts.sleep ?? defaultSleep;
  const ctx: SyncContext = { opts, timeout: opts.messageTimeoutMs ?? 20_000, versionBefore: undefined, inFlight: undefined };
  let lastError: AgentError | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    opts.onEvent?.({ phase: 'connecting', attempt });
    // Only an update in flight is worth resuming; anything else still queued from the last
    // link (signed time, audit request) belongs to the dead session and must not be sent.
    if (attempt > 1 && ctx.inFlight === undefined) opts.connector.forget(opts.lockId);
    let conn: LockConnection | undefined;
    try {
      const connectOpts: { timeoutMs?: number; onProgress?: (a: number, t: number) => void } = {
        onProgress: (acked, total) => opts.onEvent?.({ phase: 'transfer', acked, total }),
      };
      if (opts.connectTimeoutMs !== undefined) connectOpts.timeoutMs = opts.connectTimeoutMs;
      conn = await opts.connector.connect(opts.lockId, connectOpts);
      const hello = await expectHello(conn, ctx);
      const r = await syncOnConnection(conn, hello, ctx);
      await conn.disconnect().catch(() => undefined);
      return { ...r, attempts: attempt };
    } catch (e) {
      if (conn?.isOpen) await conn.disconnect().catch(() => undefined);
      const err = e instanceof AgentError ? e : new AgentError('PROTOCOL_VIOLATION', String((e as Error)?.message ?? e));
      lastError = err;
      // Only link trouble is worth retrying: a refusal will not change. A lock that is not
      // advertising is retried only if this sync already reached it — after a dropped link
      // the lock advertises again only once its own supervision timeout has fired.
      const reachedBefore = ctx.versionBefore !== undefined;
      const retryable =
        err.reason === 'LINK_LOST' || err.reason === 'TIMEOUT' || (err.reason === 'LOCK_NOT_FOUND' && reachedBefore) || err.lockError === 'BUSY';
      if (!retryable || attempt === attempts) break;
      const delayMs = (opts.backoffMs ?? 500) * 2 ** (attempt - 1);
      opts.onEvent?.({ phase: 'retry', attempt, delayMs, reason: err.message });
      await sleep(delayMs);
    }
  }
  // Giving up: nothing of this sync may linger in the channel and surprise the next one.
  // (A retried sync re-sends the same bytes, and the framing resumes them by content.)
  opts.connector.forget(opts.lockId);
  throw lastError ?? new AgentError('LINK_LOST', 'sync failed');
}

async function expectHello(conn: LockConnection, ctx: SyncContext): Promise<Extract<Message, { type: 'hello' }>> {
  const m = await conn.next(ctx.timeout);
  // A lock in a session with another phone answers BUSY instead of hello (SPEC §13.3).
  if (m.type === 'error') throw new AgentError('REFUSED_BY_LOCK', `${m.reason} ${m.detail}`.trim(), m.reason);
  if (m.type !== 'hello') throw new AgentError('PROTOCOL_VIOLATION', `expected hello, got ${m.type}`);
  if (m.lockId !== ctx.opts.lockId) throw new AgentError('PROTOCOL_VIOLATION', `connected to ${m.lockId}, wanted ${ctx.opts.lockId}`);
  if (ctx.versionBefore === undefined) ctx.versionBefore = m.version;
  ctx.opts.onEvent?.({ phase: 'connected', lockVersion: m.version });
  return m;
}

/** Run the sync exchange on an open connection whose hello was already read. */
export async function syncOnConnection(
  conn: LockConnection,
  hello: Extract<Message, { type: 'hello' }>,
  ctxOrOpts: SyncContext | SyncOptions,
): Promise<Omit<SyncResult, 'attempts'>> {
  const ctx: SyncContext =
    'opts' in ctxOrOpts
      ? ctxOrOpts
      : { opts: ctxOrOpts, timeout: ctxOrOpts.messageTimeoutMs ?? 20_000, versionBefore: hello.version, inFlight: undefined };
  const { opts } = ctx;
  const lockId = opts.lockId;
  let receipt: Extract<Message, { type: 'receipt' }> | undefined;
  let updateBytes = 0;

  // 1. A transfer cut by the previous link goes first — it is already queued in the channel
  //    ahead of anything sent now: let it finish (resume) or ask for the lost receipt.
  const resuming = ctx.inFlight !== undefined;
  if (ctx.inFlight) {
    const { target } = ctx.inFlight;
    if (hello.version >= target) {
      ctx.inFlight = undefined;
      receipt = await requestReceipt(conn, ctx);
    } else {
      await conn.drained(); // the framing resumes it from the bytes the lock holds
      ctx.inFlight = undefined;
      receipt = await expectReceipt(conn, ctx);
    }
  }

  // 2. Signed time (bound to this session's nonce) and the updates come from the authority
  //    in parallel. The time goes to the lock first when the lock can verify it now, and
  //    without waiting for its answer: the update follows right behind it on the link and
  //    the lock answers both in order — one round trip less for a small sync.
  const timeFirst = hello.certSerial !== undefined;
  const timeFetch = fetchSignedTime(hello, ctx);
  timeFetch.catch(() => undefined); // awaited below; a failure must not surface unhandled first

  // The lock judges each update on its own: a refused one does not stop the rest, and a
  // receipt already signed for a committed update is relayed even when a later one is
  // refused (otherwise the authority would not learn that version is in force).
  let refusal: AgentError | undefined;
  let timeAckDue = false;
  if (!resuming) {
    // 3. Updates from the lock's version.
    const pending = await fetchUpdates(lockId, hello.version, hello.certSerial, opts);
    const signedTime = await timeFetch;
    if (timeFirst && signedTime) {
      await conn.sendRaw(signedTime);
      timeAckDue = true;
    }
    const newer = pending !== undefined && pending.to > hello.version ? pending.messages : [];
    // The courier hook sees the chain even when nothing is newer (a replaying courier).
    const messages = opts.courierFilter ? opts.courierFilter(newer) : newer;
    for (const bytes of messages) {
      const target = targetOf(bytes) ?? pending?.to ?? hello.version;
      updateBytes += bytes.length;
      ctx.inFlight = { target };
      await conn.sendRaw(bytes); // LINK_LOST leaves it queued: the retry resumes it
      ctx.inFlight = undefined;
      if (timeAckDue) {
        await readTimeAck(conn, ctx);
        timeAckDue = false;
      }
      try {
        receipt = await expectReceipt(conn, ctx);
      } catch (e) {
        if (!(e instanceof AgentError && e.reason === 'REFUSED_BY_LOCK')) throw e;
        refusal ??= e;
      }
    }
  }

  if (timeAckDue) await readTimeAck(conn, ctx); // time sent, but no update followed it
  const signedTime = await timeFetch;
  // After the updates: a lock without the key certificate can verify it only now; and a
  // resumed sync sends its time here, behind the transfer it had to finish first.
  if (signedTime && (!timeFirst || resuming)) {
    await conn.sendRaw(signedTime);
    await readTimeAck(conn, ctx);
  }

  // 4. Audit log export.
  let auditRecords = 0;
  let auditExport: Uint8Array | undefined;
  if (hello.capabilities & 8) {
    await conn.send({ type: 'auditRequest', fromSeq: 0 });
    const m = await conn.next(ctx.timeout);
    if (m.type === 'auditExport') {
      auditRecords = m.records.length;
      auditExport = encodeMessage(m);
      opts.onEvent?.({ phase: 'audit', records: auditRecords });
    }
  }

  // 5. Relay receipt and audit.
  let receiptDelivered = false;
  const receiptBytes = receipt ? encodeMessage(receipt) : undefined;
  if (receiptBytes || auditExport) receiptDelivered = await relay(lockId, receiptBytes, auditExport, opts);
  if (refusal) throw refusal;
  const versionAfter = receipt?.body.version ?? hello.version;
  opts.onEvent?.({ phase: 'done', version: versionAfter });
  const result: Omit<SyncResult, 'attempts'> = {
    lockId,
    versionBefore: ctx.versionBefore ?? hello.version,
    versionAfter,
    receiptDelivered,
    auditRecords,
    updateBytes,
  };
  if (receiptBytes) result.receipt = receiptBytes;
  return result;
}

async function fetchUpdates(lockId: string, version: number, certSerial: number | undefined, opts: SyncOptions): Promise<PendingUpdates | undefined> {
  if (opts.authority) {
    try {
      const u = await opts.authority.updates(lockId, version, certSerial);
      opts.cache?.storeUpdates(u);
      opts.onEvent?.({ phase: 'fetched', from: u.from, to: u.to, bytes: u.messages.reduce((n, m) => n + m.length, 0), source: 'authority' });
      return u;
    } catch (e) {
      if (!(e instanceof AgentError && e.reason === 'AUTHORITY_UNREACHABLE') || !opts.cache) throw e;
    }
  }
  const cached = opts.cache?.updatesFor(lockId, version);
  if (cached) opts.onEvent?.({ phase: 'fetched', from: cached.from, to: cached.to, bytes: cached.messages.reduce((n, m) => n + m.length, 0), source: 'cache' });
  return cached;
}

function targetOf(bytes: Uint8Array): number | undefined {
  try {
    const m = decodeMessage(bytes);
    if (m.type === 'delta' || m.type === 'snapshot') return m.update.head.head.version;
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
  }
  return undefined;
}

async function expectReceipt(conn: LockConnection, ctx: SyncContext): Promise<Extract<Message, { type: 'receipt' }>> {
  const m = await conn.next(ctx.timeout);
  if (m.type === 'receipt') {
    ctx.opts.onEvent?.({ phase: 'receipt', version: m.body.version });
    return m;
  }
  if (m.type === 'error') {
    ctx.opts.onEvent?.({ phase: 'refused', code: m.reason, detail: m.detail });
    throw new AgentError('REFUSED_BY_LOCK', `lock refused the update: ${m.reason} ${m.detail}`.trim(), m.reason);
  }
  throw new AgentError('PROTOCOL_VIOLATION', `expected receipt, got ${m.type}`);
}

async function requestReceipt(conn: LockConnection, ctx: SyncContext): Promise<Extract<Message, { type: 'receipt' }>> {
  await conn.send({ type: 'receiptRequest' });
  return expectReceipt(conn, ctx);
}

async function relay(lockId: string, receipt: Uint8Array | undefined, audit: Uint8Array | undefined, opts: SyncOptions): Promise<boolean> {
  if (opts.authority) {
    try {
      // Deliver anything queued earlier first, in order.
      if (opts.cache) {
        const queued = opts.cache.outbox(lockId);
        let n = 0;
        for (const q of queued) {
          if (q.kind === 'receipt') await opts.authority.postReceipt(lockId, q.message);
          else await opts.authority.postAudit(lockId, q.message);
          n++;
        }
        if (n > 0) opts.cache.delivered(lockId, n);
      }
      if (receipt) await opts.authority.postReceipt(lockId, receipt);
      if (audit) await opts.authority.postAudit(lockId, audit);
      opts.onEvent?.({ phase: 'relayed', to: 'authority' });
      return receipt !== undefined;
    } catch (e) {
      if (!(e instanceof AgentError && e.reason === 'AUTHORITY_UNREACHABLE') || !opts.cache) throw e;
    }
  }
  if (opts.cache) {
    if (receipt) opts.cache.queue(lockId, 'receipt', receipt);
    if (audit) opts.cache.queue(lockId, 'audit', audit);
    opts.onEvent?.({ phase: 'relayed', to: 'outbox' });
  }
  return false;
}

/** Deliver receipts and audit exports collected offline. Returns how many were delivered. */
export async function deliverOutbox(cache: CourierCache, authority: AuthorityApi): Promise<number> {
  let total = 0;
  for (const lockId of cache.locks()) {
    const queued = cache.outbox(lockId);
    let n = 0;
    for (const q of queued) {
      if (q.kind === 'receipt') await authority.postReceipt(lockId, q.message);
      else await authority.postAudit(lockId, q.message);
      n++;
    }
    if (n > 0) cache.delivered(lockId, n);
    total += n;
  }
  return total;
}

/**
 * Signed time bound to this session's nonce (online only). Sent before the updates when the
 * lock holds a certificate for the authority's online key (hello certSerial), so the receipt
 * carries a corrected clock; a lock that holds none yet (fresh, or just re-provisioned) can
 * only verify it after the update that brings the certificate, so it goes after.
 */
/** The authority's signed time for this session's nonce; undefined when unreachable. */
async function fetchSignedTime(hello: Extract<Message, { type: 'hello' }>, ctx: SyncContext): Promise<Uint8Array | undefined> {
  const { opts } = ctx;
  if (!opts.authority) return undefined;
  try {
    return await opts.authority.signedTime(opts.lockId, hello.nonce);
  } catch (e) {
    if (e instanceof AgentError && e.reason === 'AUTHORITY_UNREACHABLE') return undefined;
    throw e;
  }
}

/** The lock's answer to signed time: timeAck, or an error (stale or untrusted time) that
 *  leaves the clock as it was and does not stop the sync. */
async function readTimeAck(conn: LockConnection, ctx: SyncContext): Promise<void> {
  const ack = await conn.next(ctx.timeout);
  if (ack.type === 'timeAck') ctx.opts.onEvent?.({ phase: 'time', lockTime: ack.lockTime });
  else if (ack.type !== 'error') throw new AgentError('PROTOCOL_VIOLATION', `expected timeAck, got ${ack.type}`);
}
