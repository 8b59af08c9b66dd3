// The scenario runner: builds a World from a scenario's property, runs its timed steps on
// the world clock, checks every expectation, and records a trace (JSON), a timeline
// (HTML) and, on `ble`, btsnoop captures.
//
// Conventions (scenario/README.md): every lock starts provisioned with its compiled table
// as version 1 (the property is built in the provisioning transaction, then an installer's
// commissioning session installs v1 and its receipt reaches the authority); each manager
// step is one authority transaction, so it raises each touched lock's version by one.
// Door ids in the file name the doors; the authority allocates its own lock ids, which
// the runner maps (trace actors use the file's ids).
//
// Determinism: the seed drives the world (authority keys, tokens, lock randomness, radio);
// time is the world's FakeClock, moved only between steps and by `advance`. On `sim` the
// same seed gives the same trace hash. On `ble` the host stacks run in real time; the
// outcomes are the same, but retries and disconnect timing may differ between runs.

import { mkdirSync, mkdtempSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AuthorityError, type Authority, type KeyDoorInput } from '../authority/index';
import { decodeMessage, deriveSeed32, encodeMessage, fromHex, keyPairFromSeed, ProtocolError, toHex, type Message } from '../protocol/index';
import { AgentError } from '../mobile-agent/errors';
import type { AuthorityApi, PendingUpdates } from '../mobile-agent/authority-client';
import type { ConnectOptions, DisconnectInfo, LockConnection, LockConnector } from '../mobile-agent/link';
import type { PhoneCredential } from '../mobile-agent/credential';
import { World, type WorldEnrolment, type WorldEvent } from '../world/index';
import { ProfiledConnector, type PhoneProfile, type ProfileEvent } from '../world/phone-profiles';
import {
  RANGE_METRES,
  resultText,
  subjectLock,
  toScheduleWindow,
  type Action,
  type CourierMode,
  type DailyCodeKind,
  type Expectation,
  type KeyDoor,
  type Point,
  type Scenario,
  type Step,
  type VersionExpectation,
} from './schema';
import { TraceRecorder, traceHash, type Trace } from './trace';
import { renderTimeline } from './timeline';

export type ScenarioTransport = 'sim' | 'ble';

export interface RunOptions {
  /** Overrides the scenario's seed. */
  seed?: number | string;
  transport?: ScenarioTransport;
  /** Where trace.json, timeline.html and captures go (default: a fresh temp directory). */
  outDir?: string;
  /** `ble`: btsnoop capture directory (default: `<outDir>/captures`). */
  captureDir?: string;
  /** Progress lines (the CLI prints them). */
  log?: (line: string) => void;
}

export interface ExpectationResult {
  /** Index of the step in the file. */
  step: number;
  description: string;
  expected: string;
  actual: string;
  ok: boolean;
}

export interface RunResult {
  scenario: string;
  seed: number | string;
  transport: ScenarioTransport;
  passed: boolean;
  expectations: ExpectationResult[];
  trace: Trace;
  traceHash: string;
  /** The command that replays this run exactly. */
  replayCommand: string;
  files: { trace: string; timeline: string; captures: string[] };
}

/** `locksync scenario run FILE --seed N [--transport ble]` */
export function replayCommand(file: string, seed: number | string, transport: ScenarioTransport): string {
  const seedArg = typeof seed === 'number' || /^[A-Za-z0-9._-]+$/.test(seed) ? String(seed) : JSON.stringify(seed);
  return `locksync scenario run ${file} --seed ${seedArg}${transport === 'sim' ? '' : ` --transport ${transport}`}`;
}

// ---------------------------------------------------------------------------

const lockActor = (door: string): string => `lock:${door}`;
const phoneActor = (phone: string): string => `phone:${phone}`;
const AUTHORITY = 'authority';

/** What a step observed, compared against its expectations. */
interface Observed {
  decision?: string;
  syncResult?: string;
  manager?: string;
  /** Unlock: credential ids presented. */
  unlockAttempts?: number;
  /** A refused manager operation's details, in the file's ids. */
  refusal?: { doors: string[]; keys: string[] };
  /** Phones with a profile: GATT errors reported and ms until the lock was first heard. */
  gattErrors?: number;
  discoveryMs?: number | null;
}

/** How one message reads on the timeline. */
function describeMessage(m: Message): { label: string; ok?: boolean } {
  switch (m.type) {
    case 'hello':
      return { label: `hello v${m.version}` };
    case 'delta':
      return { label: m.update.type === 'delta' ? `delta v${m.update.baseVersion}→v${m.update.head.head.version}` : `delta v${m.update.head.head.version}` };
    case 'snapshot':
      return { label: `snapshot v${m.update.head.head.version}` };
    case 'receipt':
      return { label: `receipt v${m.body.version}` };
    case 'error':
      return { label: `error ${m.reason}`, ok: false };
    case 'decision':
      return { label: `decision ${m.reason}`, ok: m.granted };
    case 'unlockRequest':
      return { label: `unlock request #${m.credId}` };
    case 'auditExport':
      return { label: `audit export (${m.records.length})` };
    default:
      return { label: m.type };
  }
}

function describeBytes(bytes: Uint8Array): { label: string; ok?: boolean } {
  try {
    return describeMessage(decodeMessage(bytes));
  } catch (e) {
    if (e instanceof ProtocolError) return { label: `undecodable (${e.reason})`, ok: false };
    throw e;
  }
}

function syncFailureText(e: unknown): string {
  if (e instanceof AgentError) {
    if (e.reason === 'LOCK_NOT_FOUND') return 'out_of_range';
    if (e.reason === 'LINK_LOST' || e.reason === 'TIMEOUT') return 'link_lost';
    if (e.reason === 'REFUSED_BY_LOCK') return `refused:${e.lockError ?? 'UNKNOWN'}`;
    return `failed:${e.reason}`;
  }
  return `failed:${(e as Error)?.message ?? String(e)}`;
}

function distance(a: Point, b: Point): number {
  return Math.hypot(a.x - b.x, a.y - b.y);
}

interface ArmedDrop {
  phone?: string;
  lock?: string;
  atPacket?: number;
  atTimeMs?: number;
}

/**
 * One run. Holds the world, the scenario-id ↔ authority-id maps and what phones and
 * people remember (doorcodes, daily codes, updates a courier carried).
 */
class Run {
  readonly rec: TraceRecorder;
  world!: World;
  readonly users = new Map<string, number>();
  readonly partners = new Map<string, number>();
  readonly keys = new Map<string, number>();
  readonly doorIds = new Map<string, number>();
  /** scenario door id → authority lock id */
  readonly lockIds = new Map<string, string>();
  /** phone → owner ({userId} | {partnerId}) for enrolment of late phones */
  readonly positions = new Map<string, Point | undefined>();
  /** Permanent codes people were told (kept after revocation: people remember). */
  readonly codes = new Map<string, string>();
  readonly dailyCodes = new Map<string, string>();
  readonly courierModes = new Map<string, CourierMode>();
  /** phone → lock → update messages this phone carried to that lock. */
  readonly carried = new Map<string, Map<string, Uint8Array[]>>();
  /** lock → version → update message taking version-1 to version (as issued). */
  readonly issued = new Map<string, Map<number, Uint8Array>>();
  readonly credentials = new Map<string, PhoneCredential>();
  /** scenario grant id → the authority's partner grant (partner-issued access). */
  readonly grants = new Map<string, { partnerId: number; grantId: number }>();
  /**
   * Phones of a partner's own users: their key pair lives in the partner SDK on the phone
   * (no DOOR device); their credentials come from the partner's grant, kept after it ends.
   */
  readonly partnerUserPhones = new Map<string, { grant: string; secretKey: Uint8Array; publicKey: Uint8Array; known: Map<string, { lockId: string; credId: number }> }>();
  readonly versionsSeen = new Map<string, number>();
  readonly armedDrops: ArmedDrop[] = [];
  /** door → versions each uplink poll brought (every version from before+1 to after). */
  readonly uplinkArrivals = new Map<string, number[]>();
  readonly expectations: ExpectationResult[] = [];
  readonly startMs: number;

  constructor(
    readonly scenario: Scenario,
    readonly seed: number | string,
    readonly transport: ScenarioTransport,
    readonly log: (line: string) => void,
  ) {
    this.rec = new TraceRecorder(scenario.name, seed);
    this.startMs = scenario.property.startEpochMs;
  }

