// What every case stands on: the suite's authority (which follows the lock's table as the
// cases change it), the phones' keys, sessions opened message by message on the lock under
// test, and assertions that fail a case with a sentence saying what the lock did.

import {
  type KeyPair,
  type Message,
  type Update,
  type ErrorName,
  bytesEqual,
  encodeMessage,
  keyPairFromSeed,
  deriveSeed32,
  tableDigest,
  toHex,
  verifyReceipt,
} from '../protocol';
import { TestAuthority } from '../firmware-sim/test-authority';
import type { LockConnection, LockConnector } from '../mobile-agent/link';
import type { LockUnderTest } from './target';
import type { SuiteIdentity } from './target';

/** A case's assertion did not hold: the lock does not conform. */
export class CaseFailure extends Error {
  override readonly name = 'CaseFailure';
}

/** A case that cannot run on this target (e.g. no second phone): reported as skipped. */
export class CaseSkipped extends Error {
  override readonly name = 'CaseSkipped';
}

export function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new CaseFailure(what);
}

export type Hello = Extract<Message, { type: 'hello' }>;
export type Receipt = Extract<Message, { type: 'receipt' }>;

/** Credential ids the suite puts in the lock's table. */
export const CRED = { resident: 1, partner: 2, bulk: 1000 } as const;
export const PARTNER_ID = 7;

export function describeMessage(m: Message): string {
  if (m.type === 'error') return `error ${m.reason}${m.detail ? ` ("${m.detail}")` : ''}`;
  if (m.type === 'decision') return `decision ${m.reason}`;
  if (m.type === 'receipt') return `receipt v${m.body.version}`;
  return m.type;
}

export interface SuiteContext {
  readonly target: LockUnderTest;
  readonly id: SuiteIdentity;
  /** The honest authority: its version and table are the lock's after every accepted update. */
  auth: TestAuthority;
  readonly phones: { resident: KeyPair; partner: KeyPair; stranger: KeyPair };
  /** An update message the lock accepted earlier (replayed by the rollback case). */
  acceptedUpdate: Uint8Array | undefined;
  /** Milliseconds to wait for one answer (longer for big messages over the air). */
  replyTimeoutMs: number;
  /** Sessions opened by the running case; closed after it. */
  readonly open: Set<Session>;
  /** What the running case observed worth reporting (negotiated MTU, cut points). */
  notes: string[];
}

export function newContext(target: LockUnderTest, id: SuiteIdentity): SuiteContext {
  const auth = new TestAuthority(id.lockId, id.lockSecret, `conformance/${id.seed}`);
  if (!bytesEqual(auth.root.publicKey, keyPairFromSeed(id.rootSeed).publicKey)) throw new Error('suite authority and bundle disagree on the root key');
  const phone = (label: string) => keyPairFromSeed(deriveSeed32(`conformance/${id.seed}`, `phone:${label}`));
  return {
    target,
    id,
    auth,
    phones: { resident: phone('resident'), partner: phone('partner'), stranger: phone('stranger') },
    acceptedUpdate: undefined,
    replyTimeoutMs: target.transport === 'sim' ? 5_000 : 20_000,
    open: new Set(),
    notes: [],
  };
}

/** An authority with the honest one's keys and history that moves on its own (forgeries). */
export function fork(a: TestAuthority): TestAuthority {
  const f = Object.create(TestAuthority.prototype) as TestAuthority;
  Object.assign(f, a);
  return f;
}

/** Keeps the authority's clock at or above what the lock has seen (never signs stale time). */
export function syncAuthorityClock(ctx: SuiteContext, lockTimeS: number): void {
  if (ctx.auth.now < lockTimeS) ctx.auth.now = lockTimeS;
}

/** One connection to the lock = one lock session: hello first, then request/answer. */
export class Session {
  private constructor(
    private readonly ctx: SuiteContext,
    readonly conn: LockConnection,
    readonly hello: Hello,
    private readonly connector: LockConnector,
  ) {}

