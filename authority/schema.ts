// SQLite schema and migrations. Each migration runs once, inside a transaction, and is
// recorded in schema_migrations; opening a database written by a newer build is refused.

import type { SqlDatabase } from './db';
import { AuthorityError } from './errors';

const MIGRATIONS: { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'property model, locks, versions, receipts',
    sql: `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE doors (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL CHECK (kind IN ('communal', 'private')),
  connected INTEGER NOT NULL CHECK (connected IN (0, 1)),
  policy TEXT,
  created_at INTEGER NOT NULL
);

CREATE TABLE partners (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  status TEXT NOT NULL CHECK (status IN ('authorized', 'terminated')),
  token_hash BLOB UNIQUE,
  created_at INTEGER NOT NULL,
  terminated_at INTEGER
);

CREATE TABLE users (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('resident', 'staff', 'guest')),
  invited_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
  created_at INTEGER NOT NULL
);

-- A Key: a set of doors. partner_id makes it a partner key (never changes once set).
-- guest_of marks the one-door Keys created for a guest from a resident's assignment.
CREATE TABLE keys (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  partner_id INTEGER REFERENCES partners(id),
  guest_of INTEGER REFERENCES assignments(id) ON DELETE CASCADE,
  created_at INTEGER NOT NULL
);
CREATE INDEX keys_partner ON keys(partner_id);
CREATE INDEX keys_guest_of ON keys(guest_of);

CREATE TABLE key_doors (
  key_id INTEGER NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
  door_id INTEGER NOT NULL REFERENCES doors(id),
  doorcodes_enabled INTEGER NOT NULL CHECK (doorcodes_enabled IN (0, 1)),
  schedule TEXT,
  PRIMARY KEY (key_id, door_id)
);
CREATE INDEX key_doors_door ON key_doors(door_id);

CREATE TABLE assignments (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  key_id INTEGER NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
  may_share INTEGER NOT NULL CHECK (may_share IN (0, 1)),
  valid_from INTEGER,
  valid_until INTEGER,
  created_at INTEGER NOT NULL,
  UNIQUE (user_id, key_id)
);
CREATE INDEX assignments_key ON assignments(key_id);

CREATE TABLE partner_doors (
  partner_id INTEGER NOT NULL REFERENCES partners(id),
  door_id INTEGER NOT NULL REFERENCES doors(id),
  created_at INTEGER NOT NULL,
  PRIMARY KEY (partner_id, door_id)
);
CREATE INDEX partner_doors_door ON partner_doors(door_id);

CREATE TABLE devices (
  id INTEGER PRIMARY KEY,
  user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
  partner_id INTEGER REFERENCES partners(id),
  public_key BLOB NOT NULL UNIQUE,
  token_hash BLOB NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  CHECK ((user_id IS NULL) <> (partner_id IS NULL))
);
CREATE INDEX devices_user ON devices(user_id);
CREATE INDEX devices_partner ON devices(partner_id);

-- Permanent doorcodes: one per user per door, sealed; belongs to the Key it came from.
CREATE TABLE doorcodes (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  door_id INTEGER NOT NULL REFERENCES doors(id),
  key_id INTEGER NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
  code_sealed BLOB NOT NULL,
  code_tag BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (user_id, door_id),
  UNIQUE (door_id, code_tag)
);
CREATE INDEX doorcodes_door ON doorcodes(door_id);

-- Losing a Key (unassigned, or the user removed) deletes the doorcodes it gave.
CREATE TRIGGER assignments_drop_doorcodes AFTER DELETE ON assignments BEGIN
  DELETE FROM doorcodes WHERE user_id = OLD.user_id AND key_id = OLD.key_id;
END;

CREATE TABLE keycards (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  uid BLOB NOT NULL UNIQUE,
  created_at INTEGER NOT NULL
);
CREATE INDEX keycards_user ON keycards(user_id);

CREATE TABLE daily_code_issues (
  door_id INTEGER NOT NULL REFERENCES doors(id),
  local_date TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('daily', 'dailySingleUse')),
  slot INTEGER NOT NULL,
  label TEXT,
  issued_at INTEGER NOT NULL,
  PRIMARY KEY (door_id, local_date, kind, slot)
);

CREATE TABLE signing_keys (
  serial INTEGER PRIMARY KEY,
  public_key BLOB NOT NULL,
  secret_sealed BLOB NOT NULL,
  cert_bytes BLOB NOT NULL,
  cert_signature BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  retired_at INTEGER
);

CREATE TABLE locks (
  lock_id TEXT PRIMARY KEY,
  door_id INTEGER NOT NULL UNIQUE REFERENCES doors(id),
  secret_sealed BLOB NOT NULL,
  device_public_key BLOB,
  token_hash BLOB UNIQUE,
  created_at INTEGER NOT NULL,
  in_force_version INTEGER NOT NULL DEFAULT 0,
  in_force_at INTEGER,
  last_lock_time INTEGER
);

-- credIds are allocated once per (lock, grant source) and never reused.
CREATE TABLE cred_ids (
  cred_id INTEGER PRIMARY KEY AUTOINCREMENT,
  lock_id TEXT NOT NULL REFERENCES locks(lock_id),
  ref TEXT NOT NULL,
  device_id INTEGER,
  subject TEXT NOT NULL,
  present INTEGER NOT NULL DEFAULT 0,
  UNIQUE (lock_id, ref)
);
CREATE INDEX cred_ids_device ON cred_ids(device_id, present);

-- Every version ever issued keeps its signed head; ops (from version-1) and full tables
-- (checkpoints and the newest) are kept for recent versions only.
CREATE TABLE lock_versions (
  lock_id TEXT NOT NULL REFERENCES locks(lock_id),
  version INTEGER NOT NULL,
  digest BLOB NOT NULL,
  issued_at INTEGER NOT NULL,
  key_serial INTEGER NOT NULL,
  head_bytes BLOB NOT NULL,
  head_signature BLOB NOT NULL,
  ops BLOB,
  table_bytes BLOB,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (lock_id, version)
);

-- A credential removed from a lock's table at a version; pending while the version in
-- force at that lock is older.
CREATE TABLE revocations (
  lock_id TEXT NOT NULL REFERENCES locks(lock_id),
  cred_id INTEGER NOT NULL,
  version INTEGER NOT NULL,
  removed_at INTEGER NOT NULL,
  kind TEXT NOT NULL,
  holder TEXT NOT NULL,
  partner_id INTEGER,
  key_id INTEGER,
  subject TEXT NOT NULL,
  PRIMARY KEY (lock_id, cred_id)
);

CREATE TABLE receipts (
  id INTEGER PRIMARY KEY,
  lock_id TEXT NOT NULL REFERENCES locks(lock_id),
  version INTEGER NOT NULL,
  nonce BLOB NOT NULL,
  lock_time INTEGER NOT NULL,
  audit_seq INTEGER NOT NULL,
  audit_head BLOB NOT NULL,
  received_at INTEGER NOT NULL
);
CREATE INDEX receipts_lock ON receipts(lock_id, audit_seq);

CREATE TABLE audit_records (
  lock_id TEXT NOT NULL REFERENCES locks(lock_id),
  seq INTEGER NOT NULL,
  record BLOB NOT NULL,
  chain_hash BLOB NOT NULL,
  anchored INTEGER NOT NULL DEFAULT 0,
  received_at INTEGER NOT NULL,
  PRIMARY KEY (lock_id, seq)
);
`,
  },
  {
    version: 2,
    name: 'revocable device tokens',
    // A terminated partner's devices keep their rows (history) but their tokens stop working.
    sql: `ALTER TABLE devices ADD COLUMN revoked_at INTEGER;`,
  },
  {
    version: 3,
    name: 'partners known before they are authorized',
    // "A partner must be authorized before it can be assigned": a partner can be known at
    // the property (status 'pending') before DOOR's integrations team authorizes it. SQLite
    // cannot change a CHECK in place: the table is rebuilt with the same ids (keys,
    // partner_doors and devices refer to it by name and id; see migrate for the checks).
    sql: `
CREATE TABLE partners_next (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  status TEXT NOT NULL CHECK (status IN ('pending', 'authorized', 'terminated')),
  token_hash BLOB UNIQUE,
  created_at INTEGER NOT NULL,
  terminated_at INTEGER
);
INSERT INTO partners_next (id, name, status, token_hash, created_at, terminated_at)
  SELECT id, name, status, token_hash, created_at, terminated_at FROM partners;
DROP TABLE partners;
ALTER TABLE partners_next RENAME TO partners;
`,
  },
  {
    version: 4,
    name: 'partner-issued access',
    // A partner grants its own users (residents, guests, couriers) access within its scope:
    // one of its partner keys (all_doors = every door the key has, now and later; otherwise
    // the doors listed) or doors it is assigned to directly (key_id NULL, doors listed).
    sql: `
CREATE TABLE partner_grants (
  id INTEGER PRIMARY KEY,
  partner_id INTEGER NOT NULL REFERENCES partners(id),
  key_id INTEGER REFERENCES keys(id) ON DELETE CASCADE,
  all_doors INTEGER NOT NULL CHECK (all_doors IN (0, 1)),
  subject TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('resident', 'guest', 'courier')),
  public_key BLOB NOT NULL,
  valid_from INTEGER,
  valid_until INTEGER,
  created_at INTEGER NOT NULL,
  CHECK (key_id IS NOT NULL OR all_doors = 0)
);
CREATE INDEX partner_grants_partner ON partner_grants(partner_id);
CREATE INDEX partner_grants_key ON partner_grants(key_id);
CREATE TABLE partner_grant_doors (
  grant_id INTEGER NOT NULL REFERENCES partner_grants(id) ON DELETE CASCADE,
  door_id INTEGER NOT NULL REFERENCES doors(id),
  PRIMARY KEY (grant_id, door_id)
);
CREATE INDEX partner_grant_doors_door ON partner_grant_doors(door_id);
`,
  },
  {
    version: 5,
    name: 'device tokens expire and rotate',
    // Tokens issued before this migration get the default lifetime (90 days) from now.
    sql: `
ALTER TABLE devices ADD COLUMN token_expires_at INTEGER;
ALTER TABLE devices ADD COLUMN previous_token_hash BLOB;
UPDATE devices SET token_expires_at = CAST(strftime('%s', 'now') AS INTEGER) + 7776000;
CREATE INDEX devices_previous_token ON devices(previous_token_hash);
`,
  },
  {
    version: 6,
    name: 'a receipt is counted once',
    // A courier's outbox retries a receipt until the authority answers, and two authority
    // processes may both receive it: a second copy of what the lock signed (session nonce,
    // version, audit head position) is the same receipt. Earlier builds stored copies; keep
    // the first.
    sql: `DELETE FROM receipts WHERE id NOT IN (SELECT MIN(id) FROM receipts GROUP BY lock_id, nonce, version, audit_seq);
CREATE UNIQUE INDEX receipts_once ON receipts(lock_id, nonce, version, audit_seq);`,
  },
  {
    version: 7,
    name: 'a rotated partner token is named as such',
    // As for device tokens (v5): the token a rotation replaced is kept as a hash, so a
    // partner still calling with it is told ROTATED (use the new one) rather than UNKNOWN.
    sql: `ALTER TABLE partners ADD COLUMN previous_token_hash BLOB;
CREATE INDEX partners_previous_token ON partners(previous_token_hash);`,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

export function migrate(db: SqlDatabase, now: number): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
  // Read and apply under one write lock, so two processes opening a fresh file at once
  // cannot both run a migration. A table rebuild (SQLite's documented way to change a
  // constraint) needs foreign-key enforcement off, which cannot change inside a transaction:
  // it is off while migrating, and every reference is checked before the commit.
  // (PostgreSQL changes constraints in place and enforces references throughout.)
  const enforced = db.engine === 'sqlite' && db.pragma('foreign_keys', { simple: true }) === 1;
  if (enforced) db.pragma('foreign_keys = OFF');
  try {
    migrateLocked(db, now);
  } finally {
    if (enforced) db.pragma('foreign_keys = ON');
  }
}

function migrateLocked(db: SqlDatabase, now: number): void {
  db.transaction(() => {
    const row = db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null };
    const current = row.v ?? 0;
    if (current > SCHEMA_VERSION) throw new AuthorityError('CONFLICT', `database schema v${current} is newer than this build (v${SCHEMA_VERSION})`);
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      db.exec(db.migrationSql(m.version, m.sql));
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, now);
    }
    const broken = db.engine === 'sqlite' ? (db.pragma('foreign_key_check') as unknown[]) : [];
    if (broken.length > 0) throw new AuthorityError('INTERNAL', `migration left ${broken.length} dangling reference(s)`, { broken });
  }).immediate();
}
