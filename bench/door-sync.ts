// Door Sync over the real stack: the lock a GATT server on bleno, the phone a GATT client
// on noble, both on virtual HCI controllers of the radio, the authority on SQLite behind
// HTTP. Timed from "scan start" (the sync's first `connecting` event) to "receipt at
// authority" (its `relayed` event, after the receipt and the audit export were POSTed),
// on the radio's model clock and on the wall clock, and compared with the analytical
// airtime lower bound for the bytes that crossed the link.

import { performance } from 'node:perf_hooks';
import { decodeMessage, deriveSeed32, encodeEntry, encodeTable, keyPairFromSeed, toHex } from '../protocol/index';
import { transferAirtimeBound, type LinkProfile } from '../radio/airtime';
import type { SyncEvent } from '../mobile-agent/sync';
import { World } from '../world/index';
import { type DeviceProfileName, type DeviceWork, chargeFor, deviceProfile } from '../firmware-sim/device-profile';
import { AirTap, type DirectionCounts, type LinkSeen } from './air-tap';
import { round } from './util';

export interface ProfileSpec {
  name: string;
  profile: LinkProfile;
}

/** The link profiles of the issue; "worst" is the one radio/bench.ts uses (30 ms, 4 packets per event, 1M). */
export const LINK_PROFILES: ProfileSpec[] = [
  { name: 'phone-typical', profile: { intervalMs: 30, attMtu: 185, dataLength: 251, phy: '1M', packetsPerEvent: 4 } },
  { name: 'fast', profile: { intervalMs: 7.5, attMtu: 247, dataLength: 251, phy: '2M', packetsPerEvent: 0 } },
  { name: 'worst', profile: { intervalMs: 30, attMtu: 23, dataLength: 27, phy: '1M', packetsPerEvent: 4 } },
];

export const CASE_NAMES = ['revocation', 'snapshot-1k', 'snapshot-10k'] as const;
export type CaseName = (typeof CASE_NAMES)[number];

export interface DoorSyncCase {
  profile: string;
  /** Lock device profile the world charged the lock's work at ('host': none). */
  device: DeviceProfileName;
  /** The lock's work during the sync (its device cost model's counters). */
  lockWork?: DeviceWork;
  /** That work priced on the case's device profile (0 on host). */
  lockDeviceMs?: number;
  case: CaseName;
  credentials: number;
  timeScale: number;
  ok: boolean;
  error?: string;
  updateType?: string;
  updateBytes?: number;
  /** Scan start → receipt at authority. */
  modelMs?: number;
  wallMs?: number;
  /** Phases on the model clock (ms from scan start). */
  phasesModelMs?: Record<string, number>;
  /** First to last frame of the update message on the air (model clock). */
  updateOnAirModelMs?: number;
  /** Airtime lower bound for the update message bytes alone, one way, phone → lock. */
  boundUpdateMs?: number;
  /**
   * Sum of the one-way airtime bounds for every locksync frame byte that crossed (update,
   * signed time, audit request, acks phone → lock; hello, time ack, receipt, audit export,
   * acks lock → phone). The dialogue is request/response, so the directions are added.
   */
  boundAllFramesMs?: number;
  /** Headline: scan start → receipt at authority over the update-bytes bound. */
  ratioTotalOverUpdateBound?: number;
  ratioTotalOverAllFramesBound?: number;
  /** Update message on air over its own bound: how close the framing gets to the link's capacity. */
  ratioUpdateOnAirOverBound?: number;
  /** The update's last frame on the air → the lock's next message (its receipt) on the air: the lock's work after the transfer. */
  lastFrameToReceiptModelMs?: number;
  /** The lock's hello read by the phone (`connected`) → the update's first frame on the air, model ms. */
  helloToFirstFrameModelMs?: number;
  link?: LinkSeen | undefined;
  air?: { phoneToLock: DirectionCounts; lockToPhone: DirectionCounts };
  /** Bytes on air (all locksync-carrying PDUs, both directions) / protocol message bytes. */
  overheadOnAirOverMessages?: number;
  /** locksync frame bytes / message bytes (framing alone). */
  overheadFramesOverMessages?: number;
  /** Update bytes / credentials at the lock (snapshots). */
  bytesPerCredential?: number;
  /** Mean encoded table entry at the lock after the sync, and the encoded table size. */
  entryBytes?: number;
  tableBytes?: number;
  skipped?: string;
}

