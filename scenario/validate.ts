// Strict validation of a parsed scenario document into a `Scenario`.
//
// Every problem becomes an issue located by a path such as
// `steps[3].unlock.phone`; all issues are collected (not just the first) and thrown
// together as one ScenarioError, so a QA engineer fixes a file in one pass. Unknown
// fields are errors (with a "did you mean"), because a misspelt `expect` key that is
// silently ignored is a scenario that cannot fail.

import { DECISION_REASONS, ERROR_CODES, LIMITS, LOCK_ID_PATTERN, type DecisionReason, type ErrorName } from '../protocol';
import {
  ACTION_KINDS,
  DAY_NAMES,
  LINK_PROFILES,
  LINK_PROFILE_NAMES,
  MANAGER_ACTIONS,
  type Action,
  type CourierMode,
  type DailyCodeKind,
  type DayName,
  type DoorSpec,
  type ArrivalsExpectation,
  type Expectation,
  type GrantsExpectation,
  type GuestSpec,
  type KeyAssignment,
  type KeyDoor,
  type KeySpec,
  type LinkSpec,
  type LockPolicySpec,
  type ManagerResult,
  type PartnerSpec,
  type PhoneSpec,
  type Point,
  type PropertySpec,
  type Scenario,
  type Step,
  type SyncResult,
  type UserSpec,
  type VersionExpectation,
  type WindowSpec,
} from './schema';
import { isValidTimeZone, parseIsoInZone, resolveAt } from './time';
import { DEVICE_PROFILE_NAMES } from '../firmware-sim/device-profile';
import { APP_STATES, CONNECTION_PRIORITIES, DEFAULT_PROFILE, makeProfile, PHONE_OSES, type PhoneOs, type PhoneProfile } from '../world/phone-profiles';
import { APPLE_SLOW_INTERVALS_MS } from '../firmware-sim/advertising';

export interface ScenarioIssue {
  /** JSON-pointer-like location: `steps[3].unlock.phone`, `property.keys[0].doors[1].schedule`. */
  path: string;
  message: string;
  /** 1-based line in the source text, when known. */
  line?: number;
}

/** A scenario that cannot be loaded; `issues` lists every problem found. */
export class ScenarioError extends Error {
  override readonly name = 'ScenarioError';
  constructor(
    readonly issues: readonly ScenarioIssue[],
    readonly file?: string,
  ) {
    super(ScenarioError.format(issues, file));
  }

  /** Path of the first issue. */
  get path(): string {
    return this.issues[0]?.path ?? '';
  }

  static format(issues: readonly ScenarioIssue[], file?: string): string {
    const head = `${file ?? 'scenario'}: ${issues.length} problem${issues.length === 1 ? '' : 's'}`;
    const lines = issues.map((i) => `  ${i.path}${i.line !== undefined ? ` (line ${i.line})` : ''}: ${i.message}`);
    return [head, ...lines].join('\n');
  }
}

export const DEFAULT_SEED = 1;
export const DEFAULT_START = '2025-03-10T09:00:00'; // a Monday
export const DEFAULT_UPLINK_INTERVAL_SECONDS = 60;
export const DEFAULT_LOCK_POLICY_SPEC: Readonly<LockPolicySpec> = Object.freeze({
  wrongCodeLimit: 5,
  lockoutSeconds: 60,
  leaseSeconds: 0,
  relockSeconds: 5,
  dailyCodeSlots: 16,
});
/** Where a phone is put by `move: {to: <door id>}`: this far in front of the door. */
export const AT_DOOR_METRES = 1;

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const HHMM_RE = /^(\d{2}):(\d{2})$/;
const HEX_UID_RE = /^(?:[0-9a-f]{8}|[0-9a-f]{14}|[0-9a-f]{20})$/;

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  return String(v);
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0] as number;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j] as number;
      dp[j] = Math.min((dp[j] as number) + 1, (dp[j - 1] as number) + 1, prev + (a[i - 1]?.toLowerCase() === b[j - 1]?.toLowerCase() ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length] as number;
}

