// The conformance cases: each drives the lock under test message by message, as a phone
// and an authority would, and states what SPEC.md requires of the answer. Cases run in
// table order on one lock; each brings the lock to the suite's table first (prepare), so a
// failing case does not take the ones after it down with it.
//
// `requirements` holds the SPEC requirement identifiers ([R-…]) each case checks; `spec`
// names the section until they are assigned.

import {
  type Entry,
  type Message,
  type Op,
  type SignedTimeBody,
  AUDIT_GENESIS,
  CAPABILITIES,
  DEFAULT_LOCK_POLICY,
  ENTRY_FLAGS,
  PROTOCOL_VERSION,
  ProtocolError,
  answerChallenge,
  applyOps,
  auditRecordFromBytes,
  bytesEqual,
  chainAudit,
  cmap,
  decodeMessage,
  deriveSeed32,
  emptyTable,
  encode,
  encodeMessage,
  keyPairFromSeed,
  makeDelta,
  makeSignedTime,
  signHead,
  tableDigest,
  toHex,
  verifyAuditExport,
  verifyReceipt,
} from '../protocol';
import type { LockConnection } from '../mobile-agent/link';
import { AgentError } from '../mobile-agent/errors';
import {
  CRED,
  CaseFailure,
  CaseSkipped,
  PARTNER_ID,
  Session,
  type SuiteContext,
  check,
  current,
  describeMessage,
  expectError,
  expectReceipt,
  expectUnchanged,
  fork,
  updateBytes,
} from './harness';

export interface ConformanceCase {
  /** Stable name: group.case. */
  id: string;
  title: string;
  /** SPEC.md section(s) the case checks. */
  spec: string;
  /** SPEC requirement identifiers ([R-…]) the case checks; filled in as they are assigned. */
  requirements: string[];
  run(ctx: SuiteContext): Promise<void>;
}

// ---------------------------------------------------------------------------------------
// Shared steps

function baselineEntries(ctx: SuiteContext): Entry[] {
  return [
    { credId: CRED.resident, kind: 'phone', holder: 'resident', secret: ctx.phones.resident.publicKey, flags: 0 },
    { credId: CRED.partner, kind: 'phone', holder: 'partner', partnerId: PARTNER_ID, secret: ctx.phones.partner.publicKey, flags: ENTRY_FLAGS.LEASE },
  ];
}

/** A phone key for bulk entries (distinct, valid points). */
function bulkKey(ctx: SuiteContext, i: number): Uint8Array {
  return keyPairFromSeed(deriveSeed32(`conformance/${ctx.id.seed}`, `bulk:${i}`)).publicKey;
}

/** Replaces the lock's table with the suite's by a snapshot above whatever it holds. */
async function takeOver(ctx: SuiteContext, s: Session, what: string): Promise<Uint8Array> {
  const a = ctx.auth;
  a.version = Math.max(a.version, s.hello.version) + 1;
  if (!a.table.entries.has(CRED.resident)) a.table = applyOps(emptyTable(), baselineEntries(ctx).map((entry) => ({ op: 'put', entry }) as Op));
  const bytes = updateBytes(a.snapshot());
  const r = await s.request(bytes, ctx.replyTimeoutMs * 2);
  expectReceipt(ctx, s, r, current(ctx), what);
  ctx.acceptedUpdate = bytes;
  return bytes;
}

/**
 * A session on a lock holding the suite's table (the baseline credentials): a snapshot
 * first if the lock's hello shows anything else (an earlier case failed half-way, or a
 * lock under test that held another table).
 */
/** A prepared session with a lock that offers batch; the case is skipped for one that does not. */
async function preparedForBatch(ctx: SuiteContext): Promise<Session> {
  const s = await prepared(ctx);
  if ((s.hello.capabilities & CAPABILITIES.batch) === 0) {
    await s.close();
    throw new CaseSkipped('the lock does not offer batch (hello capability bit 7)');
  }
  return s;
}

async function prepared(ctx: SuiteContext, opts: Parameters<typeof Session.open>[1] = {}): Promise<Session> {
  const s = await Session.open(ctx, opts);
  const want = current(ctx);
  if (ctx.auth.table.entries.has(CRED.resident) && s.hello.version === want.version && bytesEqual(s.hello.digest, want.digest)) return s;
  await takeOver(ctx, s, 'bringing the lock to the suite table (snapshot)');
  return s;
}

/** Delta from the lock's table, signed by the suite's authority; the authority moves on. */
async function acceptDelta(ctx: SuiteContext, s: Session, ops: Op[], what: string, opts: { version?: number } = {}): Promise<Uint8Array> {
  const bytes = updateBytes(ctx.auth.delta(ops, opts));
  const r = await s.request(bytes, ctx.replyTimeoutMs * 2);
  expectReceipt(ctx, s, r, current(ctx), what);
  return bytes;
}

/** An update the lock must refuse with `code`, its table unchanged afterwards. */
async function refusal(ctx: SuiteContext, code: Parameters<typeof expectError>[1], what: string, build: (s: Session) => Uint8Array): Promise<void> {
  const s = await prepared(ctx);
  const before = current(ctx);
  const m = await s.request(build(s), ctx.replyTimeoutMs * 2);
  expectError(m, code, what);
  await expectUnchanged(ctx, s, before, what);
}

/** A signed head for `version` naming `digest`, by `secret` under `keyId` (defaults: the suite's signer). */
function head(ctx: SuiteContext, version: number, digest: Uint8Array) {
  const a = ctx.auth;
  return signHead({ lockId: ctx.id.lockId, version, digest, issuedAt: a.now, keyId: a.signer.keyId }, a.signer.secretKey);
}

function timeMessage(ctx: SuiteContext, args: { nonce?: Uint8Array; time?: number; lockId?: string; names?: { version: number; digest: Uint8Array }; signWith?: Uint8Array }): Uint8Array {
  const a = ctx.auth;
  const names = args.names ?? current(ctx);
  const body: SignedTimeBody = { lockId: args.lockId ?? ctx.id.lockId, time: args.time ?? a.now, keyId: a.signer.keyId, version: names.version, digest: names.digest };
  if (args.nonce !== undefined) body.nonce = args.nonce;
  return encodeMessage(makeSignedTime(body, args.signWith ?? a.signer.secretKey));
}

function expectTimeAck(m: Message, atLeast: number, what: string): void {
  check(m.type === 'timeAck', `${what}: expected timeAck, the lock answered ${describeMessage(m)}`);
  check(m.lockTime >= atLeast, `${what}: timeAck says lock time ${m.lockTime}, below the signed time ${atLeast} (SPEC §8.2)`);
}