  static async open(ctx: SuiteContext, opts: { connector?: LockConnector; mtu?: number; onProgress?: (acked: number, total: number) => void } = {}): Promise<Session> {
    const connector = opts.connector ?? ctx.target.connector;
    const conn = await connector.connect(ctx.target.lockId, {
      ...(opts.mtu !== undefined ? { mtu: opts.mtu } : {}),
      ...(opts.onProgress !== undefined ? { onProgress: opts.onProgress } : {}),
      timeoutMs: ctx.target.transport === 'sim' ? 1000 : 10_000,
    });
    let first: Message;
    try {
      first = await conn.next(ctx.replyTimeoutMs);
    } catch (e) {
      await conn.disconnect().catch(() => undefined);
      throw new CaseFailure(`no hello from the lock on connecting: ${(e as Error).message}`);
    }
    if (first.type !== 'hello') {
      await conn.disconnect().catch(() => undefined);
      throw new CaseFailure(`the first message on a connection was ${describeMessage(first)}, not hello (SPEC §6.1)`);
    }
    const s = new Session(ctx, conn, first, connector);
    ctx.open.add(s);
    syncAuthorityClock(ctx, first.lockTime);
    return s;
  }

  /** Send one message (or raw bytes) and return the lock's answer. */
  async request(m: Message | Uint8Array, timeoutMs = this.ctx.replyTimeoutMs): Promise<Message> {
    const bytes = m instanceof Uint8Array ? m : encodeMessage(m);
    const sent = this.conn.sendRaw(bytes);
    sent.catch(() => undefined);
    try {
      return await this.conn.next(timeoutMs);
    } catch (e) {
      throw new CaseFailure(`no answer to ${m instanceof Uint8Array ? `${bytes.length} bytes` : m.type}: ${(e as Error).message}`);
    }
  }

  async close(): Promise<void> {
    this.ctx.open.delete(this);
    if (this.conn.isOpen) await this.conn.disconnect().catch(() => undefined);
    this.connector.forget(this.ctx.target.lockId);
  }
}

/** The update's message bytes, as the authority sends them. */
export const updateBytes = (u: Update): Uint8Array => TestAuthority.message(u);

export function expectError(m: Message, code: ErrorName, what: string): void {
  check(m.type === 'error', `${what}: expected error ${code}, the lock answered ${describeMessage(m)}`);
  check(m.reason === code, `${what}: expected error ${code}, the lock answered error ${m.reason}`);
}

/** A receipt signed by the lock's device key, for this session, naming `version` and `digest`. */
export function expectReceipt(ctx: SuiteContext, s: Session, m: Message, want: { version: number; digest: Uint8Array }, what: string): Receipt {
  check(m.type === 'receipt', `${what}: expected a receipt, the lock answered ${describeMessage(m)}`);
  check(verifyReceipt(m, ctx.target.devicePublicKey), `${what}: the receipt's signature does not verify under the lock's device key (SPEC §7)`);
  const b = m.body;
  check(b.lockId === ctx.target.lockId, `${what}: receipt names lock ${b.lockId}`);
  check(bytesEqual(b.nonce, s.hello.nonce), `${what}: receipt nonce ${toHex(b.nonce)} is not this session's hello nonce ${toHex(s.hello.nonce)}`);
  check(b.version === want.version, `${what}: receipt says version ${b.version}, expected ${want.version}`);
  check(bytesEqual(b.digest, want.digest), `${what}: receipt digest ${toHex(b.digest).slice(0, 16)}… is not the expected ${toHex(want.digest).slice(0, 16)}…`);
  return m;
}

/** The lock's table is still `before`: its receipt of the table in force, then a new session's hello. */
export async function expectUnchanged(ctx: SuiteContext, s: Session, before: { version: number; digest: Uint8Array }, what: string): Promise<void> {
  const r = await s.request({ type: 'receiptRequest' });
  expectReceipt(ctx, s, r, before, `${what}, then receiptRequest (state must be unchanged)`);
  await s.close();
  const again = await Session.open(ctx);
  check(again.hello.version === before.version && bytesEqual(again.hello.digest, before.digest), `${what}: the next hello says v${again.hello.version} ${toHex(again.hello.digest).slice(0, 16)}…, expected the unchanged v${before.version}`);
  await again.close();
}

/** The authority's view of the lock's current table. */
export function current(ctx: SuiteContext): { version: number; digest: Uint8Array } {
  return { version: ctx.auth.version, digest: tableDigest(ctx.auth.table) };
}
