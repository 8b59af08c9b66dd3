// Storage and transactions: the SQLite handle, `batch` (one IMMEDIATE transaction per
// manager operation, with the touched doors compiled once at its end), the seeded
// secret source, tokens and the meta table. Every other layer of the authority builds on it.

import { randomBytes } from 'node:crypto';
import { type SqlDatabase, type TransactionScope, isPostgresUrl, openDatabase } from './db';
import { type Table, ProtocolError, toHex, deriveSeed32 } from '../protocol';
import { AuthorityError } from './errors';
import { type KeyPaths, Sealer, keyPathsFor } from './keystore';
import { type AuthorityOptions } from './types';
import { TOKEN_PREFIX } from './rows';

/** Default lifetime of a device token: 90 days, renewed by rotation. */
export const DEFAULT_DEVICE_TOKEN_SECONDS = 90 * 86_400;

export abstract class AuthorityStore {
  protected readonly tableCache = new Map<string, { version: number; digest: Uint8Array; table: Table }>();
  protected readonly listeners = new Set<(lockId: string, version: number) => void>();
  protected txDepth = 0;
  protected pendingDoors: Set<number> | null = null;
  protected pendingNotices: [string, number][] = [];
  protected readonly now: () => number;
  protected readonly historyVersions: number;
  protected readonly checkpointEvery: number;
  protected readonly deviceTokenSeconds: number;

  protected constructor(
    readonly db: SqlDatabase,
    protected readonly sealer: Sealer,
    readonly paths: KeyPaths,
    protected readonly seed: string | undefined,
    opts: AuthorityOptions,
  ) {
    this.now = opts.now ?? (() => Math.floor(Date.now() / 1000));
    this.historyVersions = opts.historyVersions ?? 64;
    this.checkpointEvery = opts.checkpointEvery ?? 16;
    this.deviceTokenSeconds = opts.deviceTokenSeconds ?? DEFAULT_DEVICE_TOKEN_SECONDS;
    if (!Number.isSafeInteger(this.deviceTokenSeconds) || this.deviceTokenSeconds < 60) throw new AuthorityError('VALIDATION', 'deviceTokenSeconds must be a whole number of seconds ≥ 60');
  }

  /** A SQLite file or a PostgreSQL URL (db.ts holds the engines), with the PostgreSQL timeouts asked for. */
  protected static openDb(location: string, opts: { statementTimeoutMs?: number | undefined; connectTimeoutMs?: number | undefined } = {}): SqlDatabase {
    return openDatabase(location, {
      ...(opts.statementTimeoutMs !== undefined ? { statementTimeoutMs: opts.statementTimeoutMs } : {}),
      ...(opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: opts.connectTimeoutMs } : {}),
    });
  }

  /** Key files live beside a SQLite file; a PostgreSQL property names its key directory. */
  protected static keyPaths(opts: { dbPath: string; keyDir?: string | undefined; rootKeyPath?: string | undefined }): KeyPaths {
    if (isPostgresUrl(opts.dbPath) && opts.keyDir === undefined)
      throw new AuthorityError('VALIDATION', 'a property on PostgreSQL needs --key-dir (its key files cannot live beside a URL)');
    return keyPathsFor(opts.dbPath, opts.keyDir, opts.rootKeyPath);
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
    return this.transact('property', fn);
  }

  /**
   * Run `fn` as one transaction that reads the model and writes only rows of lock `lockId`
   * (serving it its next version, counting its receipt, storing its audit export). On
   * PostgreSQL such transactions of different locks run side by side, across authority
   * processes; one of the same lock, or any `batch` (a manager change), never runs beside it
   * (db.ts, TransactionScope). On SQLite it is a batch. It must not change the model.
   */
  lockBatch<T>(lockId: string, fn: () => T): T {
    return this.transact({ locks: [lockId] }, fn);
  }

  /** The scope of the transaction open now (null when none is). */
  private txScope: TransactionScope | null = null;

  private transact<T>(scope: TransactionScope, fn: () => T): T {
    if (this.txDepth > 0) {
      // Joining the open transaction: only within what it holds.
      const outer = this.txScope;
      if (outer !== null && outer !== 'property' && (scope === 'property' || scope.locks.some((id) => !outer.locks.includes(id))))
        throw new AuthorityError('INTERNAL', 'a change reaches beyond the lock its transaction was opened for');
      return fn();
    }
    const run = this.db.transaction(() => {
      this.txDepth++;
      this.txScope = scope;
      this.pendingDoors = new Set();
      try {
        const result = fn();
        if (scope !== 'property' && this.pendingDoors.size > 0) throw new AuthorityError('INTERNAL', 'a transaction opened for one lock changed the model');
        this.compileDoors(this.pendingDoors);
        return result;
      } finally {
        this.txDepth--;
        this.txScope = null;
        this.pendingDoors = null;
      }
    }, scope);
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

  protected touch(doorIds: Iterable<number>): void {
    if (this.pendingDoors === null) throw new AuthorityError('INTERNAL', 'model change outside a transaction');
    for (const d of doorIds) this.pendingDoors.add(d);
  }

  /** 32 fresh secret bytes; derived from the seed (and a persisted counter) when seeded. */
  protected draw(label: string): Uint8Array {
    if (this.seed === undefined) return new Uint8Array(randomBytes(32));
    const row = this.db.prepare("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'drawCounter' RETURNING value").get() as { value: number };
    return deriveSeed32(this.seed, `${label}#${row.value}`);
  }

  /**
   * `labels.length` secrets in one counter update: the same bytes as one draw() per label in
   * order (bulk provisioning, where each statement is a PostgreSQL round trip).
   */
  protected drawMany(labels: readonly string[]): Uint8Array[] {
    if (this.seed === undefined || labels.length === 0) return labels.map(() => new Uint8Array(randomBytes(32)));
    const seed = this.seed;
    const row = this.db.prepare("UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key = 'drawCounter' RETURNING value").get(labels.length) as { value: number };
    const first = Number(row.value) - labels.length + 1;
    return labels.map((label, i) => deriveSeed32(seed, `${label}#${first + i}`));
  }

  protected newToken(kind: string): string {
    return TOKEN_PREFIX + toHex(this.draw(`token:${kind}`));
  }

  protected meta(key: string): string {
    const r = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    if (r === undefined) throw new AuthorityError('NOT_INITIALIZED', `meta ${key} missing`);
    return String(r.value);
  }

  protected setMeta(key: string, value: string): void {
    this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  /** The authority's clock, unix seconds (rate limits in the HTTP layer use it). */
  nowSeconds(): number {
    return this.now();
  }

  /** Compile the locks of these doors (the compiler layer). */
  protected abstract compileDoors(doorIds: Set<number>): void;
}
