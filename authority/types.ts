// Public types of the authority (what its API takes and returns).

import { type HolderClass, type LockPolicy, type ScheduleWindow } from '../protocol';
import { type ScheduleWindowInput } from './validate';

export type DoorKind = 'communal' | 'private';
export type UserRole = 'resident' | 'staff' | 'guest';

export interface AuthorityOptions {
  /** SQLite file. */
  dbPath: string;
  /** Directory holding kek.key (and root.key/seed by default). Default `<dbPath>.keys`. */
  keyDir?: string;
  /** Offline root key file. Default `<keyDir>/root.key`. */
  rootKeyPath?: string;
  /** Authority clock, unix seconds (injectable for tests). */
  now?: () => number;
  /** Versions per lock for which deltas are served; older bases get a snapshot. */
  historyVersions?: number;
  /** Every Nth version keeps its full table so old versions can be rebuilt. */
  checkpointEvery?: number;
  /** Lifetime of a device token from its issue or rotation, seconds (default 90 days). */
  deviceTokenSeconds?: number;
  /** PostgreSQL: how long one statement may take, its wait for the writer lock included (ms, default 30,000). */
  statementTimeoutMs?: number;
  /** PostgreSQL: how long connecting to the server may take (ms, default 10,000). */
  connectTimeoutMs?: number;
}

export interface AuthorityInitOptions extends AuthorityOptions {
  /** Demo/test determinism: every secret and token is derived from this seed. */
  seed?: string;
  propertyName?: string;
  timeZone?: string;
  policy?: Partial<LockPolicy>;
}

export interface PropertyInfo {
  name: string;
  timeZone: string;
  policy: LockPolicy;
  rootPublicKeys: string[];
  signingKey: { serial: number; keyId: string };
}

export interface DoorInfo {
  id: number;
  name: string;
  kind: DoorKind;
  connected: boolean;
  lockId: string | null;
  /** Door-level overrides of the property lock policy. */
  policy: Partial<LockPolicy> | null;
  partners: number[];
}

export interface KeyDoorInput {
  doorId: number;
  doorcodesEnabled?: boolean;
  schedule?: (ScheduleWindow | ScheduleWindowInput)[] | null;
}

export interface KeyDoorSettings {
  doorId: number;
  doorcodesEnabled: boolean;
  schedule?: ScheduleWindow[];
}

export interface KeyInfo {
  id: number;
  name: string;
  /** Set on partner keys: never changes, the key can only be deleted. */
  partnerId: number | null;
  /** Set on the one-door Keys created for a guest: the resident assignment shared from. */
  guestOf: number | null;
  doors: KeyDoorSettings[];
}

export interface AssignmentInfo {
  id: number;
  userId: number;
  keyId: number;
  mayShare: boolean;
  validFrom?: number;
  validUntil?: number;
}

export interface UserInfo {
  id: number;
  name: string;
  role: UserRole;
  invitedBy: number | null;
  assignments: AssignmentInfo[];
  devices: number[];
  keycards: { id: number; uid: string }[];
  doorcodeDoors: number[];
}

/**
 * pending: known at the property, not yet authorized by DOOR's integrations team (cannot be
 * assigned); authorized; terminated (the integration ended).
 */
export type PartnerStatus = 'pending' | 'authorized' | 'terminated';

export interface PartnerInfo {
  id: number;
  name: string;
  status: PartnerStatus;
  doors: number[];
  keys: number[];
  devices: number[];
}

export interface ProvisioningBundle {
  lockId: string;
  doorId: number;
  rootPublicKeys: string[];
  /** The lock's 32-byte secret (doorcode/keycard verifiers, daily codes). Shown once. */
  lockSecret: string;
  timeZone: string;
  policy: LockPolicy;
}

export interface UpdatesResponse {
  lockId: string;
  from: number;
  to: number;
  messages: string[];
}

/** UpdatesResponse with each message as its bytes rather than hex. */
export interface UpdateMessages {
  lockId: string;
  from: number;
  to: number;
  messages: Uint8Array[];
}

export interface CredentialFile {
  holder: HolderClass;
  secretKey: string;
  publicKey: string;
  credentials: { lockId: string; credId: number }[];
}

export interface PendingRevocation {
  doorId: number;
  doorName: string;
  lockId: string;
  credId: number;
  kind: string;
  holder: string;
  subject: string;
  partnerId: number | null;
  keyId: number | null;
  removedInVersion: number;
  versionInForce: number;
  /** Unix seconds: when the authority removed it (the gap starts here). */
  since: number;
}

export interface HonouringDoor {
  doorId: number;
  doorName: string;
  lockId: string;
  versionInForce: number;
  credentials: number;
  /** Whether the partner is still assigned there in the model (false = revocation pending). */
  assignedNow: boolean;
}

export type Principal =
  | { kind: 'manager' }
  | { kind: 'device'; deviceId: number; userId: number | null; partnerId: number | null }
  | { kind: 'partner'; partnerId: number }
  | { kind: 'lock'; lockId: string };

export interface Grant {
  lockId: string;
  credId: number;
  deviceId: number;
}

/** Who a partner grants access to: its own residents, guests and couriers (never DOOR's users). */
export type PartnerUserRole = 'resident' | 'guest' | 'courier';

export interface PartnerGrantInput {
  /** The partner's own reference for its user (shown back to the partner only). */
  subject: string;
  role?: PartnerUserRole;
  /** The user's phone public key (Ed25519, hex): the partner SDK on that phone holds the secret. */
  publicKey: string;
  /** One of the partner's keys: the grant follows it (doors added and removed, schedules). */
  keyId?: number;
  /** Only these doors (of that key, or, without keyId, doors the partner is assigned to directly). */
  doorIds?: number[];
  validFrom?: number;
  validUntil?: number;
}

export interface PartnerGrantInfo {
  id: number;
  partnerId: number;
  subject: string;
  role: PartnerUserRole;
  publicKey: string;
  keyId: number | null;
  /** True: every door of the key, now and later. */
  allDoors: boolean;
  /** Doors the grant reaches now (within the partner's scope today). */
  doors: number[];
  validFrom?: number;
  validUntil?: number;
  /** The unlock credentials compiled for it: what the partner hands its user's phone. */
  credentials: { lockId: string; credId: number }[];
}
