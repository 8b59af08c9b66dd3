// The lock decodes a large request while it arrives (LockSession.receiving) and judges it
// only when it is whole: the answer, the flash and the secret index must be exactly those of
// a lock that got the same bytes in one piece — for a good snapshot and for every kind of
// bad one — and a refused snapshot leaves the flash byte for byte as it was.
import { describe, expect, it } from 'vitest';
import { type Entry, type Message, SeededRandom, answerChallenge, decodeMessage, deriveSeed32, encodeEntry, encodeMessage, keyPairFromSeed, toHex } from '../protocol/index';
import { buildTableIndex, tableIndex } from './access';
import { STREAM_DECODE_MIN_BYTES } from './session';
import { TestAuthority, createTestRig, swapEncodedEntries, type TestRig } from './test-authority';

const SEED = 'stream-receive';

/** A rig and the snapshot message bringing it `n` phone credentials. */
function rigWithSnapshot(n: number): { rig: TestRig; message: Uint8Array; entries: Entry[] } {
  const rig = createTestRig({ seed: SEED });
  const entries: Entry[] = [];
  for (let i = 1; i <= n; i++) entries.push(rig.auth.phoneEntry(i * 2, keyPairFromSeed(deriveSeed32(SEED, `phone:${i}`)).publicKey));
  rig.auth.delta(entries.map((entry) => ({ op: 'put' as const, entry })));
  return { rig, message: TestAuthority.message(rig.auth.snapshot()), entries };
}

/** Handle `bytes` the way a transport does: announced piece by piece (ending at `cuts`) into the buffer handle() then gets. */
function handleArriving(rig: TestRig, bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const s = rig.lock.openSession();
  const buffer = new Uint8Array(bytes.length);
  for (const held of cuts) {
    buffer.set(bytes.subarray(0, held));
    s.receiving(buffer, held);
  }
  buffer.set(bytes);
  const out = s.handle(buffer);
  s.close();
  return out;
}

function handleWhole(rig: TestRig, bytes: Uint8Array): Uint8Array[] {
  const s = rig.lock.openSession();
  const out = s.handle(bytes);
  s.close();
  return out;
}

function unlock(rig: TestRig, credId: number, sk: Uint8Array): Message {
  const s = rig.lock.openSession();
  const c = decodeMessage(s.handle(encodeMessage({ type: 'unlockRequest', credId }))[0] as Uint8Array);
  if (c.type !== 'challenge') throw new Error(`expected a challenge, got ${c.type}`);
  const d = decodeMessage(s.handle(encodeMessage(answerChallenge(c.bodyBytes, sk)))[0] as Uint8Array);
  s.close();
  return d;
}

function frameCuts(length: number, step = 244): number[] {
  const cuts: number[] = [];
  for (let held = step; held < length; held += step) cuts.push(held);
  return cuts;
}

/** The secret index as plain data (kind:secret → credIds). */
function indexShape(ix: ReturnType<typeof buildTableIndex>): [string, number[]][] {
  return [...ix.bySecret].map(([k, list]) => [k, list.map((e) => e.credId)] as [string, number[]]).sort((a, b) => a[0].localeCompare(b[0]));
}

