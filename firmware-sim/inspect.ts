// A second, independent reader of the flash format (FLASH.md). It shares no code with the
// writer (storage.ts) beyond the protocol's decoders: its own CRC, its own offsets, its own
// selection rule. If the two ever disagree about an image, one of them or FLASH.md is wrong.

import {
  type AuditRecord,
  type CborValue,
  AUDIT_GENESIS,
  applyOps,
  auditRecordFromBytes,
  chainAudit,
  decode,
  decodeTableBytes,
  hash,
  keyIdOf,
  keyPairFromSeed,
  opFromCbor,
  signedHeadFromCbor,
  tableDigest,
  toHex,
  verify,
  type Entry,
} from '../protocol';

function crc32Bitwise(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of data) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}

const u16 = (b: Uint8Array, o: number) => (b[o] as number) | ((b[o + 1] as number) << 8);
const u32 = (b: Uint8Array, o: number) => ((b[o] as number) | ((b[o + 1] as number) << 8) | ((b[o + 2] as number) << 16) | ((b[o + 3] as number) << 24)) >>> 0;
const ascii = (b: Uint8Array, o: number) => String.fromCharCode(b[o] as number, b[o + 1] as number, b[o + 2] as number, b[o + 3] as number);
const up = (n: number, a: number) => Math.ceil(n / a) * a;
const allFF = (b: Uint8Array) => b.every((x) => x === 0xff);

export interface FlashReport {
  ok: boolean;
  problems: string[];
  geometry: { blockSize: number; blockCount: number; progSize: number };
  layout: { metaSlotBlocks: number; tableRegionBlocks: number; auditBlocks: number; metaStart: number; tableStart: number; auditStart: number };
  commits: { slot: number; offset: number; seq: number; valid: boolean; note?: string }[];
  inForce?: {
    seq: number;
    lockId: string;
    timeZone: string;
    version: number;
    versionFloor: number;
    newestIssuedAt: number;
    headDigest: string | null;
    headSignatureValid: boolean | null;
    tableRegion: number;
    tableBytes: number;
    /** Journal records replayed on top of the base table, and their bytes. */
    journalRecords: number;
    journalBytes: number;
    entries: number;
    keyPolicies: number;
    policy: Record<string, number>;
    rootKeyIds: string[];
    certSerials: number[];
    certFloor: number;
    devicePublicKey: string;
    keypad: { wrongCount: number; lockoutActive: boolean; lockoutLevel: number };
    singleUseLedger: number;
    /** Audit records through this seq are anchored at the authority (commit key 16). */
    auditAnchoredSeq: number;
    entryList: { credId: number; kind: string; holder: string; partnerId?: number; keyId?: number; parent?: number; flags: number }[];
  };
  audit: { blocks: number; records: number; deadSlots: number; firstSeq: number; lastSeq: number; chainValid: boolean; head: string; recent: AuditRecord[] };
  wear?: never;
}

