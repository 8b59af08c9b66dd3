// Power-safe storage for the lock on emulated NOR flash. Layout: firmware-sim/FLASH.md.
//
// Three regions besides the superblock:
// - two METADATA SLOTS holding an append-only log of commit records. Each record is the
//   lock's whole durable state (secrets, signed head, floors, trust, keypad, single-use
//   ledger) and names the table region it commits. A record counts only once its trailer
//   (CRC-32 + marker) is written, after a sync barrier: a cut anywhere before that leaves
//   the previous record in force. When a slot is full the next record is written to the
//   other slot after erasing it (compaction), which never touches the record in force.
// - two TABLE REGIONS (A/B). A new table goes to the region the record in force does NOT
//   name; the record that names it is written only after the table bytes are synced, and
//   carries their SHA-256, so mount can also reject a record whose table did not land.
// - an AUDIT RING of blocks, each starting with a header holding the chain hash before
//   its first record, so the chain verifies even after the oldest block is recycled.
//   Records are fixed-size slots: body, sync, trailer (CRC-32) — a slot torn by a power cut
//   is dead and skipped, never reused.
// Ring policy (FLASH.md §5): a block holding records the authority has not anchored
// (auditAnchoredSeq) is recycled only when nothing else is left, and then a recordsLost
// record says how many went; refusals may not use the last block of room (they are counted
// in one refusalsNotLogged record instead), and consecutive identical refusals become one
// record with a count — so a flood of refusals can never push out a grant.
// An update's audit record is pre-assigned its sequence number and carried in the commit
// record (journal); mount rolls it forward if the cut fell between commit and append, so
// the audit log and the table never disagree.

import {
  type AuditRecord,
  type SignedHead,
  type SignedKeyCert,
  type TableState,
  type CborValue,
  AUDIT_GENESIS,
  ProtocolError,
  auditRecordFromBytes,
  chainAudit,
  cmap,
  decode,
  decodeTableBytes,
  encode,
  encodeAuditRecord,
  encodeTable,
  emptyTable,
  hash,
  keyCertFromCbor,
  keyCertToCbor,
  signedHeadFromCbor,
  signedHeadToCbor,
  bytesEqual,
  type LockPolicy,
  type Op,
  type Table,
  applyOps,
  opFromCbor,
  opToCbor,
  tableDigest,
} from '../protocol';
import { type NorFlash, FlashError, FlashFault } from './flash';
import { crc32 } from './crc32';

export const SUPERBLOCK_MAGIC = 0x4246_534c; // "LSFB" little-endian
export const META_MAGIC = 0x524d_534c; // "LSMR"
export const AUDIT_BLOCK_MAGIC = 0x4241_534c; // "LSAB"
export const COMMIT_MARKER = 0x4b4f_534c; // "LSOK"
export const JOURNAL_MAGIC = 0x524a_534c; // "LSJR"
/** 2: table regions hold a base table followed by a journal of delta records. */
export const FORMAT_VERSION = 2;
/** Journal records per base before the next table change compacts (bounds replay at mount). */
export const JOURNAL_MAX_RECORDS = 64;
/**
 * Room kept free at the end of a table region. A delta's record holds every byte its puts
 * and policies add, so base + journal + this margin bounds the replayed table's encoding
 * (CBOR count headers grow by a few bytes at most): compaction always fits.
 */
export const JOURNAL_REGION_MARGIN = 64;
/** Largest encoded audit record a slot holds (the protocol's records are ≤ 43 bytes). */
export const AUDIT_RECORD_MAX = 47;
/** Erase-ahead starts when the active audit block has this many free slots or fewer. */
export const ERASE_AHEAD_SLOTS = 16;
/** NOR page: the largest single program the writer issues. */
export const PAGE_BYTES = 256;
/** Single-use daily code ledger cap: when full of live uses, new uses fail closed. */
// One capacity for the ledger the access rules read (protocol/access.ts) and the flash keeps.
import { SINGLE_USE_LEDGER_MAX } from '../protocol/access';
export { SINGLE_USE_LEDGER_MAX };
/** A commit the device fails (program/erase did not complete) is retried elsewhere this often. */
export const COMMIT_ATTEMPTS = 3;

export interface LayoutParams {
  metaSlotBlocks: number;
  tableRegionBlocks: number;
  auditBlocks: number;
}

export interface Layout extends LayoutParams {
  blockSize: number;
  blockCount: number;
  progSize: number;
  metaStart: number;
  tableStart: number;
  auditStart: number;
  superblockBytes: number;
  metaHeaderBytes: number;
  metaTrailerBytes: number;
  auditHeaderBytes: number;
  auditBodyBytes: number;
  auditTrailerBytes: number;
  auditSlotBytes: number;
}

export function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

export function computeLayout(g: { blockSize: number; blockCount: number; progSize: number }, p: LayoutParams): Layout {
  const metaStart = 1;
  const tableStart = metaStart + 2 * p.metaSlotBlocks;
  const auditStart = tableStart + 2 * p.tableRegionBlocks;
  if (auditStart + p.auditBlocks > g.blockCount)
    throw new FlashError('BAD_GEOMETRY', `layout needs ${auditStart + p.auditBlocks} blocks, flash has ${g.blockCount}`);
  if (p.auditBlocks < 2 || p.metaSlotBlocks < 1 || p.tableRegionBlocks < 1) throw new FlashError('BAD_GEOMETRY', 'need >= 2 audit blocks and >= 1 block per slot/region');
  const auditBodyBytes = alignUp(1 + AUDIT_RECORD_MAX, g.progSize);
  const auditTrailerBytes = alignUp(8, g.progSize);
  return {
    ...p,
    blockSize: g.blockSize,
    blockCount: g.blockCount,
    progSize: g.progSize,
    metaStart,
    tableStart,
    auditStart,
    superblockBytes: alignUp(64, g.progSize),
    metaHeaderBytes: alignUp(16, g.progSize),
    metaTrailerBytes: alignUp(8, g.progSize),
    auditHeaderBytes: alignUp(52, g.progSize),
    auditBodyBytes,
    auditTrailerBytes,
    auditSlotBytes: auditBodyBytes + auditTrailerBytes,
  };
}

/** Default layout for a geometry: 2-block metadata slots, 24 audit blocks, the rest table. */
export function defaultLayoutParams(g: { blockSize: number; blockCount: number }): LayoutParams {
  const metaSlotBlocks = 2;
  const auditBlocks = Math.max(2, Math.min(24, Math.floor(g.blockCount / 4)));
  const tableRegionBlocks = Math.floor((g.blockCount - 1 - 2 * metaSlotBlocks - auditBlocks) / 2);
  return { metaSlotBlocks, tableRegionBlocks, auditBlocks };
}

// ---------------------------------------------------------------------------
// Durable state

export interface LockSecrets {
  lockId: string;
  /** 32-byte secret shared with the authority: doorcode/keycard verifiers and daily codes. */
  lockSecret: Uint8Array;
  /** 32-byte Ed25519 seed of the device key that signs receipts. */
  deviceSeed: Uint8Array;
  timeZone: string;
}

export interface SingleUseRecord {
  /** Local date YYYY-MM-DD the code belongs to. */
  date: string;
  slot: number;
  /** Lock time of first use, unix seconds. */
  firstUseS: number;
}

export interface KeypadPersist {
  /** Keypad attempts not yet proven right: raised before a code is evaluated, cleared by a right one. */
  wrongCount: number;
  lockoutActive: boolean;
  /** Escalation: +1 per lockout, −1 per right code; the next lockout lasts lockoutSeconds × 2^level, ≤ 24 h (machine.ts). */
  lockoutLevel: number;
}

export interface DurableState {
  secrets: LockSecrets;
  tableState: TableState;
  signedHead: SignedHead | null;
  keypad: KeypadPersist;
  singleUse: SingleUseRecord[];
  /** Audit records through this seq are held by the authority (its signed auditAnchor):
   *  the ring may recycle them. Absent = 0 (nothing anchored). */
  auditAnchoredSeq?: number;
}

