// Serving updates: the delta or snapshot taking a lock from the version it holds to the
// newest, under the current signing key.

import {
  type SignedHead,
  type SignedKeyCert,
  applyOps,
  bytesEqual,
  diffTables,
  encodeMessage,
  encodeTable,
  keyIdOf,
  makeDelta,
  signHead,
  signedHeadFromCbor,
  tableDigest,
  snapshotSmallerFromEmpty,
  snapshotSmallerFromEmptyByEntries,
  encodedTableEntryCount,
  encodeSnapshotOfEncodedTable,
  ProtocolError,
  toHex,
} from '../protocol';
import { AuthorityError } from './errors';
import { invalid } from './validate';
import { type UpdateMessages, type UpdatesResponse } from './types';
import { type LockRow, type VersionRow, u8, blob } from './rows';
import { type SigningKey } from './keys';
import { Compiler } from './compile';

export abstract class UpdateServer extends Compiler {
  /** Oldest version a delta can still be served from. */
  protected oldestDeltaBase(lockId: string, current: number): number {
    return Math.max(0, current - this.historyVersions);
  }

  protected signedHeadOf(row: VersionRow, key: SigningKey): { head: SignedHead; certs: SignedKeyCert[] } {
    let headBytes = u8(row.head_bytes);
    let signature = u8(row.head_signature);
    if (row.key_serial !== key.serial) {
      // Signed before a rotation: re-sign the same head with the current key, so a lock that
      // follows the rotation (and retires the old key) still accepts it.
      const old = signedHeadFromCbor([headBytes, signature]).head;
      const fresh = signHead({ ...old, keyId: keyIdOf(key.publicKey) }, key.secretKey);
      headBytes = fresh.headBytes;
      signature = fresh.signature;
      this.db
        .prepare('UPDATE lock_versions SET head_bytes = ?, head_signature = ?, key_serial = ? WHERE lock_id = ? AND version = ?')
        .run(blob(headBytes), blob(signature), key.serial, row.lock_id, row.version);
    }
    return { head: signedHeadFromCbor([headBytes, signature]), certs: [key.cert] };
  }

  /**
   * The message(s) taking a lock at `from` to the current version: a delta when the base
   * is recent and the delta is smaller, else a snapshot. The delta is verified with the
   * protocol's applyOps + tableDigest before it is served.
   */
  /**
   * The update that takes `lockId` from version `from` to the newest. `certSerial` is what
   * the lock reported holding (hello field 10): when it already has the current signing
   * key's certificate, the update leaves it out.
   */
  updatesFor(lockId: string, from: number, certSerial?: number): UpdatesResponse {
    const r = this.updateMessagesFor(lockId, from, certSerial);
    return { lockId: r.lockId, from: r.from, to: r.to, messages: r.messages.map(toHex) };
  }

  /** As updatesFor, with the messages as bytes (the HTTP API's application/cbor answer). */
  updateMessagesFor(lockId: string, from: number, certSerial?: number): UpdateMessages {
    if (!Number.isSafeInteger(from) || from < 0) throw invalid('from must be a version number ≥ 0');
    // A read: the lock, its newest version and the signing key come from one statement (one
    // consistent view), and older versions never change but for pruning, after which
    // tableAt() answers undefined and a snapshot is served. Only re-signing a head after a
    // key rotation writes, and that runs as one transaction, read again inside it.
    const head = this.lockHead(lockId);
    if (head.latest !== undefined && head.latest.key_serial !== head.key.serial) return this.db.transaction(() => this.updatesAt(from, certSerial, this.lockHead(lockId)), { locks: [lockId] }).immediate();
    return this.updatesAt(from, certSerial, head);
  }

  private updatesAt(from: number, certSerial: number | undefined, at: { lock: LockRow; latest: VersionRow | undefined; key: SigningKey }): UpdateMessages {
    const lockId = at.lock.lock_id;
    const cur = at.latest;
    const to = cur?.version ?? 0;
    if (from > to) throw new AuthorityError('UNKNOWN_VERSION', `lock ${lockId} claims v${from}, newest issued is v${to}`, { from, to });
    if (cur === undefined || from === to) return { lockId, from, to, messages: [] };
    const signed = this.signedHeadOf(cur, at.key);
    const head = signed.head;
    const certs = certSerial !== undefined && certSerial >= at.key.serial ? [] : signed.certs;
    // The newest version's table is stored as its encoding (compile writes encodeTable's
    // bytes): a snapshot splices them in whole, checked against the signed digest, with no
    // decoding — a worker that has never held this lock's table serves it in a hash and a copy.
    const stored = cur.table_bytes !== null ? u8(cur.table_bytes) : undefined;
    let decoded: ReturnType<UpdateServer['currentTable']> | undefined;
    const current = (): NonNullable<typeof decoded> => (decoded ??= this.currentTable(lockId, cur));
    const snapshotMessage = (): Uint8Array => {
      if (stored === undefined) return encodeMessage({ type: 'snapshot', update: { type: 'snapshot', table: current().table, head, certs } });
      try {
        return encodeSnapshotOfEncodedTable(stored, head, certs);
      } catch (e) {
        if (e instanceof ProtocolError) throw new AuthorityError('INTERNAL', `stored table of ${lockId} v${cur.version}: ${e.message}`, { lockId, version: cur.version });
        throw e;
      }
    };
    // A first contact (from the empty table) with more entries than any lock policy weighs:
    // the snapshot is the smaller message, decided from the stored table's first bytes.
    const snapshotFromEmpty =
      from === 0 && ((stored !== undefined && snapshotSmallerFromEmptyByEntries(encodedTableEntryCount(stored))) || snapshotSmallerFromEmpty(current().table));
    let chosen: Uint8Array | undefined;
    if (from >= this.oldestDeltaBase(lockId, to) && !snapshotFromEmpty) {
      const base = this.tableAt(lockId, from);
      if (base !== undefined) {
        const { table, digest } = current();
        const ops = diffTables(base, table);
        if (bytesEqual(tableDigest(applyOps(base, ops)), digest)) {
          // tableAt() already proved the rebuilt base against the digest stored for `from`.
          const baseDigest = from === 0 ? tableDigest(base) : u8((this.versionRow(lockId, from) as VersionRow).digest);
          const delta = encodeMessage({ type: 'delta', update: makeDelta({ base: { version: from, digest: baseDigest }, ops, head, certs }) });
          // The snapshot carries the whole table: only build it when the delta is not
          // clearly smaller.
          if (delta.length < (stored ?? encodeTable(table)).length) chosen = delta;
          else {
            const snap = snapshotMessage();
            chosen = delta.length < snap.length ? delta : snap;
          }
        }
      }
    }
    chosen ??= snapshotMessage();
    return { lockId, from, to, messages: [chosen] };
  }

  /** Current version number of a lock's table. */
  currentVersion(lockId: string): number {
    this.lockRow(lockId);
    return this.latestVersionRow(lockId)?.version ?? 0;
  }
}