describe('a snapshot decoded while it arrives', () => {
  it('is applied exactly as the whole message: same receipt, same flash image, same index — built during the transfer', () => {
    const streamedRig = rigWithSnapshot(400);
    const wholeRig = rigWithSnapshot(400);
    expect(streamedRig.message.length).toBeGreaterThan(STREAM_DECODE_MIN_BYTES);
    const a = handleArriving(streamedRig.rig, streamedRig.message, frameCuts(streamedRig.message.length));
    const b = handleWhole(wholeRig.rig, wholeRig.message);
    expect(a.map(toHex)).toEqual(b.map(toHex));
    expect(decodeMessage(a[0] as Uint8Array)).toMatchObject({ type: 'receipt', body: { version: 1 } });
    expect(streamedRig.rig.lock.version).toBe(1);
    expect(toHex(streamedRig.rig.flash.image())).toBe(toHex(wholeRig.rig.flash.image()));
    // The lock's index (built while the bytes came: see stream-decode.test.ts) is the full build's.
    const table = streamedRig.rig.lock.durable.tableState.table;
    expect(indexShape(tableIndex(table))).toEqual(indexShape(buildTableIndex(table)));
    // A phone in the snapshot opens the door on the streamed lock, as on the other.
    const phone = keyPairFromSeed(deriveSeed32(SEED, 'phone:7'));
    for (const rig of [streamedRig.rig, wholeRig.rig]) expect(unlock(rig, 14, phone.secretKey)).toMatchObject({ type: 'decision', granted: true });
  });

  it('a bad snapshot is refused with the whole message\'s error and leaves the flash byte for byte as it was', () => {
    const r = new SeededRandom(`${SEED}/bad`);
    const { message, entries } = rigWithSnapshot(300);
    const at = (e: Entry) => Buffer.from(message).indexOf(Buffer.from(encodeEntry(e)));
    const swapped = swapEncodedEntries(message, entries[20] as Entry, entries[21] as Entry);
    const badSignature = new Uint8Array(message);
    badSignature[message.length - 10] = (badSignature[message.length - 10] as number) ^ 0x01;
    const weakKey = new Uint8Array(message);
    // The first phone key becomes the identity point's encoding (small order): INVALID_OP.
    const keyAt = at(entries[0] as Entry) + encodeEntry(entries[0] as Entry).length - 32;
    weakKey.set([1, ...new Array(31).fill(0)], keyAt);
    const cases: [string, Uint8Array][] = [
      ['swapped entries', swapped],
      ['bad signature', badSignature],
      ['weak phone key', weakKey],
      ['cut', message.subarray(0, message.length - 3)],
    ];
    for (let i = 0; i < 8; i++) {
      const m = new Uint8Array(message);
      const i8 = r.int(0, m.length - 1);
      m[i8] = (m[i8] as number) ^ (1 << r.int(0, 7));
      cases.push([`flip #${i}`, m]);
    }
    for (const [label, bytes] of cases) {
      const s = rigWithSnapshot(300);
      const w = rigWithSnapshot(300);
      const before = toHex(s.rig.flash.image());
      const got = handleArriving(s.rig, bytes, frameCuts(bytes.length, 100 + r.int(0, 400)));
      const want = handleWhole(w.rig, bytes);
      expect({ label, got: got.map((x) => decodeMessage(x)) }).toEqual({ label, got: want.map((x) => decodeMessage(x)) });
      // The same flash as the lock that got the whole message; refused: the table untouched.
      expect(toHex(s.rig.flash.image())).toBe(toHex(w.rig.flash.image()));
      if (decodeMessage(want[0] as Uint8Array).type === 'error') {
        expect(s.rig.lock.version).toBe(0);
        expect(s.rig.lock.durable.tableState.table.entries.size).toBe(0);
        expect(toHex(s.rig.flash.image())).toBe(before);
      }
    }
    expect(decodeMessage(handleWhole(rigWithSnapshot(300).rig, swapped)[0] as Uint8Array)).toMatchObject({ type: 'error', reason: 'MALFORMED' });
    expect(decodeMessage(handleWhole(rigWithSnapshot(300).rig, badSignature)[0] as Uint8Array)).toMatchObject({ type: 'error', reason: 'BAD_SIGNATURE' });
    expect(decodeMessage(handleWhole(rigWithSnapshot(300).rig, weakKey)[0] as Uint8Array)).toMatchObject({ type: 'error', reason: 'INVALID_OP' });
  });

  it('what arrived for one message is not used for another, nor after the session closed', () => {
    const { rig, message } = rigWithSnapshot(300);
    const s = rig.lock.openSession();
    // Half of the snapshot arrives, then the phone sends something else (a new buffer).
    const partial = new Uint8Array(message.length);
    partial.set(message.subarray(0, message.length >> 1));
    s.receiving(partial, message.length >> 1);
    const answer = s.handle(new Uint8Array(message));
    expect(decodeMessage(answer[0] as Uint8Array)).toMatchObject({ type: 'receipt', body: { version: 1 } });
    s.close();
    // A closed session decodes nothing and answers SESSION_EXPIRED.
    const buffer = new Uint8Array(message);
    s.receiving(buffer, buffer.length - 1);
    expect(decodeMessage(s.handle(buffer)[0] as Uint8Array)).toMatchObject({ type: 'error', reason: 'SESSION_EXPIRED' });
  });
});
