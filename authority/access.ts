// Who is calling: bearer tokens to principals, and which principals may carry which
// lock's data.

import { bytesEqual } from '../protocol';
import { AuthorityError } from './errors';
import { type Principal } from './types';
import { sha256, TOKEN_PREFIX } from './rows';
import { AuditStore } from './audit';

/**
 * Whether device `d` (its id, user_id, partner_id) may carry the data of lock `l`: its user
 * holds a Key (or a guest key, or a doorcode) at the lock's door, or its partner is assigned
 * to that door (directly or through a partner key), or its own credential's revocation is
 * still pending at that lock — the lock still admits it, and it may carry the update that
 * removes it (the partner SDK's passive sync) until that is in force. NULL matches nothing.
 */
const ENTITLED = `CASE WHEN (d.user_id IS NOT NULL AND (
      EXISTS (SELECT 1 FROM assignments a JOIN key_doors kd ON kd.key_id = a.key_id WHERE a.user_id = d.user_id AND kd.door_id = l.door_id)
      OR EXISTS (SELECT 1 FROM doorcodes dc WHERE dc.user_id = d.user_id AND dc.door_id = l.door_id)))
  OR (d.user_id IS NULL AND d.partner_id IS NOT NULL AND (
      EXISTS (SELECT 1 FROM partner_doors pd WHERE pd.partner_id = d.partner_id AND pd.door_id = l.door_id)
      OR EXISTS (SELECT 1 FROM keys k JOIN key_doors kd ON kd.key_id = k.id WHERE k.partner_id = d.partner_id AND kd.door_id = l.door_id)))
  OR EXISTS (SELECT 1 FROM revocations r LEFT JOIN cred_ids c ON c.lock_id = r.lock_id AND c.cred_id = r.cred_id
      WHERE r.lock_id = l.lock_id AND r.version > l.in_force_version AND (c.device_id = d.id OR r.partner_id = d.partner_id))
  THEN 1 ELSE 0 END`;

export abstract class AccessControl extends AuditStore {
  /** What authenticate(token, lockId) read about a device principal's entitlement to that lock. */
  private readonly entitlementRead = new WeakMap<Principal, { lockId: string; exists: boolean; entitled: boolean }>();