  now(): number {
    return this.world.clock.nowMs() - this.startMs;
  }

  door(id: string) {
    return this.world.door(id);
  }

  // -------------------------------------------------------------------------
  // Set-up

  allPhones(): Map<string, Point | undefined> {
    const p = this.scenario.property;
    const phones = new Map<string, Point | undefined>();
    for (const u of p.users) for (const ph of u.phones) phones.set(ph.id, ph.position);
    for (const pa of p.partners) for (const ph of pa.phones) phones.set(ph.id, ph.position);
    for (const g of p.guests) for (const ph of g.phones) phones.set(ph.id, ph.position);
    // Phones of guests invited during the run exist from the start, far from every door.
    for (const s of this.scenario.steps) if (s.action.kind === 'inviteGuest') for (const ph of s.action.phones) if (!phones.has(ph.id)) phones.set(ph.id, undefined);
    for (const s of this.scenario.steps) if (s.action.kind === 'partnerGrant') for (const ph of s.action.phones) if (!phones.has(ph.id)) phones.set(ph.id, undefined);
    return phones;
  }

  /** Profiles of the phones that have one, by phone id. */
  phoneProfiles(): Record<string, PhoneProfile> {
    const p = this.scenario.property;
    const out: Record<string, PhoneProfile> = {};
    const all = [...p.users, ...p.partners, ...p.guests].flatMap((o) => o.phones);
    for (const s of this.scenario.steps) if (s.action.kind === 'inviteGuest') all.push(...s.action.phones);
    for (const ph of all) if (ph.profile !== undefined) out[ph.id] = ph.profile;
    return out;
  }

  async start(captureDir: string | undefined): Promise<void> {
    const sc = this.scenario;
    const p = sc.property;
    const phones = this.allPhones();
    const lateGuestPhones = new Set<string>();
    for (const s of sc.steps) if (s.action.kind === 'inviteGuest' || s.action.kind === 'partnerGrant') for (const ph of s.action.phones) lateGuestPhones.add(ph.id);
    // An unauthorized partner's devices cannot be enrolled: they come on air when it is authorized.
    for (const pa of p.partners) if (!pa.authorized) for (const ph of pa.phones) lateGuestPhones.add(ph.id);
    for (const [id, pos] of phones) this.positions.set(id, lateGuestPhones.has(id) ? undefined : pos);

    const link = sc.link;
    const worldOpts: Parameters<typeof World.create>[0] = {
      seed: `scenario:${String(this.seed)}`,
      transport: this.transport,
      timeZone: p.timeZone,
      startMs: p.startEpochMs,
      lockPolicy: { ...p.lockPolicy },
      doors: p.doors.map((d) => ({ name: d.id, kind: d.kind, connected: d.connected, uplinkIntervalSeconds: d.uplinkIntervalSeconds, ...(d.slowAdvertisingIntervalMs !== undefined ? { advertising: { slowIntervalMs: d.slowAdvertisingIntervalMs } } : {}) })),
      phones: [...phones.keys()],
      phoneProfiles: this.phoneProfiles(),
      reachMetres: RANGE_METRES,
      simMtu: link.mtu,
      ...(sc.device !== undefined ? { device: sc.device } : {}),
      onEvent: (e) => this.onWorldEvent(e),
      setup: ({ authority, doors }) => this.buildProperty(authority, doors),
    };
    if (this.transport === 'ble') {
      const radio: NonNullable<typeof worldOpts.radio> = {
        linkPolicy: { intervalMs: link.intervalMs, packetsPerEvent: link.packetsPerEvent, phy: link.phy, maxDataLength: link.dataLength },
        phoneMtu: link.mtu,
      };
      if (captureDir !== undefined) radio.captureDir = captureDir;
      worldOpts.radio = radio;
    }
    this.world = await World.create(worldOpts);

    // Commissioning: the installer's app installs version 1 and its receipt reaches the authority.
    for (const d of p.doors) this.install(d.id);
    for (const [phone] of phones) this.place(phone, this.positions.get(phone), false);
    this.rememberCodes();
    this.refreshCredentials();
    for (const d of p.doors) this.noteVersion(d.id);
    this.rec.note(0, `${sc.name} — seed ${String(this.seed)}, ${this.transport}, link ${link.profile} (MTU ${link.mtu})`);
  }

  private buildProperty(a: Authority, doors: ReadonlyMap<string, { id: number; lockId: string }>): WorldEnrolment[] {
    const p = this.scenario.property;
    for (const [name, d] of doors) {
      this.doorIds.set(name, d.id);
      this.lockIds.set(name, d.lockId);
    }
    for (const pa of p.partners) {
      // `authorized: false`: known at the property, not authorized (assigning it is refused).
      const partner = pa.authorized ? a.authorizePartner(pa.name).partner : a.registerPartner(pa.name);
      this.partners.set(pa.id, partner.id);
      if (!pa.authorized) continue; // no doors until an authorizePartner step
      for (const door of pa.doors) a.assignPartnerToDoor(partner.id, this.doorId(door));
    }
    for (const k of p.keys) {
      const input: { name: string; doors: KeyDoorInput[]; partnerId?: number } = { name: k.name, doors: k.doors.map((d) => this.keyDoorInput(d)) };
      if (k.partner !== undefined) input.partnerId = this.partnerId(k.partner);
      this.keys.set(k.id, a.createKey(input).id);
    }
    const enrolments: WorldEnrolment[] = [];
    const enrol = (phone: string, owner: { userId: number } | { partnerId: number }): void => {
      const r = a.enrolDeviceWithNewKey(owner, `scenario:${String(this.seed)}:${phone}`);
      enrolments.push({ phone, deviceId: r.deviceId, token: r.token, secretKeyHex: r.credentialFile.secretKey });
    };
    for (const u of p.users) {
      const user = a.addUser({ name: u.name, role: u.role });
      this.users.set(u.id, user.id);
      for (const k of u.keys) a.assignKey(user.id, this.keyId(k.key), { mayShare: k.mayShare });
      this.pinDoorcode(a, u.id);
      for (const uid of u.keycards) a.addKeycard(user.id, uid);
      for (const ph of u.phones) enrol(ph.id, { userId: user.id });
    }
    for (const pa of p.partners) if (pa.authorized) for (const ph of pa.phones) enrol(ph.id, { partnerId: this.partnerId(pa.id) });
    for (const g of p.guests) {
      const input: { name: string; doorIds: number[]; validFrom?: number; validUntil?: number } = { name: g.name, doorIds: g.doors.map((d) => this.doorId(d)) };
      if (g.validFromMs !== undefined) input.validFrom = Math.floor((p.startEpochMs + g.validFromMs) / 1000);
      if (g.validUntilMs !== undefined) input.validUntil = Math.floor((p.startEpochMs + g.validUntilMs) / 1000);
      const { guest, keys } = a.inviteGuest(this.userId(g.invitedBy), input);
      this.users.set(g.id, guest.id);
      this.mapGuestKeys(g.keys, keys);
      for (const ph of g.phones) enrol(ph.id, { userId: guest.id });
    }
    return enrolments;
  }

  /** The file's ids for the per-door Keys DOOR made for a guest (door → key id). */
  private mapGuestKeys(fileKeys: Record<string, string>, made: { id: number; doors: { doorId: number }[] }[]): void {
    for (const [doorRef, keyRef] of Object.entries(fileKeys)) {
      const k = made.find((x) => x.doors.some((d) => d.doorId === this.doorId(doorRef)));
      if (k !== undefined) this.keys.set(keyRef, k.id);
    }
  }

  /** A pinned permanent code replaces the generated one at every door that issues codes. */
  private pinDoorcode(a: Authority, userRef: string): void {
    const spec = this.scenario.property.users.find((u) => u.id === userRef);
    if (spec?.doorcode === undefined) return;
    const userId = this.userId(userRef);
    for (const [doorRef, doorId] of this.doorIds) {
      let has = false;
      try {
        a.doorcodeOf(userId, doorId);
        has = true;
      } catch (e) {
        if (!(e instanceof AuthorityError)) throw e;
      }
      if (has) {
        a.issueDoorcode(userId, doorId, spec.doorcode);
        this.codes.set(`${userRef}@${doorRef}`, spec.doorcode);
      }
    }
  }

