// The courier cache: updates fetched while online, carried to locks later, and receipts /
// audit exports collected offline, delivered when the authority is reachable again.
// One JSON file per lock in a directory; writes go to a temp file and are renamed into
// place, so a crash never leaves half a cache file. A fetched chain's message bytes sit
// beside it in one binary file per chain (named by its content, written before the JSON
// that names it): a 10,000-credential snapshot is 440 kB, and as hex inside the JSON every
// outbox step of every sync read and rewrote 880 kB of it.
//
// The outbox holds what is still to be delivered; an item the authority refused for good
// (a 4xx about the item itself, e.g. 409 AUDIT_CHAIN_MISMATCH) moves to the dead letters
// with the refusal, so it never blocks the queue again and the user can list and inspect
// it (`locksync agent outbox …`).

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync, readdirSync, existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fromHex, isSnapshotMessage, toHex } from '../protocol/index';
import type { PendingUpdates } from './authority-client';

export type OutboxKind = 'receipt' | 'audit';

/** A receipt or audit export waiting for delivery. */
export interface OutboxItem {
  /** Stable id: a digest of kind and bytes (the same bytes queued twice are one item). */
  id: string;
  lockId: string;
  kind: OutboxKind;
  message: Uint8Array;
  collectedAt: string;
  /** Delivery attempts that failed transiently. */
  attempts: number;
  lastError?: string;
}

/** What the authority said when it refused an item for good. */
export interface Refusal {
  status: number;
  code?: string;
  reason: string;
}

/** An item the authority refused permanently, kept for the user to inspect. */
export interface DeadLetter extends OutboxItem {
  refusedAt: string;
  refusal: Refusal;
}

/** An update chain from the cache, with when it was fetched from the authority. */
export interface CachedUpdates extends PendingUpdates {
  fetchedAt: string;
}

interface StoredItem {
  id?: string;
  kind: OutboxKind;
  message: string;
  collectedAt: string;
  attempts?: number;
  lastError?: string;
}
interface StoredDeadLetter extends StoredItem {
  refusedAt: string;
  refusal: Refusal;
}

interface LockCacheFile {
  lockId: string;
  /** Update chains fetched from the authority, keyed by the version they start from. */
  updates: StoredChain[];
  /** Receipts and audit exports not yet delivered. */
  outbox: StoredItem[];
  /** Items the authority refused permanently. */
  deadLetters?: StoredDeadLetter[];
  /** What the lock's next hello should say (its version and certificate serial after the
   *  last sync), so a new process can fetch its updates while connecting (SPEC §14.1). */
  expectedHello?: { version: number; certSerial?: number };
}

/**
 * One fetched chain. Its messages are in `file` (beside the JSON, back to back, sizes in
 * `lengths`); caches written before that keep them as hex in `messages`, and still read.
 */
interface StoredChain {
  from: number;
  to: number;
  fetchedAt: string;
  file?: string;
  lengths?: number[];
  /** The first message is a snapshot (it brings a lock at any older version forward). */
  snapshotFirst?: boolean;
  messages?: string[];
}

/** The cache directory holds a file that is not a cache file (hand-edited, truncated). */
export class CourierCacheError extends Error {
  override readonly name = 'CourierCacheError';
}

export function outboxItemId(kind: OutboxKind, messageHex: string): string {
  return createHash('sha256').update(`${kind}:${messageHex}`).digest('hex').slice(0, 12);
}

