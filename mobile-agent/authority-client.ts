// HTTP client for the authority's phone routes (authority/README.md). Binary protocol
// messages travel as their exact bytes — CBOR byte strings in the updates answer
// (application/cbor, asked for with Accept), lowercase hex in JSON bodies — and the phone
// never re-encodes them, so the signatures the lock checks are the authority's own.

import { UPDATES_CBOR_MEDIA_TYPE, UpdatesBodyError, decodeUpdatesBody, fromHex, toHex } from '../protocol/index';
import { AgentError, type AuthorityAnswer } from './errors';

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
  /**
   * A sync's receipt and audit export in one round trip (POST /v1/locks/{id}/relay), each
   * answered on its own as postReceipt / postAudit would have been. Optional: a client
   * without it has the two posted one after the other. Throws only when the call as a whole
   * got no answer for the items (unreachable, token refused, 5xx).
   */
  postRelay?(lockId: string, items: { receipt?: Uint8Array; audit?: Uint8Array }): Promise<RelayAnswer>;
}

/** Each relayed item's own answer: what its lone route would have returned or thrown. */
export interface RelayAnswer {
  receipt?: { ok: true; version: number } | { ok: false; error: AgentError };
  audit?: { ok: true; accepted: number; anchor?: Uint8Array } | { ok: false; error: AgentError };
}

export class HttpAuthorityClient implements AuthorityApi {
  constructor(
    readonly baseUrl: string,
    private readonly token: string,
    private readonly timeoutMs = 10_000,
  ) {}