export interface DoorSyncOptions {
  /** Which cases to run per profile. */
  cases?: CaseName[];
  profiles?: string[];
  /** Run the 10,000-credential snapshot on the worst profile time-scaled by this factor (0 = skip). */
  worstLargeTimeScale?: number;
  /** Also run the 1,000-credential world (snapshot + revocation) with the lock on these device profiles. */
  devices?: DeviceProfileName[];
  /** Link profiles the device-profile runs use (default phone-typical and fast). */
  deviceLinkProfiles?: string[];
  log?: (line: string) => void;
}

export const PHONE = 'resident';

/** Phone public keys for the property's residents, generated once per process (the costly part of enrolment). */
const residentKeys: string[] = [];
function residentKeyHex(i: number): string {
  while (residentKeys.length <= i) residentKeys.push(toHex(keyPairFromSeed(deriveSeed32('bench-door-sync', `resident:${residentKeys.length}`)).publicKey));
  return residentKeys[i] as string;
}

export interface Property {
  keyId: number;
  /** The bench phone's user. */
  residentId: number;
  userIds: number[];
}

/** `credentials` phone credentials at the door: the bench phone's user and credentials−1 enrolled residents, one transaction. */
export function buildProperty(world: World, doorName: string, credentials: number): Property {
  const a = world.authority;
  const door = world.door(doorName);
  const { key, resident, userIds } = a.batch(() => {
    const key = a.createKey({ name: 'Residents', doors: [{ doorId: door.doorId, doorcodesEnabled: false }] });
    const resident = a.addUser({ name: 'Bench resident', role: 'resident' });
    a.assignKey(resident.id, key.id);
    const userIds: number[] = [];
    for (let i = 1; i < credentials; i++) {
      const u = a.addUser({ name: `Resident ${i}`, role: 'resident' });
      a.assignKey(u.id, key.id);
      a.enrolUserDevice(u.id, residentKeyHex(i));
      userIds.push(u.id);
    }
    return { key, resident, userIds };
  });
  world.enrolPhone(PHONE, { userId: resident.id });
  const entries = a.buildTable(door.lockId).entries.size;
  if (entries !== credentials) throw new Error(`property built ${entries} credentials at ${doorName}, wanted ${credentials}`);
  return { keyId: key.id, residentId: resident.id, userIds };
}

/**
 * A second door, 20 m from the first, that the phone syncs once before the timed syncs and
 * that is then switched off (it no longer advertises). A running authority and a phone app
 * that has synced before have their code compiled: without it the first timed sync of a
 * world also timed V8 compiling the authority's receipt and audit paths in its fresh
 * thread (10–20 ms) and the phone's. The timed door's lock is untouched: still a first
 * contact at version 0.
 */
export const WARM_UP_DOOR = 'warm-up';

export async function warmUp(world: World, resident: number): Promise<void> {
  const a = world.authority;
  const door = world.door(WARM_UP_DOOR);
  const key = a.createKey({ name: 'Warm-up', doors: [{ doorId: door.doorId, doorcodesEnabled: false }] });
  a.assignKey(resident, key.id);
  world.moveTo(PHONE, WARM_UP_DOOR);
  try {
    const r = await world.sync(PHONE, WARM_UP_DOOR, { attempts: 1 });
    if (!r.receiptDelivered) throw new Error(`warm-up sync: receipt not delivered (${r.outcome})`);
  } finally {
    world.moveTo(PHONE, null);
  }
  await world.powerCut(WARM_UP_DOOR);
}

function linkPolicyOf(p: LinkProfile): NonNullable<NonNullable<Parameters<typeof World.create>[0]['radio']>['linkPolicy']> {
  return { intervalMs: p.intervalMs, packetsPerEvent: p.packetsPerEvent, phy: p.phy, maxDataLength: p.dataLength };
}

