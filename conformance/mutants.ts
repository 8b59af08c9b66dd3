// Deliberately broken locks: the reference lock (firmware-sim) with one behaviour wrong,
// each a small override patched onto one Lock instance or its link server. Used only by
// the conformance suite's self-test (`locksync conformance --self-test`) and its tests:
// a conformance suite that passes a broken lock is not checking what it claims, so every
// variant here must make at least one case fail. The mutation score is caught / variants.
//
// Overrides reach into instance internals (private fields) on purpose: each mimics a
// plausible firmware bug at the place a C implementation would make it.

import {
  type Message,
  type TableState,
  type Update,
  ProtocolError,
  applyOps,
  applyUpdate,
  bytesEqual,
  decodeMessage,
  encodeMessage,
} from '../protocol';
import type { Lock } from '../firmware-sim/lock';
import type { IssuedChallenge } from '../firmware-sim/access';
import type { LockSession } from '../firmware-sim/session';
import type { LinkOptions, LockLinkServer } from '../ble/lock-server';
import type { SimLockParts } from './target';

export interface Mutant {
  id: string;
  /** The bug, as a firmware engineer would describe it. */
  description: string;
  apply(parts: SimLockParts): void;
}

type AcceptUpdate = Lock['acceptUpdate'];

/** Runs `fn` while the lock's `tableState` reads as `view(real)`. */
function withTableStateView<T>(lock: Lock, view: (ts: TableState) => TableState, fn: () => T): T {
  const proto = Object.getPrototypeOf(lock) as object;
  const getter = Object.getOwnPropertyDescriptor(proto, 'tableState')?.get;
  if (getter === undefined) throw new Error('Lock.tableState getter not found');
  Object.defineProperty(lock, 'tableState', { configurable: true, get: () => view(getter.call(lock) as TableState) });
  try {
    return fn();
  } finally {
    delete (lock as { tableState?: unknown }).tableState;
  }
}

/** Commits `state` as if applyUpdate had accepted `update` (the reference commit path, minus checks). */
function commitUnchecked(lock: Lock, update: Update, state: TableState, nonce: Uint8Array): Message {
  lock.storage.commit({ ...lock.durable, tableState: state, signedHead: update.head }, { time: lock.rtc.nowS(), event: 'updateApplied', value: state.head?.version ?? 0 }, update.type === 'delta' ? update.ops : undefined);
  return lock.receipt(nonce);
}

function patchUpdate(lock: Lock, wrap: (original: AcceptUpdate, update: Update, nonce: Uint8Array, claim: Parameters<AcceptUpdate>[2]) => Message): void {
  const original = lock.acceptUpdate.bind(lock);
  lock.acceptUpdate = (update, nonce, claim) => wrap(original, update, nonce, claim);
}

function refusalOf(lock: Lock, update: Update): ProtocolError | undefined {
  const r = applyUpdate(lock.tableState, update);
  return r.ok ? undefined : r.error;
}

/** Replaces one session method on every session the lock opens. */
function patchSessions(lock: Lock, patch: (s: LockSession) => void): void {
  const open = lock.openSession.bind(lock);
  lock.openSession = () => {
    const s = open();
    patch(s);
    return s;
  };
}