  private keyDoorInput(d: KeyDoor): KeyDoorInput {
    const input: KeyDoorInput = { doorId: this.doorId(d.door), doorcodesEnabled: d.doorcodes };
    if (d.schedule !== undefined && d.schedule.length > 0) input.schedule = d.schedule.map(toScheduleWindow);
    return input;
  }

  private install(doorRef: string): void {
    const door = this.door(doorRef);
    const lockId = door.lockId;
    const up = this.world.authority.updatesFor(lockId, door.lock.version);
    const session = door.lock.openSession();
    try {
      for (const hex of up.messages) {
        const bytes = fromHex(hex);
        this.archive(doorRef, bytes);
        for (const out of session.handle(bytes)) {
          const m = decodeMessage(out);
          if (m.type === 'receipt') this.world.authority.acceptReceipt(lockId, toHex(out));
          else if (m.type === 'error') throw new Error(`commissioning ${doorRef}: lock refused v1: ${m.reason} ${m.detail}`);
        }
      }
    } finally {
      session.close();
      door.lock.sessionEnded(session);
    }
  }

  /** Keep each issued update (a courier that fetched at every version would hold these). */
  private archive(doorRef: string, bytes: Uint8Array): void {
    try {
      const m = decodeMessage(bytes);
      if (m.type !== 'delta' && m.type !== 'snapshot') return;
      const version = m.update.head.head.version;
      // One version step each: a delta from the version before, or a snapshot.
      if (m.update.type === 'delta' && m.update.baseVersion !== version - 1) return;
      let byVersion = this.issued.get(doorRef);
      if (!byVersion) this.issued.set(doorRef, (byVersion = new Map()));
      if (!byVersion.has(version)) byVersion.set(version, bytes);
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
    }
  }

  private doorId(ref: string): number {
    const id = this.doorIds.get(ref);
    if (id === undefined) throw new Error(`no door ${ref}`);
    return id;
  }
  private userId(ref: string): number {
    const id = this.users.get(ref);
    if (id === undefined) throw new Error(`no user ${ref}`);
    return id;
  }
  private partnerId(ref: string): number {
    const id = this.partners.get(ref);
    if (id === undefined) throw new Error(`no partner ${ref}`);
    return id;
  }
  private keyId(ref: string): number {
    const id = this.keys.get(ref);
    if (id === undefined) throw new Error(`no key ${ref}`);
    return id;
  }

  /** Ask the authority for every code people hold now; keep the ones they were told before. */
  private rememberCodes(): void {
    const a = this.world.authority;
    for (const [userRef, userId] of this.users) {
      for (const [doorRef, doorId] of this.doorIds) {
        try {
          this.codes.set(`${userRef}@${doorRef}`, a.doorcodeOf(userId, doorId));
        } catch (e) {
          if (!(e instanceof AuthorityError)) throw e;
        }
      }
    }
  }

  // -------------------------------------------------------------------------
  // Movement

  /** Put a phone at a point: it can reach the nearest door within RANGE_METRES. */
  private place(phone: string, at: Point | undefined, trace = true): void {
    this.positions.set(phone, at);
    let near: string | null = null;
    let best = Infinity;
    if (at !== undefined) {
      for (const d of this.scenario.property.doors) {
        const r = distance(at, d.position);
        if (r <= RANGE_METRES && r < best) (best = r), (near = d.id);
      }
    }
    this.world.moveTo(phone, near, near !== null ? best : undefined);
    if (trace) {
      const where = at === undefined ? 'away from every door' : `(${at.x}, ${at.y})${near !== null ? ` — in range of ${near}` : ' — out of range'}`;
      this.rec.note(this.now(), `${phone} moves ${where}`, near !== null ? { near } : undefined);
    }
  }

  // -------------------------------------------------------------------------
  // World events → trace

  private onWorldEvent(e: WorldEvent): void {
    if (this.world === undefined) return;
    const t = this.now();
    if (e.kind === 'uplink') {
      const r = e.result;
      const before = this.versionsSeen.get(e.door) ?? 0;
      const after = this.door(e.door).lock.version;
      if (r.applied > 0 && after > before) {
        const list = this.uplinkArrivals.get(e.door) ?? [];
        for (let v = before + 1; v <= after; v++) list.push(v);
        this.uplinkArrivals.set(e.door, list);
      }
      const label = r.refused.length > 0 ? `uplink: refused ${r.refused.map((x) => x.reason).join(', ')}` : r.applied > 0 ? `uplink: ${r.applied} update(s) applied` : 'uplink poll';
      this.rec.message(t, AUTHORITY, lockActor(e.door), label, { applied: r.applied, timeSet: r.timeSet, auditPosted: r.auditPosted }, r.refused.length === 0);
      this.noteVersion(e.door);
    } else if (e.kind === 'phone') {
      this.notePhoneEvent(t, e.phone, e.door, e.event);
    } else if (e.kind === 'power') {
      if (e.state === 'cut') this.rec.record({ t, kind: 'fault', from: lockActor(e.door), label: 'power cut' });
      else this.rec.note(t, `${e.door} powered on (reboot)`, { lock: e.door });
    }
  }

  /** What the phone's OS did (profiles): discovery, missed connects, GATT errors, intervals. */
  private notePhoneEvent(t: number, phone: string, door: string, ev: ProfileEvent): void {
    const from = phoneActor(phone);
    switch (ev.kind) {
      case 'discovered':
        this.rec.record({ t, kind: 'connection', from, ...(door ? { to: lockActor(door) } : {}), label: `heard the lock after ${(ev.afterMs / 1000).toFixed(1)} s (scan ${ev.scan.windowMs}/${ev.scan.intervalMs} ms, advertising every ${ev.advertisingIntervalMs} ms)`, ok: true, detail: { discoveryMs: ev.afterMs } });
        break;
      case 'notDiscovered':
        this.rec.record({ t, kind: 'connection', from, label: `never heard the lock: ${ev.why}`, ok: false });
        break;
      case 'connectMissed':
        this.rec.record({ t, kind: 'fault', from, label: `connect request missed by the lock (attempt ${ev.attempt})${ev.reportedAfterMs === null ? ', initiating again' : ''}` });
        break;
      case 'gattError':
        this.rec.record({ t, kind: 'connection', from, label: `GATT error ${ev.status} after ${ev.afterMs / 1000} s (attempt ${ev.attempt})`, ok: false, detail: { gattStatus: ev.status } });
        break;
      case 'retry':
        this.rec.note(t, `${phone}'s app retries the connect in ${ev.delayMs} ms (attempt ${ev.attempt})`);
        break;
      case 'interval':
        this.rec.note(t, `${phone}: connection interval ${ev.intervalMs} ms (${ev.phase})`);
        break;
    }
  }

  /** The phone's profile statistics since the last step (phones with a profile). */
  private takeProfileStats(phone: string, obs: Observed): void {
    const c = this.world.phone(phone).connector;
    if (!(c instanceof ProfiledConnector)) return;
    const s = c.takeStats();
    obs.gattErrors = s.gattErrors;
    obs.discoveryMs = s.discoveryMs;
  }

  noteVersion(doorRef: string): void {
    const v = this.door(doorRef).lock.version;
    if (this.versionsSeen.get(doorRef) === v) return;
    this.versionsSeen.set(doorRef, v);
    this.rec.record({ t: this.now(), kind: 'version', from: lockActor(doorRef), label: `v${v}`, detail: { version: v } });
  }

  // -------------------------------------------------------------------------
  // Phone side: a traced connector and a courier-shaped authority

  private lockRefOf(lockId: string): string {
    for (const [ref, id] of this.lockIds) if (id === lockId) return ref;
    return lockId;
  }

  tracedConnector(phone: string): LockConnector {
    const inner = this.world.phone(phone).connector;
    const run = this;
    return {
      transport: inner.transport,
      scan: (t, f) => inner.scan(t, f),
      forget: (id) => inner.forget(id),
      close: () => inner.close(),
      async connect(lockId: string, opts?: ConnectOptions): Promise<LockConnection> {
        const door = run.lockRefOf(lockId);
        let conn: LockConnection;
        try {
          conn = await inner.connect(lockId, opts);
        } catch (e) {
          const label = e instanceof AgentError && e.reason === 'LOCK_NOT_FOUND' ? 'out of range' : 'link lost';
          run.rec.record({ t: run.now(), kind: 'connection', from: phoneActor(phone), to: lockActor(door), label, ok: false, detail: { error: (e as Error).message } });
          throw e;
        }
        run.rec.record({ t: run.now(), kind: 'connection', from: phoneActor(phone), to: lockActor(door), label: 'connected', ok: true, detail: { mtu: conn.mtu } });
        run.fireArmedDrop(phone, door);
        return run.traceConnection(phone, door, conn);
      },
    };
  }

