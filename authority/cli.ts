// `locksync authority …`: every manager operation against a property database, plus
// init and serve. Each command opens the database, runs one transaction and prints the
// result (human text, or JSON with --json). Refusals print their code and exit 2.

import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { Authority, type KeyDoorInput } from './authority';
import { AuthorityError } from './errors';
import { startAuthorityServer } from './server';
import { invalid } from './validate';

interface Common {
  db: string;
  keyDir?: string;
  rootKey?: string;
  json?: boolean;
}

function openOpts(o: Common): { dbPath: string; keyDir?: string; rootKeyPath?: string } {
  const out: { dbPath: string; keyDir?: string; rootKeyPath?: string } = { dbPath: o.db };
  if (o.keyDir !== undefined) out.keyDir = o.keyDir;
  if (o.rootKey !== undefined) out.rootKeyPath = o.rootKey;
  return out;
}

function human(v: unknown, indent = ''): string {
  if (v === null || v === undefined) return `${indent}-`;
  if (Array.isArray(v)) {
    if (v.length === 0) return `${indent}(none)`;
    return v.map((x) => (typeof x === 'object' && x !== null ? `${indent}- ${human(x, indent + '  ').trimStart()}` : `${indent}- ${String(x)}`)).join('\n');
  }
  if (typeof v === 'object') {
    return Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => (typeof x === 'object' && x !== null && !(Array.isArray(x) && x.every((y) => typeof y !== 'object')) ? `${indent}${k}:\n${human(x, indent + '  ')}` : `${indent}${k}: ${Array.isArray(x) ? (x.length === 0 ? '(none)' : x.join(', ')) : String(x)}`))
      .join('\n');
  }
  return `${indent}${String(v)}`;
}

function print(o: { json?: boolean }, result: unknown): void {
  process.stdout.write((o.json ? JSON.stringify(result ?? { ok: true }) : human(result ?? 'ok')) + '\n');
}

function fail(o: { json?: boolean }, e: unknown): void {
  if (e instanceof AuthorityError) {
    if (o.json) process.stdout.write(JSON.stringify({ error: e.toJSON() }) + '\n');
    else process.stderr.write(`error ${e.code}: ${e.toJSON().message}${e.details ? `\n${human(e.details, '  ')}` : ''}\n`);
    process.exitCode = 2;
    return;
  }
  throw e;
}

function withAuthority<O extends Common>(fn: (a: Authority, o: O) => unknown): (o: O) => void {
  return (o: O) => {
    let a: Authority | undefined;
    try {
      a = Authority.open(openOpts(o));
      print(o, fn(a, o));
    } catch (e) {
      fail(o, e);
    } finally {
      a?.close();
    }
  };
}

function int(v: string | undefined, what: string): number {
  if (v === undefined || !/^[0-9]+$/.test(v)) throw invalid(`${what} must be a number`);
  return Number(v);
}

function optNum(v: string | undefined, what: string): number | undefined {
  return v === undefined ? undefined : int(v, what);
}

function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

/**
 * Door spec for Keys: ID[:nocodes][:sched=DAYS@HH:MM-HH:MM+DAYS@HH:MM-HH:MM...]
 * DAYS is a comma list of mon..sun, weekdays, weekend or daily. Example:
 *   --door 3:sched=weekdays@06:00-22:00+sat,sun@08:00-20:00
 */
export function parseDoorSpec(spec: string): KeyDoorInput {
  const [idPart, ...rest] = spec.split(':sched=')[0]!.split(':');
  const sched = spec.includes(':sched=') ? spec.slice(spec.indexOf(':sched=') + 7) : undefined;
  const out: KeyDoorInput = { doorId: int(idPart, 'door id'), doorcodesEnabled: !rest.includes('nocodes') };
  for (const r of rest) if (r !== 'nocodes' && r !== 'codes') throw invalid(`unknown door option ${r}`);
  if (sched !== undefined) {
    out.schedule = sched.split('+').map((w) => {
      const m = /^([a-z,]+)@([0-9]{1,2}:[0-9]{2})-([0-9]{1,2}:[0-9]{2})$/.exec(w);
      if (m === null) throw invalid(`bad schedule window ${JSON.stringify(w)} (want DAYS@HH:MM-HH:MM)`);
      return { days: (m[1] as string).split(','), start: m[2] as string, end: m[3] as string };
    });
  }
  return out;
}

