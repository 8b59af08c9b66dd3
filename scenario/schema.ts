// The scenario file format, as the runner consumes it after loading and validation.
//
// A scenario file (YAML or JSON) describes a property (doors, Keys, people, partners,
// guests, lock policy), a BLE link profile and a list of timed steps, each with one
// action and optional expectations. `loadScenario` (load.ts) turns the file into a
// `Scenario`: every default applied, every time resolved to milliseconds since the
// scenario start, every cross-reference checked. The runner never needs to re-validate.
//
// Names follow the seed articles (DOOR OS vocabulary): a Key is a set of doors with
// per-door doorcode and schedule settings; managers assign Keys, never single doors;
// partners are assigned per door or through a partner Key; guests chain to the resident
// who shared. Door ids are lock ids (protocol LOCK_ID_PATTERN), e.g. "lk-0001".

import type { DecisionReason, ErrorName, ScheduleWindow } from '../protocol';
import type { DeviceProfileName } from '../firmware-sim/device-profile';
import type { PhoneProfile } from '../world/phone-profiles';

export const DAY_NAMES = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type DayName = (typeof DAY_NAMES)[number];

/** A weekly window as written in a file: `{ days: [mon, tue], start: "08:00", end: "18:00" }`. */
export interface WindowSpec {
  days: DayName[];
  /** "HH:MM", local time of the property. */
  start: string;
  /** "HH:MM" after start; "24:00" = end of day. Windows never cross midnight (Matter). */
  end: string;
}

/** Per-door settings of a Key. */
export interface KeyDoor {
  door: string;
  /** "Enable Doorcodes": each holder gets a unique permanent doorcode for this door. */
  doorcodes: boolean;
  /** Key Schedule; absent = any time. At most 8 windows on any one day. */
  schedule?: WindowSpec[];
}

export interface DoorSpec {
  /** Lock id, e.g. "lk-0001". */
  id: string;
  name: string;
  kind: 'communal' | 'private';
  /** Internet-connected doors receive updates over their uplink; others only by Door Sync. */
  connected: boolean;
  /** Connected doors: seconds between uplink polls (the "within minutes" of the seeds). */
  uplinkIntervalSeconds: number;
  /** Metres; phones within RANGE_METRES can connect. */
  position: Point;
  /** After 30 s of 20 ms advertising following a trigger, the lock advertises at this (one of Apple's intervals). */
  slowAdvertisingIntervalMs?: number;
}

export interface KeySpec {
  id: string;
  name: string;
  /** Set for a partner Key: the partner cannot be removed from it, only the Key deleted. */
  partner?: string;
  doors: KeyDoor[];
}

export interface Point {
  x: number;
  y: number;
}

export interface PhoneSpec {
  id: string;
  /** Initial position; absent = far away from every door. */
  position?: Point;
  /** Phone behaviour profile (world/phone-profiles.ts); absent = an idealised phone. */
  profile?: PhoneProfile;
}

export interface KeyAssignment {
  key: string;
  /** "May Share Key": the holder may invite guests to this Key's doors. */
  mayShare: boolean;
}

export interface UserSpec {
  id: string;
  name: string;
  role: 'resident' | 'staff';
  keys: KeyAssignment[];
  phones: PhoneSpec[];
  /** Pinned permanent doorcode (7 digits); absent = the authority generates one per door. */
  doorcode?: string;
  /** Keycard UIDs, lowercase hex (4, 7 or 10 bytes). */
  keycards: string[];
}

export interface PartnerSpec {
  id: string;
  name: string;
  /** Authorized at the property (DOOR's integrations team did it). */
  authorized: boolean;
  /** Per-door assignment (doors the partner was picked for in "Edit door"). */
  doors: string[];
  /** The partner's devices (phones running the partner SDK). */
  phones: PhoneSpec[];
}

export interface GuestSpec {
  id: string;
  name: string;
  /** The resident who shared (must hold a Key with mayShare covering every door). */
  invitedBy: string;
  doors: string[];
  /**
   * door id → id of the per-door guest Key DOOR creates for it (the file names it, default
   * `<guest>-<door>`): later steps refer to it (e.g. an editKey the authority must refuse).
   */
  keys: Record<string, string>;
  phones: PhoneSpec[];
  /** Scenario-relative times, resolved to ms since start; absent = open-ended. */
  validFromMs?: number;
  validUntilMs?: number;
}