  private fireArmedDrop(phone: string, door: string): void {
    const i = this.armedDrops.findIndex((d) => (d.phone === undefined || d.phone === phone) && (d.lock === undefined || d.lock === door));
    if (i < 0) return;
    const drop = this.armedDrops.splice(i, 1)[0] as ArmedDrop;
    const where = drop.atPacket !== undefined ? `at packet ${drop.atPacket}` : drop.atTimeMs !== undefined ? `at ${drop.atTimeMs} ms` : 'now';
    this.rec.record({ t: this.now(), kind: 'fault', from: phoneActor(phone), to: lockActor(door), label: `link drop ${where}` });
    const lockId = this.door(door).lockId;
    if (this.world.simAir) {
      // The in-process link has no air time: a drop "at time" strikes with the next frame.
      this.world.simAir.dropLink(lockId, drop.atPacket ?? 1);
    } else if (this.world.radio) {
      const controller = this.world.phone(phone).controller as string;
      const opts: Parameters<typeof this.world.radio.faults.dropLink>[0] = { controller };
      if (drop.atPacket !== undefined) opts.afterPackets = drop.atPacket;
      if (drop.atTimeMs !== undefined) opts.atMs = this.world.radio.clock.nowUs() / 1000 + drop.atTimeMs;
      this.world.radio.faults.dropLink(opts);
    }
  }

  private traceConnection(phone: string, door: string, conn: LockConnection): LockConnection {
    const run = this;
    const p = phoneActor(phone);
    const l = lockActor(door);
    let lostRecorded = false;
    const lost = (d: DisconnectInfo | string): void => {
      if (lostRecorded) return;
      lostRecorded = true;
      const description = typeof d === 'string' ? d : d.description;
      const byPhone = typeof d !== 'string' && d.reason === 0x13;
      run.rec.record({ t: run.now(), kind: 'connection', from: p, to: l, label: byPhone ? 'disconnected' : 'link lost', ok: byPhone, detail: { description } });
    };
    const closed = conn.closed.then((d) => {
      lost(d);
      return d;
    });
    return {
      lockId: conn.lockId,
      mtu: conn.mtu,
      get isOpen() {
        return conn.isOpen;
      },
      closed,
      send(m: Message) {
        const d = describeMessage(m);
        run.rec.record({ t: run.now(), kind: 'message', from: p, to: l, label: d.label, detail: { bytes: encodeLength(m) } });
        // A pipelined sync carries its updates as batch items (SPEC §6.5): a courier kept those too.
        if (m.type === 'batch') for (const item of m.messages) run.carry(phone, door, item);
        return conn.send(m);
      },
      sendRaw(bytes: Uint8Array) {
        const d = describeBytes(bytes);
        run.rec.record({ t: run.now(), kind: 'message', from: p, to: l, label: d.label, detail: { bytes: bytes.length } });
        run.carry(phone, door, bytes);
        return conn.sendRaw(bytes);
      },
      drained() {
        return conn.drained();
      },
      async next(timeoutMs: number) {
        try {
          const m = await conn.next(timeoutMs);
          const d = describeMessage(m);
          const ev: Parameters<TraceRecorder['record']>[0] = { t: run.now(), kind: 'message', from: l, to: p, label: d.label, detail: { bytes: encodeLength(m) } };
          if (d.ok !== undefined) ev.ok = d.ok;
          run.rec.record(ev);
          if (m.type === 'decision') run.lastDecision = m.reason;
          if (m.type === 'receipt') run.noteVersion(door);
          return m;
        } catch (e) {
          if (e instanceof AgentError && e.reason === 'LINK_LOST') lost(e.message);
          throw e;
        }
      },
      rssi: () => conn.rssi(),
      async disconnect() {
        await conn.disconnect();
        lost({ reason: 0x13, description: 'disconnected by the phone' });
      },
    };
  }

  lastDecision: string | undefined;

  private carry(phone: string, door: string, bytes: Uint8Array): void {
    try {
      const m = decodeMessage(bytes);
      if (m.type !== 'delta' && m.type !== 'snapshot') return;
    } catch (e) {
      if (e instanceof ProtocolError) return;
      throw e;
    }
    let byLock = this.carried.get(phone);
    if (!byLock) this.carried.set(phone, (byLock = new Map()));
    const list = byLock.get(door) ?? [];
    if (!list.some((b) => toHex(b) === toHex(bytes))) list.push(bytes);
    byLock.set(door, list);
  }

  /**
   * The phone's view of the authority, shaped by its courier mode and traced. A courier
   * is untrusted: whatever it does to updates, only the lock's verdict counts.
   */
  courierAuthority(phone: string): AuthorityApi {
    const inner = this.world.authorityClientFor(phone);
    const run = this;
    const p = phoneActor(phone);
    return {
      async updates(lockId: string, from: number): Promise<PendingUpdates> {
        const door = run.lockRefOf(lockId);
        const mode = run.courierModes.get(phone) ?? 'honest';
        run.rec.message(run.now(), p, AUTHORITY, `GET updates ${door} from v${from}`);
        const real = await inner.updates(lockId, from);
        for (const m of real.messages) run.archive(door, m);
        run.rec.message(run.now(), AUTHORITY, p, real.to > from ? `updates v${from}→v${real.to}` : `up to date (v${real.to})`, { bytes: real.messages.reduce((n, m) => n + m.length, 0) });
        if (mode === 'withhold' || mode === 'withholdUpdates') {
          if (real.messages.length > 0) run.rec.record({ t: run.now(), kind: 'fault', from: p, label: `courier withholds ${real.messages.length} update(s)` });
          return { lockId, from, to: from, messages: [] };
        }
        if (mode === 'duplicate' && real.messages.length > 0) {
          run.rec.record({ t: run.now(), kind: 'fault', from: p, label: 'courier duplicates every update' });
          return { ...real, messages: real.messages.flatMap((m) => [m, m]) };
        }
        if (mode === 'reorder' && real.to > from) {
          const byVersion = run.issued.get(door);
          const steps: Uint8Array[] = [];
          for (let v = real.to; v > from; v--) {
            const m = byVersion?.get(v);
            if (m !== undefined) steps.push(m);
          }
          if (steps.length === real.to - from) {
            run.rec.record({ t: run.now(), kind: 'fault', from: p, label: `courier reorders: v${real.to}…v${from + 1}, newest first` });
            return { ...real, messages: steps };
          }
        }
        return real;
      },
      async signedTime(lockId: string, nonce: Uint8Array): Promise<Uint8Array> {
        if (run.courierModes.get(phone) === 'withhold') {
          run.rec.record({ t: run.now(), kind: 'fault', from: p, label: 'courier withholds signed time' });
          throw new AgentError('AUTHORITY_UNREACHABLE', 'the courier withholds signed time');
        }
        const t = await inner.signedTime(lockId, nonce);
        run.rec.message(run.now(), AUTHORITY, p, 'signed time', { bytes: t.length });
        return t;
      },
      async postReceipt(lockId: string, receipt: Uint8Array) {
        const d = describeBytes(receipt);
        run.rec.message(run.now(), p, AUTHORITY, d.label, { bytes: receipt.length });
        const r = await inner.postReceipt(lockId, receipt);
        run.rec.message(run.now(), AUTHORITY, p, `in force v${r.version}`, undefined, true);
        return r;
      },
      async postAudit(lockId: string, exportMessage: Uint8Array) {
        run.rec.message(run.now(), p, AUTHORITY, 'audit export', { bytes: exportMessage.length });
        return inner.postAudit(lockId, exportMessage);
      },
    };
  }

  /** Replaying courier: first the updates it carried to this lock before, then the real chain. */
  private courierFilter(phone: string, door: string): ((messages: Uint8Array[]) => Uint8Array[]) | undefined {
    if (this.courierModes.get(phone) !== 'replay') return undefined;
    const old = [...(this.carried.get(phone)?.get(door) ?? [])];
    return (messages) => {
      if (old.length > 0) this.rec.record({ t: this.now(), kind: 'fault', from: phoneActor(phone), to: lockActor(door), label: `courier replays ${old.length} old update(s)` });
      return [...old, ...messages];
    };
  }

