import { describe, expect, it } from 'vitest';
import { encode } from './cbor';
import { decodeMessage, encodeMessage } from './messages';
import { encodeEntry, encodeTable, entryToCbor, tableDigest, type Table } from './table';
import { decodeIfAccepted, updateCases } from './vectors/update-cases';
import { baseTable, snapshotOf } from './vectors/world';

/** The table of a snapshot message as the lock decodes it, or undefined for anything else. */
function decodedSnapshotTable(bytes: Uint8Array): Table | undefined {
  const m = decodeIfAccepted(bytes);
  return m?.type === 'snapshot' && m.update.type === 'snapshot' ? m.update.table : undefined;
}

describe('a decoded snapshot reuses the bytes of its entries for the table digest', () => {
  it('every entry of every conformance snapshot: the bytes it came from are exactly its encoding', () => {
    let entries = 0;
    for (const c of updateCases()) {
      const t = decodedSnapshotTable(c.message);
      if (t === undefined) continue;
      for (const e of t.entries.values()) {
        expect(Buffer.from(encodeEntry(e)).equals(Buffer.from(encode(entryToCbor(e)))), `${c.comment}: entry ${e.credId}`).toBe(true);
        entries++;
      }
    }
    expect(entries).toBeGreaterThan(10);
  });

  it('a many-entry snapshot: same digest as the authority signed, and the table re-encodes to the bytes sent', () => {
    const table = baseTable(400);
    const update = snapshotOf(table, { version: 4 });
    const received = decodedSnapshotTable(encodeMessage({ type: 'snapshot', update }));
    if (received === undefined) throw new Error('snapshot did not decode');
    expect(Buffer.from(tableDigest(received)).equals(Buffer.from(update.head.head.digest))).toBe(true);
    for (const e of received.entries.values()) expect(Buffer.from(encodeEntry(e)).equals(Buffer.from(encode(entryToCbor(e))))).toBe(true);
    expect(Buffer.from(encodeTable(received)).equals(Buffer.from(encodeTable(table)))).toBe(true);
  });

  it('the cached bytes are a copy: changing the received message afterwards changes nothing', () => {
    const update = snapshotOf(baseTable(30), { version: 2 });
    const bytes = encodeMessage({ type: 'snapshot', update });
    const received = decodedSnapshotTable(bytes);
    if (received === undefined) throw new Error('snapshot did not decode');
    bytes.fill(0);
    expect(Buffer.from(tableDigest(received)).equals(Buffer.from(update.head.head.digest))).toBe(true);
  });
});
