// Helpers shared by the authority tests: a temporary property, and a lock-side table
// state driven exactly as a lock drives it (protocol applyUpdate on the served bytes).

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type TableState,
  type Update,
  applyUpdate,
  decodeMessage,
  deriveSeed32,
  encodeMessage,
  fromHex,
  initialTableState,
  keyPairFromSeed,
  makeReceipt,
  makeSignedAuditExport,
  AUDIT_GENESIS,
  currentVersion,
  currentDigest,
  toHex,
} from '../protocol';
import { Authority, type AuthorityInitOptions, type AuthorityOptions, type ProvisioningBundle } from './authority';
import { freshPostgresSchema } from './db';

/**
 * The PostgreSQL server the authority suites also run against (vitest's `authority-postgres`
 * project sets it; .ci/run starts a server). Unset: every property is a SQLite file.
 */
export const TEST_POSTGRES_URL = process.env.LOCKSYNC_TEST_POSTGRES_URL;

export interface TempProperty {
  dir: string;
  /** The SQLite file, or the PostgreSQL URL (schema in its options) under the postgres project. */
  dbPath: string;
  /** What Authority.open needs for this property (the key directory too on PostgreSQL). */
  openOptions: Pick<AuthorityOptions, 'dbPath' | 'keyDir'>;
  /** Every byte the storage holds (file + WAL, or every row), to check what is never stored. */
  rawStorage(): Buffer;
  authority: Authority;
  managerToken: string;
  clock: { t: number };
  reopen(): Authority;
  cleanup(): void;
}

export function tempProperty(opts: Partial<AuthorityInitOptions> = {}): TempProperty {
  const dir = mkdtempSync(join(tmpdir(), 'locksync-authority-'));
  const pg = TEST_POSTGRES_URL !== undefined && TEST_POSTGRES_URL !== '' ? freshPostgresSchema(TEST_POSTGRES_URL) : null;
  const dbPath = pg ? pg.url : join(dir, 'property.db');
  const openOptions = pg ? { dbPath, keyDir: join(dir, 'keys') } : { dbPath };
  const clock = { t: 1_760_000_000 };
  const now = (): number => clock.t;
  const { authority, managerToken } = Authority.init({ ...openOptions, seed: 'test-seed', timeZone: 'Europe/Berlin', now, ...opts });
  const p: TempProperty = {
    dir,
    dbPath,
    openOptions,
    rawStorage: () => {
      if (pg === null) return Buffer.concat([readFileSync(dbPath), existsSync(`${dbPath}-wal`) ? readFileSync(`${dbPath}-wal`) : Buffer.alloc(0)]);
      const parts: Buffer[] = [];
      const tables = p.authority.db.prepare('SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()').all() as { table_name: string }[];
      for (const { table_name } of tables)
        for (const row of p.authority.db.prepare(`SELECT * FROM ${table_name}`).all() as Record<string, unknown>[])
          for (const v of Object.values(row)) parts.push(Buffer.isBuffer(v) ? v : Buffer.from(String(v)));
      return Buffer.concat(parts);
    },
    authority,
    managerToken,
    clock,
    reopen: () => {
      p.authority.close();
      p.authority = Authority.open({ ...openOptions, now, ...(opts.historyVersions !== undefined ? { historyVersions: opts.historyVersions } : {}) });
      return p.authority;
    },
    cleanup: () => {
      p.authority.close();
      pg?.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return p;
}

export function decodeUpdate(hex: string): Update {
  const m = decodeMessage(fromHex(hex));
  if (m.type !== 'delta' && m.type !== 'snapshot') throw new Error(`expected an update message, got ${m.type}`);
  return m.update;
}

/** A simulated lock: provisioning bundle + table state + device key, synced like firmware. */
export class SimLock {
  state: TableState;
  readonly device: ReturnType<typeof keyPairFromSeed>;
  constructor(readonly bundle: ProvisioningBundle) {
    this.device = keyPairFromSeed(deriveSeed32('test-seed', `lock-device:${bundle.lockId}`));
    this.state = initialTableState(bundle.lockId, bundle.rootPublicKeys.map(fromHex));
  }
  get version(): number {
    return currentVersion(this.state);
  }
  /** Fetch what the authority serves for this lock's version and apply it with applyUpdate. */
  sync(a: Authority): { types: string[]; bytes: number } {
    const r = a.updatesFor(this.bundle.lockId, this.version);
    const types: string[] = [];
    let bytes = 0;
    for (const hex of r.messages) {
      const u = decodeUpdate(hex);
      const res = applyUpdate(this.state, u);
      if (!res.ok) throw new Error(`lock ${this.bundle.lockId} refused ${u.type}: ${res.error.message}`);
      this.state = res.state;
      types.push(u.type);
      bytes += hex.length / 2;
    }
    return { types, bytes };
  }
  receipt(opts: { auditSeq?: number; auditHead?: Uint8Array; signer?: Uint8Array } = {}): string {
    const m = makeReceipt(
      {
        lockId: this.bundle.lockId,
        version: this.version,
        digest: currentDigest(this.state),
        nonce: new Uint8Array(16).fill(7),
        lockTime: 1_760_000_000,
        auditSeq: opts.auditSeq ?? 0,
        auditHead: opts.auditHead ?? AUDIT_GENESIS,
      },
      opts.signer ?? this.device.secretKey,
    );
    return toHex(encodeMessage(m));
  }
  /** An audit export of `records` chained from `prevHash`, signed by this lock's device key. */
  auditExport(prevHash: Uint8Array, records: Uint8Array[], opts: { oldestSeq?: number; lockId?: string; signer?: Uint8Array } = {}): string {
    const m = makeSignedAuditExport(opts.lockId ?? this.bundle.lockId, prevHash, records, opts.oldestSeq ?? 1, 0, opts.signer ?? this.device.secretKey);
    return toHex(encodeMessage(m));
  }
}
