import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  ATT_HEADER_BYTES,
  FRAMING_ERROR_CODES,
  FrameReassembler,
  FrameSender,
  FramingError,
  btpOverhead,
  decodeFrame,
  encodeAck,
  encodeHello,
  frameKind,
  framingOverhead,
  segmentMessage,
  smpOverhead,
  startHeaderLength,
  type FramingErrorCode,
} from './framing';
import { deterministicBytes, framingVectors } from './vectors/framing';
import { unhex } from './vectors/shape';
import { FC_RUNS, FUZZ_PROPERTIES, propertyTimeout, toFcProperty } from './fuzz/properties';

const MTUS = [23, 185, 247, 517] as const;

function codeOf(fn: () => unknown): FramingErrorCode | 'no error' {
  try {
    fn();
  } catch (e) {
    if (e instanceof FramingError) return e.code;
    throw e;
  }
  return 'no error';
}

/** Largest message that fits one START frame at this MTU. */
function oneFrameSize(mtu: number): number {
  let s = mtu - ATT_HEADER_BYTES;
  while (s + startHeaderLength(s, 0) > mtu - ATT_HEADER_BYTES) s--;
  return s;
}

interface Delivery {
  messages: Uint8Array[];
  frames: Uint8Array[];
  payloadBytes: number;
}

function payloadLen(f: Uint8Array): number {
  const d = decodeFrame(f);
  return d.type === 'data' || d.type === 'start' ? d.payload.length : 0;
}

/** Pump sender -> receiver with acks delivered immediately, until the sender is done. */
function pump(s: FrameSender, r: FrameReassembler, maxMtu = 517): Delivery {
  const out: Delivery = { messages: [], frames: [], payloadBytes: 0 };
  for (let guard = 0; !s.done; guard++) {
    if (guard > 1_000_000) throw new Error('no progress');
    const frames = s.nextFrames();
    if (frames.length === 0) throw new Error('sender stalled');
    for (const f of frames) {
      expect(f.length).toBeLessThanOrEqual(maxMtu - 3);
      out.frames.push(f);
      out.payloadBytes += payloadLen(f);
      const res = r.push(f);
      if (res.message) out.messages.push(res.message);
      if (res.ack) s.onAck(res.ack);
    }
  }
  return out;
}

function connect(s: FrameSender, r: FrameReassembler): void {
  s.onAck(r.hello());
}

