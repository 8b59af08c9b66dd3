// Receipts and the manager's view of the gap: lock-signed receipts record the version in
// force at each door; revocations stay pending until then.

import { LOCK_ID_PATTERN, ProtocolError, bytesEqual, decodeMessage, emptyTable, tableDigest, verifyReceipt } from '../protocol';
import { AuthorityError } from './errors';
import { type PendingRevocation, type HonouringDoor } from './types';
import { type LockRow, u8, blob } from './rows';
import { SignedTimeSource } from './time';

export abstract class Receipts extends SignedTimeSource {
  protected decodeAs<T extends string>(hex: unknown, type: T, what: string): Extract<ReturnType<typeof decodeMessage>, { type: T }> {
    if (typeof hex !== 'string' || !/^(?:[0-9a-f]{2})+$/.test(hex)) throw new AuthorityError('BAD_MESSAGE', `${what} must be lowercase hex`);
    let m: ReturnType<typeof decodeMessage>;
    try {
      m = decodeMessage(new Uint8Array(Buffer.from(hex, 'hex')));
    } catch (e) {
      if (e instanceof ProtocolError) throw new AuthorityError('BAD_MESSAGE', `${what}: ${e.message}`, { reason: e.reason });
      throw e;
    }
    if (m.type !== type) throw new AuthorityError('BAD_MESSAGE', `${what}: expected a ${type} message, got ${m.type}`);
    return m as Extract<ReturnType<typeof decodeMessage>, { type: T }>;
  }

