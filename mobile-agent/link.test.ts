// The phone's lock channel across connections (link.ts): a lone update cut by a dropped
// link resumes on the next connection, and nothing else does — a request of an earlier
// session must never be answered in a new one, where its answer (which carries no session
// binding: decision, timeAck, auditAnchored…) would be read as the reply to the new
// session's own request. Found by the soak (seed 7, link drops on): an auditAnchor cut at
// the end of a sync resumed on the unlock's connection, whose unlockRequest then read
// `auditAnchored` where a challenge belonged.
import { describe, expect, it } from 'vitest';
import { type Message, decodeMessage, encodeMessage, PROTOCOL_VERSION, SeededRandom } from '../protocol/index';
import { messageSamples } from '../protocol/vectors/message-samples';
import { baseTable, snapshotOf } from '../protocol/vectors/world';
import { SimAir } from '../ble/sim';
import type { LockSessionHost } from '../ble/session-host';
import { isResumableRequest, LockChannels, MAX_IDLE_LOCK_CHANNELS, connectionOver, type DisconnectInfo } from './link';
import { AgentError } from './errors';

const LOCK = 'lk-link-1';

/** A lock that answers every request with an error naming its session and the request. */
function namingLock(): LockSessionHost & { received: { session: number; type: Message['type'] }[] } {
  const received: { session: number; type: Message['type'] }[] = [];
  let sessions = 0;
  return {
    lockId: LOCK,
    received,
    advert: () => ({ lockId: LOCK, version: 1, flags: 0 }),
    info: () => ({ lockId: LOCK, protocolVersion: PROTOCOL_VERSION, capabilities: 0, version: 1 }),
    openSession: () => {
      const session = ++sessions;
      const nonce = new SeededRandom(`${LOCK}/${session}`).bytes(16);
      return {
        hello: () =>
          encodeMessage({ type: 'hello', protocolVersion: 1, lockId: LOCK, version: 1, digest: new Uint8Array(32), nonce, lockTime: 1_800_000_000, capabilities: 0, auditSeq: 0, battery: 90 }),
        handle: (bytes) => {
          const m = decodeMessage(bytes);
          received.push({ session, type: m.type });
          return [encodeMessage({ type: 'error', reason: 'UNEXPECTED_MESSAGE', detail: `session ${session} answers ${m.type}` })];
        },
        close: () => undefined,
      };
    },
  };
}

const sample = (type: Message['type']): Uint8Array => {
  const s = messageSamples().find((x) => x.message.type === type);
  if (!s) throw new Error(`no sample ${type}`);
  return encodeMessage(s.message);
};

/** Frames a message takes at MTU 23 (20 bytes a frame, the START header included). */
const framesAt23 = (bytes: Uint8Array): number => Math.ceil((bytes.length + 12) / 20) + 2;

