// Partner-issued access (OpenDOOR): a partner, through its own API token, grants its own
// users (residents, guests, couriers) access within its scope — the doors of its partner
// keys, or doors it is assigned to directly — never beyond (PARTNER_GRANT_OUT_OF_SCOPE).
// A grant follows its partner key (doors added and removed, schedules: the key's policy
// applies at the lock) and ends with the partner's scope: door removed from the key, key
// deleted, partner unassigned from the door or terminated. Each partner sees and revokes
// only its own grants; another partner's grant is UNKNOWN_GRANT, as if it did not exist.

import { isStrictEd25519PublicKey } from '../protocol/ed25519-strict';
import { toHex } from '../protocol';
import { AuthorityError } from './errors';
import { invalid, optTime, requireHex, requireId, requireName, requireValidity } from './validate';
import { type PartnerGrantInfo, type PartnerGrantInput, type PartnerUserRole } from './types';
import { Partners } from './partners';

interface PartnerGrantRow {
  id: number;
  partner_id: number;
  key_id: number | null;
  all_doors: number;
  subject: string;
  role: PartnerUserRole;
  public_key: Buffer;
  valid_from: number | null;
  valid_until: number | null;
}

const ROLES: readonly PartnerUserRole[] = ['resident', 'guest', 'courier'];