  /**
   * Verify a lock's signed receipt and record the version in force at its door. The
   * version/digest must be one this authority issued; the in-force version never goes down.
   */
  acceptReceipt(lockId: string, receiptHex: string): { lockId: string; version: number; inForce: true } {
    const m = this.decodeAs(receiptHex, 'receipt', 'receipt');
    const result = this.lockBatch(lockId, () => {
      // The lock, the version the receipt names and the stored audit record at the seq it
      // signed, in one statement (each a PostgreSQL round trip otherwise); nothing below
      // writes the audit record before it is used.
      if (typeof lockId !== 'string' || !LOCK_ID_PATTERN.test(lockId)) throw new AuthorityError('UNKNOWN_LOCK', `no lock ${String(lockId)}`);
      const b = m.body;
      const l = this.db
        .prepare(
          `SELECT l.*, lv.digest AS issued_digest, (SELECT chain_hash FROM audit_records WHERE lock_id = l.lock_id AND seq = ?) AS stored_chain_hash
           FROM locks l LEFT JOIN lock_versions lv ON lv.lock_id = l.lock_id AND lv.version = ? WHERE l.lock_id = ?`,
        )
        .get(b.auditSeq, b.version, lockId) as (LockRow & { issued_digest: Buffer | null; stored_chain_hash: Buffer | null }) | undefined;
      if (l === undefined) throw new AuthorityError('UNKNOWN_LOCK', `no lock ${lockId}`, { lockId });
      if (l.device_public_key === null) throw new AuthorityError('LOCK_DEVICE_UNKNOWN', `lock ${l.lock_id} has no registered device key`);
      if (!verifyReceipt(m, u8(l.device_public_key))) throw new AuthorityError('BAD_RECEIPT', 'receipt signature does not verify with the lock device key', { reason: 'BAD_SIGNATURE' });
      if (b.lockId !== l.lock_id) throw new AuthorityError('BAD_RECEIPT', `receipt is for ${b.lockId}, not ${l.lock_id}`, { reason: 'WRONG_LOCK' });
      if (b.version === 0) {
        if (!bytesEqual(b.digest, tableDigest(emptyTable()))) throw new AuthorityError('BAD_RECEIPT', 'v0 receipt with a non-empty digest', { reason: 'DIGEST_MISMATCH' });
      } else {
        if (l.issued_digest === null) throw new AuthorityError('UNKNOWN_VERSION', `v${b.version} was never issued for ${l.lock_id}`, { version: b.version });
        if (!bytesEqual(l.issued_digest, b.digest)) throw new AuthorityError('BAD_RECEIPT', `receipt digest differs from issued v${b.version}`, { reason: 'DIGEST_MISMATCH' });
      }
      const now = this.now();
      this.db
        .prepare('INSERT OR IGNORE INTO receipts (lock_id, version, nonce, lock_time, audit_seq, audit_head, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(l.lock_id, b.version, blob(b.nonce), b.lockTime, b.auditSeq, blob(b.auditHead), now);
      if (b.version > l.in_force_version)
        this.db.prepare('UPDATE locks SET in_force_version = ?, in_force_at = ?, last_lock_time = ? WHERE lock_id = ?').run(b.version, now, b.lockTime, l.lock_id);
      else this.db.prepare('UPDATE locks SET last_lock_time = ? WHERE lock_id = ?').run(b.lockTime, l.lock_id);
      // The lock signed its audit chain head: anchor stored records up to it, or drop a
      // stored tail that contradicts it (a courier cannot forge what the lock signed).
      if (l.stored_chain_hash !== null) {
        if (bytesEqual(l.stored_chain_hash, b.auditHead)) this.db.prepare('UPDATE audit_records SET anchored = 1 WHERE lock_id = ? AND seq <= ?').run(l.lock_id, b.auditSeq);
        else this.db.prepare('DELETE FROM audit_records WHERE lock_id = ? AND anchored = 0').run(l.lock_id);
      }
      return { lockId: l.lock_id, version: b.version, inForce: true as const };
    });
    return result;
  }

  /** Revocations not yet in force: the door's lock still runs a version that has them. */
  pendingRevocations(filter: { partnerId?: number; doorId?: number } = {}): PendingRevocation[] {
    const rows = this.db
      .prepare(
        `SELECT r.*, l.door_id, d.name AS door_name, l.in_force_version FROM revocations r
         JOIN locks l ON l.lock_id = r.lock_id JOIN doors d ON d.id = l.door_id
         WHERE l.in_force_version < r.version ORDER BY r.removed_at, r.lock_id, r.cred_id`,
      )
      .all() as {
      lock_id: string;
      cred_id: number;
      version: number;
      removed_at: number;
      kind: string;
      holder: string;
      partner_id: number | null;
      key_id: number | null;
      subject: string;
      door_id: number;
      door_name: string;
      in_force_version: number;
    }[];
    return rows
      .filter((r) => (filter.partnerId === undefined || r.partner_id === filter.partnerId) && (filter.doorId === undefined || r.door_id === filter.doorId))
      .map((r) => ({
        doorId: r.door_id,
        doorName: r.door_name,
        lockId: r.lock_id,
        credId: r.cred_id,
        kind: r.kind,
        holder: r.holder,
        subject: r.subject,
        partnerId: r.partner_id,
        keyId: r.key_id,
        removedInVersion: r.version,
        versionInForce: r.in_force_version,
        since: r.removed_at,
      }));
  }

  /** Doors whose lock (at the version in force, as proven by receipts) still honours partner P. */
  doorsHonouringPartner(partnerId: number): HonouringDoor[] {
    const p = this.partnerRow(partnerId);
    const assigned = new Set(this.doorsOfPartner(p.id));
    const locks = this.db.prepare('SELECT l.lock_id, l.door_id, l.in_force_version, d.name FROM locks l JOIN doors d ON d.id = l.door_id ORDER BY l.door_id').all() as {
      lock_id: string;
      door_id: number;
      in_force_version: number;
      name: string;
    }[];
    const out: HonouringDoor[] = [];
    for (const l of locks) {
      const t = this.tableAt(l.lock_id, l.in_force_version);
      let n = 0;
      if (t === undefined) {
        // History pruned below the version in force: count from revocations still pending.
        n = (this.db.prepare('SELECT COUNT(*) AS n FROM revocations WHERE lock_id = ? AND partner_id = ? AND version > ?').get(l.lock_id, p.id, l.in_force_version) as { n: number }).n;
      } else for (const e of t.entries.values()) if (e.partnerId === p.id) n++;
      if (n > 0) out.push({ doorId: l.door_id, doorName: l.name, lockId: l.lock_id, versionInForce: l.in_force_version, credentials: n, assignedNow: assigned.has(l.door_id) });
    }
    return out;
  }
}