interface TableRef {
  region: 0 | 1;
  /** Base table bytes at offset 0 of the region. */
  length: number;
  sha256: Uint8Array;
  /** Journal bytes committed after the base (from offset up(length, P)), and their record count. */
  journalBytes: number;
  journalCount: number;
}

/** What a commit writes to the table regions, decided before any byte is written. */
type TablePlan =
  | { kind: 'unchanged'; ref: TableRef }
  | { kind: 'base'; ref: TableRef; bytes: Uint8Array }
  | { kind: 'journal'; ref: TableRef; addr: number; body: Uint8Array; trailer: Uint8Array; eraseBlocks: number[] };

interface MetaRecord {
  seq: number;
  slot: 0 | 1;
  offset: number;
  end: number;
  payload: Uint8Array;
}

export class StorageError extends Error {
  override readonly name = 'StorageError';
  constructor(
    readonly code: 'NOT_FORMATTED' | 'NO_VALID_COMMIT' | 'TOO_LARGE' | 'CORRUPT' | 'FLASH_FAILED',
    detail: string,
  ) {
    super(`${code}: ${detail}`);
  }
}

/** Audit record fields a caller appends (seq is assigned by the ring). */
export type AuditAppend = Omit<AuditRecord, 'seq'>;

export interface AuditHead {
  /** Sequence number of the newest record; 0 when the log is empty. */
  seq: number;
  hash: Uint8Array;
}

interface AuditBlockInfo {
  index: number;
  epoch: number;
  firstSeq: number;
  prevHash: Uint8Array;
  /** Valid records, in order, with their slot index. */
  records: { slot: number; bytes: Uint8Array; seq: number }[];
  /** First slot never programmed (all 0xFF); slots before it are used (valid or dead). */
  freeSlot: number;
}

export interface MountReport {
  metaRecordsSeen: number;
  metaSeq: number;
  recordsRejected: number;
  auditRolledForward: boolean;
  auditDeadSlots: number;
  /** Journal records replayed on top of the base table in force. */
  journalReplayed: number;
  /**
   * Commit records newer than the one in force that were complete on flash (trailer fully
   * programmed) but no longer verify — bit rot in the record or in the table it names: the
   * lock fell back to an older copy and lost these commits.
   */
  corruptCommitRecords: number;
  /** Audit records that no longer verify (rotted slot or block header) and what they cut off. */
  auditRecordsLost: number;
}

// ---------------------------------------------------------------------------

export class LockStorage {
  private committed!: DurableState;
  private tableRef!: TableRef;
  private seq = 0;
  /** Where the next commit record goes; null = compact into the other slot. */
  private metaAppend: { slot: 0 | 1; offset: number } | null = null;
  private activeSlot: 0 | 1 = 0;
  private auditBlocks: AuditBlockInfo[] = [];
  private auditHeadState: AuditHead = { seq: 0, hash: AUDIT_GENESIS };
  private auditActive: { index: number; epoch: number; nextSlot: number } | null = null;
  /** Consecutive refusals identical to the newest record, not yet written (RAM only). */
  private auditRun: { base: AuditAppend; baseSeq: number; count: number; time: number } | null = null;
  /** Refusals not written for lack of room (RAM only until written as refusalsNotLogged). */
  private refusalsDropped: { count: number; time: number } | null = null;
  /** Fields of the newest record on flash (for coalescing). */
  private lastAudit: AuditRecord | null = null;
  report: MountReport = { metaRecordsSeen: 0, metaSeq: 0, recordsRejected: 0, auditRolledForward: false, auditDeadSlots: 0, journalReplayed: 0, corruptCommitRecords: 0, auditRecordsLost: 0 };
  /** Audit blocks whose erase or header program failed since mount: the ring skips them. */
  private retiredAuditBlocks = new Set<number>();
  /** Device faults met and worked around since mount (program/erase failures, worn blocks). */
  flashFaults = { commitRetries: 0, auditSlotsSkipped: 0, auditBlocksRetired: 0 };
  /** Table writes since mount: full bases (snapshots, compactions) and journal appends. */
  tableWrites = { bases: 0, journalRecords: 0 };

  private constructor(
    readonly flash: NorFlash,
    readonly layout: Layout,
  ) {}

  // -------------------------------------------------------------------------
  // Provisioning and mount

  /** Factory provisioning: erase everything, write the superblock and the first commit. */
  static format(flash: NorFlash, secrets: LockSecrets, roots: Uint8Array[], opts: { layout?: LayoutParams; policy?: LockPolicy } = {}): LockStorage {
    const layout = computeLayout(flash.geometry, opts.layout ?? defaultLayoutParams(flash.geometry));
    for (let b = 0; b < layout.blockCount; b++) if (!flash.isErased(b * layout.blockSize, layout.blockSize)) flash.erase(b);
    flash.program(0, encodeSuperblock(layout));
    flash.sync();
    const s = new LockStorage(flash, layout);
    const table = opts.policy !== undefined ? emptyTable(opts.policy) : emptyTable();
    const state: DurableState = {
      secrets,
      tableState: { lockId: secrets.lockId, table, head: null, versionFloor: 0, trust: { roots, certs: [], certFloor: 0 }, newestIssuedAt: 0, leaseAnchor: 0 },
      signedHead: null,
      keypad: { wrongCount: 0, lockoutActive: false, lockoutLevel: 0 },
      singleUse: [],
    };
    // Seed the "previous" table ref so the first table lands in region 0.
    s.tableRef = { region: 1, length: 0, sha256: hash(new Uint8Array(0)), journalBytes: 0, journalCount: 0 };
    s.committed = state;
    s.metaAppend = null;
    s.activeSlot = 1; // so the first compaction writes slot 0
    s.writeCommit(state, true, undefined, undefined);
    return s;
  }

  static mount(flash: NorFlash): LockStorage {
    const layout = readSuperblock(flash);
    const s = new LockStorage(flash, layout);
    s.mountMeta();
    s.mountAudit();
    return s;
  }

  /**
   * This mounted storage's RAM state on `copy`, a device holding the same bytes (a
   * NorFlash.clone() of its flash): what mount(copy) would build, without re-reading the
   * device. Power-loss harnesses replay thousands of cuts from one snapshot with it. The
   * committed state is immutable (a commit replaces it) and is shared; everything else is
   * copied, whatever fields the storage grows.
   */
  forkOnto(copy: NorFlash): LockStorage {
    const f = new LockStorage(copy, this.layout);
    for (const [k, v] of Object.entries(this)) {
      if (k === 'flash' || k === 'layout') continue;
      (f as unknown as Record<string, unknown>)[k] = k === 'committed' ? v : structuredClone(v);
    }
    return f;
  }

  get state(): DurableState {
    return this.committed;
  }

  /** Metadata slot holding the commit record in force (changes on compaction). */
  get activeMetaSlot(): 0 | 1 {
    return this.activeSlot;
  }

  get commitSeq(): number {
    return this.seq;
  }

  /** The table region in force and its journal (tests, bench). */
  get tableJournal(): { region: 0 | 1; baseBytes: number; records: number; bytes: number } {
    const r = this.tableRef;
    return { region: r.region, baseBytes: r.length, records: r.journalCount, bytes: r.journalBytes };
  }

  // -------------------------------------------------------------------------
  // Commits

  /**
   * Make `next` the committed state. If `auditAfter` is given, its audit record gets the
   * next sequence number, travels in the commit record and is appended right after; the
   * returned head includes it. Either everything lands or (after reboot) nothing does.
   * Throws StorageError('TOO_LARGE') BEFORE writing anything if the state does not fit.
   * `tableOps`, when the new table is the committed one with these ops applied (a delta),
   * lets the table change be appended to the journal instead of rewriting the whole table.
   */
  commit(next: DurableState, auditAfter?: Omit<AuditRecord, 'seq'>, tableOps?: readonly Op[]): AuditHead {
    const tableChanged = next.tableState.table !== this.committed.tableState.table;
    let journal: { seq: number; bytes: Uint8Array } | undefined;
    if (auditAfter !== undefined) {
      this.prepareAuditAppend(auditAfter.time);
      const seq = this.auditHeadState.seq + 1;
      journal = { seq, bytes: encodeAuditRecord({ ...auditAfter, seq }) };
      if (journal.bytes.length > AUDIT_RECORD_MAX) throw new StorageError('TOO_LARGE', `audit record of ${journal.bytes.length} bytes`);
    }
    this.writeCommit(next, tableChanged, journal, tableOps);
    if (journal !== undefined) this.appendAuditBytes(journal.seq, journal.bytes);
    return this.auditHead();
  }

