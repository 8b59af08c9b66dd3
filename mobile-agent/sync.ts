// Door Sync: what the phone does when a person taps Sync near a door.
//
//   connect → lock hello (version, nonce) → fetch updates from that version (authority, or
//   the courier cache when offline) → signed time bound to the nonce → update(s) → signed
//   receipt → audit export → relay receipt and audit to the authority (or queue them).
//
// With a lock that offers batches (SPEC §6.5) the signed time, a small update and the audit
// request go as one `batch` and come back as one `batchReply`; the updates for the version
// the lock is expected at are fetched while the link is being set up (SPEC §14.1).
//
// A link lost mid-transfer is retried with exponential backoff; the framing resumes the
// message from the bytes the lock already holds, so a retry never starts over. If the lock
// committed but the receipt was lost with the link, the next connection's hello shows the
// new version and the phone asks for a receipt instead of resending.

import { type Message, CAPABILITIES, MAX_BATCH_ITEMS, decodeMessage, encodeMessage, peekUpdate, peekUpdateVersion, ProtocolError } from '../protocol/index';
import type { AuthorityApi, PendingUpdates } from './authority-client';
import type { CourierCache, DeadLetter, Refusal } from './courier';
import { AgentError } from './errors';
import { deliverQueued, deliverWithFresh } from './outbox';
import type { ConnectOptions, DiscoveredLock, LockConnection, LockConnector } from './link';

export type SyncEvent =
  | { phase: 'connecting'; attempt: number }
  | { phase: 'connected'; lockVersion: number; rssi?: number }
  | { phase: 'fetched'; from: number; to: number; bytes: number; source: 'authority' | 'cache'; fetchedAt?: string }
  | { phase: 'time'; lockTime: number }
  | { phase: 'transfer'; acked: number; total: number }
  | { phase: 'receipt'; version: number }
  | { phase: 'refused'; code: string; detail: string }
  | { phase: 'audit'; records: number }
  | { phase: 'relayed'; to: 'authority' | 'outbox' }
  | { phase: 'deadLettered'; kind: 'receipt' | 'audit'; id: string; status: number; code?: string; reason: string }
  | { phase: 'retry'; attempt: number; delayMs: number; reason: string }
  | { phase: 'done'; version: number };

export interface SyncOptions {
  lockId: string;
  connector: LockConnector;
  /** Online: fetch updates and signed time here, relay receipts here. */
  authority?: AuthorityApi;
  /** Courier cache: updates carried offline, receipts queued for later. */
  cache?: CourierCache;
  /**
   * With an authority: when it cannot be reached (no answer, 429, 5xx), carry what the cache
   * holds instead of failing. Off by default: an unreachable authority is a failure unless
   * the user asked for the cache. (Without an authority the cache is all there is.)
   */
  cacheFallback?: boolean;
  attempts?: number;
  backoffMs?: number;
  messageTimeoutMs?: number;
  connectTimeoutMs?: number;
  onEvent?: (e: SyncEvent) => void;
  /** Test/scenario hook: what a hostile or buggy courier does to the update chain. */
  courierFilter?: (messages: Uint8Array[]) => Uint8Array[];
  /** Injectable sleep (scenarios run on a simulated clock). */
  sleep?: (ms: number) => Promise<void>;
  /**
   * Send signed time, the update(s) and the audit request as one `batch` when the lock
   * offers it (hello capability `batch`, SPEC §6.5): one round trip instead of three.
   * On by default; false behaves as a phone that predates batches.
   */
  pipeline?: boolean;
}

/**
 * Updates up to this many bytes in total ride in a batch. A larger one goes alone: a batch
 * is bound to its session (the signed time in it carries the nonce), so a batch cut by a
 * dropped link cannot resume on the next connection, while a lone update resumes from the
 * bytes the lock holds (SPEC §13.2).
 */
export const BATCH_UPDATE_MAX_BYTES = 4096;

/**
 * What a Door Sync achieved, in one word (the CLI's `outcome` and exit code follow it):
 *   up-to-date       the authority was asked; the lock already holds its current version
 *   updated          the lock committed the authority's current version; receipt delivered
 *   receipt-queued   the lock committed it, but its receipt is only in the outbox
 *   receipt-refused  the lock committed it, and the authority refused the receipt for good
 *   from-cache       the authority was not asked (offline) or not reachable (cache fallback);
 *                    the lock committed the newest update the cache held (fetched at …)
 *   nothing-cached   the same, but the cache held nothing newer than the lock's version
 *   behind           the authority was asked, yet the lock ends below its current version
 */
export type SyncOutcome = 'up-to-date' | 'updated' | 'receipt-queued' | 'receipt-refused' | 'from-cache' | 'nothing-cached' | 'behind';

