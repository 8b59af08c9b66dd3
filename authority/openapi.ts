// The authority's HTTP API as an OpenAPI 3.0 document, served at GET /openapi.json.
// authority/openapi.test.ts holds it to the real routes: the document validates, every
// route the server answers is described and every described route is answered, and real
// requests and responses validate against the schemas here (openapi-backend).

import { AUTHORITY_ERROR_STATUS, type AuthorityErrorCode } from './errors';

type Schema = Record<string, unknown>;
const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const int: Schema = { type: 'integer', minimum: 0 };
const str: Schema = { type: 'string' };
const hex: Schema = { type: 'string', pattern: '^[0-9a-f]*$' };
const bool: Schema = { type: 'boolean' };
/** OpenAPI 3.0 has no null type; a $ref cannot carry siblings, so it goes inside allOf. */
const nullable = (s: Schema): Schema => ('$ref' in s ? { type: 'object', allOf: [s], nullable: true } : { ...s, nullable: true });
const arr = (items: Schema): Schema => ({ type: 'array', items });
const obj = (properties: Record<string, Schema>, required: string[] = Object.keys(properties)): Schema =>
  required.length > 0 ? { type: 'object', properties, required } : { type: 'object', properties };
/** An object with exactly these properties: an extra or misspelt one fails validation. */
const closed = (properties: Record<string, Schema>, required: string[] = Object.keys(properties)): Schema => ({ ...obj(properties, required), additionalProperties: false });
const ERROR_CODES = Object.keys(AUTHORITY_ERROR_STATUS) as AuthorityErrorCode[];
/** The error body with its code limited to these (authority/errors.ts) and, if given, its details. */
const errorBody = (codes: readonly AuthorityErrorCode[], details?: Schema): Schema =>
  obj({ error: obj({ code: { type: 'string', enum: [...codes] }, message: str, details: details ?? { type: 'object' } }, details !== undefined ? ['code', 'message', 'details'] : ['code', 'message']) });
/** Why a bearer token was refused (authority/access.ts). */
const UNAUTHORIZED_REASONS = ['MISSING', 'MALFORMED', 'UNKNOWN', 'EXPIRED', 'ROTATED', 'REVOKED', 'PARTNER_TERMINATED'];
const PARTNER_STATUS: Schema = { type: 'string', enum: ['pending', 'authorized', 'terminated'] };
const publicKey: Schema = { type: 'string', pattern: '^[0-9a-f]{64}$' };
const token: Schema = { type: 'string', pattern: '^lst_' };

const LockPolicy = obj(
  { wrongCodeLimit: int, lockoutSeconds: int, leaseSeconds: int, relockSeconds: int, dailyCodeSlots: int },
  ['wrongCodeLimit', 'lockoutSeconds', 'leaseSeconds'],
);
const Window = obj({ days: { oneOf: [int, arr(str)] }, start: { oneOf: [int, str] }, end: { oneOf: [int, str] } });