  /** Bytes a table would occupy, to refuse oversize updates before touching flash. */
  tableCapacity(): number {
    return this.layout.tableRegionBlocks * this.layout.blockSize;
  }

  /**
   * One commit, retried when the device fails an operation (FlashFault): the failed attempt
   * left torn bytes that no commit record names, exactly like a power cut, so the next
   * attempt is planned afresh — a torn journal tail or slot tail sends it to the other
   * region or slot. Each attempt takes a fresh seq, so a failed record that did land can
   * never share one with its retry. After COMMIT_ATTEMPTS failures: FLASH_FAILED, and the
   * committed state is the previous one.
   */
  private writeCommit(next: DurableState, tableChanged: boolean, journal: { seq: number; bytes: Uint8Array } | undefined, tableOps: readonly Op[] | undefined): void {
    for (let attempt = 1; ; attempt++) {
      const appendBefore = this.metaAppend;
      try {
        this.writeCommitOnce(next, tableChanged, journal, tableOps);
        return;
      } catch (e) {
        if (!(e instanceof FlashFault)) throw e;
        this.seq++;
        // An append that failed leaves a torn slot tail: compact into the other slot next.
        // A compaction that failed: the slot in force still takes appends while it has room.
        this.metaAppend = appendBefore !== null && this.failedInActiveSlot(e.block) ? null : appendBefore;
        if (attempt >= COMMIT_ATTEMPTS) throw new StorageError('FLASH_FAILED', `commit failed ${attempt} times, last: ${e.message}`);
        this.flashFaults.commitRetries++;
      }
    }
  }

  private failedInActiveSlot(block: number): boolean {
    const L = this.layout;
    const first = L.metaStart + this.activeSlot * L.metaSlotBlocks;
    return block >= first && block < first + L.metaSlotBlocks;
  }

  private writeCommitOnce(next: DurableState, tableChanged: boolean, journal: { seq: number; bytes: Uint8Array } | undefined, tableOps: readonly Op[] | undefined): void {
    const L = this.layout;
    // Decide everything (and refuse what does not fit) before the first program or erase.
    const plan = this.planTable(next, tableChanged, tableOps);
    const ref = plan.ref;
    const payload = encodeMetaPayload(next, ref, journal);
    const recordBytes = L.metaHeaderBytes + alignUp(payload.length, L.progSize) + L.metaTrailerBytes;
    const slotBytes = L.metaSlotBlocks * L.blockSize;
    if (recordBytes > slotBytes) throw new StorageError('TOO_LARGE', `commit record of ${recordBytes} bytes > metadata slot of ${slotBytes}`);

    // 1a. A full base table into the free region, then a barrier (snapshot or compaction).
    if (plan.kind === 'base') {
      const tableBytes = plan.bytes;
      const base = (L.tableStart + ref.region * L.tableRegionBlocks) * L.blockSize;
      const blocks = Math.max(1, Math.ceil(tableBytes.length / L.blockSize));
      for (let b = 0; b < blocks; b++) {
        const blk = L.tableStart + ref.region * L.tableRegionBlocks + b;
        if (!this.flash.isErased(blk * L.blockSize, L.blockSize)) this.flash.erase(blk);
      }
      this.programSpan(base, padTo(tableBytes, L.progSize, 0xff));
      this.flash.sync();
      this.tableWrites.bases++;
    }
    // 1b. Or one journal record after the committed journal: body, barrier, trailer, barrier.
    // It counts only once the commit record below names it.
    if (plan.kind === 'journal') {
      for (const blk of plan.eraseBlocks) this.flash.erase(blk);
      this.programSpan(plan.addr, plan.body);
      this.flash.sync();
      this.programSpan(plan.addr + plan.body.length, plan.trailer);
      this.flash.sync();
      this.tableWrites.journalRecords++;
    }
    // 2. The commit record: header+payload, barrier, trailer, barrier.
    const seq = this.seq + 1;
    let slot: 0 | 1;
    let offset: number;
    if (this.metaAppend !== null && this.metaAppend.offset + recordBytes <= slotBytes) {
      slot = this.metaAppend.slot;
      offset = this.metaAppend.offset;
    } else {
      slot = this.activeSlot === 0 ? 1 : 0;
      offset = 0;
      for (let b = 0; b < L.metaSlotBlocks; b++) {
        const blk = L.metaStart + slot * L.metaSlotBlocks + b;
        if (!this.flash.isErased(blk * L.blockSize, L.blockSize)) this.flash.erase(blk);
      }
    }
    const base = (L.metaStart + slot * L.metaSlotBlocks) * L.blockSize + offset;
    const header = new Uint8Array(L.metaHeaderBytes);
    const dv = new DataView(header.buffer);
    dv.setUint32(0, META_MAGIC, true);
    dv.setUint32(4, seq, true);
    dv.setUint32(8, payload.length, true);
    dv.setUint32(12, FORMAT_VERSION, true);
    const body = new Uint8Array(L.metaHeaderBytes + alignUp(payload.length, L.progSize));
    body.set(header, 0);
    body.set(payload, L.metaHeaderBytes);
    this.programSpan(base, body);
    this.flash.sync();
    const trailer = new Uint8Array(L.metaTrailerBytes);
    const tdv = new DataView(trailer.buffer);
    tdv.setUint32(0, crc32(body.subarray(0, L.metaHeaderBytes + payload.length)), true);
    tdv.setUint32(4, COMMIT_MARKER, true);
    this.flash.program(base + body.length, trailer);
    this.flash.sync();
    // Committed.
    this.seq = seq;
    this.tableRef = ref;
    this.activeSlot = slot;
    this.metaAppend = { slot, offset: offset + recordBytes };
    this.committed = next;
  }

  /**
   * Where a table change goes. A delta (ops given) is appended to the journal of the region
   * in force when: the journal stays under JOURNAL_MAX_RECORDS records and under half of
   * max(base, one block) in bytes; base + journal + JOURNAL_REGION_MARGIN fits the region;
   * and the bytes after the committed journal are erased up to the end of their block (a
   * record torn by an earlier power cut forces a compaction). Blocks wholly past the
   * committed journal may hold stale bytes from an older table: they are erased first.
   * Anything else (snapshots, thresholds, torn tail) writes a full base to the other region.
   */
  private planTable(next: DurableState, tableChanged: boolean, tableOps: readonly Op[] | undefined): TablePlan {
    const L = this.layout;
    const cur = this.tableRef;
    if (!tableChanged) return { kind: 'unchanged', ref: cur };
    const capacity = this.tableCapacity();
    if (tableOps !== undefined && next.signedHead !== null && cur.journalCount < JOURNAL_MAX_RECORDS) {
      const payload = encodeJournalPayload(tableOps, next.signedHead);
      const hdr = alignUp(16, L.progSize);
      const body = new Uint8Array(hdr + alignUp(payload.length, L.progSize));
      const dv = new DataView(body.buffer);
      dv.setUint32(0, JOURNAL_MAGIC, true);
      dv.setUint32(4, cur.journalCount + 1, true);
      dv.setUint32(8, payload.length, true);
      dv.setUint32(12, FORMAT_VERSION, true);
      body.set(payload, hdr);
      const trailer = new Uint8Array(alignUp(8, L.progSize));
      const tdv = new DataView(trailer.buffer);
      tdv.setUint32(0, crc32(body.subarray(0, hdr + payload.length)), true);
      tdv.setUint32(4, COMMIT_MARKER, true);
      const recLen = body.length + trailer.length;
      const start = alignUp(cur.length, L.progSize) + cur.journalBytes;
      const end = start + recLen;
      const withinThreshold = cur.journalBytes + recLen <= Math.max(alignUp(cur.length, L.progSize), L.blockSize) / 2;
      if (withinThreshold && end + JOURNAL_REGION_MARGIN <= capacity) {
        const regionBase = (L.tableStart + cur.region * L.tableRegionBlocks) * L.blockSize;
        const firstFreeBlock = alignUp(start, L.blockSize);
        const partialEnd = Math.min(end, firstFreeBlock);
        if (partialEnd <= start || this.flash.isErased(regionBase + start, firstFreeBlock - start)) {
          const eraseBlocks: number[] = [];
          for (let off = firstFreeBlock; off < end; off += L.blockSize) {
            const blk = (regionBase + off) / L.blockSize;
            if (!this.flash.isErased(blk * L.blockSize, L.blockSize)) eraseBlocks.push(blk);
          }
          return {
            kind: 'journal',
            ref: { ...cur, journalBytes: cur.journalBytes + recLen, journalCount: cur.journalCount + 1 },
            addr: regionBase + start,
            body,
            trailer,
            eraseBlocks,
          };
        }
      }
    }
    const bytes = encodeTable(next.tableState.table);
    if (bytes.length > capacity) throw new StorageError('TOO_LARGE', `table of ${bytes.length} bytes > region of ${capacity}`);
    return { kind: 'base', ref: { region: cur.region === 0 ? 1 : 0, length: bytes.length, sha256: hash(bytes), journalBytes: 0, journalCount: 0 }, bytes };
  }