  /** Apps fetch their credentials after every change; a deleted device keeps what it had. */
  private refreshCredentials(): void {
    for (const [name, phone] of this.world.phones) {
      if (phone.deviceId === undefined) continue;
      try {
        this.credentials.set(name, this.world.credentialOf(name));
      } catch (e) {
        if (!(e instanceof AuthorityError)) throw e;
      }
    }
  }

  /** What the phone's app holds: the authority's current grants plus every grant it had before. */
  private credentialFor(phone: string): PhoneCredential {
    const partnerUser = this.partnerUserPhones.get(phone);
    if (partnerUser !== undefined) {
      const g = this.grants.get(partnerUser.grant);
      if (g !== undefined) {
        try {
          for (const c of this.world.authority.partnerGrant(g.partnerId, g.grantId).credentials) partnerUser.known.set(`${c.lockId}/${c.credId}`, c);
        } catch (e) {
          if (!(e instanceof AuthorityError)) throw e; // the grant ended: the SDK keeps what it had
        }
      }
      return { holder: 'partner', secretKey: partnerUser.secretKey, publicKey: partnerUser.publicKey, credentials: [...partnerUser.known.values()] };
    }
    try {
      const c = this.world.credentialOf(phone);
      this.credentials.set(phone, c);
      return c;
    } catch (e) {
      // The device was deleted (its user removed): the app still holds its key.
      const kept = this.credentials.get(phone);
      if (kept === undefined) throw e;
      return kept;
    }
  }

  // -------------------------------------------------------------------------
  // Steps

  async step(step: Step): Promise<Observed> {
    const a = step.action;
    const t = this.now();
    const obs: Observed = {};
    const label = step.note !== undefined ? `steps[${step.index}] ${a.kind} — ${step.note}` : `steps[${step.index}] ${a.kind}`;
    this.rec.note(t, label, { step: step.index, at: step.at });
    this.log(`  [${formatClock(this.world.clock.nowMs(), this.scenario.property.timeZone)}] steps[${step.index}] ${describeAction(a)}`);
    switch (a.kind) {
      case 'move':
        this.place(a.phone, a.to);
        break;
      case 'walkAway':
        this.place(a.phone, undefined);
        break;
      case 'sync':
        obs.syncResult = await this.sync(a.phone, a.lock);
        this.takeProfileStats(a.phone, obs);
        break;
      case 'unlock':
        Object.assign(obs, await this.unlock(a.phone, a.lock));
        this.takeProfileStats(a.phone, obs);
        break;
      case 'appState':
        this.world.setAppState(a.phone, a.state);
        this.rec.note(t, `${a.phone}'s app goes to the ${a.state}`);
        break;
      case 'keypad': {
        const code = this.codeFor(a);
        obs.decision = this.decide(a.lock, `keypad ${code}`, () => this.door(a.lock).lock.enterCode(code));
        break;
      }
      case 'card': {
        const uid = a.input.by === 'uid' ? a.input.uid : this.cardOf(a.input.user);
        obs.decision = this.decide(a.lock, `card ${uid}`, () => this.door(a.lock).lock.presentCard(fromHex(uid)));
        break;
      }
      case 'advance':
        await this.world.advance(a.seconds * 1000);
        break;
      case 'clockDrift':
        this.world.setDrift(a.lock, a.ppm);
        this.rec.record({ t, kind: 'fault', from: lockActor(a.lock), label: `clock drift ${a.ppm} ppm` });
        break;
      case 'powerCut':
        if (a.atFlashOp !== undefined) this.rec.record({ t, kind: 'fault', from: lockActor(a.lock), label: `power cut armed at flash op ${a.atFlashOp}` });
        await this.world.powerCut(a.lock, a.atFlashOp);
        break;
      case 'reboot':
        await this.world.reboot(a.lock);
        break;
      case 'check':
        break;
      case 'linkDrop': {
        const drop: ArmedDrop = {};
        if (a.phone !== undefined) drop.phone = a.phone;
        if (a.lock !== undefined) drop.lock = a.lock;
        if (a.atPacket !== undefined) drop.atPacket = a.atPacket;
        if (a.atTimeMs !== undefined) drop.atTimeMs = a.atTimeMs;
        this.armedDrops.push(drop);
        this.rec.note(t, `link drop armed${a.phone ? ` for ${a.phone}` : ''}${a.lock ? ` at ${a.lock}` : ''}`);
        break;
      }
      case 'packetErrorRate': {
        const from = a.phone !== undefined ? phoneActor(a.phone) : a.lock !== undefined ? lockActor(a.lock) : undefined;
        const ev: Parameters<TraceRecorder['record']>[0] = { t, kind: 'fault', label: `packet error rate ${a.rate}` };
        if (from !== undefined) ev.from = from;
        this.rec.record(ev);
        if (this.world.radio) {
          const controller = a.phone !== undefined ? this.world.phone(a.phone).controller : a.lock !== undefined ? this.door(a.lock).controller : undefined;
          this.world.radio.faults.setPacketErrorRate(a.rate, controller);
        } else if (a.rate >= 1) {
          // The in-process link retransmits every frame (as the link layer does); only a
          // total loss changes an outcome: nothing gets through, as out of range.
          for (const d of this.scenario.property.doors) if (a.lock === undefined || a.lock === d.id) this.world.simAir?.setInRange(this.door(d.id).lockId, false);
        } else if (a.rate === 0) {
          for (const d of this.scenario.property.doors) if (!this.door(d.id).poweredOff) this.world.simAir?.setInRange(this.door(d.id).lockId, true);
        }
        break;
      }
      case 'courier':
        this.courierModes.set(a.phone, a.mode);
        this.rec.note(t, `${a.phone}'s courier is now ${a.mode}`);
        break;
      default:
        obs.manager = this.manager(a);
        if (this.lastRefusal !== undefined) obs.refusal = this.lastRefusal;
    }
    for (const d of this.scenario.property.doors) this.noteVersion(d.id);
    return obs;
  }

  private decide(door: string, what: string, fn: () => { reason: string; granted: boolean } | undefined): string {
    const t = this.now();
    if (this.world.isPoweredOff(door)) {
      this.rec.note(t, `${what}: ${door} has no power`);
      return 'NO_POWER';
    }
    const r = fn();
    if (r === undefined) {
      this.rec.note(t, `${what}: no decision`);
      return 'NONE';
    }
    this.rec.record({ t, kind: 'decision', from: lockActor(door), label: r.reason, ok: r.granted, detail: { input: what } });
    return r.reason;
  }

  private codeFor(a: Extract<Action, { kind: 'keypad' }>): string {
    const i = a.input;
    if (i.by === 'code') return i.code;
    if (i.by === 'codeOf') {
      const c = this.codes.get(`${i.user}@${i.door}`);
      if (c === undefined) throw new Error(`${i.user} was never given a doorcode for ${i.door}`);
      return c;
    }
    const c = this.dailyCodes.get(dailyKey(a.lock, i.slot, i.codeKind));
    if (c === undefined) throw new Error(`no ${i.codeKind} code slot ${i.slot} was issued for ${a.lock}`);
    return c;
  }

  private cardOf(user: string): string {
    const spec = this.scenario.property.users.find((u) => u.id === user);
    const uid = spec?.keycards[0];
    if (uid === undefined) throw new Error(`${user} has no keycard`);
    return uid;
  }

  private async sync(phone: string, door: string): Promise<string> {
    const extra: Parameters<World['sync']>[2] = {
      connector: this.tracedConnector(phone),
      authority: this.courierAuthority(phone),
      // One tap of Sync is one attempt: the app reports failure and the person taps again.
      attempts: 1,
    };
    const filter = this.courierFilter(phone, door);
    if (filter) extra.courierFilter = filter;
    this.rec.note(this.now(), `${phone} taps Sync at ${door}`);
    try {
      const r = await this.world.sync(phone, door, extra);
      this.rec.note(this.now(), `sync ok: v${r.versionBefore} → v${r.versionAfter}${r.receiptDelivered ? ', receipt delivered' : ''}`);
      return 'ok';
    } catch (e) {
      const text = syncFailureText(e);
      this.rec.note(this.now(), `sync failed: ${text}`, { error: (e as Error).message });
      return text;
    } finally {
      this.noteVersion(door);
    }
  }