describe('segmentation and round trips', () => {
  for (const mtu of MTUS) {
    const one = oneFrameSize(mtu);
    const cases: [string, number, number | undefined][] = [
      ['empty', 0, 1],
      ['1 byte', 1, 1],
      ['exactly one frame', one, 1],
      ['one byte over', one + 1, 2],
      ['100 KiB', 100 * 1024, undefined],
    ];
    for (const [name, size, frames] of cases) {
      it(`MTU ${mtu}: ${name} (${size} B)`, () => {
        const msg = deterministicBytes(size, 1000 + size);
        const seg = segmentMessage(msg, mtu, { messageId: 7 });
        if (frames !== undefined) expect(seg.length).toBe(frames);
        for (const f of seg) expect(f.length).toBeLessThanOrEqual(mtu - 3);
        // every frame but the last is full
        for (const f of seg.slice(0, -1)) expect(f.length).toBe(mtu - 3);
        // continuation frames carry a 1-byte header
        for (const f of seg.slice(1)) expect(f[0]).toBeLessThan(0x80);

        const s = new FrameSender({ mtu });
        const r = new FrameReassembler({ maxMessageBytes: 1 << 20 });
        connect(s, r);
        s.send(7, msg);
        const d = pump(s, r, mtu);
        expect(d.messages).toHaveLength(1);
        expect(Buffer.from(d.messages[0] as Uint8Array).equals(Buffer.from(msg))).toBe(true);
        expect(d.frames.map((f) => Buffer.from(f).toString('hex'))).toEqual(seg.map((f) => Buffer.from(f).toString('hex')));
        expect(s.done).toBe(true);
      });
    }
  }

  it('R-FRAME-3: several messages in a row on one connection (seq wraps past 127)', () => {
    const s = new FrameSender({ mtu: 23 });
    const r = new FrameReassembler({ window: 5 });
    connect(s, r);
    for (let i = 0; i < 6; i++) {
      const msg = deterministicBytes(700 + i * 13, i);
      s.send(i, msg);
      const d = pump(s, r, 23);
      expect(d.messages).toHaveLength(1);
      expect(Buffer.from(d.messages[0] as Uint8Array).equals(Buffer.from(msg))).toBe(true);
    }
  });

  it('both directions with the same code (lock notifies, phone writes)', () => {
    const phoneTx = new FrameSender({ mtu: 185 });
    const lockRx = new FrameReassembler();
    const lockTx = new FrameSender({ mtu: 185 });
    const phoneRx = new FrameReassembler();
    connect(phoneTx, lockRx);
    connect(lockTx, phoneRx);
    const req = deterministicBytes(3000, 1);
    const rsp = deterministicBytes(5000, 2);
    phoneTx.send(1, req);
    lockTx.send(1, rsp);
    expect(pump(phoneTx, lockRx).messages[0]).toEqual(req);
    expect(pump(lockTx, phoneRx).messages[0]).toEqual(rsp);
  });

  it('MTU change mid-stream: earlier frames stay valid, later frames use the new size', () => {
    const msg = deterministicBytes(2000, 3);
    const s = new FrameSender({ mtu: 23 });
    const r = new FrameReassembler({ window: 4 });
    connect(s, r);
    s.send(9, msg);
    const early = s.nextFrames();
    expect(early).toHaveLength(4);
    s.setMtu(247); // MTU exchange completes while 4 small frames are in flight
    let msgOut: Uint8Array | undefined;
    for (const f of early) {
      expect(f.length).toBeLessThanOrEqual(20);
      const res = r.push(f);
      if (res.ack) s.onAck(res.ack);
    }
    const later = s.nextFrames();
    expect(later.length).toBeGreaterThan(0);
    expect(later[0]?.length).toBe(244);
    for (let frames = later; frames.length > 0; frames = s.nextFrames()) {
      for (const f of frames) {
        const res = r.push(f);
        if (res.message) msgOut = res.message;
        if (res.ack) s.onAck(res.ack);
      }
    }
    expect(msgOut).toEqual(msg);
    expect(s.done).toBe(true);
  });
});

