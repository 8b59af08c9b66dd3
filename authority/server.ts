// The authority's JSON HTTP API on node:http (no framework); GET /v1/locks/{id}/updates also
// answers application/cbor to a client whose Accept asks for it. Routes:
//   phones / locks   /v1/locks/{lockId}/updates|time|receipts|audit|relay, /v1/uplink/{lockId}
//   residents        /v1/me, /v1/me/credentials, /v1/me/guests
//   partners         /v1/partner/devices, /v1/partner/credentials
//   managers         /v1/manager/...  (every manager operation and the read views)
// GET /v1/health (no token) answers when the server and its storage do.
// Bearer tokens: the manager token (from init), device tokens (per enrolled phone or
// partner device), partner tokens (per authorized partner), lock tokens (per registered
// lock). Errors: { "error": { "code", "message", "details"? } } with a 4xx/5xx status.
// See authority/README.md.

import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Authority, type AuthorityOptions, type PartnerGrantInput, type Principal } from './authority';
import { auditReport, type AuditQuery } from './audit-query';
import { openApiDocument } from './openapi';
import { AuthorityError } from './errors';
import { invalid, requireId } from './validate';
import { UPDATES_CBOR_MEDIA_TYPE, encodeUpdatesBody } from '../protocol/updates-body';

export interface AuthorityServerOptions extends AuthorityOptions {
  port: number;
  host?: string;
  /** Serve an already-open Authority instead of opening dbPath. */
  authority?: Authority;
  /** Upper bound on the uplink long-poll wait, seconds (default 60). */
  maxWaitSeconds?: number;
  /** How often a waiting uplink re-reads the database for changes made by other processes (ms, default 500). */
  pollIntervalMs?: number;
  /** Request body limit, bytes (default 4 MiB). */
  maxBodyBytes?: number;
  /** Signed-time requests allowed per token and lock per window (default 30 per 60 s of the
   *  authority's clock); beyond it 429 RATE_LIMITED with Retry-After. */
  timeRateLimit?: { requests: number; windowSeconds: number };
}

export interface AuthorityServer {
  url: string;
  authority: Authority;
  /** Every route it answers: method and path template (`{}` where the path takes an id). */
  routes: { method: string; path: string }[];
  close(): Promise<void>;
}

type Json = Record<string, unknown>;
interface Ctx {
  params: string[];
  query: URLSearchParams;
  body: Json;
  principal: Principal | null;
  /** The request's Accept header. */
  accept: string | undefined;
}
type Auth = 'manager' | 'device' | 'partner' | 'courier' | 'lockOrManager' | 'none';
interface Route {
  method: string;
  pattern: RegExp;
  auth: Auth;
  handler: (c: Ctx) => unknown;
  /** Answers in more than one media type, by the request's Accept (sent with Vary: Accept). */
  negotiates?: boolean;
}

/** A success body that is not JSON: its media type and exact bytes. */
class BinaryBody {
  constructor(
    readonly contentType: string,
    readonly bytes: Uint8Array,
  ) {}
}

/**
 * Whether an Accept header asks for application/cbor over JSON: it lists application/cbor
 * with q > 0, at a q no lower than application/json's (or the wildcards' when JSON is not
 * named). No Accept, or one that does not name CBOR, gets JSON, as every client always has.
 */
export function acceptsCbor(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  const q = new Map<string, number>();
  for (const part of accept.split(',')) {
    const [type, ...params] = part.split(';').map((x) => x.trim().toLowerCase());
    if (type === undefined || type === '') continue;
    let weight = 1;
    for (const p of params) {
      const m = /^q=([0-9](?:\.[0-9]{0,3})?)$/.exec(p);
      if (m !== null) weight = Number(m[1]);
    }
    q.set(type, Math.max(q.get(type) ?? 0, weight));
  }
  const cbor = q.get(UPDATES_CBOR_MEDIA_TYPE) ?? 0;
  const json = q.get('application/json') ?? q.get('application/*') ?? q.get('*/*') ?? 0;
  return cbor > 0 && cbor >= json;
}