  private async unlock(phone: string, door: string): Promise<Observed> {
    const obs: Observed = {};
    this.lastDecision = undefined;
    let credential: PhoneCredential;
    try {
      credential = this.credentialFor(phone);
    } catch (e) {
      this.rec.note(this.now(), `${phone} holds no credential: ${(e as Error).message}`);
      obs.decision = 'NO_CREDENTIAL';
      return obs;
    }
    const lockId = this.door(door).lockId;
    if (!credential.credentials.some((c) => c.lockId === lockId)) {
      this.rec.note(this.now(), `${phone} holds nothing for ${door}`);
      obs.decision = 'NO_CREDENTIAL';
      return obs;
    }
    try {
      const r = await this.world.unlock(phone, door, { connector: this.tracedConnector(phone), authority: this.courierAuthority(phone), credential });
      obs.decision = r.reason;
      obs.unlockAttempts = r.attempts.length;
      obs.syncResult = 'ok';
    } catch (e) {
      if (this.lastDecision !== undefined) obs.decision = this.lastDecision;
      obs.syncResult = syncFailureText(e);
      this.rec.note(this.now(), `unlock: ${(e as Error).message}`);
    }
    if (obs.decision !== undefined) this.rec.record({ t: this.now(), kind: 'decision', from: lockActor(door), label: obs.decision, ok: obs.decision === 'GRANTED', detail: { input: `phone ${phone}` } });
    this.noteVersion(door);
    return obs;
  }

  // -------------------------------------------------------------------------
  // Manager operations: each one transaction at the authority

  private manager(a: Action): string {
    const auth = this.world.authority;
    const before = new Map([...this.lockIds].map(([ref, id]) => [ref, auth.currentVersion(id)]));
    let result = 'ok';
    let detail: Record<string, unknown> = {};
    let refusal: Observed['refusal'];
    try {
      detail = auth.batch(() => this.managerOp(auth, a)) ?? {};
    } catch (e) {
      if (!(e instanceof AuthorityError)) throw e;
      result = `refused:${e.code}`;
      detail = { message: e.message };
      refusal = this.refusalInFileIds(e.details);
      if (e.details !== undefined) detail.details = refusal;
    }
    this.lastRefusal = refusal;
    const versions: Record<string, string> = {};
    for (const [ref, id] of this.lockIds) {
      const v = auth.currentVersion(id);
      if (v !== before.get(ref)) {
        versions[ref] = `v${before.get(ref)}→v${v}`;
        // What a courier fetching at every version would have been handed.
        for (const hex of auth.updatesFor(id, v - 1).messages) this.archive(ref, fromHex(hex));
      }
    }
    this.rememberCodes();
    this.refreshCredentials();
    this.rec.record({ t: this.now(), kind: 'manager', from: AUTHORITY, label: describeAction(a), ok: result === 'ok', detail: { ...detail, result, versions } });
    return result;
  }

  lastRefusal: Observed['refusal'];

  /** The doors and Keys a refusal names (authority ids in `details`), as the file's ids. */
  private refusalInFileIds(details: Record<string, unknown> | undefined): { doors: string[]; keys: string[] } {
    const doors = new Set<string>();
    const keys = new Set<string>();
    const doorRef = (id: unknown): string | undefined => [...this.doorIds].find(([, v]) => v === id)?.[0];
    const keyRef = (id: unknown): string | undefined => [...this.keys].find(([, v]) => v === id)?.[0];
    const add = (set: Set<string>, ref: string | undefined, id: unknown): void => void set.add(ref ?? `#${String(id)}`);
    for (const d of Array.isArray(details?.doors) ? (details.doors as unknown[]) : []) {
      const id = typeof d === 'object' && d !== null ? (d as { doorId?: unknown }).doorId : d;
      add(doors, doorRef(id), id);
      const k = typeof d === 'object' && d !== null ? (d as { keyId?: unknown }).keyId : undefined;
      if (k !== undefined) add(keys, keyRef(k), k);
    }
    for (const k of Array.isArray(details?.keys) ? (details.keys as unknown[]) : []) {
      const id = typeof k === 'object' && k !== null ? (k as { keyId?: unknown; id?: unknown }).keyId ?? (k as { id?: unknown }).id : k;
      add(keys, keyRef(id), id);
    }
    return { doors: [...doors].sort(), keys: [...keys].sort() };
  }

  private managerOp(auth: Authority, a: Action): Record<string, unknown> | void {
    switch (a.kind) {
      case 'assignPartner':
        auth.assignPartnerToDoor(this.partnerId(a.partner), this.doorId(a.door));
        return;
      case 'unassignPartner':
        auth.unassignPartnerFromDoor(this.partnerId(a.partner), this.doorId(a.door));
        return;
      case 'deletePartnerKey':
        auth.deleteKey(this.keyId(a.key));
        return;
      case 'terminatePartner':
        auth.terminatePartner(this.partnerId(a.partner));
        return;
      case 'authorizePartner': {
        const spec = this.scenario.property.partners.find((pa) => pa.id === a.partner);
        if (spec === undefined) throw new Error(`no partner ${a.partner}`);
        const { partner } = auth.authorizePartner(spec.name);
        // Its devices are enrolled now (they could not be before), and come on air.
        if (!spec.authorized && partner.devices.length === 0)
          for (const ph of spec.phones) {
            this.world.enrolPhone(ph.id, { partnerId: partner.id });
            this.place(ph.id, ph.position);
          }
        return { partnerId: partner.id };
      }
      case 'assignKey':
        auth.assignKey(this.userId(a.user), this.keyId(a.key), { mayShare: a.mayShare });
        this.pinDoorcode(auth, a.user);
        return;
      case 'revokeKey':
        auth.unassignKey(this.userId(a.user), this.keyId(a.key));
        return;
      case 'editKey': {
        const keyId = this.keyId(a.key);
        const current = auth.key(keyId).doors;
        const removed = new Set(a.removeDoors.map((d) => this.doorId(d)));
        const doors: KeyDoorInput[] = current
          .filter((d) => !removed.has(d.doorId))
          .map((d) => {
            const input: KeyDoorInput = { doorId: d.doorId, doorcodesEnabled: d.doorcodesEnabled };
            if (d.schedule !== undefined) input.schedule = d.schedule;
            return input;
          });
        for (const add of a.addDoors) doors.push(this.keyDoorInput(add));
        for (const [doorRef, enabled] of Object.entries(a.doorcodes)) {
          const d = doors.find((x) => x.doorId === this.doorId(doorRef));
          if (d) d.doorcodesEnabled = enabled;
        }
        for (const [doorRef, windows] of Object.entries(a.schedule)) {
          const d = doors.find((x) => x.doorId === this.doorId(doorRef));
          if (d) d.schedule = windows.length > 0 ? windows.map(toScheduleWindow) : null;
        }
        const edit: { doors: KeyDoorInput[]; partnerId?: number } = { doors };
        if (a.partner !== undefined) edit.partnerId = this.partnerId(a.partner);
        auth.updateKey(keyId, edit);
        return;
      }
      case 'createKey': {
        const input: { name: string; doors: KeyDoorInput[]; partnerId?: number } = { name: a.name, doors: a.doors.map((d) => this.keyDoorInput(d)) };
        if (a.partner !== undefined) input.partnerId = this.partnerId(a.partner);
        const k = auth.createKey(input);
        this.keys.set(a.key, k.id);
        return { keyId: k.id };
      }
      case 'setMayShare':
        auth.setMayShare(this.userId(a.user), this.keyId(a.key), a.mayShare);
        return;
      case 'revokeGuest':
        auth.revokeGuest(this.userId(a.guest));
        return;
      case 'grantDoor': {
        // Managers assign Keys, never single doors: a Key holding only that door, assigned.
        const doorName = this.scenario.property.doors.find((d) => d.id === a.door)?.name ?? a.door;
        const k = auth.createKey({ name: `${doorName} only`, doors: [{ doorId: this.doorId(a.door), doorcodesEnabled: a.doorcodes }] });
        this.keys.set(a.key, k.id);
        auth.assignKey(this.userId(a.user), k.id, { mayShare: a.mayShare });
        this.pinDoorcode(auth, a.user);
        return { keyId: k.id };
      }
      case 'removeResident':
        auth.removeUser(this.userId(a.user));
        return;
      case 'inviteGuest': {
        const input: { name: string; doorIds: number[]; validFrom?: number; validUntil?: number } = { name: a.name, doorIds: a.doors.map((d) => this.doorId(d)) };
        const start = this.scenario.property.startEpochMs;
        if (a.validFromMs !== undefined) input.validFrom = Math.floor((start + a.validFromMs) / 1000);
        if (a.validUntilMs !== undefined) input.validUntil = Math.floor((start + a.validUntilMs) / 1000);
        const { guest, keys } = auth.inviteGuest(this.userId(a.by), input);
        this.users.set(a.guest, guest.id);
        this.mapGuestKeys(a.keys, keys);
        for (const ph of a.phones) {
          this.world.enrolPhone(ph.id, { userId: guest.id });
          this.place(ph.id, ph.position);
        }
        return { guestId: guest.id };
      }
      case 'partnerGrant': {
        // The partner calls its API (POST /v1/partner/grants) for each of its user's phones.
        const partnerId = this.partnerId(a.partner);
        const ids: number[] = [];
        for (const ph of a.phones) {
          const kp = keyPairFromSeed(deriveSeed32(`scenario:${String(this.seed)}`, `partner-user:${ph.id}`));
          const input: Parameters<Authority['grantPartnerAccess']>[1] = { subject: a.grant, role: a.role, publicKey: toHex(kp.publicKey) };
          if (a.key !== undefined) input.keyId = this.keyId(a.key);
          if (a.doors.length > 0) input.doorIds = a.doors.map((d) => this.doorId(d));
          const g = auth.grantPartnerAccess(partnerId, input);
          ids.push(g.id);
          this.grants.set(`${a.grant}/${ph.id}`, { partnerId, grantId: g.id });
          this.partnerUserPhones.set(ph.id, { grant: `${a.grant}/${ph.id}`, secretKey: kp.secretKey, publicKey: kp.publicKey, known: new Map() });
          this.place(ph.id, ph.position);
        }
        return { grantIds: ids };
      }
      case 'revokePartnerGrant': {
        const partnerId = this.partnerId(a.partner);
        for (const [ref, g] of this.grants) if (ref.startsWith(`${a.grant}/`)) auth.revokePartnerGrant(partnerId, g.grantId);
        return;
      }
      case 'issueDailyCode': {
        const r = auth.issueDailyCode(this.doorId(a.door), { kind: a.codeKind });
        this.dailyCodes.set(dailyKey(a.door, a.slot, a.codeKind), r.code);
        return { date: r.date, slot: r.slot };
      }
      case 'rotateAuthorityKey': {
        const r = auth.rotateSigningKey();
        return { serial: r.serial, keyId: r.keyId };
      }
      default:
        throw new Error(`not a manager action: ${a.kind}`);
    }
  }