  /**
   * Asks for the CBOR answer (the messages as bytes: half the bytes of hex, and no hex to
   * decode on the phone); an authority that predates it answers JSON, which is read as
   * before. A body that is neither a CBOR nor a JSON updates answer is AUTHORITY_REFUSED.
   */
  async updates(lockId: string, fromVersion: number, certSerial?: number): Promise<PendingUpdates> {
    const cert = certSerial === undefined ? '' : `&certSerial=${certSerial}`;
    const path = `/v1/locks/${encodeURIComponent(lockId)}/updates?from=${fromVersion}${cert}`;
    const what = `GET ${path.split('?')[0]}`;
    const res = await this.send('GET', path, undefined, UPDATES_ACCEPT);
    if (res.ok && isCbor(res.headers.get('content-type'))) {
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(await res.arrayBuffer());
      } catch (e) {
        throw new AgentError('AUTHORITY_UNREACHABLE', `${what} at ${this.baseUrl}: the answer broke off (${networkCause(e, this.timeoutMs)})`);
      }
      try {
        return decodeUpdatesBody(bytes);
      } catch (e) {
        if (!(e instanceof UpdatesBodyError)) throw e;
        throw unexpectedSuccessBody(what, this.baseUrl, res.status, `an application/cbor body that is not an updates answer (${e.message})`);
      }
    }
    const body = (await this.readJson(res, what)) as { lockId?: unknown; from?: unknown; to?: unknown; messages?: unknown };
    const { lockId: id, from, to, messages } = body;
    const notAnswer = (): AgentError => unexpectedSuccessBody(what, this.baseUrl, res.status, 'a JSON body that is not an updates answer ({lockId, from, to, messages: [hex]})');
    if (typeof id !== 'string' || typeof from !== 'number' || typeof to !== 'number' || !Array.isArray(messages) || !messages.every((m) => typeof m === 'string')) throw notAnswer();
    try {
      return { lockId: id, from, to, messages: messages.map((m: string) => fromHex(m)) };
    } catch (e) {
      if (e instanceof RangeError) throw notAnswer(); // fromHex: not hex
      throw e;
    }
  }

  /** GET /v1/health: resolves once the authority and its storage answer; else the AgentError of the failure. */
  async health(): Promise<void> {
    const body = (await this.request('GET', '/v1/health')) as { status?: unknown };
    if (body.status !== 'ok') throw unexpectedSuccessBody('GET /v1/health', this.baseUrl, 200, `a body that is not a health answer ({status: "ok"})`);
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

  /** Cleared when the authority has no relay route (an older one): then the two lone routes. */
  private relayRoute = true;

  async postRelay(lockId: string, items: { receipt?: Uint8Array; audit?: Uint8Array }): Promise<RelayAnswer> {
    if (this.relayRoute) {
      const path = `/v1/locks/${encodeURIComponent(lockId)}/relay`;
      const json: { receipt?: string; export?: string } = {};
      if (items.receipt) json.receipt = toHex(items.receipt);
      if (items.audit) json.export = toHex(items.audit);
      try {
        type Item = { status: number; result?: Record<string, unknown>; error?: unknown };
        const r = (await this.request('POST', path, json)) as { receipt?: Item; audit?: Item };
        const out: RelayAnswer = {};
        const failed = (it: Item | undefined, what: string): AgentError | undefined => {
          if (it === undefined) return new AgentError('AUTHORITY_REFUSED', `POST ${path}: the answer has no ${what} item`);
          return it.status === 200 && it.result !== undefined ? undefined : refusalOf(it.status, { error: it.error }, `POST /v1/locks/${lockId}/${what === 'audit' ? 'audit' : 'receipts'}`, this.baseUrl);
        };
        if (items.receipt) {
          const e = failed(r.receipt, 'receipt');
          out.receipt = e ? { ok: false, error: e } : { ok: true, version: Number(r.receipt?.result?.version) };
        }
        if (items.audit) {
          const e = failed(r.audit, 'audit');
          const anchor = r.audit?.result?.anchor;
          out.audit = e ? { ok: false, error: e } : typeof anchor === 'string' ? { ok: true, accepted: Number(r.audit?.result?.accepted), anchor: fromHex(anchor) } : { ok: true, accepted: Number(r.audit?.result?.accepted) };
        }
        return out;
      } catch (e) {
        // An authority that predates the route: 404 with no such route (or 405). Use the lone ones from now on.
        const a = e instanceof AgentError ? e.authority : undefined;
        if (!(a && (a.status === 405 || (a.status === 404 && (a.code === undefined || a.code === 'NOT_FOUND'))))) throw e;
        this.relayRoute = false;
      }
    }
    const out: RelayAnswer = {};
    if (items.receipt) out.receipt = await this.postReceipt(lockId, items.receipt).then((r) => ({ ok: true as const, version: r.version }), (e: unknown) => ({ ok: false as const, error: asAgentError(e) }));
    if (items.audit) out.audit = await this.postAudit(lockId, items.audit).then((r) => ({ ok: true as const, ...r }), (e: unknown) => ({ ok: false as const, error: asAgentError(e) }));
    return out;
  }

  private async request(method: string, path: string, json?: unknown): Promise<unknown> {
    return this.readJson(await this.send(method, path, json), `${method} ${path.split('?')[0]}`);
  }

  /** The HTTP answer to a request, whatever its status; AUTHORITY_UNREACHABLE when there is none. */
  private async send(method: string, path: string, json?: unknown, accept?: string): Promise<Response> {
    let res: Response;
    const what = `${method} ${path.split('?')[0]}`;
    try {
      const headers: Record<string, string> = json !== undefined ? { 'content-type': 'application/json' } : {};
      if (accept !== undefined) headers.accept = accept;
      if (this.token !== '') headers.authorization = `Bearer ${this.token}`;
      const init: RequestInit = { method, headers, signal: AbortSignal.timeout(this.timeoutMs) };
      if (json !== undefined) init.body = JSON.stringify(json);
      try {
        res = await fetch(new URL(path, this.baseUrl), init);
      } catch (e) {
        // A kept-alive connection the server closed while idle fails the next request on it
        // with a reset before anything was sent or processed. A GET is safe to send again,
        // once, on a fresh connection; anything else (or a second failure) is reported.
        if (method !== 'GET' || !isStaleConnection(e)) throw e;
        res = await fetch(new URL(path, this.baseUrl), init);
      }
    } catch (e) {
      throw new AgentError('AUTHORITY_UNREACHABLE', `${what} at ${this.baseUrl}: ${networkCause(e, this.timeoutMs)}`);
    }
    return res;
  }

  /** A JSON success body, or the refusal the answer amounts to (refusalOf). */
  private async readJson(res: Response, what: string): Promise<unknown> {
    const text = await res.text().catch(() => '');
    let body: unknown;
    try {
      body = text === '' ? {} : JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (res.ok && body !== undefined) return body;
    throw refusalOf(res.status, body, what, this.baseUrl);
  }
}

/** CBOR first; JSON from an authority that predates it (and for every error body). */
const UPDATES_ACCEPT = `${UPDATES_CBOR_MEDIA_TYPE}, application/json;q=0.5`;

function isCbor(contentType: string | null): boolean {
  return contentType !== null && contentType.split(';')[0]?.trim().toLowerCase() === UPDATES_CBOR_MEDIA_TYPE;
}

/** A success whose body is not the answer the route gives: not a (compatible) locksync authority. */
function unexpectedSuccessBody(what: string, baseUrl: string, status: number, body: string): AgentError {
  return new AgentError('AUTHORITY_REFUSED', `${what} at ${baseUrl} answered HTTP ${status} with ${body}`, undefined, {
    authority: { status },
    advice: 'point --authority at the base URL of `locksync authority serve` (e.g. http://127.0.0.1:8080); if it is one, its version and this agent\'s disagree — report it',
  });
}

function asAgentError(e: unknown): AgentError {
  if (e instanceof AgentError) return e;
  throw e;
}

/** Which bearer tokens the phone routes take (authority/server.ts: the `courier` routes). */
export const PHONE_ROUTE_TOKENS = 'a device token (an enrolled phone\'s, from `authority device enrol`) or the manager token';

/** A reset or closed kept-alive socket (undici reports it as `fetch failed` with this cause). */
function isStaleConnection(e: unknown): boolean {
  const cause = (e as { cause?: { code?: string } })?.cause;
  return cause?.code === 'ECONNRESET' || cause?.code === 'UND_ERR_SOCKET' || cause?.code === 'EPIPE';
}

/** Why a request got no HTTP answer at all, in words. */
function networkCause(e: unknown, timeoutMs: number): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  if (err?.name === 'TimeoutError' || err?.name === 'AbortError') return `no answer within ${timeoutMs} ms`;
  const cause = err?.cause;
  if (cause?.code === 'ECONNREFUSED') return 'connection refused (nothing listens on that port)';
  if (cause?.code === 'ENOTFOUND' || cause?.code === 'EAI_AGAIN') return `host not found (${cause.code})`;
  return cause?.code ?? cause?.message ?? err?.message ?? String(e);
}

