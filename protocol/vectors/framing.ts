// Framing test vectors (protocol/SPEC.md §13.2). Deterministic: no randomness at
// generation time; the 300-byte message comes from xorshift32 with a fixed seed.

import {
  FrameSender,
  encodeAbort,
  encodeAck,
  encodeHello,
  segmentMessage,
  FrameReassembler,
  FramingError,
  type ResumeState,
} from '../framing';
import { hex, vectorFile, type VectorFile, type VectorGroup, type VectorTest } from './shape';

export const FRAMING_VECTOR_SEED = 0x4c4f434b; // "LOCK"
export const FRAMING_VECTOR_MESSAGE_ID = 0x1234;
export const FRAMING_VECTOR_MTUS = [23, 185, 247, 517] as const;

/** n deterministic bytes: xorshift32(seed), low byte of each state. */
export function deterministicBytes(n: number, seed = FRAMING_VECTOR_SEED): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

const h = (...bytes: number[]): string => hex(Uint8Array.from(bytes));

interface InvalidCase {
  comment: string;
  flags: string[];
  maxMessageBytes: number;
  frames: string[];
  expectedError: string;
}

function invalidCases(msg: Uint8Array): InvalidCase[] {
  const f23 = segmentMessage(msg, 23, { messageId: FRAMING_VECTOR_MESSAGE_ID }).map(hex);
  const [s0 = '', d1 = '', d2 = ''] = f23;
  const c = (comment: string, flags: string[], frames: string[], expectedError: string, maxMessageBytes = 1048576): InvalidCase =>
    ({ comment, flags, maxMessageBytes, frames, expectedError });
  return [
    c('empty frame', ['Truncated'], [''], 'FRAME_TOO_SHORT'),
    c('DATA frame with no payload', ['Truncated'], [s0, '01'], 'FRAME_TOO_SHORT'),
    c('START truncated inside the total varint', ['Truncated'], [h(0x80, 0x00, 0x34, 0x12, 0xac)], 'FRAME_TOO_SHORT'),
    c('DATA before any START', ['Sequence'], [d1], 'UNEXPECTED_CONTINUATION'),
    c('frame skipped (seq 2 after seq 0)', ['Sequence'], [s0, d2], 'BAD_SEQUENCE'),
    c('duplicate DATA frame', ['Sequence'], [s0, d1, d1], 'BAD_SEQUENCE'),
    c('START first frame with seq 5 on a fresh connection', ['Sequence'], ['8005' + s0.slice(4)], 'BAD_SEQUENCE'),
    c('second START while the message is in progress', ['Sequence'], [s0, d1, '8002' + s0.slice(4)], 'UNEXPECTED_START'),
    c('declared total 300 > maxMessageBytes 256: refused before buffering', ['Limits'], [s0], 'MESSAGE_TOO_LARGE', 256),
    c('payload beyond declared total (total 4, 6 payload bytes)', ['Limits'], [h(0x80, 0x00, 0x01, 0x00, 0x04, 0x00, 1, 2, 3, 4, 5, 6)], 'LENGTH_OVERRUN'),
    c('non-canonical varint total (0x81 0x00)', ['Malformed'], [h(0x80, 0x00, 0x01, 0x00, 0x81, 0x00, 0x00, 0xaa)], 'MALFORMED_FRAME'),
    c('offset > total', ['Malformed'], [h(0x80, 0x00, 0x01, 0x00, 0x02, 0x03)], 'MALFORMED_FRAME'),
    c('reserved frame type 0x84', ['Malformed'], [h(0x84, 0x00)], 'UNKNOWN_FRAME_TYPE'),
    c('frame of 515 bytes (> 517 - 3)', ['Limits'], ['00'.repeat(515)], 'FRAME_TOO_LONG'),
    c('resuming START at offset 20 but the receiver holds nothing', ['Resume'], [h(0x80, 0x00, 0x34, 0x12, 0xac, 0x02, 0x14, 9, 9, 9)], 'RESUME_MISMATCH'),
    c('ACK frame given to the reassembler', ['Direction'], [h(0x81, 0x00)], 'UNEXPECTED_FRAME'),
    c('START of a 4-byte message with no payload byte (empty START payload while total > offset)', ['Truncated'], [h(0x80, 0x00, 0x01, 0x00, 0x04, 0x00)], 'FRAME_TOO_SHORT'),
    c('HELLO of framing version 2 given to the reassembler: decoding comes before routing', ['Direction', 'Version'], [h(0x82, 0x02, 0x20, 0x00, 0x80, 0x80, 0x40)], 'UNSUPPORTED_VERSION'),
    c('HELLO of framing version 1 given to the reassembler', ['Direction'], [h(0x82, 0x01, 0x20, 0x00, 0x80, 0x80, 0x40)], 'UNEXPECTED_FRAME'),
    c('START with sequence number 128', ['Malformed'], [h(0x80, 0x80, 0x01, 0x00, 0x01, 0x00, 0xaa)], 'MALFORMED_FRAME'),
  ];
}