function common(c: Command): Command {
  return c
    .requiredOption('--db <file>', 'property database (SQLite)')
    .option('--key-dir <dir>', 'key directory (default <db>.keys)')
    .option('--root-key <file>', 'offline root key file (default <key-dir>/root.key)')
    .option('--json', 'machine-readable output');
}

export function registerAuthorityCommands(program: Command): void {
  const auth = program.command('authority').description('the cloud side: property model, signed per-lock tables, receipts, HTTP API');

  common(auth.command('init').description('create a property database, key files and the manager token'))
    .option('--seed <seed>', 'derive every key and token from this seed (demos and tests only)')
    .option('--tz <zone>', 'IANA time zone of the property', 'UTC')
    .option('--name <name>', 'property name', 'Property')
    .option('--lease <seconds>', 'freshness lease for partner/guest credentials (0 = off)')
    .action((o: Common & { seed?: string; tz: string; name: string; lease?: string }) => {
      try {
        const init: Parameters<typeof Authority.init>[0] = { ...openOpts(o), timeZone: o.tz, propertyName: o.name };
        if (o.seed !== undefined) init.seed = o.seed;
        if (o.lease !== undefined) init.policy = { leaseSeconds: int(o.lease, 'lease') };
        const { authority, managerToken, rootPublicKey } = Authority.init(init);
        const keyDir = authority.paths.keyDir;
        authority.close();
        print(o, { db: o.db, keyDir, rootPublicKey, managerToken });
      } catch (e) {
        fail(o, e);
      }
    });

  common(auth.command('serve').description('serve the JSON HTTP API'))
    .requiredOption('--port <n>', 'TCP port (0 = any free port)')
    .option('--host <host>', 'listen address', '127.0.0.1')
    .option('--max-wait <seconds>', 'longest uplink long-poll', '60')
    .option('--poll-ms <ms>', 'uplink re-check interval for changes made by other processes', '500')
    .action(async (o: Common & { port: string; host: string; maxWait: string; pollMs: string }) => {
      try {
        const s = await startAuthorityServer({ ...openOpts(o), port: int(o.port, 'port'), host: o.host, maxWaitSeconds: int(o.maxWait, 'max-wait'), pollIntervalMs: int(o.pollMs, 'poll-ms') });
        process.stdout.write(o.json ? JSON.stringify({ url: s.url }) + '\n' : `authority listening on ${s.url}\n`);
        const stop = (): void => void s.close().then(() => process.exit(0));
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      } catch (e) {
        fail(o, e);
      }
    });

  const property = auth.command('property').description('property name, time zone, lock policy');
  common(property.command('show')).action(withAuthority((a) => a.property()));
  common(property.command('set'))
    .option('--name <name>')
    .option('--tz <zone>')
    .option('--policy <json>', 'lock policy fields, e.g. {"leaseSeconds":86400,"wrongCodeLimit":5}')
    .action(
      withAuthority((a, o: Common & { name?: string; tz?: string; policy?: string }) => {
        const input: Parameters<Authority['setProperty']>[0] = {};
        if (o.name !== undefined) input.name = o.name;
        if (o.tz !== undefined) input.timeZone = o.tz;
        if (o.policy !== undefined) input.policy = JSON.parse(o.policy) as never;
        return a.setProperty(input);
      }),
    );

  const door = auth.command('door').description('doors (communal/private, internet-connected or not)');
  common(door.command('list')).action(withAuthority((a) => a.listDoors()));
  common(door.command('add'))
    .requiredOption('--name <name>')
    .option('--communal', 'a communal door (default private)')
    .option('--connected', 'internet-connected lock (receives changes via the uplink)')
    .action(withAuthority((a, o: Common & { name: string; communal?: boolean; connected?: boolean }) => a.addDoor({ name: o.name, kind: o.communal ? 'communal' : 'private', connected: o.connected === true })));
  common(door.command('update'))
    .requiredOption('--door <id>')
    .option('--name <name>')
    .option('--kind <kind>', 'communal | private')
    .option('--connected <bool>', 'true | false')
    .option('--policy <json>', 'door-level lock policy overrides, or null')
    .action(
      withAuthority((a, o: Common & { door: string; name?: string; kind?: string; connected?: string; policy?: string }) => {
        const input: Parameters<Authority['updateDoor']>[1] = {};
        if (o.name !== undefined) input.name = o.name;
        if (o.kind !== undefined) input.kind = o.kind as 'communal';
        if (o.connected !== undefined) input.connected = o.connected === 'true';
        if (o.policy !== undefined) input.policy = JSON.parse(o.policy) as never;
        return a.updateDoor(int(o.door, 'door'), input);
      }),
    );
  common(door.command('remove')).requiredOption('--door <id>').action(withAuthority((a, o: Common & { door: string }) => a.removeDoor(int(o.door, 'door'))));

  const key = auth.command('key').description('Keys: sets of doors with per-door doorcode and schedule settings');
  const doorHelp = 'ID[:nocodes][:sched=DAYS@HH:MM-HH:MM+…] (repeatable)';
  common(key.command('list')).action(withAuthority((a) => a.listKeys()));
  common(key.command('create'))
    .requiredOption('--name <name>')
    .option('--door <spec>', doorHelp, collect)
    .option('--partner <id>', 'attach a partner: makes a partner key (permanent)')
    .action(
      withAuthority((a, o: Common & { name: string; door?: string[]; partner?: string }) =>
        a.createKey({ name: o.name, doors: (o.door ?? []).map(parseDoorSpec), partnerId: optNum(o.partner, 'partner') ?? null }),
      ),
    );
  common(key.command('update'))
    .requiredOption('--key <id>')
    .option('--name <name>')
    .option('--door <spec>', `replace the door set: ${doorHelp}`, collect)
    .option('--partner <id>', 'attach a partner (cannot be changed or removed later)')
    .action(
      withAuthority((a, o: Common & { key: string; name?: string; door?: string[]; partner?: string }) => {
        const input: Parameters<Authority['updateKey']>[1] = {};
        if (o.name !== undefined) input.name = o.name;
        if (o.door !== undefined) input.doors = o.door.map(parseDoorSpec);
        if (o.partner !== undefined) input.partnerId = o.partner === 'none' ? null : int(o.partner, 'partner');
        return a.updateKey(int(o.key, 'key'), input);
      }),
    );
  common(key.command('set-door').description('add a door to a Key or change its settings'))
    .requiredOption('--key <id>')
    .requiredOption('--door <spec>', 'ID[:nocodes][:sched=…]')
    .action(withAuthority((a, o: Common & { key: string; door: string }) => a.setKeyDoor(int(o.key, 'key'), parseDoorSpec(o.door))));
  common(key.command('remove-door'))
    .requiredOption('--key <id>')
    .requiredOption('--door <id>')
    .action(withAuthority((a, o: Common & { key: string; door: string }) => a.removeKeyDoor(int(o.key, 'key'), int(o.door, 'door'))));
  common(key.command('delete').description('delete a Key (and its doorcodes, assignments and guest keys)'))
    .requiredOption('--key <id>')
    .action(withAuthority((a, o: Common & { key: string }) => a.deleteKey(int(o.key, 'key'))));

  const user = auth.command('user').description('residents and staff');
  common(user.command('list')).action(withAuthority((a) => a.listUsers()));
  common(user.command('show')).requiredOption('--user <id>').action(withAuthority((a, o: Common & { user: string }) => a.user(int(o.user, 'user'))));
  common(user.command('add'))
    .requiredOption('--name <name>')
    .option('--staff', 'staff member (default resident)')
    .action(withAuthority((a, o: Common & { name: string; staff?: boolean }) => a.addUser({ name: o.name, role: o.staff ? 'staff' : 'resident' })));
  common(user.command('remove')).requiredOption('--user <id>').action(withAuthority((a, o: Common & { user: string }) => a.removeUser(int(o.user, 'user'))));

  common(auth.command('assign').description('assign a Key to a user (managers assign Keys, never doors)'))
    .requiredOption('--user <id>')
    .requiredOption('--key <id>')
    .option('--no-share', 'turn "May Share Key" off')
    .option('--from <unix>', 'valid from')
    .option('--until <unix>', 'valid until')
    .action(
      withAuthority((a, o: Common & { user: string; key: string; share: boolean; from?: string; until?: string }) => {
        const opts: { mayShare: boolean; validFrom?: number; validUntil?: number } = { mayShare: o.share };
        const f = optNum(o.from, 'from');
        const u = optNum(o.until, 'until');
        if (f !== undefined) opts.validFrom = f;
        if (u !== undefined) opts.validUntil = u;
        return a.assignKey(int(o.user, 'user'), int(o.key, 'key'), opts);
      }),
    );
  common(auth.command('unassign').description('take a Key away (its doorcodes and guests go too)'))
    .requiredOption('--user <id>')
    .requiredOption('--key <id>')
    .action(withAuthority((a, o: Common & { user: string; key: string }) => a.unassignKey(int(o.user, 'user'), int(o.key, 'key'))));
  common(auth.command('may-share').description('set "May Share Key" on an assignment'))
    .requiredOption('--user <id>')
    .requiredOption('--key <id>')
    .requiredOption('--value <bool>', 'true | false')
    .action(withAuthority((a, o: Common & { user: string; key: string; value: string }) => a.setMayShare(int(o.user, 'user'), int(o.key, 'key'), o.value === 'true')));

  const guest = auth.command('guest').description('guests invited by residents');
  common(guest.command('invite'))
    .requiredOption('--resident <id>')
    .requiredOption('--name <name>')
    .requiredOption('--doors <ids>', 'comma-separated door ids')
    .option('--from <unix>')
    .option('--until <unix>')
    .action(
      withAuthority((a, o: Common & { resident: string; name: string; doors: string; from?: string; until?: string }) => {
        const input: Parameters<Authority['inviteGuest']>[1] = { name: o.name, doorIds: o.doors.split(',').map((d) => int(d.trim(), 'door')) };
        const f = optNum(o.from, 'from');
        const u = optNum(o.until, 'until');
        if (f !== undefined) input.validFrom = f;
        if (u !== undefined) input.validUntil = u;
        return a.inviteGuest(int(o.resident, 'resident'), input);
      }),
    );
  common(guest.command('revoke')).requiredOption('--guest <id>').action(withAuthority((a, o: Common & { guest: string }) => a.revokeGuest(int(o.guest, 'guest'))));

  const partner = auth.command('partner').description('partners: authorize, assign per door, terminate');
  common(partner.command('list')).action(withAuthority((a) => a.listPartners()));
  common(partner.command('authorize')).requiredOption('--name <name>').action(withAuthority((a, o: Common & { name: string }) => a.authorizePartner(o.name)));
  common(partner.command('assign-door'))
    .requiredOption('--partner <id>')
    .requiredOption('--door <id>')
    .action(withAuthority((a, o: Common & { partner: string; door: string }) => a.assignPartnerToDoor(int(o.partner, 'partner'), int(o.door, 'door'))));
  common(partner.command('unassign-door'))
    .requiredOption('--partner <id>')
    .requiredOption('--door <id>')
    .action(withAuthority((a, o: Common & { partner: string; door: string }) => a.unassignPartnerFromDoor(int(o.partner, 'partner'), int(o.door, 'door'))));
  common(partner.command('terminate').description('terminate the integration (refused while assigned to any door)'))
    .requiredOption('--partner <id>')
    .action(withAuthority((a, o: Common & { partner: string }) => a.terminatePartner(int(o.partner, 'partner'))));
  common(partner.command('key').description('create a partner key (a Key with the partner attached)'))
    .requiredOption('--partner <id>')
    .requiredOption('--name <name>')
    .option('--door <spec>', doorHelp, collect)
    .action(withAuthority((a, o: Common & { partner: string; name: string; door?: string[] }) => a.createKey({ name: o.name, doors: (o.door ?? []).map(parseDoorSpec), partnerId: int(o.partner, 'partner') })));

  const device = auth.command('device').description('phone and partner device public keys');
  common(device.command('enrol'))
    .option('--user <id>')
    .option('--partner <id>')
    .requiredOption('--public-key <hex>', 'Ed25519 public key generated on the device')
    .action(
      withAuthority((a, o: Common & { user?: string; partner?: string; publicKey: string }) => {
        if ((o.user === undefined) === (o.partner === undefined)) throw invalid('give exactly one of --user or --partner');
        return o.user !== undefined ? a.enrolUserDevice(int(o.user, 'user'), o.publicKey) : a.enrolPartnerDevice(int(o.partner, 'partner'), o.publicKey);
      }),
    );
  common(device.command('revoke')).requiredOption('--device <id>').action(withAuthority((a, o: Common & { device: string }) => a.revokeDevice(int(o.device, 'device'))));
  common(device.command('credentials')).requiredOption('--device <id>').action(withAuthority((a, o: Common & { device: string }) => a.credentialsForDevice(int(o.device, 'device'))));
  common(device.command('credential-file').description('write the phone credential file the mobile agent reads'))
    .requiredOption('--device <id>')
    .requiredOption('--secret-key-file <file>', 'file holding the device secret key (hex)')
    .requiredOption('--out <file>', 'where to write the credential file (mode 0600)')
    .action(
      withAuthority((a, o: Common & { device: string; secretKeyFile: string; out: string }) => {
        const f = a.credentialFile(int(o.device, 'device'), readFileSync(o.secretKeyFile, 'utf8').trim());
        writeFileSync(o.out, JSON.stringify(f, null, 2) + '\n', { mode: 0o600 });
        return { written: o.out, holder: f.holder, publicKey: f.publicKey, credentials: f.credentials };
      }),
    );
  common(device.command('enrol-demo').description('demo/test: derive a device key from a seed, enrol it, write its credential file'))
    .option('--user <id>')
    .option('--partner <id>')
    .requiredOption('--seed <seed>')
    .requiredOption('--out <file>')
    .action(
      withAuthority((a, o: Common & { user?: string; partner?: string; seed: string; out: string }) => {
        if ((o.user === undefined) === (o.partner === undefined)) throw invalid('give exactly one of --user or --partner');
        const r = a.enrolDeviceWithNewKey(o.user !== undefined ? { userId: int(o.user, 'user') } : { partnerId: int(o.partner, 'partner') }, o.seed);
        writeFileSync(o.out, JSON.stringify(r.credentialFile, null, 2) + '\n', { mode: 0o600 });
        return { deviceId: r.deviceId, token: r.token, written: o.out, credentials: r.credentialFile.credentials };
      }),
    );

  const doorcode = auth.command('doorcode').description('7-digit permanent doorcodes');
  common(doorcode.command('issue'))
    .requiredOption('--user <id>')
    .requiredOption('--door <id>')
    .option('--code <digits>', 'choose the code (default: random)')
    .action(withAuthority((a, o: Common & { user: string; door: string; code?: string }) => a.issueDoorcode(int(o.user, 'user'), int(o.door, 'door'), o.code)));
  common(doorcode.command('revoke'))
    .requiredOption('--user <id>')
    .requiredOption('--door <id>')
    .action(withAuthority((a, o: Common & { user: string; door: string }) => a.revokeDoorcode(int(o.user, 'user'), int(o.door, 'door'))));

  common(auth.command('daily-code').description('issue a daily or single-use daily code (works without a sync)'))
    .requiredOption('--door <id>')
    .option('--single-use', 'a DAILY_SINGLE_USE code (15 minutes after first use)')
    .option('--date <YYYY-MM-DD>', 'local date (default today in the property time zone)')
    .option('--label <text>')
    .action(
      withAuthority((a, o: Common & { door: string; singleUse?: boolean; date?: string; label?: string }) => {
        const input: Parameters<Authority['issueDailyCode']>[1] = { kind: o.singleUse ? 'dailySingleUse' : 'daily' };
        if (o.date !== undefined) input.date = o.date;
        if (o.label !== undefined) input.label = o.label;
        return a.issueDailyCode(int(o.door, 'door'), input);
      }),
    );

  const keycard = auth.command('keycard').description('keycards (UID) per user');
  common(keycard.command('add'))
    .requiredOption('--user <id>')
    .requiredOption('--uid <hex>')
    .action(withAuthority((a, o: Common & { user: string; uid: string }) => a.addKeycard(int(o.user, 'user'), o.uid)));
  common(keycard.command('remove')).requiredOption('--keycard <id>').action(withAuthority((a, o: Common & { keycard: string }) => a.removeKeycard(int(o.keycard, 'keycard'))));

  common(auth.command('rotate-key').description('the offline root certifies a new online signing key')).action(withAuthority((a) => a.rotateSigningKey()));

  common(auth.command('reset-floor').description("root-signed reset of a lock's clock and version floors, for one session (recovery from a far-future time or version)"))
    .requiredOption('--lock <id>')
    .requiredOption('--nonce <hex>', "the lock's hello nonce for the session that will carry the reset")
    .requiredOption('--version-floor <n>', 'new version floor: at or above the newest version legitimately issued, below the snapshot that follows')
    .option('--time <unix-seconds>', 'new clock floor and clock (default: now)')
    .action(
      withAuthority((a, o: Common & { lock: string; nonce: string; versionFloor: string; time?: string }) => {
        const input: { versionFloor: number; time?: number } = { versionFloor: int(o.versionFloor, 'version floor') };
        const t = optNum(o.time, 'time');
        if (t !== undefined) input.time = t;
        return a.floorReset(o.lock, o.nonce, input);
      }),
    );

  common(auth.command('provision-lock').description('create the lock for a door; prints (or writes) its provisioning bundle'))
    .requiredOption('--door <id>')
    .option('--out <file>', 'write the bundle (it holds the lock secret) to this file, mode 0600')
    .action(
      withAuthority((a, o: Common & { door: string; out?: string }) => {
        const bundle = a.provisionLock(int(o.door, 'door'));
        if (o.out === undefined) return bundle;
        writeFileSync(o.out, JSON.stringify(bundle, null, 2) + '\n', { mode: 0o600 });
        return { lockId: bundle.lockId, doorId: bundle.doorId, written: o.out };
      }),
    );
  common(auth.command('register-lock').description("record a lock's device public key; prints its lock token"))
    .requiredOption('--lock <id>')
    .requiredOption('--public-key <hex>')
    .option('--replace', 'replace an existing device key')
    .action(withAuthority((a, o: Common & { lock: string; publicKey: string; replace?: boolean }) => a.registerLockDevice(o.lock, o.publicKey, { replace: o.replace === true })));
  common(auth.command('locks').description('locks, newest version and version in force')).action(withAuthority((a) => a.listLocks()));
  common(auth.command('updates').description('the update message(s) taking a lock from a version to the newest'))
    .requiredOption('--lock <id>')
    .option('--from <version>', 'version the lock holds', '0')
    .action(withAuthority((a, o: Common & { lock: string; from: string }) => a.updatesFor(o.lock, int(o.from, 'from'))));

  common(auth.command('pending').description('revocations not yet in force: at which doors, since when'))
    .option('--partner <id>')
    .option('--door <id>')
    .action(
      withAuthority((a, o: Common & { partner?: string; door?: string }) => {
        const f: { partnerId?: number; doorId?: number } = {};
        const p = optNum(o.partner, 'partner');
        const d = optNum(o.door, 'door');
        if (p !== undefined) f.partnerId = p;
        if (d !== undefined) f.doorId = d;
        return a.pendingRevocations(f);
      }),
    );
  common(auth.command('honouring').description('doors whose lock still honours a partner (per receipts)'))
    .requiredOption('--partner <id>')
    .action(withAuthority((a, o: Common & { partner: string }) => a.doorsHonouringPartner(int(o.partner, 'partner'))));
}