function suggest(word: string, options: readonly string[]): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const o of options) {
    const d = editDistance(word, o);
    if (d < bestD) [best, bestD] = [o, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? ` (did you mean "${best}"?)` : '';
}

function knownList(names: Iterable<string>): string {
  const all = [...names];
  if (all.length === 0) return 'none defined';
  return all.length > 12 ? `${all.slice(0, 12).join(', ')}, … ${all.length - 12} more` : all.join(', ');
}

/** Collects issues while reading an untyped document. Readers return undefined on error. */
class Reader {
  readonly issues: ScenarioIssue[] = [];

  fail(path: string, message: string): undefined {
    this.issues.push({ path, message });
    return undefined;
  }

  obj(v: unknown, path: string, allowed: readonly string[]): Obj | undefined {
    if (!isObj(v)) return this.fail(path, `expected an object, got ${show(v)}`);
    for (const k of Object.keys(v))
      if (!allowed.includes(k)) this.fail(`${path}.${k}`.replace(/^\./, ''), `unknown field "${k}"${suggest(k, allowed)} (allowed: ${allowed.join(', ')})`);
    return v;
  }

  str(o: Obj, key: string, path: string, opts: { required?: boolean; re?: RegExp; what?: string } = {}): string | undefined {
    const p = join(path, key);
    const v = o[key];
    if (v === undefined || v === null) return opts.required === false ? undefined : this.fail(p, `required ${opts.what ?? 'string'} is missing`);
    if (typeof v !== 'string') return this.fail(p, `expected a string, got ${show(v)}`);
    if (opts.re !== undefined && !opts.re.test(v)) return this.fail(p, `${show(v)} is not a valid ${opts.what ?? 'value'}`);
    return v;
  }

  optStr(o: Obj, key: string, path: string, opts: { re?: RegExp; what?: string } = {}): string | undefined {
    return this.str(o, key, path, { ...opts, required: false });
  }

  num(o: Obj, key: string, path: string, opts: { required?: boolean; min?: number; max?: number; int?: boolean } = {}): number | undefined {
    const p = join(path, key);
    const v = o[key];
    if (v === undefined || v === null) return opts.required === false ? undefined : this.fail(p, 'required number is missing');
    if (typeof v !== 'number' || !Number.isFinite(v)) return this.fail(p, `expected a number, got ${show(v)}`);
    if (opts.int === true && !Number.isInteger(v)) return this.fail(p, `expected a whole number, got ${v}`);
    if (opts.min !== undefined && v < opts.min) return this.fail(p, `${v} is below the minimum ${opts.min}`);
    if (opts.max !== undefined && v > opts.max) return this.fail(p, `${v} is above the maximum ${opts.max}`);
    return v;
  }

  bool(o: Obj, key: string, path: string, dflt?: boolean): boolean | undefined {
    const p = join(path, key);
    const v = o[key];
    if (v === undefined || v === null) return dflt === undefined ? this.fail(p, 'required true/false is missing') : dflt;
    if (typeof v !== 'boolean') return this.fail(p, `expected true or false, got ${show(v)}`);
    return v;
  }

  oneOf<T extends string>(o: Obj, key: string, path: string, options: readonly T[], dflt?: T): T | undefined {
    const p = join(path, key);
    const v = o[key];
    if (v === undefined || v === null) return dflt === undefined ? this.fail(p, `required; one of ${options.join(', ')}`) : dflt;
    if (typeof v !== 'string' || !(options as readonly string[]).includes(v))
      return this.fail(p, `${show(v)} is not one of ${options.join(', ')}${typeof v === 'string' ? suggest(v, options) : ''}`);
    return v as T;
  }

  list(o: Obj, key: string, path: string, required = false): unknown[] | undefined {
    const p = join(path, key);
    const v = o[key];
    if (v === undefined || v === null) return required ? this.fail(p, 'required list is missing') : [];
    if (!Array.isArray(v)) return this.fail(p, `expected a list, got ${show(v)}`);
    return v;
  }
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/** Known names, for cross-reference checks with helpful messages. */
class Names {
  constructor(
    readonly what: string,
    readonly set = new Set<string>(),
  ) {}
  check(r: Reader, path: string, id: string | undefined): id is string {
    if (id === undefined) return false;
    if (this.set.has(id)) return true;
    r.fail(path, `unknown ${this.what} "${id}"${suggest(id, [...this.set])} (known: ${knownList(this.set)})`);
    return false;
  }
}

// ---------------------------------------------------------------------------

const TOP_FIELDS = ['name', 'description', 'seed', 'source', 'property', 'link', 'device', 'steps'] as const;
const PROPERTY_FIELDS = ['name', 'timeZone', 'start', 'doors', 'keys', 'users', 'partners', 'guests', 'lockPolicy'] as const;

export function validateScenario(doc: unknown, file?: string): Scenario {
  const r = new Reader();
  const top = r.obj(doc, '', TOP_FIELDS);
  if (top === undefined) throw new ScenarioError(r.issues, file);

  const name = r.str(top, 'name', '', { re: /^\S.{0,199}$/, what: 'name (1–200 characters)' });
  const description = r.str(top, 'description', '') ?? '';
  let seed: number | string = DEFAULT_SEED;
  if (top['seed'] !== undefined) {
    const s = top['seed'];
    if ((typeof s === 'number' && Number.isSafeInteger(s) && s >= 0) || (typeof s === 'string' && /^[\w.:-]{1,64}$/.test(s))) seed = s;
    else r.fail('seed', `expected a non-negative integer or a short word, got ${show(s)}`);
  }
  let source: string[] = [];
  if (typeof top['source'] === 'string') source = [top['source']];
  else if (Array.isArray(top['source']) && top['source'].length > 0 && top['source'].every((x) => typeof x === 'string' && x.trim() !== ''))
    source = top['source'] as string[];
  else r.fail('source', 'required: the seed article(s) or field failure this scenario is drawn from (a string or a list of strings)');

  const property = readProperty(r, top['property']);
  const link = readLink(r, top['link']);
  // Lock device profile (firmware-sim/device-profile.ts); absent = host (no model).
  const device = r.oneOf(top, 'device', '', DEVICE_PROFILE_NAMES, 'host');
  const steps = property === undefined ? [] : readSteps(r, top['steps'], property);

  if (r.issues.length > 0 || name === undefined || property === undefined || link === undefined) throw new ScenarioError(r.issues, file);
  const sc: Scenario = { name, description, seed, source, property, link, steps };
  if (device !== undefined && device !== 'host') sc.device = device;
  if (file !== undefined) sc.file = file;
  return sc;
}

// ---------------------------------------------------------------------------
// Property

interface Model {
  prop: PropertySpec;
  doors: Names;
  keys: Names;
  users: Names;
  partners: Names;
  guests: Names;
  phones: Names;
  allIds: Set<string>;
  /** Keys that are partner keys (from the file or made so by a step). */
  partnerKeys: Set<string>;
}

function readProperty(r: Reader, v: unknown): PropertySpec | undefined {
  const o = r.obj(v, 'property', PROPERTY_FIELDS);
  if (o === undefined) return undefined;
  const name = r.str(o, 'name', 'property', { required: false }) ?? 'property';
  let timeZone = r.str(o, 'timeZone', 'property', { what: 'IANA time zone' });
  if (timeZone !== undefined && !isValidTimeZone(timeZone)) {
    r.fail('property.timeZone', `"${timeZone}" is not an IANA time zone (e.g. America/New_York, Europe/Paris)`);
    timeZone = undefined;
  }
  const start = r.str(o, 'start', 'property', { required: false }) ?? DEFAULT_START;
  let startEpochMs: number | undefined;
  if (timeZone !== undefined) {
    if (/(Z|[+-]\d{2}:\d{2})$/.test(start)) r.fail('property.start', `"${start}" must be local wall-clock time in ${timeZone}, without Z or an offset`);
    else {
      const e = parseIsoInZone(start, timeZone);
      if (typeof e === 'string') r.fail('property.start', e);
      else startEpochMs = e;
    }
  }

  const allIds = new Set<string>();
  const phoneNames = new Names('phone');
  const uniqueId = (path: string, id: string | undefined): id is string => {
    if (id === undefined) return false;
    if (allIds.has(id)) {
      r.fail(path, `duplicate id "${id}" (ids of doors, keys, users, partners and guests share one namespace)`);
      return false;
    }
    allIds.add(id);
    return true;
  };
  const readPhones = (owner: Obj, path: string, doorIds: Set<string>, doorPos: Map<string, Point>): PhoneSpec[] => {
    const out: PhoneSpec[] = [];
    (r.list(owner, 'phones', path) ?? []).forEach((pv, i) => {
      const pp = `${path}.phones[${i}]`;
      const phone = readPhone(r, pv, pp, doorIds, doorPos);
      if (phone === undefined) return;
      if (phoneNames.set.has(phone.id) || allIds.has(phone.id)) r.fail(`${pp}.id`, `duplicate id "${phone.id}"`);
      else {
        phoneNames.set.add(phone.id);
        out.push(phone);
      }
    });
    return out;
  };

  // doors
  const doors: DoorSpec[] = [];
  const doorPos = new Map<string, Point>();
  (r.list(o, 'doors', 'property', true) ?? []).forEach((dv, i) => {
    const p = `property.doors[${i}]`;
    const d = r.obj(dv, p, ['id', 'name', 'kind', 'connected', 'uplinkIntervalSeconds', 'position', 'slowAdvertisingIntervalMs']);
    if (d === undefined) return;
    const id = r.str(d, 'id', p, { re: LOCK_ID_PATTERN, what: 'lock id (lowercase letters, digits, "-", e.g. lk-0001)' });
    const dname = r.str(d, 'name', p, { required: false }) ?? id ?? '';
    const kind = r.oneOf(d, 'kind', p, ['communal', 'private'] as const);
    const connected = r.bool(d, 'connected', p, false);
    let uplink = r.num(d, 'uplinkIntervalSeconds', p, { required: false, min: 1, max: 86_400 });
    if (uplink !== undefined && connected === false) r.fail(`${p}.uplinkIntervalSeconds`, 'only applies to connected doors (connected: true)');
    uplink ??= DEFAULT_UPLINK_INTERVAL_SECONDS;
    const position = d['position'] === undefined ? { x: 10 * i, y: 0 } : readPoint(r, d['position'], `${p}.position`);
    let slow: number | undefined;
    if (d['slowAdvertisingIntervalMs'] !== undefined) {
      slow = r.num(d, 'slowAdvertisingIntervalMs', p);
      if (slow !== undefined && !(APPLE_SLOW_INTERVALS_MS as readonly number[]).includes(slow)) {
        r.fail(`${p}.slowAdvertisingIntervalMs`, `${slow} is not one of Apple's recommended intervals (${APPLE_SLOW_INTERVALS_MS.join(', ')} ms)`);
        slow = undefined;
      }
    }
    if (!uniqueId(`${p}.id`, id) || kind === undefined || connected === undefined || position === undefined) return;
    doors.push({ id, name: dname, kind, connected, uplinkIntervalSeconds: connected ? uplink : 0, position, ...(slow !== undefined ? { slowAdvertisingIntervalMs: slow } : {}) });
    doorPos.set(id, position);
  });
  if (doors.length === 0 && Array.isArray(o['doors'])) r.fail('property.doors', 'a property needs at least one door');
  const doorNames = new Names('door', new Set(doors.map((d) => d.id)));

  // partners (before keys: a partner key names its partner)
  const partners: PartnerSpec[] = [];
  const partnerRaw = r.list(o, 'partners', 'property') ?? [];
  const partnerNames = new Names('partner');
  partnerRaw.forEach((pv, i) => {
    const p = `property.partners[${i}]`;
    if (isObj(pv) && typeof pv['id'] === 'string' && ID_RE.test(pv['id'])) partnerNames.set.add(pv['id']);
  });

  // keys
  const keys: KeySpec[] = [];
  (r.list(o, 'keys', 'property') ?? []).forEach((kv, i) => {
    const p = `property.keys[${i}]`;
    const k = r.obj(kv, p, ['id', 'name', 'partner', 'doors']);
    if (k === undefined) return;
    const id = r.str(k, 'id', p, { re: ID_RE, what: 'id' });
    const kname = r.str(k, 'name', p, { required: false }) ?? id ?? '';
    const partner = r.optStr(k, 'partner', p);
    if (partner !== undefined) partnerNames.check(r, `${p}.partner`, partner);
    const kdoors = readKeyDoors(r, r.list(k, 'doors', p, true) ?? [], `${p}.doors`, doorNames);
    if (!uniqueId(`${p}.id`, id)) return;
    const key: KeySpec = { id, name: kname, doors: kdoors };
    if (partner !== undefined) key.partner = partner;
    keys.push(key);
  });
  const keyNames = new Names('key', new Set(keys.map((k) => k.id)));

  partnerRaw.forEach((pv, i) => {
    const p = `property.partners[${i}]`;
    const po = r.obj(pv, p, ['id', 'name', 'authorized', 'doors', 'phones']);
    if (po === undefined) return;
    const id = r.str(po, 'id', p, { re: ID_RE, what: 'id' });
    const pname = r.str(po, 'name', p, { required: false }) ?? id ?? '';
    const authorized = r.bool(po, 'authorized', p, true);
    const pdoors = readIdList(r, po, 'doors', p, doorNames);
    if (authorized === false && pdoors.length > 0)
      r.fail(`${p}.doors`, 'a partner not authorized at the property cannot be assigned to doors (PARTNER_NOT_AUTHORIZED)');
    const phones = readPhones(po, p, doorNames.set, doorPos);
    if (!uniqueId(`${p}.id`, id) || authorized === undefined) return;
    partners.push({ id, name: pname, authorized, doors: pdoors, phones });
  });
  keys.forEach((k, i) => {
    if (k.partner !== undefined && partners.find((pa) => pa.id === k.partner)?.authorized === false)
      r.fail(`property.keys[${i}].partner`, `partner "${k.partner}" is not authorized at the property: it cannot have a partner key (PARTNER_NOT_AUTHORIZED)`);
  });

  // users
  const users: UserSpec[] = [];
  (r.list(o, 'users', 'property') ?? []).forEach((uv, i) => {
    const p = `property.users[${i}]`;
    const u = r.obj(uv, p, ['id', 'name', 'role', 'keys', 'phones', 'doorcode', 'keycards']);
    if (u === undefined) return;
    const id = r.str(u, 'id', p, { re: ID_RE, what: 'id' });
    const uname = r.str(u, 'name', p, { required: false }) ?? id ?? '';
    const role = r.oneOf(u, 'role', p, ['resident', 'staff'] as const, 'resident');
    const assignments: KeyAssignment[] = [];
    (r.list(u, 'keys', p) ?? []).forEach((av, j) => {
      const ap = `${p}.keys[${j}]`;
      if (typeof av === 'string') {
        if (keyNames.check(r, ap, av)) assignments.push({ key: av, mayShare: false });
        return;
      }
      const a = r.obj(av, ap, ['key', 'mayShare']);
      if (a === undefined) return;
      const key = r.str(a, 'key', ap);
      const mayShare = r.bool(a, 'mayShare', ap, false);
      if (keyNames.check(r, `${ap}.key`, key) && mayShare !== undefined) assignments.push({ key, mayShare });
    });
    const doorcode = r.optStr(u, 'doorcode', p, { re: /^\d{7}$/, what: 'doorcode (7 digits, as a quoted string)' });
    const keycards: string[] = [];
    (r.list(u, 'keycards', p) ?? []).forEach((cv, j) => {
      if (typeof cv !== 'string' || !HEX_UID_RE.test(cv)) r.fail(`${p}.keycards[${j}]`, `${show(cv)} is not a keycard UID (lowercase hex, 4, 7 or 10 bytes)`);
      else keycards.push(cv);
    });
    const phones = readPhones(u, p, doorNames.set, doorPos);
    if (!uniqueId(`${p}.id`, id) || role === undefined) return;
    const user: UserSpec = { id, name: uname, role, keys: assignments, phones, keycards };
    if (doorcode !== undefined) user.doorcode = doorcode;
    users.push(user);
  });
  const userNames = new Names('user', new Set(users.map((u) => u.id)));

  // guests
  const guests: GuestSpec[] = [];
  (r.list(o, 'guests', 'property') ?? []).forEach((gv, i) => {
    const p = `property.guests[${i}]`;
    const g = r.obj(gv, p, ['id', 'name', 'invitedBy', 'doors', 'phones', 'validFrom', 'validUntil']);
    if (g === undefined) return;
    const id = r.str(g, 'id', p, { re: ID_RE, what: 'id' });
    const gname = r.str(g, 'name', p, { required: false }) ?? id ?? '';
    const by = r.str(g, 'invitedBy', p);
    const { doors: gdoors, keys: gkeys } = readGuestDoors(r, g, p, doorNames, id, (path, kid) => uniqueId(path, kid));
    if (gdoors.length === 0 && Array.isArray(g['doors'])) r.fail(`${p}.doors`, 'a guest needs at least one door');
    if (userNames.check(r, `${p}.invitedBy`, by)) {
      const inviter = users.find((u) => u.id === by);
      for (const [j, door] of gdoors.entries()) {
        const shareable = inviter?.keys.some((a) => a.mayShare && keys.find((k) => k.id === a.key)?.doors.some((kd) => kd.door === door));
        if (shareable !== true) r.fail(`${p}.doors[${j}]`, `"${by}" holds no Key with mayShare: true that covers door "${door}" (SHARING_NOT_ALLOWED)`);
      }
    }
    const phones = readPhones(g, p, doorNames.set, doorPos);
    const validity = timeZone !== undefined && startEpochMs !== undefined ? readValidity(r, g, p, 0, startEpochMs, timeZone) : {};
    if (!uniqueId(`${p}.id`, id) || by === undefined) return;
    guests.push({ id, name: gname, invitedBy: by, doors: gdoors, keys: gkeys, phones, ...validity });
  });

  const lockPolicy = readLockPolicy(r, o['lockPolicy']);
  if (timeZone === undefined || startEpochMs === undefined || lockPolicy === undefined) return undefined;
  const prop: PropertySpec = { name, timeZone, start, startEpochMs, doors, keys, users, partners, guests, lockPolicy };
  void partnerNames;
  return prop;
}

function readPoint(r: Reader, v: unknown, path: string): Point | undefined {
  const o = r.obj(v, path, ['x', 'y']);
  if (o === undefined) return undefined;
  const x = r.num(o, 'x', path, { min: -10_000, max: 10_000 });
  const y = r.num(o, 'y', path, { min: -10_000, max: 10_000 });
  return x === undefined || y === undefined ? undefined : { x, y };
}

/** `{x, y}` or a door id (= AT_DOOR_METRES in front of that door). */
function readPlace(r: Reader, v: unknown, path: string, doorIds: ReadonlySet<string>, doorPos: ReadonlyMap<string, Point>): Point | undefined {
  if (typeof v === 'string') {
    const p = doorPos.get(v);
    if (p === undefined) return r.fail(path, `unknown door "${v}"${suggest(v, [...doorIds])} (known: ${knownList(doorIds)})`);
    return { x: p.x, y: p.y + AT_DOOR_METRES };
  }
  return readPoint(r, v, path);
}

function readPhone(r: Reader, v: unknown, path: string, doorIds: ReadonlySet<string>, doorPos: ReadonlyMap<string, Point>): PhoneSpec | undefined {
  if (typeof v === 'string') {
    if (!ID_RE.test(v)) return r.fail(path, `${show(v)} is not a valid phone id`);
    return { id: v };
  }
  const o = r.obj(v, path, ['id', 'at', 'profile']);
  if (o === undefined) return undefined;
  const id = r.str(o, 'id', path, { re: ID_RE, what: 'id' });
  if (id === undefined) return undefined;
  let profile: PhoneProfile | undefined;
  if (o['profile'] !== undefined) {
    profile = readProfile(r, o['profile'], `${path}.profile`);
    if (profile === undefined) return undefined;
  }
  const withProfile = profile !== undefined ? { profile } : {};
  if (o['at'] === undefined) return { id, ...withProfile };
  const position = readPlace(r, o['at'], `${path}.at`, doorIds, doorPos);
  return position === undefined ? undefined : { id, position, ...withProfile };
}

/** `profile: android` or `profile: { os: ios, app: background, … }` (scenario/README.md). */
function readProfile(r: Reader, v: unknown, path: string): PhoneProfile | undefined {
  if (typeof v === 'string') {
    if (!(PHONE_OSES as readonly string[]).includes(v)) return r.fail(path, `${show(v)} is not a phone profile (one of ${PHONE_OSES.join(', ')})${suggest(v, PHONE_OSES)}`);
    return makeProfile(v as PhoneOs);
  }
  const o = r.obj(v, path, ['os', 'app', 'priority', 'serviceFilter', 'connectRetries', 'retryDelayMs']);
  if (o === undefined) return undefined;
  const os = r.oneOf(o, 'os', path, PHONE_OSES);
  const app = r.oneOf(o, 'app', path, APP_STATES, DEFAULT_PROFILE.app);
  const priority = r.oneOf(o, 'priority', path, CONNECTION_PRIORITIES, DEFAULT_PROFILE.priority);
  const serviceFilter = r.bool(o, 'serviceFilter', path, DEFAULT_PROFILE.serviceFilter);
  const connectRetries = o['connectRetries'] === undefined ? DEFAULT_PROFILE.connectRetries : r.num(o, 'connectRetries', path, { min: 0, max: 20, int: true });
  const retryDelayMs = o['retryDelayMs'] === undefined ? DEFAULT_PROFILE.retryDelayMs : r.num(o, 'retryDelayMs', path, { min: 0, max: 600_000 });
  if (os === undefined || app === undefined || priority === undefined || serviceFilter === undefined || connectRetries === undefined || retryDelayMs === undefined) return undefined;
  return { os, app, priority, serviceFilter, connectRetries, retryDelayMs };
}

function readIdList(r: Reader, o: Obj, key: string, path: string, names: Names): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  (r.list(o, key, path) ?? []).forEach((v, i) => {
    const p = `${path}.${key}[${i}]`;
    if (typeof v !== 'string') return void r.fail(p, `expected a ${names.what} id, got ${show(v)}`);
    if (seen.has(v)) return void r.fail(p, `"${v}" is listed twice`);
    seen.add(v);
    if (names.check(r, p, v)) out.push(v);
  });
  return out;
}

/**
 * A guest's doors: door ids, or `{door, key}` naming the per-door guest Key DOOR creates
 * (default id `<guest>-<door>`). `claim` registers each Key id (false = already taken).
 */
function readGuestDoors(
  r: Reader,
  o: Obj,
  path: string,
  doorNames: Names,
  guest: string | undefined,
  claim: (path: string, keyId: string) => boolean,
): { doors: string[]; keys: Record<string, string> } {
  const doors: string[] = [];
  const keys: Record<string, string> = {};
  (r.list(o, 'doors', path, true) ?? []).forEach((dv, i) => {
    const p = `${path}.doors[${i}]`;
    let door: string | undefined;
    let key: string | undefined;
    if (typeof dv === 'string') door = dv;
    else {
      const d = r.obj(dv, p, ['door', 'key']);
      if (d === undefined) return;
      door = r.str(d, 'door', p);
      key = r.optStr(d, 'key', p, { re: ID_RE, what: 'key id' });
    }
    if (!doorNames.check(r, typeof dv === 'string' ? p : `${p}.door`, door)) return;
    if (doors.includes(door)) {
      r.fail(p, `door "${door}" listed twice`);
      return;
    }
    doors.push(door);
    key ??= guest === undefined ? undefined : `${guest}-${door}`;
    if (key === undefined) return;
    if (!ID_RE.test(key)) {
      r.fail(p, `the default guest Key id "${key}" is not a valid id: name it with {door, key}`);
      return;
    }
    if (claim(typeof dv === 'string' ? p : `${p}.key`, key)) keys[door] = key;
  });
  return { doors, keys };
}

function readKeyDoors(r: Reader, list: unknown[], path: string, doorNames: Names): KeyDoor[] {
  const out: KeyDoor[] = [];
  const seen = new Set<string>();
  list.forEach((v, i) => {
    const p = `${path}[${i}]`;
    if (typeof v === 'string') {
      if (seen.has(v)) return void r.fail(p, `door "${v}" is listed twice`);
      seen.add(v);
      if (doorNames.check(r, p, v)) out.push({ door: v, doorcodes: true });
      return;
    }
    const o = r.obj(v, p, ['door', 'doorcodes', 'schedule']);
    if (o === undefined) return;
    const door = r.str(o, 'door', p);
    const doorcodes = r.bool(o, 'doorcodes', p, true);
    const schedule = o['schedule'] === undefined ? undefined : readSchedule(r, o['schedule'], `${p}.schedule`);
    if (door !== undefined && seen.has(door)) return void r.fail(`${p}.door`, `door "${door}" is listed twice`);
    if (door !== undefined) seen.add(door);
    if (!doorNames.check(r, `${p}.door`, door) || doorcodes === undefined) return;
    const kd: KeyDoor = { door, doorcodes };
    if (schedule !== undefined) kd.schedule = schedule;
    out.push(kd);
  });
  return out;
}

function readSchedule(r: Reader, v: unknown, path: string): WindowSpec[] | undefined {
  if (!Array.isArray(v)) return r.fail(path, `expected a list of windows like { days: [mon, tue], start: "08:00", end: "18:00" }, got ${show(v)}`);
  const out: WindowSpec[] = [];
  const perDay = new Map<DayName, number>();
  let ok = true;
  v.forEach((wv, i) => {
    const p = `${path}[${i}]`;
    const w = r.obj(wv, p, ['days', 'start', 'end']);
    if (w === undefined) return void (ok = false);
    const days: DayName[] = [];
    const rawDays = w['days'];
    if (!Array.isArray(rawDays) || rawDays.length === 0) {
      r.fail(`${p}.days`, `expected a non-empty list of days (${DAY_NAMES.join(', ')})`);
      ok = false;
    } else
      rawDays.forEach((d, j) => {
        if (typeof d !== 'string' || !(DAY_NAMES as readonly string[]).includes(d)) {
          r.fail(`${p}.days[${j}]`, `${show(d)} is not a day (${DAY_NAMES.join(', ')})${typeof d === 'string' ? suggest(d, DAY_NAMES) : ''}`);
          ok = false;
        } else if (days.includes(d as DayName)) {
          r.fail(`${p}.days[${j}]`, `"${d}" is listed twice`);
          ok = false;
        } else days.push(d as DayName);
      });
    const start = readHhmm(r, w, 'start', p);
    const end = readHhmm(r, w, 'end', p);
    if (start === undefined || end === undefined) return void (ok = false);
    if (start.minutes >= end.minutes) {
      r.fail(p, `start ${start.text} must be before end ${end.text} (windows cannot cross midnight; split them at 24:00)`);
      return void (ok = false);
    }
    for (const d of days) perDay.set(d, (perDay.get(d) ?? 0) + 1);
    out.push({ days, start: start.text, end: end.text });
  });
  for (const [d, n] of perDay)
    if (n > LIMITS.maxWindowsPerDay) {
      r.fail(path, `${n} windows on ${d}; a door schedule allows at most ${LIMITS.maxWindowsPerDay} per day`);
      ok = false;
    }
  return ok ? out : undefined;
}

function readHhmm(r: Reader, o: Obj, key: string, path: string): { text: string; minutes: number } | undefined {
  const p = join(path, key);
  const v = o[key];
  if (typeof v !== 'string') return r.fail(p, `expected "HH:MM" (quoted), got ${show(v)}`);
  const m = HHMM_RE.exec(v);
  if (m === null) return r.fail(p, `"${v}" is not HH:MM`);
  const h = Number(m[1]);
  const min = Number(m[2]);
  if (min > 59 || h > 24 || (h === 24 && min !== 0)) return r.fail(p, `"${v}" is not a time of day (00:00 … 24:00)`);
  return { text: v, minutes: h * 60 + min };
}

function readLockPolicy(r: Reader, v: unknown): LockPolicySpec | undefined {
  if (v === undefined) return { ...DEFAULT_LOCK_POLICY_SPEC };
  const p = 'property.lockPolicy';
  const o = r.obj(v, p, Object.keys(DEFAULT_LOCK_POLICY_SPEC));
  if (o === undefined) return undefined;
  const d = DEFAULT_LOCK_POLICY_SPEC;
  const get = (k: keyof LockPolicySpec, min: number, max: number): number | undefined =>
    o[k] === undefined ? d[k] : r.num(o, k, p, { min, max, int: true });
  const policy = {
    wrongCodeLimit: get('wrongCodeLimit', 1, 255),
    lockoutSeconds: get('lockoutSeconds', 1, 255),
    leaseSeconds: get('leaseSeconds', 0, 0xffff_ffff),
    relockSeconds: get('relockSeconds', 1, 3600),
    dailyCodeSlots: get('dailyCodeSlots', 0, 256),
  };
  if (Object.values(policy).some((x) => x === undefined)) return undefined;
  return policy as LockPolicySpec;
}

function readValidity(r: Reader, o: Obj, path: string, baseMs: number, startEpochMs: number, tz: string): { validFromMs?: number; validUntilMs?: number } {
  const out: { validFromMs?: number; validUntilMs?: number } = {};
  for (const [key, field] of [['validFrom', 'validFromMs'], ['validUntil', 'validUntilMs']] as const) {
    const v = o[key];
    if (v === undefined) continue;
    if (typeof v !== 'string') {
      r.fail(`${path}.${key}`, `expected a time like +2h, 01:00:00 or 2025-03-10T18:00:00, got ${show(v)}`);
      continue;
    }
    const t = resolveAt(v, baseMs, startEpochMs, tz);
    if (typeof t === 'string') r.fail(`${path}.${key}`, t);
    else out[field] = t;
  }
  if (out.validFromMs !== undefined && out.validUntilMs !== undefined && out.validUntilMs <= out.validFromMs)
    r.fail(`${path}.validUntil`, 'must be after validFrom');
  return out;
}

// ---------------------------------------------------------------------------
// Link

function readLink(r: Reader, v: unknown): LinkSpec | undefined {
  if (v === undefined) return { profile: 'phone-typical', ...LINK_PROFILES['phone-typical'] };
  if (typeof v === 'string') {
    if ((LINK_PROFILE_NAMES as readonly string[]).includes(v)) return { profile: v as LinkSpec['profile'], ...LINK_PROFILES[v as keyof typeof LINK_PROFILES] };
    return r.fail('link', `"${v}" is not a link profile (${LINK_PROFILE_NAMES.join(', ')}, or an object {intervalMs, mtu, dataLength, phy, packetsPerEvent})${suggest(v, LINK_PROFILE_NAMES)}`);
  }
  const o = r.obj(v, 'link', ['intervalMs', 'mtu', 'dataLength', 'phy', 'packetsPerEvent']);
  if (o === undefined) return undefined;
  const intervalMs = r.num(o, 'intervalMs', 'link', { min: 7.5, max: 4000 });
  if (intervalMs !== undefined && Math.abs(intervalMs / 1.25 - Math.round(intervalMs / 1.25)) > 1e-9)
    r.fail('link.intervalMs', `${intervalMs} is not a multiple of 1.25 ms`);
  const mtu = r.num(o, 'mtu', 'link', { min: 23, max: 517, int: true });
  const dataLength = r.num(o, 'dataLength', 'link', { min: 27, max: 251, int: true });
  const phy = r.oneOf(o, 'phy', 'link', ['1M', '2M'] as const, '1M');
  const packetsPerEvent = r.num(o, 'packetsPerEvent', 'link', { required: false, min: 0, max: 1000, int: true }) ?? 0;
  if (intervalMs === undefined || mtu === undefined || dataLength === undefined || phy === undefined) return undefined;
  return { profile: 'custom', intervalMs, mtu, dataLength, phy, packetsPerEvent };
}

// ---------------------------------------------------------------------------
// Steps

const STEP_FIELDS = ['at', 'expect', 'note', ...ACTION_KINDS] as const;
const DECISION_NAMES = Object.keys(DECISION_REASONS) as DecisionReason[];
const ERROR_NAMES = Object.keys(ERROR_CODES) as ErrorName[];
const DECISION_STEPS = new Set(['unlock', 'keypad', 'card']);
const SYNC_STEPS = new Set(['sync', 'unlock']);
const COURIER_MODES: readonly CourierMode[] = ['honest', 'withhold', 'withholdUpdates', 'duplicate', 'reorder', 'replay'];
const DAILY_KINDS: readonly DailyCodeKind[] = ['daily', 'dailySingleUse'];

function readSteps(r: Reader, v: unknown, prop: PropertySpec): Step[] {
  if (v === undefined) return r.fail('steps', 'required list of steps is missing') ?? [];
  if (!Array.isArray(v)) return r.fail('steps', `expected a list, got ${show(v)}`) ?? [];
  if (v.length === 0) r.fail('steps', 'a scenario needs at least one step');

  const m: Model = {
    prop,
    doors: new Names('door', new Set(prop.doors.map((d) => d.id))),
    keys: new Names('key', new Set([...prop.keys.map((k) => k.id), ...prop.guests.flatMap((g) => Object.values(g.keys))])),
    users: new Names('user', new Set(prop.users.map((u) => u.id))),
    partners: new Names('partner', new Set(prop.partners.map((p) => p.id))),
    guests: new Names('guest', new Set(prop.guests.map((g) => g.id))),
    phones: new Names(
      'phone',
      new Set([...prop.users, ...prop.partners, ...prop.guests].flatMap((o) => o.phones.map((p) => p.id))),
    ),
    allIds: new Set([...[...prop.doors, ...prop.keys, ...prop.users, ...prop.partners, ...prop.guests].map((x) => x.id), ...prop.guests.flatMap((g) => Object.values(g.keys))]),
    partnerKeys: new Set(prop.keys.filter((k) => k.partner !== undefined).map((k) => k.id)),
  };
  const steps: Step[] = [];
  let cursorMs = 0;
  v.forEach((sv, i) => {
    const p = `steps[${i}]`;
    const s = r.obj(sv, p, STEP_FIELDS);
    if (s === undefined) return;
    const actionKeys = Object.keys(s).filter((k) => (ACTION_KINDS as readonly string[]).includes(k));
    if (actionKeys.length !== 1) {
      r.fail(p, actionKeys.length === 0 ? `no action (one of ${ACTION_KINDS.join(', ')})` : `one action per step, found ${actionKeys.join(' and ')}`);
      return;
    }
    const kind = actionKeys[0] as Action['kind'];
    const at = r.str(s, 'at', p, { what: 'step time' });
    let atMs: number | undefined;
    if (at !== undefined) {
      const t = resolveAt(at, cursorMs, prop.startEpochMs, prop.timeZone);
      if (typeof t === 'string') r.fail(`${p}.at`, t);
      else if (t < cursorMs) r.fail(`${p}.at`, `"${at}" is ${((cursorMs - t) / 1000).toFixed(3)} s before the end of the previous step; steps run in time order`);
      else atMs = t;
    }
    const action = readAction(r, kind, s[kind], `${p}.${kind}`, m, atMs ?? cursorMs);
    const note = r.optStr(s, 'note', p);
    const expect = s['expect'] === undefined ? undefined : readExpect(r, s['expect'], `${p}.expect`, kind, action, m);
    if (atMs === undefined || action === undefined) return;
    cursorMs = atMs + (action.kind === 'advance' ? action.seconds * 1000 : 0);
    const step: Step = { index: i, at: at as string, atMs, action };
    if (expect !== undefined) step.expect = expect;
    if (note !== undefined) step.note = note;
    steps.push(step);
  });
  return steps;
}

function readAction(r: Reader, kind: Action['kind'], v: unknown, p: string, m: Model, atMs: number): Action | undefined {
  const empty = (allowed: string[] = []): Obj | undefined => (v === null || v === true ? {} : r.obj(v, p, allowed));
  const doorPos = new Map(m.prop.doors.map((d) => [d.id, d.position] as const));
  switch (kind) {
    case 'assignPartner':
    case 'unassignPartner': {
      const o = r.obj(v, p, ['partner', 'door']);
      if (o === undefined) return undefined;
      const partner = r.str(o, 'partner', p);
      const door = r.str(o, 'door', p);
      const ok = m.partners.check(r, `${p}.partner`, partner) && m.doors.check(r, `${p}.door`, door);
      return ok ? { kind, partner: partner as string, door: door as string } : undefined;
    }
    case 'deletePartnerKey': {
      const o = r.obj(v, p, ['key']);
      if (o === undefined) return undefined;
      const key = r.str(o, 'key', p);
      if (!m.keys.check(r, `${p}.key`, key)) return undefined;
      if (!m.partnerKeys.has(key))
        return r.fail(`${p}.key`, `"${key}" is not a partner key (no partner: field); only partner keys are deleted this way`);
      return { kind, key };
    }
    case 'terminatePartner':
    case 'authorizePartner': {
      const o = r.obj(v, p, ['partner']);
      if (o === undefined) return undefined;
      const partner = r.str(o, 'partner', p);
      return m.partners.check(r, `${p}.partner`, partner) ? { kind, partner } : undefined;
    }
    case 'assignKey':
    case 'revokeKey': {
      const o = r.obj(v, p, kind === 'assignKey' ? ['user', 'key', 'mayShare'] : ['user', 'key']);
      if (o === undefined) return undefined;
      const user = r.str(o, 'user', p);
      const key = r.str(o, 'key', p);
      const mayShare = kind === 'assignKey' ? r.bool(o, 'mayShare', p, false) : false;
      const ok = m.users.check(r, `${p}.user`, user) && m.keys.check(r, `${p}.key`, key);
      if (!ok || mayShare === undefined) return undefined;
      return kind === 'assignKey' ? { kind, user: user as string, key: key as string, mayShare } : { kind, user: user as string, key: key as string };
    }
    case 'editKey': {
      const o = r.obj(v, p, ['key', 'removeDoors', 'addDoors', 'doorcodes', 'schedule', 'partner']);
      if (o === undefined) return undefined;
      const key = r.str(o, 'key', p);
      const keyOk = m.keys.check(r, `${p}.key`, key);
      const partner = r.optStr(o, 'partner', p);
      const partnerOk = partner === undefined || m.partners.check(r, `${p}.partner`, partner);
      const removeDoors = readIdList(r, o, 'removeDoors', p, m.doors);
      const addDoors = readKeyDoors(r, r.list(o, 'addDoors', p) ?? [], `${p}.addDoors`, m.doors);
      const doorcodes: Record<string, boolean> = {};
      if (o['doorcodes'] !== undefined) {
        const dc = r.obj(o['doorcodes'], `${p}.doorcodes`, [...m.doors.set]);
        if (dc !== undefined)
          for (const [door, val] of Object.entries(dc)) {
            if (typeof val !== 'boolean') r.fail(`${p}.doorcodes.${door}`, `expected true or false, got ${show(val)}`);
            else if (m.doors.set.has(door)) doorcodes[door] = val;
          }
      }
      const schedule: Record<string, WindowSpec[]> = {};
      if (o['schedule'] !== undefined) {
        const sc = r.obj(o['schedule'], `${p}.schedule`, [...m.doors.set]);
        if (sc !== undefined)
          for (const [door, val] of Object.entries(sc)) {
            const windows = val === null ? [] : readSchedule(r, val, `${p}.schedule.${door}`);
            if (windows !== undefined && m.doors.set.has(door)) schedule[door] = windows;
          }
      }
      if (removeDoors.length + addDoors.length + Object.keys(doorcodes).length + Object.keys(schedule).length === 0 && partner === undefined)
        r.fail(p, 'an edit needs at least one of removeDoors, addDoors, doorcodes, schedule, partner');
      if (!keyOk || !partnerOk) return undefined;
      // A partner key stays one (the authority refuses to change its partner, not the file).
      if (partner !== undefined) m.partnerKeys.add(key);
      return partner === undefined ? { kind, key, removeDoors, addDoors, doorcodes, schedule } : { kind, key, removeDoors, addDoors, doorcodes, schedule, partner };
    }
    case 'createKey': {
      const o = r.obj(v, p, ['key', 'name', 'partner', 'doors']);
      if (o === undefined) return undefined;
      const key = r.str(o, 'key', p, { re: ID_RE, what: 'key id' });
      const name = r.optStr(o, 'name', p) ?? key ?? '';
      const partner = r.optStr(o, 'partner', p);
      const partnerOk = partner === undefined || m.partners.check(r, `${p}.partner`, partner);
      const doors = readKeyDoors(r, r.list(o, 'doors', p, true) ?? [], `${p}.doors`, m.doors);
      if (key === undefined || !partnerOk) return undefined;
      if (m.allIds.has(key)) return r.fail(`${p}.key`, `duplicate id "${key}"`);
      m.allIds.add(key);
      m.keys.set.add(key);
      if (partner !== undefined) m.partnerKeys.add(key);
      return partner === undefined ? { kind, key, name, doors } : { kind, key, name, doors, partner };
    }
    case 'setMayShare': {
      const o = r.obj(v, p, ['user', 'key', 'mayShare']);
      if (o === undefined) return undefined;
      const user = r.str(o, 'user', p);
      const key = r.str(o, 'key', p);
      const mayShare = r.bool(o, 'mayShare', p);
      const ok = m.users.check(r, `${p}.user`, user) && m.keys.check(r, `${p}.key`, key);
      return ok && mayShare !== undefined ? { kind, user: user as string, key: key as string, mayShare } : undefined;
    }
    case 'revokeGuest': {
      const o = r.obj(v, p, ['guest']);
      if (o === undefined) return undefined;
      const guest = r.str(o, 'guest', p);
      return m.guests.check(r, `${p}.guest`, guest) ? { kind, guest } : undefined;
    }
    case 'grantDoor': {
      const o = r.obj(v, p, ['user', 'door', 'key', 'doorcodes', 'mayShare']);
      if (o === undefined) return undefined;
      const user = r.str(o, 'user', p);
      const door = r.str(o, 'door', p);
      const key = r.str(o, 'key', p, { re: ID_RE, what: 'id for the one-door Key' });
      const doorcodes = r.bool(o, 'doorcodes', p, true);
      const mayShare = r.bool(o, 'mayShare', p, false);
      const ok = m.users.check(r, `${p}.user`, user) && m.doors.check(r, `${p}.door`, door);
      if (!ok || key === undefined || doorcodes === undefined || mayShare === undefined) return undefined;
      if (m.allIds.has(key)) return r.fail(`${p}.key`, `duplicate id "${key}"`);
      m.allIds.add(key);
      m.keys.set.add(key);
      return { kind, user: user as string, door: door as string, key, doorcodes, mayShare };
    }
    case 'removeResident': {
      const o = r.obj(v, p, ['user']);
      if (o === undefined) return undefined;
      const user = r.str(o, 'user', p);
      return m.users.check(r, `${p}.user`, user) ? { kind, user } : undefined;
    }
    case 'inviteGuest': {
      const o = r.obj(v, p, ['guest', 'name', 'by', 'doors', 'phones', 'validFrom', 'validUntil']);

      if (o === undefined) return undefined;
      const guest = r.str(o, 'guest', p, { re: ID_RE, what: 'guest id' });
      const name = r.optStr(o, 'name', p) ?? guest ?? '';
      const by = r.str(o, 'by', p);
      const byOk = m.users.check(r, `${p}.by`, by);
      const { doors, keys } = readGuestDoors(r, o, p, m.doors, guest, (path, kid) => {
        if (m.allIds.has(kid)) return r.fail(path, `duplicate id "${kid}"`) ?? false;
        m.allIds.add(kid);
        m.keys.set.add(kid);
        return true;
      });
      if (doors.length === 0 && Array.isArray(o['doors'])) r.fail(`${p}.doors`, 'a guest needs at least one door');
      const phones: PhoneSpec[] = [];
      (r.list(o, 'phones', p) ?? []).forEach((pv, i) => {
        const phone = readPhone(r, pv, `${p}.phones[${i}]`, m.doors.set, doorPos);
        if (phone === undefined) return;
        if (m.phones.set.has(phone.id) || m.allIds.has(phone.id)) r.fail(`${p}.phones[${i}].id`, `duplicate id "${phone.id}"`);
        else phones.push(phone);
      });
      const validity = readValidity(r, o, p, atMs, m.prop.startEpochMs, m.prop.timeZone);
      if (guest === undefined || !byOk) return undefined;
      if (m.allIds.has(guest)) return r.fail(`${p}.guest`, `duplicate id "${guest}"`);
      // Known from this step on: later steps may move, sync and unlock with them.
      m.allIds.add(guest);
      m.guests.set.add(guest);
      for (const ph of phones) m.phones.set.add(ph.id);
      return { kind, guest, name, by: by as string, doors, keys, phones, ...validity };
    }
    case 'partnerGrant': {
      const o = r.obj(v, p, ['partner', 'grant', 'role', 'key', 'doors', 'phones']);
      if (o === undefined) return undefined;
      const partner = r.str(o, 'partner', p);
      const partnerOk = m.partners.check(r, `${p}.partner`, partner);
      const grant = r.str(o, 'grant', p, { re: ID_RE, what: 'grant id' });
      const role = r.oneOf(o, 'role', p, ['resident', 'guest', 'courier'] as const, 'resident');
      const key = r.optStr(o, 'key', p);
      if (key !== undefined && !m.keys.check(r, `${p}.key`, key)) return undefined;
      const doors = readIdList(r, o, 'doors', p, m.doors);
      if (key === undefined && doors.length === 0) r.fail(p, 'give key (a partner key) or doors (doors the partner is assigned to)');
      const phones: PhoneSpec[] = [];
      (r.list(o, 'phones', p, true) ?? []).forEach((pv, i) => {
        const phone = readPhone(r, pv, `${p}.phones[${i}]`, m.doors.set, doorPos);
        if (phone === undefined) return;
        if (m.phones.set.has(phone.id) || m.allIds.has(phone.id)) r.fail(`${p}.phones[${i}].id`, `duplicate id "${phone.id}"`);
        else phones.push(phone);
      });
      if (grant === undefined || !partnerOk || role === undefined) return undefined;
      if (m.allIds.has(grant)) return r.fail(`${p}.grant`, `duplicate id "${grant}"`);
      m.allIds.add(grant);
      for (const ph of phones) m.phones.set.add(ph.id);
      const out: Action = { kind, partner: partner as string, grant, role, doors, phones };
      if (key !== undefined) out.key = key;
      return out;
    }
    case 'revokePartnerGrant': {
      const o = r.obj(v, p, ['partner', 'grant']);
      if (o === undefined) return undefined;
      const partner = r.str(o, 'partner', p);
      const grant = r.str(o, 'grant', p);
      if (!m.partners.check(r, `${p}.partner`, partner) || grant === undefined) return undefined;
      if (!m.allIds.has(grant)) return r.fail(`${p}.grant`, `unknown grant "${grant}" (grants are named by an earlier partnerGrant step)`);
      return { kind, partner: partner as string, grant };
    }
    case 'issueDailyCode': {
      const o = r.obj(v, p, ['door', 'slot', 'kind']);
      if (o === undefined) return undefined;
      const door = r.str(o, 'door', p);
      const slot = readSlot(r, o, p, m);
      const codeKind = r.oneOf(o, 'kind', p, DAILY_KINDS, 'daily');
      return m.doors.check(r, `${p}.door`, door) && slot !== undefined && codeKind !== undefined ? { kind, door, slot, codeKind } : undefined;
    }
    case 'rotateAuthorityKey':
      return empty() === undefined ? undefined : { kind };
    case 'check':
      return empty() === undefined ? undefined : { kind };
    case 'move': {
      const o = r.obj(v, p, ['phone', 'to']);
      if (o === undefined) return undefined;
      const phone = r.str(o, 'phone', p);
      const to = o['to'] === undefined ? r.fail(`${p}.to`, 'required: {x, y} in metres or a door id') : readPlace(r, o['to'], `${p}.to`, m.doors.set, doorPos);
      return m.phones.check(r, `${p}.phone`, phone) && to !== undefined ? { kind, phone, to } : undefined;
    }
    case 'appState': {
      const o = r.obj(v, p, ['phone', 'state']);
      if (o === undefined) return undefined;
      const phone = r.str(o, 'phone', p);
      const state = r.oneOf(o, 'state', p, APP_STATES);
      if (!m.phones.check(r, `${p}.phone`, phone) || state === undefined) return undefined;
      const spec = [...m.prop.users, ...m.prop.partners, ...m.prop.guests].flatMap((x) => x.phones).find((ph) => ph.id === phone);
      if (spec !== undefined && spec.profile === undefined) return r.fail(`${p}.phone`, `${phone} has no profile: only a phone with a profile (android, ios) has an app state`);
      return { kind, phone, state };
    }
    case 'walkAway': {
      const o = typeof v === 'string' ? { phone: v } : r.obj(v, p, ['phone']);
      if (o === undefined) return undefined;
      const phone = r.str(o, 'phone', p);
      return m.phones.check(r, `${p}.phone`, phone) ? { kind, phone } : undefined;
    }
    case 'sync':
    case 'unlock': {
      const o = r.obj(v, p, ['phone', 'lock']);
      if (o === undefined) return undefined;
      const phone = r.str(o, 'phone', p);
      const lock = r.str(o, 'lock', p);
      const ok = m.phones.check(r, `${p}.phone`, phone) && m.doors.check(r, `${p}.lock`, lock);
      return ok ? { kind, phone: phone as string, lock: lock as string } : undefined;
    }
    case 'keypad': {
      const o = r.obj(v, p, ['lock', 'code', 'codeOf', 'dailyCode']);
      if (o === undefined) return undefined;
      const lock = r.str(o, 'lock', p);
      const lockOk = m.doors.check(r, `${p}.lock`, lock);
      const given = ['code', 'codeOf', 'dailyCode'].filter((k) => o[k] !== undefined);
      if (given.length !== 1) return r.fail(p, `give exactly one of code, codeOf, dailyCode (found ${given.length === 0 ? 'none' : given.join(', ')})`);
      if (o['code'] !== undefined) {
        const code = r.str(o, 'code', p, { re: /^\d{1,16}$/, what: 'keypad code (digits, as a quoted string)' });
        return lockOk && code !== undefined ? { kind, lock, input: { by: 'code', code } } : undefined;
      }
      if (o['codeOf'] !== undefined) {
        const c = r.obj(o['codeOf'], `${p}.codeOf`, ['user', 'door']);
        if (c === undefined) return undefined;
        const user = r.str(c, 'user', `${p}.codeOf`);
        const door = r.optStr(c, 'door', `${p}.codeOf`) ?? lock;
        const ok = m.users.check(r, `${p}.codeOf.user`, user) && m.doors.check(r, `${p}.codeOf.door`, door);
        return lockOk && ok ? { kind, lock, input: { by: 'codeOf', user: user as string, door: door as string } } : undefined;
      }
      const d = r.obj(o['dailyCode'], `${p}.dailyCode`, ['slot', 'kind']);
      if (d === undefined) return undefined;
      const slot = readSlot(r, d, `${p}.dailyCode`, m);
      const codeKind = r.oneOf(d, 'kind', `${p}.dailyCode`, DAILY_KINDS, 'daily');
      return lockOk && slot !== undefined && codeKind !== undefined ? { kind, lock, input: { by: 'dailyCode', slot, codeKind } } : undefined;
    }
    case 'card': {
      const o = r.obj(v, p, ['lock', 'uid', 'cardOf']);
      if (o === undefined) return undefined;
      const lock = r.str(o, 'lock', p);
      const lockOk = m.doors.check(r, `${p}.lock`, lock);
      if ((o['uid'] === undefined) === (o['cardOf'] === undefined)) return r.fail(p, 'give exactly one of uid, cardOf');
      if (o['uid'] !== undefined) {
        const uid = r.str(o, 'uid', p, { re: HEX_UID_RE, what: 'keycard UID (lowercase hex, 4, 7 or 10 bytes)' });
        return lockOk && uid !== undefined ? { kind, lock, input: { by: 'uid', uid } } : undefined;
      }
      const user = r.str(o, 'cardOf', p);
      if (!m.users.check(r, `${p}.cardOf`, user)) return undefined;
      if ((m.prop.users.find((u) => u.id === user)?.keycards.length ?? 0) === 0) return r.fail(`${p}.cardOf`, `user "${user}" has no keycards`);
      return lockOk ? { kind, lock, input: { by: 'cardOf', user } } : undefined;
    }
    case 'advance': {
      const o = r.obj(v, p, ['seconds']);
      if (o === undefined) return undefined;
      const seconds = r.num(o, 'seconds', p, { min: 0, max: 30 * 86_400 });
      return seconds === undefined ? undefined : { kind, seconds };
    }
    case 'clockDrift': {
      const o = r.obj(v, p, ['lock', 'ppm']);
      if (o === undefined) return undefined;
      const lock = r.str(o, 'lock', p);
      const ppm = r.num(o, 'ppm', p, { min: -500_000, max: 500_000 });
      return m.doors.check(r, `${p}.lock`, lock) && ppm !== undefined ? { kind, lock, ppm } : undefined;
    }
    case 'powerCut': {
      const o = r.obj(v, p, ['lock', 'atFlashOp']);
      if (o === undefined) return undefined;
      const lock = r.str(o, 'lock', p);
      const atFlashOp = r.num(o, 'atFlashOp', p, { required: false, min: 1, max: 1_000_000, int: true });
      if (!m.doors.check(r, `${p}.lock`, lock)) return undefined;
      return atFlashOp === undefined ? { kind, lock } : { kind, lock, atFlashOp };
    }
    case 'reboot': {
      const o = r.obj(v, p, ['lock']);
      if (o === undefined) return undefined;
      const lock = r.str(o, 'lock', p);
      return m.doors.check(r, `${p}.lock`, lock) ? { kind, lock } : undefined;
    }
    case 'linkDrop': {
      const o = r.obj(v, p, ['phone', 'lock', 'atPacket', 'atTimeMs']);
      if (o === undefined) return undefined;
      const { phone, lock, ok } = readFaultScope(r, o, p, m);
      if ((o['atPacket'] === undefined) === (o['atTimeMs'] === undefined)) return r.fail(p, 'give exactly one of atPacket, atTimeMs');
      const atPacket = r.num(o, 'atPacket', p, { required: false, min: 0, max: 10_000_000, int: true });
      const atTimeMs = r.num(o, 'atTimeMs', p, { required: false, min: 0, max: 3_600_000 });
      if (!ok || (atPacket === undefined && atTimeMs === undefined)) return undefined;
      const a: Extract<Action, { kind: 'linkDrop' }> = { kind };
      if (phone !== undefined) a.phone = phone;
      if (lock !== undefined) a.lock = lock;
      if (atPacket !== undefined) a.atPacket = atPacket;
      if (atTimeMs !== undefined) a.atTimeMs = atTimeMs;
      return a;
    }
    case 'packetErrorRate': {
      const o = r.obj(v, p, ['rate', 'phone', 'lock']);
      if (o === undefined) return undefined;
      const { phone, lock, ok } = readFaultScope(r, o, p, m);
      const rate = r.num(o, 'rate', p, { min: 0, max: 1 });
      if (!ok || rate === undefined) return undefined;
      const a: Extract<Action, { kind: 'packetErrorRate' }> = { kind, rate };
      if (phone !== undefined) a.phone = phone;
      if (lock !== undefined) a.lock = lock;
      return a;
    }
    case 'courier': {
      const o = r.obj(v, p, ['phone', 'mode']);
      if (o === undefined) return undefined;
      const phone = r.str(o, 'phone', p);
      const mode = r.oneOf(o, 'mode', p, COURIER_MODES);
      return m.phones.check(r, `${p}.phone`, phone) && mode !== undefined ? { kind, phone, mode } : undefined;
    }
  }
}

function readSlot(r: Reader, o: Obj, p: string, m: Model): number | undefined {
  const slots = m.prop.lockPolicy.dailyCodeSlots;
  if (slots === 0) return r.fail(`${p}.slot`, 'daily codes are disabled (property.lockPolicy.dailyCodeSlots is 0)');
  return r.num(o, 'slot', p, { min: 0, max: slots - 1, int: true });
}

function readFaultScope(r: Reader, o: Obj, p: string, m: Model): { phone?: string; lock?: string; ok: boolean } {
  const phone = r.optStr(o, 'phone', p);
  const lock = r.optStr(o, 'lock', p);
  let ok = true;
  if (phone !== undefined && !m.phones.check(r, `${p}.phone`, phone)) ok = false;
  if (lock !== undefined && !m.doors.check(r, `${p}.lock`, lock)) ok = false;
  const out: { phone?: string; lock?: string; ok: boolean } = { ok };
  if (phone !== undefined) out.phone = phone;
  if (lock !== undefined) out.lock = lock;
  return out;
}

// ---------------------------------------------------------------------------
// Expectations

const EXPECT_FIELDS = ['decision', 'syncResult', 'manager', 'versionAtLock', 'pendingRevocations', 'authorityInForce', 'grants', 'unlockAttempts', 'refusal', 'arrivals', 'gattErrors', 'discoverySeconds', 'lock'] as const;

function readExpect(r: Reader, v: unknown, p: string, kind: Action['kind'], action: Action | undefined, m: Model): Expectation | undefined {
  const o = r.obj(v, p, EXPECT_FIELDS);
  if (o === undefined) return undefined;
  if (Object.keys(o).filter((k) => k !== 'lock').length === 0) return r.fail(p, `empty expectation (give one or more of ${EXPECT_FIELDS.filter((f) => f !== 'lock').join(', ')})`);
  const e: Expectation = {};
  let ok = true;
  const bad = (path: string, msg: string): void => {
    r.fail(path, msg);
    ok = false;
  };

  if (o['lock'] !== undefined) {
    const lock = r.str(o, 'lock', p);
    if (m.doors.check(r, `${p}.lock`, lock)) e.lock = lock;
    else ok = false;
  }
  if (o['decision'] !== undefined) {
    if (!DECISION_STEPS.has(kind)) bad(`${p}.decision`, `only unlock, keypad and card steps produce an access decision (this step is ${kind})`);
    const d = r.oneOf(o, 'decision', p, DECISION_NAMES);
    if (d === undefined) ok = false;
    else e.decision = d;
  }
  if (o['syncResult'] !== undefined) {
    if (!SYNC_STEPS.has(kind)) bad(`${p}.syncResult`, `only sync and unlock steps produce a sync result (this step is ${kind})`);
    const s = readResult(r, o['syncResult'], `${p}.syncResult`, ['ok', 'out_of_range', 'link_lost'], ERROR_NAMES, 'protocol ERROR_CODES');
    if (s === undefined) ok = false;
    else e.syncResult = s as SyncResult;
  }
  if (o['manager'] !== undefined) {
    if (!(MANAGER_ACTIONS as readonly string[]).includes(kind)) bad(`${p}.manager`, `only manager operations have a manager result (this step is ${kind})`);
    const s = readResult(r, o['manager'], `${p}.manager`, ['ok'], undefined, 'authority error code');
    if (s === undefined) ok = false;
    else e.manager = s as ManagerResult;
  }
  if (o['versionAtLock'] !== undefined) {
    const ve = readVersionExpectation(r, o['versionAtLock'], `${p}.versionAtLock`);
    if (ve === undefined) ok = false;
    else e.versionAtLock = ve;
  }
  if (o['pendingRevocations'] !== undefined) {
    const n = r.num(o, 'pendingRevocations', p, { min: 0, max: 1_000_000, int: true });
    if (n === undefined) ok = false;
    else e.pendingRevocations = n;
  }
  if ((e.versionAtLock !== undefined || e.pendingRevocations !== undefined) && e.lock === undefined && o['lock'] === undefined) {
    const a = action as (Action & { lock?: unknown; door?: unknown }) | undefined;
    const hasSubject = a !== undefined && (typeof a.lock === 'string' || typeof a.door === 'string');
    if (action !== undefined && !hasSubject)
      bad(p, `versionAtLock and pendingRevocations need a lock: this ${kind} step names none, so add expect.lock`);
  }
  for (const field of ['gattErrors', 'discoverySeconds'] as const) {
    if (o[field] === undefined) continue;
    if (!SYNC_STEPS.has(kind)) bad(`${p}.${field}`, `only sync and unlock steps connect a phone (this step is ${kind})`);
    const a = action as { phone?: string } | undefined;
    const phone = a?.phone === undefined ? undefined : [...m.prop.users, ...m.prop.partners, ...m.prop.guests].flatMap((x) => x.phones).find((ph) => ph.id === a.phone);
    if (action !== undefined && phone !== undefined && phone.profile === undefined) bad(`${p}.${field}`, `${a?.phone ?? ''} has no profile: give the phone a profile (android, ios) to observe ${field}`);
  }
  if (o['gattErrors'] !== undefined) {
    const ge = readVersionExpectation(r, o['gattErrors'], `${p}.gattErrors`);
    if (ge === undefined) ok = false;
    else e.gattErrors = ge;
  }
  if (o['discoverySeconds'] !== undefined) {
    const ve = readVersionExpectation(r, o['discoverySeconds'], `${p}.discoverySeconds`);
    if (ve === undefined) ok = false;
    else e.discoverySeconds = ve;
  }
  if (o['authorityInForce'] !== undefined) {
    const ap = `${p}.authorityInForce`;
    const a = r.obj(o['authorityInForce'], ap, ['door', 'version']);
    if (a === undefined) ok = false;
    else {
      const door = r.str(a, 'door', ap);
      const version = r.num(a, 'version', ap, { min: 0, int: true });
      if (m.doors.check(r, `${ap}.door`, door) && version !== undefined) e.authorityInForce = { door, version };
      else ok = false;
    }
  }
  if (o['grants'] !== undefined) {
    const gp = `${p}.grants`;
    const list = Array.isArray(o['grants']) ? (o['grants'] as unknown[]) : [o['grants']];
    const grants: GrantsExpectation[] = [];
    list.forEach((gv, i) => {
      const ip = Array.isArray(o['grants']) ? `${gp}[${i}]` : gp;
      const g = r.obj(gv, ip, ['phone', 'door', 'count']);
      if (g === undefined) return void (ok = false);
      const phone = r.str(g, 'phone', ip);
      const door = r.str(g, 'door', ip);
      const count = r.num(g, 'count', ip, { min: 0, max: 1000, int: true });
      if (m.phones.check(r, `${ip}.phone`, phone) && m.doors.check(r, `${ip}.door`, door) && count !== undefined) grants.push({ phone, door, count });
      else ok = false;
    });
    if (grants.length === 0 && ok) bad(gp, 'expected {phone, door, count} or a list of them');
    e.grants = grants;
  }
  if (o['unlockAttempts'] !== undefined) {
    if (kind !== 'unlock') bad(`${p}.unlockAttempts`, `only unlock steps present credentials (this step is ${kind})`);
    const n = r.num(o, 'unlockAttempts', p, { min: 0, max: 1000, int: true });
    if (n === undefined) ok = false;
    else e.unlockAttempts = n;
  }
  if (o['refusal'] !== undefined) {
    const rp = `${p}.refusal`;
    if (!(MANAGER_ACTIONS as readonly string[]).includes(kind)) bad(rp, `only manager operations are refused with details (this step is ${kind})`);
    if (typeof e.manager !== 'object') bad(rp, 'a refusal needs manager: refused:<code> beside it');
    const ro = r.obj(o['refusal'], rp, ['doors', 'keys']);
    if (ro === undefined) ok = false;
    else {
      const refusal: { doors?: string[]; keys?: string[] } = {};
      if (ro['doors'] !== undefined) refusal.doors = readIdList(r, ro, 'doors', rp, m.doors);
      if (ro['keys'] !== undefined) refusal.keys = readIdList(r, ro, 'keys', rp, m.keys);
      if (refusal.doors === undefined && refusal.keys === undefined) bad(rp, 'give doors and/or keys');
      e.refusal = refusal;
    }
  }
  if (o['arrivals'] !== undefined) {
    const ap = `${p}.arrivals`;
    const a = r.obj(o['arrivals'], ap, ['door', 'version', 'applied', 'receipts', 'uplink']);
    if (a === undefined) ok = false;
    else {
      const door = r.str(a, 'door', ap);
      const version = r.num(a, 'version', ap, { min: 1, int: true });
      const arrivals: ArrivalsExpectation = { door: door as string, version: version as number };
      for (const f of ['applied', 'receipts', 'uplink'] as const) {
        const n = r.num(a, f, ap, { required: false, min: 0, max: 1_000_000, int: true });
        if (n !== undefined) arrivals[f] = n;
      }
      if (arrivals.applied === undefined && arrivals.receipts === undefined && arrivals.uplink === undefined) bad(ap, 'give one or more of applied, receipts, uplink');
      if (m.doors.check(r, `${ap}.door`, door) && version !== undefined) e.arrivals = arrivals;
      else ok = false;
    }
  }
  return ok ? e : undefined;
}

function readResult(r: Reader, v: unknown, p: string, plain: readonly string[], codes: readonly string[] | undefined, codeWhat: string): string | { refused: string } | undefined {
  if (typeof v !== 'string') return r.fail(p, `expected ${plain.join(' | ')} | refused:<${codeWhat}>, got ${show(v)}`);
  if (plain.includes(v)) return v;
  const m = /^refused:([A-Z][A-Z0-9_]*)$/.exec(v);
  if (m === null) return r.fail(p, `"${v}" is not one of ${plain.join(', ')} or refused:<${codeWhat}>${suggest(v, plain)}`);
  const code = m[1] as string;
  if (codes !== undefined && !codes.includes(code)) return r.fail(p, `"${code}" is not a ${codeWhat} name${suggest(code, codes)} (known: ${codes.join(', ')})`);
  return { refused: code };
}

function readVersionExpectation(r: Reader, v: unknown, p: string): VersionExpectation | undefined {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0) return r.fail(p, `expected a table version (whole number ≥ 0), got ${v}`);
    return { op: '==', value: v };
  }
  if (typeof v === 'string') {
    const m = /^\s*(==|>=|<=|>|<)?\s*(\d+)\s*$/.exec(v);
    if (m !== null) return { op: (m[1] ?? '==') as VersionExpectation['op'], value: Number(m[2]) };
  }
  return r.fail(p, `expected a version N or a comparison like '>= N', got ${show(v)}`);
}
