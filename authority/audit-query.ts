// The manager's audit question: who opened door X between T1 and T2, with which credential,
// and is that record anchored by a receipt — with every refusal and its reason.
//
// It reads what the authority already stores and verifies: audit records relayed by phones
// and uplinks (accepted only from exports signed by the lock's device key, their hash chain
// checked — acceptAudit), the lock-signed receipts (each carries the audit chain head at its
// audit seq), and the credential-id registry (cred_ids: which grant and subject each id of
// each lock was issued for; rows outlive the grant, so history stays attributable).
// A record is *receipt-anchored* when a receipt's signed audit head equals the chain hash the
// authority holds at the receipt's audit seq, and every record from this one to that seq is
// held: the lock itself then vouched for this record, beyond the export's own signature.

import { decisionReasonName, type AuditRecord, auditRecordFromBytes } from '../protocol/index';
import type { Authority } from './authority';
import { AuthorityError } from './errors';
import { invalid } from './validate';

export interface AuditQuery {
  /** The door (manager id) or its lock id; one of the two. */
  doorId?: number;
  lockId?: string;
  /** Unix seconds, inclusive; lock clock time as recorded. */
  from?: number;
  until?: number;
  /** Leave refusals out (default: included). */
  grantedOnly?: boolean;
}

export type AccessMethod = 'phone' | 'doorcode' | 'keycard' | 'dailyCode';

export interface AuditWho {
  kind: 'user' | 'partner' | 'dailyCode' | 'unknown';
  id?: number;
  name?: string;
  /** resident | staff | guest for users; absent when the user has since been removed. */
  role?: string;
  /** The user or partner no longer exists at the property (the record stays attributable by id). */
  removed?: boolean;
}

export interface AuditAccess {
  seq: number;
  /** Lock clock, unix seconds, and the same as ISO 8601 UTC. */
  time: number;
  at: string;
  granted: boolean;
  /** DECISION_REASONS name (GRANTED, UNKNOWN_CREDENTIAL, OUT_OF_SCHEDULE, …). */
  reason: string;
  method: AccessMethod;
  credId: number | null;
  /** What the id was issued for: phone, guest-phone, partner-phone, doorcode, keycard (null: never issued here). */
  credential: { kind: string; deviceId: number | null } | null;
  who: AuditWho;
  /** The record came in an export signed by the lock and continues the chain the authority holds. */
  verified: boolean;
  /** The first receipt whose signed audit head covers this record, or null. */
  receipt: { version: number; auditSeq: number; receivedAt: number } | null;
}

export interface AuditReport {
  door: { id: number; name: string; lockId: string };
  from: number | null;
  until: number | null;
  accesses: AuditAccess[];
  /** Refusals the lock counted but did not log one by one (coalesced), within the window. */
  refusalsNotLogged: number;
  /** Records the lock reported lost (its ring recycled them before they were relayed). */
  recordsLost: number;
  /** Newest audit seq the authority holds for this lock, and how far receipts anchor. */
  heldThroughSeq: number | null;
  receiptAnchoredThroughSeq: number | null;
}

const METHODS: readonly AccessMethod[] = ['phone', 'doorcode', 'keycard', 'dailyCode'];

function optTime(v: unknown, what: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalid(`${what} must be unix seconds (a non-negative integer)`);
  return v;
}