/** Decode and cross-check a whole flash image. Never throws on bad content; reports it. */
export function inspectFlash(image: Uint8Array, opts: { recentAudit?: number } = {}): FlashReport {
  const problems: string[] = [];
  const sb = image.subarray(0, 64);
  const report: FlashReport = {
    ok: false,
    problems,
    geometry: { blockSize: 0, blockCount: 0, progSize: 0 },
    layout: { metaSlotBlocks: 0, tableRegionBlocks: 0, auditBlocks: 0, metaStart: 0, tableStart: 0, auditStart: 0 },
    commits: [],
    audit: { blocks: 0, records: 0, deadSlots: 0, firstSeq: 0, lastSeq: 0, chainValid: false, head: '', recent: [] },
  };
  if (image.length < 64 || ascii(sb, 0) !== 'LSFB' || u32(sb, 60) !== crc32Bitwise(sb.subarray(0, 60))) {
    problems.push('superblock: bad magic or CRC');
    return report;
  }
  const bs = u32(sb, 8);
  const prog = u16(sb, 6);
  report.geometry = { blockSize: bs, blockCount: u32(sb, 12), progSize: prog };
  report.layout = { metaSlotBlocks: u16(sb, 16), tableRegionBlocks: u16(sb, 18), auditBlocks: u16(sb, 20), metaStart: u32(sb, 24), tableStart: u32(sb, 28), auditStart: u32(sb, 32) };
  const L = report.layout;
  if (bs * report.geometry.blockCount !== image.length) problems.push(`image is ${image.length} bytes, superblock says ${bs * report.geometry.blockCount}`);

  // --- commit records -------------------------------------------------------
  const hdr = up(16, prog);
  const trl = up(8, prog);
  type Cand = { seq: number; payload: Uint8Array; slot: number; offset: number };
  const cands: Cand[] = [];
  for (let slot = 0; slot < 2; slot++) {
    const base = (L.metaStart + slot * L.metaSlotBlocks) * bs;
    const end = base + L.metaSlotBlocks * bs;
    let off = base;
    while (off + hdr <= end) {
      const h = image.subarray(off, off + hdr);
      if (ascii(h, 0) !== 'LSMR') {
        if (!allFF(image.subarray(off, end))) report.commits.push({ slot, offset: off - base, seq: -1, valid: false, note: 'torn or garbage tail' });
        break;
      }
      const seq = u32(h, 4);
      const len = u32(h, 8);
      const bodyEnd = off + hdr + up(len, prog);
      if (bodyEnd + trl > end) {
        report.commits.push({ slot, offset: off - base, seq, valid: false, note: 'length runs past slot' });
        break;
      }
      const crcOk = u32(image, bodyEnd) === crc32Bitwise(image.subarray(off, off + hdr + len)) && ascii(image, bodyEnd + 4) === 'LSOK';
      report.commits.push({ slot, offset: off - base, seq, valid: crcOk, ...(crcOk ? {} : { note: 'trailer missing or CRC mismatch (uncommitted)' }) });
      if (!crcOk) break;
      cands.push({ seq, payload: image.subarray(off + hdr, off + hdr + len), slot, offset: off - base });
      off = bodyEnd + trl;
    }
  }
  cands.sort((a, b) => b.seq - a.seq);
  let journalSeq: number | undefined;
  for (const c of cands) {
    try {
      const m = decode(c.payload, { maxBytes: 1 << 20, maxItems: 10_000 }) as Map<number, CborValue>;
      const ref = m.get(6) as [number, number, Uint8Array, number, number];
      const regionBase = (L.tableStart + ref[0] * L.tableRegionBlocks) * bs;
      const tableBytes = image.subarray(regionBase, regionBase + ref[1]);
      if (toHex(hash(tableBytes)) !== toHex(ref[2])) {
        problems.push(`commit ${c.seq}: table region ${ref[0]} does not match its SHA-256 (skipped)`);
        continue;
      }
      const headRaw = m.get(7);
      const sh = headRaw === undefined ? null : signedHeadFromCbor(headRaw);
      // Journal (FLASH.md §4.1): records after the base, each [magic LSJR, seq, len, ver],
      // CBOR [[ops], [headBytes, sig]], then CRC-32 + LSOK; every one must reproduce its head.
      let table = decodeTableBytes(tableBytes);
      const jBytes = ref[3] ?? 0;
      const jCount = ref[4] ?? 0;
      let jOff = regionBase + up(ref[1], prog);
      const jEnd = jOff + jBytes;
      if (jEnd > regionBase + L.tableRegionBlocks * bs) throw new Error(`journal of ${jBytes} bytes runs past table region ${ref[0]}`);
      let lastHeadBytes: string | null = null;
      for (let i = 1; i <= jCount; i++) {
        const jh = image.subarray(jOff, jOff + hdr);
        const len = u32(jh, 8);
        const recEnd = jOff + hdr + up(len, prog) + trl;
        if (jh.length < hdr || ascii(jh, 0) !== 'LSJR' || u32(jh, 4) !== i || recEnd > jEnd) throw new Error(`journal record ${i}: bad header`);
        const tOff = jOff + hdr + up(len, prog);
        if (u32(image, tOff) !== crc32Bitwise(image.subarray(jOff, jOff + hdr + len)) || ascii(image, tOff + 4) !== 'LSOK') throw new Error(`journal record ${i}: CRC`);
        const payload = decode(image.subarray(jOff + hdr, jOff + hdr + len), { maxBytes: 1 << 24, maxItems: 4_000_000 }) as [CborValue[], CborValue];
        const jsh = signedHeadFromCbor(payload[1]);
        table = applyOps(table, payload[0].map((o) => opFromCbor(o)));
        if (toHex(tableDigest(table)) !== toHex(jsh.head.digest)) throw new Error(`journal record ${i}: replay does not reproduce head v${jsh.head.version}`);
        lastHeadBytes = toHex(jsh.headBytes);
        jOff = recEnd;
      }
      if (jOff !== jEnd) throw new Error(`journal: ${jCount} records end at ${jOff - regionBase}, commit says ${jEnd - regionBase}`);
      if (lastHeadBytes !== null && (sh === null || lastHeadBytes !== toHex(sh.headBytes))) throw new Error('journal ends at another head than the commit record');
      const roots = (m.get(4) as Uint8Array[]) ?? [];
      const certs = ((m.get(10) as [Uint8Array, Uint8Array][] | undefined) ?? []).map(([cb]) => decode(cb) as Map<number, CborValue>);
      let sigValid: boolean | null = null;
      if (sh !== null) {
        const keys = [...roots, ...certs.map((c2) => c2.get(2) as Uint8Array)];
        const key = keys.find((k) => toHex(keyIdOf(k)) === toHex(sh.head.keyId));
        sigValid = key !== undefined && verify('head', sh.headBytes, sh.signature, key);
        if (!sigValid) problems.push(`commit ${c.seq}: head signature does not verify against provisioned keys`);
      }
      const pol = table.policy;
      const [wrongCount, lockoutActive, level] = m.get(12) as [number, boolean, number?];
      const lockoutLevel = level ?? (lockoutActive ? 1 : 0);
      const j = m.get(14) as [number, Uint8Array] | undefined;
      journalSeq = j?.[0];
      report.inForce = {
        seq: c.seq,
        lockId: m.get(1) as string,
        timeZone: m.get(5) as string,
        version: sh?.head.version ?? 0,
        versionFloor: m.get(8) as number,
        newestIssuedAt: m.get(9) as number,
        headDigest: sh === null ? null : toHex(sh.head.digest),
        headSignatureValid: sigValid,
        tableRegion: ref[0],
        tableBytes: ref[1],
        journalRecords: jCount,
        journalBytes: jBytes,
        entries: table.entries.size,
        keyPolicies: table.keyPolicies.size,
        policy: { ...pol },
        rootKeyIds: roots.map((r) => toHex(keyIdOf(r))),
        certSerials: certs.map((c2) => c2.get(1) as number),
        certFloor: m.get(11) as number,
        devicePublicKey: toHex(keyPairFromSeed(m.get(3) as Uint8Array).publicKey),
        keypad: { wrongCount, lockoutActive, lockoutLevel },
        singleUseLedger: ((m.get(13) as unknown[]) ?? []).length,
        auditAnchoredSeq: (m.get(16) as number | undefined) ?? 0,
        entryList: [...table.entries.values()].map((e: Entry) => ({
          credId: e.credId,
          kind: e.kind,
          holder: e.holder,
          ...(e.partnerId !== undefined ? { partnerId: e.partnerId } : {}),
          ...(e.keyId !== undefined ? { keyId: e.keyId } : {}),
          ...(e.parent !== undefined ? { parent: e.parent } : {}),
          flags: e.flags,
        })),
      };
      if (sh !== null && report.inForce.versionFloor !== sh.head.version) problems.push(`commit ${c.seq}: floor ${report.inForce.versionFloor} != head version ${sh.head.version}`);
      break;
    } catch (e) {
      problems.push(`commit ${c.seq}: ${(e as Error).message}`);
    }
  }
  if (report.inForce === undefined) problems.push('no commit record in force');

  // --- audit ring -------------------------------------------------------------
  const ah = up(52, prog);
  const body = up(48, prog);
  const slot = body + trl;
  const per = Math.floor((bs - ah) / slot);
  const blocks: { epoch: number; firstSeq: number; prev: Uint8Array; recs: Uint8Array[] }[] = [];
  for (let i = 0; i < L.auditBlocks; i++) {
    const base = (L.auditStart + i) * bs;
    const h = image.subarray(base, base + ah);
    if (ascii(h, 0) !== 'LSAB' || u32(h, 48) !== crc32Bitwise(h.subarray(0, 48))) continue;
    const b = { epoch: u32(h, 4), firstSeq: u32(h, 8) + u32(h, 12) * 2 ** 32, prev: h.slice(16, 48), recs: [] as Uint8Array[] };
    for (let s = 0; s < per; s++) {
      const sa = base + ah + s * slot;
      const raw = image.subarray(sa, sa + slot);
      if (allFF(raw)) break;
      const n = raw[0] as number;
      if (n < 1 || n > 47 || u32(raw, body) !== crc32Bitwise(raw.subarray(0, body)) || ascii(raw, body + 4) !== 'LSOK') {
        report.audit.deadSlots++;
        continue;
      }
      b.recs.push(raw.slice(1, 1 + n));
    }
    blocks.push(b);
  }
  blocks.sort((a, b) => a.epoch - b.epoch);
  let h: Uint8Array = AUDIT_GENESIS;
  let lastSeq = 0;
  let chainValid = true;
  const all: AuditRecord[] = [];
  blocks.forEach((b, idx) => {
    if (idx === 0) {
      h = b.prev;
      lastSeq = b.firstSeq - 1;
    } else if (toHex(b.prev) !== toHex(h) || b.firstSeq !== lastSeq + 1) {
      chainValid = false;
      problems.push(`audit block epoch ${b.epoch}: does not continue the chain`);
    }
    for (const r of b.recs) {
      const rec = auditRecordFromBytes(r);
      if (rec.seq !== lastSeq + 1) {
        chainValid = false;
        problems.push(`audit seq ${rec.seq} after ${lastSeq}`);
      }
      lastSeq = rec.seq;
      h = chainAudit(h, r);
      all.push(rec);
    }
  });
  // A commit's journaled audit record may be pending (cut between commit and append): the
  // writer rolls it forward at the next mount.
  if (journalSeq !== undefined && journalSeq > lastSeq) problems.push(`audit record ${journalSeq} journaled in the commit in force; rolled forward at next mount`);
  report.audit = {
    blocks: blocks.length,
    records: all.length,
    deadSlots: report.audit.deadSlots,
    firstSeq: all[0]?.seq ?? 0,
    lastSeq,
    chainValid,
    head: toHex(h),
    recent: all.slice(-(opts.recentAudit ?? 20)),
  };
  report.ok = report.inForce !== undefined && chainValid && report.inForce.headSignatureValid !== false;
  return report;
}