/** What became of an item to relay: the new receipt, or the new audit export. */
export type RelayFate = 'delivered' | 'queued' | 'dead-lettered' | 'none';

export interface SyncResult {
  lockId: string;
  outcome: SyncOutcome;
  versionBefore: number;
  versionAfter: number;
  /** Where the updates came from: the authority, or the courier cache. */
  source: 'authority' | 'cache';
  /** The authority's current version for the lock, when the authority was asked. */
  authorityVersion?: number;
  /** When the updates were carried from the cache: when the cache fetched them. */
  cacheFetchedAt?: string;
  /** Why the authority was not used, when the cache stood in for it (cache fallback). */
  authorityError?: string;
  /** Encoded receipt message from the lock, if the lock committed something or was asked. */
  receipt?: Uint8Array;
  receiptDelivered: boolean;
  receiptFate: RelayFate;
  auditFate: RelayFate;
  /** Why a receipt or audit export stayed queued (the delivery failure), if one did. */
  queuedBecause?: string;
  /** The authority's refusal of the receipt, when it was dead-lettered. */
  receiptRefusal?: Refusal;
  /** Items (this sync's or queued earlier) the authority refused for good during this sync. */
  deadLettered: DeadLetter[];
  auditRecords: number;
  attempts: number;
  /** Bytes of update messages carried to the lock. */
  updateBytes: number;
}

interface SyncContext {
  opts: SyncOptions;
  timeout: number;
  versionBefore: number | undefined;
  /**
   * An update sent alone whose receipt has not been read yet. Until `acked` (the lock
   * acknowledged its last byte) a dropped link leaves it queued in the lock's channel, to
   * resume; after, only its receipt is missing. Cleared once the receipt (or refusal) is read.
   */
  inFlight: { readonly target: number; acked: boolean } | undefined;
  /**
   * Updates asked for before the hello (prefetchUpdates, prefetchOnAdvert), each for the
   * version and certificate serial it expects; the one the hello matches is used, once.
   */
  prefetches: Prefetch[];
  /** What the updates carried to the lock in this sync were (for the next sync's prefetch). */
  carried?: Uint8Array[] | undefined;
  /**
   * The receipt read on an earlier connection of this sync: a link lost after it (signed
   * time, audit export) must not lose it — it is relayed at the end like one read now.
   */
  receipt?: Extract<Message, { type: 'receipt' }> | undefined;
  /** The version a batch sent on a link that dropped would have brought the lock to. */
  batchTarget?: number | undefined;
  /** Where the updates of this sync came from (set by the fetch). */
  fetched?: { source: 'authority' | 'cache'; to?: number; fetchedAt?: string; authorityError?: string };
  /**
   * Writes the chain just fetched from the authority to the courier cache (persistFetched):
   * run once the first update is on its way, not before — writing a 440 kB chain held the
   * first frame back — and on every way out of the update step, failures included.
   */
  storeFetched?: (() => void) | undefined;
}

