// Decoding while a message arrives (CborStreamDecoder, MessageStreamDecoder) must give
// exactly what decoding the whole message gives — the value, every container callback,
// and for bad input the same error at the same place — however the bytes are split. The
// corpus: every CBOR and message vector, snapshots of hundreds of entries (valid, tampered,
// cut), and seeded mutations of them.
import { describe, expect, it } from 'vitest';
import cborVectors from '../fixtures/vectors/cbor-decoder.json';
import messageVectors from '../fixtures/vectors/messages.json';
import updateVectors from '../fixtures/vectors/updates.json';
import {
  type CborLimits,
  type CborValue,
  type Entry,
  type Message,
  CborError,
  CborStreamDecoder,
  MessageStreamDecoder,
  ProtocolError,
  SeededRandom,
  decode,
  decodeMessage,
  encodeEntry,
  encodeMessage,
  encodeTable,
  encode,
  cmap,
  updateToCbor,
  fromHex,
  tableDigest,
  toHex,
} from './index';
import { TestAuthority, swapEncodedEntries } from '../firmware-sim/test-authority';
import { TableIndexBuilder, buildTableIndex, tableIndex } from './access';
import { deriveSeed32, keyPairFromSeed } from './index';

type Outcome = { ok: true; value: CborValue; containers: string[] } | { ok: false; error: string; containers: string[] };

function describeError(e: unknown): string {
  if (e instanceof CborError) return `CborError ${e.code} @${e.offset}: ${e.message}`;
  if (e instanceof ProtocolError) return `ProtocolError ${e.reason}: ${e.detail}`;
  throw e;
}

function oneShot(input: Uint8Array, limits: Partial<CborLimits> = {}): Outcome {
  const containers: string[] = [];
  try {
    const value = decode(input, limits, (_v, raw, depth) => containers.push(`${depth}:${toHex(raw)}`));
    return { ok: true, value, containers };
  } catch (e) {
    return { ok: false, error: describeError(e), containers };
  }
}

/** The same input fed in pieces ending at `cuts` (ascending), then finished. */
function streamed(input: Uint8Array, cuts: number[], limits: Partial<CborLimits> = {}): Outcome {
  const containers: string[] = [];
  // The buffer fills from the front, as the framing's reassembler fills it: bytes past
  // `held` are not there yet (zeros), so nothing may be read from them.
  const buffer = new Uint8Array(input.length);
  try {
    const d = new CborStreamDecoder(input.length, limits, (_v, raw, depth) => containers.push(`${depth}:${toHex(raw)}`));
    for (const held of cuts) {
      buffer.set(input.subarray(0, held));
      d.advance(buffer, held);
    }
    buffer.set(input);
    return { ok: true, value: d.finish(buffer), containers };
  } catch (e) {
    return { ok: false, error: describeError(e), containers };
  }
}

function randomCuts(r: SeededRandom, length: number, maxPieces = 12): number[] {
  const n = r.int(0, maxPieces);
  const cuts: number[] = [];
  for (let i = 0; i < n; i++) cuts.push(r.int(0, length));
  return cuts.sort((a, b) => a - b);
}

function expectSame(input: Uint8Array, r: SeededRandom, limits: Partial<CborLimits> = {}, label = ''): void {
  const whole = oneShot(input, limits);
  const splits = [[], [0], [input.length], randomCuts(r, input.length), randomCuts(r, input.length, 40), Array.from({ length: Math.min(input.length, 64) }, (_, i) => i + 1)];
  for (const cuts of splits) {
    const got = streamed(input, cuts, limits);
    if (!whole.ok || !got.ok) expect({ label, cuts, ...got, value: undefined }).toEqual({ label, cuts, ...whole, value: undefined });
    else {
      expect(got.containers).toEqual(whole.containers);
      expect(got.value).toEqual(whole.value);
    }
  }
}

/** A snapshot message of `n` phone credentials (signed, as a lock receives it). */
function snapshotMessage(n: number, seed = 'stream'): Uint8Array {
  const a = new TestAuthority('lk-stream', deriveSeed32(seed, 'secret'), seed);
  const entries: Entry[] = [];
  for (let i = 1; i <= n; i++) entries.push(a.phoneEntry(i * 3, keyPairFromSeed(deriveSeed32(seed, `phone:${i}`)).publicKey, i % 7 === 0 ? { holder: 'guest', parent: 3 } : {}));
  a.delta(entries.map((entry) => ({ op: 'put' as const, entry })));
  return TestAuthority.message(a.snapshot());
}

