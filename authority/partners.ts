// OpenDOOR partners: authorized first, then assigned per door or through a partner key;
// terminated only once assigned nowhere.

import { AuthorityError } from './errors';
import { requireName } from './validate';
import { type PartnerInfo } from './types';
import { sha256 } from './rows';
import { People } from './people';

export abstract class Partners extends People {
  partner(partnerId: number): PartnerInfo {
    const p = this.partnerRow(partnerId);
    return {
      id: p.id,
      name: p.name,
      status: p.status,
      doors: (this.db.prepare('SELECT door_id FROM partner_doors WHERE partner_id = ? ORDER BY door_id').all(p.id) as { door_id: number }[]).map((r) => r.door_id),
      keys: (this.db.prepare('SELECT id FROM keys WHERE partner_id = ? ORDER BY id').all(p.id) as { id: number }[]).map((r) => r.id),
      devices: (this.db.prepare('SELECT id FROM devices WHERE partner_id = ? ORDER BY id').all(p.id) as { id: number }[]).map((r) => r.id),
    };
  }

  listPartners(): PartnerInfo[] {
    return (this.db.prepare('SELECT id FROM partners ORDER BY id').all() as { id: number }[]).map((r) => this.partner(r.id));
  }

  /**
   * Make a partner known at the property before it is authorized (the manager's request to
   * DOOR's integrations team is on its way). It cannot be assigned, hold keys or enrol
   * devices, and has no token, until authorizePartner.
   */
  registerPartner(name: string): PartnerInfo {
    const n = requireName(name, 'name');
    return this.batch(() => {
      const existing = this.db.prepare('SELECT id FROM partners WHERE name = ?').get(n) as { id: number } | undefined;
      if (existing !== undefined) throw new AuthorityError('CONFLICT', `partner ${JSON.stringify(n)} is already known at this property`, { partnerId: existing.id });
      const r = this.db.prepare("INSERT INTO partners (name, status, created_at) VALUES (?, 'pending', ?)").run(n, this.now());
      return this.partner(Number(r.lastInsertRowid));
    });
  }

  /** The integrations step: the partner (new, registered or terminated) becomes authorized at the property. */
  authorizePartner(name: string): { partner: PartnerInfo; token: string } {
    const n = requireName(name, 'name');
    return this.batch(() => {
      const existing = this.db.prepare('SELECT id, status FROM partners WHERE name = ?').get(n) as { id: number; status: string } | undefined;
      const token = this.newToken('partner');
      if (existing !== undefined) {
        if (existing.status === 'authorized') throw new AuthorityError('CONFLICT', `partner ${JSON.stringify(n)} is already authorized`, { partnerId: existing.id });
        this.db.prepare("UPDATE partners SET status = 'authorized', token_hash = ?, terminated_at = NULL WHERE id = ?").run(sha256(token), existing.id);
        return { partner: this.partner(existing.id), token };
      }
      const r = this.db.prepare("INSERT INTO partners (name, status, token_hash, created_at) VALUES (?, 'authorized', ?, ?)").run(n, sha256(token), this.now());
      return { partner: this.partner(Number(r.lastInsertRowid)), token };
    });
  }

  assignPartnerToDoor(partnerId: number, doorId: number): PartnerInfo {
    return this.batch(() => {
      const p = this.requireAuthorizedPartner(partnerId);
      const d = this.doorRow(doorId);
      if (this.db.prepare('SELECT 1 FROM partner_doors WHERE partner_id = ? AND door_id = ?').get(p.id, d.id))
        throw new AuthorityError('CONFLICT', `partner ${p.id} is already assigned to door ${d.id}`);
      this.db.prepare('INSERT INTO partner_doors (partner_id, door_id, created_at) VALUES (?, ?, ?)').run(p.id, d.id, this.now());
      this.touch([d.id]);
      return this.partner(p.id);
    });
  }