const ID = '([0-9]+)';
const LOCK = '([a-z0-9][a-z0-9-]{0,31})';

function num(v: unknown, what: string): number {
  return requireId(v, what);
}

function optInt(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  if (!/^[0-9]+$/.test(v)) throw invalid(`${name} must be a non-negative integer`);
  return Number(v);
}

/** One item of POST /v1/locks/{id}/relay: what its own route would have answered. */
function relayItem(accept: () => unknown): { status: number; result: unknown } | { status: number; error: unknown } {
  try {
    return { status: 200, result: accept() };
  } catch (e) {
    if (e instanceof AuthorityError) return { status: e.status, error: e.toJSON() };
    throw e;
  }
}

/** Which bearer tokens a route takes, in the words of its error bodies (401/403). */
const TOKENS_TAKEN: Record<Auth, string> = {
  manager: 'the manager token (from `authority init`)',
  device: 'a device token (an enrolled phone\'s, from `authority device enrol`)',
  partner: 'a partner token (from `authority partner authorize`)',
  courier: 'a device token (an enrolled phone\'s, from `authority device enrol`), the manager token, or this lock\'s own token',
  lockOrManager: 'this lock\'s own token (from `authority register-lock`) or the manager token',
  none: 'no token',
};

function principalCan(p: Principal | null, auth: Auth, lockId: string | undefined): boolean {
  if (auth === 'none') return true;
  if (p === null) return false;
  switch (auth) {
    case 'manager':
      return p.kind === 'manager';
    case 'device':
      return p.kind === 'device';
    case 'partner':
      return p.kind === 'partner';
    case 'courier': // phones, partner devices and the lock itself may carry updates/time/receipts/audit
      // (whether this device is entitled to this lock is checked against the model in handle())
      return p.kind === 'manager' || p.kind === 'device' || (p.kind === 'lock' && p.lockId === lockId);
    case 'lockOrManager':
      return p.kind === 'manager' || (p.kind === 'lock' && p.lockId === lockId);
  }
}

