// A phone credential file: the device's Ed25519 key and the credential ids it holds at
// each lock. Written by the authority's enrolment helpers (authority/), read by the agent.
//   { "holder": "partner", "secretKey": hex32, "publicKey": hex32,
//     "credentials": [ { "lockId": "lk-0001", "credId": 1001 } ] }

import { readFileSync } from 'node:fs';
import { bytesEqual, fromHex, publicKeyOf, HOLDER_CLASSES, type HolderClass, LOCK_ID_PATTERN } from '../protocol/index';

export interface PhoneCredential {
  holder: HolderClass;
  secretKey: Uint8Array;
  publicKey: Uint8Array;
  credentials: { lockId: string; credId: number }[];
  label?: string;
}

export class CredentialFileError extends Error {
  override readonly name = 'CredentialFileError';
}

export function parseCredential(json: unknown, source = 'credential'): PhoneCredential {
  const o = json as Record<string, unknown>;
  const fail = (m: string): never => {
    throw new CredentialFileError(`${source}: ${m}`);
  };
  if (typeof o !== 'object' || o === null) fail('not a JSON object');
  if (typeof o.holder !== 'string' || !(o.holder in HOLDER_CLASSES)) fail(`holder must be one of ${Object.keys(HOLDER_CLASSES).join(', ')}`);
  if (typeof o.secretKey !== 'string' || !/^[0-9a-f]{64}$/i.test(o.secretKey)) fail('secretKey must be 64 hex digits');
  const secretKey = fromHex(o.secretKey as string);
  const publicKey = publicKeyOf(secretKey);
  if (o.publicKey !== undefined && (typeof o.publicKey !== 'string' || !bytesEqual(fromHex(o.publicKey), publicKey)))
    fail('publicKey does not belong to secretKey');
  if (!Array.isArray(o.credentials)) fail('credentials must be an array of { lockId, credId }');
  const credentials = (o.credentials as unknown[]).map((c, i) => {
    const x = c as Record<string, unknown>;
    if (typeof x?.lockId !== 'string' || !LOCK_ID_PATTERN.test(x.lockId)) fail(`credentials[${i}].lockId is not a lock id`);
    if (typeof x.credId !== 'number' || !Number.isInteger(x.credId) || x.credId <= 0) fail(`credentials[${i}].credId must be a positive integer`);
    return { lockId: x.lockId as string, credId: x.credId as number };
  });
  const cred: PhoneCredential = { holder: o.holder as HolderClass, secretKey, publicKey, credentials };
  if (typeof o.label === 'string') cred.label = o.label;
  return cred;
}

export function readCredentialFile(path: string): PhoneCredential {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CredentialFileError(`${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CredentialFileError(`${path}: not JSON (${(e as Error).message})`);
  }
  return parseCredential(json, path);
}

/**
 * Refusals that concern the credential id presented, not the phone key or the lock's state:
 * the lock's table may not hold this id yet (a grant issued after its last sync) or any more
 * (a grant replaced by another path to the same door), or this grant's window has passed.
 * Another id the same phone holds for the lock may still have a live entry, so the agent
 * presents the next one. Refusals about the lock or the key as a whole (lockout, stale lease,
 * untrusted clock, schedule, low battery) would answer the same for every id, and stop.
 */
export const RETRY_WITH_NEXT_CREDENTIAL: ReadonlySet<string> = new Set(['UNKNOWN_CREDENTIAL', 'EXPIRED']);

/**
 * The credential ids this phone may present at a lock, best first: the file's order, which
 * lists the grants the authority issues now before grants kept from earlier fetches (an app
 * keeps its older grants until the lock syncs, because the lock may still run the table that
 * holds them). Duplicates are dropped.
 */
export function candidateCredentials(credential: PhoneCredential, lockId: string): number[] {
  const out: number[] = [];
  for (const c of credential.credentials) if (c.lockId === lockId && !out.includes(c.credId)) out.push(c.credId);
  return out;
}