const schemas: Record<string, Schema> = {
  Error: errorBody(ERROR_CODES),
  Unauthorized: errorBody(['UNAUTHORIZED'], obj({ reason: { type: 'string', enum: UNAUTHORIZED_REASONS }, takes: str, deviceId: int, expiredAt: int }, ['reason'])),
  StorageUnavailable: errorBody(['STORAGE_UNAVAILABLE']),
  LockPolicy,
  ScheduleWindow: Window,
  Property: obj({ name: str, timeZone: str, policy: ref('LockPolicy'), rootPublicKeys: arr(hex), signingKey: obj({ serial: int, keyId: hex }) }),
  Door: obj({ id: int, name: str, kind: { type: 'string', enum: ['communal', 'private'] }, connected: bool, lockId: nullable(str), policy: nullable({ type: 'object' }), partners: arr(int) }),
  KeyDoor: obj({ doorId: int, doorcodesEnabled: bool, schedule: arr(ref('ScheduleWindow')) }, ['doorId', 'doorcodesEnabled']),
  KeyDoorInput: obj({ doorId: int, doorcodesEnabled: bool, schedule: nullable(arr(ref('ScheduleWindow'))) }, ['doorId']),
  Key: obj({ id: int, name: str, partnerId: nullable(int), guestOf: nullable(int), doors: arr(ref('KeyDoor')) }),
  Assignment: obj({ id: int, userId: int, keyId: int, mayShare: bool, validFrom: int, validUntil: int }, ['id', 'userId', 'keyId', 'mayShare']),
  User: obj({
    id: int,
    name: str,
    role: { type: 'string', enum: ['resident', 'staff', 'guest'] },
    invitedBy: nullable(int),
    assignments: arr(ref('Assignment')),
    devices: arr(int),
    keycards: arr(obj({ id: int, uid: hex })),
    doorcodeDoors: arr(int),
  }),
  Partner: obj({ id: int, name: str, status: PARTNER_STATUS, doors: arr(int), keys: arr(int), devices: arr(int) }),
  PartnerGrantInput: closed(
    { subject: str, role: { type: 'string', enum: ['resident', 'guest', 'courier'] }, publicKey, keyId: int, doorIds: { ...arr(int), minItems: 1 }, validFrom: int, validUntil: int },
    ['subject', 'publicKey'],
  ),
  PartnerGrant: closed(
    {
      id: int,
      partnerId: int,
      subject: str,
      role: { type: 'string', enum: ['resident', 'guest', 'courier'] },
      publicKey,
      keyId: nullable(int),
      allDoors: bool,
      doors: arr(int),
      validFrom: int,
      validUntil: int,
      credentials: arr(closed({ lockId: str, credId: int })),
    },
    ['id', 'partnerId', 'subject', 'role', 'publicKey', 'keyId', 'allDoors', 'doors', 'credentials'],
  ),
  DeviceToken: closed({ deviceId: int, token, tokenExpiresAt: int }),
  PartnerToken: closed({ partnerId: int, token }),
  Grant: obj({ lockId: str, credId: int, deviceId: int }),
  Updates: obj({ lockId: str, from: int, to: int, messages: arr(hex) }),
  Enrolment: obj({ deviceId: int, token, tokenExpiresAt: int }),
  ProvisioningBundle: obj({ lockId: str, doorId: int, rootPublicKeys: arr(hex), lockSecret: hex, timeZone: str, policy: ref('LockPolicy') }),
  LockRow: obj({ lockId: str, doorId: int, version: int, versionInForce: int, inForceSince: nullable(int), deviceRegistered: bool }),
  PendingRevocation: obj({
    doorId: int,
    doorName: str,
    lockId: str,
    credId: int,
    kind: str,
    holder: str,
    subject: str,
    partnerId: nullable(int),
    keyId: nullable(int),
    removedInVersion: int,
    versionInForce: int,
    since: int,
  }),
  HonouringDoor: obj({ doorId: int, doorName: str, lockId: str, versionInForce: int, credentials: int, assignedNow: bool }),
  AuditRecord: obj({ seq: int, time: int, event: str, credId: int, reason: int, value: int, anchored: bool }, ['seq', 'time', 'event', 'anchored']),
  AuditAccess: obj({
    seq: int,
    time: int,
    at: { type: 'string', pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' },
    granted: bool,
    reason: str,
    method: { type: 'string', enum: ['phone', 'doorcode', 'keycard', 'dailyCode'] },
    credId: nullable(int),
    credential: nullable(obj({ kind: str, deviceId: nullable(int) })),
    who: obj({ kind: { type: 'string', enum: ['user', 'partner', 'dailyCode', 'unknown'] }, id: int, name: str, role: str, removed: bool }, ['kind']),
    verified: bool,
    receipt: nullable(obj({ version: int, auditSeq: int, receivedAt: int })),
  }),
  AuditReport: obj({
    door: obj({ id: int, name: str, lockId: str }),
    from: nullable(int),
    until: nullable(int),
    accesses: arr(ref('AuditAccess')),
    refusalsNotLogged: int,
    recordsLost: int,
    heldThroughSeq: nullable(int),
    receiptAnchoredThroughSeq: nullable(int),
  }),
  Deleted: obj({ deleted: { type: 'boolean', enum: [true] } }),
};

type Auth = 'manager' | 'device' | 'partner' | 'courier' | 'lockOrManager' | 'none';
interface Op {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  path: string;
  id: string;
  summary: string;
  auth: Auth;
  body?: Schema;
  query?: Record<string, Schema>;
  status?: number;
  response: Schema;
  /** The same answer in another media type, for a request whose Accept asks for it. */
  alternative?: { mediaType: string; description: string };
  /** Refusals worth naming, per status; any other refusal is the `default` error body. */
  errors?: Record<number, AuthorityErrorCode[]>;
}

const SECURITY: Record<Auth, Record<string, string[]>[]> = {
  manager: [{ manager: [] }],
  device: [{ device: [] }],
  partner: [{ partner: [] }],
  courier: [{ device: [] }, { manager: [] }, { lock: [] }],
  lockOrManager: [{ lock: [] }, { manager: [] }],
  none: [],
};

const M = '/v1/manager';
const ops: Op[] = [
  { method: 'get', path: '/openapi.json', id: 'openapi', summary: 'this document', auth: 'none', response: { type: 'object' } },
  { method: 'get', path: '/v1/health', id: 'health', summary: 'readiness: answers 200 once the server and its storage answer (storage down: 503 STORAGE_UNAVAILABLE); no token', auth: 'none', response: closed({ status: { type: 'string', enum: ['ok'] } }) },
  // phones and locks
  {
    method: 'get',
    path: '/v1/locks/{lockId}/updates',
    id: 'lockUpdates',
    summary: 'signed delta(s) or snapshot from a version to the newest; JSON (messages as hex) unless Accept asks for application/cbor',
    auth: 'courier',
    query: { from: int, certSerial: int },
    response: ref('Updates'),
    alternative: {
      mediaType: 'application/cbor',
      description:
        'with Accept: application/cbor (at a q no lower than application/json\'s) the same fields as one CBOR map under integer keys, each message a byte string of its exact bytes: {1: lockId (text), 2: from (uint), 3: to (uint), 4: [message (bytes), …]} (protocol/updates-body.ts). Refusals stay JSON error bodies.',
    },
  },
  { method: 'get', path: '/v1/locks/{lockId}/time', id: 'lockTime', summary: 'authority-signed time, bound to the session nonce', auth: 'courier', query: { nonce: hex }, response: obj({ signedTime: hex }) },
  { method: 'post', path: '/v1/locks/{lockId}/receipts', id: 'postReceipt', summary: 'relay a lock-signed receipt', auth: 'courier', status: 200, body: obj({ receipt: hex }), response: obj({ lockId: str, version: int, inForce: bool }) },
  { method: 'post', path: '/v1/locks/{lockId}/audit', id: 'postAudit', summary: 'relay a lock-signed audit export', auth: 'courier', status: 200, body: obj({ export: hex }), response: obj({ accepted: int, anchoredThrough: nullable(int), anchor: hex }, ['accepted', 'anchoredThrough']) },
  {
    method: 'post',
    path: '/v1/locks/{lockId}/relay',
    id: 'postRelay',
    summary: "a Door Sync's receipt and audit export in one call: each judged as on its own route (receipt first) and answered on its own, with the status that route would have given",
    auth: 'courier',
    status: 200,
    body: obj({ receipt: hex, export: hex }, []),
    response: obj(
      {
        receipt: { oneOf: [closed({ status: { type: 'integer', enum: [200] }, result: obj({ lockId: str, version: int, inForce: bool }) }), closed({ status: int, error: obj({ code: str, message: str, details: { type: 'object' } }, ['code', 'message']) })] },
        audit: {
          oneOf: [
            closed({ status: { type: 'integer', enum: [200] }, result: obj({ accepted: int, anchoredThrough: nullable(int), anchor: hex }, ['accepted', 'anchoredThrough']) }),
            closed({ status: int, error: obj({ code: str, message: str, details: { type: 'object' } }, ['code', 'message']) }),
          ],
        },
      },
      [],
    ),
  },
  { method: 'get', path: '/v1/uplink/{lockId}', id: 'uplink', summary: "a connected lock's long poll: updates past `from` and signed time", auth: 'lockOrManager', query: { from: int, wait: int, nonce: hex, certSerial: int }, response: { allOf: [ref('Updates'), obj({ signedTime: hex })] } },
  // residents' and guests' phones
  { method: 'get', path: '/v1/me', id: 'me', summary: 'the device and its user', auth: 'device', response: obj({ deviceId: int, user: nullable(ref('User')), partnerId: nullable(int) }) },
  { method: 'post', path: '/v1/me/token', id: 'myRotateToken', summary: 'the device rotates its own token: the old one is refused at once (401, reason ROTATED), the new one lives the device-token lifetime', auth: 'device', response: ref('DeviceToken'), errors: { 409: ['FORBIDDEN_TRANSITION', 'PARTNER_NOT_AUTHORIZED'] } },
  { method: 'get', path: '/v1/me/credentials', id: 'myCredentials', summary: 'credential ids this device holds per lock', auth: 'device', response: obj({ credentials: arr(ref('Grant')) }) },
  { method: 'post', path: '/v1/me/guests', id: 'myInviteGuest', summary: 'a resident invites a guest to some of their doors', auth: 'device', body: obj({ name: str, doorIds: arr(int), validFrom: int, validUntil: int }, ['name', 'doorIds']), response: obj({ guest: ref('User'), keys: arr(ref('Key')) }) },
  { method: 'delete', path: '/v1/me/guests/{guestId}', id: 'myRevokeGuest', summary: "a resident revokes their guest", auth: 'device', response: obj({ revoked: int }) },
  // partners
  { method: 'get', path: '/v1/partner', id: 'partnerSelf', summary: 'the partner, its doors, keys and devices', auth: 'partner', response: ref('Partner') },
  { method: 'post', path: '/v1/partner/devices', id: 'partnerEnrolDevice', summary: 'enrol a partner device public key', auth: 'partner', body: obj({ publicKey: hex }), response: ref('Enrolment') },
  { method: 'post', path: '/v1/partner/token', id: 'partnerRotateToken', summary: 'the partner rotates its API token: the old one is refused at once', auth: 'partner', response: ref('PartnerToken'), errors: { 409: ['PARTNER_NOT_AUTHORIZED'] } },
  { method: 'get', path: '/v1/partner/credentials', id: 'partnerCredentials', summary: "credential ids of the partner's devices", auth: 'partner', response: obj({ credentials: arr(ref('Grant')) }) },
  // partner-issued access: the partner's own users, within its partner keys and directly assigned doors
  {
    method: 'post',
    path: '/v1/partner/grants',
    id: 'partnerGrant',
    summary: "grant one of the partner's users access within its scope (a door or key beyond it: 409 PARTNER_GRANT_OUT_OF_SCOPE)",
    auth: 'partner',
    body: ref('PartnerGrantInput'),
    response: ref('PartnerGrant'),
    errors: { 400: ['VALIDATION', 'WEAK_PUBLIC_KEY'], 404: ['UNKNOWN_DOOR', 'UNKNOWN_KEY'], 409: ['PARTNER_GRANT_OUT_OF_SCOPE', 'PARTNER_NOT_AUTHORIZED'] },
  },
  { method: 'get', path: '/v1/partner/grants', id: 'partnerListGrants', summary: "the partner's own grants (never another partner's)", auth: 'partner', response: closed({ grants: arr(ref('PartnerGrant')) }) },
  { method: 'get', path: '/v1/partner/grants/{grantId}', id: 'partnerGetGrant', summary: "one of the partner's own grants (another partner's is 404 UNKNOWN_GRANT, as if it did not exist)", auth: 'partner', response: ref('PartnerGrant'), errors: { 400: ['VALIDATION'], 404: ['UNKNOWN_GRANT'] } },
  { method: 'delete', path: '/v1/partner/grants/{grantId}', id: 'partnerRevokeGrant', summary: "revoke one of the partner's own grants (pending at offline doors until their sync; another partner's is 404 UNKNOWN_GRANT)", auth: 'partner', response: closed({ revoked: int }), errors: { 400: ['VALIDATION'], 404: ['UNKNOWN_GRANT'] } },
  // managers
  { method: 'get', path: `${M}/property`, id: 'getProperty', summary: 'property name, time zone, lock policy, keys', auth: 'manager', response: ref('Property') },
  { method: 'patch', path: `${M}/property`, id: 'setProperty', summary: 'change name, time zone or lock policy', auth: 'manager', body: obj({ name: str, timeZone: str, policy: { type: 'object' } }, []), response: ref('Property') },
  { method: 'get', path: `${M}/doors`, id: 'listDoors', summary: 'doors', auth: 'manager', response: obj({ doors: arr(ref('Door')) }) },
  { method: 'post', path: `${M}/doors`, id: 'addDoor', summary: 'add a door', auth: 'manager', body: obj({ name: str, kind: { type: 'string', enum: ['communal', 'private'] }, connected: bool, policy: { type: 'object' } }, ['name']), response: ref('Door') },
  { method: 'get', path: `${M}/doors/{doorId}`, id: 'getDoor', summary: 'a door', auth: 'manager', response: ref('Door') },
  { method: 'patch', path: `${M}/doors/{doorId}`, id: 'updateDoor', summary: "change a door's name, kind, connectivity or policy", auth: 'manager', body: obj({ name: str, kind: str, connected: bool, policy: nullable({ type: 'object' }) }, []), response: ref('Door') },
  { method: 'delete', path: `${M}/doors/{doorId}`, id: 'removeDoor', summary: 'remove a door and its lock', auth: 'manager', response: ref('Deleted') },
  { method: 'post', path: `${M}/doors/{doorId}/daily-codes`, id: 'issueDailyCode', summary: 'a daily or single-use daily code', auth: 'manager', body: obj({ kind: { type: 'string', enum: ['daily', 'dailySingleUse'] }, date: str, label: str }, []), response: obj({ code: str, date: str, slot: int }, ['code', 'date', 'slot']) },
  { method: 'get', path: `${M}/doors/{doorId}/audit`, id: 'doorAudit', summary: 'who opened the door between two times, with which credential, anchored by which receipt; refusals with reasons', auth: 'manager', query: { from: int, until: int, grantedOnly: { type: 'string', enum: ['true', 'false'] } }, response: ref('AuditReport') },
  { method: 'put', path: `${M}/doors/{doorId}/partners/{partnerId}`, id: 'assignPartnerToDoor', summary: 'assign a partner to a door (a pending or terminated partner: 409 PARTNER_NOT_AUTHORIZED)', auth: 'manager', response: ref('Partner') },
  { method: 'delete', path: `${M}/doors/{doorId}/partners/{partnerId}`, id: 'unassignPartnerFromDoor', summary: 'remove a partner from a door (pending at offline locks until a sync)', auth: 'manager', response: ref('Partner') },
  { method: 'get', path: `${M}/keys`, id: 'listKeys', summary: 'Keys', auth: 'manager', response: obj({ keys: arr(ref('Key')) }) },
  { method: 'post', path: `${M}/keys`, id: 'createKey', summary: 'make a Key (a partner key with partnerId)', auth: 'manager', body: obj({ name: str, doors: arr(ref('KeyDoorInput')), partnerId: nullable(int) }, ['name', 'doors']), response: ref('Key') },
  { method: 'get', path: `${M}/keys/{keyId}`, id: 'getKey', summary: 'a Key', auth: 'manager', response: ref('Key') },
  { method: 'patch', path: `${M}/keys/{keyId}`, id: 'updateKey', summary: "rename, replace the door set, or attach a partner", auth: 'manager', body: obj({ name: str, doors: arr(ref('KeyDoorInput')), partnerId: nullable(int) }, []), response: ref('Key') },
  { method: 'delete', path: `${M}/keys/{keyId}`, id: 'deleteKey', summary: 'delete a Key', auth: 'manager', response: ref('Deleted') },
  { method: 'put', path: `${M}/keys/{keyId}/doors/{doorId}`, id: 'setKeyDoor', summary: "add a door to a Key or change its settings", auth: 'manager', body: obj({ doorcodesEnabled: bool, schedule: nullable(arr(ref('ScheduleWindow'))) }, []), response: ref('Key') },
  { method: 'delete', path: `${M}/keys/{keyId}/doors/{doorId}`, id: 'removeKeyDoor', summary: 'remove a door from a Key', auth: 'manager', response: ref('Key') },
  { method: 'get', path: `${M}/users`, id: 'listUsers', summary: 'users', auth: 'manager', response: obj({ users: arr(ref('User')) }) },
  { method: 'post', path: `${M}/users`, id: 'addUser', summary: 'add a resident or staff member', auth: 'manager', body: obj({ name: str, role: { type: 'string', enum: ['resident', 'staff'] } }, ['name']), response: ref('User') },
  { method: 'get', path: `${M}/users/{userId}`, id: 'getUser', summary: 'a user', auth: 'manager', response: ref('User') },
  { method: 'delete', path: `${M}/users/{userId}`, id: 'removeUser', summary: 'remove a user', auth: 'manager', response: ref('Deleted') },
  { method: 'post', path: `${M}/users/{userId}/keys`, id: 'assignKey', summary: 'assign a Key (managers assign Keys, never doors)', auth: 'manager', body: obj({ keyId: int, mayShare: bool, validFrom: int, validUntil: int }, ['keyId']), response: obj({ assignment: ref('Assignment'), doorcodes: arr(obj({ doorId: int, code: str })) }) },
  { method: 'patch', path: `${M}/users/{userId}/keys/{keyId}`, id: 'setMayShare', summary: '"May Share Key" on an assignment', auth: 'manager', body: obj({ mayShare: bool }), response: ref('Assignment') },
  { method: 'delete', path: `${M}/users/{userId}/keys/{keyId}`, id: 'unassignKey', summary: 'take a Key away', auth: 'manager', response: ref('Deleted') },
  { method: 'post', path: `${M}/users/{userId}/guests`, id: 'inviteGuest', summary: "invite a guest on a resident's behalf", auth: 'manager', body: obj({ name: str, doorIds: arr(int), validFrom: int, validUntil: int }, ['name', 'doorIds']), response: obj({ guest: ref('User'), keys: arr(ref('Key')) }) },
  { method: 'delete', path: `${M}/guests/{guestId}`, id: 'revokeGuest', summary: 'revoke a guest', auth: 'manager', response: ref('Deleted') },
  { method: 'post', path: `${M}/users/{userId}/devices`, id: 'enrolUserDevice', summary: "enrol a phone's public key", auth: 'manager', body: obj({ publicKey: hex }), response: ref('Enrolment') },
  { method: 'delete', path: `${M}/devices/{deviceId}`, id: 'revokeDevice', summary: 'revoke a device', auth: 'manager', response: ref('Deleted') },
  { method: 'post', path: `${M}/devices/{deviceId}/token`, id: 'rotateDeviceToken', summary: "a new token for a device, e.g. after its old one expired (the old one is refused as ROTATED)", auth: 'manager', response: ref('DeviceToken'), errors: { 404: ['UNKNOWN_DEVICE'], 409: ['FORBIDDEN_TRANSITION', 'PARTNER_NOT_AUTHORIZED'] } },
  { method: 'get', path: `${M}/devices/{deviceId}/credentials`, id: 'deviceCredentials', summary: 'credential ids a device holds', auth: 'manager', response: obj({ credentials: arr(ref('Grant')) }) },
  { method: 'post', path: `${M}/users/{userId}/doorcodes`, id: 'issueDoorcode', summary: 'issue (or pin) a doorcode for a door', auth: 'manager', body: obj({ doorId: int, code: { type: 'string', pattern: '^[0-9]{7}$' } }, ['doorId']), response: obj({ doorId: int, keyId: int, code: str }) },
  { method: 'delete', path: `${M}/users/{userId}/doorcodes/{doorId}`, id: 'revokeDoorcode', summary: "revoke a user's doorcode for a door", auth: 'manager', response: ref('Deleted') },
  { method: 'post', path: `${M}/users/{userId}/keycards`, id: 'addKeycard', summary: 'register a keycard UID', auth: 'manager', body: obj({ uid: hex }), response: obj({ id: int, userId: int, uid: hex }) },
  { method: 'delete', path: `${M}/keycards/{keycardId}`, id: 'removeKeycard', summary: 'remove a keycard', auth: 'manager', response: ref('Deleted') },
  { method: 'get', path: `${M}/partners`, id: 'listPartners', summary: 'partners', auth: 'manager', response: obj({ partners: arr(ref('Partner')) }) },
  {
    method: 'post',
    path: `${M}/partners`,
    id: 'authorizePartner',
    summary: "{name}: authorize a partner integration, new or pending (returns its partner token); {name, authorized: false}: only register it, status 'pending' (no token; it cannot be assigned: 409 PARTNER_NOT_AUTHORIZED)",
    auth: 'manager',
    body: obj({ name: str, authorized: bool }, ['name']),
    response: { oneOf: [closed({ partner: ref('Partner'), token }), closed({ partner: ref('Partner') })] },
  },
  { method: 'get', path: `${M}/partners/{partnerId}`, id: 'getPartner', summary: 'a partner', auth: 'manager', response: ref('Partner') },
  { method: 'post', path: `${M}/partners/{partnerId}/terminate`, id: 'terminatePartner', summary: 'terminate the integration (refused while assigned: PARTNER_STILL_ASSIGNED lists doors and keys; a pending partner: PARTNER_NOT_AUTHORIZED)', auth: 'manager', response: ref('Partner') },
  { method: 'post', path: `${M}/partners/{partnerId}/devices`, id: 'enrolPartnerDevice', summary: "enrol a partner device's public key (a pending or terminated partner: 409 PARTNER_NOT_AUTHORIZED)", auth: 'manager', body: obj({ publicKey: hex }), response: ref('Enrolment') },
  { method: 'post', path: `${M}/partners/{partnerId}/token`, id: 'rotatePartnerToken', summary: "a new API token for an authorized partner (the old one is refused at once)", auth: 'manager', response: ref('PartnerToken'), errors: { 404: ['UNKNOWN_PARTNER'], 409: ['PARTNER_NOT_AUTHORIZED'] } },
  { method: 'get', path: `${M}/partners/{partnerId}/grants`, id: 'listPartnerGrants', summary: "the access a partner has issued to its users", auth: 'manager', response: closed({ grants: arr(ref('PartnerGrant')) }), errors: { 404: ['UNKNOWN_PARTNER'] } },
  { method: 'get', path: `${M}/partners/{partnerId}/honouring`, id: 'doorsHonouringPartner', summary: "doors whose lock still honours the partner (per receipts)", auth: 'manager', response: obj({ doors: arr(ref('HonouringDoor')) }) },
  { method: 'post', path: `${M}/signing-key/rotate`, id: 'rotateSigningKey', summary: 'the root certifies a new online signing key', auth: 'manager', response: obj({ serial: int, keyId: hex }) },
  { method: 'get', path: `${M}/locks`, id: 'listLocks', summary: 'locks, newest version and version in force', auth: 'manager', response: obj({ locks: arr(ref('LockRow')) }) },
  { method: 'post', path: `${M}/locks`, id: 'provisionLock', summary: "create a door's lock; its provisioning bundle (lock secret, shown once)", auth: 'manager', body: obj({ doorId: int }), response: ref('ProvisioningBundle') },
  { method: 'post', path: `${M}/locks/{lockId}/device`, id: 'registerLockDevice', summary: "record the lock's device public key (returns its lock token)", auth: 'manager', body: obj({ publicKey: hex, replace: bool }, ['publicKey']), response: obj({ lockId: str, token: str }) },
  { method: 'get', path: `${M}/locks/{lockId}/audit`, id: 'lockAuditLog', summary: "the lock's stored audit records", auth: 'manager', response: obj({ records: arr(ref('AuditRecord')) }) },
  { method: 'get', path: `${M}/revocations/pending`, id: 'pendingRevocations', summary: 'revocations not yet in force, per door, since when', auth: 'manager', query: { partnerId: int, doorId: int }, response: obj({ pending: arr(ref('PendingRevocation')) }) },
];

function pathParams(path: string): Schema[] {
  return [...path.matchAll(/\{(\w+)\}/g)].map((m) => ({
    name: m[1],
    in: 'path',
    required: true,
    schema: m[1] === 'lockId' ? { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,31}$' } : { type: 'integer', minimum: 1 },
  }));
}

/** The OpenAPI 3.0.3 document of the authority's HTTP API. */
export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of ops) {
    const status = op.status ?? (op.method === 'post' ? 201 : 200);
    const parameters = [...pathParams(op.path), ...Object.entries(op.query ?? {}).map(([name, schema]) => ({ name, in: 'query', required: false, schema }))];
    const o: Record<string, unknown> = {
      operationId: op.id,
      summary: op.summary,
      security: SECURITY[op.auth],
      responses: {
        [String(status)]: {
          description: op.alternative === undefined ? 'success' : `success. JSON by default; ${op.alternative.description}`,
          content: {
            'application/json': { schema: op.response },
            ...(op.alternative === undefined ? {} : { [op.alternative.mediaType]: { schema: { type: 'string', format: 'binary' } } }),
          },
        },
        ...Object.fromEntries(
          Object.entries(op.errors ?? {}).map(([st, codes]) => [st, { description: codes.join(', '), content: { 'application/json': { schema: errorBody(codes) } } }]),
        ),
        // Any route refuses a bad token, even one that needs none.
        '401': {
          description: `a bearer token refused: details.reason is ${UNAUTHORIZED_REASONS.join(', ')}; details.takes names the token kind the route takes`,
          content: { 'application/json': { schema: ref('Unauthorized') } },
        },
        '503': { description: "STORAGE_UNAVAILABLE: the authority's database (PostgreSQL) is unreachable; nothing was written, retry — except when details.outcome is 'unknown' (the connection was lost at COMMIT): read the state before repeating the request", content: { 'application/json': { schema: ref('StorageUnavailable') } } },
        default: { description: 'a refusal: 4xx/5xx with a named code (authority/errors.ts)', content: { 'application/json': { schema: ref('Error') } } },
      },
    };
    if (parameters.length > 0) o.parameters = parameters;
    if (op.body !== undefined) o.requestBody = { required: true, content: { 'application/json': { schema: op.body } } };
    (paths[op.path] ??= {})[op.method] = o;
  }
  return {
    openapi: '3.0.3',
    info: {
      title: 'locksync authority',
      version: '1',
      description:
        'The property model (doors, Keys, users, guests, partners), per-lock signed tables and deltas, receipts, audit and signed time. Bearer tokens: the manager token (authority init), device tokens (enrolled phones and partner devices), partner tokens (authorized partners), lock tokens (registered locks). Errors: {"error": {"code", "message", "details"?}}.',
    },
    servers: [{ url: '/' }],
    components: {
      schemas,
      securitySchemes: {
        manager: { type: 'http', scheme: 'bearer', description: 'the manager token from `authority init`' },
        device: { type: 'http', scheme: 'bearer', description: 'a device token from `authority device enrol`' },
        partner: { type: 'http', scheme: 'bearer', description: 'a partner token from `authority partner authorize`' },
        lock: { type: 'http', scheme: 'bearer', description: "a lock's token from `authority register-lock`" },
      },
    },
    paths,
  };
}