  unassignPartnerFromDoor(partnerId: number, doorId: number): PartnerInfo {
    return this.batch(() => {
      const p = this.partnerRow(partnerId);
      const d = this.doorRow(doorId);
      const r = this.db.prepare('DELETE FROM partner_doors WHERE partner_id = ? AND door_id = ?').run(p.id, d.id);
      if (r.changes === 0) throw new AuthorityError('CONFLICT', `partner ${p.id} is not assigned to door ${d.id}`);
      // The partner's grants at this door (outside its keys) end with its assignment there.
      this.db.prepare('DELETE FROM partner_grant_doors WHERE door_id = ? AND grant_id IN (SELECT id FROM partner_grants WHERE partner_id = ? AND key_id IS NULL)').run(d.id, p.id);
      this.db
        .prepare('DELETE FROM partner_grants WHERE partner_id = ? AND key_id IS NULL AND NOT EXISTS (SELECT 1 FROM partner_grant_doors gd WHERE gd.grant_id = partner_grants.id)')
        .run(p.id);
      this.touch([d.id]);
      return this.partner(p.id);
    });
  }

  /**
   * Terminate the integration. Refused while the partner is still assigned to any door
   * (directly or through a partner key); the refusal lists those doors and keys.
   */
  terminatePartner(partnerId: number): PartnerInfo {
    return this.batch(() => {
      const p = this.partnerRow(partnerId);
      if (p.status === 'terminated') throw new AuthorityError('FORBIDDEN_TRANSITION', `partner ${p.id} is already terminated`);
      if (p.status === 'pending') throw new AuthorityError('PARTNER_NOT_AUTHORIZED', `partner ${p.id} was never authorized at this property: there is no integration to terminate`, { partnerId: p.id, status: p.status });
      const direct = this.db.prepare('SELECT d.id, d.name FROM partner_doors pd JOIN doors d ON d.id = pd.door_id WHERE pd.partner_id = ? ORDER BY d.id').all(p.id) as { id: number; name: string }[];
      const viaKeys = this.db
        .prepare('SELECT d.id, d.name, k.id AS key_id FROM keys k JOIN key_doors kd ON kd.key_id = k.id JOIN doors d ON d.id = kd.door_id WHERE k.partner_id = ? ORDER BY d.id, k.id')
        .all(p.id) as { id: number; name: string; key_id: number }[];
      const keys = (this.db.prepare('SELECT id FROM keys WHERE partner_id = ? ORDER BY id').all(p.id) as { id: number }[]).map((k) => k.id);
      if (direct.length > 0 || keys.length > 0) {
        const doors = [
          ...direct.map((d) => ({ doorId: d.id, name: d.name, via: 'door' as const })),
          ...viaKeys.map((d) => ({ doorId: d.id, name: d.name, via: 'key' as const, keyId: d.key_id })),
        ];
        throw new AuthorityError('PARTNER_STILL_ASSIGNED', `partner ${p.id} is still assigned to door(s) ${[...new Set(doors.map((d) => d.doorId))].join(', ') || '(none)'}${keys.length ? ` and partner key(s) ${keys.join(', ')}` : ''}`, {
          doors,
          keys,
        });
      }
      const now = this.now();
      // The last token's hash stays, so a call with it is told PARTNER_TERMINATED, not UNKNOWN.
      this.db.prepare("UPDATE partners SET status = 'terminated', previous_token_hash = COALESCE(token_hash, previous_token_hash), token_hash = NULL, terminated_at = ? WHERE id = ?").run(now, p.id);
      // Whatever it granted its users ends with it (already inert: it is assigned nowhere).
      this.db.prepare('DELETE FROM partner_grants WHERE partner_id = ?').run(p.id);
      // Its devices' tokens die with the integration (they could otherwise still carry data).
      this.db.prepare('UPDATE devices SET revoked_at = ? WHERE partner_id = ? AND revoked_at IS NULL').run(now, p.id);
      return this.partner(p.id);
    });
  }
}