  /** Program bytes that may cross block boundaries, one NOR page per operation. */
  private programSpan(addr: number, data: Uint8Array): void {
    const bs = this.layout.blockSize;
    let off = 0;
    while (off < data.length) {
      const a = addr + off;
      const room = bs - (a % bs);
      const n = Math.min(PAGE_BYTES, room, data.length - off);
      this.flash.program(a, data.subarray(off, off + n));
      off += n;
    }
  }

  // -------------------------------------------------------------------------
  // Audit log

  auditHead(): AuditHead {
    return { seq: this.auditHeadState.seq, hash: this.auditHeadState.hash.slice() };
  }

  /** Seq through which the authority has anchored this lock's records (0: none). */
  get auditAnchoredSeq(): number {
    return this.committed.auditAnchoredSeq ?? 0;
  }

  /**
   * Append one record durably; returns the head, whose seq is the record that holds this
   * event. A refusal (`refusal: true`) identical to the newest record is only counted (the
   * count is written as one record by flushAudit or the next different record) and names
   * that record's seq; a refusal with no room left outside the reserve is only counted in
   * the next refusalsNotLogged record and names the current head.
   */
  appendAudit(rec: AuditAppend, opts: { refusal?: boolean } = {}): AuditHead {
    if (opts.refusal === true) {
      const run = this.auditRun;
      if (run !== null && sameAuditEvent(run.base, rec)) {
        run.count++;
        run.time = rec.time;
        return { seq: run.baseSeq, hash: this.auditHeadState.hash.slice() };
      }
      const last = this.lastAudit;
      if (run === null && last !== null && last.seq === this.auditHeadState.seq && sameAuditEvent(last, rec)) {
        this.auditRun = { base: rec, baseSeq: last.seq, count: 1, time: rec.time };
        return { seq: last.seq, hash: this.auditHeadState.hash.slice() };
      }
      this.flushRun();
      if (this.slotsBeforeLoss() <= this.slotsPerAuditBlock()) {
        this.countDropped(1, rec.time);
        return this.auditHead();
      }
      // Room again (an anchor arrived): the count of what was not logged goes first.
      const dropped = this.refusalsDropped;
      if (dropped !== null) {
        this.refusalsDropped = null;
        this.appendRecord({ time: dropped.time, event: 'refusalsNotLogged', value: dropped.count });
      }
      this.appendRecord(rec);
      return this.auditHead();
    }
    this.prepareAuditAppend(rec.time);
    this.appendRecord(rec);
    return this.auditHead();
  }

  /** Write what coalescing holds in RAM (a pending run, refusals not logged). */
  flushAudit(time: number): AuditHead {
    this.flushRun();
    if (this.refusalsDropped !== null) this.prepareAuditAppend(time);
    return this.auditHead();
  }

  /**
   * Chain hash after record `seq`, if the ring can still tell (it holds that record, or it
   * is the record just before the oldest retained block); undefined otherwise.
   */
  auditChainHashAt(seq: number): Uint8Array | undefined {
    if (seq === this.auditHeadState.seq) return this.auditHeadState.hash.slice();
    for (const b of this.sortedAuditBlocks()) {
      let h = b.prevHash;
      if (seq === b.firstSeq - 1) return h.slice();
      for (const r of b.records) {
        h = chainAudit(h, r.bytes);
        if (r.seq === seq) return h.slice();
      }
    }
    return undefined;
  }

  /** Before a non-refusal record: write the pending run and dropped-refusal count, and a
   *  recordsLost record if the next append must recycle a block holding unanchored records. */
  private prepareAuditAppend(time: number): void {
    this.flushRun();
    const dropped = this.refusalsDropped;
    if (dropped !== null) {
      this.refusalsDropped = null;
      this.noteLossIfRecycling(time);
      this.appendRecord({ time: dropped.time, event: 'refusalsNotLogged', value: dropped.count });
    }
    this.noteLossIfRecycling(time);
  }

  private flushRun(): void {
    const run = this.auditRun;
    if (run === null) return;
    this.auditRun = null;
    if (this.slotsBeforeLoss() <= this.slotsPerAuditBlock()) {
      this.countDropped(run.count, run.time);
      return;
    }
    if (run.count === 1) this.appendRecord({ ...run.base, time: run.time });
    else this.appendRecord({ ...run.base, time: run.time, count: run.count });
  }

  private countDropped(n: number, time: number): void {
    this.refusalsDropped = { count: (this.refusalsDropped?.count ?? 0) + n, time };
  }

  /** If the next slot is in a block still holding unanchored records, record their loss first. */
  private noteLossIfRecycling(time: number): void {
    const lost = this.unanchoredInNextBlock();
    if (lost > 0) this.appendRecord({ time, event: 'recordsLost', value: lost });
  }

  private appendRecord(rec: AuditAppend): void {
    const seq = this.auditHeadState.seq + 1;
    const bytes = encodeAuditRecord({ ...rec, seq });
    if (bytes.length > AUDIT_RECORD_MAX) throw new StorageError('TOO_LARGE', `audit record of ${bytes.length} bytes`);
    this.appendAuditBytes(seq, bytes);
  }

  /** The block the next append recycles (null: the active block has room, or the next is unused). */
  private nextRecycledBlock(): AuditBlockInfo | undefined {
    const act = this.auditActive;
    if (act !== null && act.nextSlot < this.slotsPerAuditBlock()) return undefined;
    const index = act === null ? 0 : (act.index + 1) % this.layout.auditBlocks;
    return this.auditBlocks.find((b) => b.index === index);
  }

  private unanchoredInNextBlock(): number {
    const b = this.nextRecycledBlock();
    const anchored = this.auditAnchoredSeq;
    return b === undefined ? 0 : b.records.filter((r) => r.seq > anchored).length;
  }

  /** Slots that can be written before a block holding unanchored records must be recycled. */
  private slotsBeforeLoss(): number {
    const L = this.layout;
    const perBlock = this.slotsPerAuditBlock();
    const anchored = this.auditAnchoredSeq;
    const act = this.auditActive;
    let n = act === null ? 0 : perBlock - Math.min(perBlock, act.nextSlot);
    const start = act === null ? -1 : act.index;
    for (let k = 1; k <= (act === null ? L.auditBlocks : L.auditBlocks - 1); k++) {
      const index = (start + k) % L.auditBlocks;
      const b = this.auditBlocks.find((x) => x.index === index);
      if (b !== undefined && b.records.some((r) => r.seq > anchored)) break;
      n += perBlock;
    }
    return n;
  }

  /** Slots of a block (from its address) whose body and trailer verify. */
  private countValidAuditSlots(addr: number): number {
    const L = this.layout;
    let n = 0;
    for (let s = 0; s < this.slotsPerAuditBlock(); s++) {
      const slot = this.flash.read(addr + L.auditHeaderBytes + s * L.auditSlotBytes, L.auditSlotBytes);
      const tdv = new DataView(slot.buffer, L.auditBodyBytes);
      if (tdv.getUint32(4, true) === COMMIT_MARKER && tdv.getUint32(0, true) === crc32(slot.subarray(0, L.auditBodyBytes))) n++;
    }
    return n;
  }