export async function startAuthorityServer(opts: AuthorityServerOptions): Promise<AuthorityServer> {
  const a = opts.authority ?? Authority.open(opts);
  const ownsAuthority = opts.authority === undefined;
  const maxWait = opts.maxWaitSeconds ?? 60;
  const pollMs = opts.pollIntervalMs ?? 500;
  const maxBody = opts.maxBodyBytes ?? 4 * 1024 * 1024;
  const waiting = new Set<() => void>();
  const timeLimit = opts.timeRateLimit ?? { requests: 30, windowSeconds: 60 };
  const timeWindows = new Map<string, { start: number; count: number }>();

  /** Fixed-window limit per (token, lock) on the authority's clock: signing is not free, and
   *  a stream of fresh signed times is what a freeze attack or a flash-wear attack relays. */
  function limitTime(token: string, lockId: string): void {
    const now = a.nowSeconds();
    if (timeWindows.size > 10_000) for (const [k, w] of timeWindows) if (now - w.start >= timeLimit.windowSeconds) timeWindows.delete(k);
    const key = `${lockId} ${token}`;
    let w = timeWindows.get(key);
    if (w === undefined || now - w.start >= timeLimit.windowSeconds || now < w.start) {
      w = { start: now, count: 0 };
      timeWindows.set(key, w);
    }
    if (w.count >= timeLimit.requests) {
      const retryAfterSeconds = Math.max(1, w.start + timeLimit.windowSeconds - now);
      throw new AuthorityError('RATE_LIMITED', `more than ${timeLimit.requests} signed-time requests for ${lockId} in ${timeLimit.windowSeconds} s with this token; retry after ${retryAfterSeconds} s`, {
        retryAfterSeconds,
      });
    }
    w.count++;
  }

  const routes: Route[] = [];
  const r = (method: string, path: string, auth: Auth, handler: (c: Ctx) => unknown, negotiates = false): void => {
    routes.push({ method, pattern: new RegExp(`^${path}$`), auth, handler, ...(negotiates ? { negotiates } : {}) });
  };
  const p0 = (c: Ctx): string => c.params[0] as string;
  const p1 = (c: Ctx): string => c.params[1] as string;

  // --- the API's own description (OpenAPI 3.0)
  const apiDocument = openApiDocument();
  r('GET', '/openapi.json', 'none', () => apiDocument);
  // Readiness: the server answers and its storage does (a PostgreSQL that is down makes this
  // 503 STORAGE_UNAVAILABLE). No token, nothing about the property.
  r('GET', '/v1/health', 'none', () => {
    a.db.prepare('SELECT 1 AS ok').get();
    return { status: 'ok' };
  });

  // --- phones and locks (the contract in common.md)
  // JSON (messages as hex) by default; CBOR (messages as byte strings) when Accept asks.
  r(
    'GET',
    `/v1/locks/${LOCK}/updates`,
    'courier',
    (c) => {
      const from = optInt(c.query, 'from') ?? 0;
      const certSerial = optInt(c.query, 'certSerial');
      if (acceptsCbor(c.accept)) return new BinaryBody(UPDATES_CBOR_MEDIA_TYPE, encodeUpdatesBody(a.updateMessagesFor(p0(c), from, certSerial)));
      return a.updatesFor(p0(c), from, certSerial);
    },
    true,
  );
  r('GET', `/v1/locks/${LOCK}/time`, 'courier', (c) => ({ signedTime: a.signedTime(p0(c), c.query.get('nonce') ?? undefined) }));
  r('POST', `/v1/locks/${LOCK}/receipts`, 'courier', (c) => a.acceptReceipt(p0(c), c.body.receipt as string));
  r('POST', `/v1/locks/${LOCK}/audit`, 'courier', (c) => a.acceptAudit(p0(c), c.body.export as string));
  // A Door Sync's receipt and audit export in one round trip. Each is judged exactly as on
  // its own route, the receipt first, and answered on its own ({status, result} or {status,
  // error}): one refused never holds back the other (mobile-agent/outbox.ts).
  r('POST', `/v1/locks/${LOCK}/relay`, 'courier', (c) => {
    const { receipt, export: exported } = c.body;
    if (receipt === undefined && exported === undefined) throw invalid('relay takes a receipt, an export, or both');
    const out: Json = {};
    if (receipt !== undefined) out.receipt = relayItem(() => a.acceptReceipt(p0(c), receipt as string));
    if (exported !== undefined) out.audit = relayItem(() => a.acceptAudit(p0(c), exported as string));
    return out;
  });

  // --- residents' and guests' phones
  r('GET', '/v1/me', 'device', (c) => {
    const p = c.principal as Extract<Principal, { kind: 'device' }>;
    return { deviceId: p.deviceId, user: p.userId !== null ? a.user(p.userId) : null, partnerId: p.partnerId };
  });
  r('POST', '/v1/me/token', 'device', (c) => a.rotateDeviceToken((c.principal as Extract<Principal, { kind: 'device' }>).deviceId));
  r('GET', '/v1/me/credentials', 'device', (c) => ({ credentials: a.credentialsForDevice((c.principal as Extract<Principal, { kind: 'device' }>).deviceId) }));
  r('POST', '/v1/me/guests', 'device', (c) => {
    const p = c.principal as Extract<Principal, { kind: 'device' }>;
    if (p.userId === null) throw new AuthorityError('FORBIDDEN', 'only residents invite guests');
    return a.inviteGuest(p.userId, c.body as { name: string; doorIds: number[] });
  });
  r('DELETE', `/v1/me/guests/${ID}`, 'device', (c) => {
    const p = c.principal as Extract<Principal, { kind: 'device' }>;
    const g = a.user(num(p0(c), 'guestId'));
    if (p.userId === null || g.invitedBy !== p.userId) throw new AuthorityError('FORBIDDEN', 'not your guest');
    a.revokeGuest(g.id);
    return { revoked: g.id };
  });

  // --- partners
  r('GET', '/v1/partner', 'partner', (c) => a.partner((c.principal as Extract<Principal, { kind: 'partner' }>).partnerId));
  r('POST', '/v1/partner/devices', 'partner', (c) => a.enrolPartnerDevice((c.principal as Extract<Principal, { kind: 'partner' }>).partnerId, c.body.publicKey as string));
  r('POST', '/v1/partner/token', 'partner', (c) => a.rotatePartnerToken((c.principal as Extract<Principal, { kind: 'partner' }>).partnerId));
  r('GET', '/v1/partner/credentials', 'partner', (c) => {
    const info = a.partner((c.principal as Extract<Principal, { kind: 'partner' }>).partnerId);
    return { credentials: info.devices.flatMap((d) => a.credentialsForDevice(d)) };
  });
  // Partner-issued access: the partner's own users, within its keys and doors; its own grants only.
  const partnerOf = (c: Ctx): number => (c.principal as Extract<Principal, { kind: 'partner' }>).partnerId;
  r('GET', '/v1/partner/grants', 'partner', (c) => ({ grants: a.partnerGrants(partnerOf(c)) }));
  r('POST', '/v1/partner/grants', 'partner', (c) => a.grantPartnerAccess(partnerOf(c), c.body as unknown as PartnerGrantInput));
  r('GET', `/v1/partner/grants/${ID}`, 'partner', (c) => a.partnerGrant(partnerOf(c), num(p0(c), 'grantId')));
  r('DELETE', `/v1/partner/grants/${ID}`, 'partner', (c) => {
    const id = num(p0(c), 'grantId');
    a.revokePartnerGrant(partnerOf(c), id);
    return { revoked: id };
  });

  // --- internet-connected locks: long-poll uplink
  r('GET', `/v1/uplink/${LOCK}`, 'lockOrManager', () => undefined); // handled specially below

  // --- managers
  const M = '/v1/manager';
  r('GET', `${M}/property`, 'manager', () => a.property());
  r('PATCH', `${M}/property`, 'manager', (c) => a.setProperty(c.body as never));
  r('GET', `${M}/doors`, 'manager', () => ({ doors: a.listDoors() }));
  r('POST', `${M}/doors`, 'manager', (c) => a.addDoor(c.body as never));
  r('GET', `${M}/doors/${ID}`, 'manager', (c) => a.door(num(p0(c), 'doorId')));
  r('PATCH', `${M}/doors/${ID}`, 'manager', (c) => a.updateDoor(num(p0(c), 'doorId'), c.body as never));
  r('DELETE', `${M}/doors/${ID}`, 'manager', (c) => (a.removeDoor(num(p0(c), 'doorId')), { deleted: true }));
  r('POST', `${M}/doors/${ID}/daily-codes`, 'manager', (c) => a.issueDailyCode(num(p0(c), 'doorId'), c.body as never));
  r('PUT', `${M}/doors/${ID}/partners/${ID}`, 'manager', (c) => a.assignPartnerToDoor(num(p1(c), 'partnerId'), num(p0(c), 'doorId')));
  r('DELETE', `${M}/doors/${ID}/partners/${ID}`, 'manager', (c) => a.unassignPartnerFromDoor(num(p1(c), 'partnerId'), num(p0(c), 'doorId')));
  r('GET', `${M}/keys`, 'manager', () => ({ keys: a.listKeys() }));
  r('POST', `${M}/keys`, 'manager', (c) => a.createKey(c.body as never));
  r('GET', `${M}/keys/${ID}`, 'manager', (c) => a.key(num(p0(c), 'keyId')));
  r('PATCH', `${M}/keys/${ID}`, 'manager', (c) => a.updateKey(num(p0(c), 'keyId'), c.body as never));
  r('DELETE', `${M}/keys/${ID}`, 'manager', (c) => (a.deleteKey(num(p0(c), 'keyId')), { deleted: true }));
  r('PUT', `${M}/keys/${ID}/doors/${ID}`, 'manager', (c) => a.setKeyDoor(num(p0(c), 'keyId'), { ...(c.body as object), doorId: num(p1(c), 'doorId') }));
  r('DELETE', `${M}/keys/${ID}/doors/${ID}`, 'manager', (c) => a.removeKeyDoor(num(p0(c), 'keyId'), num(p1(c), 'doorId')));
  r('GET', `${M}/users`, 'manager', () => ({ users: a.listUsers() }));
  r('POST', `${M}/users`, 'manager', (c) => a.addUser(c.body as never));
  r('GET', `${M}/users/${ID}`, 'manager', (c) => a.user(num(p0(c), 'userId')));
  r('DELETE', `${M}/users/${ID}`, 'manager', (c) => (a.removeUser(num(p0(c), 'userId')), { deleted: true }));
  r('POST', `${M}/users/${ID}/keys`, 'manager', (c) => a.assignKey(num(p0(c), 'userId'), num(c.body.keyId, 'keyId'), c.body as never));
  r('PATCH', `${M}/users/${ID}/keys/${ID}`, 'manager', (c) => a.setMayShare(num(p0(c), 'userId'), num(p1(c), 'keyId'), c.body.mayShare as boolean));
  r('DELETE', `${M}/users/${ID}/keys/${ID}`, 'manager', (c) => (a.unassignKey(num(p0(c), 'userId'), num(p1(c), 'keyId')), { deleted: true }));
  r('POST', `${M}/users/${ID}/guests`, 'manager', (c) => a.inviteGuest(num(p0(c), 'userId'), c.body as never));
  r('DELETE', `${M}/guests/${ID}`, 'manager', (c) => (a.revokeGuest(num(p0(c), 'guestId')), { deleted: true }));
  r('POST', `${M}/users/${ID}/devices`, 'manager', (c) => a.enrolUserDevice(num(p0(c), 'userId'), c.body.publicKey as string));
  r('DELETE', `${M}/devices/${ID}`, 'manager', (c) => (a.revokeDevice(num(p0(c), 'deviceId')), { deleted: true }));
  r('GET', `${M}/devices/${ID}/credentials`, 'manager', (c) => ({ credentials: a.credentialsForDevice(num(p0(c), 'deviceId')) }));
  r('POST', `${M}/users/${ID}/doorcodes`, 'manager', (c) =>
    a.issueDoorcode(num(p0(c), 'userId'), num(c.body.doorId, 'doorId'), c.body.code === undefined ? undefined : (c.body.code as string)),
  );
  r('DELETE', `${M}/users/${ID}/doorcodes/${ID}`, 'manager', (c) => (a.revokeDoorcode(num(p0(c), 'userId'), num(p1(c), 'doorId')), { deleted: true }));
  r('POST', `${M}/users/${ID}/keycards`, 'manager', (c) => a.addKeycard(num(p0(c), 'userId'), c.body.uid as string));
  r('DELETE', `${M}/keycards/${ID}`, 'manager', (c) => (a.removeKeycard(num(p0(c), 'keycardId')), { deleted: true }));
  r('GET', `${M}/partners`, 'manager', () => ({ partners: a.listPartners() }));
  // {name} authorizes (a new or registered partner); {name, authorized: false} only registers it.
  r('POST', `${M}/partners`, 'manager', (c) => (c.body.authorized === false ? { partner: a.registerPartner(c.body.name as string) } : a.authorizePartner(c.body.name as string)));
  r('GET', `${M}/partners/${ID}`, 'manager', (c) => a.partner(num(p0(c), 'partnerId')));
  r('POST', `${M}/partners/${ID}/terminate`, 'manager', (c) => a.terminatePartner(num(p0(c), 'partnerId')));
  r('POST', `${M}/partners/${ID}/devices`, 'manager', (c) => a.enrolPartnerDevice(num(p0(c), 'partnerId'), c.body.publicKey as string));
  r('POST', `${M}/devices/${ID}/token`, 'manager', (c) => a.rotateDeviceToken(num(p0(c), 'deviceId')));
  r('POST', `${M}/partners/${ID}/token`, 'manager', (c) => a.rotatePartnerToken(num(p0(c), 'partnerId')));
  r('GET', `${M}/partners/${ID}/grants`, 'manager', (c) => ({ grants: a.partnerGrants(num(p0(c), 'partnerId')) }));
  r('GET', `${M}/partners/${ID}/honouring`, 'manager', (c) => ({ doors: a.doorsHonouringPartner(num(p0(c), 'partnerId')) }));
  r('POST', `${M}/signing-key/rotate`, 'manager', () => a.rotateSigningKey());
  r('GET', `${M}/locks`, 'manager', () => ({ locks: a.listLocks() }));
  r('POST', `${M}/locks`, 'manager', (c) => a.provisionLock(num(c.body.doorId, 'doorId')));
  r('POST', `${M}/locks/${LOCK}/device`, 'manager', (c) => a.registerLockDevice(p0(c), c.body.publicKey as string, { replace: c.body.replace === true }));
  r('GET', `${M}/locks/${LOCK}/audit`, 'manager', (c) => ({ records: a.auditLog(p0(c)) }));
  r('GET', `${M}/doors/${ID}/audit`, 'manager', (c) => {
    const q: AuditQuery = { doorId: num(p0(c), 'doorId') };
    const from = optInt(c.query, 'from');
    const until = optInt(c.query, 'until');
    if (from !== undefined) q.from = from;
    if (until !== undefined) q.until = until;
    const g = c.query.get('grantedOnly');
    if (g !== null && g !== 'true' && g !== 'false') throw invalid('grantedOnly must be true or false');
    if (g === 'true') q.grantedOnly = true;
    return auditReport(a, q);
  });
  r('GET', `${M}/revocations/pending`, 'manager', (c) => {
    const f: { partnerId?: number; doorId?: number } = {};
    const pid = optInt(c.query, 'partnerId');
    const did = optInt(c.query, 'doorId');
    if (pid !== undefined) f.partnerId = pid;
    if (did !== undefined) f.doorId = did;
    return { pending: a.pendingRevocations(f) };
  });

  async function uplink(lockId: string, q: URLSearchParams, res: ServerResponse): Promise<unknown> {
    const from = optInt(q, 'from') ?? 0;
    const wait = Math.min(optInt(q, 'wait') ?? 0, maxWait);
    const door = a.door(a.listLocks().find((l) => l.lockId === lockId)?.doorId ?? -1);
    if (!door.connected) throw new AuthorityError('NOT_CONNECTED', `door ${door.id} is not internet-connected; it syncs through phones`);
    const deadline = Date.now() + wait * 1000;
    while (a.currentVersion(lockId) <= from && Date.now() < deadline && !res.destroyed) {
      await new Promise<void>((resolve) => {
        let timer: NodeJS.Timeout | undefined;
        const wake = (): void => {
          if (timer) clearTimeout(timer);
          off();
          waiting.delete(wake);
          resolve();
        };
        const off = a.onVersion((l) => {
          if (l === lockId) wake();
        });
        waiting.add(wake);
        timer = setTimeout(wake, Math.max(1, Math.min(pollMs, deadline - Date.now())));
      });
    }
    const nonce = q.get('nonce');
    return { ...a.updatesFor(lockId, from, optInt(q, 'certSerial')), signedTime: a.signedTime(lockId, nonce ?? undefined) };
  }

  async function readBody(req: IncomingMessage): Promise<Json> {
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const chunk of req) {
      n += (chunk as Buffer).length;
      if (n > maxBody) throw new AuthorityError('PAYLOAD_TOO_LARGE', `body over ${maxBody} bytes`);
      chunks.push(chunk as Buffer);
    }
    if (n === 0) return {};
    let v: unknown;
    try {
      v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      throw invalid('body is not valid JSON');
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid('body must be a JSON object');
    return v as Json;
  }

  function send(res: ServerResponse, status: number, body: unknown, negotiated = false): void {
    if (res.headersSent || res.destroyed) return;
    const vary: Record<string, string> = negotiated ? { vary: 'Accept' } : {};
    if (body instanceof BinaryBody) {
      res.writeHead(status, { 'content-type': body.contentType, 'content-length': body.bytes.length, 'cache-control': 'no-store', ...vary });
      res.end(body.bytes);
      return;
    }
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...vary });
    res.end(text);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://authority');
      const method = req.method ?? 'GET';
      let match: { route: Route; params: string[] } | undefined;
      let pathMatched = false;
      for (const route of routes) {
        const m = route.pattern.exec(url.pathname);
        if (m === null) continue;
        pathMatched = true;
        if (route.method === method) {
          match = { route, params: m.slice(1) };
          break;
        }
      }
      if (match === undefined) {
        if (pathMatched) throw new AuthorityError('METHOD_NOT_ALLOWED', `${method} not allowed on ${url.pathname}`);
        throw new AuthorityError('NOT_FOUND', `no route ${method} ${url.pathname}`);
      }
      const header = req.headers.authorization;
      const token = header !== undefined && /^Bearer /i.test(header) ? header.slice(7).trim() : undefined;
      let principal: Principal | null = null;
      const takes = TOKENS_TAKEN[match.route.auth];
      const lockParam = url.pathname.startsWith('/v1/locks/') || url.pathname.startsWith('/v1/uplink/') ? match.params[0] : undefined;
      try {
        // A courier route names a lock: whether the token may carry its data is read with the token.
        if (match.route.auth === 'courier' && lockParam !== undefined) principal = a.authenticate(token, lockParam);
        else if (match.route.auth !== 'none') principal = a.authenticate(token);
        else if (token !== undefined) principal = a.authenticate(token);
      } catch (e) {
        // Say which token the route takes: the caller may hold the right kind under another name.
        if (e instanceof AuthorityError && e.code === 'UNAUTHORIZED')
          throw new AuthorityError('UNAUTHORIZED', `${e.toJSON().message}; ${method} ${url.pathname} takes ${takes}`, { ...e.details, takes: match.route.auth });
        throw e;
      }
      if (!principalCan(principal, match.route.auth, lockParam))
        throw new AuthorityError('FORBIDDEN', `a ${principal?.kind ?? 'missing'} token may not call ${method} ${url.pathname}; it takes ${takes}`, { takes: match.route.auth });
      if (match.route.auth === 'courier' && lockParam !== undefined && principal !== null) {
        if (!a.entitledTo(principal, lockParam))
          throw new AuthorityError('FORBIDDEN', `this token is not entitled to carry data of lock ${lockParam} (no grant at its door)`, { lockId: lockParam });
        if (url.pathname.endsWith('/time') && principal.kind === 'device') limitTime(token as string, lockParam);
      }
      const body = method === 'GET' || method === 'DELETE' ? {} : await readBody(req);
      const ctx: Ctx = { params: match.params, query: url.searchParams, body, principal, accept: req.headers.accept };
      const result = url.pathname.startsWith('/v1/uplink/') ? await uplink(match.params[0] as string, url.searchParams, res) : match.route.handler(ctx);
      send(res, method === 'POST' && !url.pathname.startsWith('/v1/locks/') ? 201 : 200, result ?? {}, match.route.negotiates === true);
    } catch (e) {
      if (e instanceof AuthorityError && e.code === 'RATE_LIMITED' && !res.headersSent) res.setHeader('retry-after', String(e.details?.retryAfterSeconds ?? 1));
      if (e instanceof AuthorityError) send(res, e.status, { error: e.toJSON() });
      else send(res, 500, { error: { code: 'INTERNAL', message: 'internal error' } });
      if (!(e instanceof AuthorityError)) process.stderr.write(`authority: internal error: ${(e as Error).stack ?? String(e)}\n`);
    }
  }

  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    authority: a,
    routes: routes.map((rt) => ({ method: rt.method, path: rt.pattern.source.slice(1, -1).split(ID).join('{}').split(LOCK).join('{}').replace(/\\(.)/g, '$1') })),
    close: async () => {
      for (const w of [...waiting]) w();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (ownsAuthority) a.close();
    },
  };
}
