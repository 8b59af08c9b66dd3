// Delivering the outbox: each receipt and audit export goes to the authority on its own, so
// one refusal never holds back another. What a failed delivery means decides what happens
// to the item:
//
//   transient  no answer, 429 or 5xx        → stays queued, retried later; stop for now (the
//                                             authority is down, the rest would fail too)
//   caller     401/403, no such route,       → stays queued; stop: the token or the URL is
//              not an authority                wrong, not the item, and fixing them delivers it
//   item       any other 4xx (409 AUDIT_     → dead letter, with the refusal: it will never be
//              CHAIN_MISMATCH, 422, 404 lock)  accepted as it is, and must not block the rest

import type { AuthorityApi, RelayAnswer } from './authority-client';
import { toHex } from '../protocol/index';
import { type CourierCache, type DeadLetter, type OutboxItem, type OutboxKind, type Refusal, outboxItemId } from './courier';
import { AgentError } from './errors';

export type DeliveryFailureClass = 'transient' | 'caller' | 'item';

export function classifyDeliveryFailure(e: unknown): DeliveryFailureClass {
  if (!(e instanceof AgentError)) throw e;
  if (e.reason === 'AUTHORITY_UNREACHABLE') return 'transient';
  if (e.reason === 'AUTHORITY_AUTH_REFUSED') return 'caller';
  if (e.reason === 'AUTHORITY_REFUSED') {
    const a = e.authority;
    if (a === undefined || a.status < 400 || a.status === 405) return 'caller';
    if (a.status === 404 && (a.code === undefined || a.code === 'NOT_FOUND')) return 'caller';
    return 'item';
  }
  // Not an authority answer (a bug in a caller-supplied client): do not lose the item.
  return 'transient';
}

export function refusalFromError(e: AgentError): Refusal {
  const r: Refusal = { status: e.authority?.status ?? 0, reason: e.authority?.message ?? e.detail };
  if (e.authority?.code !== undefined) r.code = e.authority.code;
  return r;
}

export interface DeliveryReport {
  delivered: OutboxItem[];
  /** Still queued: failed transiently, or not tried after the delivery stopped. */
  kept: OutboxItem[];
  deadLettered: DeadLetter[];
  /** The authority's newest signed "audit anchored through N" per lock, from accepted audit exports. */
  anchors: Map<string, Uint8Array>;
  /** Why the delivery stopped early (transient or caller failure), if it did. */
  stoppedBy?: { class: 'transient' | 'caller'; error: AgentError };
}

async function post(authority: AuthorityApi, item: OutboxItem, report: DeliveryReport): Promise<void> {
  if (item.kind === 'receipt') {
    await authority.postReceipt(item.lockId, item.message);
    return;
  }
  const { anchor } = await authority.postAudit(item.lockId, item.message);
  if (anchor) report.anchors.set(item.lockId, anchor);
}

/** Deliver the queued items of one lock (or of every lock), oldest first, each on its own. */
export async function deliverQueued(cache: CourierCache, authority: AuthorityApi, lockId?: string): Promise<DeliveryReport> {
  const report: DeliveryReport = { delivered: [], kept: [], deadLettered: [], anchors: new Map() };
  const items = cache.queued(lockId);
  for (const item of items) {
    if (report.stoppedBy) {
      report.kept.push(item);
      continue;
    }
    try {
      await post(authority, item, report);
      cache.remove(item.lockId, item.id);
      report.delivered.push(item);
    } catch (e) {
      const cls = classifyDeliveryFailure(e);
      const err = e as AgentError;
      if (cls === 'item') {
        const dead = cache.deadLetter(item.lockId, item.id, refusalFromError(err));
        if (dead) report.deadLettered.push(dead);
      } else {
        cache.noteAttempt(item.lockId, item.id, err.message);
        report.kept.push({ ...item, attempts: item.attempts + 1, lastError: err.message });
        report.stoppedBy = { class: cls, error: err };
      }
    }
  }
  return report;
}

/**
 * A sync's relay: the lock's queue first (oldest first), then the items this sync collected.
 * A fresh item touches the cache only when it is not delivered (queued on a transient or
 * token failure, dead-lettered on a permanent refusal), so a good sync writes nothing.
 */
export async function deliverWithFresh(
  cache: CourierCache,
  authority: AuthorityApi,
  lockId: string,
  fresh: { kind: OutboxKind; message: Uint8Array }[],
): Promise<DeliveryReport & { freshIds: string[] }> {
  const report = await deliverQueued(cache, authority, lockId);
  const freshIds: string[] = [];
  const items = fresh.map((f) => {
    const id = outboxItemId(f.kind, toHex(f.message));
    freshIds.push(id);
    const collectedAt = new Date();
    return { item: { id, lockId, kind: f.kind, message: f.message, collectedAt: collectedAt.toISOString(), attempts: 0 } as OutboxItem, collectedAt };
  });
  /** A fresh item's fate: delivered, or queued (and dead-lettered or kept) with its failure. */
  const settle = ({ item, collectedAt }: (typeof items)[number], failure: unknown): void => {
    if (failure === undefined) {
      report.delivered.push(item);
      return;
    }
    const cls = classifyDeliveryFailure(failure);
    const err = failure as AgentError;
    cache.queue(lockId, item.kind, item.message, collectedAt);
    if (cls === 'item') {
      const dead = cache.deadLetter(lockId, item.id, refusalFromError(err));
      if (dead) report.deadLettered.push(dead);
    } else {
      cache.noteAttempt(lockId, item.id, err.message);
      report.kept.push({ ...item, attempts: 1, lastError: err.message });
      report.stoppedBy ??= { class: cls, error: err };
    }
  };
  const receipt = items.find((i) => i.item.kind === 'receipt');
  const audit = items.find((i) => i.item.kind === 'audit');
  const together = authority.postRelay !== undefined && !report.stoppedBy && items.length === 2 && receipt !== undefined && audit !== undefined;
  if (together && authority.postRelay) {
    // One round trip for both (POST /v1/locks/{id}/relay), each still judged on its own.
    let answer: RelayAnswer;
    try {
      answer = await authority.postRelay(lockId, { receipt: receipt.item.message, audit: audit.item.message });
    } catch (e) {
      settle(receipt, e);
      settle(audit, e);
      return { ...report, freshIds };
    }
    const r = answer.receipt;
    settle(receipt, r === undefined ? new AgentError('AUTHORITY_REFUSED', 'relay: no answer for the receipt') : r.ok ? undefined : r.error);
    const a = answer.audit;
    if (a?.ok && a.anchor) report.anchors.set(lockId, a.anchor);
    settle(audit, a === undefined ? new AgentError('AUTHORITY_REFUSED', 'relay: no answer for the audit export') : a.ok ? undefined : a.error);
    return { ...report, freshIds };
  }
  for (const f of items) {
    if (report.stoppedBy) {
      cache.queue(lockId, f.item.kind, f.item.message, f.collectedAt);
      report.kept.push(f.item);
      continue;
    }
    let failure: unknown;
    try {
      await post(authority, f.item, report);
    } catch (e) {
      failure = e;
    }
    settle(f, failure);
  }
  return { ...report, freshIds };
}
