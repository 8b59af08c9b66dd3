// Hand-written CBOR inputs and what the strict decoder must answer. Shared by
// protocol/cbor.test.ts and the cbor-decoder vector file.

import type { CborErrorCode, CborLimits } from '../cbor';

export interface RefusalCase {
  hex: string;
  code: CborErrorCode;
  comment: string;
  flags: string[];
  limits?: Partial<CborLimits>;
}

const rep = (byteHex: string, n: number): string => byteHex.repeat(n);

export const REFUSAL_CASES: RefusalCase[] = [
  // Non-preferred integer and length forms, at each width.
  { hex: '1817', code: 'NON_PREFERRED', comment: '23 in a 1-byte argument', flags: ['NonPreferred'] },
  { hex: '1900ff', code: 'NON_PREFERRED', comment: '255 in a 2-byte argument', flags: ['NonPreferred'] },
  { hex: '1a0000ffff', code: 'NON_PREFERRED', comment: '65535 in a 4-byte argument', flags: ['NonPreferred'] },
  { hex: '1b00000000ffffffff', code: 'NON_PREFERRED', comment: '2^32-1 in an 8-byte argument', flags: ['NonPreferred'] },
  { hex: '3817', code: 'NON_PREFERRED', comment: '-24 in a 1-byte argument', flags: ['NonPreferred'] },
  { hex: '5800', code: 'NON_PREFERRED', comment: 'empty byte string with a 1-byte length', flags: ['NonPreferred'] },
  { hex: '790001' + '61', code: 'NON_PREFERRED', comment: '1-byte text string with a 2-byte length', flags: ['NonPreferred'] },
  { hex: '9800', code: 'NON_PREFERRED', comment: 'empty array with a 1-byte count', flags: ['NonPreferred'] },
  { hex: 'b800', code: 'NON_PREFERRED', comment: 'empty map with a 1-byte count', flags: ['NonPreferred'] },
  // Indefinite lengths.
  { hex: '9f01ff', code: 'INDEFINITE_LENGTH', comment: 'indefinite-length array', flags: ['Indefinite'] },
  { hex: 'bf0102ff', code: 'INDEFINITE_LENGTH', comment: 'indefinite-length map', flags: ['Indefinite'] },
  { hex: '5f4101ff', code: 'INDEFINITE_LENGTH', comment: 'indefinite-length byte string', flags: ['Indefinite'] },
  { hex: '7f6161ff', code: 'INDEFINITE_LENGTH', comment: 'indefinite-length text string', flags: ['Indefinite'] },
  { hex: 'ff', code: 'INDEFINITE_LENGTH', comment: 'lone break', flags: ['Indefinite'] },
  { hex: '1f', code: 'INDEFINITE_LENGTH', comment: 'unsigned integer with additional information 31', flags: ['Indefinite'] },
  // Reserved additional information.
  { hex: '1c', code: 'RESERVED_ADDITIONAL_INFO', comment: 'major 0, AI 28', flags: ['Reserved'] },
  { hex: '3d', code: 'RESERVED_ADDITIONAL_INFO', comment: 'major 1, AI 29', flags: ['Reserved'] },
  { hex: '5e', code: 'RESERVED_ADDITIONAL_INFO', comment: 'major 2, AI 30', flags: ['Reserved'] },
  { hex: 'fc', code: 'RESERVED_ADDITIONAL_INFO', comment: 'major 7, AI 28', flags: ['Reserved'] },
  // Map keys.
  { hex: 'a203040102', code: 'UNSORTED_KEYS', comment: 'keys 3, 1', flags: ['MapKeys'] },
  { hex: 'a218180001f6', code: 'UNSORTED_KEYS', comment: 'key 24 (1818) before key 1 (01)', flags: ['MapKeys'] },
  { hex: 'a2210020f6', code: 'UNSORTED_KEYS', comment: 'key -2 (21) before key -1 (20)', flags: ['MapKeys'] },
  { hex: 'a2200001f6', code: 'UNSORTED_KEYS', comment: 'key -1 (20) before key 1 (01)', flags: ['MapKeys'] },
  { hex: 'a201020103', code: 'DUPLICATE_KEY', comment: 'key 1 twice', flags: ['MapKeys'] },
  { hex: 'a1616100', code: 'NON_INTEGER_KEY', comment: 'text key "a"', flags: ['MapKeys'] },
  { hex: 'a14100f6', code: 'NON_INTEGER_KEY', comment: 'byte-string key', flags: ['MapKeys'] },
  { hex: 'a1f400', code: 'NON_INTEGER_KEY', comment: 'key false', flags: ['MapKeys'] },
  { hex: 'a18000', code: 'NON_INTEGER_KEY', comment: 'array key', flags: ['MapKeys'] },
  // Tags, floats and simple values.
  { hex: 'c11a514b67b0', code: 'TAG_NOT_ALLOWED', comment: 'tag 1 (epoch time)', flags: ['Tag'] },
  { hex: 'd818456449455446', code: 'TAG_NOT_ALLOWED', comment: 'tag 24 (encoded CBOR)', flags: ['Tag'] },
  { hex: 'd9d9f700', code: 'TAG_NOT_ALLOWED', comment: 'tag 55799 (self-described CBOR)', flags: ['Tag'] },
  { hex: 'f90000', code: 'FLOAT_NOT_ALLOWED', comment: 'half-precision 0.0', flags: ['Float'] },
  { hex: 'fa47c35000', code: 'FLOAT_NOT_ALLOWED', comment: 'single-precision 100000.0', flags: ['Float'] },
  { hex: 'fb3ff199999999999a', code: 'FLOAT_NOT_ALLOWED', comment: 'double-precision 1.1', flags: ['Float'] },
  { hex: 'f7', code: 'SIMPLE_NOT_ALLOWED', comment: 'undefined', flags: ['Simple'] },
  { hex: 'f0', code: 'SIMPLE_NOT_ALLOWED', comment: 'simple(16)', flags: ['Simple'] },
  { hex: 'f8ff', code: 'SIMPLE_NOT_ALLOWED', comment: 'simple(255)', flags: ['Simple'] },
  // Truncation and trailing bytes.
  { hex: '', code: 'TRUNCATED', comment: 'empty input', flags: ['Truncated'] },
  { hex: '18', code: 'TRUNCATED', comment: '1-byte argument missing', flags: ['Truncated'] },
  { hex: '1901', code: 'TRUNCATED', comment: '2-byte argument cut after 1 byte', flags: ['Truncated'] },
  { hex: '1a000100', code: 'TRUNCATED', comment: '4-byte argument cut after 3 bytes', flags: ['Truncated'] },
  { hex: '1b00000001000000', code: 'TRUNCATED', comment: '8-byte argument cut after 7 bytes', flags: ['Truncated'] },
  { hex: '44010203', code: 'TRUNCATED', comment: '4-byte string with 3 bytes', flags: ['Truncated'] },
  { hex: '62c3', code: 'TRUNCATED', comment: '2-byte text with 1 byte', flags: ['Truncated'] },
  { hex: '830102', code: 'TRUNCATED', comment: 'array of 3 with 2 items', flags: ['Truncated'] },
  { hex: 'a10102a1', code: 'TRAILING_BYTES', comment: 'complete map followed by a byte', flags: ['Trailing'] },
  { hex: 'a201', code: 'TRUNCATED', comment: 'map of 2 pairs with 1 byte', flags: ['Truncated'] },
  { hex: '0000', code: 'TRAILING_BYTES', comment: 'two items', flags: ['Trailing'] },
  { hex: '8000', code: 'TRAILING_BYTES', comment: 'empty array then 0', flags: ['Trailing'] },
  // Integer range: JavaScript-safe integers only, -(2^53-1) … 2^53-1.
  { hex: '1b0020000000000000', code: 'INTEGER_RANGE', comment: '2^53', flags: ['IntegerRange'] },
  { hex: '1bffffffffffffffff', code: 'INTEGER_RANGE', comment: '2^64-1 (RFC 8949 Appendix A)', flags: ['IntegerRange'] },
  { hex: '3b001fffffffffffff', code: 'INTEGER_RANGE', comment: '-2^53', flags: ['IntegerRange'] },
  { hex: '3bffffffffffffffff', code: 'INTEGER_RANGE', comment: '-2^64 (RFC 8949 Appendix A)', flags: ['IntegerRange'] },
  // UTF-8.
  { hex: '61ff', code: 'INVALID_UTF8', comment: 'byte 0xff', flags: ['Utf8'] },
  { hex: '62c0af', code: 'INVALID_UTF8', comment: 'overlong "/"', flags: ['Utf8'] },
  { hex: '63eda080', code: 'INVALID_UTF8', comment: 'UTF-8-encoded surrogate U+D800', flags: ['Utf8'] },
  { hex: '62c328', code: 'INVALID_UTF8', comment: 'bad continuation byte', flags: ['Utf8'] },
  // Limits.
  { hex: rep('81', 9) + '00', code: 'DEPTH_LIMIT', comment: '9 nested arrays (limit 8)', flags: ['Limits'] },
  { hex: rep('a101', 8) + '00', code: 'DEPTH_LIMIT', comment: '8 nested maps with limit 7', flags: ['Limits'], limits: { maxDepth: 7 } },
  { hex: '8401020304', code: 'ITEM_LIMIT', comment: '5 items with limit 4', flags: ['Limits'], limits: { maxItems: 4 } },
  { hex: '190100', code: 'SIZE_LIMIT', comment: '3 bytes with limit 2', flags: ['Limits'], limits: { maxBytes: 2 } },
  { hex: '591001' + rep('00', 4097), code: 'STRING_LIMIT', comment: 'byte string of 4097 bytes (limit 4096)', flags: ['Limits'] },
  { hex: '6503' + '', code: 'TRUNCATED', comment: 'text of 5 bytes with 1', flags: ['Truncated'] },
  { hex: '5b' + rep('ff', 8) + rep('00', 8), code: 'STRING_LIMIT', comment: 'length bomb: byte string of 2^64-1 bytes', flags: ['Limits', 'Bomb'] },
  { hex: '5a' + 'ffffffff' + rep('00', 8), code: 'STRING_LIMIT', comment: 'byte string of 4 GiB', flags: ['Limits', 'Bomb'] },
  { hex: '9b' + rep('ff', 8) + rep('00', 8), code: 'TRUNCATED', comment: 'array of 2^64-1 items in 16 bytes', flags: ['Limits', 'Bomb'] },
  { hex: 'ba' + 'ffffffff' + rep('00', 8), code: 'TRUNCATED', comment: 'map of 2^32-1 pairs in 12 bytes', flags: ['Limits', 'Bomb'] },
];