export interface LockPolicySpec {
  wrongCodeLimit: number;
  lockoutSeconds: number;
  /** Freshness lease for partner and guest credentials (LEASE flag); 0 = off. */
  leaseSeconds: number;
  relockSeconds: number;
  dailyCodeSlots: number;
}

export interface PropertySpec {
  name: string;
  /** IANA zone the locks evaluate schedules and daily codes in. */
  timeZone: string;
  /** Wall-clock start of the scenario in the property zone, as written ("2025-03-10T09:00:00"). */
  start: string;
  /** The same instant as Unix milliseconds (resolved with the time zone). */
  startEpochMs: number;
  doors: DoorSpec[];
  keys: KeySpec[];
  users: UserSpec[];
  partners: PartnerSpec[];
  guests: GuestSpec[];
  lockPolicy: LockPolicySpec;
}

export const LINK_PROFILE_NAMES = ['phone-typical', 'fast', 'worst'] as const;
export type LinkProfileName = (typeof LINK_PROFILE_NAMES)[number];

/** Connection parameters (the radio's LinkProfile: `mtu` is its `attMtu`). */
export interface LinkParams {
  intervalMs: number;
  mtu: number;
  dataLength: number;
  phy: '1M' | '2M';
  /** Packets per direction per connection event; 0 = limited by the interval only. */
  packetsPerEvent: number;
}

export interface LinkSpec extends LinkParams {
  /** The named profile it came from, or 'custom'. */
  profile: LinkProfileName | 'custom';
}

/**
 * Parameters behind the named profiles. phone-typical: what iOS/Android centrals give a
 * peripheral in practice (30 ms interval, MTU 185, DLE, few packets per event); fast: the
 * best a modern phone negotiates; worst: a BLE 4.0 phone with no DLE and MTU 23. If the
 * radio component publishes its own table, the runner should use that one for these names.
 */
export const LINK_PROFILES: Readonly<Record<LinkProfileName, Readonly<LinkParams>>> = Object.freeze({
  'phone-typical': Object.freeze({ intervalMs: 30, mtu: 185, dataLength: 251, phy: '1M', packetsPerEvent: 4 }),
  fast: Object.freeze({ intervalMs: 7.5, mtu: 517, dataLength: 251, phy: '2M', packetsPerEvent: 0 }),
  worst: Object.freeze({ intervalMs: 50, mtu: 23, dataLength: 27, phy: '1M', packetsPerEvent: 1 }),
});

/** Bluetooth range the runner applies to phone–lock distance (seed: "~3 meters"). */
export const RANGE_METRES = 3;

// ---------------------------------------------------------------------------
// Steps. Each step has exactly one action; `kind` names it, the rest is its payload.

export type ManagerAction =
  | { kind: 'assignPartner'; partner: string; door: string }
  | { kind: 'unassignPartner'; partner: string; door: string }
  | { kind: 'deletePartnerKey'; key: string }
  | { kind: 'terminatePartner'; partner: string }
  /** DOOR's integrations team authorizes a partner listed with `authorized: false`. */
  | { kind: 'authorizePartner'; partner: string }
  /**
   * A partner grants one of its own users (phone(s) new from this step) access through its
   * API: on a partner key (all its doors, or `doors` of it) or on doors it is assigned to.
   */
  | { kind: 'partnerGrant'; partner: string; grant: string; role: 'resident' | 'guest' | 'courier'; key?: string; doors: string[]; phones: PhoneSpec[] }
  | { kind: 'revokePartnerGrant'; partner: string; grant: string }
  | { kind: 'assignKey'; user: string; key: string; mayShare: boolean }
  | { kind: 'revokeKey'; user: string; key: string }
  | {
      kind: 'editKey';
      key: string;
      removeDoors: string[];
      addDoors: KeyDoor[];
      /** door id → doorcodes enabled */
      doorcodes: Record<string, boolean>;
      /** door id → new schedule ([] = any time) */
      schedule: Record<string, WindowSpec[]>;
      /** Attach a partner: the Key becomes a partner key (refused if it has another one). */
      partner?: string;
    }
  | { kind: 'createKey'; key: string; name: string; doors: KeyDoor[]; partner?: string }
  | { kind: 'setMayShare'; user: string; key: string; mayShare: boolean }
  | { kind: 'revokeGuest'; guest: string }
  /** "Create a Key that contains only that door and assign it" (seeds: no single-door grants). */
  | { kind: 'grantDoor'; user: string; door: string; key: string; doorcodes: boolean; mayShare: boolean }
  | { kind: 'removeResident'; user: string }
  | {
      kind: 'inviteGuest';
      guest: string;
      name: string;
      by: string;
      doors: string[];
      /** door id → guest Key id (see GuestSpec.keys). */
      keys: Record<string, string>;
      phones: PhoneSpec[];
      validFromMs?: number;
      validUntilMs?: number;
    }
  | { kind: 'issueDailyCode'; door: string; slot: number; codeKind: DailyCodeKind }
  | { kind: 'rotateAuthorityKey' };

