// Framing test vectors (protocol/SPEC.md §13.2). Deterministic: no randomness at
// generation time; the 300-byte message comes from xorshift32 with a fixed seed.

import {
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

  return vectorFile(
    'locksync-gatt-framing',
    [
      'GATT framing (protocol/SPEC.md §13.2): frames of at most MTU-3 bytes.',
      'Valid groups: the frames a sender emits on a fresh connection (first seq 0) for a fixed message.',
      'Invalid group: frames fed in order to a fresh reassembler; the first error must have code expectedError.',
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