async function timedSync(world: World, tap: AirTap, spec: ProfileSpec, c: { case: CaseName; credentials: number; timeScale: number; device: DeviceProfileName }): Promise<DoorSyncCase> {
  const radio = world.radio;
  if (!radio) throw new Error('door-sync bench needs transport ble');
  const door = world.door('door');
  const result: DoorSyncCase = { profile: spec.name, device: c.device, case: c.case, credentials: c.credentials, timeScale: c.timeScale, ok: false };
  const work0 = { ...door.lock.device.total };
  const marks = new Map<string, { modelUs: number; wallMs: number }>();
  const mark = (name: string): void => {
    if (!marks.has(name)) marks.set(name, { modelUs: radio.clock.nowUs(), wallMs: performance.now() });
  };
  world.moveTo(PHONE, 'door');
  tap.reset();
  let updates: Uint8Array[] = [];
  try {
    const r = await world.sync(PHONE, 'door', {
      attempts: 1,
      messageTimeoutMs: 120_000,
      onEvent: (e: SyncEvent) => mark(e.phase),
      // Only looks: the messages go to the lock unchanged (decoded after the timing).
      courierFilter: (messages) => (updates = messages),
    });
    if (!r.receiptDelivered) throw new Error('receipt not delivered to the authority');
    if (r.versionAfter !== world.authority.currentVersion(door.lockId)) throw new Error(`lock at v${r.versionAfter}, authority at v${world.authority.currentVersion(door.lockId)}`);
    result.updateBytes = r.updateBytes;
  } catch (e) {
    result.error = (e as Error).message;
    world.moveTo(PHONE, null);
    return result;
  }
  world.moveTo(PHONE, null);
  const start = marks.get('connecting');
  const end = marks.get('relayed');
  if (!start || !end) {
    result.error = 'sync events missing';
    return result;
  }
  result.ok = true;
  const work1 = door.lock.device.total;
  const lockWork: DeviceWork = { verifies: work1.verifies - work0.verifies, signs: work1.signs - work0.signs, sha256Blocks: work1.sha256Blocks - work0.sha256Blocks, bytesProgrammed: work1.bytesProgrammed - work0.bytesProgrammed, erases: work1.erases - work0.erases };
  result.lockWork = lockWork;
  result.lockDeviceMs = round(chargeFor(deviceProfile(c.device), lockWork).totalMs, 1);
  result.modelMs = round((end.modelUs - start.modelUs) / 1000, 1);
  result.wallMs = round(end.wallMs - start.wallMs, 1);
  result.phasesModelMs = Object.fromEntries([...marks].filter(([k]) => k !== 'transfer').map(([k, v]) => [k, round((v.modelUs - start.modelUs) / 1000, 1)]));
  const updateBytes = result.updateBytes ?? 0;
  // The update message: the phone → lock START whose total is the update's size.
  const update = tap.messages.find((m) => m.direction === 'phoneToLock' && m.total === updateBytes);
  const air = { phoneToLock: { ...tap.counts.phoneToLock }, lockToPhone: { ...tap.counts.lockToPhone } };
  result.air = air;
  result.link = tap.linkSeen();
  const boundUpdateUs = transferAirtimeBound(updateBytes, spec.profile).durationUs;
  const boundAllUs =
    transferAirtimeBound(air.phoneToLock.frameBytes, spec.profile).durationUs + transferAirtimeBound(air.lockToPhone.frameBytes, spec.profile, 'peripheral-to-central').durationUs;
  result.boundUpdateMs = round(boundUpdateUs / 1000, 2);
  result.boundAllFramesMs = round(boundAllUs / 1000, 2);
  result.ratioTotalOverUpdateBound = round((result.modelMs * 1000) / boundUpdateUs, 2);
  result.ratioTotalOverAllFramesBound = round((result.modelMs * 1000) / boundAllUs, 2);
  if (update) {
    result.updateOnAirModelMs = round((update.lastUs - update.firstUs) / 1000, 1);
    // The bound is measured from the first event's anchor to the end of the last PDU; the
    // tap sees delivery times (end of each PDU), so add the first PDU's own airtime back.
    const firstPduUs = transferAirtimeBound(Math.min(updateBytes, spec.profile.attMtu - 3), spec.profile).durationUs;
    result.ratioUpdateOnAirOverBound = round((update.lastUs - update.firstUs + firstPduUs) / boundUpdateUs, 3);
    const answer = tap.messages.find((m) => m.direction === 'lockToPhone' && m.firstUs > update.lastUs);
    if (answer) result.lastFrameToReceiptModelMs = round((answer.firstUs - update.lastUs) / 1000, 1);
    const connected = marks.get('connected');
    if (connected) result.helloToFirstFrameModelMs = round((update.firstUs - connected.modelUs) / 1000, 1);
  }
  const messageBytes = air.phoneToLock.messageBytes + air.lockToPhone.messageBytes;
  result.overheadOnAirOverMessages = round((air.phoneToLock.locksyncOnAirBytes + air.lockToPhone.locksyncOnAirBytes) / messageBytes, 3);
  result.overheadFramesOverMessages = round((air.phoneToLock.frameBytes + air.lockToPhone.frameBytes) / messageBytes, 3);
  const carried = updates[0];
  if (carried) {
    const m = decodeMessage(carried);
    if (m.type === 'delta' || m.type === 'snapshot') {
      const u = m.update;
      result.updateType = u.type === 'delta' ? `delta (${u.ops.length} op${u.ops.length === 1 ? '' : 's'})` : `snapshot (${u.table.entries.size} entries)`;
    }
  }
  const table = door.lock.durable.tableState.table;
  let entryTotal = 0;
  for (const e of table.entries.values()) entryTotal += encodeEntry(e).length;
  result.entryBytes = round(entryTotal / Math.max(1, table.entries.size), 1);
  result.tableBytes = encodeTable(table).length;
  return result;
}