  private slotsPerAuditBlock(): number {
    const L = this.layout;
    return Math.floor((L.blockSize - L.auditHeaderBytes) / L.auditSlotBytes);
  }

  private appendAuditBytes(seq: number, bytes: Uint8Array): void {
    const L = this.layout;
    const perBlock = this.slotsPerAuditBlock();
    // Find an erased slot in the active block, skipping slots torn by earlier power cuts and
    // slots whose program the device failed (dead: never reused), and blocks it cannot start.
    for (let tries = 0; ; tries++) {
      if (tries > L.auditBlocks * (perBlock + 1)) throw new StorageError('FLASH_FAILED', `no audit slot can be written (${this.retiredAuditBlocks.size} blocks retired)`);
      if (this.auditActive === null || this.auditActive.nextSlot >= perBlock) {
        try {
          this.startAuditBlock(seq);
        } catch (e) {
          if (!(e instanceof FlashFault)) throw e;
          this.retireAuditBlock(e.block);
          continue;
        }
      }
      const act = this.auditActive as { index: number; epoch: number; nextSlot: number };
      const addr = (L.auditStart + act.index) * L.blockSize + L.auditHeaderBytes + act.nextSlot * L.auditSlotBytes;
      if (!this.flash.isErased(addr, L.auditSlotBytes)) {
        act.nextSlot++;
        continue;
      }
      const body = new Uint8Array(L.auditBodyBytes);
      body[0] = bytes.length;
      body.set(bytes, 1);
      const trailer = new Uint8Array(L.auditTrailerBytes);
      const dv = new DataView(trailer.buffer);
      dv.setUint32(0, crc32(body), true);
      dv.setUint32(4, COMMIT_MARKER, true);
      try {
        this.flash.program(addr, body);
        this.flash.sync();
        this.flash.program(addr + L.auditBodyBytes, trailer);
        this.flash.sync();
      } catch (e) {
        if (!(e instanceof FlashFault)) throw e;
        // The slot is dead (no valid trailer, not erased): mount skips it; try the next.
        act.nextSlot++;
        this.flashFaults.auditSlotsSkipped++;
        continue;
      }
      act.nextSlot++;
      const blockInfo = this.auditBlocks.find((b) => b.index === act.index);
      blockInfo?.records.push({ slot: act.nextSlot - 1, bytes, seq });
      this.auditHeadState = { seq, hash: chainAudit(this.auditHeadState.hash, bytes) };
      this.lastAudit = auditRecordFromBytes(bytes);
      return;
    }
  }

  /** A block the device will not erase or program: the ring goes on without it (until reboot). */
  private retireAuditBlock(block: number): void {
    const index = block - this.layout.auditStart;
    if (index < 0 || index >= this.layout.auditBlocks) return;
    this.retiredAuditBlocks.add(index);
    this.flashFaults.auditBlocksRetired++;
    this.auditBlocks = this.auditBlocks.filter((b) => b.index !== index);
    // Move past it: the next start takes the block after it.
    this.auditActive = { index, epoch: this.auditActive?.epoch ?? 0, nextSlot: this.slotsPerAuditBlock() };
  }

  private startAuditBlock(firstSeq: number): void {
    const L = this.layout;
    let index = this.auditActive === null ? 0 : (this.auditActive.index + 1) % L.auditBlocks;
    for (let n = 0; this.retiredAuditBlocks.has(index); n++) {
      if (n >= L.auditBlocks) throw new StorageError('FLASH_FAILED', 'every audit block is retired');
      index = (index + 1) % L.auditBlocks;
    }
    const epoch = (this.auditActive?.epoch ?? Math.max(0, ...this.auditBlocks.map((b) => b.epoch))) + 1;
    const blk = L.auditStart + index;
    // The block's records are gone from here on, whether or not the erase completes.
    this.auditBlocks = this.auditBlocks.filter((b) => b.index !== index);
    // The epoch is used even if the start fails, so epochs on flash stay unique.
    this.auditActive = { index, epoch, nextSlot: this.slotsPerAuditBlock() };
    if (!this.flash.isErased(blk * L.blockSize, L.blockSize)) this.flash.erase(blk);
    const header = new Uint8Array(L.auditHeaderBytes);
    const dv = new DataView(header.buffer);
    dv.setUint32(0, AUDIT_BLOCK_MAGIC, true);
    dv.setUint32(4, epoch, true);
    writeU64(dv, 8, firstSeq);
    header.set(this.auditHeadState.hash, 16);
    dv.setUint32(48, crc32(header.subarray(0, 48)), true);
    this.flash.program(blk * L.blockSize, header);
    this.flash.sync();
    this.auditActive = { index, epoch, nextSlot: 0 };
    this.auditBlocks.push({ index, epoch, firstSeq, prevHash: this.auditHeadState.hash.slice(), records: [], freeSlot: 0 });
  }

  /**
   * Erase ahead (FLASH.md §5): the block the ring moves to next, erased while the lock is
   * idle so that no append — and so no unlock — waits for an erase (40–85 ms on real NOR).
   * Due only when the active block has at most ERASE_AHEAD_SLOTS free slots, the next block
   * is not erased, and every record it holds is anchored (the authority holds them): a
   * block with unread/unanchored records is left to the append path, which recycles it only
   * when nothing else is left and says so in a recordsLost record. A power cut during the
   * erase leaves a block whose header no longer checks: mount skips it as unused, and the
   * next block start erases it again.
   */
  auditEraseAheadDue(): boolean {
    return this.eraseAheadTarget() !== null;
  }

  /** Erase the next audit block if erase-ahead is due; true when it erased. */
  eraseAuditAhead(): boolean {
    const block = this.eraseAheadTarget();
    if (block === null) return false;
    this.flash.erase(this.layout.auditStart + block);
    this.auditBlocks = this.auditBlocks.filter((b) => b.index !== block);
    return true;
  }

  private eraseAheadTarget(): number | null {
    const act = this.auditActive;
    if (act === null || this.slotsPerAuditBlock() - act.nextSlot > ERASE_AHEAD_SLOTS) return null;
    const L = this.layout;
    const index = (act.index + 1) % L.auditBlocks;
    if (this.flash.isErased((L.auditStart + index) * L.blockSize, L.blockSize)) return null;
    const anchored = this.auditAnchoredSeq;
    const held = this.auditBlocks.find((b) => b.index === index);
    if (held !== undefined && held.records.some((r) => r.seq > anchored)) return null;
    return index;
  }

  /** Audit records the ring holds (each also indexed in RAM, with its bytes). */
  get auditRecordsHeld(): number {
    let n = 0;
    for (const b of this.auditBlocks) n += b.records.length;
    return n;
  }

  /** Oldest retained sequence number (0 when empty). */
  auditOldestSeq(): number {
    for (const b of this.sortedAuditBlocks()) if (b.records.length > 0) return (b.records[0] as { seq: number }).seq;
    return 0;
  }

  /** Records with seq >= fromSeq (at most `max`), and the chain hash before the first. */
  exportAudit(fromSeq: number, max: number): { prevHash: Uint8Array; records: Uint8Array[]; firstSeq: number } {
    let prev: Uint8Array | undefined;
    let h: Uint8Array | undefined;
    const out: Uint8Array[] = [];
    let firstSeq = 0;
    for (const b of this.sortedAuditBlocks()) {
      if (h === undefined) h = b.prevHash;
      for (const r of b.records) {
        if (r.seq >= fromSeq && out.length < max) {
          if (out.length === 0) {
            prev = h;
            firstSeq = r.seq;
          }
          out.push(r.bytes);
        }
        h = chainAudit(h, r.bytes);
      }
    }
    return { prevHash: (prev ?? this.auditHeadState.hash).slice(), records: out, firstSeq };
  }