describe('window', () => {
  it('R-FRAME-2: sender stops at the window and resumes on a cumulative ack', () => {
    const s = new FrameSender({ mtu: 23 });
    const r = new FrameReassembler({ window: 8 });
    expect(r.ackEvery).toBe(4);
    s.send(1, deterministicBytes(1000, 4));
    expect(s.nextFrames()).toHaveLength(0); // no HELLO yet
    connect(s, r);
    const first = s.nextFrames();
    expect(first).toHaveLength(8);
    expect(s.nextFrames()).toHaveLength(0); // window exhausted
    const acks: Uint8Array[] = [];
    for (const f of first) {
      const res = r.push(f);
      if (res.ack) acks.push(res.ack);
    }
    expect(acks.map((a) => Array.from(a))).toEqual([
      [0x81, 3],
      [0x81, 7],
    ]);
    expect(s.nextFrames()).toHaveLength(0); // acks not delivered yet: still stopped
    s.onAck(acks[0] as Uint8Array);
    expect(s.unackedFrames).toBe(4);
    const more = s.nextFrames();
    expect(more).toHaveLength(4);
    expect(s.nextFrames()).toHaveLength(0);
    s.onAck(acks[1] as Uint8Array);
    expect(s.nextFrames()).toHaveLength(4);
  });

  it('ack for frames never sent, or a repeated ack, is a WINDOW_VIOLATION', () => {
    const s = new FrameSender({ mtu: 23 });
    const r = new FrameReassembler({ window: 8 });
    connect(s, r);
    s.send(1, deterministicBytes(1000, 5));
    s.nextFrames();
    expect(codeOf(() => s.onAck(encodeAck(8)))).toBe('WINDOW_VIOLATION');
    s.onAck(encodeAck(3));
    expect(codeOf(() => s.onAck(encodeAck(3)))).toBe('WINDOW_VIOLATION');
  });

  const WINDOW_RUNS = Math.max(200, Math.floor(FC_RUNS / 20));
  it('R-FRAME-2: sender never has more than window frames unacknowledged under random ack timing', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 0, max: 3000 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 64 }),
        (window, size, pattern) => {
          const s = new FrameSender({ mtu: 23 });
          const r = new FrameReassembler({ window });
          connect(s, r);
          const msg = deterministicBytes(size, size);
          s.send(2, msg);
          const pendingAcks: Uint8Array[] = [];
          let got: Uint8Array | undefined;
          for (let step = 0; !s.done; step++) {
            if (step > 100_000) return false;
            if (pattern[step % pattern.length] && pendingAcks.length > 0) s.onAck(pendingAcks.shift() as Uint8Array);
            if (s.done) break;
            const frames = s.nextFrames();
            if (frames.length === 0) {
              // stopped: only an ack can unblock it (the window or the final ack)
              if (pendingAcks.length === 0) return false; // would deadlock
              s.onAck(pendingAcks.shift() as Uint8Array);
              continue;
            }
            for (const f of frames) {
              if (s.unackedFrames > window) return false;
              const res = r.push(f);
              if (res.message) got = res.message;
              if (res.ack) pendingAcks.push(res.ack);
            }
            if (s.unackedFrames > window) return false;
          }
          return got !== undefined && Buffer.from(got).equals(Buffer.from(msg));
        },
      ),
      { numRuns: WINDOW_RUNS },
    );
  }, propertyTimeout(WINDOW_RUNS, 5));
});

describe('resume after disconnect', () => {
  // Message of 16 frames at MTU 23; window 4 (ack every 2).
  const msg = deterministicBytes(280, 42);
  const frameCount = segmentMessage(msg, 23).length;

  for (const persist of [false, true]) {
    for (const loseLastAck of [false, true]) {
      it(`every frame boundary (persist=${persist}, lose ack at cut=${loseLastAck}, then MTU 185)`, () => {
        expect(frameCount).toBe(16);
        for (let cut = 0; cut <= frameCount; cut++) {
          const s = new FrameSender({ mtu: 23 });
          let r = new FrameReassembler({ window: 4 });
          connect(s, r);
          s.send(0x4242, msg);
          const delivered: Uint8Array[] = [];
          let count = 0;
          let heldAtCut = 0;
          outer: for (;;) {
            const frames = s.nextFrames();
            if (frames.length === 0) break;
            for (const f of frames) {
              if (count === cut) break outer; // the link drops: this and later frames are lost
              count++;
              const res = r.push(f);
              if (res.message) delivered.push(res.message);
              if (res.ack && !(loseLastAck && count === cut)) s.onAck(res.ack);
            }
          }
          heldAtCut = r.heldBytes;
          const ackedAtCut = s.ackedBytes;
          expect(ackedAtCut).toBeLessThanOrEqual(delivered.length ? msg.length : heldAtCut);
          // disconnect
          s.disconnected();
          if (persist) r = new FrameReassembler({ window: 4, restore: r.snapshot() });
          s.setMtu(185); // the new connection negotiated a different MTU
          connect(s, r);
          const after = pump(s, r, 185);
          const all = [...delivered, ...after.messages];
          expect(all).toHaveLength(1);
          expect(Buffer.from(all[0] as Uint8Array).equals(Buffer.from(msg))).toBe(true);
          // never a full resend: exactly the bytes the receiver lacked are sent again
          const lacking = delivered.length ? 0 : msg.length - heldAtCut;
          expect(after.payloadBytes).toBe(lacking);
          if (cut > 0 && cut < frameCount) expect(after.payloadBytes).toBeLessThan(msg.length);
          if (delivered.length) expect(after.frames).toHaveLength(0);
        }
      });
    }
  }

  it('sender restarts from 0 when the receiver holds a different message', () => {
    const r = new FrameReassembler();
    const s1 = new FrameSender({ mtu: 23 });
    connect(s1, r);
    s1.send(1, deterministicBytes(200, 1));
    for (const f of s1.nextFrames().slice(0, 3)) r.push(f);
    expect(r.heldBytes).toBeGreaterThan(0);
    const s2 = new FrameSender({ mtu: 23 });
    const other = deterministicBytes(150, 2);
    s2.send(2, other);
    connect(s2, r);
    expect(pump(s2, r).messages[0]).toEqual(other);
  });

  it('HELLO round-trips the resume state', () => {
    const r = new FrameReassembler({ window: 9, maxMessageBytes: 5000 });
    const s = new FrameSender({ mtu: 23 });
    connect(s, r);
    s.send(0x0102, deterministicBytes(300, 7));
    for (const f of s.nextFrames().slice(0, 2)) r.push(f);
    const hello = r.hello();
    const d = decodeFrame(hello);
    expect(d).toEqual({ type: 'hello', state: r.resumeState() });
    expect(r.resumeState().partial).toEqual({ messageId: 0x0102, total: 300, offset: r.heldBytes });
    expect(frameKind(hello)).toBe('control');
  });
});