describe('lock channel across connections', () => {
  it('only a lone update (delta, snapshot) is resumable: every other request is bound to its session', () => {
    const kinds = new Map<string, boolean>();
    for (const s of messageSamples()) kinds.set(s.message.type, isResumableRequest(encodeMessage(s.message)));
    expect(kinds.get('delta')).toBe(true);
    expect(kinds.get('snapshot')).toBe(true);
    for (const t of ['signedTime', 'floorReset', 'unlockRequest', 'unlockResponse', 'auditRequest', 'auditAnchor', 'receiptRequest', 'batch'] as const) expect(kinds.get(t), t).toBe(false);
    expect(isResumableRequest(new Uint8Array([]))).toBe(false);
  });

  const anchor = sample('auditAnchor');
  // Every point the link can drop while the anchor is in flight: before the lock has all of
  // it, and after it has all of it but before its acknowledgement reached the phone.
  const dropPoints = Array.from({ length: framesAt23(anchor) }, (_, i) => i + 1);
  it.each(dropPoints)('a session-bound request cut after %i frames is not resumed: the next session answers only its own request', async (afterFrames) => {
    const air = new SimAir(23);
    const lock = namingLock();
    air.addLock(lock);
    const phone = air.connector('phone-1');
    const first = await phone.connect(LOCK);
    expect((await first.next(1000)).type).toBe('hello');
    air.dropLink(LOCK, afterFrames);
    const sent = await first.sendRaw(anchor).then(
      () => 'acknowledged',
      (e: unknown) => (e instanceof AgentError ? e.reason : String(e)),
    );
    if (sent === 'acknowledged') {
      // The whole anchor made it on this link; the link then drops before its answer.
      air.dropLink(LOCK);
    } else expect(sent).toBe('LINK_LOST');

    const second = await phone.connect(LOCK);
    expect((await second.next(1000)).type).toBe('hello');
    await second.send({ type: 'unlockRequest', credId: 1 });
    const answer = await second.next(1000);
    expect(answer.type === 'error' ? answer.detail : answer.type).toBe('session 2 answers unlockRequest');
    expect(lock.received.filter((r) => r.session === 2).map((r) => r.type)).toEqual(['unlockRequest']);
    await second.disconnect();
  });

  it('a lone update cut by a dropped link resumes on the next connection from the bytes the lock holds', async () => {
    const air = new SimAir(23);
    const lock = namingLock();
    air.addLock(lock);
    const phone = air.connector('phone-1');
    // A snapshot of some 80 frames: the lock acknowledges every 16, so a drop after the
    // first acknowledgement leaves part of it held at the lock.
    const snapshot = encodeMessage({ type: 'snapshot', update: snapshotOf(baseTable(40), { version: 1 }) });
    let cutAt: number | undefined;
    const first = await phone.connect(LOCK, {
      onProgress: (acked, total) => {
        if (cutAt === undefined && acked > 0 && acked < total) {
          cutAt = acked;
          queueMicrotask(() => air.dropLink(LOCK));
        }
      },
    });
    await first.next(1000);
    await expect(first.sendRaw(snapshot)).rejects.toMatchObject({ reason: 'LINK_LOST' });
    expect(cutAt).toBeGreaterThan(0);
    expect(lock.received).toEqual([]);

    const progress: number[] = [];
    const second = await phone.connect(LOCK, { onProgress: (acked) => void progress.push(acked) });
    expect((await second.next(1000)).type).toBe('hello');
    await second.drained();
    // The lock's HELLO said what it held: the transfer went on from there, not from byte 0.
    expect(progress[0]).toBeGreaterThanOrEqual(cutAt as number);
    expect(lock.received).toEqual([{ session: 2, type: 'snapshot' }]);
    const answer = await second.next(1000);
    expect(answer.type === 'error' ? answer.detail : answer.type).toBe('session 2 answers snapshot');
    await second.disconnect();
  });

  it(`keeps at most ${MAX_IDLE_LOCK_CHANNELS} idle lock channels, and never drops one with a message queued or a link up`, async () => {
    const channels = new LockChannels();
    const linkTo = (lockId: string) => {
      let end!: (d: DisconnectInfo) => void;
      const closed = new Promise<DisconnectInfo>((r) => (end = r));
      return { link: { lockId, mtu: 23, isOpen: () => true, closed, rssi: async () => -60, disconnect: async () => undefined }, end };
    };
    // A lone update queued for lock q (its link dropped before any frame went out).
    const queued = channels.open('q');
    const q = linkTo('q');
    const pendingUpdate = connectionOver(queued, q.link).sendRaw(sample('delta'));
    q.end({ reason: 0x08, description: 'supervision timeout' });
    await expect(pendingUpdate).rejects.toMatchObject({ reason: 'LINK_LOST' });
    // A connection to lock u that is still up.
    const up = channels.open('u');
    connectionOver(up, linkTo('u').link);
    for (let i = 0; i < 50; i++) {
      const st = channels.open(`idle-${i}`);
      const l = linkTo(`idle-${i}`);
      connectionOver(st, l.link);
      l.end({ reason: 0x13, description: 'disconnected by the phone' });
      await Promise.resolve();
      await Promise.resolve();
    }
    expect(channels.size).toBeLessThanOrEqual(MAX_IDLE_LOCK_CHANNELS + 3);
    expect(channels.open('q')).toBe(queued);
    expect(channels.open('u')).toBe(up);
  });
});