/** Run frames through a fresh reassembler; returns the first error code (for self-checking). */
function firstError(frames: string[], maxMessageBytes: number): string | undefined {
  const r = new FrameReassembler({ maxMessageBytes });
  for (const f of frames) {
    try {
      r.push(new Uint8Array(Buffer.from(f, 'hex')));
    } catch (e) {
      if (e instanceof FramingError) return e.code;
      throw e;
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Processing scripts: one endpoint, its inputs in order, and what it must emit after each.

type Step = { input: string; expected: { frames: string[]; done: boolean } | { error: string } };

/** A sender with `msg` queued under `id`; each step feeds one frame from the peer (HELLO, ACK, ABORT, …)
 *  and then collects every frame the window allows. */
function senderScript(msg: Uint8Array, id: number, mtu: number, inputs: (string | ((out: string[][]) => string))[]): Step[] {
  const sender = new FrameSender({ mtu });
  sender.send(id, msg);
  const steps: Step[] = [];
  const outs: string[][] = [];
  for (const inp of inputs) {
    const input = typeof inp === 'string' ? inp : inp(outs);
    try {
      sender.onAck(Buffer.from(input, 'hex'));
      const frames = sender.nextFrames().map(hex);
      outs.push(frames);
      steps.push({ input, expected: { frames, done: sender.done } });
    } catch (e) {
      if (!(e instanceof FramingError)) throw e;
      steps.push({ input, expected: { error: e.code } });
      break;
    }
  }
  return steps;
}

type RStep = { input: string; expected: { ack: string | null; message: string | null } | { error: string; abort: string | null } };

function reassemblerScript(frames: string[], opts: { maxMessageBytes: number; window: number; ackEvery: number }): { hello: string; steps: RStep[] } {
  const r = new FrameReassembler(opts);
  const hello = hex(r.hello());
  const steps: RStep[] = [];
  for (const f of frames) {
    try {
      const out = r.push(Buffer.from(f, 'hex'));
      steps.push({ input: f, expected: { ack: out.ack ? hex(out.ack) : null, message: out.message ? hex(out.message) : null } });
    } catch (e) {
      if (!(e instanceof FramingError)) throw e;
      const abort = e.code === 'MESSAGE_TOO_LARGE' ? r.abortFrame() : undefined;
      steps.push({ input: f, expected: { error: e.code, abort: abort ? hex(abort) : null } });
      if (e.code !== 'MESSAGE_TOO_LARGE') break;
    }
  }
  return { hello, steps };
}

function scriptGroups(msg: Uint8Array): VectorGroup[] {
  const id = FRAMING_VECTOR_MESSAGE_ID;
  const hello = (window: number, maxMsg = 1048576, extra: Partial<ResumeState> = {}): string => hex(encodeHello({ version: 1, window, maxMessageBytes: maxMsg, ...extra }));
  const ack = (seq: number): string => hex(encodeAck(seq));
  const sender: VectorTest[] = [];
  const addS = (comment: string, flags: string[], m: Uint8Array, mtu: number, inputs: (string | ((out: string[][]) => string))[], requirements: string[], wantError?: string): void => {
    const steps = senderScript(m, id, mtu, inputs);
    const last = steps[steps.length - 1]?.expected;
    const got = last && 'error' in last ? last.error : undefined;
    if (got !== wantError) throw new Error(`sender script "${comment}": expected ${wantError}, got ${got}`);
    sender.push({ tcId: 0, comment, flags, result: wantError === undefined ? 'valid' : 'invalid', mtu, messageId: id, msg: hex(m), steps, requirements });
  };
  const F = ['R-FRAME-2'];
  // 300 bytes at MTU 23 = 17 frames. Window 4: the sender stalls after 4 unacknowledged frames.
  addS('window 4: 4 frames, stall; each cumulative ACK releases as many frames as it acknowledges', ['Window', 'Ack'], msg, 23,
    [hello(4), ack(1), ack(3), ack(7), ack(11), ack(12), ack(16)], F);
  addS('an ACK acknowledging nothing (seq of the last ACK again)', ['SenderError'], msg, 23, [hello(4), ack(1), ack(1)], F, 'WINDOW_VIOLATION');
  addS('an ACK for a frame never sent', ['SenderError'], msg, 23, [hello(4), ack(4)], F, 'WINDOW_VIOLATION');
  addS('an ACK right after HELLO, before any frame (127 = nothing sent yet)', ['SenderError'], msg, 23, [hello(4), ack(127)], F, 'WINDOW_VIOLATION');
  addS('ABORT for the message in flight', ['Abort', 'SenderError'], msg, 23, [hello(4), hex(encodeAbort(id, 'MESSAGE_TOO_LARGE'))], F, 'PEER_ABORTED');
  addS('ABORT for another message id: ignored, nothing sent', ['Abort'], msg, 23, [hello(4), hex(encodeAbort(id + 1, 'MESSAGE_TOO_LARGE'))], F);
  addS('HELLO whose maxMsg (256) is below the message total (300)', ['SenderError', 'Limits'], msg, 23, [hello(4, 256)], F, 'MESSAGE_TOO_LARGE');
  addS('HELLO of framing version 2', ['SenderError', 'Version'], msg, 23, ['82022000808040'], ['R-FRAME-1', ...F], 'UNSUPPORTED_VERSION');
  addS('a DATA frame given to the sender', ['SenderError', 'Direction'], msg, 23, [hello(4), '0001'], ['R-FRAME-1', ...F], 'UNEXPECTED_FRAME');
  addS('HELLO reports this message completed (its final ACK was lost): done, nothing sent', ['Resume'], msg, 23, [hello(32, 1048576, { completed: { messageId: id, total: 300 } })], F);
  addS('HELLO reports 108 bytes held: START at offset 108, then DATA', ['Resume'], msg, 23, [hello(32, 1048576, { partial: { messageId: id, total: 300, offset: 108 } }), (outs) => ack((outs[0]?.length ?? 1) - 1)], F);
  addS('a second HELLO mid-message (reconnect) holding 40 bytes restarts sequence numbers at 0 from offset 40', ['Resume'], msg, 23,
    [hello(4), ack(1), hello(4, 1048576, { partial: { messageId: id, total: 300, offset: 40 } })], F);
  // A phone's HELLO carries its resume token (flags bit 2, 8 bytes after the rest): the
  // lock keys what it holds of the phone's messages by it (§13.3); a sender reads the HELLO as any other.
  const token = Uint8Array.from([0x51, 0x3c, 0x9a, 0x07, 0xee, 0x12, 0x48, 0xb5]);
  const withToken = hello(4, 1048576, { resumeToken: token });
  addS("a phone's HELLO with a resume token (flags bit 2): read as any HELLO, window 4", ['Resume', 'ResumeToken'], msg, 23, [withToken, ack(3)], F);
  addS('HELLO with flags bit 2 but a 7-byte resume token', ['SenderError', 'ResumeToken'], msg, 23, [withToken.slice(0, -2)], ['R-FRAME-1', ...F], 'FRAME_TOO_SHORT');
  addS('HELLO with a reserved flag bit (bit 3) set', ['SenderError'], msg, 23, ['82010408808040'], ['R-FRAME-1', ...F], 'MALFORMED_FRAME');
  // Sequence wrap: 2,700 bytes at MTU 23 = 1 START (13 payload bytes: header 7) + DATA frames of 19: 143 frames, seq 0..127, 0..14.
  const big = deterministicBytes(2700, 0x57524150);
  addS('2,700-byte message, window 127: seq runs 0..126, an ACK of 126 releases 127, 0, 1, …; wraps 127 -> 0', ['SeqWrap', 'Window'], big, 23,
    [hello(127), ack(126), ack(14)], ['R-FRAME-3', ...F]);

  const reasm: VectorTest[] = [];
  const addR = (comment: string, flags: string[], frames: string[], opts: { maxMessageBytes: number; window: number; ackEvery: number }, requirements: string[], wantError?: string): void => {
    const { hello: h0, steps } = reassemblerScript(frames, opts);
    const errs = steps.flatMap((st) => ('error' in st.expected ? [st.expected.error] : []));
    if ((errs[errs.length - 1] ?? undefined) !== wantError) throw new Error(`reassembler script "${comment}": expected ${wantError}, got ${errs.join(',')}`);
    reasm.push({ tcId: 0, comment, flags, result: wantError === undefined ? 'valid' : 'invalid', ...opts, hello: h0, steps, requirements });
  };
  const bigFrames = segmentMessage(big, 23, { messageId: id }).map(hex);
  addR('2,700-byte message in 143 frames, ackEvery 16: ACKs at seq 15, 31, …, 127 (wrap), 15 … and the last frame', ['SeqWrap', 'Ack'], bigFrames,
    { maxMessageBytes: 1048576, window: 32, ackEvery: 16 }, ['R-FRAME-1', 'R-FRAME-3']);
  const f23 = segmentMessage(msg, 23, { messageId: id }).map(hex);
  addR('300-byte message, window 4, ackEvery 2: an ACK every second frame and after the last', ['Ack'], f23, { maxMessageBytes: 1048576, window: 4, ackEvery: 2 }, ['R-FRAME-1']);
  {
    const tooBig = f23.slice(0, 3);
    const small = segmentMessage(deterministicBytes(10, 1), 23, { messageId: id + 1 }).map(hex);
    addR('message of 300 > maxMessageBytes 256: ABORT, its DATA frames discarded silently, the next START accepted', ['Limits', 'Abort'],
      [...tooBig, ...small.map((f) => (f.startsWith('80') ? `8003${f.slice(4)}` : f))], { maxMessageBytes: 256, window: 32, ackEvery: 16 }, ['R-FRAME-1'], 'MESSAGE_TOO_LARGE');
  }
  return [
    { type: 'FramingSenderScript', tests: sender },
    { type: 'FramingReassemblerScript', tests: reasm },
  ];
}

export function framingVectors(): VectorFile {
  const msg = deterministicBytes(300);
  const groups: VectorGroup[] = [];

  for (const mtu of FRAMING_VECTOR_MTUS) {
    const frames = segmentMessage(msg, mtu, { messageId: FRAMING_VECTOR_MESSAGE_ID });
    const t: VectorTest = {
      tcId: 0,
      comment: `300-byte message, fresh connection (first seq 0), MTU ${mtu}: ${frames.length} frame(s)`,
      flags: ['Segmentation'],
      result: 'valid',
      msg: hex(msg),
      frames: frames.map(hex),
      requirements: ['R-FRAME-2', 'R-FRAME-3'],
    };
    groups.push({ type: 'FramingSegmentation', mtu, messageId: FRAMING_VECTOR_MESSAGE_ID, tests: [t] });
  }

  // Resume: receiver held 120 bytes when the link dropped; new connection at MTU 23.
  const held: ResumeState = {
    version: 1,
    window: 32,
    maxMessageBytes: 1048576,
    partial: { messageId: FRAMING_VECTOR_MESSAGE_ID, total: 300, offset: 120 },
  };
  const resumed = segmentMessage(msg, 23, { messageId: FRAMING_VECTOR_MESSAGE_ID, offset: 120 });
  groups.push({
    type: 'FramingResume',
    mtu: 23,
    messageId: FRAMING_VECTOR_MESSAGE_ID,
    tests: [
      {
        tcId: 0,
        comment: 'receiver held 120 of 300 bytes: HELLO it sends, and the frames the sender sends after it',
        flags: ['Resume'],
        result: 'valid',
        msg: hex(msg),
        heldBytes: 120,
        hello: hex(encodeHello(held)),
        frames: resumed.map(hex),
        requirements: ['R-FRAME-2'],
      },
      {
        tcId: 0,
        comment: 'fresh receiver HELLO (window 32, max 1 MiB, nothing held, last completed 0x1233/300)',
        flags: ['Hello'],
        result: 'valid',
        hello: hex(encodeHello({ version: 1, window: 32, maxMessageBytes: 1048576, completed: { messageId: 0x1233, total: 300 } })),
      },
      {
        tcId: 0,
        comment: 'cumulative ACK of seq 15',
        flags: ['Ack'],
        result: 'valid',
        ack: hex(encodeAck(15)),
      },
    ],
  });

  const invalid: VectorTest[] = invalidCases(msg).map((c) => {
    const got = firstError(c.frames, c.maxMessageBytes);
    if (got !== c.expectedError) throw new Error(`framing vector "${c.comment}": expected ${c.expectedError}, got ${got}`);
    return {
      tcId: 0,
      comment: c.comment,
      flags: c.flags,
      result: 'invalid',
      maxMessageBytes: c.maxMessageBytes,
      frames: c.frames,
      expectedError: c.expectedError,
      requirements: ['R-FRAME-1'],
    };
  });
  groups.push({ type: 'FramingReassemblyInvalid', tests: invalid });
  groups.push(...scriptGroups(msg));

  return vectorFile(
    'locksync-gatt-framing',
    [
      'GATT framing (protocol/SPEC.md §13.2): frames of at most MTU-3 bytes.',
      'Valid groups: the frames a sender emits on a fresh connection (first seq 0) for a fixed message.',
      'Invalid group: frames fed in order to a fresh reassembler; the first error must have code expectedError.',
      'FramingSenderScript: a sender (ATT MTU mtu) with msg queued as messageId; each step feeds one frame from the peer (input) to the sender,',
      'then takes every frame the window allows: expected.frames in order, and done = the message is fully acknowledged (or reported completed);',
      'or expected.error, the sender-side error that input raises (the script ends there).',
      'FramingReassemblerScript: a fresh reassembler (maxMessageBytes, window, ackEvery) whose connection-start HELLO is hello; each step feeds one frame:',
      'expected.ack (the ACK frame it sends, or null) and expected.message (a message delivered, or null); or expected.error, with abort = the ABORT frame sent',
      '(MESSAGE_TOO_LARGE only; the script continues after it, every other error ends the connection and the script).',
      'The 300-byte message is deterministicBytes(300): x = 0x4c4f434b; for each byte: x ^= x << 13; x ^= x >> 17; x ^= x << 5 (32-bit unsigned,',
      'logical shifts, in that order), then the byte is x & 0xff (the low byte of the new state). First bytes: 58 a9 66 b6.',
    ],
    {
      Segmentation: 'START frame then 1-byte-header DATA frames',
      Resume: 'HELLO with a partial, then a START at the held offset',
      Hello: 'HELLO frame encoding',
      Ack: 'ACK frame encoding',
      Truncated: 'frame ends early',
      Sequence: 'sequence number / frame order violations',
      Limits: 'size limits',
      Malformed: 'field encoding errors',
      Direction: 'frame sent to the wrong endpoint',
    },
    groups,
  );
}
