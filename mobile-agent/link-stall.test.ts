// connectionOver's waits all end (issue 16: every wait in the agent has a deadline). A send
// on a link that stays up while the lock acknowledges nothing fails with TIMEOUT after
// ACK_STALL_TIMEOUT_MS without an ACK — not after a fixed time: a long transfer that keeps
// being acknowledged is not cut — and the message stays queued for a resume.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MessageChannel, encodeMessage } from '../protocol/index';
import { AgentError } from './errors';
import { ACK_STALL_TIMEOUT_MS, LockChannels, connectionOver, type DisconnectInfo } from './link';

const auditRequest = encodeMessage({ type: 'auditRequest', fromSeq: 0 });

/** The phone's side of a lock whose frames go to `lockReads`; `closed` never settles unless resolved. */
function phoneLink(lockReads: (frame: Uint8Array) => void) {
  const channels = new LockChannels();
  const state = channels.open('lk-1');
  state.hooks.write = lockReads;
  let closeLink!: (d: DisconnectInfo) => void;
  const closed = new Promise<DisconnectInfo>((r) => (closeLink = r));
  const conn = connectionOver(state, { lockId: 'lk-1', mtu: 23, isOpen: () => true, closed, rssi: async () => -50, disconnect: async () => undefined });
  return { conn, state, closeLink };
}

describe('connectionOver: a send ends', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('with TIMEOUT when the lock never answers (no HELLO, no ACK) on a link that stays up', async () => {
    const { conn, state } = phoneLink(() => undefined);
    state.channel.linkUp(23);
    const sent = conn.sendRaw(auditRequest).then(
      () => 'acknowledged',
      (e: unknown) => e,
    );
    await vi.advanceTimersByTimeAsync(ACK_STALL_TIMEOUT_MS - 1);
    await vi.advanceTimersByTimeAsync(1);
    const outcome = await sent;
    expect(outcome).toBeInstanceOf(AgentError);
    expect((outcome as AgentError).reason).toBe('TIMEOUT');
  });

  it('not while the lock keeps acknowledging, however long the transfer takes', async () => {
    // A slow lock: it reads 16 frames every ACK_STALL_TIMEOUT_MS / 4 and acknowledges every 16.
    const held: Uint8Array[] = [];
    const { conn, state } = phoneLink((f) => held.push(f));
    const lock = new MessageChannel({ write: (f) => state.channel.receiveFrame(f), onMessage: () => undefined, window: 32 });
    state.channel.linkUp(23);
    lock.linkUp(23);
    const big = new Uint8Array(2000).fill(7); // 100 frames at MTU 23: longer than one stall period in all
    const startedAt = Date.now();
    let done = false;
    const sent = conn.sendRaw(big).then(() => (done = true));
    for (let i = 0; i < 40 && !done; i++) {
      await vi.advanceTimersByTimeAsync(ACK_STALL_TIMEOUT_MS / 4);
      for (const f of held.splice(0, 16)) lock.receiveFrame(f);
    }
    await sent;
    expect(done).toBe(true);
    expect(Date.now() - startedAt, 'the transfer outlived one stall period (fake clock)').toBeGreaterThan(ACK_STALL_TIMEOUT_MS);
  });
});