describe('typed errors', () => {
  const msg = deterministicBytes(300, 11);
  const frames = segmentMessage(msg, 23, { messageId: 5 });
  const [f0, f1, f2] = frames as [Uint8Array, Uint8Array, Uint8Array];
  const fresh = (max = 1 << 20) => new FrameReassembler({ maxMessageBytes: max });

  it('out-of-order and duplicate frames', () => {
    let r = fresh();
    r.push(f0);
    expect(codeOf(() => r.push(f2))).toBe('BAD_SEQUENCE');
    r = fresh();
    r.push(f0);
    r.push(f1);
    expect(codeOf(() => r.push(f1))).toBe('BAD_SEQUENCE');
    r = fresh();
    expect(codeOf(() => r.push(f1))).toBe('UNEXPECTED_CONTINUATION');
    r = fresh();
    r.push(f0);
    expect(codeOf(() => r.push(segmentMessage(msg, 23, { messageId: 6, firstSeq: 1 })[0] as Uint8Array))).toBe(
      'UNEXPECTED_START',
    );
  });

  it('truncated frames', () => {
    const r = fresh();
    expect(codeOf(() => r.push(new Uint8Array(0)))).toBe('FRAME_TOO_SHORT');
    for (let n = 1; n < 6; n++) expect(codeOf(() => fresh().push(f0.subarray(0, n)))).toBe('FRAME_TOO_SHORT');
    r.push(f0);
    expect(codeOf(() => r.push(f1.subarray(0, 1)))).toBe('FRAME_TOO_SHORT');
  });

  it('oversize message is refused from the first frame, before buffering, and the sender is told', () => {
    const r = fresh(256);
    const s = new FrameSender({ mtu: 23 });
    s.send(5, msg); // sender does not know the limit yet
    s.onAck(encodeHello({ version: 1, window: 8, maxMessageBytes: 1 << 20 })); // a lying/old HELLO
    const sent = s.nextFrames();
    expect(codeOf(() => r.push(sent[0] as Uint8Array))).toBe('MESSAGE_TOO_LARGE');
    expect(r.heldBytes).toBe(0);
    for (const f of sent.slice(1)) expect(r.push(f)).toEqual({}); // in-flight frames are discarded
    const abort = r.abortFrame();
    expect(abort).toBeDefined();
    expect(codeOf(() => s.onAck(abort as Uint8Array))).toBe('PEER_ABORTED');
    expect(s.done).toBe(true);
    // the connection carries on with the next message
    const small = deterministicBytes(100, 12);
    s.send(6, small);
    expect(pump(s, r).messages[0]).toEqual(small);
  });

  it('sender refuses locally once the HELLO told it the limit', () => {
    const r = fresh(256);
    const s = new FrameSender({ mtu: 23 });
    connect(s, r);
    expect(codeOf(() => s.send(1, msg))).toBe('MESSAGE_TOO_LARGE');
  });

  it('other refusals', () => {
    expect(codeOf(() => fresh().push(Uint8Array.of(0x84, 0)))).toBe('UNKNOWN_FRAME_TYPE');
    expect(codeOf(() => fresh().push(new Uint8Array(515)))).toBe('FRAME_TOO_LONG');
    expect(codeOf(() => fresh().push(Uint8Array.of(0x80, 0, 1, 0, 2, 0, 1, 2, 3)))).toBe('LENGTH_OVERRUN');
    expect(codeOf(() => fresh().push(Uint8Array.of(0x80, 0, 1, 0, 0x80, 0x00, 0)))).toBe('MALFORMED_FRAME');
    expect(codeOf(() => fresh().push(Uint8Array.of(0x80, 0x80, 1, 0, 1, 0, 0)))).toBe('MALFORMED_FRAME');
    expect(codeOf(() => fresh().push(Uint8Array.of(0x80, 0, 1, 0, 9, 4, 0)))).toBe('RESUME_MISMATCH');
    expect(codeOf(() => fresh().push(encodeAck(1)))).toBe('UNEXPECTED_FRAME');
    const s = new FrameSender({ mtu: 23 });
    expect(codeOf(() => s.onAck(f0))).toBe('UNEXPECTED_FRAME');
    expect(codeOf(() => s.onAck(Uint8Array.of(0x82, 2, 8, 0, 0)))).toBe('UNSUPPORTED_VERSION');
    expect(codeOf(() => s.onAck(Uint8Array.of(0x82, 1, 0, 0, 0)))).toBe('MALFORMED_FRAME');
    expect(codeOf(() => s.onAck(Uint8Array.of(0x81, 1, 0)))).toBe('MALFORMED_FRAME');
    expect(codeOf(() => new FrameSender({ mtu: 22 }))).toBe('BAD_ARGUMENT');
    s.send(1, msg);
    expect(codeOf(() => s.send(2, msg))).toBe('SENDER_BUSY');
  });

  it('resume with a wrong offset is a RESUME_MISMATCH', () => {
    const r = fresh();
    r.push(f0);
    r.push(f1);
    r.hello();
    const wrong = segmentMessage(msg, 23, { messageId: 5, offset: r.heldBytes - 1 })[0] as Uint8Array;
    expect(codeOf(() => r.push(wrong))).toBe('RESUME_MISMATCH');
    const right = segmentMessage(msg, 23, { messageId: 5, offset: r.heldBytes })[0] as Uint8Array;
    expect(r.push(right).message).toBeUndefined();
  });

  it('registry is small and every code is distinct', () => {
    expect(new Set(FRAMING_ERROR_CODES).size).toBe(FRAMING_ERROR_CODES.length);
  });
});