function persistFetched(ctx: SyncContext): void {
  const store = ctx.storeFetched;
  ctx.storeFetched = undefined;
  store?.();
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** What a lock's next hello should say, learnt at the end of the last sync through a connector. */
interface ExpectedHello {
  version: number;
  certSerial: number | undefined;
}
const expectedHellos = new WeakMap<LockConnector, Map<string, ExpectedHello>>();

/** A fetch of the updates from the version a lock is expected to announce, started before its hello. */
interface Prefetch {
  expected: ExpectedHello;
  updates: Promise<PendingUpdates | undefined>;
}

/**
 * The updates for the version the lock is expected at, asked for while the link is still
 * being set up (SPEC §14.1). Used only if the hello then says exactly that version and
 * certificate serial; otherwise the phone asks again. A failure here is not reported: the
 * fetch after the hello reports its own.
 */
function prefetchUpdates(opts: SyncOptions): Prefetch | undefined {
  const expected = rememberedHello(opts);
  if (!opts.authority || expected === undefined) return undefined;
  const updates = opts.authority.updates(opts.lockId, expected.version, expected.certSerial).catch(() => undefined);
  return { expected, updates };
}

/** What the lock's hello said at the end of the last sync: the connector's memory (this process), else the courier cache's (an earlier one). */
function rememberedHello(opts: SyncOptions): ExpectedHello | undefined {
  return expectedHellos.get(opts.connector)?.get(opts.lockId) ?? opts.cache?.expectedHello(opts.lockId);
}

/**
 * The lock's advertisement, heard before connecting, names its table version (SPEC §10):
 * at a first contact (nothing remembered) or at a lock that moved on since (another phone
 * synced it), the updates from that version are asked for at once, so the fetch overlaps
 * the connection set-up instead of following the hello. The advert is not signed and may
 * be stale or forged: what was fetched is used only if the signed hello then names the
 * same version and certificate serial (fetchUpdates), otherwise the phone asks again.
 * The certificate serial is not advertised: it is taken from the remembered hello (the
 * lock's floor only rises), or none at a first contact — a fresh lock holds no certificate.
 */
function prefetchOnAdvert(ctx: SyncContext, advertised: DiscoveredLock): void {
  const { opts } = ctx;
  if (!opts.authority || advertised.lockId !== opts.lockId || advertised.version === undefined) return;
  // Once the updates were fetched (or are being fetched after a hello) this sync needs no other.
  if (ctx.fetched !== undefined || ctx.versionBefore !== undefined) return;
  if (ctx.prefetches.some((p) => p.expected.version === advertised.version)) return;
  const expected: ExpectedHello = { version: advertised.version, certSerial: rememberedHello(opts)?.certSerial };
  const updates = opts.authority.updates(opts.lockId, expected.version, expected.certSerial).catch(() => undefined);
  ctx.prefetches.push({ expected, updates });
}

function rememberHello(opts: SyncOptions, version: number, certSerial: number | undefined, persist: boolean): void {
  let m = expectedHellos.get(opts.connector);
  if (!m) expectedHellos.set(opts.connector, (m = new Map()));
  m.set(opts.lockId, { version, certSerial });
  // Only a sync that heard from the authority writes it to the courier cache: the prefetch
  // it serves needs an authority, and a sync that could carry nothing (offline with nothing
  // cached, exit 7; the authority unreachable, exit 6) must leave the cache as it was.
  if (persist) opts.cache?.rememberExpectedHello(opts.lockId, version, certSerial);
}

/**
 * The certificate serial a lock holds after committing `updates` (its floor only rises),
 * read without decoding their tables (peekUpdate): a whole 10,000-credential snapshot was
 * decoded after every such sync for one small integer.
 */
function certSerialAfter(before: number | undefined, updates: Uint8Array[]): number | undefined {
  let serial = before;
  for (const bytes of updates) for (const s of peekUpdate(bytes)?.certSerials ?? []) serial = Math.max(serial ?? 0, s);
  return serial;
}

export async function doorSync(opts: SyncOptions): Promise<SyncResult> {
  const attempts = opts.attempts ?? 4;
  const sleep = opts.sleep ?? defaultSleep;
  const ctx: SyncContext = { opts, timeout: opts.messageTimeoutMs ?? 20_000, versionBefore: undefined, inFlight: undefined, prefetches: [] };
  const remembered = prefetchUpdates(opts);
  if (remembered) ctx.prefetches.push(remembered);
  let lastError: AgentError | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    opts.onEvent?.({ phase: 'connecting', attempt });
    // Only an update of this sync in flight is worth resuming; anything else still queued
    // from the last link (signed time, audit request, or an earlier sync's audit anchor cut
    // by its link) belongs to a dead session and must not be sent: its answer would arrive
    // where this session expects another.
    if (ctx.inFlight === undefined || ctx.inFlight.acked) opts.connector.forget(opts.lockId);
    let conn: LockConnection | undefined;
    try {
      const connectOpts: ConnectOptions = {
        onProgress: (acked, total) => opts.onEvent?.({ phase: 'transfer', acked, total }),
        onAdvert: (advertised) => prefetchOnAdvert(ctx, advertised),
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
      : { opts: ctxOrOpts, timeout: ctxOrOpts.messageTimeoutMs ?? 20_000, versionBefore: hello.version, inFlight: undefined, prefetches: [] };
  try {
    return await syncSteps(conn, hello, ctx);
  } catch (e) {
    // A sync that fails after fetching still leaves the chain in the cache, for an offline
    // retry; the sync's own failure is the one reported.
    try {
      persistFetched(ctx);
    } catch {
      // (a cache that cannot be written: the failure above stands)
    }
    throw e;
  }
}

async function syncSteps(conn: LockConnection, hello: Extract<Message, { type: 'hello' }>, ctx: SyncContext): Promise<Omit<SyncResult, 'attempts'>> {
  const { opts } = ctx;
  const lockId = opts.lockId;
  let receipt: Extract<Message, { type: 'receipt' }> | undefined;
  let updateBytes = 0;

  // 1. A transfer cut by the previous link goes first — it is already queued in the channel
  //    ahead of anything sent now: let it finish (resume) or ask for the lost receipt.
  let resuming = ctx.inFlight !== undefined;
  // A batch cut by the last link is never resumed (its signed time was bound to the dead
  // session): if the lock committed its update anyway, ask for the receipt it signed.
  if (ctx.batchTarget !== undefined) {
    if (hello.version >= ctx.batchTarget) receipt = await requestReceipt(conn, ctx);
    ctx.batchTarget = undefined;
  }
  // The update stays in flight until its receipt is read: a link lost before that asks for
  // the receipt on the next connection instead of forgetting it.
  const inFlight = ctx.inFlight;
  if (inFlight) {
    if (hello.version >= inFlight.target) {
      receipt = await requestReceipt(conn, ctx);
      ctx.inFlight = undefined;
    } else if (!inFlight.acked) {
      await conn.drained(); // the framing resumes it from the bytes the lock holds
      inFlight.acked = true;
      receipt = await expectReceipt(conn, ctx);
      ctx.inFlight = undefined;
    } else {
      // The lock had every byte but did not commit it (its answer went with the link):
      // nothing is queued to resume, so the update is fetched and sent again below.
      ctx.inFlight = undefined;
      resuming = false;
    }
  }

  // 2. Signed time (bound to this session's nonce) and the updates come from the authority
  //    in parallel. The time goes to the lock first when the lock can verify it now, and
  //    without waiting for its answer: the update follows right behind it on the link and
  //    the lock answers both in order — one round trip less for a small sync.
  const timeFirst = hello.certSerial !== undefined;
  /** This phone pipelines and the lock takes batches (SPEC §6.5). */
  const batches = opts.pipeline !== false && (hello.capabilities & CAPABILITIES.batch) !== 0;
  const timeFetch = fetchSignedTime(hello, ctx);
  timeFetch.catch(() => undefined); // awaited below; a failure must not surface unhandled first

  // The lock judges each update on its own: a refused one does not stop the rest, and a
  // receipt already signed for a committed update is relayed even when a later one is
  // refused (otherwise the authority would not learn that version is in force).
  let refusal: AgentError | undefined;
  let timeAckDue = false;
  /** The batch carried the signed time and the lock answered it (accepted or refused). */
  let timeSentInBatch = false;
  let timeSentSequentially = false;
  let batchAudit: Extract<Message, { type: 'auditExport' }> | undefined;
  if (!resuming) {
    // 3. Updates from the lock's version.
    const pending = await fetchUpdates(lockId, hello.version, hello.certSerial, ctx);
    // Waited for only when it goes first: otherwise it follows the updates, and its fetch
    // overlaps their transfer instead of holding the first frame back.
    const signedTime = timeFirst ? await timeFetch : undefined;
    const newer = pending !== undefined && pending.to > hello.version ? pending.messages : [];
    // The courier hook sees the chain even when nothing is newer (a replaying courier).
    let messages = opts.courierFilter ? opts.courierFilter(newer) : newer;
    ctx.carried = messages;
    const wantAudit = (hello.capabilities & CAPABILITIES.auditExport) !== 0 && !(ctx.fetched?.source === 'cache' && messages.length === 0);
    const timeInBatch = timeFirst && signedTime !== undefined;
    const batchable =
      batches &&
      messages.length > 0 &&
      (timeInBatch ? 1 : 0) + messages.length + (wantAudit ? 1 : 0) <= MAX_BATCH_ITEMS &&
      messages.reduce((n, m) => n + m.length, 0) <= BATCH_UPDATE_MAX_BYTES;
    if (batchable) {
      persistFetched(ctx);
      const b = await syncByBatch(conn, ctx, timeInBatch ? signedTime : undefined, messages, wantAudit);
      updateBytes += b.updateBytes;
      if (b.receipt) receipt = b.receipt;
      if (b.refusal) refusal ??= b.refusal;
      if (b.auditExport) batchAudit = b.auditExport;
      timeSentInBatch = timeInBatch && !b.timeLeft;
      messages = b.updatesLeft;
    } else if (timeFirst && signedTime) {
      await conn.sendRaw(signedTime);
      timeAckDue = true;
      timeSentSequentially = true;
    }
    // The signed time cannot go first (the lock holds no certificate for the online key
    // yet, as at a first contact): it follows the last update in one batch with the audit
    // request, sent as soon as the update is acknowledged rather than after its receipt.
    // The lock answers in order — the receipt once the update is committed, then the batch,
    // the time verified with the certificate the update brought — one round trip less.
    const trailing =
      !timeFirst &&
      messages.length > 0 &&
      wantAudit &&
      ctx.fetched?.source === 'authority' &&
      batches;
    for (const [i, bytes] of messages.entries()) {
      updateBytes += bytes.length;
      const sending = inFlightUpdate(bytes, pending?.to ?? hello.version);
      ctx.inFlight = sending;
      const sent = conn.sendRaw(bytes); // LINK_LOST leaves it queued: the retry resumes it
      sent.catch(() => undefined); // awaited below, after the cache write
      // The host stack hands the first frames to the controller a few microtasks from now:
      // write the fetched chain to the cache (440 kB for a 10,000-credential snapshot) only after that.
      if (ctx.storeFetched) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        persistFetched(ctx);
      }
      await sent;
      sending.acked = true;
      if (timeAckDue) {
        await readTimeAck(conn, ctx);
        timeAckDue = false;
      }
      let behind: BatchItem[] | undefined;
      if (trailing && i === messages.length - 1) {
        // A failed time fetch is left to the step after the updates, which reports it as before.
        const time = await timeFetch.catch(() => undefined);
        if (time) {
          behind = [
            { kind: 'time', bytes: time },
            auditRequestItem(),
          ];
          await conn.send({ type: 'batch', messages: behind.map((x) => x.bytes) });
        }
      }
      try {
        receipt = await expectReceipt(conn, ctx);
      } catch (e) {
        if (!(e instanceof AgentError && e.reason === 'REFUSED_BY_LOCK')) throw e;
        refusal ??= e;
      }
      ctx.inFlight = undefined;
      if (behind) {
        // Read as the batch after the updates below would be: a refused time leaves the
        // audit request NOT_ATTEMPTED, and it then goes alone.
        const b = await readBatchReply(conn, ctx, behind);
        if (b.auditExport) batchAudit = b.auditExport;
        timeSentInBatch = !b.timeLeft;
      }
    }
  }

  persistFetched(ctx);

  // Kept across connections: the steps below may lose the link, and the retry relays it.
  receipt ??= ctx.receipt;
  ctx.receipt = receipt;

  if (timeAckDue) await readTimeAck(conn, ctx); // time sent, but no update followed it
  const timeAckSeen = timeSentSequentially;
  const signedTime = await timeFetch;
  // After the updates: a lock without the key certificate can verify it only now; and a
  // resumed sync sends its time here, behind the transfer it had to finish first.
  if (signedTime && !timeSentInBatch && (!timeFirst || resuming || !timeAckSeen)) {
    const auditDue = !batchAudit && (hello.capabilities & CAPABILITIES.auditExport) !== 0 && !(ctx.fetched?.source === 'cache' && receipt === undefined);
    if (auditDue && batches) {
      // The time and the audit request in one batch (SPEC §6.5): one round trip instead of
      // two. A refused time leaves the audit request NOT_ATTEMPTED; it then goes alone below.
      const b = await syncByBatch(conn, ctx, signedTime, [], true);
      if (b.auditExport) batchAudit = b.auditExport;
    } else {
      await conn.sendRaw(signedTime);
      await readTimeAck(conn, ctx);
    }
  }

  // 4. Audit log export. Not when the cache stood in for the authority and carried nothing:
  //    that sync failed (nothing-cached), and a failed sync leaves the cache as it was.
  let auditRecords = 0;
  let auditExport: Uint8Array | undefined;
  const failedFromCache = ctx.fetched?.source === 'cache' && receipt === undefined;
  if (batchAudit) {
    auditRecords = batchAudit.records.length;
    auditExport = encodeMessage(batchAudit);
    opts.onEvent?.({ phase: 'audit', records: auditRecords });
  } else if (hello.capabilities & CAPABILITIES.auditExport && !failedFromCache) {
    await conn.send({ type: 'auditRequest', fromSeq: 0 });
    const m = await conn.next(ctx.timeout);
    if (m.type === 'auditExport') {
      auditRecords = m.records.length;
      auditExport = encodeMessage(m);
      opts.onEvent?.({ phase: 'audit', records: auditRecords });
    }
  }

  // 5. Relay receipt and audit: in one call where the authority client can (each still judged on its own).
  const receiptBytes = receipt ? encodeMessage(receipt) : undefined;
  const relayed = await relay(lockId, receiptBytes, auditExport, opts);
  // The authority's "audit anchored through N" back to the lock while the link is up, so its
  // ring may recycle what the authority holds. Lost with the link: the next sync's export
  // brings a new one. A refusal changes nothing at the lock and does not fail the sync.
  if (relayed.anchor && conn.isOpen) {
    try {
      await conn.sendRaw(relayed.anchor);
      const ack = await conn.next(ctx.timeout);
      if (ack.type !== 'auditAnchored' && ack.type !== 'error') throw new AgentError('PROTOCOL_VIOLATION', `expected auditAnchored, got ${ack.type}`);
    } catch (e) {
      if (!(e instanceof AgentError && (e.reason === 'LINK_LOST' || e.reason === 'TIMEOUT'))) throw e;
    }
  }
  if (refusal) throw refusal;
  const versionBefore = ctx.versionBefore ?? hello.version;
  const versionAfter = receipt?.body.version ?? hello.version;
  opts.onEvent?.({ phase: 'done', version: versionAfter });
  rememberHello(opts, versionAfter, receipt ? certSerialAfter(hello.certSerial, ctx.carried ?? []) : hello.certSerial, ctx.fetched?.source === 'authority');
  // A resumed sync may have learnt nothing from the authority in this connection (the
  // update was fetched on an earlier one): the fetch of the first connection stands.
  const fetched = ctx.fetched ?? { source: opts.authority ? ('authority' as const) : ('cache' as const) };
  const committed = versionAfter > versionBefore;
  let outcome: SyncOutcome;
  if (fetched.source === 'cache') outcome = committed ? 'from-cache' : 'nothing-cached';
  else if (committed && relayed.receipt === 'dead-lettered') outcome = 'receipt-refused';
  else if (committed && relayed.receipt !== 'delivered') outcome = 'receipt-queued';
  else if (fetched.to !== undefined && versionAfter < fetched.to) outcome = 'behind';
  else outcome = committed ? 'updated' : 'up-to-date';
  const result: Omit<SyncResult, 'attempts'> = {
    lockId,
    outcome,
    versionBefore,
    versionAfter,
    source: fetched.source,
    receiptDelivered: relayed.receipt === 'delivered',
    receiptFate: relayed.receipt,
    auditFate: relayed.audit,
    deadLettered: relayed.deadLettered,
    auditRecords,
    updateBytes,
  };
  if (fetched.source === 'authority' && fetched.to !== undefined) result.authorityVersion = fetched.to;
  if (fetched.fetchedAt !== undefined) result.cacheFetchedAt = fetched.fetchedAt;
  if (fetched.authorityError !== undefined) result.authorityError = fetched.authorityError;
  if (relayed.queuedBecause !== undefined) result.queuedBecause = relayed.queuedBecause;
  if (relayed.receiptRefusal !== undefined) result.receiptRefusal = relayed.receiptRefusal;
  if (receiptBytes) result.receipt = receiptBytes;
  return result;
}

interface BatchOutcome {
  receipt?: Extract<Message, { type: 'receipt' }>;
  refusal?: AgentError;
  auditExport?: Extract<Message, { type: 'auditExport' }>;
  updateBytes: number;
  /** Updates the lock did not attempt (an earlier item was refused): sent alone next. */
  updatesLeft: Uint8Array[];
  /** The signed time was not attempted: it goes alone after the updates. */
  timeLeft: boolean;
}

/**
 * Signed time, update(s) and audit request in one `batch` (SPEC §6.5), answered by one
 * `batchReply` whose items are read exactly as the lone answers would be. Items the lock
 * did not attempt (NOT_ATTEMPTED, after a refusal) are handed back to go alone.
 */
async function syncByBatch(
  conn: LockConnection,
  ctx: SyncContext,
  signedTime: Uint8Array | undefined,
  updates: Uint8Array[],
  wantAudit: boolean,
): Promise<BatchOutcome> {
  const items: BatchItem[] = [];
  if (signedTime) items.push({ kind: 'time', bytes: signedTime });
  for (const u of updates) items.push({ kind: 'update', bytes: u });
  if (wantAudit) items.push(auditRequestItem());
  const target = updates.map(targetOf).reduce<number | undefined>((a, v) => (v === undefined ? a : Math.max(a ?? 0, v)), undefined);
  if (target !== undefined) ctx.batchTarget = target;
  await conn.send({ type: 'batch', messages: items.map((i) => i.bytes) });
  return readBatchReply(conn, ctx, items);
}

type BatchItem = { kind: 'time'; bytes: Uint8Array } | { kind: 'update'; bytes: Uint8Array } | { kind: 'audit'; bytes: Uint8Array };

/** The audit request of a batch: the whole export, from seq 0. */
function auditRequestItem(): BatchItem {
  return { kind: 'audit', bytes: encodeMessage({ type: 'auditRequest', fromSeq: 0 }) };
}

/** The batchReply to a batch of `items` (the next message from the lock), read item by item. */
async function readBatchReply(conn: LockConnection, ctx: SyncContext, items: BatchItem[]): Promise<BatchOutcome> {
  const out: BatchOutcome = { updateBytes: 0, updatesLeft: [], timeLeft: false };
  const reply = await conn.next(ctx.timeout);
  ctx.batchTarget = undefined;
  if (reply.type === 'error') throw new AgentError('REFUSED_BY_LOCK', `lock refused the batch: ${reply.reason} ${reply.detail}`.trim(), reply.reason);
  if (reply.type !== 'batchReply') throw new AgentError('PROTOCOL_VIOLATION', `expected batchReply, got ${reply.type}`);
  if (reply.replies.length !== items.length) throw new AgentError('PROTOCOL_VIOLATION', `batchReply has ${reply.replies.length} answers for ${items.length} items`);
  for (const [i, item] of items.entries()) {
    let m: Message;
    try {
      m = decodeMessage(reply.replies[i] as Uint8Array);
    } catch (e) {
      throw new AgentError('PROTOCOL_VIOLATION', `batchReply item ${i}: ${e instanceof ProtocolError ? e.message : String(e)}`);
    }
    if (m.type === 'error' && m.reason === 'NOT_ATTEMPTED') {
      if (item.kind === 'time') out.timeLeft = true;
      else if (item.kind === 'update') out.updatesLeft.push(item.bytes);
      continue; // a lone audit request follows anyway when no export came back
    }
    if (item.kind === 'time') {
      if (m.type === 'timeAck') ctx.opts.onEvent?.({ phase: 'time', lockTime: m.lockTime });
      else if (m.type !== 'error') throw new AgentError('PROTOCOL_VIOLATION', `batch: expected timeAck, got ${m.type}`);
    } else if (item.kind === 'update') {
      out.updateBytes += item.bytes.length;
      if (m.type === 'receipt') {
        out.receipt = m;
        ctx.opts.onEvent?.({ phase: 'receipt', version: m.body.version });
      } else if (m.type === 'error') {
        ctx.opts.onEvent?.({ phase: 'refused', code: m.reason, detail: m.detail });
        out.refusal ??= new AgentError('REFUSED_BY_LOCK', `lock refused the update: ${m.reason} ${m.detail}`.trim(), m.reason);
      } else throw new AgentError('PROTOCOL_VIOLATION', `batch: expected receipt, got ${m.type}`);
    } else if (m.type === 'auditExport') out.auditExport = m;
    else if (m.type !== 'error') throw new AgentError('PROTOCOL_VIOLATION', `batch: expected auditExport, got ${m.type}`);
  }
  return out;
}

async function fetchUpdates(lockId: string, version: number, certSerial: number | undefined, ctx: SyncContext): Promise<PendingUpdates | undefined> {
  const { opts } = ctx;
  let authorityError: string | undefined;
  const prefetch = ctx.prefetches.find((p) => p.expected.version === version && p.expected.certSerial === certSerial);
  ctx.prefetches = [];
  if (opts.authority) {
    try {
      const early = prefetch ? await prefetch.updates : undefined;
      const u = early ?? (await opts.authority.updates(lockId, version, certSerial));
      const cache = opts.cache;
      if (cache) ctx.storeFetched = () => cache.storeUpdates(u);
      ctx.fetched = { source: 'authority', to: u.to };
      opts.onEvent?.({ phase: 'fetched', from: u.from, to: u.to, bytes: u.messages.reduce((n, m) => n + m.length, 0), source: 'authority' });
      return u;
    } catch (e) {
      // Only an authority that could not be reached may be stood in for, and only when the
      // caller asked for it: a refusal (401/403/404/4xx) is an answer, and it stands.
      const unreachable = e instanceof AgentError && e.reason === 'AUTHORITY_UNREACHABLE';
      if (!unreachable || !opts.cacheFallback || !opts.cache) throw e;
      authorityError = e.detail;
    }
  }
  const cached = opts.cache?.updatesFor(lockId, version);
  ctx.fetched = { source: 'cache' };
  if (authorityError !== undefined) ctx.fetched.authorityError = authorityError;
  if (cached) {
    ctx.fetched.to = cached.to;
    ctx.fetched.fetchedAt = cached.fetchedAt;
    opts.onEvent?.({
      phase: 'fetched',
      from: cached.from,
      to: cached.to,
      bytes: cached.messages.reduce((n, m) => n + m.length, 0),
      source: 'cache',
      fetchedAt: cached.fetchedAt,
    });
  } else {
    const newest = opts.cache?.newestChain(lockId);
    if (newest) ctx.fetched.fetchedAt = newest.fetchedAt;
  }
  return cached;
}

/**
 * An update sent alone, until its receipt is read. Its target is read out of it (stepping
 * over a 10,000-entry table) only if a lost link asks, not while its first frames
 * wait to leave.
 */
function inFlightUpdate(bytes: Uint8Array, fallback: number): { readonly target: number; acked: boolean } {
  let target: number | undefined;
  return {
    get target(): number {
      return (target ??= targetOf(bytes) ?? fallback);
    },
    acked: false,
  };
}

/** The version an update message brings the lock to (its signed head), read without decoding its table. */
function targetOf(bytes: Uint8Array): number | undefined {
  const peeked = peekUpdateVersion(bytes);
  if (peeked !== undefined) return peeked;
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

interface Relayed {
  receipt: RelayFate;
  audit: RelayFate;
  deadLettered: DeadLetter[];
  queuedBecause?: string;
  receiptRefusal?: Refusal;
  /** The authority's signed audit anchor for this lock, to carry back to it. */
  anchor?: Uint8Array;
}

/**
 * Relay the new receipt and audit export, and anything this lock's outbox held from before.
 * With a cache, the lock's queue goes first, then this sync's items, both in one call when
 * the client offers it, each judged on its own (outbox.ts deliverWithFresh): a transient or token failure queues it, a permanent refusal
 * dead-letters it. Without a cache (library use) they are posted directly and a failure
 * propagates.
 */
async function relay(lockId: string, receipt: Uint8Array | undefined, audit: Uint8Array | undefined, opts: SyncOptions): Promise<Relayed> {
  const { cache, authority } = opts;
  const none: Relayed = { receipt: 'none', audit: 'none', deadLettered: [] };
  if (!cache) {
    if (!authority) return none;
    let anchor: Uint8Array | undefined;
    if (receipt && audit && authority.postRelay) {
      // Both in one round trip; each answered on its own, and here a refusal propagates.
      const r = await authority.postRelay(lockId, { receipt, audit });
      if (r.receipt && !r.receipt.ok) throw r.receipt.error;
      if (r.audit && !r.audit.ok) throw r.audit.error;
      if (r.audit?.ok) anchor = r.audit.anchor;
    } else {
      if (receipt) await authority.postReceipt(lockId, receipt);
      anchor = audit ? (await authority.postAudit(lockId, audit)).anchor : undefined;
    }
    if (receipt || audit) opts.onEvent?.({ phase: 'relayed', to: 'authority' });
    const direct: Relayed = { receipt: receipt ? 'delivered' : 'none', audit: audit ? 'delivered' : 'none', deadLettered: [] };
    if (anchor) direct.anchor = anchor;
    return direct;
  }
  const fresh: { kind: 'receipt' | 'audit'; message: Uint8Array }[] = [];
  if (receipt) fresh.push({ kind: 'receipt', message: receipt });
  if (audit) fresh.push({ kind: 'audit', message: audit });
  const out: Relayed = { receipt: receipt ? 'queued' : 'none', audit: audit ? 'queued' : 'none', deadLettered: [] };
  if (!authority) {
    for (const f of fresh) cache.queue(lockId, f.kind, f.message);
    if (fresh.length > 0) {
      out.queuedBecause = 'offline: no authority to deliver to';
      opts.onEvent?.({ phase: 'relayed', to: 'outbox' });
    }
    return out;
  }
  const report = await deliverWithFresh(cache, authority, lockId, fresh);
  let next = 0;
  const receiptId = receipt ? report.freshIds[next++] : undefined;
  const auditId = audit ? report.freshIds[next++] : undefined;
  const fate = (id: string | undefined): RelayFate => {
    if (id === undefined) return 'none';
    if (report.delivered.some((d) => d.id === id)) return 'delivered';
    if (report.deadLettered.some((d) => d.id === id)) return 'dead-lettered';
    return 'queued';
  };
  out.receipt = fate(receiptId);
  out.audit = fate(auditId);
  out.deadLettered = report.deadLettered;
  const anchor = report.anchors.get(lockId);
  if (anchor) out.anchor = anchor;
  for (const d of report.deadLettered) {
    const ev: SyncEvent = { phase: 'deadLettered', kind: d.kind, id: d.id, status: d.refusal.status, reason: d.refusal.reason };
    if (d.refusal.code !== undefined) ev.code = d.refusal.code;
    opts.onEvent?.(ev);
    if (d.id === receiptId) out.receiptRefusal = d.refusal;
  }
  if (report.stoppedBy) out.queuedBecause = report.stoppedBy.error.message;
  if (out.receipt === 'delivered' || out.audit === 'delivered') opts.onEvent?.({ phase: 'relayed', to: 'authority' });
  if (out.receipt === 'queued' || out.audit === 'queued') opts.onEvent?.({ phase: 'relayed', to: 'outbox' });
  return out;
}

/**
 * Deliver receipts and audit exports collected offline. Returns how many were delivered;
 * permanent refusals are dead-lettered, a transient or token failure is thrown (items kept).
 * The CLI uses deliverQueued (outbox.ts) for the full report.
 */
export async function deliverOutbox(cache: CourierCache, authority: AuthorityApi): Promise<number> {
  const report = await deliverQueued(cache, authority);
  if (report.stoppedBy) throw report.stoppedBy.error;
  return report.delivered.length;
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