  /** Every retained record, oldest first (tests and inspect). */
  auditRecords(): AuditRecord[] {
    return this.sortedAuditBlocks().flatMap((b) => b.records.map((r) => auditRecordFromBytes(r.bytes)));
  }

  private sortedAuditBlocks(): AuditBlockInfo[] {
    return [...this.auditBlocks].sort((a, b) => a.epoch - b.epoch);
  }

  // -------------------------------------------------------------------------
  // Mount internals

  private mountMeta(): void {
    const L = this.layout;
    const records: MetaRecord[] = [];
    const tails: { slot: 0 | 1; free: number | null }[] = [];
    const corruptSeqs: number[] = [];
    for (const slot of [0, 1] as const) {
      const { recs, free, corrupt } = this.scanMetaSlot(slot);
      records.push(...recs);
      corruptSeqs.push(...corrupt);
      tails.push({ slot, free });
    }
    this.report.metaRecordsSeen = records.length;
    records.sort((a, b) => b.seq - a.seq);
    const regionOk = new Map<string, Uint8Array | null>();
    const rejectedSeqs: number[] = [];
    for (const rec of records) {
      let parsed: { state: DurableState; ref: TableRef; journal: { seq: number; bytes: Uint8Array } | undefined; tableBytes: Uint8Array };
      try {
        const p = decodeMetaPayload(rec.payload);
        const key = `${p.ref.region}:${p.ref.length}`;
        let tb = regionOk.get(key);
        if (tb === undefined) {
          const base = (L.tableStart + p.ref.region * L.tableRegionBlocks) * L.blockSize;
          const bytes = p.ref.length <= L.tableRegionBlocks * L.blockSize ? this.flash.read(base, p.ref.length) : new Uint8Array(0);
          tb = bytes.length === p.ref.length ? bytes : null;
          regionOk.set(key, tb);
        }
        if (tb === null || !bytesEqual(hash(tb), p.ref.sha256)) throw new StorageError('CORRUPT', `record ${rec.seq}: table region ${p.ref.region} does not match`);
        p.state.tableState.table = this.replayJournal(decodeTableBytes(tb), p.ref, p.state.signedHead, rec.seq);
        parsed = { state: p.state, ref: p.ref, journal: p.journal, tableBytes: tb };
      } catch (e) {
        if (e instanceof StorageError || e instanceof ProtocolError || (e as Error).name === 'CborError') {
          this.report.recordsRejected++;
          rejectedSeqs.push(rec.seq);
          continue;
        }
        throw e;
      }
      this.committed = parsed.state;
      this.tableRef = parsed.ref;
      this.seq = Math.max(...records.map((r) => r.seq), ...corruptSeqs);
      this.report.metaSeq = rec.seq;
      // A complete record newer than the one in force that no longer verifies is data lost to
      // bit rot (a power cut leaves an incomplete trailer or a record whose table never landed
      // is never written: commit records follow their table's barrier).
      this.report.corruptCommitRecords = [...corruptSeqs, ...rejectedSeqs].filter((q) => q > rec.seq).length;
      this.activeSlot = rec.slot;
      const tail = tails.find((t) => t.slot === rec.slot);
      const isLast = !records.some((r) => r.slot === rec.slot && r.offset > rec.offset);
      this.metaAppend = isLast && tail !== undefined && tail.free !== null && tail.free === rec.end ? { slot: rec.slot, offset: rec.end } : null;
      this.pendingJournal = parsed.journal;
      this.report.journalReplayed = parsed.ref.journalCount;
      return;
    }
    throw new StorageError('NO_VALID_COMMIT', `no valid commit record among ${records.length}`);
  }

  private pendingJournal: { seq: number; bytes: Uint8Array } | undefined;

  /**
   * Replay the journal a commit record names on top of its base table. Every record must be
   * intact (magic, consecutive seq, CRC) and reproduce its signed head's digest, and the last
   * head must be the commit record's own: otherwise the whole commit record is rejected and
   * mount falls back to an older one (whose journal is a prefix of this one), never a mix.
   */
  private replayJournal(base: Table, ref: TableRef, signedHead: SignedHead | null, recSeq: number): Table {
    const L = this.layout;
    const hdr = alignUp(16, L.progSize);
    const trl = alignUp(8, L.progSize);
    const regionBase = (L.tableStart + ref.region * L.tableRegionBlocks) * L.blockSize;
    const end = alignUp(ref.length, L.progSize) + ref.journalBytes;
    if (end > this.tableCapacity()) throw new StorageError('CORRUPT', `record ${recSeq}: journal runs past the region`);
    let off = alignUp(ref.length, L.progSize);
    let table = base;
    let lastHead: SignedHead | null = null;
    for (let i = 1; i <= ref.journalCount; i++) {
      if (off + hdr + trl > end) throw new StorageError('CORRUPT', `record ${recSeq}: journal record ${i} missing`);
      const header = this.flash.read(regionBase + off, hdr);
      const dv = new DataView(header.buffer);
      const len = dv.getUint32(8, true);
      const recEnd = off + hdr + alignUp(len, L.progSize) + trl;
      if (dv.getUint32(0, true) !== JOURNAL_MAGIC || dv.getUint32(4, true) !== i || dv.getUint32(12, true) !== FORMAT_VERSION || recEnd > end)
        throw new StorageError('CORRUPT', `record ${recSeq}: journal record ${i} header`);
      const raw = this.flash.read(regionBase + off, recEnd - off);
      const tdv = new DataView(raw.buffer, hdr + alignUp(len, L.progSize));
      if (tdv.getUint32(0, true) !== crc32(raw.subarray(0, hdr + len)) || tdv.getUint32(4, true) !== COMMIT_MARKER)
        throw new StorageError('CORRUPT', `record ${recSeq}: journal record ${i} CRC`);
      const { ops, head } = decodeJournalPayload(raw.subarray(hdr, hdr + len), this.tableCapacity());
      table = applyOps(table, ops);
      if (!bytesEqual(tableDigest(table), head.head.digest)) throw new StorageError('CORRUPT', `record ${recSeq}: journal record ${i} does not reproduce its head`);
      lastHead = head;
      off = recEnd;
    }
    if (off !== end) throw new StorageError('CORRUPT', `record ${recSeq}: journal length mismatch`);
    if (lastHead !== null && (signedHead === null || !bytesEqual(lastHead.headBytes, signedHead.headBytes) || !bytesEqual(lastHead.signature, signedHead.signature)))
      throw new StorageError('CORRUPT', `record ${recSeq}: journal ends at another head than the commit record's`);
    return table;
  }

  /** Valid records of one slot, and the first offset after them if the tail is erased. */
  private scanMetaSlot(slot: 0 | 1): { recs: MetaRecord[]; free: number | null; corrupt: number[] } {
    const L = this.layout;
    const slotBytes = L.metaSlotBlocks * L.blockSize;
    const base = (L.metaStart + slot * L.metaSlotBlocks) * L.blockSize;
    const recs: MetaRecord[] = [];
    const corrupt: number[] = [];
    let off = 0;
    while (off + L.metaHeaderBytes <= slotBytes) {
      const header = this.flash.read(base + off, L.metaHeaderBytes);
      const dv = new DataView(header.buffer);
      if (dv.getUint32(0, true) !== META_MAGIC || dv.getUint32(12, true) !== FORMAT_VERSION) {
        return { recs, free: this.flash.isErased(base + off, slotBytes - off) ? off : null, corrupt };
      }
      const seq = dv.getUint32(4, true);
      const len = dv.getUint32(8, true);
      const bodyLen = L.metaHeaderBytes + alignUp(len, L.progSize);
      if (off + bodyLen + L.metaTrailerBytes > slotBytes) return { recs, free: null, corrupt };
      const bodyAndTrailer = this.flash.read(base + off, bodyLen + L.metaTrailerBytes);
      const tdv = new DataView(bodyAndTrailer.buffer, bodyLen);
      const ok = tdv.getUint32(0, true) === crc32(bodyAndTrailer.subarray(0, L.metaHeaderBytes + len)) && tdv.getUint32(4, true) === COMMIT_MARKER;
      const end = off + bodyLen + L.metaTrailerBytes;
      if (!ok) {
        // A trailer that is fully programmed (marker and zero padding) was written after its
        // body's barrier: the record was complete, so a CRC mismatch is rot, not a cut. Skip
        // it and read on. Anything else is a torn tail: the slot's records end here.
        if (!trailerLanded(bodyAndTrailer.subarray(bodyLen))) return { recs, free: null, corrupt };
        corrupt.push(seq);
        off = end;
        continue;
      }
      recs.push({ seq, slot, offset: off, end, payload: bodyAndTrailer.slice(L.metaHeaderBytes, L.metaHeaderBytes + len) });
      off = end;
    }
    return { recs, free: off <= slotBytes && this.flash.isErased(base + off, slotBytes - off) ? off : null, corrupt };
  }

