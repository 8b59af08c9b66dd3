// A small, fixed locksync world for tests and test vectors: one seed drives every key and
// secret, so the same bytes come out on every run and every machine. Nothing here is a
// real key; never provision a lock with them.

import { encode } from '../cbor';
import { type KeyPair, keyPairFromSeed } from '../crypto';
import { doorcodeVerifier, keycardVerifier } from '../codes';
import { deriveSeed32 } from '../random';
import { cmap } from '../schema';
import { type Entry, type KeyPolicy, type Table, ENTRY_FLAGS, emptyTable, encodeTable, tableDigest } from '../table';
import { type Op, applyOps } from '../ops';
import {
  type Delta,
  type SignedKeyCert,
  type Snapshot,
  type TableState,
  encodeTableHead,
  issueKeyCert,
  keyCertToCbor,
  makeDelta,
  signHead,
  currentDigest,
  currentVersion,
} from '../update';

export const WORLD_SEED = 'locksync-vectors-v1';
export const LOCK_ID = 'lk-0001';
export const OTHER_LOCK_ID = 'lk-0002';
/** 2025-01-01T00:00:00Z: every head and time in the vectors counts from here. */
export const EPOCH = 1_735_689_600;

const kp = (label: string): KeyPair => keyPairFromSeed(deriveSeed32(WORLD_SEED, label));

export const KEYS = {
  root: kp('root'),
  online1: kp('online-1'),
  online2: kp('online-2'),
  stranger: kp('stranger'),
  device: kp('device:lk-0001'),
  phoneResident: kp('phone:resident'),
  phoneGuest: kp('phone:guest'),
  phoneStaff: kp('phone:staff'),
} as const;

export const LOCK_SECRET = deriveSeed32(WORLD_SEED, 'lock-secret:lk-0001');

export const CERT1: SignedKeyCert = issueKeyCert(1, KEYS.online1.publicKey, KEYS.root.secretKey, KEYS.root.publicKey);
export const CERT2: SignedKeyCert = issueKeyCert(2, KEYS.online2.publicKey, KEYS.root.secretKey, KEYS.root.publicKey);
/** A cert for online2 issued by a root the lock does not hold. */
export const STRANGER_CERT: SignedKeyCert = issueKeyCert(3, KEYS.online2.publicKey, KEYS.stranger.secretKey, KEYS.stranger.publicKey);

export const PARTNER_ID = 7;
export const RESIDENT_KEY_ID = 100;

/** Phone credential of a resident with a weekday schedule and a validity window. */
export function residentPhone(credId = 1): Entry {
  return {
    credId,
    kind: 'phone',
    holder: 'resident',
    secret: KEYS.phoneResident.publicKey,
    keyId: RESIDENT_KEY_ID,
    schedule: [{ days: 0b0011111, start: 7 * 60, end: 22 * 60 }],
    validFrom: EPOCH,
    validUntil: EPOCH + 365 * 86_400,
    flags: 0,
  };
}

export function guestPhone(credId: number, parent: number): Entry {
  return {
    credId,
    kind: 'phone',
    holder: 'guest',
    secret: KEYS.phoneGuest.publicKey,
    parent,
    validUntil: EPOCH + 7 * 86_400,
    flags: ENTRY_FLAGS.LEASE,
  };
}

export function partnerCredential(credId: number, partnerId = PARTNER_ID): Entry {
  return {
    credId,
    kind: 'keycard',
    holder: 'partner',
    secret: keycardVerifier(LOCK_SECRET, new Uint8Array([0x04, 0xa1, 0xb2, credId & 0xff, (credId >> 8) & 0xff, 0x5e, 0x80])),
    partnerId,
    flags: ENTRY_FLAGS.LEASE,
  };
}

export function staffDoorcode(credId: number): Entry {
  return { credId, kind: 'doorcode', holder: 'staff', secret: doorcodeVerifier(LOCK_SECRET, '4815162'), keyId: 200, flags: 0 };
}

export const RESIDENT_KEY_POLICY: KeyPolicy = {
  keyId: RESIDENT_KEY_ID,
  doorcodesEnabled: true,
  schedule: [{ days: 0b1111111, start: 6 * 60, end: 23 * 60 }],
};

/** Version 1 of lk-0001's table: a resident, her guest, a staff doorcode and `partnerCreds` partner keycards. */
export function baseTable(partnerCreds = 3): Table {
  const ops: Op[] = [
    { op: 'put', entry: residentPhone(1) },
    { op: 'put', entry: guestPhone(2, 1) },
    { op: 'put', entry: staffDoorcode(3) },
    { op: 'setKeyPolicy', policy: RESIDENT_KEY_POLICY },
  ];
  for (let i = 0; i < partnerCreds; i++) ops.push({ op: 'put', entry: partnerCredential(1000 + i) });
  return applyOps(emptyTable(), ops);
}

export interface SignArgs {
  lockId?: string;
  version: number;
  issuedAt?: number;
  signer?: KeyPair;
}

export function snapshotOf(table: Table, a: SignArgs, certs: SignedKeyCert[] = [CERT1]): Snapshot {
  const signer = a.signer ?? KEYS.online1;
  const head = signHead(
    { lockId: a.lockId ?? LOCK_ID, version: a.version, digest: tableDigest(table), issuedAt: a.issuedAt ?? EPOCH + a.version * 3600, keyId: signer.keyId },
    signer.secretKey,
  );
  return { type: 'snapshot', table, head, certs };
}

/** A signed delta from `state`'s current table by `ops`; the head carries the digest of the honest result. */
export function deltaFrom(state: TableState, ops: Op[], a: SignArgs, certs: SignedKeyCert[] = []): Delta {
  const signer = a.signer ?? KEYS.online1;
  const result = applyOps(state.table, ops);
  const head = signHead(
    { lockId: a.lockId ?? LOCK_ID, version: a.version, digest: tableDigest(result), issuedAt: a.issuedAt ?? EPOCH + a.version * 3600, keyId: signer.keyId },
    signer.secretKey,
  );
  return makeDelta({ base: { version: currentVersion(state), digest: currentDigest(state) }, ops, head, certs });
}

/** Every persisted field of a TableState as one byte string: equal bytes ⇔ equal state. */
export function encodeState(s: TableState): Uint8Array {
  return encode(
    cmap([
      [1, s.lockId],
      [2, encodeTable(s.table)],
      [3, s.head === null ? null : encodeTableHead(s.head)],
      [4, s.versionFloor],
      [5, s.trust.roots],
      [6, s.trust.certs.map(keyCertToCbor)],
      [7, s.trust.certFloor],
      [8, s.newestIssuedAt],
      [9, s.leaseAnchor],
    ]),
  );
}