export type DailyCodeKind = 'daily' | 'dailySingleUse';

export type KeypadInput =
  | { by: 'code'; code: string }
  | { by: 'codeOf'; user: string; door: string }
  | { by: 'dailyCode'; slot: number; codeKind: DailyCodeKind };

export type CardInput = { by: 'uid'; uid: string } | { by: 'cardOf'; user: string };

export type CourierMode = 'honest' | 'withhold' | 'withholdUpdates' | 'duplicate' | 'reorder' | 'replay';

export type Action =
  | ManagerAction
  | { kind: 'move'; phone: string; to: Point }
  | { kind: 'walkAway'; phone: string }
  | { kind: 'sync'; phone: string; lock: string }
  | { kind: 'unlock'; phone: string; lock: string }
  | { kind: 'keypad'; lock: string; input: KeypadInput }
  | { kind: 'card'; lock: string; input: CardInput }
  | { kind: 'advance'; seconds: number }
  | { kind: 'clockDrift'; lock: string; ppm: number }
  | { kind: 'powerCut'; lock: string; atFlashOp?: number }
  | { kind: 'reboot'; lock: string }
  | { kind: 'check' }
  // faults: armed for the next connection(s) matching phone/lock (absent = any)
  | { kind: 'linkDrop'; phone?: string; lock?: string; atPacket?: number; atTimeMs?: number }
  | { kind: 'packetErrorRate'; rate: number; phone?: string; lock?: string }
  | { kind: 'courier'; phone: string; mode: CourierMode }
  | { kind: 'appState'; phone: string; state: 'foreground' | 'background' };

export type ActionKind = Action['kind'];

export const MANAGER_ACTIONS = [
  'assignPartner',
  'unassignPartner',
  'deletePartnerKey',
  'terminatePartner',
  'authorizePartner',
  'partnerGrant',
  'revokePartnerGrant',
  'assignKey',
  'revokeKey',
  'editKey',
  'removeResident',
  'inviteGuest',
  'issueDailyCode',
  'rotateAuthorityKey',
  'createKey',
  'setMayShare',
  'revokeGuest',
  'grantDoor',
] as const satisfies readonly ActionKind[];

export const ACTION_KINDS = [
  ...MANAGER_ACTIONS,
  'move',
  'walkAway',
  'sync',
  'unlock',
  'keypad',
  'card',
  'advance',
  'clockDrift',
  'powerCut',
  'reboot',
  'check',
  'linkDrop',
  'packetErrorRate',
  'courier',
  'appState',
] as const satisfies readonly ActionKind[];

// ---------------------------------------------------------------------------
// Expectations

export type SyncResult = 'ok' | 'out_of_range' | 'link_lost' | { refused: ErrorName };
export type ManagerResult = 'ok' | { refused: string };

export interface VersionExpectation {
  op: '==' | '>=' | '<=' | '>' | '<';
  value: number;
}

