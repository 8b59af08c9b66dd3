// The authority: the property model from the seed articles, kept in SQLite, compiled into
// one signed credential table per lock.
//
// Every manager operation is one IMMEDIATE transaction: validate, mutate, then recompile
// the tables of the locks whose doors the operation touched — all or nothing. A table is
// rebuilt from the model, diffed against the lock's previous version with the protocol's
// `diffTables`, checked with the protocol's `applyOps` + `tableDigest` (the exact code the
// lock runs), signed with the online key and stored as a new version.

import { createHash, randomBytes } from 'node:crypto';
import { type SqlDatabase, describeLocation, isPostgresUrl, openDatabase, storageExists } from './db';
import {
  type Entry,
  type HolderClass,
  type KeyPolicy,
  type LockPolicy,
  type Op,
  type ScheduleWindow,
  type SignedHead,
  type SignedKeyCert,
  type Table,
  DEFAULT_LOCK_POLICY,
  ENTRY_FLAGS,
  ProtocolError,
  applyOps,
  auditRecordFromBytes,
  bytesEqual,
  chainAudit,
  decode,
  decodeMessage,
  decodeTableBytes,
  dailyCode,
  diffTables,
  doorcodeVerifier,
  emptyTable,
  encode,
  encodeMessage,
  encodeTable,
  issueKeyCert,
  keyCertFromCbor,
  keyIdOf,
  keyPairFromSeed,
  keycardVerifier,
  makeDelta,
  makeSignedTime,
  makeFloorReset,
  type SignedTimeBody,
  opFromCbor,
  opToCbor,
  publicKeyOf,
  signHead,
  signedHeadFromCbor,
  tableDigest,
  toHex,
  verifyReceipt,
  deriveSeed32,
  LOCK_ID_PATTERN,
  NONCE_BYTES,
  AUDIT_GENESIS,
  makeAuditAnchor,
  verifyAuditExport,
} from '../protocol';
import { isStrictEd25519PublicKey } from '../protocol/ed25519-strict';
import { AuthorityError } from './errors';
import { type KeyPaths, Sealer, keyPathsFor, readSecretFile, readSeedFile, writeSecretFile } from './keystore';
import { migrate } from './schema';
import {
  type ScheduleWindowInput,
  invalid,
  localDate,
  normalizePolicy,
  normalizeSchedule,
  optTime,
  requireBool,
  requireDoorcode,
  requireHex,
  requireId,
  requireLocalDate,
  requireName,
  requireTimeZone,
  requireValidity,
} from './validate';

// ---------------------------------------------------------------------------
// Public types

export type DoorKind = 'communal' | 'private';
export type UserRole = 'resident' | 'staff' | 'guest';

export interface AuthorityOptions {
  /** SQLite file. */
  dbPath: string;
  /** Directory holding kek.key (and root.key/seed by default). Default `<dbPath>.keys`. */
  keyDir?: string;
  /** Offline root key file. Default `<keyDir>/root.key`. */
  rootKeyPath?: string;
  /** Authority clock, unix seconds (injectable for tests). */
  now?: () => number;
  /** Versions per lock for which deltas are served; older bases get a snapshot. */
  historyVersions?: number;
  /** Every Nth version keeps its full table so old versions can be rebuilt. */
  checkpointEvery?: number;
}

export interface AuthorityInitOptions extends AuthorityOptions {
  /** Demo/test determinism: every secret and token is derived from this seed. */
  seed?: string;
  propertyName?: string;
  timeZone?: string;
  policy?: Partial<LockPolicy>;
}

export interface PropertyInfo {
  name: string;
  timeZone: string;
  policy: LockPolicy;
  rootPublicKeys: string[];
  signingKey: { serial: number; keyId: string };
}

export interface DoorInfo {
  id: number;
  name: string;
  kind: DoorKind;
  connected: boolean;
  lockId: string | null;
  /** Door-level overrides of the property lock policy. */
  policy: Partial<LockPolicy> | null;
  partners: number[];
}

export interface KeyDoorInput {
  doorId: number;
  doorcodesEnabled?: boolean;
  schedule?: (ScheduleWindow | ScheduleWindowInput)[] | null;
}

export interface KeyDoorSettings {
  doorId: number;
  doorcodesEnabled: boolean;
  schedule?: ScheduleWindow[];
}

export interface KeyInfo {
  id: number;
  name: string;
  /** Set on partner keys: never changes, the key can only be deleted. */
  partnerId: number | null;
  /** Set on the one-door Keys created for a guest: the resident assignment shared from. */
  guestOf: number | null;
  doors: KeyDoorSettings[];
}

export interface AssignmentInfo {
  id: number;
  userId: number;
  keyId: number;
  mayShare: boolean;
  validFrom?: number;
  validUntil?: number;
}

export interface UserInfo {
  id: number;
  name: string;
  role: UserRole;
  invitedBy: number | null;
  assignments: AssignmentInfo[];
  devices: number[];
  keycards: { id: number; uid: string }[];
  doorcodeDoors: number[];
}

export interface PartnerInfo {
  id: number;
  name: string;
  status: 'authorized' | 'terminated';
  doors: number[];
  keys: number[];
  devices: number[];
}

export interface ProvisioningBundle {
  lockId: string;
  doorId: number;
  rootPublicKeys: string[];
  /** The lock's 32-byte secret (doorcode/keycard verifiers, daily codes). Shown once. */
  lockSecret: string;
  timeZone: string;
  policy: LockPolicy;
}

export interface UpdatesResponse {
  lockId: string;
  from: number;
  to: number;
  messages: string[];
}

export interface CredentialFile {
  holder: HolderClass;
  secretKey: string;
  publicKey: string;
  credentials: { lockId: string; credId: number }[];
}

export interface PendingRevocation {
  doorId: number;
  doorName: string;
  lockId: string;
  credId: number;
  kind: string;
  holder: string;
  subject: string;
  partnerId: number | null;
  keyId: number | null;
  removedInVersion: number;
  versionInForce: number;
  /** Unix seconds: when the authority removed it (the gap starts here). */
  since: number;
}

export interface HonouringDoor {
  doorId: number;
  doorName: string;
  lockId: string;
  versionInForce: number;
  credentials: number;
  /** Whether the partner is still assigned there in the model (false = revocation pending). */
  assignedNow: boolean;
}

export type Principal =
  | { kind: 'manager' }
  | { kind: 'device'; deviceId: number; userId: number | null; partnerId: number | null }
  | { kind: 'partner'; partnerId: number }
  | { kind: 'lock'; lockId: string };

export interface Grant {
  lockId: string;
  credId: number;
  deviceId: number;
}

// ---------------------------------------------------------------------------
// Rows

interface DoorRow { id: number; name: string; kind: DoorKind; connected: number; policy: string | null }
interface KeyRow { id: number; name: string; partner_id: number | null; guest_of: number | null }
interface KeyDoorRow { key_id: number; door_id: number; doorcodes_enabled: number; schedule: string | null }
interface UserRow { id: number; name: string; role: UserRole; invited_by: number | null }
interface AssignmentRow { id: number; user_id: number; key_id: number; may_share: number; valid_from: number | null; valid_until: number | null }
interface PartnerRow { id: number; name: string; status: 'authorized' | 'terminated' }
interface LockRow {
  lock_id: string;
  door_id: number;
  secret_sealed: Buffer;
  device_public_key: Buffer | null;
  in_force_version: number;
  in_force_at: number | null;
}
interface VersionRow {
  lock_id: string;
  version: number;
  digest: Buffer;
  issued_at: number;
  key_serial: number;
  head_bytes: Buffer;
  head_signature: Buffer;
  ops: Buffer | null;
  table_bytes: Buffer | null;
}
interface SigningKeyRow { serial: number; public_key: Buffer; secret_sealed: Buffer; cert_bytes: Buffer; cert_signature: Buffer }

const u8 = (b: Buffer | Uint8Array): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength).slice();
const blob = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();
const TOKEN_PREFIX = 'lst_';

export class Authority {
  private readonly tableCache = new Map<string, { version: number; digest: Uint8Array; table: Table }>();
  private readonly listeners = new Set<(lockId: string, version: number) => void>();
  private txDepth = 0;
  private pendingDoors: Set<number> | null = null;
  private pendingNotices: [string, number][] = [];
  private readonly now: () => number;
  private readonly historyVersions: number;
  private readonly checkpointEvery: number;

  private constructor(
    readonly db: SqlDatabase,
    private readonly sealer: Sealer,
    readonly paths: KeyPaths,
    private readonly seed: string | undefined,
    opts: AuthorityOptions,
  ) {
    this.now = opts.now ?? (() => Math.floor(Date.now() / 1000));
    this.historyVersions = opts.historyVersions ?? 64;
    this.checkpointEvery = opts.checkpointEvery ?? 16;
  }

  // -------------------------------------------------------------------------
  // Lifecycle

  private static openDb(location: string): SqlDatabase {
    return openDatabase(location);
  }

  /** Key files live beside a SQLite file; a PostgreSQL property names its key directory. */
  private static keyPaths(opts: { dbPath: string; keyDir?: string | undefined; rootKeyPath?: string | undefined }): KeyPaths {
    if (isPostgresUrl(opts.dbPath) && opts.keyDir === undefined)
      throw new AuthorityError('VALIDATION', 'a property on PostgreSQL needs --key-dir (its key files cannot live beside a URL)');
    return keyPathsFor(opts.dbPath, opts.keyDir, opts.rootKeyPath);
  }

  /** Create a property: database, key files, root key, first online key, manager token. */
  static init(opts: AuthorityInitOptions): { authority: Authority; managerToken: string; rootPublicKey: string } {
    const paths = Authority.keyPaths(opts);
    if (storageExists(opts.dbPath)) {
      const probe = Authority.openDb(opts.dbPath);
      try {
        if (probe.hasTable('meta') && probe.prepare("SELECT 1 FROM meta WHERE key = 'initialized'").get() !== undefined)
          throw new AuthorityError('ALREADY_INITIALIZED', `${describeLocation(opts.dbPath)} already holds a property`);
      } finally {
        probe.close();
      }
    }
    const timeZone = requireTimeZone(opts.timeZone ?? 'UTC');
    const policy = { ...DEFAULT_LOCK_POLICY, ...(opts.policy ? normalizePolicy(opts.policy, 'policy') : {}) };
    const secret = (label: string): Uint8Array => (opts.seed !== undefined ? deriveSeed32(opts.seed, label) : new Uint8Array(randomBytes(32)));
    const kek = secret('kek');
    const root = keyPairFromSeed(secret('root-key'));
    writeSecretFile(paths.kekPath, toHex(kek));
    writeSecretFile(paths.rootKeyPath, toHex(root.secretKey));
    if (opts.seed !== undefined) writeSecretFile(paths.seedPath, opts.seed);

    const db = Authority.openDb(opts.dbPath);
    const now = (opts.now ?? (() => Math.floor(Date.now() / 1000)))();
    migrate(db, now);
    const a = new Authority(db, new Sealer(kek), paths, opts.seed, opts);
    let managerToken = '';
    db.transaction(() => {
      const setMeta = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
      setMeta.run('propertyName', opts.propertyName ?? 'Property');
      setMeta.run('timeZone', timeZone);
      setMeta.run('policy', JSON.stringify(policy));
      setMeta.run('rootPublicKeys', JSON.stringify([toHex(root.publicKey)]));
      setMeta.run('drawCounter', '0');
      setMeta.run('lockCounter', '0');
      managerToken = a.newToken('manager');
      setMeta.run('managerTokenHash', sha256(managerToken).toString('hex'));
      a.installSigningKey(1, root.secretKey, root.publicKey);
      setMeta.run('initialized', String(now));
    }).immediate();
    return { authority: a, managerToken, rootPublicKey: toHex(root.publicKey) };
  }