  // -------------------------------------------------------------------------
  // Expectations

  check(step: Step, obs: Observed): void {
    const e = step.expect;
    if (e === undefined) return;
    const subject = subjectLock(step);
    const add = (field: keyof Expectation, description: string, expected: string, actual: string, ok: boolean): void => {
      const r: ExpectationResult = { step: step.index, description, expected, actual, ok };
      this.expectations.push(r);
      this.rec.record({ t: this.now(), kind: 'expectation', label: `steps[${step.index}] ${String(field)}`, ok, detail: { step: step.index, expected, actual } });
      this.log(`    ${ok ? 'PASS' : 'FAIL'} ${description}: expected ${expected}, got ${actual}`);
    };
    if (e.decision !== undefined) add('decision', 'decision', e.decision, obs.decision ?? 'none', obs.decision === e.decision);
    if (e.syncResult !== undefined) {
      const want = resultText(e.syncResult);
      add('syncResult', 'sync result', want, obs.syncResult ?? 'none', obs.syncResult === want);
    }
    if (e.manager !== undefined) {
      const want = resultText(e.manager);
      add('manager', 'manager operation', want, obs.manager ?? 'none', obs.manager === want);
    }
    if (e.versionAtLock !== undefined) {
      const door = subject as string;
      const v = this.door(door).lock.version;
      const { op, value } = e.versionAtLock;
      const ok = op === '==' ? v === value : op === '>=' ? v >= value : op === '<=' ? v <= value : op === '>' ? v > value : v < value;
      add('versionAtLock', `version at ${door}`, op === '==' ? `v${value}` : `${op} v${value}`, `v${v}`, ok);
    }
    if (e.pendingRevocations !== undefined) {
      const door = subject as string;
      const n = this.world.authority.pendingRevocations({ doorId: this.doorId(door) }).length;
      add('pendingRevocations', `revocations pending at ${door}`, String(e.pendingRevocations), String(n), n === e.pendingRevocations);
    }
    const compare = (x: number, { op, value }: VersionExpectation): boolean => (op === '==' ? x === value : op === '>=' ? x >= value : op === '<=' ? x <= value : op === '>' ? x > value : x < value);
    if (e.gattErrors !== undefined) {
      const want = e.gattErrors.op === '==' ? String(e.gattErrors.value) : `${e.gattErrors.op} ${e.gattErrors.value}`;
      add('gattErrors', 'GATT errors the phone reported', want, String(obs.gattErrors ?? 'none'), obs.gattErrors !== undefined && compare(obs.gattErrors, e.gattErrors));
    }
    if (e.discoverySeconds !== undefined) {
      const { op, value } = e.discoverySeconds;
      const s = obs.discoveryMs === undefined || obs.discoveryMs === null ? undefined : obs.discoveryMs / 1000;
      const ok = s !== undefined && compare(s, e.discoverySeconds);
      add('discoverySeconds', 'seconds until the phone heard the lock', `${op} ${value}`, s === undefined ? 'never' : s.toFixed(1), ok);
    }
    if (e.authorityInForce !== undefined) {
      const { door, version } = e.authorityInForce;
      const lockId = this.door(door).lockId;
      const row = this.world.authority.listLocks().find((l) => l.lockId === lockId);
      const v = row?.versionInForce ?? 0;
      add('authorityInForce', `authority: version in force at ${door}`, `>= v${version}`, `v${v}`, v >= version);
    }
    for (const g of e.grants ?? []) {
      const n = this.grantsOf(g.phone, g.door);
      add('grants', `credentials the authority issues ${g.phone} for ${g.door}`, String(g.count), String(n), n === g.count);
    }
    if (e.unlockAttempts !== undefined) {
      const n = obs.unlockAttempts;
      add('unlockAttempts', 'credential ids presented', String(e.unlockAttempts), n === undefined ? 'none' : String(n), n === e.unlockAttempts);
    }
    if (e.refusal !== undefined) {
      const got = obs.refusal;
      for (const f of ['doors', 'keys'] as const) {
        const want = e.refusal[f];
        if (want === undefined) continue;
        const w = [...want].sort().join(', ');
        const a = got === undefined ? 'no refusal details' : got[f].join(', ');
        add('refusal', `refusal names ${f}`, `[${w}]`, got === undefined ? a : `[${a}]`, got !== undefined && a === w);
      }
    }
    if (e.arrivals !== undefined) {
      const { door, version } = e.arrivals;
      const counts = this.arrivalsOf(door, version);
      for (const f of ['applied', 'receipts', 'uplink'] as const) {
        const want = e.arrivals[f];
        if (want === undefined) continue;
        const what = f === 'applied' ? `times ${door} committed v${version}` : f === 'receipts' ? `receipts for v${version} of ${door} at the authority` : `uplink polls that brought v${version} to ${door}`;
        add('arrivals', what, String(want), String(counts[f]), counts[f] === want);
      }
    }
  }

  /** Credential ids the authority issues the phone's device now for that door's lock. */
  private grantsOf(phone: string, door: string): number {
    const deviceId = this.world.phone(phone).deviceId;
    if (deviceId === undefined) return 0;
    const lockId = this.door(door).lockId;
    try {
      return this.world.authority.credentialsForDevice(deviceId).filter((g) => g.lockId === lockId).length;
    } catch (e) {
      if (e instanceof AuthorityError && e.code === 'UNKNOWN_DEVICE') return 0; // the device went with its user
      throw e;
    }
  }

