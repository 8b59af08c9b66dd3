// Audit: lock-signed audit exports relayed by phones, placed on each lock's chain and
// anchored back to the lock.

import {
  ProtocolError,
  auditRecordFromBytes,
  bytesEqual,
  chainAudit,
  encodeMessage,
  keyIdOf,
  toHex,
  AUDIT_GENESIS,
  makeAuditAnchor,
  verifyAuditExport,
} from '../protocol';
import { AuthorityError } from './errors';
import { u8, blob } from './rows';
import { Receipts } from './receipts';

/** Audit records per multi-row statement (5 parameters each). */
const AUDIT_ROWS_CHUNK = 100;

export abstract class AuditStore extends Receipts {
  /**
   * Accept an audit export (SPEC §10.1). It must be signed by the lock's device key for this
   * lock id, and its records must chain to the signed head (BAD_AUDIT otherwise). It must
   * start where the authority can place it: at genesis, after a stored record or a
   * receipt-signed head with the same chain hash, or at the oldest record the lock still
   * holds (AUDIT_CHAIN_GAP otherwise). Stored records it contradicts are dropped when they
   * were never authenticated (unanchored) and refused when they were (AUDIT_CHAIN_MISMATCH),
   * as is a contradiction with a receipt-signed head. Accepted records are anchored.
   * Returns the authority-signed auditAnchor for the lock (through the last seq up to which
   * it holds every record the lock still holds), for the courier to carry back (§10.2).
   */
  acceptAudit(lockId: string, exportHex: string): { accepted: number; anchoredThrough: number | null; anchor?: string } {
    const m = this.decodeAs(exportHex, 'auditExport', 'export');
    return this.lockBatch(lockId, () => {
      // The lock and the current signing key (for the anchor) in one statement.
      const { lock: l, key } = this.lockHead(lockId);
      if (l.device_public_key === null) throw new AuthorityError('LOCK_DEVICE_UNKNOWN', `lock ${l.lock_id} has no registered device key`);
      let v: ReturnType<typeof verifyAuditExport>;
      try {
        v = verifyAuditExport(m, l.lock_id, u8(l.device_public_key));
      } catch (e) {
        if (e instanceof ProtocolError) throw new AuthorityError('BAD_AUDIT', `audit export: ${e.detail}`, { reason: e.reason });
        throw e;
      }
      const chain: { seq: number; bytes: Uint8Array; hash: Uint8Array }[] = [];
      let h = m.prevHash;
      for (const rb of m.records) {
        h = chainAudit(h, rb);
        chain.push({ seq: auditRecordFromBytes(rb).seq, bytes: rb, hash: h });
      }
      // What is stored for the export's span (the record before it and its own seqs), and the
      // chain heads receipts signed there, read once each (not once per record: on
      // PostgreSQL each statement is a round trip). The checks below only read them.
      const stored = new Map<number, { chain_hash: Buffer; anchored: number }>();
      const heads = new Map<number, Buffer[]>();
      if (v.firstSeq !== undefined) {
        const lo = v.firstSeq - 1;
        const hi = chain.reduce((top, c) => Math.max(top, c.seq), lo);
        // Both in one statement: stored records (src 0) and receipt-signed heads (src 1).
        const rows = this.db
          .prepare(
            `SELECT 0 AS src, seq, chain_hash AS hash, anchored FROM audit_records WHERE lock_id = ? AND seq BETWEEN ? AND ?
             UNION ALL SELECT 1 AS src, audit_seq AS seq, audit_head AS hash, 0 AS anchored FROM receipts WHERE lock_id = ? AND audit_seq BETWEEN ? AND ?`,
          )
          .all(l.lock_id, lo, hi, l.lock_id, lo, hi) as { src: number | string; seq: number; hash: Buffer; anchored: number }[];
        for (const r of rows) {
          const seq = Number(r.seq);
          if (Number(r.src) === 0) stored.set(seq, { chain_hash: r.hash, anchored: Number(r.anchored) });
          else {
            const list = heads.get(seq) ?? [];
            list.push(r.hash);
            heads.set(seq, list);
          }
        }
      }
      let dropFrom: number | null = null;
      if (v.firstSeq !== undefined) {
        const first = v.firstSeq;
        const before = stored.get(first - 1);
        const beforeMatches = before !== undefined && bytesEqual(before.chain_hash, m.prevHash);
        if (before !== undefined && !beforeMatches) {
          if (before.anchored === 1) throw new AuthorityError('AUDIT_CHAIN_MISMATCH', `export does not continue the anchored chain at seq ${first - 1}`, { seq: first - 1 });
          dropFrom = first - 1;
        }
        const fromGenesis = first === 1 && bytesEqual(m.prevHash, AUDIT_GENESIS);
        const fromHead = (heads.get(first - 1) ?? []).some((r) => bytesEqual(r, m.prevHash));
        const fromOldest = first === v.oldestSeq;
        if (!(fromGenesis || (beforeMatches && before?.anchored === 1) || fromHead || fromOldest))
          throw new AuthorityError('AUDIT_CHAIN_GAP', `export starts at seq ${first}, after records this authority does not hold (the lock holds from seq ${v.oldestSeq}); export from there`, {
            firstSeq: first,
            oldestSeq: v.oldestSeq,
          });
        for (const c of chain) {
          const st = stored.get(c.seq);
          if (st !== undefined && !bytesEqual(st.chain_hash, c.hash)) {
            if (st.anchored === 1) throw new AuthorityError('AUDIT_CHAIN_MISMATCH', `record ${c.seq} differs from the anchored chain`, { seq: c.seq });
            dropFrom ??= c.seq;
          }
          for (const r of heads.get(c.seq) ?? [])
            if (!bytesEqual(r, c.hash)) throw new AuthorityError('AUDIT_CHAIN_MISMATCH', `record ${c.seq} does not match the chain head the lock signed in a receipt`, { seq: c.seq });
        }
      }
      // Unauthenticated records this signed chain contradicts (and everything stored after
      // them, which chained from them) were fabricated or belong to nobody: replace them.
      if (dropFrom !== null) this.db.prepare('DELETE FROM audit_records WHERE lock_id = ? AND anchored = 0 AND seq >= ?').run(l.lock_id, dropFrom);
      // The records in multi-row inserts; those already held (the insert skips them) are
      // marked anchored, set-based.
      const now = this.now();
      const fresh = new Set<number>();
      for (let at = 0; at < chain.length; at += AUDIT_ROWS_CHUNK) {
        const part = chain.slice(at, at + AUDIT_ROWS_CHUNK);
        const inserted = this.db
          .prepare(`INSERT OR IGNORE INTO audit_records (lock_id, seq, record, chain_hash, anchored, received_at) VALUES ${part.map(() => '(?, ?, ?, ?, 1, ?)').join(', ')} RETURNING seq`)
          .all(...part.flatMap((c) => [l.lock_id, c.seq, blob(c.bytes), blob(c.hash), now])) as { seq: number }[];
        for (const r of inserted) fresh.add(Number(r.seq));
      }
      const accepted = fresh.size;
      const held = [...new Set(chain.map((c) => c.seq))].filter((seq) => !fresh.has(seq));
      for (let at = 0; at < held.length; at += AUDIT_ROWS_CHUNK) {
        const seqs = held.slice(at, at + AUDIT_ROWS_CHUNK);
        this.db.prepare(`UPDATE audit_records SET anchored = 1 WHERE lock_id = ? AND anchored = 0 AND seq IN (${seqs.map(() => '?').join(',')})`).run(l.lock_id, ...seqs);
      }
      // Anchor: every record from the lock's oldest through S is held here.
      let through = 0;
      let throughHash: Buffer | undefined;
      const start = Math.max(1, v.oldestSeq);
      if (v.oldestSeq > 0) {
        const rows = this.db.prepare('SELECT seq, chain_hash FROM audit_records WHERE lock_id = ? AND seq BETWEEN ? AND ? ORDER BY seq').all(l.lock_id, start, v.lastSeq) as {
          seq: number;
          chain_hash: Buffer;
        }[];
        for (const r of rows) {
          if (Number(r.seq) !== (through === 0 ? start : through + 1)) break;
          through = Number(r.seq);
          throughHash = r.chain_hash;
        }
      }
      if (through === 0 || throughHash === undefined) return { accepted, anchoredThrough: null };
      const anchor = makeAuditAnchor({ lockId: l.lock_id, seq: through, hash: u8(throughHash), keyId: keyIdOf(key.publicKey) }, key.secretKey);
      return { accepted, anchoredThrough: through, anchor: toHex(encodeMessage(anchor)) };
    });
  }

  auditLog(lockId: string): { seq: number; time: number; event: string; credId?: number; reason?: number; value?: number; anchored: boolean }[] {
    this.lockRow(lockId);
    return (this.db.prepare('SELECT seq, record, anchored FROM audit_records WHERE lock_id = ? ORDER BY seq').all(lockId) as { seq: number; record: Buffer; anchored: number }[]).map(
      (r) => ({ ...auditRecordFromBytes(u8(r.record)), anchored: r.anchored === 1 }),
    );
  }
}
