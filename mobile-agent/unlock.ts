// Unlock by challenge–response, then a passive sync when the phone carries something newer
// for this lock (the field's apps sync after every unlock).
//
//   phone → unlockRequest{credId}; lock → challenge{lockId, sessionId, nonce, credId, expiry}
//   phone → unlockResponse{challenge bytes, Ed25519 signature}; lock → decision{granted, reason}

import { answerChallenge, type DecisionReason } from '../protocol/index';
import { candidateCredentials, RETRY_WITH_NEXT_CREDENTIAL, type PhoneCredential } from './credential';
import { AgentError } from './errors';
import type { LockConnector } from './link';
import { type SyncOptions, type SyncResult, syncOnConnection } from './sync';
import type { AuthorityApi } from './authority-client';
import type { CourierCache } from './courier';

export interface UnlockOptions {
  lockId: string;
  credential: PhoneCredential;
  connector: LockConnector;
  /** For the passive sync after the decision. */
  authority?: AuthorityApi;
  cache?: CourierCache;
  passiveSync?: boolean;
  messageTimeoutMs?: number;
  /** Test hook: tamper with the response before it leaves (bit flips, replays). */
  tamper?: (response: { challengeBytes: Uint8Array; signature: Uint8Array }) => { challengeBytes: Uint8Array; signature: Uint8Array };
}

export interface UnlockAttempt {
  credId: number;
  reason: DecisionReason;
}

export interface UnlockResult {
  lockId: string;
  /** The credential id that decided: the one granted, else the first one presented. */
  credId: number;
  granted: boolean;
  reason: DecisionReason;
  auditSeq: number;
  lockVersion: number;
  /**
   * Every credential id presented in this connection and the lock's answer, in order: the
   * agent moves to the next id the phone holds for this lock after UNKNOWN_CREDENTIAL or
   * EXPIRED (RETRY_WITH_NEXT_CREDENTIAL). When none is granted, the first answer stands.
   */
  attempts: UnlockAttempt[];
  /** Present when a passive sync ran after the decision. */
  sync?: Omit<SyncResult, 'attempts'>;
  /** The passive sync failed (the decision stands): why. */
  syncFailure?: AgentError;
}

export async function unlock(opts: UnlockOptions): Promise<UnlockResult> {
  const candidates = candidateCredentials(opts.credential, opts.lockId);
  if (candidates.length === 0) throw new AgentError('NOTHING_TO_DELIVER', `this credential holds nothing for lock ${opts.lockId}`);
  const timeout = opts.messageTimeoutMs ?? 10_000;
  const conn = await opts.connector.connect(opts.lockId);
  try {
    const hello = await conn.next(timeout);
    if (hello.type === 'error') throw new AgentError('REFUSED_BY_LOCK', `${hello.reason} ${hello.detail}`.trim(), hello.reason); // BUSY
    if (hello.type !== 'hello' || hello.lockId !== opts.lockId) throw new AgentError('PROTOCOL_VIOLATION', `expected hello from ${opts.lockId}`);
    const attempts: (UnlockAttempt & { auditSeq: number })[] = [];
    for (const credId of candidates) {
      await conn.send({ type: 'unlockRequest', credId });
      const ch = await conn.next(timeout);
      let decision;
      if (ch.type === 'challenge') {
        if (ch.body.lockId !== opts.lockId || ch.body.credId !== credId) throw new AgentError('PROTOCOL_VIOLATION', 'challenge names another lock or credential');
        let response = answerChallenge(ch.bodyBytes, opts.credential.secretKey);
        if (opts.tamper) response = { ...response, ...opts.tamper({ challengeBytes: response.challengeBytes, signature: response.signature }) };
        await conn.send(response);
        decision = await conn.next(timeout);
      } else decision = ch; // the lock may refuse before challenging (unknown credential, lockout)
      if (decision.type === 'error') throw new AgentError('REFUSED_BY_LOCK', `${decision.reason} ${decision.detail}`.trim(), decision.reason);
      if (decision.type !== 'decision') throw new AgentError('PROTOCOL_VIOLATION', `expected decision, got ${decision.type}`);
      attempts.push({ credId, reason: decision.reason, auditSeq: decision.auditSeq });
      if (decision.granted || !RETRY_WITH_NEXT_CREDENTIAL.has(decision.reason)) break;
    }
    const deciding = attempts.find((a) => a.reason === 'GRANTED') ?? (attempts[0] as UnlockAttempt & { auditSeq: number });
    const result: UnlockResult = {
      lockId: opts.lockId,
      credId: deciding.credId,
      granted: deciding.reason === 'GRANTED',
      reason: deciding.reason,
      auditSeq: deciding.auditSeq,
      lockVersion: hello.version,
      attempts: attempts.map(({ credId, reason }) => ({ credId, reason })),
    };
    const carriesNewer = (opts.cache?.newestVersion(opts.lockId) ?? 0) > hello.version;
    if (opts.passiveSync !== false && (carriesNewer || opts.authority)) {
      const syncOpts: SyncOptions = { lockId: opts.lockId, connector: opts.connector, messageTimeoutMs: timeout };
      if (opts.authority) syncOpts.authority = opts.authority;
      if (opts.cache) syncOpts.cache = opts.cache;
      // The decision is what the person asked for and it stands; a failed passive sync is
      // reported beside it, not instead of it.
      try {
        result.sync = await syncOnConnection(conn, hello, syncOpts);
      } catch (e) {
        if (!(e instanceof AgentError)) throw e;
        result.syncFailure = e;
      }
    }
    return result;
  } finally {
    if (conn.isOpen) await conn.disconnect().catch(() => undefined);
  }
}