export abstract class PartnerGrants extends Partners {
  /** Grant one of the partner's users access within the partner's scope. */
  grantPartnerAccess(partnerId: number, input: PartnerGrantInput): PartnerGrantInfo {
    if (typeof input !== 'object' || input === null) throw invalid('a grant is {subject, role?, publicKey, keyId?, doorIds?, validFrom?, validUntil?}');
    const subject = requireName(input.subject, 'subject');
    const role = input.role ?? 'resident';
    if (!ROLES.includes(role)) throw invalid(`role must be one of ${ROLES.join(', ')}`);
    const pk = requireHex(input.publicKey, 'publicKey', { exact: 32 });
    if (!isStrictEd25519PublicKey(pk))
      throw new AuthorityError('WEAK_PUBLIC_KEY', 'publicKey is not a canonical Ed25519 point of large order (small-order and non-canonical keys let anyone sign)');
    const validFrom = optTime(input.validFrom, 'validFrom');
    const validUntil = optTime(input.validUntil, 'validUntil');
    requireValidity(validFrom, validUntil, 'grant');
    if (input.doorIds !== undefined && (!Array.isArray(input.doorIds) || input.doorIds.length === 0)) throw invalid('doorIds must list at least one door (or be left out)');
    const id = this.batch(() => {
      const p = this.requireAuthorizedPartner(partnerId);
      const doorIds = input.doorIds?.map((d) => this.doorRow(d).id);
      if (doorIds !== undefined && new Set(doorIds).size !== doorIds.length) throw invalid('a door is listed twice');
      let keyId: number | null = null;
      let scope: number[];
      if (input.keyId !== undefined) {
        const k = this.keyRow(requireId(input.keyId, 'keyId'));
        if (k.partner_id !== p.id)
          throw new AuthorityError('PARTNER_GRANT_OUT_OF_SCOPE', `key ${k.id} is not one of partner ${p.id}'s partner keys: a partner grants only within its own keys and doors`, {
            partnerId: p.id,
            keyId: k.id,
          });
        keyId = k.id;
        scope = this.keyDoorsOf(k.id).map((d) => d.doorId);
      } else {
        if (doorIds === undefined) throw invalid('give keyId (one of your partner keys) or doorIds (doors you are assigned to)');
        scope = (this.db.prepare('SELECT door_id FROM partner_doors WHERE partner_id = ?').all(p.id) as { door_id: number }[]).map((r) => r.door_id);
      }
      const beyond = (doorIds ?? []).filter((d) => !scope.includes(d));
      if (beyond.length > 0)
        throw new AuthorityError(
          'PARTNER_GRANT_OUT_OF_SCOPE',
          `door(s) ${beyond.join(', ')} are beyond partner ${p.id}'s ${keyId !== null ? `key ${keyId}` : 'directly assigned doors'}: a partner grants only within its scope`,
          { partnerId: p.id, keyId, doors: beyond },
        );
      const r = this.db
        .prepare('INSERT INTO partner_grants (partner_id, key_id, all_doors, subject, role, public_key, valid_from, valid_until, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(p.id, keyId, doorIds === undefined ? 1 : 0, subject, role, Buffer.from(pk), validFrom ?? null, validUntil ?? null, this.now());
      const grantId = Number(r.lastInsertRowid);
      const addDoor = this.db.prepare('INSERT INTO partner_grant_doors (grant_id, door_id) VALUES (?, ?)');
      for (const d of doorIds ?? []) addDoor.run(grantId, d);
      this.touch(doorIds ?? scope);
      return grantId;
    });
    return this.partnerGrant(partnerId, id);
  }

  /** The partner's own grants (nothing of another partner's). */
  partnerGrants(partnerId: number): PartnerGrantInfo[] {
    const p = this.partnerRow(partnerId);
    return (this.db.prepare('SELECT * FROM partner_grants WHERE partner_id = ? ORDER BY id').all(p.id) as PartnerGrantRow[]).map((g) => this.grantInfo(g));
  }

  partnerGrant(partnerId: number, grantId: number): PartnerGrantInfo {
    return this.grantInfo(this.ownGrantRow(partnerId, grantId));
  }

  /** Revoke one of the partner's grants: pending at offline doors until their sync. */
  revokePartnerGrant(partnerId: number, grantId: number): void {
    this.batch(() => {
      const g = this.ownGrantRow(partnerId, grantId);
      this.touch(this.grantDoors(g));
      this.db.prepare('DELETE FROM partner_grants WHERE id = ?').run(g.id);
    });
  }

  private ownGrantRow(partnerId: number, grantId: unknown): PartnerGrantRow {
    const p = this.partnerRow(partnerId);
    const id = requireId(grantId, 'grantId');
    const g = this.db.prepare('SELECT * FROM partner_grants WHERE id = ? AND partner_id = ?').get(id, p.id) as PartnerGrantRow | undefined;
    // Another partner's grant answers exactly like one that does not exist.
    if (g === undefined) throw new AuthorityError('UNKNOWN_GRANT', `partner ${p.id} has no grant ${id}`, { grantId: id });
    return g;
  }

  /** Doors a grant reaches now: listed (or all) doors still within the partner's scope. */
  private grantDoors(g: PartnerGrantRow): number[] {
    const sql =
      g.key_id !== null
        ? g.all_doors === 1
          ? 'SELECT door_id FROM key_doors WHERE key_id = ? ORDER BY door_id'
          : 'SELECT gd.door_id FROM partner_grant_doors gd JOIN key_doors kd ON kd.door_id = gd.door_id AND kd.key_id = ? WHERE gd.grant_id = ? ORDER BY gd.door_id'
        : 'SELECT gd.door_id FROM partner_grant_doors gd JOIN partner_doors pd ON pd.door_id = gd.door_id AND pd.partner_id = ? WHERE gd.grant_id = ? ORDER BY gd.door_id';
    const args = g.key_id !== null ? (g.all_doors === 1 ? [g.key_id] : [g.key_id, g.id]) : [g.partner_id, g.id];
    return (this.db.prepare(sql).all(...args) as { door_id: number }[]).map((r) => r.door_id);
  }

  private grantInfo(g: PartnerGrantRow): PartnerGrantInfo {
    const out: PartnerGrantInfo = {
      id: g.id,
      partnerId: g.partner_id,
      subject: g.subject,
      role: g.role,
      publicKey: toHex(new Uint8Array(g.public_key)),
      keyId: g.key_id,
      allDoors: g.all_doors === 1,
      doors: this.grantDoors(g),
      credentials: (
        this.db.prepare('SELECT lock_id, cred_id FROM cred_ids WHERE ref = ? AND present = 1 ORDER BY lock_id').all(`partner-grant:${g.id}`) as { lock_id: string; cred_id: number }[]
      ).map((r) => ({ lockId: r.lock_id, credId: r.cred_id })),
    };
    if (g.valid_from !== null) out.validFrom = g.valid_from;
    if (g.valid_until !== null) out.validUntil = g.valid_until;
    return out;
  }
}