function vectorInputs(): { input: Uint8Array; limits: Partial<CborLimits>; label: string }[] {
  const out: { input: Uint8Array; limits: Partial<CborLimits>; label: string }[] = [];
  for (const g of cborVectors.testGroups)
    for (const t of g.tests as { tcId: number; input: string; limits?: Partial<CborLimits> }[]) out.push({ input: fromHex(t.input), limits: t.limits ?? {}, label: `cbor ${t.tcId}` });
  for (const g of [...messageVectors.testGroups, ...updateVectors.testGroups])
    for (const t of g.tests as { tcId: number; msg?: string }[]) if (typeof t.msg === 'string') out.push({ input: fromHex(t.msg), limits: {}, label: `${g.type} ${t.tcId}` });
  return out;
}

describe('CborStreamDecoder: the whole-input decoder, fed piece by piece', () => {
  it('every vector decodes (or fails) exactly as decode() does, however it is split', () => {
    const r = new SeededRandom('stream-decode/vectors');
    const inputs = vectorInputs();
    expect(inputs.length).toBeGreaterThan(150);
    for (const v of inputs) if (v.input.length > 0) expectSame(v.input, r, v.limits, v.label);
  });

  it('seeded mutations of a snapshot (flipped, cut, grown) fail at the same place with the same error', () => {
    const seed = 'stream-decode/mutations';
    const r = new SeededRandom(seed);
    const base = snapshotMessage(40);
    for (let i = 0; i < 300; i++) {
      const m = new Uint8Array(base);
      const kind = i % 3;
      let input: Uint8Array = m;
      if (kind === 0) m[r.int(0, m.length - 1)] = r.int(0, 255);
      else if (kind === 1) input = m.subarray(0, r.int(1, m.length - 1));
      else input = new Uint8Array([...m, ...r.bytes(r.int(1, 4))]);
      expectSame(input, r, {}, `${seed} #${i}`);
    }
  });

  it('a 1,000-entry snapshot fed frame by frame gives decode()\'s value and containers', () => {
    const msg = snapshotMessage(1000);
    const cuts: number[] = [];
    for (let held = 244; held < msg.length; held += 244) cuts.push(held);
    const whole = oneShot(msg);
    const got = streamed(msg, cuts);
    if (!got.ok || !whole.ok) throw new Error(`expected both to decode: ${JSON.stringify([got, whole])}`);
    expect(got.containers).toEqual(whole.containers);
    expect(got.value).toEqual(whole.value);
  });

  it('refuses by the total size before any byte, and never reads past the bytes held', () => {
    expect(() => new CborStreamDecoder(3 * 1024 * 1024)).toThrow(/SIZE_LIMIT|bytes/);
    expect(() => new CborStreamDecoder(0)).toThrow(CborError);
    // An array announcing more items than the whole input could hold is refused when its
    // header is read, as decode() refuses it — before the items arrive.
    const d = new CborStreamDecoder(4);
    const buf = new Uint8Array([0x99, 0x01, 0x00, 0x00]);
    expect(() => d.advance(buf, 3)).toThrow(/TRUNCATED|cannot fit/);
    // Held bytes only: a string whose bytes are not all in waits, then completes.
    const s = new CborStreamDecoder(4);
    const sb = new Uint8Array(4);
    sb.set([0x43, 0x61]);
    s.advance(sb, 2);
    expect(s.decodedBytes).toBe(0);
    sb.set([0x43, 0x61, 0x62, 0x63]);
    expect(s.finish(sb)).toEqual(new Uint8Array([0x61, 0x62, 0x63]));
  });
});