/** unlockRequest → challenge → response signed by `secret` → decision. */
async function unlock(s: Session, credId: number, secret: Uint8Array): Promise<{ decision: Extract<Message, { type: 'decision' }>; response: Uint8Array; challenge: Extract<Message, { type: 'challenge' }> }> {
  const c = await s.request({ type: 'unlockRequest', credId });
  check(c.type === 'challenge', `unlockRequest ${credId}: expected a challenge, the lock answered ${describeMessage(c)}`);
  const response = encodeMessage(answerChallenge(c.bodyBytes, secret));
  const d = await s.request(response);
  check(d.type === 'decision', `unlockResponse for credential ${credId}: expected a decision, the lock answered ${describeMessage(d)}`);
  check(d.granted === (d.reason === 'GRANTED'), `decision granted=${d.granted} with reason ${d.reason} (SPEC §6.4)`);
  return { decision: d, response, challenge: c };
}

function expectDecision(d: Extract<Message, { type: 'decision' }>, reason: string, what: string): void {
  check(d.reason === reason, `${what}: expected decision ${reason}, the lock decided ${d.reason}`);
}

const OTHER_LOCK_ID = 'zz-conformance-other';

// ---------------------------------------------------------------------------------------
// The table

export const CASES: ConformanceCase[] = [
  // --- hello and capabilities ---------------------------------------------------------
  {
    id: 'hello.fields',
    title: 'hello opens every connection: protocol version 1, the lock id, 16-byte nonce, 32-byte digest, capability bits',
    spec: '§6.1, §6.2, §12.4',
    requirements: [],
    async run(ctx) {
      const s = await Session.open(ctx);
      const h = s.hello;
      check(h.protocolVersion === PROTOCOL_VERSION, `hello protocolVersion ${h.protocolVersion}, expected ${PROTOCOL_VERSION}`);
      check(h.lockId === ctx.target.lockId, `hello names lock ${h.lockId}, expected ${ctx.target.lockId}`);
      check(h.nonce.length === 16, `hello nonce is ${h.nonce.length} bytes, expected 16`);
      check(h.digest.length === 32, `hello digest is ${h.digest.length} bytes, expected 32`);
      // Every bit the SPEC defines (§12.4); the others are reserved and 0.
      const defined = Object.values(CAPABILITIES).reduce((m, b) => m | b, 0);
      check(h.capabilities <= 0xffff && (h.capabilities & ~defined) === 0, `hello capabilities 0x${h.capabilities.toString(16)} set reserved bits (SPEC §12.4: others reserved, 0)`);
      const needed = CAPABILITIES.delta | CAPABILITIES.snapshot | CAPABILITIES.unlock | CAPABILITIES.auditExport;
      check((h.capabilities & needed) === needed, `hello capabilities 0x${h.capabilities.toString(16)} lack delta/snapshot/unlock/auditExport, which the suite exercises`);
      check(h.battery >= 0 && h.battery <= 100, `hello battery ${h.battery} is not 0..100 %`);
      await s.close();
    },
  },
  {
    id: 'hello.fresh-nonce',
    title: 'every session has a fresh hello nonce',
    spec: '§6.2',
    requirements: [],
    async run(ctx) {
      const seen = new Set<string>();
      for (let i = 0; i < 3; i++) {
        const s = await Session.open(ctx);
        const n = toHex(s.hello.nonce);
        check(!seen.has(n), `session ${i + 1} repeats hello nonce ${n} of an earlier session`);
        seen.add(n);
        await s.close();
      }
    },
  },

  // --- acceptance -----------------------------------------------------------------------
  {
    id: 'update.snapshot-accept',
    title: 'a signed snapshot above the lock version is committed and answered by a receipt for this session',
    spec: '§5.3, §5.4, §6.3, §7',
    requirements: [],
    async run(ctx) {
      const s = await Session.open(ctx);
      await takeOver(ctx, s, 'snapshot');
      await s.close();
      const again = await Session.open(ctx);
      const want = current(ctx);
      check(again.hello.version === want.version && bytesEqual(again.hello.digest, want.digest), `after the snapshot the next hello says v${again.hello.version}, expected v${want.version} with the snapshot's digest`);
      await again.close();
    },
  },
  {
    id: 'update.delta-accept',
    title: 'a signed delta from the current version is applied and answered by a receipt',
    spec: '§5.2, §5.4, §6.3, §7',
    requirements: [],
    async run(ctx) {
      const s = await prepared(ctx);
      await acceptDelta(ctx, s, [{ op: 'put', entry: { credId: CRED.bulk, kind: 'phone', holder: 'staff', secret: bulkKey(ctx, 0), flags: 0 } }], 'delta putting one credential');
      await acceptDelta(ctx, s, [{ op: 'remove', credId: CRED.bulk }], 'a second delta in the same session');
      await s.close();
      const again = await Session.open(ctx);
      check(again.hello.version === ctx.auth.version, `after two deltas the next hello says v${again.hello.version}, expected v${ctx.auth.version}`);
      await again.close();
    },
  },
  {
    id: 'update.version-jump',
    title: 'a delta may jump versions (v → v+5) as long as the chain and digest hold',
    spec: '§5.4',
    requirements: [],
    async run(ctx) {
      const s = await prepared(ctx);
      await acceptDelta(ctx, s, [{ op: 'removePartner', partnerId: 99 }], 'delta to v+5', { version: ctx.auth.version + 5 });
      await s.close();
    },
  },

  // --- refusals: each leaves version and digest unchanged -------------------------------
  {
    id: 'refuse.untrusted-key',
    title: 'a head signed by a key the lock does not trust is refused UNTRUSTED_KEY',
    spec: '§3.5, §5.4 step 2',
    requirements: [],
    async run(ctx) {
      await refusal(ctx, 'UNTRUSTED_KEY', 'delta signed by an unknown key', () => {
        const f = fork(ctx.auth);
        f.signer = ctx.phones.stranger;
        return updateBytes(f.delta([{ op: 'removePartner', partnerId: 99 }]));
      });
    },
  },
  {
    id: 'refuse.bad-signature',
    title: 'a head whose signature does not verify is refused BAD_SIGNATURE',
    spec: '§3.3, §5.4 step 3',
    requirements: [],
    async run(ctx) {
      await refusal(ctx, 'BAD_SIGNATURE', 'delta with a forged head signature', () =>
        updateBytes(fork(ctx.auth).delta([{ op: 'remove', credId: CRED.partner }], { signWith: ctx.phones.stranger.secretKey })),
      );
    },
  },
  {
    id: 'refuse.wrong-lock',
    title: "an update signed for another lock is refused WRONG_LOCK",
    spec: '§5.4 step 4',
    requirements: [],
    async run(ctx) {
      await refusal(ctx, 'WRONG_LOCK', `delta for ${OTHER_LOCK_ID}`, () => updateBytes(fork(ctx.auth).delta([{ op: 'remove', credId: CRED.partner }], { lockId: OTHER_LOCK_ID })));
    },
  },
  {
    id: 'refuse.rollback-replay',
    title: 'replays of accepted updates (an older snapshot, the last delta) are refused ROLLBACK',
    spec: '§5.4 step 5',
    requirements: [],
    async run(ctx) {
      const s = await prepared(ctx);
      const older = ctx.acceptedUpdate;
      const last = await acceptDelta(ctx, s, [{ op: 'removePartner', partnerId: 98 }], 'a fresh delta (so an older update exists)');
      const before = current(ctx);
      if (older !== undefined) expectError(await s.request(older, ctx.replyTimeoutMs * 2), 'ROLLBACK', 'replayed older snapshot');
      expectError(await s.request(last), 'ROLLBACK', 'replayed last delta');
      await expectUnchanged(ctx, s, before, 'replays');
    },
  },
  {
    id: 'refuse.rollback-same-version',
    title: 'a validly signed update at the current version is refused ROLLBACK',
    spec: '§5.4 step 5',
    requirements: [],
    async run(ctx) {
      await refusal(ctx, 'ROLLBACK', 'snapshot at the current version', () => {
        const f = fork(ctx.auth);
        f.table = applyOps(f.table, [{ op: 'remove', credId: CRED.partner }]);
        return updateBytes(f.snapshot());
      });
    },
  },
  {
    id: 'refuse.broken-chain-version',
    title: 'a delta from a version the lock is not at (unknown parent) is refused BROKEN_CHAIN',
    spec: '§5.4 step 6',
    requirements: [],
    async run(ctx) {
      await refusal(ctx, 'BROKEN_CHAIN', 'delta from base v+3', () => {
        const f = fork(ctx.auth);
        f.version += 3;
        return updateBytes(f.delta([{ op: 'remove', credId: CRED.partner }]));
      });
    },
  },
  {
    id: 'refuse.broken-chain-digest',
    title: 'a delta from the right version but another parent digest is refused BROKEN_CHAIN',
    spec: '§5.4 step 6',
    requirements: [],
    async run(ctx) {
      await refusal(ctx, 'BROKEN_CHAIN', 'delta whose base digest prefix is not the lock’s', () => {
        const f = fork(ctx.auth);
        f.table = applyOps(f.table, [{ op: 'remove', credId: CRED.partner }]);
        return updateBytes(f.delta([{ op: 'removePartner', partnerId: 99 }]));
      });
    },
  },
  {
    id: 'refuse.invalid-op',
    title: 'a delta removing an absent credential is refused INVALID_OP',
    spec: '§5.2, §5.4 step 6',
    requirements: [],
    async run(ctx) {
      await refusal(ctx, 'INVALID_OP', 'delta removing credential 4242 (absent)', () => {
        const a = ctx.auth;
        return updateBytes(makeDelta({ base: current(ctx), ops: [{ op: 'remove', credId: 4242 }], head: head(ctx, a.version + 1, tableDigest(a.table)) }));
      });
    },
  },
  {
    id: 'refuse.digest-mismatch',
    title: 'ops that do not produce the signed digest are refused DIGEST_MISMATCH and grant nothing',
    spec: '§5.4 step 7, §9.2',
    requirements: [],
    async run(ctx) {
      const smuggled: Entry = { credId: 51, kind: 'phone', holder: 'resident', secret: ctx.phones.stranger.publicKey, flags: 0 };
      await refusal(ctx, 'DIGEST_MISMATCH', 'signed delta carrying an extra put', () => {
        const u = fork(ctx.auth).delta([{ op: 'removePartner', partnerId: 99 }]);
        if (u.type !== 'delta') throw new Error('unreachable');
        return updateBytes({ ...u, ops: [...u.ops, { op: 'put', entry: smuggled }] });
      });
      const s = await Session.open(ctx);
      const { decision } = await unlock(s, smuggled.credId, ctx.phones.stranger.secretKey);
      expectDecision(decision, 'UNKNOWN_CREDENTIAL', 'unlock with the credential the refused delta carried');
      await s.close();
    },
  },
  {
    id: 'refuse.over-limit',
    title: 'a delta of 20,001 ops is refused OVER_LIMIT',
    spec: '§5.2 step 1, Quick notes (limits)',
    requirements: [],
    async run(ctx) {
      await refusal(ctx, 'OVER_LIMIT', 'delta with 20,001 ops', () => {
        const a = ctx.auth;
        const ops: Op[] = Array.from({ length: 20_001 }, () => ({ op: 'removePartner', partnerId: 99 }));
        return updateBytes(makeDelta({ base: current(ctx), ops, head: head(ctx, a.version + 1, tableDigest(a.table)) }));
      });
    },
  },
  {
    id: 'refuse.malformed',
    title: 'bytes that are not a valid message (truncated CBOR, a delta without its head) are refused MALFORMED',
    spec: '§2.2, §6.1',
    requirements: [],
    async run(ctx) {
      const s = await prepared(ctx);
      const before = current(ctx);
      expectError(await s.request(new Uint8Array([0xa2, 0x00, 0x03, 0x01])), 'MALFORMED', 'truncated CBOR map');
      const headless = encode(cmap([[0, 3], [1, cmap([[1, before.version], [2, before.digest.slice(0, 8)], [3, []]])]]));
      expectError(await s.request(headless), 'MALFORMED', 'delta without key 4 (head)');
      await expectUnchanged(ctx, s, before, 'malformed messages');
    },
  },
  {
    id: 'refuse.unknown-type',
    title: 'an unknown message type code is refused MALFORMED',
    spec: '§6.1, §12.5',
    requirements: [],
    async run(ctx) {
      const s = await prepared(ctx);
      const before = current(ctx);
      expectError(await s.request(encode(cmap([[0, 19]]))), 'MALFORMED', 'message type 19');
      await expectUnchanged(ctx, s, before, 'unknown message type');
    },
  },
  {
    id: 'refuse.unexpected-message',
    title: 'a message the lock never receives (hello, phone → lock) is refused UNEXPECTED_MESSAGE',
    spec: '§6.1',
    requirements: [],
    async run(ctx) {
      const s = await prepared(ctx);
      const before = current(ctx);
      expectError(await s.request({ ...s.hello }), 'UNEXPECTED_MESSAGE', 'hello sent to the lock');
      await expectUnchanged(ctx, s, before, 'unexpected message');
    },
  },

  // --- framing --------------------------------------------------------------------------
  {
    id: 'framing.resume',
    title: 'a transfer cut twice at frame boundaries resumes from the bytes the lock holds, then commits once',
    spec: '§13.2 (resume handshake), §13.3',
    requirements: [],
    async run(ctx) {
      const s0 = await prepared(ctx);
      await s0.close();
      // Large enough (≈ 14 kB, ≈ 700 frames at MTU 23) that a cut requested at an ACK lands
      // before the rest is through, whatever the link's latency.
      const ops: Op[] = Array.from({ length: 300 }, (_, i) => ({ op: 'put', entry: { credId: CRED.bulk + 1000 + i, kind: 'phone', holder: 'staff', secret: bulkKey(ctx, 1000 + i), flags: 0 } }) as Op);
      const bytes = updateBytes(ctx.auth.delta(ops));
      const opened: LockConnection[] = [];
      const resumedAt: number[] = [];
      try {
        // The cut is made from the progress callback (an ACK has just arrived: a frame
        // boundary); the connection may not be known yet when a resumed transfer races ahead.
        let cutAt = 0;
        let ackedAtCut = 0;
        let cuts = 0;
        let firstProgress: number | undefined;
        let live: LockConnection | undefined;
        let cutRequested = false;
        const cutByUs = new Set<LockConnection>();
        const cut = (c: LockConnection) => {
          cutByUs.add(c);
          queueMicrotask(() => void c.disconnect().catch(() => undefined));
        };
        const onProgress = (acked: number, total: number) => {
          if (firstProgress === undefined) firstProgress = acked;
          if (cutAt > 0 && acked >= cutAt && acked < total) {
            ackedAtCut = acked;
            cutAt = 0;
            cuts++;
            if (live !== undefined) cut(live);
            else cutRequested = true;
          }
        };
        const connect = async (): Promise<LockConnection> => {
          firstProgress = undefined;
          live = undefined;
          cutRequested = false;
          const c = await ctx.target.connector.connect(ctx.target.lockId, { mtu: 23, onProgress, timeoutMs: ctx.target.transport === 'sim' ? 1000 : 10_000 });
          opened.push(c);
          live = c;
          if (cutRequested) cut(c);
          let hello: Message;
          try {
            hello = await c.next(ctx.replyTimeoutMs);
          } catch (e) {
            // Cut by us before its hello arrived: the resumed bytes raced ahead of the hello.
            if (cutByUs.has(c)) return c;
            throw new CaseFailure(`no hello after reconnecting: ${(e as Error).message}`);
          }
          check(hello.type === 'hello', `the first message after reconnecting was ${describeMessage(hello)}, not hello`);
          return c;
        };
        const expectCut = async (p: Promise<void>, what: string): Promise<boolean> => {
          try {
            await p;
            return false;
          } catch (e) {
            check(e instanceof AgentError && e.reason === 'LINK_LOST', `${what}: ${(e as Error).message}`);
            return true;
          }
        };
        cutAt = Math.ceil(bytes.length / 3);
        let c = await connect();
        check(await expectCut(c.sendRaw(bytes), 'first connection'), `the ${bytes.length}-byte delta was acknowledged before the cut at ${Math.ceil(bytes.length / 3)} bytes`);
        await c.closed;
        for (let round = 1; round <= 2; round++) {
          const held = ackedAtCut;
          const cutsBefore = cuts;
          // The second cut halfway through what is left after the first resume.
          if (round === 1) cutAt = Math.ceil(held + (bytes.length - held) / 2);
          c = await connect();
          check(firstProgress !== undefined && firstProgress >= held, `after the cut at ${held} of ${bytes.length} bytes the lock's framing HELLO holds ${firstProgress ?? 'nothing'}: a lock must resume from the bytes it acknowledged, not restart (SPEC §13.2)`);
          resumedAt.push(firstProgress);
          const wasCut = await expectCut(c.drained(), `connection ${round + 1}`);
          if (!wasCut || cuts === cutsBefore) break;
          await c.closed;
        }
        cutAt = 0;
        const r = await c.next(ctx.replyTimeoutMs * 2).catch((e: Error) => {
          throw new CaseFailure(`no answer after the resumed delta completed: ${e.message}`);
        });
        check(r.type === 'receipt', `resumed delta: expected a receipt, the lock answered ${describeMessage(r)}`);
        check(verifyReceipt(r, ctx.target.devicePublicKey) && r.body.version === ctx.auth.version && bytesEqual(r.body.digest, tableDigest(ctx.auth.table)), `the receipt after the resumed delta does not name v${ctx.auth.version} with its digest`);
        check(cuts >= 1, 'the transfer was never cut');
        ctx.notes.push(`${bytes.length}-byte delta at MTU 23 cut ${cuts}× at an ACK; the lock's HELLO resumed at ${resumedAt.join(', ')} bytes`);
      } finally {
        for (const c of opened) await c.disconnect().catch(() => undefined);
        ctx.target.connector.forget(ctx.target.lockId);
      }
    },
  },
  ...[23, 185, 247, 517].map(
    (mtu): ConformanceCase => ({
      id: `framing.mtu-${mtu}`,
      title: `at ATT MTU ${mtu}: a multi-frame delta is committed and a multi-frame audit export read`,
      spec: '§13.1, §13.2',
      requirements: [],
      async run(ctx) {
        const s = await prepared(ctx, { mtu });
        check(s.conn.mtu >= 23 && s.conn.mtu <= mtu, `asked for MTU ${mtu}, the connection has ${s.conn.mtu}`);
        ctx.notes.push(`asked for MTU ${mtu}, negotiated ${s.conn.mtu}`);
        const ops: Op[] = Array.from({ length: 20 }, (_, i) => ({ op: 'put', entry: { credId: CRED.bulk + 100 + i, kind: 'phone', holder: 'staff', secret: bulkKey(ctx, 100 + i), flags: 0 } }) as Op);
        await acceptDelta(ctx, s, ops, `delta of 20 puts at MTU ${s.conn.mtu}`);
        await acceptDelta(ctx, s, ops.map((o) => ({ op: 'remove', credId: (o as { entry: Entry }).entry.credId }) as Op), `delta of 20 removes at MTU ${s.conn.mtu}`);
        const ex = await s.request({ type: 'auditRequest', fromSeq: 1 });
        check(ex.type === 'auditExport', `auditRequest at MTU ${s.conn.mtu}: the lock answered ${describeMessage(ex)}`);
        await s.close();
      },
    }),
  ),

  // --- receipts ---------------------------------------------------------------------------
  {
    id: 'receipt.request',
    title: 'receiptRequest is answered by a receipt of the table in force, bound to this session',
    spec: '§6.4, §7',
    requirements: [],
    async run(ctx) {
      const s1 = await prepared(ctx);
      expectReceipt(ctx, s1, await s1.request({ type: 'receiptRequest' }), current(ctx), 'receiptRequest');
      await s1.close();
      const s2 = await Session.open(ctx);
      expectReceipt(ctx, s2, await s2.request({ type: 'receiptRequest' }), current(ctx), 'receiptRequest in a new session');
      await s2.close();
    },
  },

  // --- signed time ------------------------------------------------------------------------
  {
    id: 'time.accept',
    title: 'a signed time bound to the session nonce is accepted: timeAck at or after it',
    spec: '§8, §8.1, §8.2',
    requirements: [],
    async run(ctx) {
      const s = await prepared(ctx);
      ctx.auth.now += 5;
      expectTimeAck(await s.request(timeMessage(ctx, { nonce: s.hello.nonce })), ctx.auth.now, 'signed time with the session nonce');
      expectTimeAck(await s.request(timeMessage(ctx, {})), ctx.auth.now, 'signed time without a nonce (raises the clock floor only)');
      await s.close();
    },
  },
  {
    id: 'time.rollback',
    title: 'a signed time older than the newest seen is refused TIME_ROLLBACK, consuming nothing',
    spec: '§8.1 step 4',
    requirements: [],
    async run(ctx) {
      const s1 = await prepared(ctx);
      ctx.auth.now += 5;
      expectTimeAck(await s1.request(timeMessage(ctx, { nonce: s1.hello.nonce })), ctx.auth.now, 'fresh signed time');
      await s1.close();
      const s2 = await Session.open(ctx);
      expectError(await s2.request(timeMessage(ctx, { nonce: s2.hello.nonce, time: ctx.auth.now - 600 })), 'TIME_ROLLBACK', 'signed time 10 minutes older than the newest');
      expectTimeAck(await s2.request(timeMessage(ctx, { nonce: s2.hello.nonce })), ctx.auth.now, 'a valid time after the refusal (the nonce is not consumed by a refusal)');
      await s2.close();
    },
  },
  {
    id: 'time.bad-nonce',
    title: 'a signed time bound to another nonce is refused BAD_NONCE',
    spec: '§8.1 step 5',
    requirements: [],
    async run(ctx) {
      const s = await prepared(ctx);
      const other = new Uint8Array(16).map((_, i) => (s.hello.nonce[i] as number) ^ 0x5a);
      expectError(await s.request(timeMessage(ctx, { nonce: other })), 'BAD_NONCE', 'signed time with a nonce of no session');
      expectTimeAck(await s.request(timeMessage(ctx, { nonce: s.hello.nonce })), ctx.auth.now, 'the valid time afterwards');
      await s.close();
    },
  },
  {
    id: 'time.nonce-reuse',
    title: 'a second nonce-bound time in one session is refused BAD_NONCE',
    spec: '§8.1 step 5',
    requirements: [],
    async run(ctx) {
      const s = await prepared(ctx);
      expectTimeAck(await s.request(timeMessage(ctx, { nonce: s.hello.nonce })), ctx.auth.now, 'first nonce-bound time');
      ctx.auth.now += 1;
      expectError(await s.request(timeMessage(ctx, { nonce: s.hello.nonce })), 'BAD_NONCE', 'second nonce-bound time in the same session');
      await s.close();
    },
  },
  {
    id: 'time.bad-signature',
    title: 'a signed time whose signature does not verify is refused BAD_SIGNATURE',
    spec: '§8.1 step 2',
    requirements: [],
    async run(ctx) {
      const s = await prepared(ctx);
      expectError(await s.request(timeMessage(ctx, { nonce: s.hello.nonce, signWith: ctx.phones.stranger.secretKey })), 'BAD_SIGNATURE', 'forged signed time');
      await s.close();
    },
  },
  {
    id: 'time.wrong-lock',
    title: 'a signed time for another lock is refused WRONG_LOCK',
    spec: '§8.1 step 3',
    requirements: [],
    async run(ctx) {
      const s = await prepared(ctx);
      expectError(await s.request(timeMessage(ctx, { nonce: s.hello.nonce, lockId: OTHER_LOCK_ID })), 'WRONG_LOCK', `signed time for ${OTHER_LOCK_ID}`);
      await s.close();
    },
  },
  {
    id: 'time.lease',
    title: 'a LEASE credential works while the table is attested, and is refused LEASE_STALE once time moves past the lease without attesting it',
    spec: '§8.1, §9.3, §12.2',
    requirements: [],
    async run(ctx) {
      const lease = 3600;
      const s1 = await prepared(ctx);
      await acceptDelta(ctx, s1, [{ op: 'setLockPolicy', policy: { ...DEFAULT_LOCK_POLICY, leaseSeconds: lease } }], `delta setting a ${lease} s lease`);
      expectTimeAck(await s1.request(timeMessage(ctx, { nonce: s1.hello.nonce })), ctx.auth.now, 'signed time naming the lock’s table');
      expectDecision((await unlock(s1, CRED.partner, ctx.phones.partner.secretKey)).decision, 'GRANTED', 'LEASE credential with a fresh lease');
      await s1.close();
      // Two hours on, the authority names a newer table (a revocation the courier withholds).
      ctx.auth.now += 2 * lease;
      const s2 = await Session.open(ctx);
      const pending = { version: ctx.auth.version + 1, digest: tableDigest(applyOps(ctx.auth.table, [{ op: 'remove', credId: CRED.partner }])) };
      expectTimeAck(await s2.request(timeMessage(ctx, { nonce: s2.hello.nonce, names: pending })), ctx.auth.now, 'signed time naming a newer table');
      expectDecision((await unlock(s2, CRED.partner, ctx.phones.partner.secretKey)).decision, 'LEASE_STALE', `LEASE credential ${2 * lease} s after the last attestation`);
      expectDecision((await unlock(s2, CRED.resident, ctx.phones.resident.secretKey)).decision, 'GRANTED', 'credential without LEASE at the same time');
      await acceptDelta(ctx, s2, [{ op: 'setLockPolicy', policy: { ...DEFAULT_LOCK_POLICY } }], 'delta removing the lease again');
      await s2.close();
    },
  },

  // --- unlock -----------------------------------------------------------------------------
  {
    id: 'unlock.grant',
    title: 'unlockRequest → challenge for this lock and session → signed response → GRANTED, logged',
    spec: '§9.1, §9.2, §6.4',
    requirements: [],
    async run(ctx) {
      const s = await prepared(ctx);
      const { decision, challenge } = await unlock(s, CRED.resident, ctx.phones.resident.secretKey);
      const b = challenge.body;
      check(b.lockId === ctx.target.lockId && b.credId === CRED.resident, `challenge names lock ${b.lockId} credential ${b.credId}`);
      check(b.sessionId.length === 8 && b.nonce.length === 16, 'challenge sessionId must be 8 bytes and nonce 16 (SPEC §9.1)');
      check(b.expiresAtMs >= s.hello.lockTime * 1000, `challenge expiresAtMs ${b.expiresAtMs} is before the session's lock time`);
      expectDecision(decision, 'GRANTED', 'resident phone');
      check(decision.auditSeq > s.hello.auditSeq, `decision auditSeq ${decision.auditSeq} is not after the hello's ${s.hello.auditSeq}: the decision must be logged first (SPEC §9.2)`);
      const second = await s.request({ type: 'unlockRequest', credId: CRED.resident });
      check(second.type === 'challenge' && !bytesEqual(second.body.nonce, b.nonce), 'a second challenge must carry a fresh nonce');
      await s.close();
    },
  },
  {
    id: 'unlock.replay',
    title: 'a response answered once is refused REPLAYED when sent again',
    spec: '§9.2 step 2',
    requirements: [],
    async run(ctx) {
      const s = await prepared(ctx);
      const { decision, response } = await unlock(s, CRED.resident, ctx.phones.resident.secretKey);
      expectDecision(decision, 'GRANTED', 'first response');
      const again = await s.request(response);
      check(again.type === 'decision', `replayed response: the lock answered ${describeMessage(again)}`);
      expectDecision(again, 'REPLAYED', 'the same response again');
      await s.close();
    },
  },
  {
    id: 'unlock.other-session',
    title: "a challenge of an earlier session is refused WRONG_LOCK",
    spec: '§9.2 step 1',
    requirements: [],
    async run(ctx) {
      const s1 = await prepared(ctx);
      const c = await s1.request({ type: 'unlockRequest', credId: CRED.resident });
      check(c.type === 'challenge', `unlockRequest: the lock answered ${describeMessage(c)}`);
      await s1.close();
      const s2 = await Session.open(ctx);
      const d = await s2.request(answerChallenge(c.bodyBytes, ctx.phones.resident.secretKey));
      check(d.type === 'decision', `response to an old session's challenge: the lock answered ${describeMessage(d)}`);
      expectDecision(d, 'WRONG_LOCK', "response to the previous session's challenge");
      await s2.close();
    },
  },
  {
    id: 'unlock.bad-response',
    title: 'a response signed by another key is refused BAD_RESPONSE and burns the challenge',
    spec: '§9.2 steps 2, 5',
    requirements: [],
    async run(ctx) {
      const s = await prepared(ctx);
      const c = await s.request({ type: 'unlockRequest', credId: CRED.resident });
      check(c.type === 'challenge', `unlockRequest: the lock answered ${describeMessage(c)}`);
      const bad = await s.request(answerChallenge(c.bodyBytes, ctx.phones.stranger.secretKey));
      check(bad.type === 'decision', `stranger's response: the lock answered ${describeMessage(bad)}`);
      expectDecision(bad, 'BAD_RESPONSE', "response signed by a key that is not the credential's");
      const late = await s.request(answerChallenge(c.bodyBytes, ctx.phones.resident.secretKey));
      check(late.type === 'decision', `genuine response after a bad one: the lock answered ${describeMessage(late)}`);
      expectDecision(late, 'REPLAYED', 'the genuine response to the burnt challenge');
      await s.close();
    },
  },
  {
    id: 'unlock.unknown-credential',
    title: 'a challenge for a credential the table does not hold is refused UNKNOWN_CREDENTIAL',
    spec: '§9.2 step 4',
    requirements: [],
    async run(ctx) {
      const s = await prepared(ctx);
      expectDecision((await unlock(s, 4242, ctx.phones.stranger.secretKey)).decision, 'UNKNOWN_CREDENTIAL', 'credential 4242');
      await s.close();
    },
  },
  {
    id: 'unlock.expired',
    title: 'a response after the challenge lifetime is refused CHALLENGE_EXPIRED',
    spec: '§9.2 step 3',
    requirements: [],
    async run(ctx) {
      const s = await prepared(ctx);
      const c = await s.request({ type: 'unlockRequest', credId: CRED.resident });
      check(c.type === 'challenge', `unlockRequest: the lock answered ${describeMessage(c)}`);
      await ctx.target.elapse(ctx.target.timing.challengeTtlMs + 1000);
      const d = await s.request(answerChallenge(c.bodyBytes, ctx.phones.resident.secretKey));
      check(d.type === 'decision', `late response: the lock answered ${describeMessage(d)}`);
      expectDecision(d, 'CHALLENGE_EXPIRED', `response ${ctx.target.timing.challengeTtlMs + 1000} ms after the challenge`);
      await s.close();
    },
  },

  // --- audit ------------------------------------------------------------------------------
  {
    id: 'audit.export-chain',
    title: 'auditExport is signed by the lock, its records chain from prevHash (genesis at seq 1) to the signed head without gaps, and logs the suite’s updates and unlocks',
    spec: '§10, §10.1',
    requirements: [],
    async run(ctx) {
      const s = await prepared(ctx);
      const { decision } = await unlock(s, CRED.resident, ctx.phones.resident.secretKey);
      const ex = await s.request({ type: 'auditRequest', fromSeq: 1 }, ctx.replyTimeoutMs * 2);
      check(ex.type === 'auditExport', `auditRequest: the lock answered ${describeMessage(ex)}`);
      let v: ReturnType<typeof verifyAuditExport>;
      try {
        v = verifyAuditExport(ex, ctx.target.lockId, ctx.target.devicePublicKey);
      } catch (e) {
        if (e instanceof ProtocolError) throw new CaseFailure(`audit export does not verify: ${e.reason} ${e.detail} (SPEC §10.1)`);
        throw e;
      }
      check(ex.records.length > 0 && v.firstSeq !== undefined, 'audit export from seq 1 holds no record, yet the suite has updated and unlocked the lock');
      check(v.firstSeq === Math.max(1, v.oldestSeq), `export from seq 1 starts at ${v.firstSeq}, the lock's oldest record is ${v.oldestSeq}`);
      if (v.firstSeq === 1) check(bytesEqual(ex.prevHash, AUDIT_GENESIS), `export from seq 1: prevHash ${toHex(ex.prevHash).slice(0, 16)}… is not the genesis hash (SPEC §10)`);
      check(v.lastSeq >= decision.auditSeq, `export ends at seq ${v.lastSeq}, before the decision's record ${decision.auditSeq}`);
      const records = ex.records.map((r) => auditRecordFromBytes(r));
      const logged = records.find((r) => r.seq === decision.auditSeq);
      check(logged?.event === 'access' && logged.credId === CRED.resident && logged.reason === 0, `record ${decision.auditSeq} named by the decision is ${logged ? `${logged.event} cred ${String(logged.credId)}` : 'missing'}, expected access GRANTED by credential ${CRED.resident}`);
      check(records.some((r) => r.event === 'updateApplied' && r.value === ctx.auth.version), `no updateApplied record for v${ctx.auth.version}`);
      // A second export from the middle must continue the same chain.
      const mid = records[Math.floor(records.length / 2)];
      if (mid !== undefined && mid.seq > v.firstSeq) {
        let h = ex.prevHash;
        for (const rb of ex.records) {
          if (auditRecordFromBytes(rb).seq === mid.seq) break;
          h = chainAudit(h, rb);
        }
        const tail = await s.request({ type: 'auditRequest', fromSeq: mid.seq });
        check(tail.type === 'auditExport', `auditRequest from ${mid.seq}: the lock answered ${describeMessage(tail)}`);
        check(bytesEqual(tail.prevHash, h), `export from seq ${mid.seq}: prevHash is not the chain hash after record ${mid.seq - 1} of the full export`);
        check(tail.records[0] !== undefined && bytesEqual(tail.records[0], ex.records[records.indexOf(mid)] as Uint8Array), `export from seq ${mid.seq} does not start with that record`);
      }
      await s.close();
    },
  },
  {
    id: 'audit.receipt-head',
    title: "a receipt's auditSeq/auditHead are the chain hash the audit export reaches at that record",
    spec: '§7, §10',
    requirements: [],
    async run(ctx) {
      const s = await prepared(ctx);
      const r = expectReceipt(ctx, s, await s.request({ type: 'receiptRequest' }), current(ctx), 'receiptRequest');
      const ex = await s.request({ type: 'auditRequest', fromSeq: r.body.auditSeq });
      check(ex.type === 'auditExport', `auditRequest: the lock answered ${describeMessage(ex)}`);
      const first = ex.records[0];
      check(first !== undefined && auditRecordFromBytes(first).seq === r.body.auditSeq, `export from seq ${r.body.auditSeq} does not start at that record`);
      check(bytesEqual(chainAudit(ex.prevHash, first), r.body.auditHead), `chain hash at seq ${r.body.auditSeq} from the export differs from the receipt's auditHead`);
      await s.close();
    },
  },

  // --- sessions ---------------------------------------------------------------------------
  {
    id: 'session.idle-timeout',
    title: 'a session link with no frame from the phone is closed after the idle timeout, with error SESSION_EXPIRED',
    spec: '§13.3',
    requirements: [],
    async run(ctx) {
      const s = await prepared(ctx);
      const idle = ctx.target.timing.idleTimeoutMs;
      // Slack for the lock's timer and the link: a deadline against a hang, not a tolerance.
      const within = idle + (ctx.target.transport === 'sim' ? 1500 : 5000);
      let m: Message;
      try {
        m = await s.conn.next(within);
      } catch (e) {
        throw new CaseFailure(`no SESSION_EXPIRED within ${within} ms of silence (idle timeout ${idle} ms): ${(e as Error).message}`);
      }
      expectError(m, 'SESSION_EXPIRED', `after ${idle} ms without a frame`);
      const closed = await Promise.race([s.conn.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5_000))]);
      check(closed, 'the lock did not drop the idle link within 5 s of SESSION_EXPIRED');
      await s.close();
    },
  },
  {
    id: 'session.lifetime',
    title: 'a session older than its lifetime is refused SESSION_EXPIRED',
    spec: '§13.3, §14.1',
    requirements: [],
    async run(ctx) {
      const s = await prepared(ctx);
      const life = ctx.target.timing.sessionLifetimeMs;
      if (ctx.target.instantTime) {
        await ctx.target.elapse(life + 1000);
        expectError(await s.request({ type: 'receiptRequest' }), 'SESSION_EXPIRED', `a request ${life + 1000} ms into the session`);
      } else {
        // Real time: keep the link busy (below the idle timeout) until the lifetime is over.
        const started = Date.now();
        const every = Math.max(1000, Math.floor(ctx.target.timing.idleTimeoutMs / 2));
        for (;;) {
          const m = await s.request({ type: 'receiptRequest' });
          if (m.type === 'error') {
            expectError(m, 'SESSION_EXPIRED', 'keep-alive request');
            check(Date.now() - started >= life - 5_000, `SESSION_EXPIRED after ${Date.now() - started} ms, before the ${life} ms lifetime`);
            break;
          }
          check(Date.now() - started < life + 10_000, `still answering ${Date.now() - started} ms into a session whose lifetime is ${life} ms`);
          await new Promise((r) => setTimeout(r, every));
        }
      }
      await s.close();
    },
  },
  // --- batch (§6.5): only for a lock whose hello offers it ----------------------------------
  {
    id: 'batch.in-order',
    title: 'a batch [signed time, delta, auditRequest] is answered by one batchReply [timeAck, receipt bound to the hello nonce, auditExport], in item order',
    spec: '§6.5',
    requirements: [],
    async run(ctx) {
      const s = await preparedForBatch(ctx);
      ctx.auth.now += 5;
      const time = timeMessage(ctx, { nonce: s.hello.nonce });
      const delta = updateBytes(ctx.auth.delta([{ op: 'put', entry: { credId: CRED.bulk, kind: 'phone', holder: 'staff', secret: bulkKey(ctx, 1), flags: 0 } }]));
      const m = await s.request({ type: 'batch', messages: [time, delta, encodeMessage({ type: 'auditRequest', fromSeq: 0 })] }, ctx.replyTimeoutMs * 2);
      check(m.type === 'batchReply', `batch: expected batchReply, the lock answered ${describeMessage(m)}`);
      check(m.replies.length === 3, `batchReply has ${m.replies.length} answers for 3 items (SPEC §6.5: one per item, in order)`);
      const [t, r, a] = m.replies.map((b) => decodeMessage(b));
      expectTimeAck(t as Message, ctx.auth.now, 'batch item 1 (signed time bound to the session nonce)');
      expectReceipt(ctx, s, r as Message, current(ctx), 'batch item 2 (delta)');
      check(a?.type === 'auditExport', `batch item 3 (auditRequest): expected auditExport, the lock answered ${a ? describeMessage(a) : 'nothing'}`);
      await s.close();
    },
  },
  {
    id: 'batch.refusal-ends',
    title: 'the first refused item ends a batch: later items are answered NOT_ATTEMPTED and nothing of them is done',
    spec: '§6.5',
    requirements: [],
    async run(ctx) {
      const s = await preparedForBatch(ctx);
      const before = current(ctx);
      const stale = timeMessage(ctx, { nonce: s.hello.nonce, time: ctx.auth.now - 600 });
      const good = updateBytes(ctx.auth.delta([{ op: 'put', entry: { credId: CRED.bulk, kind: 'phone', holder: 'staff', secret: bulkKey(ctx, 2), flags: 0 } }]));
      const m = await s.request({ type: 'batch', messages: [stale, good, encodeMessage({ type: 'receiptRequest' })] }, ctx.replyTimeoutMs * 2);
      check(m.type === 'batchReply', `batch: expected batchReply, the lock answered ${describeMessage(m)}`);
      check(m.replies.length === 3, `batchReply has ${m.replies.length} answers for 3 items`);
      const [t, u, r] = m.replies.map((b) => decodeMessage(b));
      expectError(t as Message, 'TIME_ROLLBACK', 'batch item 1 (signed time 10 minutes older than the newest)');
      expectError(u as Message, 'NOT_ATTEMPTED', 'batch item 2 (a valid delta after a refused item)');
      expectError(r as Message, 'NOT_ATTEMPTED', 'batch item 3 (receiptRequest after a refused item)');
      // The delta was not done: the lock still holds the table before it.
      expectReceipt(ctx, s, await s.request({ type: 'receiptRequest' }), before, 'receiptRequest after the batch (the not-attempted delta must not be applied)');
      // Sent again alone it is accepted: NOT_ATTEMPTED consumed nothing.
      expectReceipt(ctx, s, await s.request(good, ctx.replyTimeoutMs * 2), current(ctx), 'the not-attempted delta sent again alone');
      await s.close();
    },
  },
  {
    id: 'batch.malformed',
    title: 'a batch that is empty, holds a non-byte-string item or more than 4 items is answered by one error; an unlock item is UNEXPECTED_MESSAGE',
    spec: '§6.5',
    requirements: [],
    async run(ctx) {
      const s = await preparedForBatch(ctx);
      const before = current(ctx);
      const rr = encodeMessage({ type: 'receiptRequest' });
      expectError(await s.request(encode(cmap([[0, 19], [1, []]]))), 'MALFORMED', 'batch with no item');
      expectError(await s.request(encode(cmap([[0, 19], [1, [5]]]))), 'MALFORMED', 'batch whose item is an integer');
      expectError(await s.request(encode(cmap([[0, 19], [1, [rr, rr, rr, rr, rr]]]))), 'OVER_LIMIT', 'batch of 5 items (MAX_BATCH_ITEMS 4)');
      const m = await s.request({ type: 'batch', messages: [encodeMessage({ type: 'unlockRequest', credId: CRED.resident }), rr] });
      check(m.type === 'batchReply', `batch [unlockRequest, receiptRequest]: expected batchReply, the lock answered ${describeMessage(m)}`);
      const [u, r] = m.replies.map((b) => decodeMessage(b));
      expectError(u as Message, 'UNEXPECTED_MESSAGE', 'batch item unlockRequest');
      expectError(r as Message, 'NOT_ATTEMPTED', 'receiptRequest after the refused unlock item');
      await expectUnchanged(ctx, s, before, 'malformed batches');
    },
  },
  {
    id: 'session.second-connection',
    title: 'a second phone while a session is open gets error BUSY and is dropped; the open session is untouched',
    spec: '§13.3',
    requirements: [],
    async run(ctx) {
      const second = ctx.target.second;
      if (second === undefined) throw new CaseSkipped('needs a second phone (--second-transport)');
      const s = await prepared(ctx);
      const conn = await second.connect(ctx.target.lockId, { timeoutMs: ctx.target.transport === 'sim' ? 1000 : 10_000 });
      try {
        const m = await conn.next(ctx.replyTimeoutMs).catch((e: Error) => {
          throw new CaseFailure(`second phone: no message from the lock: ${e.message}`);
        });
        expectError(m, 'BUSY', 'second phone while a session is open');
        const dropped = await Promise.race([conn.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5_000))]);
        check(dropped, 'the lock did not drop the BUSY link within 5 s');
      } finally {
        await conn.disconnect().catch(() => undefined);
        second.forget(ctx.target.lockId);
      }
      expectReceipt(ctx, s, await s.request({ type: 'receiptRequest' }), current(ctx), 'the first phone after the second was refused');
      await s.close();
    },
  },
];

