// Uplink for internet-connected locks: long-poll the authority for updates and feed them
// through the same LockSession as BLE, then post receipts and the audit log back.
// HTTP contract: GET /v1/uplink/{lockId}?from=V&wait=S → { lockId, from, to, messages: [hex], signedTime? };
// POST /v1/locks/{lockId}/receipts { receipt }; POST /v1/locks/{lockId}/audit { export };
// GET /v1/locks/{lockId}/time?nonce=hex → { signedTime } (binds time to the session nonce).

import { decodeMessage, encodeMessage, fromHex, toHex } from '../protocol';
import type { Lock } from './lock';

export interface UplinkOptions {
  baseUrl: string;
  token: string;
  /** Pause between polls, ms (after a poll returns). */
  intervalMs?: number;
  /** Long-poll wait the server may hold the request, seconds. */
  waitSeconds?: number;
  fetch?: typeof fetch;
  log?: (event: string, fields: Record<string, unknown>) => void;
}

export interface PollResult {
  applied: number;
  refused: { reason: string; detail: string }[];
  timeSet: boolean;
  auditPosted: number;
}

export class UplinkError extends Error {
  override readonly name = 'UplinkError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(`${code} (HTTP ${status}): ${message}`);
  }
}

export class Uplink {
  private running = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Highest audit seq the authority accepted from us. */
  private auditPostedThrough = 0;
  private readonly f: typeof fetch;

  constructor(
    private readonly lock: Lock,
    private readonly opts: UplinkOptions,
  ) {
    this.f = opts.fetch ?? fetch;
  }

  private url(path: string): string {
    return `${this.opts.baseUrl.replace(/\/$/, '')}${path}`;
  }

  private async call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Record<string, unknown>> {
    const init: RequestInit = { method, headers: { authorization: `Bearer ${this.opts.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) } };
    if (body !== undefined) init.body = JSON.stringify(body);
    const res = await this.f(this.url(path), init);
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      json = text.length > 0 ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      throw new UplinkError(res.status, 'BAD_RESPONSE', `non-JSON body from ${path}`);
    }
    if (!res.ok) {
      const err = (json.error ?? {}) as { code?: string; message?: string };
      throw new UplinkError(res.status, err.code ?? 'HTTP_ERROR', err.message ?? text.slice(0, 200));
    }
    return json;
  }

  /** One round: time (nonce-bound), updates, receipts, audit. */
  async pollOnce(): Promise<PollResult> {
    const lockId = this.lock.lockId;
    const session = this.lock.openSession();
    const result: PollResult = { applied: 0, refused: [], timeSet: false, auditPosted: 0 };
    try {
      // Nonce-bound time first: only it may set (not just raise) the clock.
      try {
        const t = await this.call('GET', `/v1/locks/${encodeURIComponent(lockId)}/time?nonce=${toHex(session.nonce)}`);
        if (typeof t.signedTime === 'string') result.timeSet = this.feed(session.handle(fromHex(t.signedTime)), result);
      } catch (e) {
        this.opts.log?.('uplinkTimeFailed', { error: (e as Error).message });
      }
      const wait = this.opts.waitSeconds ?? 25;
      const body = await this.call('GET', `/v1/uplink/${encodeURIComponent(lockId)}?from=${this.lock.version}&wait=${wait}${this.certQuery()}`);
      if (typeof body.signedTime === 'string') this.feed(session.handle(fromHex(body.signedTime)), result);
      const messages = Array.isArray(body.messages) ? (body.messages as unknown[]) : [];
      for (const hex of messages) {
        if (typeof hex !== 'string') continue;
        for (const out of session.handle(fromHex(hex))) {
          const m = decodeMessage(out);
          if (m.type === 'receipt') {
            result.applied++;
            await this.call('POST', `/v1/locks/${encodeURIComponent(lockId)}/receipts`, { receipt: toHex(out) });
          } else if (m.type === 'error') {
            result.refused.push({ reason: m.reason, detail: m.detail });
            this.opts.log?.('uplinkUpdateRefused', { reason: m.reason, detail: m.detail });
          }
        }
      }
      // Audit records not yet accepted by the authority.
      const head = this.lock.storage.auditHead().seq;
      if (head > this.auditPostedThrough) {
        const [out] = session.handle(encodeAuditRequest(this.auditPostedThrough + 1));
        if (out !== undefined) {
          const m = decodeMessage(out);
          if (m.type === 'auditExport' && m.records.length > 0) {
            const r = await this.call('POST', `/v1/locks/${encodeURIComponent(lockId)}/audit`, { export: toHex(out) });
            result.auditPosted = typeof r.accepted === 'number' ? r.accepted : m.records.length;
            this.auditPostedThrough = head;
            // The authority's "anchored through N": the ring may now recycle those records.
            if (typeof r.anchor === 'string') session.handle(fromHex(r.anchor));
          }
        }
      }
    } finally {
      session.close();
    }
    this.opts.log?.('uplinkPoll', { ...result, version: this.lock.version });
    return result;
  }

  /** Tell the authority which signing-key certificate this lock already holds. */
  private certQuery(): string {
    const trust = this.lock.durable.tableState.trust;
    return trust.certs.length > 0 ? `&certSerial=${trust.certFloor}` : '';
  }

  private feed(outs: Uint8Array[], result: PollResult): boolean {
    let ok = false;
    for (const o of outs) {
      const m = decodeMessage(o);
      if (m.type === 'timeAck') ok = true;
      if (m.type === 'error') result.refused.push({ reason: m.reason, detail: m.detail });
    }
    return ok;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const loop = async (): Promise<void> => {
      if (!this.running) return;
      try {
        await this.pollOnce();
      } catch (e) {
        this.opts.log?.('uplinkError', { error: (e as Error).message });
      }
      if (this.running) this.timer = setTimeout(() => void loop(), this.opts.intervalMs ?? 5_000);
    };
    void loop();
  }

  stop(): void {
    this.running = false;
    if (this.timer !== undefined) clearTimeout(this.timer);
  }
}

function encodeAuditRequest(fromSeq: number): Uint8Array {
  return encodeMessage({ type: 'auditRequest', fromSeq });
}
