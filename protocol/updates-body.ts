// The authority's answer to GET /v1/locks/{lockId}/updates as CBOR (media type
// application/cbor), for a client that asks for it with Accept: the JSON body's fields
// under small integer keys, each message as a byte string of its exact bytes rather than
// hex. Half the bytes of the JSON body, and neither side converts a 440 kB snapshot to or
// from hex (authority/README.md, authority/openapi.ts).
//
//   { 1: lockId (text), 2: from (uint), 3: to (uint), 4: [ message (bytes), … ] }

import { type CborLimits, type CborValue, CborError, decode, encode, encodeHead } from './cbor';
import { concatBytes } from './crypto';

export const UPDATES_CBOR_MEDIA_TYPE = 'application/cbor';

/** The integer key of each field of the JSON body. */
export const UPDATES_BODY_KEYS = { lockId: 1, from: 2, to: 3, messages: 4 } as const;

export interface UpdatesBody {
  lockId: string;
  from: number;
  to: number;
  messages: Uint8Array[];
}

/** The largest legitimate message is 2 MiB (cbor.ts DEFAULT_LIMITS: a 20,000-entry snapshot). */
const MAX_MESSAGE_BYTES = 2 * 1024 * 1024;
/** A body holds a few messages at most (today one), their bytes bounded as one message's. */
export const UPDATES_BODY_LIMITS: Readonly<CborLimits> = Object.freeze({
  maxBytes: MAX_MESSAGE_BYTES + 4096,
  maxDepth: 2,
  maxItems: 64,
  maxStringBytes: MAX_MESSAGE_BYTES,
});

/**
 * The body's deterministic CBOR (keys ascending, preferred lengths): byte for byte what
 * cbor.ts encode() gives for the map, assembled in parts so each message is copied once into
 * the result rather than through the encoder's growing buffer (updates-body.test.ts checks
 * the two agree).
 */
export function encodeUpdatesBody(b: UpdatesBody): Uint8Array {
  const K = UPDATES_BODY_KEYS;
  const parts: Uint8Array[] = [
    encodeHead(5, 4),
    encode(K.lockId),
    encode(b.lockId),
    encode(K.from),
    encode(b.from),
    encode(K.to),
    encode(b.to),
    encode(K.messages),
    encodeHead(4, b.messages.length),
  ];
  for (const m of b.messages) parts.push(encodeHead(2, m.length), m);
  return concatBytes(...parts);
}

/** Why a body is not an updates body: the CBOR error, or the field that is wrong. */
export class UpdatesBodyError extends Error {
  override readonly name = 'UpdatesBodyError';
}

/**
 * Decode an application/cbor updates body within UPDATES_BODY_LIMITS. Throws
 * UpdatesBodyError (never anything else) for bytes that are not one: malformed or
 * non-canonical CBOR, over a limit, a missing or mistyped field. Unknown keys are ignored
 * (a newer authority may add fields, as it may to the JSON body).
 */
export function decodeUpdatesBody(bytes: Uint8Array): UpdatesBody {
  let v: CborValue;
  try {
    v = decode(bytes, UPDATES_BODY_LIMITS);
  } catch (e) {
    if (e instanceof CborError) throw new UpdatesBodyError(`not CBOR within the body's limits: ${e.message}`);
    throw e;
  }
  if (!(v instanceof Map)) throw new UpdatesBodyError('not a CBOR map');
  const K = UPDATES_BODY_KEYS;
  const lockId = v.get(K.lockId);
  const from = v.get(K.from);
  const to = v.get(K.to);
  const messages = v.get(K.messages);
  if (typeof lockId !== 'string') throw new UpdatesBodyError(`field ${K.lockId} (lockId) is not a text string`);
  if (typeof from !== 'number' || !Number.isSafeInteger(from) || from < 0) throw new UpdatesBodyError(`field ${K.from} (from) is not a version number`);
  if (typeof to !== 'number' || !Number.isSafeInteger(to) || to < 0) throw new UpdatesBodyError(`field ${K.to} (to) is not a version number`);
  if (!Array.isArray(messages) || !messages.every((m): m is Uint8Array => m instanceof Uint8Array))
    throw new UpdatesBodyError(`field ${K.messages} (messages) is not an array of byte strings`);
  return { lockId, from, to, messages };
}