/**
 * The SPEC requirement ids each case checks ([R-…] in protocol/SPEC.md), by case id. Cases
 * on behaviour the SPEC states without a MUST id (session limits, §13.3) carry none.
 */
const REQUIREMENTS: Readonly<Record<string, readonly string[]>> = {
  'hello.fields': ['R-HELLO-1', 'R-HELLO-2', 'R-HELLO-3'],
  'hello.fresh-nonce': ['R-HELLO-1'],
  'update.snapshot-accept': ['R-UPD-4'],
  'update.delta-accept': ['R-UPD-4', 'R-UPD-5'],
  'update.version-jump': ['R-UPD-4', 'R-UPD-5'],
  'refuse.untrusted-key': ['R-UPD-2', 'R-UPD-3', 'R-SIG-1'],
  'refuse.bad-signature': ['R-UPD-2', 'R-UPD-3', 'R-SIG-1', 'R-SIG-3'],
  'refuse.wrong-lock': ['R-UPD-2', 'R-UPD-3'],
  'refuse.rollback-replay': ['R-UPD-2', 'R-UPD-3'],
  'refuse.rollback-same-version': ['R-UPD-2', 'R-UPD-3'],
  'refuse.broken-chain-version': ['R-UPD-2', 'R-UPD-3'],
  'refuse.broken-chain-digest': ['R-UPD-2', 'R-UPD-3'],
  'refuse.invalid-op': ['R-UPD-2', 'R-UPD-3', 'R-UPD-5'],
  'refuse.digest-mismatch': ['R-UPD-2', 'R-UPD-3'],
  'refuse.over-limit': ['R-UPD-3', 'R-SCHEMA-2', 'R-CBOR-2'],
  'refuse.malformed': ['R-UPD-3', 'R-SCHEMA-1'],
  'refuse.unknown-type': ['R-SCHEMA-5'],
  'refuse.unexpected-message': ['R-UPD-3'],
  'framing.resume': ['R-FRAME-1', 'R-FRAME-2'],
  'receipt.request': ['R-UPD-4'],
  'time.accept': ['R-TIME-1', 'R-TIME-2'],
  'time.rollback': ['R-TIME-1'],
  'time.bad-nonce': ['R-TIME-1'],
  'time.nonce-reuse': ['R-TIME-1'],
  'time.bad-signature': ['R-TIME-1', 'R-SIG-1'],
  'time.wrong-lock': ['R-TIME-1'],
  'time.lease': ['R-TIME-2', 'R-ACCESS-1'],
  'unlock.grant': ['R-ACCESS-1', 'R-ACCESS-2'],
  'unlock.replay': ['R-ACCESS-2'],
  'unlock.other-session': ['R-ACCESS-2'],
  'unlock.bad-response': ['R-ACCESS-2', 'R-SIG-1'],
  'unlock.unknown-credential': ['R-ACCESS-1'],
  'unlock.expired': ['R-ACCESS-2'],
  'audit.export-chain': ['R-AUDIT-1'],
  'audit.receipt-head': ['R-AUDIT-1'],
  'batch.in-order': ['R-BATCH-2', 'R-TIME-1'],
  'batch.refusal-ends': ['R-BATCH-2', 'R-BATCH-3', 'R-UPD-3'],
  'batch.malformed': ['R-BATCH-1', 'R-BATCH-3'],
};
for (const c of CASES) {
  const ids = REQUIREMENTS[c.id] ?? (c.id.startsWith('framing.mtu-') ? ['R-FRAME-1', 'R-FRAME-2'] : []);
  c.requirements.push(...ids.filter((q) => !c.requirements.includes(q)));
}