export const MUTANTS: Mutant[] = [
  {
    id: 'accepts-rollback',
    description: 'checks the version against 0 instead of its version floor: accepts an older (replayed) snapshot',
    apply({ lock }) {
      patchUpdate(lock, (original, update, nonce, claim) => withTableStateView(lock, (ts) => ({ ...ts, versionFloor: 0 }), () => original(update, nonce, claim)));
    },
  },
  {
    id: 'skips-digest-check',
    description: 'commits a delta without comparing the table it built with the signed digest',
    apply({ lock }) {
      patchUpdate(lock, (original, update, nonce, claim) => {
        const e = refusalOf(lock, update);
        if (e?.reason !== 'DIGEST_MISMATCH' || update.type !== 'delta') return original(update, nonce, claim);
        const ts = lock.tableState;
        const head = update.head.head;
        return commitUnchecked(lock, update, { ...ts, table: applyOps(ts.table, update.ops), head, versionFloor: head.version, newestIssuedAt: Math.max(ts.newestIssuedAt, head.issuedAt), leaseAnchor: Math.max(ts.leaseAnchor, head.issuedAt) }, nonce);
      });
    },
  },
  {
    id: 'leaks-partial-update',
    description: 'applies the ops of a delta to its table in place, then refuses it on the digest check (the version and head stay)',
    apply({ lock }) {
      patchUpdate(lock, (original, update, nonce, claim) => {
        const e = refusalOf(lock, update);
        if (e?.reason === 'DIGEST_MISMATCH' && update.type === 'delta') {
          const ts = lock.durable.tableState;
          lock.storage.commit({ ...lock.durable, tableState: { ...ts, table: applyOps(ts.table, update.ops) } });
        }
        return original(update, nonce, claim);
      });
    },
  },
  {
    id: 'wrong-error-code',
    description: 'reports a delta from the wrong parent (BROKEN_CHAIN) as ROLLBACK',
    apply({ lock }) {
      patchUpdate(lock, (original, update, nonce, claim) => {
        const m = original(update, nonce, claim);
        return m.type === 'error' && m.reason === 'BROKEN_CHAIN' ? { ...m, reason: 'ROLLBACK' } : m;
      });
    },
  },
  {
    id: 'batch-continues-after-refusal',
    description: 'handles every item of a batch even after one was refused (no NOT_ATTEMPTED): a later update is applied behind a refused time',
    apply({ lock }) {
      patchSessions(lock, (s) => {
        const dispatch = (s as unknown as { dispatch(m: Message): Message[] }).dispatch.bind(s);
        (s as unknown as { batch(items: Uint8Array[]): Message }).batch = (items) => ({
          type: 'batchReply',
          replies: items.map((bytes) => {
            try {
              return encodeMessage(dispatch(decodeMessage(bytes))[0] as Message);
            } catch (e) {
              if (!(e instanceof ProtocolError)) throw e;
              return encodeMessage({ type: 'error', reason: e.reason, detail: e.detail });
            }
          }),
        });
      });
    },
  },
  {
    id: 'batch-takes-any-item',
    description: 'does not check what a batch item is: an unlockRequest inside a batch is answered with a challenge',
    apply({ lock }) {
      patchSessions(lock, (s) => {
        const dispatch = (s as unknown as { dispatch(m: Message): Message[] }).dispatch.bind(s);
        const original = (s as unknown as { batch(items: Uint8Array[]): Message }).batch.bind(s);
        (s as unknown as { batch(items: Uint8Array[]): Message }).batch = (items) => {
          const first = items[0] !== undefined ? decodeMessage(items[0]) : undefined;
          if (first?.type !== 'unlockRequest') return original(items);
          const rest = original(items.slice(1));
          return { type: 'batchReply', replies: [encodeMessage(dispatch(first)[0] as Message), ...(rest.type === 'batchReply' ? rest.replies : [])] };
        };
      });
    },
  },
  {
    id: 'reuses-nonce',
    description: 'seeds its session nonce once at boot: every hello (and receipt) carries the same nonce',
    apply({ lock }) {
      let first: Uint8Array | undefined;
      const open = lock.openSession.bind(lock);
      lock.openSession = () => {
        const s = open();
        first ??= s.nonce;
        (s as { nonce: Uint8Array }).nonce = first;
        return s;
      };
    },
  },
  {
    id: 'ignores-time-nonce',
    description: 'accepts a nonce-bound signed time whatever nonce it names, any number of times',
    apply({ lock }) {
      const original = lock.acceptSignedTime.bind(lock);
      lock.acceptSignedTime = (m, session) => original(m, { ...session, nonce: m.body.nonce ?? session.nonce, used: false });
    },
  },
  {
    id: 'accepts-time-rollback',
    description: 'does not compare a signed time with the newest one it has seen',
    apply({ lock }) {
      const original = lock.acceptSignedTime.bind(lock);
      lock.acceptSignedTime = (m, session) => withTableStateView(lock, (ts) => ({ ...ts, newestIssuedAt: 0 }), () => original(m, session));
    },
  },
  {
    id: 'accepts-time-for-other-lock',
    description: 'does not check the lock id of a signed time',
    apply({ lock }) {
      const original = lock.acceptSignedTime.bind(lock);
      lock.acceptSignedTime = (m, session) => withTableStateView(lock, (ts) => ({ ...ts, lockId: m.body.lockId }), () => original(m, session));
    },
  },
  {
    id: 'ignores-lease',
    description: 'treats every LEASE credential as freshly attested',
    apply({ lock }) {
      const original = lock.accessContext.bind(lock);
      lock.accessContext = () => {
        const c = original();
        return { ...c, clockTrusted: true, leaseAnchorS: Math.floor(c.nowMs / 1000) };
      };
    },
  },
  {
    id: 'accepts-replayed-unlock',
    description: 'never marks a challenge as answered: the same unlock response opens the door again',
    apply({ lock }) {
      const original = lock.decideUnlockResponse.bind(lock);
      lock.decideUnlockResponse = (sessionId, issued, bytes, sig) => {
        for (const c of issued) c.used = false;
        return original(sessionId, issued, bytes, sig);
      };
    },
  },
  {
    id: 'accepts-expired-challenge',
    description: 'never expires a challenge',
    apply({ lock }) {
      const original = lock.decideUnlockResponse.bind(lock);
      lock.decideUnlockResponse = (sessionId, issued: IssuedChallenge[], bytes, sig) => {
        for (const c of issued) c.expiresAtMonotonicMs = Number.MAX_SAFE_INTEGER;
        return original(sessionId, issued, bytes, sig);
      };
    },
  },
  {
    id: 'wrong-audit-chain',
    description: "exports the chain hash after the first record as prevHash instead of the one before it",
    apply({ lock }) {
      const original = lock.auditExport.bind(lock);
      lock.auditExport = (fromSeq, max) => {
        const m = original(fromSeq, max);
        if (m.type !== 'auditExport' || m.records.length === 0) return m;
        const first = lock.storage.auditChainHashAt(fromSeq);
        return first !== undefined && !bytesEqual(first, m.prevHash) ? { ...m, prevHash: first } : m;
      };
    },
  },
  {
    id: 'no-resume',
    description: 'forgets a half-received message when the link drops: every reconnection restarts from byte 0',
    apply({ server }) {
      const original = server.connect.bind(server);
      server.connect = (mtu: number, write: (f: Uint8Array) => void, opts: LinkOptions = {}) => {
        // Held partials are keyed by the phone's resume token (or its address): forget them all.
        (server as unknown as { channels: Map<string, unknown> }).channels.clear();
        return original(mtu, write, opts);
      };
    },
  },
  {
    id: 'no-idle-timeout',
    description: 'keeps a silent session link open for ever',
    apply({ server }) {
      (server as unknown as { idleTimeoutMs: number }).idleTimeoutMs = 2 ** 31 - 1;
    },
  },
  {
    id: 'no-session-lifetime',
    description: 'never expires a session on its lock-clock lifetime',
    apply({ lock }) {
      const open = lock.openSession.bind(lock);
      lock.openSession = () => {
        const s: LockSession = open();
        (s as unknown as { openedAtMs: number }).openedAtMs = Number.MAX_SAFE_INTEGER;
        return s;
      };
    },
  },
  {
    id: 'second-phone-steals-session',
    description: 'lets a second phone take over the session instead of answering BUSY',
    apply({ server }) {
      const s = server as unknown as { current?: { link: { peer: string } }; connect: LockLinkServer['connect'] };
      const original = server.connect.bind(server);
      server.connect = (mtu: number, write: (f: Uint8Array) => void, opts: LinkOptions = {}) => {
        const holder = s.current;
        if (holder !== undefined && opts.peer !== undefined && holder.link.peer !== opts.peer) (holder.link as { peer: string }).peer = opts.peer;
        return original(mtu, write, opts);
      };
    },
  },
];

export function mutantById(id: string): Mutant | undefined {
  return MUTANTS.find((m) => m.id === id);
}