/** RFC 8949 Appendix A examples inside the locksync subset: decode, re-encode identically. */
export const RFC8949_APPENDIX_A: { hex: string; comment: string }[] = [
  ['00', '0'], ['01', '1'], ['0a', '10'], ['17', '23'], ['1818', '24'], ['1819', '25'], ['1864', '100'],
  ['1903e8', '1000'], ['1a000f4240', '1000000'], ['1b000000e8d4a51000', '1000000000000'],
  ['20', '-1'], ['29', '-10'], ['3863', '-100'], ['3903e7', '-1000'],
  ['f4', 'false'], ['f5', 'true'], ['f6', 'null'],
  ['40', "h''"], ['4401020304', "h'01020304'"],
  ['60', '""'], ['6161', '"a"'], ['6449455446', '"IETF"'], ['62225c', '"\\"\\\\"'], ['62c3bc', '"\\u00fc"'],
  ['63e6b0b4', '"\\u6c34"'], ['64f0908591', '"\\ud800\\udd51"'],
  ['80', '[]'], ['83010203', '[1, 2, 3]'], ['8301820203820405', '[1, [2, 3], [4, 5]]'],
  ['98190102030405060708090a0b0c0d0e0f101112131415161718181819', '[1, 2, …, 25]'],
  ['a0', '{}'], ['a201020304', '{1: 2, 3: 4}'],
].map(([hex, comment]) => ({ hex: hex as string, comment: comment as string }));