describe('MessageStreamDecoder: decodeMessage for a message that is still arriving', () => {
  function outcome(f: () => Message): { ok: true; m: Message } | { ok: false; error: string } {
    try {
      return { ok: true, m: f() };
    } catch (e) {
      return { ok: false, error: describeError(e) };
    }
  }

  function fedThenFinished(bytes: Uint8Array, cuts: number[], onEntry?: (e: Entry) => void): { ok: true; m: Message } | { ok: false; error: string } {
    const buffer = new Uint8Array(bytes.length);
    const d = new MessageStreamDecoder(buffer, onEntry);
    for (const held of cuts) {
      buffer.set(bytes.subarray(0, held));
      d.feed(held);
    }
    buffer.set(bytes);
    return outcome(() => d.finish());
  }

  it('a snapshot read entry by entry gives decodeMessage\'s message: same entries, same order, same encodings', () => {
    const msg = snapshotMessage(600);
    const seen: Entry[] = [];
    const cuts: number[] = [];
    for (let held = 244; held < msg.length; held += 244) cuts.push(held);
    const got = fedThenFinished(msg, cuts, (e) => seen.push(e));
    const whole = decodeMessage(msg);
    if (!got.ok || got.m.type !== 'snapshot' || got.m.update.type !== 'snapshot' || whole.type !== 'snapshot' || whole.update.type !== 'snapshot') throw new Error('expected snapshots');
    expect(got.m).toEqual(whole);
    const table = got.m.update.table;
    expect([...table.entries.keys()]).toEqual([...whole.update.table.entries.keys()]);
    // The entries were read as they arrived, and are the table's own objects.
    expect(seen.length).toBe(600);
    expect([...table.entries.values()].every((e, i) => e === seen[i])).toBe(true);
    // The bytes each entry came in are its encoding (the digest reuses them).
    for (const e of table.entries.values()) expect(toHex(encodeEntry(e))).toBe(toHex(encodeEntry({ ...e })));
    expect(encodeMessage(got.m)).toEqual(msg);
  });

  it('every message vector, valid or refused, comes out of finish() as out of decodeMessage, however it is split', () => {
    const r = new SeededRandom('stream-decode/messages');
    for (const v of vectorInputs().filter((x) => !x.label.startsWith('cbor'))) {
      const whole = outcome(() => decodeMessage(v.input));
      for (const cuts of [[], randomCuts(r, v.input.length), randomCuts(r, v.input.length, 40)]) expect({ label: v.label, ...fedThenFinished(v.input, cuts) }).toEqual({ label: v.label, ...whole });
    }
  });

  it('a tampered snapshot is refused by finish() with decodeMessage\'s reason and detail (entries out of order, an entry that does not read, cut, trailing bytes)', () => {
    const seed = 'stream-decode/tampered';
    const r = new SeededRandom(seed);
    const msg = snapshotMessage(300);
    const whole = decodeMessage(msg);
    if (whole.type !== 'snapshot' || whole.update.type !== 'snapshot') throw new Error('expected a snapshot');
    const entries = [...whole.update.table.entries.values()];
    const bytesOf = (e: Entry) => encodeEntry(e);
    const at = (e: Entry) => Buffer.from(msg).indexOf(Buffer.from(bytesOf(e)));
    // Two neighbouring entries swapped (same length: both are phone entries of one shape).
    const swapped = swapEncodedEntries(msg, entries[10] as Entry, entries[11] as Entry);
    // An entry whose kind is out of range (reads as CBOR, not as an entry).
    const badKind = new Uint8Array(msg);
    const kindAt = at(entries[200] as Entry) + 1 + 1 + bytesOf(entries[200] as Entry).subarray(1).indexOf(0x02) + 1;
    badKind[kindAt] = 0x17;
    const cases: [string, Uint8Array][] = [
      ['swapped', swapped],
      ['bad kind', badKind],
      ['cut', msg.subarray(0, msg.length - 5)],
      ['trailing', new Uint8Array([...msg, 0x00])],
    ];
    for (let i = 0; i < 50; i++) {
      const m = new Uint8Array(msg);
      const at8 = r.int(0, m.length - 1);
      m[at8] = (m[at8] as number) ^ (1 << r.int(0, 7));
      cases.push([`${seed} flip #${i}`, m]);
    }
    for (const [label, bytes] of cases) {
      const expected = outcome(() => decodeMessage(bytes));
      expect({ label, ...fedThenFinished(bytes, randomCuts(r, bytes.length, 30)) }).toEqual({ label, ...expected });
    }
    expect(outcome(() => decodeMessage(swapped))).toMatchObject({ ok: false, error: expect.stringContaining('strictly ascending') });
  });

  it('a received table is encoded from the bytes it came in — the very bytes encodeTable gives — and callers get their own copy', () => {
    const msg = snapshotMessage(500);
    for (const m of [decodeMessage(msg), fedThenFinished(msg, frameCutsOf(msg.length))]) {
      const message = 'ok' in m ? (m.ok ? m.m : undefined) : m;
      if (message?.type !== 'snapshot' || message.update.type !== 'snapshot') throw new Error('expected a snapshot');
      const received = message.update.table;
      // The same table as a fresh object: encodeTable computes it entry by entry.
      const fresh = { entries: new Map(received.entries), keyPolicies: new Map(received.keyPolicies), policy: received.policy };
      expect(toHex(encodeTable(received))).toBe(toHex(encodeTable(fresh)));
      expect(toHex(tableDigest(received))).toBe(toHex(tableDigest(fresh)));
      const copy = encodeTable(received);
      copy[0] = 0;
      expect(encodeTable(received)[0]).toBe(0xa3);
    }
  });
});