  /** Open an initialised property (any number of processes may open the same file). */
  static open(opts: AuthorityOptions): Authority {
    if (!storageExists(opts.dbPath)) throw new AuthorityError('NOT_INITIALIZED', `${opts.dbPath} does not exist: run authority init first`);
    const paths = Authority.keyPaths(opts);
    const db = Authority.openDb(opts.dbPath);
    try {
      // Never create tables in a database (or PostgreSQL schema) that holds no property.
      if (!db.hasTable('meta')) throw new AuthorityError('NOT_INITIALIZED', `${describeLocation(opts.dbPath)} holds no property: run authority init first`);
      migrate(db, Math.floor(Date.now() / 1000));
      if (db.prepare("SELECT 1 FROM meta WHERE key = 'initialized'").get() === undefined)
        throw new AuthorityError('NOT_INITIALIZED', `${describeLocation(opts.dbPath)} holds no property: run authority init first`);
      const kek = readSecretFile(paths.kekPath);
      return new Authority(db, new Sealer(kek), paths, readSeedFile(paths.seedPath), opts);
    } catch (e) {
      db.close();
      throw e;
    }
  }

  close(): void {
    this.listeners.clear();
    if (this.db.open) this.db.close();
  }

  /** Called after commit for every new lock version (drives the long-poll uplink). */
  onVersion(listener: (lockId: string, version: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Run `fn` as one transaction. Nested calls join the outer transaction; the tables of
   * every door touched are compiled once, at the end, inside the same transaction.
   */
  batch<T>(fn: () => T): T {
    if (this.txDepth > 0) return fn();
    const run = this.db.transaction(() => {
      this.txDepth++;
      this.pendingDoors = new Set();
      try {
        const result = fn();
        this.compileDoors(this.pendingDoors);
        return result;
      } finally {
        this.txDepth--;
        this.pendingDoors = null;
      }
    });
    this.pendingNotices = [];
    let result: T;
    try {
      result = run.immediate();
    } catch (e) {
      this.pendingNotices = [];
      if (e instanceof ProtocolError) throw new AuthorityError('INTERNAL', `compile failed: ${e.message}`);
      throw e;
    }
    const notices = this.pendingNotices;
    this.pendingNotices = [];
    for (const [lockId, version] of notices) for (const l of this.listeners) l(lockId, version);
    return result;
  }

  private touch(doorIds: Iterable<number>): void {
    if (this.pendingDoors === null) throw new AuthorityError('INTERNAL', 'model change outside a transaction');
    for (const d of doorIds) this.pendingDoors.add(d);
  }

  // -------------------------------------------------------------------------
  // Secrets, tokens

  /** 32 fresh secret bytes; derived from the seed (and a persisted counter) when seeded. */
  private draw(label: string): Uint8Array {
    if (this.seed === undefined) return new Uint8Array(randomBytes(32));
    const row = this.db.prepare("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'drawCounter' RETURNING value").get() as { value: number };
    return deriveSeed32(this.seed, `${label}#${row.value}`);
  }

  private newToken(kind: string): string {
    return TOKEN_PREFIX + toHex(this.draw(`token:${kind}`));
  }

  private meta(key: string): string {
    const r = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    if (r === undefined) throw new AuthorityError('NOT_INITIALIZED', `meta ${key} missing`);
    return String(r.value);
  }

  private setMeta(key: string, value: string): void {
    this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  /** Who holds this bearer token. */
  authenticate(token: string | undefined): Principal {
    if (token === undefined || !token.startsWith(TOKEN_PREFIX)) throw new AuthorityError('UNAUTHORIZED', 'missing or malformed bearer token');
    const h = sha256(token);
    if (bytesEqual(h, Buffer.from(this.meta('managerTokenHash'), 'hex'))) return { kind: 'manager' };
    // A device token dies with its device's revocation or its partner's termination.
    const dev = this.db
      .prepare(
        `SELECT d.id, d.user_id, d.partner_id FROM devices d LEFT JOIN partners p ON p.id = d.partner_id
         WHERE d.token_hash = ? AND d.revoked_at IS NULL AND (d.partner_id IS NULL OR p.status = 'authorized')`,
      )
      .get(h) as
      | { id: number; user_id: number | null; partner_id: number | null }
      | undefined;
    if (dev) return { kind: 'device', deviceId: dev.id, userId: dev.user_id, partnerId: dev.partner_id };
    const p = this.db.prepare("SELECT id FROM partners WHERE token_hash = ? AND status = 'authorized'").get(h) as { id: number } | undefined;
    if (p) return { kind: 'partner', partnerId: p.id };
    const l = this.db.prepare('SELECT lock_id FROM locks WHERE token_hash = ?').get(h) as { lock_id: string } | undefined;
    if (l) return { kind: 'lock', lockId: l.lock_id };
    throw new AuthorityError('UNAUTHORIZED', 'unknown bearer token');
  }

  /** The authority's clock, unix seconds (rate limits in the HTTP layer use it). */
  nowSeconds(): number {
    return this.now();
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
    const l = this.db.prepare('SELECT door_id FROM locks WHERE lock_id = ?').get(lockId) as { door_id: number } | undefined;
    // Lock ids are no secret (every lock advertises its own): an unknown one is a 404 that
    // names it, for any authenticated caller, rather than a 403 that hides a typo.
    if (l === undefined) throw new AuthorityError('UNKNOWN_LOCK', `no lock ${lockId}`, { lockId });
    const doors = p.userId !== null ? this.doorsOfUser(p.userId) : p.partnerId !== null ? this.doorsOfPartner(p.partnerId) : [];
    if (doors.includes(l.door_id)) return true;
    // Its own revocation still pending there: the lock still admits it, and it may carry
    // the update that removes it (the partner SDK's passive sync) until that is in force.
    return (
      this.db
        .prepare(
          `SELECT 1 FROM revocations r JOIN locks l ON l.lock_id = r.lock_id LEFT JOIN cred_ids c ON c.lock_id = r.lock_id AND c.cred_id = r.cred_id
           WHERE r.lock_id = ? AND r.version > l.in_force_version AND (c.device_id = ? OR r.partner_id = ?) LIMIT 1`,
        )
        // A null partnerId matches nothing (NULL = x is never true), on both engines.
        .get(lockId, p.deviceId, p.partnerId) !== undefined
    );
  }

  // -------------------------------------------------------------------------
  // Signing keys

  private installSigningKey(serial: number, rootSecret: Uint8Array, rootPublic: Uint8Array): { serial: number; keyId: string } {
    const online = keyPairFromSeed(this.draw(`online-key:${serial}`));
    const cert = issueKeyCert(serial, online.publicKey, rootSecret, rootPublic);
    this.db
      .prepare('INSERT INTO signing_keys (serial, public_key, secret_sealed, cert_bytes, cert_signature, created_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(serial, blob(online.publicKey), blob(this.sealer.seal(`online-key:${serial}`, online.secretKey)), blob(cert.certBytes), blob(cert.signature), this.now());
    return { serial, keyId: toHex(online.keyId) };
  }

  private signingKey(): { serial: number; secretKey: Uint8Array; publicKey: Uint8Array; cert: SignedKeyCert } {
    const r = this.db.prepare('SELECT * FROM signing_keys WHERE retired_at IS NULL ORDER BY serial DESC LIMIT 1').get() as SigningKeyRow | undefined;
    if (r === undefined) throw new AuthorityError('NOT_INITIALIZED', 'no online signing key');
    const secretKey = this.sealer.open(`online-key:${r.serial}`, u8(r.secret_sealed));
    const cert = keyCertFromCbor([u8(r.cert_bytes), u8(r.cert_signature)]);
    return { serial: r.serial, secretKey, publicKey: u8(r.public_key), cert };
  }

  /**
   * Rotation: the offline root certifies a new online key with a higher serial. Updates
   * served from now on are signed by it and carry its certificate; a lock that accepts one
   * raises its certificate floor and refuses the retired key from then on.
   */
  rotateSigningKey(): { serial: number; keyId: string } {
    const rootSecret = readSecretFile(this.paths.rootKeyPath);
    const rootPublic = publicKeyOf(rootSecret);
    const roots = JSON.parse(this.meta('rootPublicKeys')) as string[];
    if (!roots.includes(toHex(rootPublic))) throw new AuthorityError('KEY_FILE', `${this.paths.rootKeyPath} is not this property's root key`);
    return this.batch(() => {
      const cur = this.db.prepare('SELECT MAX(serial) AS s FROM signing_keys').get() as { s: number };
      this.db.prepare('UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL').run(this.now());
      return this.installSigningKey(cur.s + 1, rootSecret, rootPublic);
    });
  }

  /**
   * Root-signed floor reset for one lock session (SPEC §8.3): recovery from a far-future
   * signed time or table version. Reads the offline root key file, like rotation. The
   * nonce is the lock's hello nonce, so the reset is good in that session only.
   */
  floorReset(lockId: string, nonceHex: string, input: { versionFloor: number; time?: number }): { lockId: string; time: number; versionFloor: number; floorReset: string } {
    this.lockRow(lockId);
    const nonce = requireHex(nonceHex, 'nonce', { exact: NONCE_BYTES });
    if (!Number.isSafeInteger(input.versionFloor) || input.versionFloor < 0) throw invalid('version floor must be a version number ≥ 0');
    const time = input.time ?? this.now();
    if (!Number.isSafeInteger(time) || time < 0) throw invalid('time must be unix seconds ≥ 0');
    const rootSecret = readSecretFile(this.paths.rootKeyPath);
    const rootPublic = publicKeyOf(rootSecret);
    const roots = JSON.parse(this.meta('rootPublicKeys')) as string[];
    if (!roots.includes(toHex(rootPublic))) throw new AuthorityError('KEY_FILE', `${this.paths.rootKeyPath} is not this property's root key`);
    const m = makeFloorReset({ lockId, time, versionFloor: input.versionFloor, keyId: keyIdOf(rootPublic), nonce }, rootSecret);
    return { lockId, time, versionFloor: input.versionFloor, floorReset: toHex(encodeMessage(m)) };
  }

  // -------------------------------------------------------------------------
  // Property

  property(): PropertyInfo {
    const k = this.signingKey();
    return {
      name: this.meta('propertyName'),
      timeZone: this.meta('timeZone'),
      policy: JSON.parse(this.meta('policy')) as LockPolicy,
      rootPublicKeys: JSON.parse(this.meta('rootPublicKeys')) as string[],
      signingKey: { serial: k.serial, keyId: toHex(keyIdOf(k.publicKey)) },
    };
  }

  setProperty(input: { name?: string; timeZone?: string; policy?: Partial<LockPolicy> }): PropertyInfo {
    this.batch(() => {
      if (input.name !== undefined) this.setMeta('propertyName', requireName(input.name, 'name'));
      if (input.timeZone !== undefined) this.setMeta('timeZone', requireTimeZone(input.timeZone));
      if (input.policy !== undefined) {
        const merged = { ...(JSON.parse(this.meta('policy')) as LockPolicy), ...normalizePolicy(input.policy, 'policy') };
        this.setMeta('policy', JSON.stringify(merged));
        this.touch(this.allDoorIds());
      }
    });
    return this.property();
  }

  private allDoorIds(): number[] {
    return (this.db.prepare('SELECT id FROM doors').all() as { id: number }[]).map((r) => r.id);
  }

  // -------------------------------------------------------------------------
  // Doors

  private doorRow(doorId: unknown): DoorRow {
    const id = requireId(doorId, 'doorId');
    const r = this.db.prepare('SELECT * FROM doors WHERE id = ?').get(id) as DoorRow | undefined;
    if (r === undefined) throw new AuthorityError('UNKNOWN_DOOR', `no door ${id}`, { doorId: id });
    return r;
  }

  private doorInfo(r: DoorRow): DoorInfo {
    const lock = this.db.prepare('SELECT lock_id FROM locks WHERE door_id = ?').get(r.id) as { lock_id: string } | undefined;
    const partners = (this.db.prepare('SELECT partner_id FROM partner_doors WHERE door_id = ? ORDER BY partner_id').all(r.id) as { partner_id: number }[]).map((p) => p.partner_id);
    return {
      id: r.id,
      name: r.name,
      kind: r.kind,
      connected: r.connected === 1,
      lockId: lock?.lock_id ?? null,
      policy: r.policy === null ? null : (JSON.parse(r.policy) as Partial<LockPolicy>),
      partners,
    };
  }

  door(doorId: number): DoorInfo {
    return this.doorInfo(this.doorRow(doorId));
  }

  listDoors(): DoorInfo[] {
    return (this.db.prepare('SELECT * FROM doors ORDER BY id').all() as DoorRow[]).map((r) => this.doorInfo(r));
  }

  addDoor(input: { name: string; kind?: DoorKind; connected?: boolean; policy?: Partial<LockPolicy> }): DoorInfo {
    const name = requireName(input.name, 'name');
    const kind = input.kind ?? 'private';
    if (kind !== 'communal' && kind !== 'private') throw invalid('kind must be communal or private');
    const connected = input.connected === undefined ? false : requireBool(input.connected, 'connected');
    const policy = input.policy === undefined ? null : JSON.stringify(normalizePolicy(input.policy, 'policy'));
    return this.batch(() => {
      if (this.db.prepare('SELECT 1 FROM doors WHERE name = ?').get(name)) throw new AuthorityError('CONFLICT', `a door named ${JSON.stringify(name)} exists`);
      const r = this.db.prepare('INSERT INTO doors (name, kind, connected, policy, created_at) VALUES (?, ?, ?, ?, ?)').run(name, kind, connected ? 1 : 0, policy, this.now());
      return this.door(Number(r.lastInsertRowid));
    });
  }

  updateDoor(doorId: number, input: { name?: string; kind?: DoorKind; connected?: boolean; policy?: Partial<LockPolicy> | null }): DoorInfo {
    return this.batch(() => {
      const d = this.doorRow(doorId);
      const name = input.name === undefined ? d.name : requireName(input.name, 'name');
      const kind = input.kind ?? d.kind;
      if (kind !== 'communal' && kind !== 'private') throw invalid('kind must be communal or private');
      const connected = input.connected === undefined ? d.connected === 1 : requireBool(input.connected, 'connected');
      const policy = input.policy === undefined ? d.policy : input.policy === null ? null : JSON.stringify(normalizePolicy(input.policy, 'policy'));
      if (name !== d.name && this.db.prepare('SELECT 1 FROM doors WHERE name = ?').get(name)) throw new AuthorityError('CONFLICT', `a door named ${JSON.stringify(name)} exists`);
      this.db.prepare('UPDATE doors SET name = ?, kind = ?, connected = ?, policy = ? WHERE id = ?').run(name, kind, connected ? 1 : 0, policy, d.id);
      this.touch([d.id]);
      return this.door(d.id);
    });
  }

  /** Refused while any Key, partner or lock still refers to the door. */
  removeDoor(doorId: number): void {
    this.batch(() => {
      const d = this.doorRow(doorId);
      const keys = (this.db.prepare('SELECT key_id FROM key_doors WHERE door_id = ?').all(d.id) as { key_id: number }[]).map((r) => r.key_id);
      const partners = this.doorInfo(d).partners;
      const lock = this.doorInfo(d).lockId;
      if (keys.length > 0 || partners.length > 0 || lock !== null)
        throw new AuthorityError('CONFLICT', `door ${d.id} is still in use`, { keys, partners, lockId: lock });
      this.db.prepare('DELETE FROM daily_code_issues WHERE door_id = ?').run(d.id);
      this.db.prepare('DELETE FROM doors WHERE id = ?').run(d.id);
    });
  }

  // -------------------------------------------------------------------------
  // Keys

  private keyRow(keyId: unknown): KeyRow {
    const id = requireId(keyId, 'keyId');
    const r = this.db.prepare('SELECT * FROM keys WHERE id = ?').get(id) as KeyRow | undefined;
    if (r === undefined) throw new AuthorityError('UNKNOWN_KEY', `no key ${id}`, { keyId: id });
    return r;
  }

  private managedKeyRow(keyId: unknown): KeyRow {
    const k = this.keyRow(keyId);
    if (k.guest_of !== null)
      throw new AuthorityError('FORBIDDEN_TRANSITION', `key ${k.id} is a guest key created by a resident's invitation; managers cannot edit or assign it`);
    return k;
  }

  private keyDoorsOf(keyId: number): KeyDoorSettings[] {
    return (this.db.prepare('SELECT * FROM key_doors WHERE key_id = ? ORDER BY door_id').all(keyId) as KeyDoorRow[]).map((r) => {
      const s: KeyDoorSettings = { doorId: r.door_id, doorcodesEnabled: r.doorcodes_enabled === 1 };
      if (r.schedule !== null) s.schedule = JSON.parse(r.schedule) as ScheduleWindow[];
      return s;
    });
  }

  key(keyId: number): KeyInfo {
    const k = this.keyRow(keyId);
    return { id: k.id, name: k.name, partnerId: k.partner_id, guestOf: k.guest_of, doors: this.keyDoorsOf(k.id) };
  }

  listKeys(): KeyInfo[] {
    return (this.db.prepare('SELECT id FROM keys ORDER BY id').all() as { id: number }[]).map((r) => this.key(r.id));
  }

  private normalizeKeyDoor(d: KeyDoorInput, what: string): { doorId: number; doorcodesEnabled: boolean; schedule: ScheduleWindow[] | undefined } {
    if (typeof d !== 'object' || d === null) throw invalid(`${what} must be {doorId, doorcodesEnabled?, schedule?}`);
    const doorId = this.doorRow(d.doorId).id;
    const doorcodesEnabled = d.doorcodesEnabled === undefined ? true : requireBool(d.doorcodesEnabled, `${what}.doorcodesEnabled`);
    return { doorId, doorcodesEnabled, schedule: normalizeSchedule(d.schedule, `${what}.schedule`) };
  }

  private writeKeyDoor(keyId: number, d: { doorId: number; doorcodesEnabled: boolean; schedule: ScheduleWindow[] | undefined }): void {
    this.db
      .prepare(
        `INSERT INTO key_doors (key_id, door_id, doorcodes_enabled, schedule) VALUES (?, ?, ?, ?)
         ON CONFLICT(key_id, door_id) DO UPDATE SET doorcodes_enabled = excluded.doorcodes_enabled, schedule = excluded.schedule`,
      )
      .run(keyId, d.doorId, d.doorcodesEnabled ? 1 : 0, d.schedule === undefined ? null : JSON.stringify(d.schedule));
  }

  /** A door leaves a Key: its doorcodes there go, and so do guest keys shared from it. */
  private dropKeyDoor(keyId: number, doorId: number): void {
    this.db.prepare('DELETE FROM doorcodes WHERE key_id = ? AND door_id = ?').run(keyId, doorId);
    this.db
      .prepare(
        `DELETE FROM keys WHERE guest_of IN (SELECT id FROM assignments WHERE key_id = ?)
           AND id IN (SELECT key_id FROM key_doors WHERE door_id = ?)`,
      )
      .run(keyId, doorId);
    this.db.prepare('DELETE FROM key_doors WHERE key_id = ? AND door_id = ?').run(keyId, doorId);
  }

  private requireAuthorizedPartner(partnerId: unknown): PartnerRow {
    const p = this.partnerRow(partnerId);
    if (p.status !== 'authorized') throw new AuthorityError('PARTNER_NOT_AUTHORIZED', `partner ${p.id} is not authorized at this property`, { partnerId: p.id });
    return p;
  }

  /** Make a Key (optionally a partner key) from a set of doors with per-door settings. */
  createKey(input: { name: string; doors: KeyDoorInput[]; partnerId?: number | null }): KeyInfo {
    const name = requireName(input.name, 'name');
    if (!Array.isArray(input.doors)) throw invalid('doors must be a list');
    return this.batch(() => {
      const doors = input.doors.map((d, i) => this.normalizeKeyDoor(d, `doors[${i}]`));
      const seen = new Set<number>();
      for (const d of doors) {
        if (seen.has(d.doorId)) throw invalid(`door ${d.doorId} listed twice`);
        seen.add(d.doorId);
      }
      const partnerId = input.partnerId === undefined || input.partnerId === null ? null : this.requireAuthorizedPartner(input.partnerId).id;
      const r = this.db.prepare('INSERT INTO keys (name, partner_id, created_at) VALUES (?, ?, ?)').run(name, partnerId, this.now());
      const keyId = Number(r.lastInsertRowid);
      for (const d of doors) this.writeKeyDoor(keyId, d);
      this.touch(seen);
      return this.key(keyId);
    });
  }

  /**
   * Edit a Key: rename, replace its door set, or attach a partner (which turns it into a
   * partner key). A partner key's partner can never be removed or changed.
   */
  updateKey(keyId: number, input: { name?: string; doors?: KeyDoorInput[]; partnerId?: number | null }): KeyInfo {
    return this.batch(() => {
      const k = this.managedKeyRow(keyId);
      if (input.partnerId !== undefined) {
        const wanted = input.partnerId === null ? null : requireId(input.partnerId, 'partnerId');
        if (k.partner_id !== null && wanted !== k.partner_id)
          throw new AuthorityError('FORBIDDEN_TRANSITION', `key ${k.id} is a partner key of partner ${k.partner_id}: its partner cannot be removed or changed, only the key deleted`, {
            keyId: k.id,
            partnerId: k.partner_id,
          });
        if (k.partner_id === null && wanted !== null) {
          this.requireAuthorizedPartner(wanted);
          this.db.prepare('UPDATE keys SET partner_id = ? WHERE id = ?').run(wanted, k.id);
          this.touch(this.keyDoorsOf(k.id).map((d) => d.doorId));
        }
      }
      if (input.name !== undefined) this.db.prepare('UPDATE keys SET name = ? WHERE id = ?').run(requireName(input.name, 'name'), k.id);
      if (input.doors !== undefined) {
        if (!Array.isArray(input.doors)) throw invalid('doors must be a list');
        const doors = input.doors.map((d, i) => this.normalizeKeyDoor(d, `doors[${i}]`));
        const next = new Set(doors.map((d) => d.doorId));
        if (next.size !== doors.length) throw invalid('a door is listed twice');
        const before = this.keyDoorsOf(k.id).map((d) => d.doorId);
        for (const d of before) if (!next.has(d)) this.dropKeyDoor(k.id, d);
        for (const d of doors) this.writeKeyDoor(k.id, d);
        this.touch(before);
        this.touch(next);
      }
      return this.key(k.id);
    });
  }

  /** Add a door to a Key or change that door's doorcode/schedule settings. */
  setKeyDoor(keyId: number, door: KeyDoorInput): KeyInfo {
    return this.batch(() => {
      const k = this.managedKeyRow(keyId);
      const d = this.normalizeKeyDoor(door, 'door');
      this.writeKeyDoor(k.id, d);
      this.touch([d.doorId]);
      return this.key(k.id);
    });
  }

  removeKeyDoor(keyId: number, doorId: number): KeyInfo {
    return this.batch(() => {
      const k = this.managedKeyRow(keyId);
      const d = this.doorRow(doorId);
      if (!this.db.prepare('SELECT 1 FROM key_doors WHERE key_id = ? AND door_id = ?').get(k.id, d.id))
        throw new AuthorityError('UNKNOWN_DOOR', `door ${d.id} is not on key ${k.id}`, { keyId: k.id, doorId: d.id });
      this.dropKeyDoor(k.id, d.id);
      this.touch([d.id]);
      return this.key(k.id);
    });
  }

  /** Delete a Key: its assignments, doorcodes and the guest keys shared from it go too. */
  deleteKey(keyId: number): void {
    this.batch(() => {
      const k = this.managedKeyRow(keyId);
      const doors = this.keyDoorsOf(k.id).map((d) => d.doorId);
      this.db.prepare('DELETE FROM doorcodes WHERE key_id = ?').run(k.id);
      this.db.prepare('DELETE FROM keys WHERE id = ?').run(k.id); // cascades: key_doors, assignments → guest keys
      this.touch(doors);
    });
  }

  // -------------------------------------------------------------------------
  // Users and assignments (managers assign Keys, never single doors)

  private userRow(userId: unknown): UserRow {
    const id = requireId(userId, 'userId');
    const r = this.db.prepare('SELECT * FROM users WHERE id = ?').get(id) as UserRow | undefined;
    if (r === undefined) throw new AuthorityError('UNKNOWN_USER', `no user ${id}`, { userId: id });
    return r;
  }

  private assignmentInfo(a: AssignmentRow): AssignmentInfo {
    const out: AssignmentInfo = { id: a.id, userId: a.user_id, keyId: a.key_id, mayShare: a.may_share === 1 };
    if (a.valid_from !== null) out.validFrom = a.valid_from;
    if (a.valid_until !== null) out.validUntil = a.valid_until;
    return out;
  }

  user(userId: number): UserInfo {
    const u = this.userRow(userId);
    return {
      id: u.id,
      name: u.name,
      role: u.role,
      invitedBy: u.invited_by,
      assignments: (this.db.prepare('SELECT * FROM assignments WHERE user_id = ? ORDER BY id').all(u.id) as AssignmentRow[]).map((a) => this.assignmentInfo(a)),
      devices: (this.db.prepare('SELECT id FROM devices WHERE user_id = ? ORDER BY id').all(u.id) as { id: number }[]).map((d) => d.id),
      keycards: (this.db.prepare('SELECT id, uid FROM keycards WHERE user_id = ? ORDER BY id').all(u.id) as { id: number; uid: Buffer }[]).map((c) => ({ id: c.id, uid: toHex(c.uid) })),
      doorcodeDoors: (this.db.prepare('SELECT door_id FROM doorcodes WHERE user_id = ? ORDER BY door_id').all(u.id) as { door_id: number }[]).map((d) => d.door_id),
    };
  }

  listUsers(): UserInfo[] {
    return (this.db.prepare('SELECT id FROM users ORDER BY id').all() as { id: number }[]).map((r) => this.user(r.id));
  }

  addUser(input: { name: string; role?: 'resident' | 'staff' }): UserInfo {
    const name = requireName(input.name, 'name');
    const role = input.role ?? 'resident';
    if (role !== 'resident' && role !== 'staff') throw invalid('role must be resident or staff (guests are invited by residents)');
    return this.batch(() => {
      const r = this.db.prepare('INSERT INTO users (name, role, created_at) VALUES (?, ?, ?)').run(name, role, this.now());
      return this.user(Number(r.lastInsertRowid));
    });
  }

  /** Doors a user reaches through any Key, doorcode or guest key they shared. */
  private doorsOfUser(userId: number): number[] {
    return (
      this.db
        .prepare(
          `SELECT kd.door_id FROM assignments a JOIN key_doors kd ON kd.key_id = a.key_id WHERE a.user_id = ?
           UNION SELECT door_id FROM doorcodes WHERE user_id = ?`,
        )
        .all(userId, userId) as { door_id: number }[]
    ).map((r) => r.door_id);
  }

  /** Remove a user: their Keys, doorcodes, devices, keycards — and their guests' access. */
  removeUser(userId: number): void {
    this.batch(() => {
      const u = this.userRow(userId);
      this.touch(this.doorsOfUser(u.id));
      this.db.prepare('DELETE FROM users WHERE id = ?').run(u.id);
    });
  }

  assignKey(userId: number, keyId: number, opts: { mayShare?: boolean; validFrom?: number; validUntil?: number } = {}): { assignment: AssignmentInfo; doorcodes: { doorId: number; code: string }[] } {
    return this.batch(() => {
      const u = this.userRow(userId);
      if (u.role === 'guest') throw new AuthorityError('FORBIDDEN_TRANSITION', `user ${u.id} is a guest: guests get access only through a resident's invitation`);
      const k = this.managedKeyRow(keyId);
      const mayShare = opts.mayShare === undefined ? true : requireBool(opts.mayShare, 'mayShare');
      const validFrom = optTime(opts.validFrom, 'validFrom');
      const validUntil = optTime(opts.validUntil, 'validUntil');
      requireValidity(validFrom, validUntil, 'assignment');
      if (this.db.prepare('SELECT 1 FROM assignments WHERE user_id = ? AND key_id = ?').get(u.id, k.id))
        throw new AuthorityError('CONFLICT', `user ${u.id} already holds key ${k.id}`, { userId: u.id, keyId: k.id });
      const r = this.db
        .prepare('INSERT INTO assignments (user_id, key_id, may_share, valid_from, valid_until, created_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(u.id, k.id, mayShare ? 1 : 0, validFrom ?? null, validUntil ?? null, this.now());
      const doors = this.keyDoorsOf(k.id);
      // "Enable Doorcodes: each user assigned this key gets a unique doorcode for that door."
      const doorcodes: { doorId: number; code: string }[] = [];
      for (const d of doors) {
        if (!d.doorcodesEnabled) continue;
        if (this.db.prepare('SELECT 1 FROM doorcodes WHERE user_id = ? AND door_id = ?').get(u.id, d.doorId)) continue;
        doorcodes.push({ doorId: d.doorId, code: this.storeDoorcode(u.id, d.doorId, k.id, undefined) });
      }
      this.touch(doors.map((d) => d.doorId));
      const a = this.db.prepare('SELECT * FROM assignments WHERE id = ?').get(Number(r.lastInsertRowid)) as AssignmentRow;
      return { assignment: this.assignmentInfo(a), doorcodes };
    });
  }

  private assignmentRow(userId: number, keyId: number): AssignmentRow {
    const a = this.db.prepare('SELECT * FROM assignments WHERE user_id = ? AND key_id = ?').get(userId, keyId) as AssignmentRow | undefined;
    if (a === undefined) throw new AuthorityError('UNKNOWN_ASSIGNMENT', `user ${userId} does not hold key ${keyId}`, { userId, keyId });
    return a;
  }

  /**
   * "May Share Key" per assignment. Turning it off also withdraws the guest keys already
   * shared from this assignment: the resident may no longer share those doors.
   */
  setMayShare(userId: number, keyId: number, mayShare: boolean): AssignmentInfo {
    return this.batch(() => {
      const u = this.userRow(userId);
      const k = this.managedKeyRow(keyId);
      const a = this.assignmentRow(u.id, k.id);
      const on = requireBool(mayShare, 'mayShare');
      this.db.prepare('UPDATE assignments SET may_share = ? WHERE id = ?').run(on ? 1 : 0, a.id);
      if (!on) {
        this.touch(this.keyDoorsOf(k.id).map((d) => d.doorId));
        this.db.prepare('DELETE FROM keys WHERE guest_of = ?').run(a.id);
      }
      return this.assignmentInfo(this.db.prepare('SELECT * FROM assignments WHERE id = ?').get(a.id) as AssignmentRow);
    });
  }

  /** Take a Key away: its doorcodes go, and so does every guest access shared from it. */
  unassignKey(userId: number, keyId: number): void {
    this.batch(() => {
      const u = this.userRow(userId);
      const k = this.managedKeyRow(keyId);
      const a = this.assignmentRow(u.id, k.id);
      this.touch(this.keyDoorsOf(k.id).map((d) => d.doorId));
      this.db.prepare('DELETE FROM assignments WHERE id = ?').run(a.id); // trigger drops doorcodes; FK drops guest keys
    });
  }

  /**
   * A resident invites a guest to some of their doors. Each door needs a Key the resident
   * holds with "May Share Key" on; DOOR then creates one Key per door for the guest. The
   * whole invitation is refused (listing the doors) if any door cannot be shared.
   */
  inviteGuest(residentId: number, input: { name: string; doorIds: number[]; validFrom?: number; validUntil?: number }): { guest: UserInfo; keys: KeyInfo[] } {
    return this.batch(() => {
      const r = this.userRow(residentId);
      if (r.role !== 'resident') throw new AuthorityError('FORBIDDEN_TRANSITION', `user ${r.id} is a ${r.role}: only residents invite guests`);
      const name = requireName(input.name, 'name');
      if (!Array.isArray(input.doorIds) || input.doorIds.length === 0) throw invalid('doorIds must list at least one door');
      const validFrom = optTime(input.validFrom, 'validFrom');
      const validUntil = optTime(input.validUntil, 'validUntil');
      requireValidity(validFrom, validUntil, 'invitation');
      const plan: { doorId: number; assignmentId: number }[] = [];
      const refused: number[] = [];
      for (const raw of input.doorIds) {
        const door = this.doorRow(raw);
        if (plan.some((p) => p.doorId === door.id)) throw invalid(`door ${door.id} listed twice`);
        const a = this.db
          .prepare(
            `SELECT a.id FROM assignments a JOIN key_doors kd ON kd.key_id = a.key_id JOIN keys k ON k.id = a.key_id
             WHERE a.user_id = ? AND kd.door_id = ? AND a.may_share = 1 AND k.guest_of IS NULL ORDER BY a.id LIMIT 1`,
          )
          .get(r.id, door.id) as { id: number } | undefined;
        if (a === undefined) refused.push(door.id);
        else plan.push({ doorId: door.id, assignmentId: a.id });
      }
      if (refused.length > 0)
        throw new AuthorityError('SHARING_NOT_ALLOWED', `resident ${r.id} may not share door(s) ${refused.join(', ')}`, { doors: refused });
      const now = this.now();
      const g = this.db.prepare("INSERT INTO users (name, role, invited_by, created_at) VALUES (?, 'guest', ?, ?)").run(name, r.id, now);
      const guestId = Number(g.lastInsertRowid);
      const keys: KeyInfo[] = [];
      for (const p of plan) {
        const doorName = this.doorRow(p.doorId).name;
        const k = this.db.prepare('INSERT INTO keys (name, partner_id, guest_of, created_at) VALUES (?, NULL, ?, ?)').run(`Guest ${name} - ${doorName}`, p.assignmentId, now);
        const keyId = Number(k.lastInsertRowid);
        // Settings follow the resident's Key at compile time; the row records membership.
        this.db.prepare('INSERT INTO key_doors (key_id, door_id, doorcodes_enabled, schedule) VALUES (?, ?, 0, NULL)').run(keyId, p.doorId);
        this.db
          .prepare('INSERT INTO assignments (user_id, key_id, may_share, valid_from, valid_until, created_at) VALUES (?, ?, 0, ?, ?, ?)')
          .run(guestId, keyId, validFrom ?? null, validUntil ?? null, now);
        keys.push(this.key(keyId));
      }
      this.touch(plan.map((p) => p.doorId));
      return { guest: this.user(guestId), keys };
    });
  }

  /** Withdraw a guest entirely (the resident or a manager revoking the invitation). */
  revokeGuest(guestId: number): void {
    this.batch(() => {
      const g = this.userRow(guestId);
      if (g.role !== 'guest') throw new AuthorityError('FORBIDDEN_TRANSITION', `user ${g.id} is not a guest`);
      this.touch(this.doorsOfUser(g.id));
      this.db.prepare('DELETE FROM keys WHERE id IN (SELECT key_id FROM assignments WHERE user_id = ?)').run(g.id);
      this.db.prepare('DELETE FROM users WHERE id = ?').run(g.id);
    });
  }

  // -------------------------------------------------------------------------
  // Devices (phones of users, devices of partners): public keys only

  private insertDevice(owner: { userId: number } | { partnerId: number }, publicKeyHex: string): { deviceId: number; token: string } {
    const pk = requireHex(publicKeyHex, 'publicKey', { exact: 32 });
    if (!isStrictEd25519PublicKey(pk))
      throw new AuthorityError('WEAK_PUBLIC_KEY', 'publicKey is not a canonical Ed25519 point of large order (small-order and non-canonical keys let anyone sign)');
    if (this.db.prepare('SELECT 1 FROM devices WHERE public_key = ?').get(blob(pk))) throw new AuthorityError('CONFLICT', 'this public key is already enrolled');
    const token = this.newToken('device');
    const r = this.db
      .prepare('INSERT INTO devices (user_id, partner_id, public_key, token_hash, created_at) VALUES (?, ?, ?, ?, ?)')
      .run('userId' in owner ? owner.userId : null, 'partnerId' in owner ? owner.partnerId : null, blob(pk), sha256(token), this.now());
    return { deviceId: Number(r.lastInsertRowid), token };
  }

  /** Enrol a user's phone by its public key (the private key never leaves the phone). */
  enrolUserDevice(userId: number, publicKeyHex: string): { deviceId: number; token: string } {
    return this.batch(() => {
      const u = this.userRow(userId);
      const out = this.insertDevice({ userId: u.id }, publicKeyHex);
      this.touch(this.doorsOfUser(u.id));
      return out;
    });
  }

  enrolPartnerDevice(partnerId: number, publicKeyHex: string): { deviceId: number; token: string } {
    return this.batch(() => {
      const p = this.requireAuthorizedPartner(partnerId);
      const out = this.insertDevice({ partnerId: p.id }, publicKeyHex);
      this.touch(this.doorsOfPartner(p.id));
      return out;
    });
  }

  revokeDevice(deviceId: number): void {
    this.batch(() => {
      const id = requireId(deviceId, 'deviceId');
      const d = this.db.prepare('SELECT * FROM devices WHERE id = ?').get(id) as { id: number; user_id: number | null; partner_id: number | null } | undefined;
      if (d === undefined) throw new AuthorityError('UNKNOWN_DEVICE', `no device ${id}`, { deviceId: id });
      this.touch(d.user_id !== null ? this.doorsOfUser(d.user_id) : this.doorsOfPartner(d.partner_id as number));
      this.db.prepare('DELETE FROM devices WHERE id = ?').run(d.id);
    });
  }

  /** The unlock credentials (lock, credId) this device holds in the current tables. */
  credentialsForDevice(deviceId: number): Grant[] {
    const id = requireId(deviceId, 'deviceId');
    if (!this.db.prepare('SELECT 1 FROM devices WHERE id = ?').get(id)) throw new AuthorityError('UNKNOWN_DEVICE', `no device ${id}`, { deviceId: id });
    return (
      this.db.prepare('SELECT lock_id, cred_id FROM cred_ids WHERE device_id = ? AND present = 1 ORDER BY lock_id, cred_id').all(id) as { lock_id: string; cred_id: number }[]
    ).map((r) => ({ lockId: r.lock_id, credId: r.cred_id, deviceId: id }));
  }

  /**
   * The phone credential file the mobile agent reads. The secret key is generated on the
   * device, so the caller supplies it; it must match the enrolled public key.
   */
  credentialFile(deviceId: number, secretKeyHex: string): CredentialFile {
    const id = requireId(deviceId, 'deviceId');
    const d = this.db.prepare('SELECT * FROM devices WHERE id = ?').get(id) as { id: number; user_id: number | null; partner_id: number | null; public_key: Buffer } | undefined;
    if (d === undefined) throw new AuthorityError('UNKNOWN_DEVICE', `no device ${id}`, { deviceId: id });
    const sk = requireHex(secretKeyHex, 'secretKey', { exact: 32 });
    if (!bytesEqual(publicKeyOf(sk), d.public_key)) throw invalid('secretKey does not belong to this device');
    // Holder class as the mobile agent reads it (resident | staff | guest | partner).
    const holder: HolderClass = d.user_id !== null ? this.userRow(d.user_id).role : 'partner';
    return {
      holder,
      secretKey: toHex(sk),
      publicKey: toHex(d.public_key),
      credentials: this.credentialsForDevice(id).map((g) => ({ lockId: g.lockId, credId: g.credId })),
    };
  }

  /** Demo/test helper: generate a device key from a seed label, enrol it, return its file. */
  enrolDeviceWithNewKey(owner: { userId: number } | { partnerId: number }, seed: string): { deviceId: number; token: string; credentialFile: CredentialFile } {
    const kp = keyPairFromSeed(deriveSeed32(seed, 'userId' in owner ? `device:user:${owner.userId}` : `device:partner:${owner.partnerId}`));
    const r = 'userId' in owner ? this.enrolUserDevice(owner.userId, toHex(kp.publicKey)) : this.enrolPartnerDevice(owner.partnerId, toHex(kp.publicKey));
    return { ...r, credentialFile: this.credentialFile(r.deviceId, toHex(kp.secretKey)) };
  }

  // -------------------------------------------------------------------------
  // Doorcodes (sealed; verifiers only ever leave under the lock's secret)

  private codeTag(doorId: number, code: string): Buffer {
    return blob(this.sealer.tag(`doorcode-tag:${doorId}`, code));
  }

  /** Store one permanent code (caller has checked the Key); returns the code. */
  private storeDoorcode(userId: number, doorId: number, keyId: number, code: string | undefined): string {
    let chosen = code;
    if (chosen === undefined) {
      for (let attempt = 0; attempt < 100 && chosen === undefined; attempt++) {
        const b = this.draw(`doorcode:${userId}:${doorId}`);
        const n = (((b[0] as number) << 24) | ((b[1] as number) << 16) | ((b[2] as number) << 8) | (b[3] as number)) >>> 0;
        const candidate = String(n % 10_000_000).padStart(7, '0');
        if (!this.db.prepare('SELECT 1 FROM doorcodes WHERE door_id = ? AND code_tag = ?').get(doorId, this.codeTag(doorId, candidate))) chosen = candidate;
      }
      if (chosen === undefined) throw new AuthorityError('CONFLICT', `no free doorcode found for door ${doorId}`);
    } else if (this.db.prepare('SELECT 1 FROM doorcodes WHERE door_id = ? AND code_tag = ?').get(doorId, this.codeTag(doorId, chosen))) {
      throw new AuthorityError('CONFLICT', `that code is already in use at door ${doorId}`, { doorId });
    }
    const r = this.db
      .prepare('INSERT INTO doorcodes (user_id, door_id, key_id, code_sealed, code_tag, created_at) VALUES (?, ?, ?, x\'\', ?, ?)')
      .run(userId, doorId, keyId, this.codeTag(doorId, chosen), this.now());
    const id = Number(r.lastInsertRowid);
    this.db.prepare('UPDATE doorcodes SET code_sealed = ? WHERE id = ?').run(blob(this.sealer.seal(`doorcode:${id}`, new TextEncoder().encode(chosen))), id);
    return chosen;
  }

  /**
   * Issue (or replace) a user's 7-digit permanent code for a door. The user must hold a
   * Key that includes the door with doorcodes enabled; the code belongs to that Key and is
   * deleted with it.
   */
  issueDoorcode(userId: number, doorId: number, code?: string): { doorId: number; keyId: number; code: string } {
    return this.batch(() => {
      const u = this.userRow(userId);
      const d = this.doorRow(doorId);
      const wanted = code === undefined ? undefined : requireDoorcode(code);
      const k = this.db
        .prepare(
          `SELECT a.key_id FROM assignments a JOIN key_doors kd ON kd.key_id = a.key_id JOIN keys k ON k.id = a.key_id
           WHERE a.user_id = ? AND kd.door_id = ? AND kd.doorcodes_enabled = 1 AND k.guest_of IS NULL ORDER BY a.id LIMIT 1`,
        )
        .get(u.id, d.id) as { key_id: number } | undefined;
      if (k === undefined) throw new AuthorityError('DOORCODES_DISABLED', `user ${u.id} holds no Key with doorcodes enabled at door ${d.id}`, { userId: u.id, doorId: d.id });
      this.db.prepare('DELETE FROM doorcodes WHERE user_id = ? AND door_id = ?').run(u.id, d.id);
      const chosen = this.storeDoorcode(u.id, d.id, k.key_id, wanted);
      this.touch([d.id]);
      return { doorId: d.id, keyId: k.key_id, code: chosen };
    });
  }

  revokeDoorcode(userId: number, doorId: number): void {
    this.batch(() => {
      const u = this.userRow(userId);
      const d = this.doorRow(doorId);
      const r = this.db.prepare('DELETE FROM doorcodes WHERE user_id = ? AND door_id = ?').run(u.id, d.id);
      if (r.changes === 0) throw new AuthorityError('UNKNOWN_DOORCODE', `user ${u.id} has no doorcode at door ${d.id}`);
      this.touch([d.id]);
    });
  }

  /** Reveal a user's code for a door (what the resident's app would show). */
  doorcodeOf(userId: number, doorId: number): string {
    const r = this.db.prepare('SELECT id, code_sealed FROM doorcodes WHERE user_id = ? AND door_id = ?').get(requireId(userId, 'userId'), requireId(doorId, 'doorId')) as
      | { id: number; code_sealed: Buffer }
      | undefined;
    if (r === undefined) throw new AuthorityError('UNKNOWN_DOORCODE', `user ${userId} has no doorcode at door ${doorId}`);
    return new TextDecoder().decode(this.sealer.open(`doorcode:${r.id}`, u8(r.code_sealed)));
  }

  // -------------------------------------------------------------------------
  // Keycards

  addKeycard(userId: number, uidHex: string): { id: number; userId: number; uid: string } {
    return this.batch(() => {
      const u = this.userRow(userId);
      const uid = requireHex(uidHex, 'uid', { min: 4, max: 10 });
      if (![4, 7, 10].includes(uid.length)) throw invalid('keycard UIDs are 4, 7 or 10 bytes (ISO 14443)');
      if (this.db.prepare('SELECT 1 FROM keycards WHERE uid = ?').get(blob(uid))) throw new AuthorityError('CONFLICT', 'that keycard is already enrolled');
      const r = this.db.prepare('INSERT INTO keycards (user_id, uid, created_at) VALUES (?, ?, ?)').run(u.id, blob(uid), this.now());
      this.touch(this.doorsOfUser(u.id));
      return { id: Number(r.lastInsertRowid), userId: u.id, uid: toHex(uid) };
    });
  }

  removeKeycard(keycardId: number): void {
    this.batch(() => {
      const id = requireId(keycardId, 'keycardId');
      const c = this.db.prepare('SELECT user_id FROM keycards WHERE id = ?').get(id) as { user_id: number } | undefined;
      if (c === undefined) throw new AuthorityError('UNKNOWN_KEYCARD', `no keycard ${id}`);
      this.touch(this.doorsOfUser(c.user_id));
      this.db.prepare('DELETE FROM keycards WHERE id = ?').run(id);
    });
  }

  // -------------------------------------------------------------------------
  // Daily codes: derived from the lock's secret, work without a sync

  issueDailyCode(doorId: number, input: { kind?: 'daily' | 'dailySingleUse'; date?: string; label?: string } = {}): {
    doorId: number;
    lockId: string;
    date: string;
    kind: 'daily' | 'dailySingleUse';
    slot: number;
    code: string;
  } {
    return this.batch(() => {
      const d = this.doorRow(doorId);
      const lock = this.lockOfDoor(d.id);
      const kind = input.kind ?? 'daily';
      if (kind !== 'daily' && kind !== 'dailySingleUse') throw invalid('kind must be daily or dailySingleUse');
      const date = input.date === undefined ? localDate(this.now(), this.meta('timeZone')) : requireLocalDate(input.date);
      const slots = this.lockPolicyFor(d).dailyCodeSlots;
      const used = this.db.prepare('SELECT slot FROM daily_code_issues WHERE door_id = ? AND local_date = ? AND kind = ?').all(d.id, date, kind) as { slot: number }[];
      const taken = new Set(used.map((u) => u.slot));
      let slot = -1;
      for (let s = 0; s < slots; s++) if (!taken.has(s)) (slot = s), (s = slots);
      if (slot < 0) throw new AuthorityError('DAILY_CODES_EXHAUSTED', `all ${slots} ${kind} codes for ${date} at door ${d.id} are issued`, { slots });
      this.db
        .prepare('INSERT INTO daily_code_issues (door_id, local_date, kind, slot, label, issued_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(d.id, date, kind, slot, input.label ?? null, this.now());
      const code = dailyCode(this.lockSecret(lock.lock_id, lock.secret_sealed), date, slot, kind);
      return { doorId: d.id, lockId: lock.lock_id, date, kind, slot, code };
    });
  }

  // -------------------------------------------------------------------------
  // Partners

  private partnerRow(partnerId: unknown): PartnerRow {
    const id = requireId(partnerId, 'partnerId');
    const r = this.db.prepare('SELECT id, name, status FROM partners WHERE id = ?').get(id) as PartnerRow | undefined;
    if (r === undefined) throw new AuthorityError('UNKNOWN_PARTNER', `no partner ${id}`, { partnerId: id });
    return r;
  }

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

  private doorsOfPartner(partnerId: number): number[] {
    return (
      this.db
        .prepare(
          `SELECT door_id FROM partner_doors WHERE partner_id = ?
           UNION SELECT kd.door_id FROM keys k JOIN key_doors kd ON kd.key_id = k.id WHERE k.partner_id = ?`,
        )
        .all(partnerId, partnerId) as { door_id: number }[]
    ).map((r) => r.door_id);
  }

  /** The integrations step: the partner becomes authorized at the property. */
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
      this.db.prepare("UPDATE partners SET status = 'terminated', token_hash = NULL, terminated_at = ? WHERE id = ?").run(now, p.id);
      // Its devices' tokens die with the integration (they could otherwise still carry data).
      this.db.prepare('UPDATE devices SET revoked_at = ? WHERE partner_id = ? AND revoked_at IS NULL').run(now, p.id);
      return this.partner(p.id);
    });
  }

  // -------------------------------------------------------------------------
  // Locks

  private lockRow(lockId: unknown): LockRow {
    if (typeof lockId !== 'string' || !LOCK_ID_PATTERN.test(lockId)) throw new AuthorityError('UNKNOWN_LOCK', `no lock ${String(lockId)}`);
    const r = this.db.prepare('SELECT * FROM locks WHERE lock_id = ?').get(lockId) as LockRow | undefined;
    if (r === undefined) throw new AuthorityError('UNKNOWN_LOCK', `no lock ${lockId}`, { lockId });
    return r;
  }

  private lockOfDoor(doorId: number): LockRow {
    const r = this.db.prepare('SELECT * FROM locks WHERE door_id = ?').get(doorId) as LockRow | undefined;
    if (r === undefined) throw new AuthorityError('UNKNOWN_LOCK', `door ${doorId} has no lock provisioned`, { doorId });
    return r;
  }

  private lockSecret(lockId: string, sealed: Buffer): Uint8Array {
    return this.sealer.open(`lock-secret:${lockId}`, u8(sealed));
  }

  private lockPolicyFor(door: DoorRow): LockPolicy {
    const base = JSON.parse(this.meta('policy')) as LockPolicy;
    return door.policy === null ? base : { ...base, ...(JSON.parse(door.policy) as Partial<LockPolicy>) };
  }

  /**
   * Provision the lock guarding a door: a new lock id and 32-byte lock secret. Version 1
   * of its table is compiled at once. The bundle (with the secret) is returned only here.
   */
  provisionLock(doorId: number): ProvisioningBundle {
    return this.batch(() => {
      const d = this.doorRow(doorId);
      const existing = this.db.prepare('SELECT lock_id FROM locks WHERE door_id = ?').get(d.id) as { lock_id: string } | undefined;
      if (existing) throw new AuthorityError('CONFLICT', `door ${d.id} already has lock ${existing.lock_id}`, { lockId: existing.lock_id });
      const n = (this.db.prepare("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'lockCounter' RETURNING value").get() as { value: number }).value;
      const lockId = `lk-${String(n).padStart(4, '0')}`;
      const secret = this.draw(`lock-secret:${lockId}`);
      this.db
        .prepare('INSERT INTO locks (lock_id, door_id, secret_sealed, created_at) VALUES (?, ?, ?, ?)')
        .run(lockId, d.id, blob(this.sealer.seal(`lock-secret:${lockId}`, secret)), this.now());
      this.touch([d.id]);
      return {
        lockId,
        doorId: d.id,
        rootPublicKeys: JSON.parse(this.meta('rootPublicKeys')) as string[],
        lockSecret: toHex(secret),
        timeZone: this.meta('timeZone'),
        policy: this.lockPolicyFor(d),
      };
    });
  }

  /** Record the lock's device public key (verifies its receipts); returns the lock's token. */
  registerLockDevice(lockId: string, devicePublicKeyHex: string, opts: { replace?: boolean } = {}): { lockId: string; token: string } {
    return this.batch(() => {
      const l = this.lockRow(lockId);
      const pk = requireHex(devicePublicKeyHex, 'devicePublicKey', { exact: 32 });
      if (l.device_public_key !== null && !bytesEqual(l.device_public_key, pk) && opts.replace !== true)
        throw new AuthorityError('CONFLICT', `lock ${l.lock_id} already has a device key (pass replace to change it)`);
      const token = this.newToken('lock');
      this.db.prepare('UPDATE locks SET device_public_key = ?, token_hash = ? WHERE lock_id = ?').run(blob(pk), sha256(token), l.lock_id);
      return { lockId: l.lock_id, token };
    });
  }

  listLocks(): { lockId: string; doorId: number; version: number; versionInForce: number; inForceSince: number | null; deviceRegistered: boolean }[] {
    const rows = this.db
      .prepare(
        `SELECT l.lock_id, l.door_id, l.in_force_version, l.in_force_at, CASE WHEN l.device_public_key IS NOT NULL THEN 1 ELSE 0 END AS dev,
                (SELECT MAX(version) FROM lock_versions v WHERE v.lock_id = l.lock_id) AS version
         FROM locks l ORDER BY l.lock_id`,
      )
      .all() as { lock_id: string; door_id: number; in_force_version: number; in_force_at: number | null; dev: number; version: number | null }[];
    return rows.map((r) => ({ lockId: r.lock_id, doorId: r.door_id, version: r.version ?? 0, versionInForce: r.in_force_version, inForceSince: r.in_force_at, deviceRegistered: r.dev === 1 }));
  }

  // -------------------------------------------------------------------------
  // Compiling: model → table, per lock

  private credIdAllocator(lockId: string): (ref: string, subject: string, deviceId: number | null) => number {
    const known = new Map<string, number>();
    for (const r of this.db.prepare('SELECT ref, cred_id FROM cred_ids WHERE lock_id = ?').all(lockId) as { ref: string; cred_id: number }[]) known.set(r.ref, r.cred_id);
    const insert = this.db.prepare('INSERT INTO cred_ids (lock_id, ref, device_id, subject) VALUES (?, ?, ?, ?)');
    return (ref, subject, deviceId) => {
      let id = known.get(ref);
      if (id === undefined) {
        id = Number(insert.run(lockId, ref, deviceId, subject).lastInsertRowid);
        if (id > 0xffff_ffff) throw new AuthorityError('INTERNAL', 'credential id space exhausted');
        known.set(ref, id);
      }
      return id;
    };
  }

  /** Build the table a lock should hold, from the model. Pure read (plus credId allocation). */
  buildTable(lockId: string): Table {
    const lock = this.lockRow(lockId);
    const door = this.doorRow(lock.door_id);
    const policy = this.lockPolicyFor(door);
    const lease = policy.leaseSeconds > 0 ? ENTRY_FLAGS.LEASE : 0;
    const secret = this.lockSecret(lock.lock_id, lock.secret_sealed);
    const credId = this.credIdAllocator(lock.lock_id);
    const entries = new Map<number, Entry>();
    const keyPolicies = new Map<number, KeyPolicy>();
    const put = (e: Entry): void => {
      entries.set(e.credId, e);
    };
    const withValidity = (e: Entry, from: number | null, until: number | null): Entry => {
      if (from !== null) e.validFrom = from;
      if (until !== null) e.validUntil = until;
      return e;
    };

    // Keys at this door (manager Keys and partner keys) and their door policies.
    const keyDoors = this.db
      .prepare('SELECT kd.*, k.partner_id, k.guest_of FROM key_doors kd JOIN keys k ON k.id = kd.key_id WHERE kd.door_id = ?')
      .all(door.id) as (KeyDoorRow & { partner_id: number | null; guest_of: number | null })[];
    const settings = new Map<number, KeyDoorRow>();
    for (const kd of keyDoors) settings.set(kd.key_id, kd);
    const policyOf = (keyId: number, kd: KeyDoorRow): KeyPolicy => {
      const p: KeyPolicy = { keyId, doorcodesEnabled: kd.doorcodes_enabled === 1 };
      if (kd.schedule !== null) p.schedule = JSON.parse(kd.schedule) as ScheduleWindow[];
      return p;
    };
    for (const kd of keyDoors) if (kd.guest_of === null) keyPolicies.set(kd.key_id, policyOf(kd.key_id, kd));

    // Users holding those Keys: one phone entry per (device, assignment), keycards likewise.
    const grants = this.db
      .prepare(
        `SELECT a.id, a.user_id, a.key_id, a.valid_from, a.valid_until, u.role FROM assignments a
         JOIN key_doors kd ON kd.key_id = a.key_id AND kd.door_id = ? JOIN keys k ON k.id = a.key_id JOIN users u ON u.id = a.user_id
         WHERE k.guest_of IS NULL AND u.role <> 'guest' ORDER BY a.id`,
      )
      .all(door.id) as { id: number; user_id: number; key_id: number; valid_from: number | null; valid_until: number | null; role: UserRole }[];
    const devicesOfUser = this.db.prepare('SELECT id, public_key FROM devices WHERE user_id = ? ORDER BY id');
    const cardsOfUser = this.db.prepare('SELECT id, uid FROM keycards WHERE user_id = ? ORDER BY id');
    /** Lowest credId among a resident assignment's credentials here: guests chain to it. */
    const anchorOf = new Map<number, number>();
    const note = (assignmentId: number, id: number): void => {
      const cur = anchorOf.get(assignmentId);
      if (cur === undefined || id < cur) anchorOf.set(assignmentId, id);
    };
    for (const g of grants) {
      const holder: HolderClass = g.role === 'staff' ? 'staff' : 'resident';
      for (const d of devicesOfUser.all(g.user_id) as { id: number; public_key: Buffer }[]) {
        const id = credId(`phone:${d.id}:${g.id}`, `user:${g.user_id}`, d.id);
        put(withValidity({ credId: id, kind: 'phone', holder, secret: u8(d.public_key), keyId: g.key_id, flags: 0 }, g.valid_from, g.valid_until));
        note(g.id, id);
      }
      for (const c of cardsOfUser.all(g.user_id) as { id: number; uid: Buffer }[]) {
        const id = credId(`keycard:${c.id}:${g.id}`, `user:${g.user_id}`, null);
        put(withValidity({ credId: id, kind: 'keycard', holder, secret: keycardVerifier(secret, u8(c.uid)), keyId: g.key_id, flags: 0 }, g.valid_from, g.valid_until));
        note(g.id, id);
      }
    }
    // Permanent doorcodes: verifier under this lock's secret, attached to their Key.
    const codes = this.db
      .prepare(
        `SELECT dc.id, dc.user_id, dc.key_id, dc.code_sealed, a.id AS assignment_id, a.valid_from, a.valid_until, u.role FROM doorcodes dc
         JOIN assignments a ON a.user_id = dc.user_id AND a.key_id = dc.key_id JOIN users u ON u.id = dc.user_id
         JOIN key_doors kd ON kd.key_id = dc.key_id AND kd.door_id = dc.door_id WHERE dc.door_id = ?`,
      )
      .all(door.id) as { id: number; user_id: number; key_id: number; code_sealed: Buffer; assignment_id: number; valid_from: number | null; valid_until: number | null; role: UserRole }[];
    for (const c of codes) {
      const code = new TextDecoder().decode(this.sealer.open(`doorcode:${c.id}`, u8(c.code_sealed)));
      const id = credId(`doorcode:${c.id}`, `user:${c.user_id}`, null);
      put(
        withValidity(
          { credId: id, kind: 'doorcode', holder: c.role === 'staff' ? 'staff' : 'resident', secret: doorcodeVerifier(secret, code), keyId: c.key_id, flags: 0 },
          c.valid_from,
          c.valid_until,
        ),
      );
      note(c.assignment_id, id);
    }

    // Guests: a one-door Key per shared door, chained (parent) to the resident's credential,
    // with the resident's Key settings for this door; LEASE-flagged when a lease is set.
    const guests = this.db
      .prepare(
        `SELECT k.id AS key_id, k.guest_of, ga.id AS assignment_id, ga.user_id, ga.valid_from, ga.valid_until,
                pa.key_id AS parent_key, pa.valid_from AS p_from, pa.valid_until AS p_until
         FROM keys k JOIN key_doors kd ON kd.key_id = k.id AND kd.door_id = ?
         JOIN assignments ga ON ga.key_id = k.id JOIN assignments pa ON pa.id = k.guest_of
         WHERE k.guest_of IS NOT NULL ORDER BY ga.id`,
      )
      .all(door.id) as { key_id: number; guest_of: number; assignment_id: number; user_id: number; valid_from: number | null; valid_until: number | null; parent_key: number; p_from: number | null; p_until: number | null }[];
    for (const g of guests) {
      const parent = anchorOf.get(g.guest_of);
      const parentSettings = settings.get(g.parent_key);
      if (parent === undefined || parentSettings === undefined) continue; // resident has no credential here yet
      keyPolicies.set(g.key_id, policyOf(g.key_id, parentSettings));
      const from = g.valid_from === null ? g.p_from : g.p_from === null ? g.valid_from : Math.max(g.valid_from, g.p_from);
      const until = g.valid_until === null ? g.p_until : g.p_until === null ? g.valid_until : Math.min(g.valid_until, g.p_until);
      if (from !== null && until !== null && until <= from) continue; // windows do not overlap
      for (const d of devicesOfUser.all(g.user_id) as { id: number; public_key: Buffer }[]) {
        const id = credId(`guest-phone:${d.id}:${g.assignment_id}`, `user:${g.user_id}`, d.id);
        put(withValidity({ credId: id, kind: 'phone', holder: 'guest', secret: u8(d.public_key), keyId: g.key_id, parent, flags: lease }, from, until));
      }
    }

    // Partners: assigned per door (no Key) or through a partner key.
    const partnerDevices = this.db.prepare('SELECT id, public_key FROM devices WHERE partner_id = ? ORDER BY id');
    const direct = this.db
      .prepare("SELECT pd.partner_id FROM partner_doors pd JOIN partners p ON p.id = pd.partner_id WHERE pd.door_id = ? AND p.status = 'authorized'")
      .all(door.id) as { partner_id: number }[];
    for (const p of direct)
      for (const d of partnerDevices.all(p.partner_id) as { id: number; public_key: Buffer }[]) {
        const id = credId(`partner-phone:${d.id}:door`, `partner:${p.partner_id}`, d.id);
        put({ credId: id, kind: 'phone', holder: 'partner', secret: u8(d.public_key), partnerId: p.partner_id, flags: lease });
      }
    for (const kd of keyDoors) {
      if (kd.partner_id === null) continue;
      for (const d of partnerDevices.all(kd.partner_id) as { id: number; public_key: Buffer }[]) {
        const id = credId(`partner-phone:${d.id}:key:${kd.key_id}`, `partner:${kd.partner_id}`, d.id);
        put({ credId: id, kind: 'phone', holder: 'partner', secret: u8(d.public_key), partnerId: kd.partner_id, keyId: kd.key_id, flags: lease });
      }
    }
    return { entries, keyPolicies, policy };
  }

  private latestVersionRow(lockId: string): VersionRow | undefined {
    return this.db.prepare('SELECT * FROM lock_versions WHERE lock_id = ? ORDER BY version DESC LIMIT 1').get(lockId) as VersionRow | undefined;
  }

  private versionRow(lockId: string, version: number): VersionRow | undefined {
    return this.db.prepare('SELECT * FROM lock_versions WHERE lock_id = ? AND version = ?').get(lockId, version) as VersionRow | undefined;
  }

  /** The table of a lock at a version, or undefined when it can no longer be rebuilt. */
  tableAt(lockId: string, version: number): Table | undefined {
    if (version === 0) return emptyTable();
    const target = this.versionRow(lockId, version);
    if (target === undefined) return undefined;
    const cached = this.tableCache.get(lockId);
    if (cached !== undefined && cached.version === version && bytesEqual(cached.digest, target.digest)) return cached.table;
    const cp = this.db
      .prepare('SELECT version, table_bytes FROM lock_versions WHERE lock_id = ? AND version <= ? AND table_bytes IS NOT NULL ORDER BY version DESC LIMIT 1')
      .get(lockId, version) as { version: number; table_bytes: Buffer } | undefined;
    let table: Table;
    let from: number;
    if (cp === undefined) {
      // Rebuild from version 0 when every step's ops are still kept.
      table = emptyTable();
      from = 0;
    } else {
      table = decodeTableBytes(u8(cp.table_bytes));
      from = cp.version;
    }
    const steps = this.db.prepare('SELECT version, ops FROM lock_versions WHERE lock_id = ? AND version > ? AND version <= ? ORDER BY version').all(lockId, from, version) as {
      version: number;
      ops: Buffer | null;
    }[];
    if (steps.length !== version - from) return undefined;
    for (const s of steps) {
      if (s.ops === null) return undefined;
      table = applyOps(table, decodeOps(u8(s.ops)));
    }
    if (!bytesEqual(tableDigest(table), target.digest)) throw new AuthorityError('INTERNAL', `stored history of ${lockId} does not rebuild v${version}`);
    return table;
  }

  private currentTable(lockId: string): { version: number; digest: Uint8Array; issuedAt: number; table: Table } {
    const row = this.latestVersionRow(lockId);
    if (row === undefined) return { version: 0, digest: tableDigest(emptyTable()), issuedAt: 0, table: emptyTable() };
    const cached = this.tableCache.get(lockId);
    if (cached !== undefined && cached.version === row.version && bytesEqual(cached.digest, row.digest)) return { ...cached, issuedAt: row.issued_at };
    const table = row.table_bytes !== null ? decodeTableBytes(u8(row.table_bytes)) : this.tableAt(lockId, row.version);
    if (table === undefined) throw new AuthorityError('INTERNAL', `current table of ${lockId} is missing`);
    const digest = u8(row.digest);
    this.tableCache.set(lockId, { version: row.version, digest, table });
    return { version: row.version, digest, issuedAt: row.issued_at, table };
  }

  private compileDoors(doorIds: Set<number>): void {
    if (doorIds.size === 0) return;
    const ids = [...doorIds].sort((a, b) => a - b);
    const locks = this.db.prepare(`SELECT lock_id FROM locks WHERE door_id IN (${ids.map(() => '?').join(',')}) ORDER BY lock_id`).all(...ids) as { lock_id: string }[];
    for (const l of locks) this.compileLock(l.lock_id);
  }

  /**
   * Recompute one lock's table; if it changed, issue the next version: diff with the
   * protocol's diffTables, prove the ops with applyOps + tableDigest, sign, store.
   */
  compileLock(lockId: string): { version: number; changed: boolean; ops: Op[] } {
    const prev = this.currentTable(lockId);
    const next = this.buildTable(lockId);
    const digest = tableDigest(next);
    if (bytesEqual(digest, prev.digest) && prev.version > 0) return { version: prev.version, changed: false, ops: [] };
    const ops = diffTables(prev.table, next);
    const check = applyOps(prev.table, ops);
    if (!bytesEqual(tableDigest(check), digest)) throw new AuthorityError('INTERNAL', `diff for ${lockId} does not reproduce the compiled table`);
    const version = prev.version + 1;
    const issuedAt = Math.max(this.now(), prev.issuedAt);
    const key = this.signingKey();
    const head = signHead({ lockId, version, digest, issuedAt, keyId: keyIdOf(key.publicKey) }, key.secretKey);
    const now = this.now();
    this.db
      .prepare(
        `INSERT INTO lock_versions (lock_id, version, digest, issued_at, key_serial, head_bytes, head_signature, ops, table_bytes, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(lockId, version, blob(digest), issuedAt, key.serial, blob(head.headBytes), blob(head.signature), blob(encodeOps(ops)), blob(encodeTable(next)), now);
    // The previous version keeps its full table only as a checkpoint.
    if (prev.version > 0 && prev.version % this.checkpointEvery !== 0)
      this.db.prepare('UPDATE lock_versions SET table_bytes = NULL WHERE lock_id = ? AND version = ?').run(lockId, prev.version);
    // Revocations: credentials gone from this version are pending until it is in force.
    const insertRevocation = this.db.prepare(
      `INSERT INTO revocations (lock_id, cred_id, version, removed_at, kind, holder, partner_id, key_id, subject)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, (SELECT subject FROM cred_ids WHERE cred_id = ?))
       ON CONFLICT(lock_id, cred_id) DO UPDATE SET version = excluded.version, removed_at = excluded.removed_at`,
    );
    const setPresent = this.db.prepare('UPDATE cred_ids SET present = ? WHERE cred_id = ?');
    const dropRevocation = this.db.prepare('DELETE FROM revocations WHERE lock_id = ? AND cred_id = ?');
    for (const [id, e] of prev.table.entries) {
      if (next.entries.has(id)) continue;
      insertRevocation.run(lockId, id, version, now, e.kind, e.holder, e.partnerId ?? null, e.keyId ?? null, id);
      setPresent.run(0, id);
    }
    for (const id of next.entries.keys()) {
      if (prev.table.entries.has(id)) continue;
      dropRevocation.run(lockId, id); // granted again: nothing left to revoke
      setPresent.run(1, id);
    }
    this.prune(lockId, version);
    this.tableCache.set(lockId, { version, digest, table: next });
    this.pendingNotices.push([lockId, version]);
    return { version, changed: true, ops };
  }

  /**
   * Drop ops/tables of versions too old to serve deltas from. Everything from the newest
   * checkpoint at or below the oldest servable base (and below the version in force, which
   * the honouring view rebuilds) is kept, so those versions stay rebuildable.
   */
  private prune(lockId: string, version: number): void {
    const keepFrom = version - this.historyVersions;
    if (keepFrom <= 1) return;
    const checkpointAtOrBelow = (v: number): number =>
      (this.db.prepare('SELECT MAX(version) AS v FROM lock_versions WHERE lock_id = ? AND version <= ? AND table_bytes IS NOT NULL').get(lockId, v) as { v: number | null }).v ?? 0;
    const inForce = (this.db.prepare('SELECT in_force_version FROM locks WHERE lock_id = ?').get(lockId) as { in_force_version: number }).in_force_version;
    let floor = checkpointAtOrBelow(keepFrom);
    if (inForce > 0 && inForce < keepFrom) floor = Math.min(floor, checkpointAtOrBelow(inForce));
    if (floor > 1) this.db.prepare('UPDATE lock_versions SET ops = NULL, table_bytes = NULL WHERE lock_id = ? AND version < ? AND (ops IS NOT NULL OR table_bytes IS NOT NULL)').run(lockId, floor);
  }

  /** Oldest version a delta can still be served from. */
  private oldestDeltaBase(lockId: string, current: number): number {
    return Math.max(0, current - this.historyVersions);
  }

  // -------------------------------------------------------------------------
  // Serving updates

  private signedHeadOf(row: VersionRow): { head: SignedHead; certs: SignedKeyCert[] } {
    const key = this.signingKey();
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
    if (!Number.isSafeInteger(from) || from < 0) throw invalid('from must be a version number ≥ 0');
    return this.db.transaction(() => {
      this.lockRow(lockId);
      const cur = this.latestVersionRow(lockId);
      const to = cur?.version ?? 0;
      if (from > to) throw new AuthorityError('UNKNOWN_VERSION', `lock ${lockId} claims v${from}, newest issued is v${to}`, { from, to });
      if (cur === undefined || from === to) return { lockId, from, to, messages: [] };
      const signed = this.signedHeadOf(cur);
      const head = signed.head;
      const certs = certSerial !== undefined && certSerial >= this.signingKey().serial ? [] : signed.certs;
      const current = this.currentTable(lockId);
      const snapshotMessage = (): Uint8Array => encodeMessage({ type: 'snapshot', update: { type: 'snapshot', table: current.table, head, certs } });
      let chosen: Uint8Array | undefined;
      if (from >= this.oldestDeltaBase(lockId, to)) {
        const base = this.tableAt(lockId, from);
        if (base !== undefined) {
          const ops = diffTables(base, current.table);
          if (bytesEqual(tableDigest(applyOps(base, ops)), current.digest)) {
            // tableAt() already proved the rebuilt base against the digest stored for `from`.
            const baseDigest = from === 0 ? tableDigest(base) : u8((this.versionRow(lockId, from) as VersionRow).digest);
            const delta = encodeMessage({ type: 'delta', update: makeDelta({ base: { version: from, digest: baseDigest }, ops, head, certs }) });
            // The snapshot carries the whole table (entry encodings are cached): only build
            // it when the delta is not clearly smaller.
            if (delta.length < encodeTable(current.table).length) chosen = delta;
            else {
              const snap = snapshotMessage();
              chosen = delta.length < snap.length ? delta : snap;
            }
          }
        }
      }
      chosen ??= snapshotMessage();
      return { lockId, from, to, messages: [toHex(chosen)] };
    }).immediate();
  }

  /** Current version number of a lock's table. */
  currentVersion(lockId: string): number {
    this.lockRow(lockId);
    return this.latestVersionRow(lockId)?.version ?? 0;
  }

  /**
   * Authority time signed with the online key, bound to the lock's session nonce if given.
   * It names the table version and digest current for the lock now: the lock refreshes its
   * lease only when they are its own (SPEC §8.1), so relaying fresh time while withholding
   * a revocation buys nothing.
   */
  signedTime(lockId: string, nonceHex?: string): string {
    this.lockRow(lockId);
    const key = this.signingKey();
    const row = this.latestVersionRow(lockId);
    const digest = row !== undefined ? u8(row.digest) : tableDigest(emptyTable());
    const body: SignedTimeBody = { lockId, time: this.now(), keyId: keyIdOf(key.publicKey), version: row?.version ?? 0, digest };
    if (nonceHex !== undefined && nonceHex !== '') body.nonce = requireHex(nonceHex, 'nonce', { exact: NONCE_BYTES });
    return toHex(encodeMessage(makeSignedTime(body, key.secretKey)));
  }

  // -------------------------------------------------------------------------
  // Receipts and audit

  private decodeAs<T extends string>(hex: unknown, type: T, what: string): Extract<ReturnType<typeof decodeMessage>, { type: T }> {
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
    const result = this.batch(() => {
      const l = this.lockRow(lockId);
      if (l.device_public_key === null) throw new AuthorityError('LOCK_DEVICE_UNKNOWN', `lock ${l.lock_id} has no registered device key`);
      if (!verifyReceipt(m, u8(l.device_public_key))) throw new AuthorityError('BAD_RECEIPT', 'receipt signature does not verify with the lock device key', { reason: 'BAD_SIGNATURE' });
      const b = m.body;
      if (b.lockId !== l.lock_id) throw new AuthorityError('BAD_RECEIPT', `receipt is for ${b.lockId}, not ${l.lock_id}`, { reason: 'WRONG_LOCK' });
      if (b.version === 0) {
        if (!bytesEqual(b.digest, tableDigest(emptyTable()))) throw new AuthorityError('BAD_RECEIPT', 'v0 receipt with a non-empty digest', { reason: 'DIGEST_MISMATCH' });
      } else {
        const row = this.versionRow(l.lock_id, b.version);
        if (row === undefined) throw new AuthorityError('UNKNOWN_VERSION', `v${b.version} was never issued for ${l.lock_id}`, { version: b.version });
        if (!bytesEqual(row.digest, b.digest)) throw new AuthorityError('BAD_RECEIPT', `receipt digest differs from issued v${b.version}`, { reason: 'DIGEST_MISMATCH' });
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
      const stored = this.db.prepare('SELECT chain_hash FROM audit_records WHERE lock_id = ? AND seq = ?').get(l.lock_id, b.auditSeq) as { chain_hash: Buffer } | undefined;
      if (stored !== undefined) {
        if (bytesEqual(stored.chain_hash, b.auditHead)) this.db.prepare('UPDATE audit_records SET anchored = 1 WHERE lock_id = ? AND seq <= ?').run(l.lock_id, b.auditSeq);
        else this.db.prepare('DELETE FROM audit_records WHERE lock_id = ? AND anchored = 0').run(l.lock_id);
      }
      return { lockId: l.lock_id, version: b.version, inForce: true as const };
    });
    return result;
  }

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
    return this.batch(() => {
      const l = this.lockRow(lockId);
      if (l.device_public_key === null) throw new AuthorityError('LOCK_DEVICE_UNKNOWN', `lock ${l.lock_id} has no registered device key`);
      let v: ReturnType<typeof verifyAuditExport>;
      try {
        v = verifyAuditExport(m, l.lock_id, u8(l.device_public_key));
      } catch (e) {
        if (e instanceof ProtocolError) throw new AuthorityError('BAD_AUDIT', `audit export: ${e.detail}`, { reason: e.reason });
        throw e;
      }
      const getStored = this.db.prepare('SELECT chain_hash, anchored FROM audit_records WHERE lock_id = ? AND seq = ?');
      const heads = this.db.prepare('SELECT audit_head FROM receipts WHERE lock_id = ? AND audit_seq = ?');
      const chain: { seq: number; bytes: Uint8Array; hash: Uint8Array }[] = [];
      let h = m.prevHash;
      for (const rb of m.records) {
        h = chainAudit(h, rb);
        chain.push({ seq: auditRecordFromBytes(rb).seq, bytes: rb, hash: h });
      }
      let dropFrom: number | null = null;
      if (v.firstSeq !== undefined) {
        const first = v.firstSeq;
        const before = getStored.get(l.lock_id, first - 1) as { chain_hash: Buffer; anchored: number } | undefined;
        const beforeMatches = before !== undefined && bytesEqual(before.chain_hash, m.prevHash);
        if (before !== undefined && !beforeMatches) {
          if (before.anchored === 1) throw new AuthorityError('AUDIT_CHAIN_MISMATCH', `export does not continue the anchored chain at seq ${first - 1}`, { seq: first - 1 });
          dropFrom = first - 1;
        }
        const fromGenesis = first === 1 && bytesEqual(m.prevHash, AUDIT_GENESIS);
        const fromHead = (heads.all(l.lock_id, first - 1) as { audit_head: Buffer }[]).some((r) => bytesEqual(r.audit_head, m.prevHash));
        const fromOldest = first === v.oldestSeq;
        if (!(fromGenesis || (beforeMatches && before?.anchored === 1) || fromHead || fromOldest))
          throw new AuthorityError('AUDIT_CHAIN_GAP', `export starts at seq ${first}, after records this authority does not hold (the lock holds from seq ${v.oldestSeq}); export from there`, {
            firstSeq: first,
            oldestSeq: v.oldestSeq,
          });
        for (const c of chain) {
          const st = getStored.get(l.lock_id, c.seq) as { chain_hash: Buffer; anchored: number } | undefined;
          if (st !== undefined && !bytesEqual(st.chain_hash, c.hash)) {
            if (st.anchored === 1) throw new AuthorityError('AUDIT_CHAIN_MISMATCH', `record ${c.seq} differs from the anchored chain`, { seq: c.seq });
            dropFrom ??= c.seq;
          }
          for (const r of heads.all(l.lock_id, c.seq) as { audit_head: Buffer }[])
            if (!bytesEqual(r.audit_head, c.hash)) throw new AuthorityError('AUDIT_CHAIN_MISMATCH', `record ${c.seq} does not match the chain head the lock signed in a receipt`, { seq: c.seq });
        }
      }
      // Unauthenticated records this signed chain contradicts (and everything stored after
      // them, which chained from them) were fabricated or belong to nobody: replace them.
      if (dropFrom !== null) this.db.prepare('DELETE FROM audit_records WHERE lock_id = ? AND anchored = 0 AND seq >= ?').run(l.lock_id, dropFrom);
      const insert = this.db.prepare('INSERT OR IGNORE INTO audit_records (lock_id, seq, record, chain_hash, anchored, received_at) VALUES (?, ?, ?, ?, 1, ?)');
      const markAnchored = this.db.prepare('UPDATE audit_records SET anchored = 1 WHERE lock_id = ? AND seq = ? AND anchored = 0');
      let accepted = 0;
      const now = this.now();
      for (const c of chain) {
        const n = insert.run(l.lock_id, c.seq, blob(c.bytes), blob(c.hash), now).changes;
        accepted += n;
        if (n === 0) markAnchored.run(l.lock_id, c.seq);
      }
      // Anchor: every record from the lock's oldest through S is held here.
      let through = 0;
      const start = Math.max(1, v.oldestSeq);
      if (v.oldestSeq > 0) {
        const held = this.db.prepare('SELECT seq FROM audit_records WHERE lock_id = ? AND seq BETWEEN ? AND ? ORDER BY seq').all(l.lock_id, start, v.lastSeq) as { seq: number }[];
        for (const r of held) {
          if (r.seq !== (through === 0 ? start : through + 1)) break;
          through = r.seq;
        }
      }
      if (through === 0) return { accepted, anchoredThrough: null };
      const at = getStored.get(l.lock_id, through) as { chain_hash: Buffer };
      const key = this.signingKey();
      const anchor = makeAuditAnchor({ lockId: l.lock_id, seq: through, hash: u8(at.chain_hash), keyId: keyIdOf(key.publicKey) }, key.secretKey);
      return { accepted, anchoredThrough: through, anchor: toHex(encodeMessage(anchor)) };
    });
  }

  auditLog(lockId: string): { seq: number; time: number; event: string; credId?: number; reason?: number; value?: number; anchored: boolean }[] {
    this.lockRow(lockId);
    return (this.db.prepare('SELECT seq, record, anchored FROM audit_records WHERE lock_id = ? ORDER BY seq').all(lockId) as { seq: number; record: Buffer; anchored: number }[]).map(
      (r) => ({ ...auditRecordFromBytes(u8(r.record)), anchored: r.anchored === 1 }),
    );
  }

  // -------------------------------------------------------------------------
  // The manager's view of the gap

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

// ---------------------------------------------------------------------------
// Stored ops (the exact ops of each version step, CBOR)

function encodeOps(ops: readonly Op[]): Uint8Array {
  return encode(ops.map(opToCbor));
}

function decodeOps(bytes: Uint8Array): Op[] {
  const v = decode(bytes);
  if (!Array.isArray(v)) throw new AuthorityError('INTERNAL', 'stored ops are not an array');
  return v.map((o, i) => opFromCbor(o, `storedOps[${i}]`));
}
