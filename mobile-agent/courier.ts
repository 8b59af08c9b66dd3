// The courier cache: updates fetched while online, carried to locks later, and receipts /
// audit exports collected offline, delivered when the authority is reachable again.
// One JSON file per lock in a directory; writes go to a temp file and are renamed into
// place, so a crash never leaves half a cache file.

import { mkdirSync, readFileSync, renameSync, writeFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fromHex, toHex, decodeMessage } from '../protocol/index';
import type { PendingUpdates } from './authority-client';

interface LockCacheFile {
  lockId: string;
  /** Update chains fetched from the authority, keyed by the version they start from. */
  updates: { from: number; to: number; messages: string[]; fetchedAt: string }[];
  /** Receipts and audit exports not yet delivered. */
  outbox: { kind: 'receipt' | 'audit'; message: string; collectedAt: string }[];
}

export class CourierCache {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  private path(lockId: string): string {
    return join(this.dir, `${lockId}.json`);
  }

  private read(lockId: string): LockCacheFile {
    const p = this.path(lockId);
    if (!existsSync(p)) return { lockId, updates: [], outbox: [] };
    return JSON.parse(readFileSync(p, 'utf8')) as LockCacheFile;
  }

  private write(f: LockCacheFile): void {
    const p = this.path(f.lockId);
    writeFileSync(`${p}.tmp`, JSON.stringify(f, null, 2));
    renameSync(`${p}.tmp`, p);
  }

  /** Keep an update chain; a newer chain from the same base replaces the older one. */
  storeUpdates(u: PendingUpdates): void {
    if (u.messages.length === 0) return;
    const f = this.read(u.lockId);
    f.updates = f.updates.filter((x) => x.from !== u.from);
    f.updates.push({ from: u.from, to: u.to, messages: u.messages.map(toHex), fetchedAt: new Date().toISOString() });
    this.write(f);
  }

  /**
   * The chain that takes a lock at `version` furthest. Prefers a chain starting exactly at
   * `version`; a chain whose first message is a snapshot works from any older version.
   */
  updatesFor(lockId: string, version: number): PendingUpdates | undefined {
    const f = this.read(lockId);
    const usable = f.updates
      .filter((x) => x.to > version)
      .filter((x) => {
        if (x.from === version) return true;
        const first = x.messages[0];
        return first !== undefined && decodeMessage(fromHex(first)).type === 'snapshot';
      })
      .sort((a, b) => b.to - a.to);
    const best = usable[0];
    return best === undefined ? undefined : { lockId, from: best.from, to: best.to, messages: best.messages.map(fromHex) };
  }

  /** Newest version this cache can bring the lock to. */
  newestVersion(lockId: string): number {
    return Math.max(0, ...this.read(lockId).updates.map((u) => u.to));
  }

  queue(lockId: string, kind: 'receipt' | 'audit', message: Uint8Array): void {
    const f = this.read(lockId);
    f.outbox.push({ kind, message: toHex(message), collectedAt: new Date().toISOString() });
    this.write(f);
  }

  outbox(lockId: string): { kind: 'receipt' | 'audit'; message: Uint8Array }[] {
    return this.read(lockId).outbox.map((o) => ({ kind: o.kind, message: fromHex(o.message) }));
  }

  /** Drop the first `n` outbox items after they were delivered. */
  delivered(lockId: string, n: number): void {
    const f = this.read(lockId);
    f.outbox.splice(0, n);
    this.write(f);
  }

  locks(): string[] {
    return readdirSync(this.dir)
      .filter((n) => n.endsWith('.json'))
      .map((n) => n.slice(0, -5));
  }
}
