import { describe, expect, it } from 'vitest';
import { MessageChannel } from './channel';
import { decodeFrame, segmentMessage } from './framing';
import { SeededRandom } from './random';

/** Two channels joined by an in-memory link that can be cut after N frames. */
function pair(mtu: number, opts: { cutAfterFrames?: number } = {}) {
  const received: { a: Uint8Array[]; b: Uint8Array[] } = { a: [], b: [] };
  let frames = 0;
  let linkUp = true;
  let cutArmed = true;
  const queue: [MessageChannel, Uint8Array][] = [];
  const deliver = (to: () => MessageChannel) => (f: Uint8Array) => {
    if (!linkUp) return;
    frames++;
    if (cutArmed && opts.cutAfterFrames !== undefined && frames > opts.cutAfterFrames) {
      linkUp = false;
      cutArmed = false; // one cut per test: the reconnect runs clean
      return;
    }
    queue.push([to(), f]);
  };
  const a: MessageChannel = new MessageChannel({ write: deliver(() => b), onMessage: (m) => received.a.push(m) });
  const b: MessageChannel = new MessageChannel({ write: deliver(() => a), onMessage: (m) => received.b.push(m) });
  const drain = () => {
    while (queue.length > 0) {
      const [ch, f] = queue.shift() as [MessageChannel, Uint8Array];
      ch.receiveFrame(f);
    }
  };
  const connect = () => {
    linkUp = true;
    frames = 0;
    a.linkUp(mtu);
    b.linkUp(mtu);
    drain();
  };
  const cut = () => {
    linkUp = false;
    queue.length = 0;
    a.linkDown();
    b.linkDown();
  };
  return { a, b, received, drain, connect, cut, isUp: () => linkUp };
}

describe('MessageChannel', () => {
  it('delivers messages both ways byte-exact at MTU 23 and 247', async () => {
    for (const mtu of [23, 247]) {
      const p = pair(mtu);
      p.connect();
      const rnd = new SeededRandom(`channel-${mtu}`);
      const m1 = rnd.bytes(5000);
      const m2 = rnd.bytes(777);
      const s1 = p.a.send(m1);
      const s2 = p.b.send(m2);
      p.drain();
      await Promise.all([s1, s2]);
      expect(p.received.b).toEqual([m1]);
      expect(p.received.a).toEqual([m2]);
    }
  });

  it('queues several messages and delivers them in order', async () => {
    const p = pair(185);
    p.connect();
    const msgs = [1, 200, 3000, 0].map((n, i) => new SeededRandom(i).bytes(n));
    const sends = msgs.map((m) => p.a.send(m));
    p.drain();
    await Promise.all(sends);
    expect(p.received.b).toEqual(msgs);
  });

  it('resumes a message after a link cut without resending what the peer holds', async () => {
    const p = pair(23, { cutAfterFrames: 40 });
    p.connect();
    const msg = new SeededRandom('resume').bytes(4000);
    const done = p.a.send(msg);
    p.drain();
    expect(p.isUp()).toBe(false); // the link died mid-message
    p.cut();
    const heldBefore = p.b.receivedPartialBytes;
    expect(heldBefore).toBeGreaterThan(0);
    expect(p.received.b).toHaveLength(0);
    const bytesBefore = p.a.stats.bytesOut;
    // Reconnect without a cut.
    p.connect();
    p.drain();
    await done;
    expect(p.received.b).toEqual([msg]);
    expect(p.a.stats.resumedBytes).toBe(heldBefore);
    // Only the remainder (plus headers) went out after the reconnect.
    expect(p.a.stats.bytesOut - bytesBefore).toBeLessThan(msg.length - heldBefore + 400);
  });

  it('close() rejects pending sends with ChannelClosedError', async () => {
    const p = pair(23);
    const pending = p.a.send(new Uint8Array(10));
    p.a.close('test');
    await expect(pending).rejects.toThrow(/test/);
  });
});

describe('MessageChannel after close()', () => {
  it('sends new messages on the next connection and never resumes the abandoned one', async () => {
    const got: Uint8Array[] = [];
    let peer: MessageChannel | undefined;
    const frames: Uint8Array[] = [];
    const a = new MessageChannel({ write: (f) => frames.push(f), onMessage: () => undefined });
    const b = new MessageChannel({ write: (f) => a.receiveFrame(f), onMessage: (m) => got.push(m) });
    peer = b;
    a.linkUp(23);
    b.linkUp(23);
    const abandoned = a.send(new Uint8Array(500).fill(1));
    abandoned.catch(() => undefined);
    a.close('session over');
    await expect(abandoned).rejects.toThrow('session over');
    a.linkDown();
    b.linkDown();
    frames.length = 0;
    a.linkUp(23);
    b.linkUp(23);
    const fresh = a.send(new Uint8Array([9, 9, 9]));
    while (frames.length > 0) peer.receiveFrame(frames.shift() as Uint8Array);
    await fresh;
    expect(got).toEqual([new Uint8Array([9, 9, 9])]);
  });
});

describe('MessageChannel link-up ordering', () => {
  it('sends a pending message when the peer HELLO arrived before linkUp()', async () => {
    const got: Uint8Array[] = [];
    const toB: Uint8Array[] = [];
    const toA: Uint8Array[] = [];
    const a = new MessageChannel({ write: (f) => toB.push(f), onMessage: () => undefined });
    const b = new MessageChannel({ write: (f) => toA.push(f), onMessage: (m) => got.push(m) });
    const sent = a.send(new Uint8Array(300).fill(7));
    b.linkUp(23); // b's HELLO reaches a first...
    while (toA.length > 0) a.receiveFrame(toA.shift() as Uint8Array);
    a.linkUp(23); // ...and only then does a learn its link is up
    for (let i = 0; i < 100 && (toA.length > 0 || toB.length > 0); i++) {
      while (toB.length > 0) b.receiveFrame(toB.shift() as Uint8Array);
      while (toA.length > 0) a.receiveFrame(toA.shift() as Uint8Array);
    }
    await sent;
    expect(got).toEqual([new Uint8Array(300).fill(7)]);
  });
});

describe('refused messages', () => {
  it('MESSAGE_TOO_LARGE is answered with ABORT and is not a protocol violation: the next message is received', () => {
    const out: Uint8Array[] = [];
    const got: Uint8Array[] = [];
    const violations: string[] = [];
    const refused: string[] = [];
    const ch = new MessageChannel({
      write: (f) => out.push(f),
      onMessage: (m) => got.push(m),
      onProtocolError: (e) => violations.push(e.code),
      onMessageRefused: (e) => refused.push(e.code),
      maxMessageBytes: 100,
    });
    ch.linkUp(23);
    // A sender that ignored the HELLO's limit: a 200-byte message, every frame of it.
    for (const f of segmentMessage(new SeededRandom('big').bytes(200), 23, { messageId: 4 })) ch.receiveFrame(f);
    expect(refused).toEqual(['MESSAGE_TOO_LARGE']);
    expect(violations).toEqual([]);
    const abort = out.map((f) => decodeFrame(f)).find((f) => f.type === 'abort');
    expect(abort).toEqual({ type: 'abort', messageId: 4, reason: 8 });
    // Then a message within the limit, on the same connection.
    const small = new SeededRandom('small').bytes(60);
    // After a refusal the reassembler takes the next START at whatever seq the sender is at.
    for (const f of segmentMessage(small, 23, { messageId: 5, firstSeq: 42 })) ch.receiveFrame(f);
    expect(got.map((m) => Buffer.from(m).toString('hex'))).toEqual([Buffer.from(small).toString('hex')]);
  });
});