  /**
   * How often a version arrived: the lock's own audit log (updateApplied records naming it),
   * the receipts the authority stored for it, and the uplink polls that brought it.
   */
  private arrivalsOf(door: string, version: number): { applied: number; receipts: number; uplink: number } {
    const d = this.door(door);
    let applied = 0;
    // The commit writes its updateApplied record with the table (read back without flushing).
    for (const rec of d.lock.storage.auditRecords()) if (rec.event === 'updateApplied' && rec.value === version) applied++;
    const receipts = (this.world.authority.db.prepare('SELECT COUNT(*) AS n FROM receipts WHERE lock_id = ? AND version = ?').get(d.lockId, version) as { n: number }).n;
    const uplink = (this.uplinkArrivals.get(door) ?? []).filter((v) => v === version).length;
    return { applied, receipts, uplink };
  }
}

/** Encoded size of a message (protocol encoding is deterministic, so re-encoding is exact). */
function encodeLength(m: Message): number {
  return encodeMessage(m).length;
}

function dailyKey(door: string, slot: number, kind: DailyCodeKind): string {
  return `${door}/${kind}/${slot}`;
}

function formatClock(epochMs: number, tz: string): string {
  return new Intl.DateTimeFormat('en-GB', { timeZone: tz, weekday: 'short', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).format(new Date(epochMs));
}

/** One line for a step's action (log, trace, timeline). */
export function describeAction(a: Action): string {
  switch (a.kind) {
    case 'assignPartner':
      return `assign partner ${a.partner} to ${a.door}`;
    case 'unassignPartner':
      return `unassign partner ${a.partner} from ${a.door}`;
    case 'deletePartnerKey':
      return `delete partner key ${a.key}`;
    case 'terminatePartner':
      return `terminate partner ${a.partner}`;
    case 'authorizePartner':
      return `authorize partner ${a.partner}`;
    case 'partnerGrant':
      return `partner ${a.partner} grants ${a.grant} (${a.role}) ${a.key !== undefined ? `on key ${a.key}` : `at ${a.doors.join(', ')}`}`;
    case 'revokePartnerGrant':
      return `partner ${a.partner} revokes ${a.grant}`;
    case 'assignKey':
      return `assign key ${a.key} to ${a.user}${a.mayShare ? ' (may share)' : ''}`;
    case 'revokeKey':
      return `revoke key ${a.key} from ${a.user}`;
    case 'editKey':
      return `edit key ${a.key}${a.partner !== undefined ? ` (assign partner ${a.partner})` : ''}`;
    case 'removeResident':
      return `remove resident ${a.user}`;
    case 'inviteGuest':
      return `${a.by} invites guest ${a.guest} to ${a.doors.join(', ')}`;
    case 'issueDailyCode':
      return `issue ${a.codeKind} code slot ${a.slot} at ${a.door}`;
    case 'rotateAuthorityKey':
      return 'rotate the authority signing key';
    case 'createKey':
      return `create key ${a.key}${a.partner !== undefined ? ` (partner key of ${a.partner})` : ''} over ${a.doors.map((d) => d.door).join(', ')}`;
    case 'setMayShare':
      return `turn May Share Key ${a.mayShare ? 'on' : 'off'} for ${a.user} on ${a.key}`;
    case 'revokeGuest':
      return `revoke guest ${a.guest}`;
    case 'grantDoor':
      return `grant ${a.user} the single door ${a.door} (one-door key ${a.key})`;
    case 'move':
      return `move ${a.phone} to (${a.to.x}, ${a.to.y})`;
    case 'walkAway':
      return `${a.phone} walks away`;
    case 'sync':
      return `${a.phone} syncs ${a.lock}`;
    case 'unlock':
      return `${a.phone} unlocks ${a.lock}`;
    case 'keypad':
      return `keypad at ${a.lock} (${a.input.by === 'code' ? a.input.code : a.input.by === 'codeOf' ? `code of ${a.input.user}` : `${a.input.codeKind} slot ${a.input.slot}`})`;
    case 'card':
      return `card at ${a.lock} (${a.input.by === 'uid' ? a.input.uid : `card of ${a.input.user}`})`;
    case 'advance':
      return `advance ${a.seconds} s`;
    case 'clockDrift':
      return `clock drift ${a.ppm} ppm at ${a.lock}`;
    case 'powerCut':
      return `power cut at ${a.lock}${a.atFlashOp !== undefined ? ` (armed at flash op ${a.atFlashOp})` : ''}`;
    case 'reboot':
      return `reboot ${a.lock}`;
    case 'check':
      return 'check';
    case 'linkDrop':
      return `arm link drop${a.phone ? ` ${a.phone}` : ''}${a.lock ? ` ↔ ${a.lock}` : ''}${a.atPacket !== undefined ? ` at packet ${a.atPacket}` : ''}${a.atTimeMs !== undefined ? ` at ${a.atTimeMs} ms` : ''}`;
    case 'packetErrorRate':
      return `packet error rate ${a.rate}${a.phone ? ` for ${a.phone}` : ''}${a.lock ? ` at ${a.lock}` : ''}`;
    case 'courier':
      return `${a.phone} courier mode ${a.mode}`;
    case 'appState':
      return `${a.phone}'s app to the ${a.state}`;
  }
}

// ---------------------------------------------------------------------------

/**
 * Run a loaded scenario. Writes `trace.json` and `timeline.html` into `outDir` (and
 * btsnoop captures on `ble`); never throws for a failed expectation — `passed` says.
 */
export async function runScenario(scenario: Scenario, opts: RunOptions = {}): Promise<RunResult> {
  const seed = opts.seed ?? scenario.seed;
  const transport = opts.transport ?? 'sim';
  const log = opts.log ?? (() => undefined);
  const outDir = resolve(opts.outDir ?? mkdtempSync(join(tmpdir(), 'locksync-scenario-')));
  mkdirSync(outDir, { recursive: true });
  const captureDir = transport === 'ble' ? resolve(opts.captureDir ?? join(outDir, 'captures')) : undefined;
  if (captureDir !== undefined) mkdirSync(captureDir, { recursive: true });
  const file = scenario.file ?? `${scenario.name}.yaml`;
  const replay = replayCommand(file, seed, transport);

  const run = new Run(scenario, seed, transport, log);
  let failure: Error | undefined;
  try {
    await run.start(captureDir);
    for (const step of scenario.steps) {
      const target = scenario.property.startEpochMs + step.atMs;
      const now = run.world.clock.nowMs();
      if (target > now) await run.world.advance(target - now);
      const obs = await run.step(step);
      run.check(step, obs);
    }
  } catch (e) {
    failure = e as Error;
    const t = run.world ? run.now() : 0;
    run.rec.note(t, `run aborted: ${failure.message}`);
    log(`  ERROR ${failure.stack ?? failure.message}`);
  } finally {
    await run.world?.close().catch(() => undefined);
  }

  const trace = run.rec.trace();
  const hash = traceHash(trace);
  const passed = failure === undefined && run.expectations.every((x) => x.ok);
  const tracePath = join(outDir, 'trace.json');
  const timelinePath = join(outDir, 'timeline.html');
  writeFileSync(tracePath, JSON.stringify(trace, null, 2));
  const doorNames = Object.fromEntries(scenario.property.doors.map((d) => [lockActor(d.id), d.name]));
  writeFileSync(timelinePath, renderTimeline(trace, { hash, replayCommand: replay, names: doorNames }));
  const captures = captureDir !== undefined && existsSync(captureDir) ? readdirSync(captureDir).filter((f) => f.endsWith('.btsnoop') || f.endsWith('.log')).sort().map((f) => join(captureDir, f)) : [];
  if (failure !== undefined) {
    run.expectations.push({ step: -1, description: 'run completes', expected: 'no error', actual: failure.message, ok: false });
  }
  return { scenario: scenario.name, seed, transport, passed, expectations: run.expectations, trace, traceHash: hash, replayCommand: replay, files: { trace: tracePath, timeline: timelinePath, captures } };
}

/**
 * A scenario's world as its run begins — property built, version 1 installed at every door,
 * phones placed — without playing any step (the live panel serves it). Doorcodes people were
 * told come back as `user@door`. The caller closes the world.
 */
export async function startScenarioWorld(scenario: Scenario, opts: { seed?: number | string } = {}): Promise<{ world: World; codes: Record<string, string> }> {
  const run = new Run(scenario, opts.seed ?? scenario.seed, 'sim', () => undefined);
  await run.start(undefined);
  return { world: run.world, codes: Object.fromEntries(run.codes) };
}
