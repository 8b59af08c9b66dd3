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