  private mountAudit(): void {
    const L = this.layout;
    const perBlock = this.slotsPerAuditBlock();
    const blocks: AuditBlockInfo[] = [];
    const rottedHeaders: { epoch: number; records: number }[] = [];
    for (let i = 0; i < L.auditBlocks; i++) {
      const addr = (L.auditStart + i) * L.blockSize;
      const header = this.flash.read(addr, L.auditHeaderBytes);
      const dv = new DataView(header.buffer);
      if (dv.getUint32(0, true) !== AUDIT_BLOCK_MAGIC || dv.getUint32(48, true) !== crc32(header.subarray(0, 48))) {
        // A header torn by a cut has no records after it; one that rotted does: those are lost.
        const orphaned = this.countValidAuditSlots(addr);
        if (orphaned > 0) rottedHeaders.push({ epoch: dv.getUint32(4, true), records: orphaned });
        continue;
      }
      const info: AuditBlockInfo = { index: i, epoch: dv.getUint32(4, true), firstSeq: readU64(dv, 8), prevHash: header.slice(16, 48), records: [], freeSlot: perBlock };
      for (let s = 0; s < perBlock; s++) {
        const sa = addr + L.auditHeaderBytes + s * L.auditSlotBytes;
        const slotBytes = this.flash.read(sa, L.auditSlotBytes);
        if (slotBytes.every((b) => b === 0xff)) {
          info.freeSlot = s;
          break;
        }
        const body = slotBytes.subarray(0, L.auditBodyBytes);
        const tdv = new DataView(slotBytes.buffer, L.auditBodyBytes);
        const len = body[0] as number;
        if (len < 1 || len > AUDIT_RECORD_MAX || tdv.getUint32(0, true) !== crc32(body) || tdv.getUint32(4, true) !== COMMIT_MARKER) {
          this.report.auditDeadSlots++;
          continue;
        }
        const bytes = body.slice(1, 1 + len);
        try {
          info.records.push({ slot: s, bytes, seq: auditRecordFromBytes(bytes).seq });
        } catch {
          this.report.auditDeadSlots++;
        }
      }
      blocks.push(info);
    }
    blocks.sort((a, b) => a.epoch - b.epoch);
    // Walk the chain. A block that does not continue it is skipped: only a block whose header
    // names exactly the current head (seq and hash) is accepted after it. Inside a block, a
    // gap in seq is a slot that rotted (its CRC fails): the block's records end there, and
    // the records after it cannot be chained any more.
    let head: AuditHead = { seq: 0, hash: AUDIT_GENESIS };
    const kept: AuditBlockInfo[] = [];
    const cutOff: { epoch: number; records: number }[] = [];
    for (const b of blocks) {
      if (kept.length === 0) head = { seq: b.firstSeq - 1, hash: b.prevHash };
      else if (b.firstSeq !== head.seq + 1 || !bytesEqual(b.prevHash, head.hash)) {
        cutOff.push({ epoch: b.epoch, records: b.records.length });
        continue;
      }
      for (let k = 0; k < b.records.length; k++) {
        const r = b.records[k] as { seq: number; bytes: Uint8Array };
        if (r.seq !== head.seq + 1) {
          cutOff.push({ epoch: b.epoch, records: b.records.length - k + (r.seq - head.seq - 1) });
          b.records = b.records.slice(0, k);
          // Nothing may be appended behind the cut-off records: the next record starts a block.
          b.freeSlot = perBlock;
          break;
        }
        head = { seq: r.seq, hash: chainAudit(head.hash, r.bytes) };
      }
      kept.push(b);
    }
    // Losses newer than the newest block in force are news; older ones were reported at the
    // boot that found them (a block started since then chains past them).
    const newestKept = kept[kept.length - 1]?.epoch ?? -1;
    this.report.auditRecordsLost = [...cutOff, ...rottedHeaders].filter((c) => c.epoch >= newestKept).reduce((n, c) => n + c.records, 0);
    const maxEpoch = Math.max(0, ...blocks.map((b) => b.epoch), ...rottedHeaders.map((h) => h.epoch));
    if (kept.length === 0) head = { seq: 0, hash: AUDIT_GENESIS };
    this.auditBlocks = kept;
    this.auditHeadState = head;
    const newest = kept[kept.length - 1]?.records.at(-1);
    this.lastAudit = newest === undefined ? null : auditRecordFromBytes(newest.bytes);
    const last = kept[kept.length - 1];
    // After a loss, new blocks take epochs above every block on flash, rotted or skipped.
    this.auditActive = last === undefined ? null : { index: last.index, epoch: this.report.auditRecordsLost > 0 ? maxEpoch : last.epoch, nextSlot: last.freeSlot };
    if (last === undefined && blocks.length > 0) {
      // Nothing chains: start after the highest epoch seen so epochs stay monotonic.
      const hi = blocks.reduce((a, b) => (b.epoch > a.epoch ? b : a));
      this.auditActive = { index: hi.index, epoch: hi.epoch, nextSlot: perBlock };
    }
    // Roll forward the audit record of the commit in force if the cut preceded its append.
    const j = this.pendingJournal;
    if (j !== undefined && head.seq === j.seq - 1) {
      this.appendAuditBytes(j.seq, j.bytes);
      this.report.auditRolledForward = true;
    }
  }
}

// ---------------------------------------------------------------------------
// Superblock and payload codecs

function encodeSuperblock(L: Layout): Uint8Array {
  const b = new Uint8Array(L.superblockBytes).fill(0);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, SUPERBLOCK_MAGIC, true);
  dv.setUint8(4, FORMAT_VERSION);
  dv.setUint16(6, L.progSize, true);
  dv.setUint32(8, L.blockSize, true);
  dv.setUint32(12, L.blockCount, true);
  dv.setUint16(16, L.metaSlotBlocks, true);
  dv.setUint16(18, L.tableRegionBlocks, true);
  dv.setUint16(20, L.auditBlocks, true);
  dv.setUint32(24, L.metaStart, true);
  dv.setUint32(28, L.tableStart, true);
  dv.setUint32(32, L.auditStart, true);
  dv.setUint32(60, crc32(b.subarray(0, 60)), true);
  return b;
}

function readSuperblock(flash: NorFlash): Layout {
  const raw = flash.read(0, 64);
  const dv = new DataView(raw.buffer);
  if (dv.getUint32(0, true) !== SUPERBLOCK_MAGIC) {
    if (raw.every((b) => b === 0xff)) throw new StorageError('NOT_FORMATTED', 'no valid superblock in block 0');
    throw new StorageError('CORRUPT', 'superblock in block 0 is written but its magic is wrong (bit rot, or not a lock image)');
  }
  // The superblock is written once at provisioning: a CRC mismatch under its magic is rot.
  if (dv.getUint32(60, true) !== crc32(raw.subarray(0, 60))) throw new StorageError('CORRUPT', 'superblock in block 0 fails its CRC (bit rot)');
  if (dv.getUint8(4) !== FORMAT_VERSION) throw new StorageError('NOT_FORMATTED', `flash format ${dv.getUint8(4)} not supported`);
  const g = { progSize: dv.getUint16(6, true), blockSize: dv.getUint32(8, true), blockCount: dv.getUint32(12, true) };
  if (g.blockSize !== flash.geometry.blockSize || g.blockCount !== flash.geometry.blockCount || g.progSize !== flash.geometry.progSize)
    throw new StorageError('NOT_FORMATTED', 'superblock geometry does not match the device');
  return computeLayout(g, { metaSlotBlocks: dv.getUint16(16, true), tableRegionBlocks: dv.getUint16(18, true), auditBlocks: dv.getUint16(20, true) });
}

