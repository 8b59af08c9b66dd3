// HTTP client for the authority's phone routes (authority/README.md). Binary protocol
// messages travel as lowercase hex of their exact bytes; the phone never re-encodes them,
// so the signatures the lock checks are the authority's own.

import { fromHex, toHex } from '../protocol/index';
import { AgentError } from './errors';

export interface PendingUpdates {
  lockId: string;
  from: number;
  to: number;
  /** Encoded delta/snapshot messages, in order. */
  messages: Uint8Array[];
}

export interface AuthorityApi {
  /** `certSerial`: the signing-key certificate the lock holds (hello), so it is not resent. */
  updates(lockId: string, fromVersion: number, certSerial?: number): Promise<PendingUpdates>;
  signedTime(lockId: string, nonce: Uint8Array): Promise<Uint8Array>;
  postReceipt(lockId: string, receipt: Uint8Array): Promise<{ version: number }>;
  /** `anchor`: the authority's signed auditAnchor message for the lock (SPEC §10.2), to carry back. */
  postAudit(lockId: string, exportMessage: Uint8Array): Promise<{ accepted: number; anchor?: Uint8Array }>;
}

export class HttpAuthorityClient implements AuthorityApi {
  constructor(
    readonly baseUrl: string,
    private readonly token: string,
    private readonly timeoutMs = 10_000,
  ) {}

  async updates(lockId: string, fromVersion: number, certSerial?: number): Promise<PendingUpdates> {
    const cert = certSerial === undefined ? '' : `&certSerial=${certSerial}`;
    const body = (await this.request('GET', `/v1/locks/${encodeURIComponent(lockId)}/updates?from=${fromVersion}${cert}`)) as {
      lockId: string;
      from: number;
      to: number;
      messages: string[];
    };
    return { lockId: body.lockId, from: body.from, to: body.to, messages: body.messages.map(fromHex) };
  }

  async signedTime(lockId: string, nonce: Uint8Array): Promise<Uint8Array> {
    const body = (await this.request('GET', `/v1/locks/${encodeURIComponent(lockId)}/time?nonce=${toHex(nonce)}`)) as { signedTime: string };
    return fromHex(body.signedTime);
  }

  async postReceipt(lockId: string, receipt: Uint8Array): Promise<{ version: number }> {
    return (await this.request('POST', `/v1/locks/${encodeURIComponent(lockId)}/receipts`, { receipt: toHex(receipt) })) as { version: number };
  }

  async postAudit(lockId: string, exportMessage: Uint8Array): Promise<{ accepted: number; anchor?: Uint8Array }> {
    const r = (await this.request('POST', `/v1/locks/${encodeURIComponent(lockId)}/audit`, { export: toHex(exportMessage) })) as { accepted: number; anchor?: string };
    return typeof r.anchor === 'string' ? { accepted: r.accepted, anchor: fromHex(r.anchor) } : { accepted: r.accepted };
  }

  private async request(method: string, path: string, json?: unknown): Promise<unknown> {
    let res: Response;
    try {
      const init: RequestInit = {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(json !== undefined ? { 'content-type': 'application/json' } : {}) },
        signal: AbortSignal.timeout(this.timeoutMs),
      };
      if (json !== undefined) init.body = JSON.stringify(json);
      res = await fetch(new URL(path, this.baseUrl), init);
    } catch (e) {
      throw new AgentError('AUTHORITY_UNREACHABLE', `${method} ${path}: ${(e as Error).message}`);
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = text === '' ? {} : JSON.parse(text);
    } catch {
      throw new AgentError('AUTHORITY_UNREACHABLE', `${method} ${path}: HTTP ${res.status}, body is not JSON`);
    }
    if (!res.ok) {
      const err = (body as { error?: { code?: string; message?: string } }).error;
      throw new AgentError('AUTHORITY_UNREACHABLE', `${method} ${path}: HTTP ${res.status} ${err?.code ?? ''} ${err?.message ?? ''}`.trim());
    }
    return body;
  }
}