export interface Expectation {
  /** Access decision at the step's lock (unlock, keypad, card). */
  decision?: DecisionReason;
  /** Outcome of the Door Sync the step ran (sync; unlock reports its passive sync). */
  syncResult?: SyncResult;
  /** Outcome of a manager operation at the authority. */
  manager?: ManagerResult;
  /** The table version the lock holds after the step. */
  versionAtLock?: VersionExpectation;
  /** Revocations the authority knows are not yet in force at the lock (no receipt yet). */
  pendingRevocations?: number;
  /** The authority has a receipt proving `version` (or later) is in force at `door`. */
  authorityInForce?: { door: string; version: number };
  /**
   * Credential ids the authority issues the phone for the door now (its app may still keep
   * older ones): `count: 0` = the phone holds no credential for that door.
   */
  grants?: GrantsExpectation[];
  /** Unlock: how many credential ids the phone presented before the decision. */
  unlockAttempts?: number;
  /**
   * A refused manager operation's details, in the file's ids: the doors and Keys it names
   * (PARTNER_STILL_ASSIGNED lists both; SHARING_NOT_ALLOWED the doors). Compared as sets.
   */
  refusal?: { doors?: string[]; keys?: string[] };
  /** How often version `version` arrived at `door` (counted, not inferred from the version). */
  arrivals?: ArrivalsExpectation;
  /** GATT errors (Android's 133) the phone's OS reported to the app during the step. */
  gattErrors?: VersionExpectation;
  /** Seconds from the step until the phone's scanner first heard the lock (phones with a profile). */
  discoverySeconds?: VersionExpectation;
  /** Lock the lock-scoped expectations refer to; defaults to the step's lock or door. */
  lock?: string;
}

export interface GrantsExpectation {
  phone: string;
  door: string;
  count: number;
}

export interface ArrivalsExpectation {
  door: string;
  version: number;
  /** Times the lock committed it (its own audit log: updateApplied records for the version). */
  applied?: number;
  /** Receipts for it the authority accepted (relayed by phones or posted by the uplink). */
  receipts?: number;
  /** Uplink polls that brought it (connected doors). */
  uplink?: number;
}

export interface Step {
  /** Index in the file's steps array. */
  index: number;
  /** `at` as written ("+5s", "00:10:00", "2025-03-10T18:00:00"). */
  at: string;
  /** Resolved: milliseconds since scenario start. Non-decreasing across steps. */
  atMs: number;
  action: Action;
  expect?: Expectation;
  /** One line shown in the timeline and the run log. */
  note?: string;
}

export interface Scenario {
  name: string;
  description: string;
  /** Default seed; `--seed` overrides it. */
  seed: number | string;
  /** Where it comes from: seed article(s) and/or field failure reports. */
  source: string[];
  property: PropertySpec;
  link: LinkSpec;
  /** Lock device profile the locks' work is charged at (absent: host, no model). */
  device?: DeviceProfileName;
  steps: Step[];
  /** The file it was loaded from, when loaded from a file. */
  file?: string;
}

/** The lock a step's lock-scoped expectations refer to, if any. */
export function subjectLock(step: Step): string | undefined {
  if (step.expect?.lock !== undefined) return step.expect.lock;
  const a = step.action;
  if ('lock' in a && typeof a.lock === 'string') return a.lock;
  if ('door' in a && typeof a.door === 'string') return a.door;
  return undefined;
}

/** Protocol schedule window (days bitmask Mon=bit0, minutes of local day). */
export function toScheduleWindow(w: WindowSpec): ScheduleWindow {
  let days = 0;
  for (const d of w.days) days |= 1 << DAY_NAMES.indexOf(d);
  return { days, start: hhmmToMinutes(w.start), end: hhmmToMinutes(w.end) };
}

export function hhmmToMinutes(s: string): number {
  const m = /^(\d{2}):(\d{2})$/.exec(s);
  if (m === null) throw new Error(`not HH:MM: ${s}`);
  return Number(m[1]) * 60 + Number(m[2]);
}

/** "refused:BAD_SIGNATURE" style text for a SyncResult / ManagerResult. */
export function resultText(r: SyncResult | ManagerResult): string {
  return typeof r === 'string' ? r : `refused:${r.refused}`;
}