/**
 * An HTTP answer that is not a success, classified:
 *   401/403  → AUTHORITY_AUTH_REFUSED (the token), naming which token the route takes;
 *   429/5xx  → AUTHORITY_UNREACHABLE (transient: the authority is there but cannot serve now);
 *   404      → AUTHORITY_REFUSED naming what was not found;
 *   other    → AUTHORITY_REFUSED with the authority's code and reason (permanent).
 * A success whose body is not JSON is not a locksync authority: AUTHORITY_REFUSED.
 */
export function refusalOf(status: number, body: unknown, what: string, baseUrl: string): AgentError {
  const err = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const answer: AuthorityAnswer = { status };
  if (typeof err?.code === 'string') answer.code = err.code;
  if (typeof err?.message === 'string') answer.message = err.message;
  const said = [answer.code, answer.message].filter((x) => x !== undefined).join(': ');
  const statusText = `HTTP ${status}${said === '' ? '' : ` ${said}`}`;
  if (status >= 200 && status < 300)
    return new AgentError('AUTHORITY_REFUSED', `${what} at ${baseUrl} answered HTTP ${status} with a body that is not JSON`, undefined, {
      authority: answer,
      advice: 'point --authority at the base URL of `locksync authority serve` (e.g. http://127.0.0.1:8080)',
    });
  if (status === 401 || status === 403)
    return new AgentError(
      'AUTHORITY_AUTH_REFUSED',
      // The authority's own message names the tokens the route takes; an older one's may not.
      `the authority refused the token with ${statusText}${answer.message?.includes(' takes ') ? '' : `; ${what} takes ${PHONE_ROUTE_TOKENS}`}`,
      undefined,
      {
        authority: answer,
      },
    );
  if (status === 429 || status >= 500)
    return new AgentError('AUTHORITY_UNREACHABLE', `${what} at ${baseUrl}: the authority answered ${statusText} (temporary)`, undefined, {
      authority: answer,
      advice: 'the authority cannot serve right now: repeat later (receipts stay queued and are retried)',
    });
  if (status === 404) {
    const noRoute = answer.code === undefined || answer.code === 'NOT_FOUND';
    return new AgentError(
      'AUTHORITY_REFUSED',
      noRoute ? `${baseUrl} has no route ${what} (HTTP 404${said === '' ? '' : ` ${said}`})` : `not found at the authority: ${statusText} (${what})`,
      undefined,
      {
        authority: answer,
        advice: noRoute
          ? 'point --authority at the base URL of `locksync authority serve` (e.g. http://127.0.0.1:8080)'
          : 'check the id: the authority does not know it (`locksync authority locks` lists the registered locks)',
      },
    );
  }
  return new AgentError('AUTHORITY_REFUSED', `the authority refused ${what}: ${statusText}`, undefined, { authority: answer });
}