/** Who opened (or tried to open) a door in a time window, per the verified audit log. */
export function auditReport(a: Authority, q: AuditQuery): AuditReport {
  const db = a.db;
  const from = optTime(q.from, 'from');
  const until = optTime(q.until, 'until');
  if (from !== undefined && until !== undefined && until < from) throw invalid('until is before from');
  let lock: { lock_id: string; door_id: number } | undefined;
  if (q.lockId !== undefined) {
    lock = db.prepare('SELECT lock_id, door_id FROM locks WHERE lock_id = ?').get(q.lockId) as typeof lock;
    if (lock === undefined) throw new AuthorityError('UNKNOWN_LOCK', `no lock ${q.lockId}`);
  } else if (q.doorId !== undefined) {
    const door = a.door(q.doorId);
    lock = db.prepare('SELECT lock_id, door_id FROM locks WHERE door_id = ?').get(door.id) as typeof lock;
    if (lock === undefined) throw new AuthorityError('UNKNOWN_LOCK', `door ${door.id} has no lock yet (provision one first)`, { doorId: door.id });
  } else throw invalid('name a door (doorId) or a lock (lockId)');
  const door = a.door(lock.door_id);

  const stored = db.prepare('SELECT seq, record, chain_hash, anchored FROM audit_records WHERE lock_id = ? ORDER BY seq').all(lock.lock_id) as {
    seq: number;
    record: Buffer;
    chain_hash: Buffer;
    anchored: number;
  }[];
  const hashAt = new Map(stored.map((r) => [r.seq, r.chain_hash]));
  // Receipts whose signed head matches the chain held here; from each, back over the
  // contiguous records held, every record is anchored by it (the earliest such receipt wins).
  const receipts = db.prepare('SELECT version, audit_seq, audit_head, received_at FROM receipts WHERE lock_id = ? ORDER BY audit_seq, id').all(lock.lock_id) as {
    version: number;
    audit_seq: number;
    audit_head: Buffer;
    received_at: number;
  }[];
  const anchoredBy = new Map<number, AuditAccess['receipt']>();
  let receiptAnchoredThrough: number | null = null;
  for (const r of receipts) {
    const h = hashAt.get(r.audit_seq);
    if (h === undefined || !h.equals(r.audit_head)) continue;
    receiptAnchoredThrough = Math.max(receiptAnchoredThrough ?? 0, r.audit_seq);
    for (let s = r.audit_seq; s >= 1 && hashAt.has(s) && !anchoredBy.has(s); s--) anchoredBy.set(s, { version: r.version, auditSeq: r.audit_seq, receivedAt: r.received_at });
  }

  const credOf = db.prepare('SELECT ref, device_id, subject FROM cred_ids WHERE lock_id = ? AND cred_id = ?');
  const userOf = db.prepare('SELECT id, name, role FROM users WHERE id = ?');
  const partnerOf = db.prepare('SELECT id, name FROM partners WHERE id = ?');
  const whoOf = (subject: string): AuditWho => {
    const m = /^(user|partner):(\d+)$/.exec(subject);
    if (m === null) return { kind: 'unknown' };
    const id = Number(m[2]);
    if (m[1] === 'user') {
      const u = userOf.get(id) as { id: number; name: string; role: string } | undefined;
      return u === undefined ? { kind: 'user', id, removed: true } : { kind: 'user', id, name: u.name, role: u.role };
    }
    const p = partnerOf.get(id) as { id: number; name: string } | undefined;
    return p === undefined ? { kind: 'partner', id, removed: true } : { kind: 'partner', id, name: p.name };
  };

  const accesses: AuditAccess[] = [];
  let refusalsNotLogged = 0;
  let recordsLost = 0;
  for (const row of stored) {
    const rec: AuditRecord = auditRecordFromBytes(new Uint8Array(row.record));
    if ((from !== undefined && rec.time < from) || (until !== undefined && rec.time > until)) continue;
    if (rec.event === 'refusalsNotLogged') refusalsNotLogged += rec.value ?? 0;
    if (rec.event === 'recordsLost') recordsLost += rec.value ?? 0;
    if (rec.event !== 'access') continue;
    const reason = rec.reason === undefined ? 'GRANTED' : (decisionReasonName(rec.reason) ?? `reason ${rec.reason}`);
    const granted = reason === 'GRANTED';
    if (q.grantedOnly === true && !granted) continue;
    const method = METHODS[rec.value ?? 0] ?? 'phone';
    let credential: AuditAccess['credential'] = null;
    let who: AuditWho = method === 'dailyCode' ? { kind: 'dailyCode' } : { kind: 'unknown' };
    if (rec.credId !== undefined && method !== 'dailyCode') {
      const c = credOf.get(lock.lock_id, rec.credId) as { ref: string; device_id: number | null; subject: string } | undefined;
      if (c !== undefined) {
        credential = { kind: c.ref.split(':')[0] as string, deviceId: c.device_id };
        who = whoOf(c.subject);
      }
    }
    accesses.push({
      seq: rec.seq,
      time: rec.time,
      at: new Date(rec.time * 1000).toISOString(),
      granted,
      reason,
      method,
      credId: rec.credId ?? null,
      credential,
      who,
      verified: row.anchored === 1,
      receipt: anchoredBy.get(rec.seq) ?? null,
    });
  }
  const last = stored[stored.length - 1];
  return {
    door: { id: door.id, name: door.name, lockId: lock.lock_id },
    from: from ?? null,
    until: until ?? null,
    accesses,
    refusalsNotLogged,
    recordsLost,
    heldThroughSeq: last === undefined ? null : last.seq,
    receiptAnchoredThroughSeq: receiptAnchoredThrough,
  };
}

/** The report as a table (the CLI's human output). */
export function formatAuditReport(r: AuditReport): string {
  const head = `${r.door.name} (door ${r.door.id}, lock ${r.door.lockId})${r.from !== null || r.until !== null ? `, ${r.from !== null ? new Date(r.from * 1000).toISOString() : 'start'} – ${r.until !== null ? new Date(r.until * 1000).toISOString() : 'now'}` : ''}`;
  const rows = r.accesses.map((x) => [
    x.at.replace('.000Z', 'Z'),
    x.granted ? 'opened' : 'refused',
    x.reason,
    x.who.kind === 'dailyCode' ? 'daily code' : x.who.kind === 'unknown' ? '?' : `${x.who.kind} ${x.who.id}${x.who.name !== undefined ? ` ${x.who.name}` : ''}${x.who.removed ? ' (removed)' : ''}`,
    `${x.method}${x.credId !== null ? ` #${x.credId}` : ''}${x.credential !== null ? ` (${x.credential.kind})` : ''}`,
    x.receipt !== null ? `receipt v${x.receipt.version} (audit seq ${x.receipt.auditSeq})` : x.verified ? 'signed export, no receipt yet' : 'unverified',
  ]);
  const header = ['time (UTC)', 'outcome', 'reason', 'who', 'credential', 'anchored by'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd();
  const out = [head, line(header), ...rows.map(line)];
  if (rows.length === 0) out.push('(no access records in this window)');
  if (r.refusalsNotLogged > 0) out.push(`${r.refusalsNotLogged} further refusal(s) were counted by the lock but not logged one by one`);
  if (r.recordsLost > 0) out.push(`${r.recordsLost} record(s) were lost at the lock before they were relayed`);
  out.push(`held through audit seq ${r.heldThroughSeq ?? '-'}; anchored by receipts through seq ${r.receiptAnchoredThroughSeq ?? '-'}`);
  return out.join('\n');
}