describe('fuzz: only FramingError ever escapes (properties shared with `npm run fuzz`)', () => {
  for (const p of FUZZ_PROPERTIES.filter((x) => x.group === 'framing')) {
    it(`${p.name} (${FC_RUNS} runs)`, () => {
      fc.assert(toFcProperty(p), { numRuns: FC_RUNS });
    }, propertyTimeout(FC_RUNS, p.msPerRunBudget));
  }
});

describe('vectors', () => {
  it('are deterministic', () => {
    expect(JSON.stringify(framingVectors())).toBe(JSON.stringify(framingVectors()));
  });

  it('agree with the implementation', () => {
    const v = framingVectors();
    expect(v.numberOfTests).toBeGreaterThan(15);
    const seen = new Set<number>();
    for (const g of v.testGroups) {
      for (const t of g.tests) {
        if (g.type === 'FramingSegmentation') {
          const mtu = g['mtu'] as number;
          seen.add(mtu);
          const msg = unhex(t['msg'] as string);
          expect(msg.length).toBe(300);
          const frames = (t['frames'] as string[]).map(unhex);
          expect(segmentMessage(msg, mtu, { messageId: g['messageId'] as number })).toEqual(frames);
          const r = new FrameReassembler();
          let out: Uint8Array | undefined;
          for (const f of frames) out = r.push(f).message ?? out;
          expect(out).toEqual(msg);
        } else if (g.type === 'FramingReassemblyInvalid') {
          const r = new FrameReassembler({ maxMessageBytes: t['maxMessageBytes'] as number });
          let code: string | undefined;
          for (const f of t['frames'] as string[]) {
            const c = codeOf(() => r.push(unhex(f)));
            if (c !== 'no error') {
              code = c;
              break;
            }
          }
          expect(code).toBe(t['expectedError']);
        }
      }
    }
    expect([...seen].sort((a, b) => a - b)).toEqual([23, 185, 247, 517]);
  });

  it('the 300-byte message at MTU 23 starts as documented in SPEC.md §13.2', () => {
    const msg = deterministicBytes(300);
    const f = segmentMessage(msg, 23, { messageId: 0x1234 });
    expect(f).toHaveLength(17);
    expect(Buffer.from(f[0] as Uint8Array).subarray(0, 7).toString('hex')).toBe('80003412ac0200');
    expect(f[1]?.[0]).toBe(1);
    expect(f[16]?.length).toBe(1 + (300 - 13 - 15 * 19));
    const r = new FrameReassembler();
    expect(Buffer.from(r.hello()).toString('hex')).toBe('82012000808040');
    const acks = f.map((x) => r.push(x).ack).filter((a) => a !== undefined);
    expect(acks.map((a) => Buffer.from(a).toString('hex'))).toEqual(['810f', '8110']);
    const r2 = new FrameReassembler();
    r2.hello();
    for (const x of f.slice(0, 6)) r2.push(x);
    expect(r2.heldBytes).toBe(108);
    expect(Buffer.from(r2.hello()).toString('hex')).toBe('820120018080403412ac026c');
    const resumed = segmentMessage(msg, 23, { messageId: 0x1234, offset: 108 });
    expect(Buffer.from(resumed[0] as Uint8Array).subarray(0, 7).toString('hex')).toBe('80003412ac026c');
    let out: Uint8Array | undefined;
    for (const x of resumed) out = r2.push(x).message ?? out;
    expect(out).toEqual(msg);
    expect(resumed).toHaveLength(11);
  });
});

describe('overhead', () => {
  for (const mtu of [23, 247]) {
    for (const size of [1024, 100 * 1024]) {
      it(`beats BTP and SMP at MTU ${mtu}, ${size} B`, () => {
        const ours = framingOverhead(size, mtu);
        const btp = btpOverhead(size, mtu);
        const smp = smpOverhead(size, mtu);
        expect(ours.onAirBytes).toBeLessThan(btp.onAirBytes);
        expect(ours.onAirBytes).toBeLessThan(smp.onAirBytes);
        // framing-only: 1 byte per continuation frame
        expect(ours.headerBytes).toBe(startHeaderLength(size, 0) + (ours.dataPdus - 1));
        // the model agrees with real segmentation
        expect(ours.dataPdus).toBe(segmentMessage(new Uint8Array(size), mtu).length);
      });
    }
  }
});