function frameCutsOf(length: number): number[] {
  const cuts: number[] = [];
  for (let held = 244; held < length; held += 244) cuts.push(held);
  return cuts;
}

describe('a snapshot message is encoded with its table spliced in', () => {
  it('byte for byte what encoding the whole CBOR tree gives: with and without certificates, empty and 2,000-entry tables, every vector snapshot', () => {
    const generic = (m: Message) => {
      if (m.type !== 'snapshot') throw new Error('expected a snapshot');
      return encode(cmap([[0, 4], [1, updateToCbor(m.update)]]));
    };
    const seed = 'snapshot-splice';
    const snapshots: Message[] = [];
    for (const n of [0, 1, 2000]) {
      const a = new TestAuthority('lk-splice', deriveSeed32(seed, 'secret'), seed);
      const entries: Entry[] = [];
      for (let i = 1; i <= n; i++) entries.push(a.phoneEntry(i, keyPairFromSeed(deriveSeed32(seed, `p${i}`)).publicKey, i % 5 === 0 ? { holder: 'guest', parent: 1 } : {}));
      if (n > 0) a.delta(entries.map((entry) => ({ op: 'put' as const, entry })));
      snapshots.push({ type: 'snapshot', update: a.snapshot() });
      a.rotateOnlineKey(`${seed}/online`, 1);
      snapshots.push({ type: 'snapshot', update: a.snapshot() });
    }
    for (const g of updateVectors.testGroups)
      for (const t of g.tests as { msg?: string }[]) {
        if (typeof t.msg !== 'string') continue;
        try {
          const m = decodeMessage(fromHex(t.msg));
          if (m.type === 'snapshot') snapshots.push(m);
        } catch {
          // a refused vector: nothing to re-encode
        }
      }
    expect(snapshots.length).toBeGreaterThan(8);
    for (const m of snapshots) expect(toHex(encodeMessage(m))).toBe(toHex(generic(m)));
  });
});

describe('the index built while a snapshot arrives', () => {
  it('is given to the table made of the very entries it indexed, equal to the full build, and to no other table', () => {
    const msg = snapshotMessage(400);
    const buffer = new Uint8Array(msg.length);
    let builder: TableIndexBuilder | undefined;
    const d = new MessageStreamDecoder(buffer, (e) => builder?.add(e));
    builder = new TableIndexBuilder(d.entries);
    for (const held of frameCutsOf(msg.length)) {
      buffer.set(msg.subarray(0, held));
      d.feed(held);
    }
    buffer.set(msg);
    const m = d.finish();
    if (m.type !== 'snapshot' || m.update.type !== 'snapshot') throw new Error('expected a snapshot');
    const table = m.update.table;
    const copy = { entries: new Map(table.entries), keyPolicies: table.keyPolicies, policy: table.policy };
    expect(builder.adoptFor(copy)).toBe(false);
    expect(builder.adoptFor(table)).toBe(true);
    const shape = (ix: ReturnType<typeof buildTableIndex>) => [...ix.bySecret].map(([k, l]) => [k, l.map((e) => e.credId)]).sort();
    expect(shape(tableIndex(table))).toEqual(shape(buildTableIndex(table)));
    expect(tableIndex(table).bySecret.size).toBe(400);
  });
});