  /**
   * Who holds this bearer token. A refusal is 401 UNAUTHORIZED with `details.reason`:
   * MISSING, MALFORMED, UNKNOWN, EXPIRED (a device token past its lifetime: rotate it
   * before then), ROTATED (a device's or partner's token replaced by rotation), REVOKED (its device was
   * revoked) or PARTNER_TERMINATED (a partner whose integration ended, or one of its devices).
   */
  authenticate(token: string | undefined, forLock?: string): Principal {
    if (token === undefined || token === '') throw new AuthorityError('UNAUTHORIZED', 'missing bearer token', { reason: 'MISSING' });
    if (!token.startsWith(TOKEN_PREFIX)) throw new AuthorityError('UNAUTHORIZED', 'malformed bearer token', { reason: 'MALFORMED' });
    const h = sha256(token);
    // The manager's token hash, the device holding this token and — for a request about a
    // lock — whether that device may carry the lock's data, in one statement: every phone
    // request authenticates and is checked, and on PostgreSQL each statement is a round trip.
    const found = this.db
      .prepare(
        `SELECT m.value AS manager_hash, d.id, d.user_id, d.partner_id, d.revoked_at, d.token_expires_at, p.status AS partner_status,
                l.lock_id AS for_lock, ${ENTITLED} AS entitled FROM meta m
         LEFT JOIN devices d ON d.token_hash = ? LEFT JOIN partners p ON p.id = d.partner_id LEFT JOIN locks l ON l.lock_id = ?
         WHERE m.key = 'managerTokenHash'`,
      )
      .get(h, forLock ?? null) as
      | {
          manager_hash: string;
          id: number | null;
          user_id: number | null;
          partner_id: number | null;
          revoked_at: number | null;
          token_expires_at: number | null;
          partner_status: string | null;
          for_lock: string | null;
          entitled: number | string;
        }
      | undefined;
    if (found === undefined) throw new AuthorityError('NOT_INITIALIZED', 'meta managerTokenHash missing');
    if (bytesEqual(h, Buffer.from(String(found.manager_hash), 'hex'))) return { kind: 'manager' };
    const dev = found.id === null ? undefined : { ...found, id: found.id };
    if (dev) {
      // A device token dies with its device's revocation, its partner's termination, or its lifetime.
      if (dev.partner_id !== null && dev.partner_status !== 'authorized')
        throw new AuthorityError('UNAUTHORIZED', `device ${dev.id}'s partner is no longer authorized at this property`, { reason: 'PARTNER_TERMINATED', deviceId: dev.id });
      if (dev.revoked_at !== null) throw new AuthorityError('UNAUTHORIZED', `device ${dev.id} was revoked`, { reason: 'REVOKED', deviceId: dev.id });
      if (dev.token_expires_at !== null && this.now() >= dev.token_expires_at)
        throw new AuthorityError('UNAUTHORIZED', `device token expired at ${dev.token_expires_at} (unix s): rotate tokens before they expire, or have the manager issue a new one`, {
          reason: 'EXPIRED',
          deviceId: dev.id,
          expiredAt: dev.token_expires_at,
        });
      const principal: Principal = { kind: 'device', deviceId: dev.id, userId: dev.user_id, partnerId: dev.partner_id };
      if (forLock !== undefined) this.entitlementRead.set(principal, { lockId: forLock, exists: found.for_lock !== null, entitled: Number(found.entitled) === 1 });
      return principal;
    }
    const rotated = this.db.prepare('SELECT id FROM devices WHERE previous_token_hash = ?').get(h) as { id: number } | undefined;
    if (rotated) throw new AuthorityError('UNAUTHORIZED', `this token of device ${rotated.id} was replaced by rotation: use the new one`, { reason: 'ROTATED', deviceId: rotated.id });
    const p = this.db.prepare("SELECT id FROM partners WHERE token_hash = ? AND status = 'authorized'").get(h) as { id: number } | undefined;
    if (p) return { kind: 'partner', partnerId: p.id };
    const former = this.db.prepare('SELECT id, status FROM partners WHERE previous_token_hash = ?').get(h) as { id: number; status: string } | undefined;
    if (former?.status === 'authorized')
      throw new AuthorityError('UNAUTHORIZED', `this API token of partner ${former.id} was replaced by rotation: use the new one`, { reason: 'ROTATED', partnerId: former.id });
    if (former !== undefined)
      throw new AuthorityError('UNAUTHORIZED', `partner ${former.id} is no longer authorized at this property`, { reason: 'PARTNER_TERMINATED', partnerId: former.id });
    const l = this.db.prepare('SELECT lock_id FROM locks WHERE token_hash = ?').get(h) as { lock_id: string } | undefined;
    if (l) return { kind: 'lock', lockId: l.lock_id };
    throw new AuthorityError('UNAUTHORIZED', 'unknown bearer token', { reason: 'UNKNOWN' });
  }

  /**
   * May this principal carry this lock's data (its updates, signed time, receipts, audit)?
   * The manager; the lock itself; a device whose user holds a Key (or a guest key, or a
   * doorcode) at the lock's door, or whose partner is assigned to that door (directly or
   * through a partner key), or whose own credential's revocation is still pending at that
   * lock (it may carry its own removal, no more). Anyone else — another door's resident, a terminated partner —
   * is refused (FORBIDDEN), whatever its token.
   */
  entitledTo(p: Principal, lockId: string): boolean {
    if (p.kind === 'manager') return true;
    if (p.kind === 'lock') return p.lockId === lockId;
    if (p.kind !== 'device') return false;
    const read = this.entitlementRead.get(p);
    let l: { exists: boolean; entitled: boolean };
    if (read !== undefined && read.lockId === lockId) l = read;
    else {
      const r = this.db
        .prepare(`SELECT ${ENTITLED} AS entitled FROM locks l, (SELECT CAST(? AS INTEGER) AS id, CAST(? AS INTEGER) AS user_id, CAST(? AS INTEGER) AS partner_id) d WHERE l.lock_id = ?`)
        .get(p.deviceId, p.userId, p.partnerId, lockId) as { entitled: number | string } | undefined;
      l = { exists: r !== undefined, entitled: r !== undefined && Number(r.entitled) === 1 };
    }
    // Lock ids are no secret (every lock advertises its own): an unknown one is a 404 that
    // names it, for any authenticated caller, rather than a 403 that hides a typo.
    if (!l.exists) throw new AuthorityError('UNKNOWN_LOCK', `no lock ${lockId}`, { lockId });
    return l.entitled;
  }
}