/** One world per (profile, property size): a fresh lock at version 0 receives the snapshot. */
async function runWorld(
  spec: ProfileSpec,
  credentials: number,
  timeScale: number,
  cases: CaseName[],
  log: (line: string) => void,
  device: DeviceProfileName = 'host',
): Promise<DoorSyncCase[]> {
  const out: DoorSyncCase[] = [];
  const t0 = performance.now();
  const world = await World.create({
    seed: `bench-door-sync:${spec.name}:${credentials}`,
    transport: 'ble',
    device,
    doors: [{ name: 'door' }, { name: WARM_UP_DOOR }],
    phones: [PHONE],
    authorityThread: true,
    radio: { linkPolicy: linkPolicyOf(spec.profile), phoneMtu: spec.profile.attMtu, timeScale },
  });
  try {
    const tap = new AirTap(world.radio as NonNullable<World['radio']>);
    const property = buildProperty(world, 'door', credentials);
    await warmUp(world, property.residentId);
    log(`  ${spec.name}${device === 'host' ? '' : ` (lock on ${device})`}: world with ${credentials.toLocaleString('en-US')} credentials ready in ${round((performance.now() - t0) / 1000, 1)} s`);
    const snapshotCase: CaseName = credentials >= 10_000 ? 'snapshot-10k' : 'snapshot-1k';
    const first = await timedSync(world, tap, spec, { case: snapshotCase, credentials, timeScale, device });
    if (cases.includes(snapshotCase)) out.push(first);
    if (!first.ok) throw new Error(`${spec.name} ${snapshotCase}: ${first.error}`);
    if (cases.includes('revocation')) {
      // Revoke one resident's Key: a one-credential delta.
      world.authority.unassignKey(property.userIds[0] as number, property.keyId);
      out.push(await timedSync(world, tap, spec, { case: 'revocation', credentials: credentials - 1, timeScale, device }));
    }
  } finally {
    await world.close();
  }
  return out;
}

export async function benchDoorSync(opts: DoorSyncOptions = {}): Promise<DoorSyncCase[]> {
  const cases = opts.cases ?? ['revocation', 'snapshot-1k', 'snapshot-10k'];
  const log = opts.log ?? (() => undefined);
  const results: DoorSyncCase[] = [];
  for (const spec of LINK_PROFILES.filter((p) => !opts.profiles || opts.profiles.includes(p.name))) {
    if (cases.includes('snapshot-1k') || cases.includes('revocation')) {
      try {
        results.push(...(await runWorld(spec, 1000, 1, cases.filter((c) => c !== 'snapshot-10k'), log)));
      } catch (e) {
        results.push({ profile: spec.name, device: 'host', case: 'snapshot-1k', credentials: 1000, timeScale: 1, ok: false, error: (e as Error).message });
      }
    }
    if (cases.includes('snapshot-10k')) {
      const worst = spec.name === 'worst';
      const timeScale = worst ? (opts.worstLargeTimeScale ?? 8) : 1;
      if (timeScale === 0) {
        results.push({ profile: spec.name, device: 'host', case: 'snapshot-10k', credentials: 10_000, timeScale: 0, ok: false, skipped: 'worst-profile 10,000-credential snapshot skipped (--worst-scale 0)' });
        continue;
      }
      try {
        results.push(...(await runWorld(spec, 10_000, timeScale, ['snapshot-10k'], log)));
      } catch (e) {
        results.push({ profile: spec.name, device: 'host', case: 'snapshot-10k', credentials: 10_000, timeScale, ok: false, error: (e as Error).message });
      }
    }
  }
  // The lock on device profiles: the 1,000-credential world (snapshot, then a revocation).
  for (const device of (opts.devices ?? []).filter((d) => d !== 'host')) {
    for (const spec of LINK_PROFILES.filter((p) => (opts.deviceLinkProfiles ?? ['phone-typical', 'fast']).includes(p.name))) {
      try {
        results.push(...(await runWorld(spec, 1000, 1, ['snapshot-1k', 'revocation'], log, device)));
      } catch (e) {
        results.push({ profile: spec.name, device, case: 'snapshot-1k', credentials: 1000, timeScale: 1, ok: false, error: (e as Error).message });
      }
    }
  }
  for (const r of results) if (r.ok && r.updateBytes !== undefined && r.case !== 'revocation') r.bytesPerCredential = round(r.updateBytes / r.credentials, 1);
  return results;
}
