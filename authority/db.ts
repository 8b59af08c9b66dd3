// The authority's storage: one SQL surface over two engines. SQLite (better-sqlite3) is the
// embedded default; PostgreSQL serves a property from several authority processes at once.
//
// The domain code is synchronous and transactional — a manager change validates, mutates and
// recompiles every door it touched inside one IMMEDIATE transaction — so the surface here is
// better-sqlite3's own (prepare/run/get/all, transaction().immediate(), exec). The SQLite
// engine is better-sqlite3 itself; the PostgreSQL engine (authority/postgres.ts) offers the
// same calls over a real PostgreSQL server. Every dialect difference lives in
// authority/postgres.ts: nothing else in the authority knows which engine it runs on.

import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { AuthorityError } from './errors';
import { openPostgresDatabase } from './postgres';

export interface RunResult {
  changes: number;
  lastInsertRowid: number | bigint;
}

export interface Statement {
  run(...params: unknown[]): RunResult;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

/** better-sqlite3's transaction wrapper: call it (DEFERRED) or pick the locking mode. */
export interface TransactionFn<F extends (...args: never[]) => unknown> {
  (...args: Parameters<F>): ReturnType<F>;
  immediate(...args: Parameters<F>): ReturnType<F>;
  deferred(...args: Parameters<F>): ReturnType<F>;
  exclusive(...args: Parameters<F>): ReturnType<F>;
}

export type Engine = 'sqlite' | 'postgres';

/**
 * What a transaction writes, for an engine that lets several writers run at once
 * (PostgreSQL, several authority processes). `'property'` (the default): anything — it runs
 * alone, as every transaction does on SQLite. `{ locks }`: only rows of these locks (serving
 * a lock its next version, counting its receipt, storing its audit): it runs beside other
 * locks' transactions, but never beside a `'property'` one nor another on the same lock.
 * SQLite has one writer at a time and ignores it.
 */
export type TransactionScope = 'property' | { readonly locks: readonly string[] };

export interface SqlDatabase {
  readonly engine: Engine;
  readonly open: boolean;
  prepare(sql: string): Statement;
  exec(sql: string): void;
  transaction<F extends (...args: never[]) => unknown>(fn: F, scope?: TransactionScope): TransactionFn<F>;
  /** Engine tuning (SQLite PRAGMAs); a no-op on engines without them. */
  pragma(source: string, options?: { simple?: boolean }): unknown;
  /** A migration's SQL for this engine (written once, in SQLite's dialect; see postgres.ts). */
  migrationSql(version: number, sql: string): string;
  /** Whether a table of this name exists (the init probe). */
  hasTable(name: string): boolean;
  close(): void;
}

/** A PostgreSQL connection string (`postgres://…` or `postgresql://…`). */
export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

/** Whether a property already has storage at `location` worth probing. */
export function storageExists(location: string): boolean {
  return isPostgresUrl(location) ? true : existsSync(location);
}

/** A location safe to show in messages: a PostgreSQL URL loses its password. */
export function describeLocation(location: string): string {
  if (!isPostgresUrl(location)) return location;
  try {
    const u = new URL(location);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

class SqliteDatabase implements SqlDatabase {
  readonly engine = 'sqlite' as const;
  constructor(private readonly db: Database.Database) {}
  get open(): boolean {
    return this.db.open;
  }
  prepare(sql: string): Statement {
    return this.db.prepare(sql) as unknown as Statement;
  }
  exec(sql: string): void {
    this.db.exec(sql);
  }
  transaction<F extends (...args: never[]) => unknown>(fn: F, _scope?: TransactionScope): TransactionFn<F> {
    // One writer at a time: every scope is the whole property.
    return this.db.transaction(fn as unknown as (...args: unknown[]) => unknown) as unknown as TransactionFn<F>;
  }
  pragma(source: string, options?: { simple?: boolean }): unknown {
    return this.db.pragma(source, options);
  }
  migrationSql(_version: number, sql: string): string {
    return sql;
  }
  hasTable(name: string): boolean {
    return this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
  }
  close(): void {
    if (this.db.open) this.db.close();
  }
}

export interface OpenOptions {
  /** How long one PostgreSQL statement may take, its wait for the writer locks included, before it fails (ms; default 30,000). */
  statementTimeoutMs?: number;
  /** How long connecting to PostgreSQL may take (ms; default 10,000). */
  connectTimeoutMs?: number;
}

/** Open the authority's storage: a SQLite file path, or a PostgreSQL URL. */
export function openDatabase(location: string, opts: OpenOptions = {}): SqlDatabase {
  // The PostgreSQL driver itself loads only inside the engine's worker thread, on first use.
  if (isPostgresUrl(location)) return openPostgresDatabase(location, opts);
  let db: Database.Database;
  try {
    db = new Database(location);
  } catch (e) {
    throw new AuthorityError('NOT_INITIALIZED', `cannot open ${location}: ${(e as Error).message}`);
  }
  db.pragma('journal_mode = WAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 10000');
  db.pragma('synchronous = NORMAL');
  return new SqliteDatabase(db);
}

let schemaCounter = 0;

/**
 * A fresh, empty PostgreSQL schema on the server at `base` (tests, benchmarks: one property
 * each, side by side in one database): the URL that opens it and a function that drops it.
 */
export function freshPostgresSchema(base: string, prefix = 't'): { url: string; drop: () => void } {
  const schema = `${prefix}_${process.pid}_${++schemaCounter}_${Math.floor(Math.random() * 1e9).toString(36)}`;
  const run = (sql: string): void => {
    const admin = openDatabase(base);
    try {
      admin.exec(sql);
    } finally {
      admin.close();
    }
  };
  run(`CREATE SCHEMA ${schema}`);
  const u = new URL(base);
  u.searchParams.set('options', `-c search_path=${schema}`);
  return { url: u.toString(), drop: () => run(`DROP SCHEMA ${schema} CASCADE`) };
}
