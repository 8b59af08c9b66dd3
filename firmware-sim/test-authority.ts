// A minimal, honest signer for firmware-sim's own tests and benchmarks: it holds a root
// key (and optionally an online key certified by it), a table per lock and its version,
// and issues signed deltas, snapshots and signed time exactly as the protocol specifies.
// The real authority (authority/) persists and serves these; the lock cannot tell them
// apart, which is the point.

import {
  type Entry,
  type KeyPair,
  type Message,
  type Op,
  type SignedKeyCert,
  type Table,
  type Update,
  applyOps,
  deriveSeed32,
  emptyTable,
  encodeMessage,
  issueKeyCert,
  keyPairFromSeed,
  makeDelta,
  makeSignedTime,
  signHead,
  tableDigest,
  doorcodeVerifier,
  keycardVerifier,
  type LockPolicy,
} from '../protocol';

export class TestAuthority {
  readonly root: KeyPair;
  signer: KeyPair;
  cert: SignedKeyCert | undefined;
  table: Table;
  version = 0;
  /** Authority clock, unix seconds. */
  now: number;

  constructor(
    readonly lockId: string,
    readonly lockSecret: Uint8Array,
    seed: number | string = 1,
    opts: { now?: number; policy?: LockPolicy } = {},
  ) {
    this.root = keyPairFromSeed(deriveSeed32(seed, 'root'));
    this.signer = this.root;
    this.table = opts.policy !== undefined ? emptyTable(opts.policy) : emptyTable();
    this.now = opts.now ?? 1_760_000_000;
  }

  /** Rotate to a new online key certified by the root (serial must grow). */
  rotateOnlineKey(seedLabel: string, serial: number): SignedKeyCert {
    this.signer = keyPairFromSeed(deriveSeed32(seedLabel, 'online'));
    this.cert = issueKeyCert(serial, this.signer.publicKey, this.root.secretKey, this.root.publicKey);
    return this.cert;
  }

  /** Apply ops and return the signed delta from the previous version. */
  delta(ops: Op[], opts: { version?: number; lockId?: string; signWith?: Uint8Array } = {}): Update {
    const baseDigest = tableDigest(this.table);
    const base = { version: this.version, digest: baseDigest };
    this.table = applyOps(this.table, ops);
    this.version = opts.version ?? this.version + 1;
    const head = signHead(
      { lockId: opts.lockId ?? this.lockId, version: this.version, digest: tableDigest(this.table), issuedAt: this.now, keyId: this.signer.keyId },
      opts.signWith ?? this.signer.secretKey,
    );
    return makeDelta({ base, ops, head, certs: this.cert !== undefined ? [this.cert] : [] });
  }

  snapshot(): Update {
    const head = signHead({ lockId: this.lockId, version: this.version, digest: tableDigest(this.table), issuedAt: this.now, keyId: this.signer.keyId }, this.signer.secretKey);
    return { type: 'snapshot', table: this.table, head, certs: this.cert !== undefined ? [this.cert] : [] };
  }

  signedTime(nonce?: Uint8Array, time = this.now): Uint8Array {
    const body = nonce === undefined ? { lockId: this.lockId, time, keyId: this.signer.keyId } : { lockId: this.lockId, time, keyId: this.signer.keyId, nonce };
    return encodeMessage(makeSignedTime(body, this.signer.secretKey));
  }

  static message(u: Update): Uint8Array {
    const m: Message = { type: u.type, update: u };
    return encodeMessage(m);
  }

  phoneEntry(credId: number, publicKey: Uint8Array, extra: Partial<Entry> = {}): Entry {
    return { credId, kind: 'phone', holder: 'resident', secret: publicKey, flags: 0, ...extra };
  }

  doorcodeEntry(credId: number, code: string, extra: Partial<Entry> = {}): Entry {
    return { credId, kind: 'doorcode', holder: 'resident', secret: doorcodeVerifier(this.lockSecret, code), flags: 0, ...extra };
  }

  keycardEntry(credId: number, uid: Uint8Array, extra: Partial<Entry> = {}): Entry {
    return { credId, kind: 'keycard', holder: 'resident', secret: keycardVerifier(this.lockSecret, uid), flags: 0, ...extra };
  }
}