export class CourierCache {
  /** `create: false` for readers (`agent outbox list/show`): looking never makes a directory. */
  constructor(
    readonly dir: string,
    opts: { create?: boolean } = {},
  ) {
    if (opts.create === false) return;
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new CourierCacheError(`courier cache ${dir} cannot be created (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): it must be a writable directory`);
    }
  }

  private path(lockId: string): string {
    return join(this.dir, `${lockId}.json`);
  }

  private read(lockId: string): LockCacheFile {
    const p = this.path(lockId);
    if (!existsSync(p)) return { lockId, updates: [], outbox: [] };
    let f: LockCacheFile;
    try {
      f = JSON.parse(readFileSync(p, 'utf8')) as LockCacheFile;
    } catch (e) {
      throw new CourierCacheError(`courier cache file ${p} is not JSON (${(e as Error).message})`);
    }
    if (typeof f !== 'object' || f === null || !Array.isArray(f.updates) || !Array.isArray(f.outbox))
      throw new CourierCacheError(`courier cache file ${p} is not a courier cache file (no updates/outbox lists)`);
    return f;
  }

  /** A file of the cache, written whole (temp file, then rename): a crash leaves the old one or the new one. */
  private writeWhole(path: string, data: string | Uint8Array): void {
    try {
      mkdirSync(this.dir, { recursive: true });
      writeFileSync(`${path}.tmp`, data);
      renameSync(`${path}.tmp`, path);
    } catch (e) {
      throw new CourierCacheError(`courier cache ${this.dir} cannot be written (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): it must be a writable directory`);
    }
  }

  private removeFile(name: string): void {
    try {
      unlinkSync(join(this.dir, name));
    } catch {
      // already gone: nothing names it any more either way
    }
  }

  private write(f: LockCacheFile): void {
    this.writeWhole(this.path(f.lockId), JSON.stringify(f, null, 2));
  }

  /** The version and certificate serial the lock's next hello is expected to say, if known. */
  expectedHello(lockId: string): { version: number; certSerial: number | undefined } | undefined {
    const e = this.read(lockId).expectedHello;
    if (e === undefined || !Number.isSafeInteger(e.version) || e.version < 0) return undefined;
    return { version: e.version, certSerial: Number.isSafeInteger(e.certSerial) ? e.certSerial : undefined };
  }

  /** Remember what the lock's next hello should say; writes only when it changed. */
  rememberExpectedHello(lockId: string, version: number, certSerial: number | undefined): void {
    const f = this.read(lockId);
    if (f.expectedHello?.version === version && f.expectedHello.certSerial === certSerial) return;
    f.expectedHello = certSerial === undefined ? { version } : { version, certSerial };
    this.write(f);
  }

  /** Keep an update chain; a newer chain from the same base replaces the older one. */
  storeUpdates(u: PendingUpdates, fetchedAt: Date = new Date()): void {
    if (u.messages.length === 0) return;
    const f = this.read(u.lockId);
    const replaced = f.updates.filter((x) => x.from === u.from);
    f.updates = f.updates.filter((x) => x.from !== u.from);
    const digest = createHash('sha256');
    for (const m of u.messages) digest.update(m);
    const file = `${u.lockId}.v${u.from}-${u.to}.${digest.digest('hex').slice(0, 16)}.bin`;
    // The bytes first, then the JSON that names them: a crash in between leaves an unnamed
    // file, never a name without its bytes.
    this.writeWhole(join(this.dir, file), Buffer.concat(u.messages));
    const first = u.messages[0] as Uint8Array;
    f.updates.push({ from: u.from, to: u.to, fetchedAt: fetchedAt.toISOString(), file, lengths: u.messages.map((m) => m.length), snapshotFirst: isSnapshotMessage(first) });
    this.write(f);
    for (const r of replaced) if (r.file !== undefined && r.file !== file) this.removeFile(r.file);
  }

  /** A chain's messages, from its file (or the hex of an older cache). */
  private messagesOf(lockId: string, c: StoredChain): Uint8Array[] {
    if (c.file === undefined || c.lengths === undefined) return (c.messages ?? []).map(fromHex);
    const p = join(this.dir, c.file);
    let bytes: Buffer;
    try {
      bytes = readFileSync(p);
    } catch (e) {
      throw new CourierCacheError(`courier cache for ${lockId}: ${p} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): delete ${this.path(lockId)} to start the lock's cache afresh`);
    }
    const total = c.lengths.reduce((n, l) => n + l, 0);
    if (bytes.length !== total) throw new CourierCacheError(`courier cache for ${lockId}: ${p} holds ${bytes.length} bytes, its chain names ${total}: delete ${this.path(lockId)} to start the lock's cache afresh`);
    const out: Uint8Array[] = [];
    let o = 0;
    for (const l of c.lengths) {
      out.push(new Uint8Array(bytes.subarray(o, o + l)));
      o += l;
    }
    return out;
  }

  private snapshotFirst(lockId: string, c: StoredChain): boolean {
    if (c.snapshotFirst !== undefined) return c.snapshotFirst;
    const first = this.messagesOf(lockId, c)[0];
    return first !== undefined && isSnapshotMessage(first);
  }

  /**
   * The chain that takes a lock at `version` furthest. Prefers a chain starting exactly at
   * `version`; a chain whose first message is a snapshot works from any older version.
   */
  updatesFor(lockId: string, version: number): CachedUpdates | undefined {
    const f = this.read(lockId);
    const usable = f.updates
      .filter((x) => x.to > version)
      .filter((x) => x.from === version || this.snapshotFirst(lockId, x))
      .sort((a, b) => b.to - a.to);
    const best = usable[0];
    return best === undefined ? undefined : { lockId, from: best.from, to: best.to, messages: this.messagesOf(lockId, best), fetchedAt: best.fetchedAt };
  }

  /** Newest version this cache can bring the lock to. */
  newestVersion(lockId: string): number {
    return Math.max(0, ...this.read(lockId).updates.map((u) => u.to));
  }

  /** The newest chain this cache holds for a lock (what an offline sync could carry at best). */
  newestChain(lockId: string): { to: number; fetchedAt: string } | undefined {
    const best = [...this.read(lockId).updates].sort((a, b) => b.to - a.to)[0];
    return best === undefined ? undefined : { to: best.to, fetchedAt: best.fetchedAt };
  }

  /** Queue an item for delivery; returns its id. Queuing the same bytes again is a no-op. */
  queue(lockId: string, kind: OutboxKind, message: Uint8Array, collectedAt: Date = new Date()): string {
    const f = this.read(lockId);
    const hex = toHex(message);
    const id = outboxItemId(kind, hex);
    if (!f.outbox.some((o) => idOf(o) === id)) {
      f.outbox.push({ id, kind, message: hex, collectedAt: collectedAt.toISOString(), attempts: 0 });
      this.write(f);
    }
    return id;
  }

  outbox(lockId: string): OutboxItem[] {
    return this.read(lockId).outbox.map((o) => itemOf(lockId, o));
  }

  /** Remove a delivered item. */
  remove(lockId: string, id: string): void {
    const f = this.read(lockId);
    const before = f.outbox.length;
    f.outbox = f.outbox.filter((o) => idOf(o) !== id);
    if (f.outbox.length !== before) this.write(f);
  }

  /** A delivery that failed transiently: the item stays queued, with the attempt noted. */
  noteAttempt(lockId: string, id: string, error: string): void {
    const f = this.read(lockId);
    const o = f.outbox.find((x) => idOf(x) === id);
    if (o === undefined) return;
    o.id = id;
    o.attempts = (o.attempts ?? 0) + 1;
    o.lastError = error;
    this.write(f);
  }

  /** Move an item out of the queue for good, with the authority's refusal. */
  deadLetter(lockId: string, id: string, refusal: Refusal, refusedAt: Date = new Date()): DeadLetter | undefined {
    const f = this.read(lockId);
    const o = f.outbox.find((x) => idOf(x) === id);
    if (o === undefined) return undefined;
    f.outbox = f.outbox.filter((x) => x !== o);
    const dead: StoredDeadLetter = { ...o, id, attempts: (o.attempts ?? 0) + 1, refusedAt: refusedAt.toISOString(), refusal };
    f.deadLetters = [...(f.deadLetters ?? []).filter((d) => idOf(d) !== id), dead];
    this.write(f);
    return deadOf(lockId, dead);
  }

  deadLetters(lockId?: string): DeadLetter[] {
    const locks = lockId === undefined ? this.locks() : [lockId];
    return locks.flatMap((l) => (this.read(l).deadLetters ?? []).map((d) => deadOf(l, d)));
  }

  /** Every queued item, of one lock or all. */
  queued(lockId?: string): OutboxItem[] {
    const locks = lockId === undefined ? this.locks() : [lockId];
    return locks.flatMap((l) => this.outbox(l));
  }

  /** An outbox item or dead letter by id (a unique prefix of at least 4 characters works). */
  find(idOrPrefix: string): { state: 'queued'; item: OutboxItem } | { state: 'dead'; item: DeadLetter } | { state: 'ambiguous'; ids: string[] } | undefined {
    const all: ({ state: 'queued'; item: OutboxItem } | { state: 'dead'; item: DeadLetter })[] = [
      ...this.queued().map((item) => ({ state: 'queued' as const, item })),
      ...this.deadLetters().map((item) => ({ state: 'dead' as const, item })),
    ];
    const exact = all.find((x) => x.item.id === idOrPrefix);
    if (exact) return exact;
    if (idOrPrefix.length < 4) return undefined;
    const hits = all.filter((x) => x.item.id.startsWith(idOrPrefix));
    if (hits.length > 1) return { state: 'ambiguous', ids: hits.map((h) => h.item.id) };
    return hits[0];
  }

  /** Forget a dead letter (the user has seen it). Returns whether it existed. */
  dropDeadLetter(lockId: string, id: string): boolean {
    const f = this.read(lockId);
    const before = f.deadLetters?.length ?? 0;
    f.deadLetters = (f.deadLetters ?? []).filter((d) => idOf(d) !== id);
    if (f.deadLetters.length === before) return false;
    this.write(f);
    return true;
  }

  /** Put a dead letter back in the queue (after the cause was fixed at the authority). */
  requeue(lockId: string, id: string): boolean {
    const f = this.read(lockId);
    const d = (f.deadLetters ?? []).find((x) => idOf(x) === id);
    if (d === undefined) return false;
    f.deadLetters = (f.deadLetters ?? []).filter((x) => x !== d);
    if (!f.outbox.some((o) => idOf(o) === id)) f.outbox.push({ id, kind: d.kind, message: d.message, collectedAt: d.collectedAt, attempts: 0 });
    this.write(f);
    return true;
  }

  locks(): string[] {
    if (!existsSync(this.dir)) return [];
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch (e) {
      throw new CourierCacheError(`courier cache ${this.dir} cannot be listed (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): it must be a directory`);
    }
    return names
      .filter((n) => n.endsWith('.json'))
      .map((n) => n.slice(0, -5))
      .sort();
  }
}

function idOf(o: StoredItem): string {
  return o.id ?? outboxItemId(o.kind, o.message);
}

function itemOf(lockId: string, o: StoredItem): OutboxItem {
  const item: OutboxItem = { id: idOf(o), lockId, kind: o.kind, message: fromHex(o.message), collectedAt: o.collectedAt, attempts: o.attempts ?? 0 };
  if (o.lastError !== undefined) item.lastError = o.lastError;
  return item;
}

function deadOf(lockId: string, d: StoredDeadLetter): DeadLetter {
  return { ...itemOf(lockId, d), refusedAt: d.refusedAt, refusal: d.refusal };
}
