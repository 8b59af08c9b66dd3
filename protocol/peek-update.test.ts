import { describe, expect, it } from 'vitest';
import { encodeMessage, peekUpdateVersion } from './messages';
import { decodeIfAccepted, updateCases } from './vectors/update-cases';
import { baseTable, snapshotOf } from './vectors/world';

/** The head version a full decode gives, or undefined when the lock would refuse the bytes as malformed. */
function decodedVersion(bytes: Uint8Array): number | undefined {
  const m = decodeIfAccepted(bytes);
  return m?.type === 'delta' || m?.type === 'snapshot' ? m.update.head.head.version : undefined;
}

describe('peekUpdateVersion: the target of an update without decoding its table', () => {
  it('agrees with the full decode on every update of the conformance cases (deltas, snapshots, with and without certificates)', () => {
    let compared = 0;
    for (const c of updateCases()) {
      const full = decodedVersion(c.message);
      if (full === undefined) continue;
      expect(peekUpdateVersion(c.message), c.comment).toBe(full);
      compared++;
    }
    expect(compared).toBeGreaterThan(10);
  });

  it('reads a many-entry snapshot', () => {
    const bytes = encodeMessage({ type: 'snapshot', update: snapshotOf(baseTable(400), { version: 7 }) });
    expect(peekUpdateVersion(bytes)).toBe(7);
  });

  it('gives undefined for other messages and for bytes cut before the head', () => {
    expect(peekUpdateVersion(encodeMessage({ type: 'receiptRequest' }))).toBeUndefined();
    expect(peekUpdateVersion(encodeMessage({ type: 'auditRequest', fromSeq: 3 }))).toBeUndefined();
    expect(peekUpdateVersion(new Uint8Array())).toBeUndefined();
    expect(peekUpdateVersion(new Uint8Array([0xff, 0x00]))).toBeUndefined();
    const bytes = encodeMessage({ type: 'snapshot', update: snapshotOf(baseTable(20), { version: 3 }) });
    // The head follows the table: any cut inside the table or the head leaves nothing to read.
    for (let cut = 0; cut < bytes.length - 200; cut += 7) expect(peekUpdateVersion(bytes.subarray(0, cut)), `cut at ${cut}`).toBeUndefined();
  });
});

describe('encodedTableEntryCount: a stored table\'s entry count from its first bytes', () => {
  it('reads every length form of the entries array (immediate, 1, 2 and 4 bytes)', async () => {
    const { encodeTable, encodedTableEntryCount, emptyTable } = await import('./table');
    const { residentPhone } = await import('./vectors/world');
    for (const n of [0, 1, 23, 24, 255, 256, 65_536]) {
      // Built directly: 65,536 entries is past what a delta may carry, not what a count may say.
      const t = { ...emptyTable(), entries: new Map(Array.from({ length: n }, (_, i) => [i + 1, residentPhone(i + 1)] as const)) };
      expect(encodedTableEntryCount(encodeTable(t)), `n=${n}`).toBe(n);
    }
  });

  it('refuses bytes that do not start as a table does, and a cut length', async () => {
    const { encodedTableEntryCount } = await import('./table');
    const { encode } = await import('./cbor');
    const { ProtocolError } = await import('./errors');
    for (const bad of [new Uint8Array(0), encode(new Map([[2, []]])), encode(new Map([[1, 5]])), Uint8Array.of(0xa3, 0x01, 0x99, 0x01), Uint8Array.of(0xa3, 0x01, 0x9b, 0, 0, 0, 0, 0, 0, 0, 1)]) {
      expect(() => encodedTableEntryCount(bad)).toThrow(ProtocolError);
    }
  });
});

describe('encodeSnapshotOfEncodedTable: a snapshot from a table held as its encoding', () => {
  it('gives encodeMessage\'s bytes, with and without certificates', async () => {
    const { encodeSnapshotOfEncodedTable } = await import('./messages');
    const { encodeTable } = await import('./table');
    for (const certs of [undefined, []] as const) {
      const u = certs === undefined ? snapshotOf(baseTable(400), { version: 7 }) : snapshotOf(baseTable(400), { version: 7 }, []);
      expect(Buffer.from(encodeSnapshotOfEncodedTable(encodeTable(u.table), u.head, u.certs)).equals(Buffer.from(encodeMessage({ type: 'snapshot', update: u })))).toBe(true);
    }
  });

  it('refuses an encoding that does not hash to the digest the head signs (DIGEST_MISMATCH)', async () => {
    const { encodeSnapshotOfEncodedTable } = await import('./messages');
    const { encodeTable } = await import('./table');
    const u = snapshotOf(baseTable(10), { version: 3 });
    const bytes = encodeTable(u.table);
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 1;
    let reason: string | undefined;
    try {
      encodeSnapshotOfEncodedTable(bytes, u.head, u.certs);
    } catch (e) {
      reason = (e as { reason?: string }).reason;
    }
    expect(reason).toBe('DIGEST_MISMATCH');
  });
});

describe('peekUpdate: the target and the certificate serials without decoding the table', () => {
  it('agrees with the full decode on every update of the conformance cases', async () => {
    const { peekUpdate } = await import('./messages');
    let withCerts = 0;
    for (const c of updateCases()) {
      const m = decodeIfAccepted(c.message);
      if (m?.type !== 'delta' && m?.type !== 'snapshot') continue;
      const peeked = peekUpdate(c.message);
      expect(peeked, c.comment).toEqual({ version: m.update.head.head.version, certSerials: m.update.certs.map((x) => x.cert.serial) });
      if (m.update.certs.length > 0) withCerts++;
    }
    expect(withCerts).toBeGreaterThan(0);
  });

  it('gives undefined for bytes cut after the head, where peekUpdateVersion still reads the version', async () => {
    const { peekUpdate } = await import('./messages');
    const bytes = encodeMessage({ type: 'snapshot', update: snapshotOf(baseTable(40), { version: 9 }) });
    const cut = bytes.subarray(0, bytes.length - 3);
    expect(peekUpdate(bytes)?.certSerials.length).toBe(1);
    expect(peekUpdate(cut)).toBeUndefined();
    expect(peekUpdateVersion(cut)).toBe(9);
  });
});
