// The updates body as CBOR (GET /v1/locks/{id}/updates with Accept: application/cbor): the
// encoder's bytes are cbor.ts's deterministic encoding of the map, they decode to what was
// encoded, and the decoder refuses, with UpdatesBodyError only, what is not such a body.
import { describe, expect, it } from 'vitest';
import { type CborValue, encode } from './cbor';
import { SeededRandom } from './random';
import { UPDATES_BODY_LIMITS, UpdatesBodyError, decodeUpdatesBody, encodeUpdatesBody } from './updates-body';

const asMap = (lockId: CborValue, from: CborValue, to: CborValue, messages: CborValue): Map<number, CborValue> =>
  new Map<number, CborValue>([
    [1, lockId],
    [2, from],
    [3, to],
    [4, messages],
  ]);

describe('updates body (application/cbor)', () => {
  it('is cbor.ts\'s own deterministic encoding of the map, and decodes back, for seeded bodies of every length class', () => {
    const seed = 'updates-body';
    const rng = new SeededRandom(seed);
    // Message lengths on each side of the CBOR length-header boundaries (23/24, 255/256, 65535/65536).
    const lengths = [0, 1, 23, 24, 255, 256, 65_535, 65_536, 450_560];
    for (const [i, from] of [0, 23, 24, 255, 70_000, 2 ** 32].entries()) {
      const messages = lengths.slice(0, 1 + ((i * 3) % lengths.length)).map((n) => rng.bytes(n));
      const body = { lockId: `lk-${String(i).padStart(4, '0')}`, from, to: from + i, messages };
      const bytes = encodeUpdatesBody(body);
      expect(bytes, `seed ${seed}, body ${i}`).toEqual(encode(asMap(body.lockId, body.from, body.to, body.messages)));
      if (bytes.length <= UPDATES_BODY_LIMITS.maxBytes) expect(decodeUpdatesBody(bytes)).toEqual(body);
    }
  });

  it('a 2 MiB message, the largest legitimate one, decodes (beyond cbor.ts\'s 4096-byte default string limit)', () => {
    const message = new Uint8Array(2 * 1024 * 1024).fill(7);
    expect(decodeUpdatesBody(encodeUpdatesBody({ lockId: 'lk-0001', from: 0, to: 1, messages: [message] })).messages[0]?.length).toBe(message.length);
  });

  it('refuses what is not an updates body with UpdatesBodyError, naming why', () => {
    const refused: [string, Uint8Array, RegExp][] = [
      ['empty', new Uint8Array(0), /TRUNCATED/],
      ['an array', encode([1, 2]), /not a CBOR map/],
      ['lockId a number', encode(asMap(7, 0, 1, [])), /lockId/],
      ['from negative', encode(asMap('lk-1', -1, 1, [])), /from/],
      ['to missing', encode(new Map<number, CborValue>([[1, 'lk-1'], [2, 0], [4, []]])), /to/],
      ['a message as text', encode(asMap('lk-1', 0, 1, ['a0'])), /messages/],
      ['messages not an array', encode(asMap('lk-1', 0, 1, new Uint8Array(3))), /messages/],
      ['unsorted keys', Uint8Array.from([0xa2, 0x02, 0x00, 0x01, 0x61, 0x78]), /UNSORTED_KEYS/],
      ['a message over 2 MiB', encodeUpdatesBody({ lockId: 'lk-1', from: 0, to: 1, messages: [new Uint8Array(2 * 1024 * 1024 + 1)] }), /SIZE_LIMIT|STRING_LIMIT/],
      ['a header claiming 4 GiB', Uint8Array.from([0xa4, 0x01, 0x61, 0x78, 0x02, 0x00, 0x03, 0x01, 0x04, 0x81, 0x5a, 0xff, 0xff, 0xff, 0xff]), /STRING_LIMIT/],
    ];
    for (const [what, bytes, why] of refused) {
      let thrown: unknown;
      try {
        decodeUpdatesBody(bytes);
      } catch (e) {
        thrown = e;
      }
      expect(thrown, what).toBeInstanceOf(UpdatesBodyError);
      expect((thrown as Error).message, what).toMatch(why);
    }
  });
});