/** Meta payload keys (FLASH.md §3). */
function encodeMetaPayload(s: DurableState, ref: TableRef, journal: { seq: number; bytes: Uint8Array } | undefined): Uint8Array {
  const ts = s.tableState;
  if ((ts.head === null) !== (s.signedHead === null) || (ts.head !== null && s.signedHead !== null && !bytesEqual(ts.head.digest, s.signedHead.head.digest)))
    throw new Error('storage: signedHead must be the head of tableState (caller bug)');
  return encode(
    cmap([
      [1, s.secrets.lockId],
      [2, s.secrets.lockSecret],
      [3, s.secrets.deviceSeed],
      [4, ts.trust.roots],
      [5, s.secrets.timeZone],
      [6, [ref.region, ref.length, ref.sha256, ref.journalBytes, ref.journalCount]],
      [7, s.signedHead === null ? undefined : signedHeadToCbor(s.signedHead)],
      [8, ts.versionFloor],
      [9, ts.newestIssuedAt],
      [10, ts.trust.certs.length > 0 ? ts.trust.certs.map(keyCertToCbor) : undefined],
      [11, ts.trust.certFloor],
      [12, [s.keypad.wrongCount, s.keypad.lockoutActive, s.keypad.lockoutLevel]],
      [13, s.singleUse.length > 0 ? s.singleUse.map((u) => [u.date, u.slot, u.firstUseS]) : undefined],
      [14, journal === undefined ? undefined : [journal.seq, journal.bytes]],
      [15, ts.leaseAnchor],
      [16, s.auditAnchoredSeq !== undefined && s.auditAnchoredSeq > 0 ? s.auditAnchoredSeq : undefined],
    ]),
  );
}

function decodeMetaPayload(bytes: Uint8Array): {
  state: DurableState;
  ref: TableRef;
  journal: { seq: number; bytes: Uint8Array } | undefined;
} {
  const m = decode(bytes, { maxBytes: 1 << 20, maxItems: 10_000 });
  if (!(m instanceof Map)) throw new StorageError('CORRUPT', 'meta payload is not a map');
  const get = (k: number): CborValue | undefined => m.get(k);
  const bstr = (k: number, n?: number): Uint8Array => {
    const v = get(k);
    if (!(v instanceof Uint8Array) || (n !== undefined && v.length !== n)) throw new StorageError('CORRUPT', `meta key ${k}`);
    return v;
  };
  const text = (k: number): string => {
    const v = get(k);
    if (typeof v !== 'string') throw new StorageError('CORRUPT', `meta key ${k}`);
    return v;
  };
  const uint = (k: number): number => {
    const v = get(k);
    if (typeof v !== 'number') throw new StorageError('CORRUPT', `meta key ${k}`);
    return v;
  };
  const arr = (k: number): CborValue[] => {
    const v = get(k);
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw new StorageError('CORRUPT', `meta key ${k}`);
    return v;
  };
  const roots = arr(4).map((r) => {
    if (!(r instanceof Uint8Array) || r.length !== 32) throw new StorageError('CORRUPT', 'root key');
    return r;
  });
  const [region, length, sha, journalBytes, journalCount] = arr(6);
  if ((region !== 0 && region !== 1) || typeof length !== 'number' || !(sha instanceof Uint8Array) || typeof journalBytes !== 'number' || typeof journalCount !== 'number')
    throw new StorageError('CORRUPT', 'table ref');
  const headRaw = get(7);
  const signedHead = headRaw === undefined ? null : signedHeadFromCbor(headRaw, 'meta.head');
  const certs: SignedKeyCert[] = arr(10).map((c, i) => keyCertFromCbor(c, `meta.certs[${i}]`));
  const [wrongCount, lockoutActive, level] = arr(12);
  if (typeof wrongCount !== 'number' || typeof lockoutActive !== 'boolean' || (level !== undefined && typeof level !== 'number')) throw new StorageError('CORRUPT', 'keypad');
  // Images written before escalation carry two elements: a held lockout counts as the first.
  const lockoutLevel = level ?? (lockoutActive ? 1 : 0);
  const singleUse = arr(13).map((u) => {
    if (!Array.isArray(u) || typeof u[0] !== 'string' || typeof u[1] !== 'number' || typeof u[2] !== 'number') throw new StorageError('CORRUPT', 'single-use ledger');
    return { date: u[0], slot: u[1], firstUseS: u[2] };
  });
  const j = get(14);
  let journal: { seq: number; bytes: Uint8Array } | undefined;
  if (j !== undefined) {
    if (!Array.isArray(j) || typeof j[0] !== 'number' || !(j[1] instanceof Uint8Array)) throw new StorageError('CORRUPT', 'journal');
    journal = { seq: j[0], bytes: j[1] };
  }
  const lockId = text(1);
  const secrets: LockSecrets = { lockId, lockSecret: bstr(2, 32), deviceSeed: bstr(3, 32), timeZone: text(5) };
  const tableState: TableState = {
    lockId,
    table: emptyTable(), // replaced by the table region's contents once verified
    head: signedHead?.head ?? null,
    versionFloor: uint(8),
    trust: { roots, certs, certFloor: uint(11) },
    newestIssuedAt: uint(9),
    // Absent in images written before the lease anchor existed: 0 fails closed (leases stale).
    leaseAnchor: get(15) === undefined ? 0 : uint(15),
  };
  const anchoredRaw = get(16);
  if (anchoredRaw !== undefined && typeof anchoredRaw !== 'number') throw new StorageError('CORRUPT', 'meta key 16');
  const state: DurableState = { secrets, tableState, signedHead, keypad: { wrongCount, lockoutActive, lockoutLevel }, singleUse };
  if (anchoredRaw !== undefined) state.auditAnchoredSeq = anchoredRaw;
  return {
    state,
    ref: { region, length, sha256: sha, journalBytes, journalCount },
    journal,
  };
}

/** Journal record payload (FLASH.md §4.1): [[op...], [headBytes, signature]]. */
function encodeJournalPayload(ops: readonly Op[], head: SignedHead): Uint8Array {
  return encode([ops.map(opToCbor), signedHeadToCbor(head)]);
}

function decodeJournalPayload(bytes: Uint8Array, maxBytes: number): { ops: Op[]; head: SignedHead } {
  const v = decode(bytes, { maxBytes, maxItems: 4_000_000 });
  if (!Array.isArray(v) || v.length !== 2 || !Array.isArray(v[0])) throw new StorageError('CORRUPT', 'journal payload');
  return { ops: v[0].map((o, i) => opFromCbor(o, `journal.ops[${i}]`)), head: signedHeadFromCbor(v[1] as CborValue, 'journal.head') };
}

/** A record trailer programmed in full: CRC (any value), the marker, then zero padding. */
function trailerLanded(trailer: Uint8Array): boolean {
  if (new DataView(trailer.buffer, trailer.byteOffset).getUint32(4, true) !== COMMIT_MARKER) return false;
  for (let i = 8; i < trailer.length; i++) if (trailer[i] !== 0) return false;
  return true;
}

function padTo(b: Uint8Array, a: number, fill: number): Uint8Array {
  if (b.length % a === 0 && b.length > 0) return b;
  const out = new Uint8Array(Math.max(a, alignUp(b.length, a))).fill(fill);
  out.set(b);
  return out;
}

function writeU64(dv: DataView, off: number, n: number): void {
  dv.setUint32(off, n >>> 0, true);
  dv.setUint32(off + 4, Math.floor(n / 0x1_0000_0000), true);
}

function readU64(dv: DataView, off: number): number {
  return dv.getUint32(off, true) + dv.getUint32(off + 4, true) * 0x1_0000_0000;
}

/** Coalescing: the same event about the same credential for the same reason and method. */
function sameAuditEvent(a: AuditAppend | AuditRecord, b: AuditAppend): boolean {
  return a.event === b.event && a.credId === b.credId && a.reason === b.reason && a.value === b.value;
}
