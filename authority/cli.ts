// `locksync authority …`: every manager operation against a property database, plus
// init and serve. Each command opens the database, runs one transaction and prints the
// result (human text, or JSON with --json). A refusal changes nothing and ends as one line
// `error CODE: AUTHORITY_CODE: what — what to do` (USAGE 2 for a bad value, AUTHORITY_REFUSED
// 13 for an unknown id or a rule, BAD_STATE 16 for a missing or foreign database).

import { describeLocation } from './db';
import { PostgresError } from './postgres';
import { accessSync, constants as fsConstants, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { CliError, type ExitCodeName, parseIntegerOption } from '../cli/errors';
import { boolean, integer, oneOf } from '../cli/program';
import { Authority, type KeyDoorInput } from './authority';
import { auditReport, formatAuditReport, type AuditQuery } from './audit-query';
import { AuthorityError } from './errors';
import { startAuthorityServer } from './server';
import { type WhatIfModel, renderWhatIfHtml, renderWhatIfText, whatIfReport } from './whatif';
import { invalid } from './validate';

interface Common {
  db: string;
  keyDir?: string;
  rootKey?: string;
  statementTimeout?: number;
  connectTimeout?: number;
  json?: boolean;
}

function openOpts(o: Common): { dbPath: string; keyDir?: string; rootKeyPath?: string; statementTimeoutMs?: number; connectTimeoutMs?: number } {
  const out: { dbPath: string; keyDir?: string; rootKeyPath?: string; statementTimeoutMs?: number; connectTimeoutMs?: number } = { dbPath: o.db };
  if (o.keyDir !== undefined) out.keyDir = o.keyDir;
  if (o.rootKey !== undefined) out.rootKeyPath = o.rootKey;
  if (o.statementTimeout !== undefined) out.statementTimeoutMs = o.statementTimeout;
  if (o.connectTimeout !== undefined) out.connectTimeoutMs = o.connectTimeout;
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

/** What to do about each kind of refusal, for the one-line error. */
function todoFor(e: AuthorityError): string {
  if (e.code === 'VALIDATION') return 'fix the value named above (see --help)';
  if (e.status === 404) return 'check the id: the matching `list` command shows what exists';
  if (e.code === 'NOT_INITIALIZED') return 'run `locksync authority init --db FILE` first, or pass the right --db';
  if (e.code === 'ALREADY_INITIALIZED') return 'pass another --db (and --key-dir), or use the existing property';
  if (e.code === 'KEY_FILE') return 'pass the --key-dir/--root-key that `authority init` created for this --db (files must be mode 0600)';
  // A connection lost at COMMIT may have committed: "nothing was written" would be a lie.
  if (e.code === 'STORAGE_UNAVAILABLE' && e.details?.outcome === 'unknown') return 'check with the matching `list`/`show` command whether the change landed before repeating it';
  if (e.code === 'STORAGE_UNAVAILABLE') return 'start PostgreSQL or fix the --db URL, then retry (nothing was written)';
  return 'the state is unchanged; resolve what is named above and retry';
}

/** The exit-code class of an authority refusal (see the README's exit-code table). */
function exitCodeFor(e: AuthorityError): ExitCodeName {
  if (e.code === 'VALIDATION' || e.code === 'ALREADY_INITIALIZED') return 'USAGE';
  if (e.code === 'NOT_INITIALIZED' || e.code === 'KEY_FILE') return 'BAD_STATE';
  if (e.code === 'STORAGE_UNAVAILABLE') return 'AUTHORITY_UNREACHABLE';
  if (e.status === 500) return 'INTERNAL';
  return 'AUTHORITY_REFUSED';
}

/**
 * Ends a command on a failure: an AuthorityError (a refusal: nothing was written) or a
 * database that is not a property becomes a CliError for the top-level handler; with
 * --json the refusal is also printed on stdout as `{"error": …}`.
 */
function fail(o: { json?: boolean; db?: string }, e: unknown): never {
  if (e instanceof AuthorityError) {
    if (o.json) process.stdout.write(JSON.stringify({ error: e.toJSON() }) + '\n');
    const details = e.details !== undefined ? ` (${JSON.stringify(e.details)})` : '';
    throw new CliError(exitCodeFor(e), `${e.code}: ${e.toJSON().message}${details}`, todoFor(e));
  }
  if (e instanceof PostgresError)
    throw new CliError('BAD_STATE', `${describeLocation(o.db ?? 'the database')} is not a locksync property database: ${e.message}`, 'pass the database `authority init` created, or run `authority init --db URL --key-dir DIR`');
  const sqlite = (e as { code?: unknown }).code;
  if (typeof sqlite === 'string' && sqlite.startsWith('SQLITE_')) {
    if (sqlite === 'SQLITE_BUSY' || sqlite === 'SQLITE_LOCKED') throw new CliError('IN_USE', `${o.db ?? 'the database'} is locked by another process (${sqlite})`, 'retry when the other writer has finished');
    throw new CliError('BAD_STATE', `${o.db ?? 'the database'} is not a locksync property database: ${(e as Error).message} (${sqlite})`, 'pass the file `authority init` created, or run `authority init --db FILE`');
  }
  throw e;
}

/** The same mapping for other entry points that open an authority (benchmarks). */
export { fail as authorityFailure };

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

/** Parses an id list option (`--doors 1,2,3`). */
function idList(flag: string): (raw: string) => number[] {
  return (raw) => raw.split(',').map((d) => parseIntegerOption(flag, d.trim(), { min: 1 }));
}

/** Parses a JSON option (`--policy '{"leaseSeconds":86400}'`). */
function jsonOption(flag: string): (raw: string) => unknown {
  return (raw) => {
    try {
      return JSON.parse(raw) as unknown;
    } catch (e) {
      throw new CliError('USAGE', `${flag} must be JSON: ${(e as Error).message}`, `pass e.g. ${flag} '{"leaseSeconds":86400}'`);
    }
  };
}

/** A positive integer id option (`--door 3`). */
const id = (flag: string): ((raw: string) => number) => integer(flag, { min: 1 });
/** Unix seconds (`--from 1767225600`). */
/** A decimal option in [min, max] (rates, shares, hours). */
const decimal =
  (flag: string, min: number, max: number): ((raw: string) => number) =>
  (raw: string) => {
    const v = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(v) || v < min || v > max) throw new CliError('USAGE', `${flag} must be a number from ${min} to ${max}, got "${raw}"`, `pass e.g. ${flag} ${min === 0 && max === 1 ? '0.5' : String(Math.max(min, 1))}`);
    return v;
  };
const unix = (flag: string): ((raw: string) => number) => integer(flag, { min: 1, max: 0xffff_ffff });

/** Refuses an --out path that cannot be written before anything is changed. */
function requireWritable(file: string): void {
  const dir = dirname(resolve(file));
  try {
    accessSync(dir, fsConstants.W_OK);
  } catch {
    throw new CliError('USAGE', `cannot write ${file}: ${dir} does not exist or is not writable`, 'pass --out a path in an existing, writable directory');
  }
}

function readSecretKeyFile(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new CliError('BAD_STATE', `cannot read the device secret key ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'pass --secret-key-file the file holding the device secret key (hex)');
  }
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
  if (idPart === undefined || !/^[0-9]+$/.test(idPart)) throw invalid(`door spec ${JSON.stringify(spec)} must start with a door id`);
  const out: KeyDoorInput = { doorId: Number(idPart), doorcodesEnabled: !rest.includes('nocodes') };
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
    .requiredOption('--db <file|url>', 'property database: the SQLite file `authority init` created, or a postgres://user@host/db URL (then --key-dir is required)')
    .option('--key-dir <dir>', 'key directory (default <db>.keys)')
    .option('--root-key <file>', 'offline root key file (default <key-dir>/root.key)')
    .option('--statement-timeout <ms>', 'PostgreSQL: longest one statement may take, its wait for the writer lock included (default 30000; SQLite ignores it)', integer('--statement-timeout', { min: 1, max: 2_147_483_647 }))
    .option('--connect-timeout <ms>', 'PostgreSQL: longest connecting to the server may take (default 10000; SQLite ignores it)', integer('--connect-timeout', { min: 1, max: 2_147_483_647 }))
    .option('--json', 'machine-readable output (a refusal prints {"error": …} on stdout too)');
}

export function registerAuthorityCommands(program: Command): void {
  const auth = program.command('authority').description('the cloud side: property model, signed per-lock tables, receipts, HTTP API');

  common(auth.command('init').description('create a property database, key files and the manager token'))
    .option('--seed <seed>', 'derive every key and token from this seed (demos and tests only)')
    .option('--tz <zone>', 'IANA time zone of the property', 'UTC')
    .option('--name <name>', 'property name', 'Property')
    .option('--lease <seconds>', 'freshness lease for partner/guest credentials in seconds (0 = off)', integer('--lease', { min: 0, max: 0xffff_ffff }))
    .action((o: Common & { seed?: string; tz: string; name: string; lease?: number }) => {
      try {
        const init: Parameters<typeof Authority.init>[0] = { ...openOpts(o), timeZone: o.tz, propertyName: o.name };
        if (o.seed !== undefined) init.seed = o.seed;
        if (o.lease !== undefined) init.policy = { leaseSeconds: o.lease };
        const { authority, managerToken, rootPublicKey } = Authority.init(init);
        const keyDir = authority.paths.keyDir;
        authority.close();
        print(o, { db: o.db, keyDir, rootPublicKey, managerToken });
      } catch (e) {
        fail(o, e);
      }
    });

  common(auth.command('serve').description('serve the JSON HTTP API (prints its URL; runs until SIGINT/SIGTERM)'))
    .requiredOption('--port <n>', 'TCP port (0 = any free port)', integer('--port', { min: 0, max: 65535 }))
    .option('--host <host>', 'listen address', '127.0.0.1')
    .option('--max-wait <seconds>', 'longest uplink long-poll in seconds', integer('--max-wait', { min: 0, max: 3600 }), 60)
    .option('--poll-ms <ms>', 'uplink re-check interval in ms for changes made by other processes', integer('--poll-ms', { min: 1 }), 500)
    .action(async (o: Common & { port: number; host: string; maxWait: number; pollMs: number }) => {
      try {
        const s = await startAuthorityServer({ ...openOpts(o), port: o.port, host: o.host, maxWaitSeconds: o.maxWait, pollIntervalMs: o.pollMs });
        process.stdout.write(o.json ? JSON.stringify({ url: s.url }) + '\n' : `authority listening on ${s.url}\n`);
        const stop = (): void => void s.close().then(() => process.exit(0));
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE') throw new CliError('IN_USE', `${o.host}:${o.port} is already in use by another process`, 'pass another --port, or --port 0 for any free port');
        if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EACCES')
          throw new CliError('USAGE', `cannot listen on ${o.host}:${o.port} (${code})`, 'pass a local --host address and a --port you may bind (≥ 1024 unless root)');
        fail(o, e);
      }
    });

  const property = auth.command('property').description('property name, time zone, lock policy');
  common(property.command('show').description('print the property name, time zone and lock policy')).action(withAuthority((a) => a.property()));
  common(property.command('set').description('change the property name, time zone or lock policy'))
    .option('--name <name>', 'new property name')
    .option('--tz <zone>', 'new IANA time zone')
    .option('--policy <json>', 'lock policy fields, e.g. {"leaseSeconds":86400,"wrongCodeLimit":5}', jsonOption('--policy'))
    .action(
      withAuthority((a, o: Common & { name?: string; tz?: string; policy?: unknown }) => {
        const input: Parameters<Authority['setProperty']>[0] = {};
        if (o.name !== undefined) input.name = o.name;
        if (o.tz !== undefined) input.timeZone = o.tz;
        if (o.policy !== undefined) input.policy = o.policy as never;
        return a.setProperty(input);
      }),
    );

  const door = auth.command('door').description('doors (communal/private, internet-connected or not)');
  common(door.command('list').description('list the doors')).action(withAuthority((a) => a.listDoors()));
  common(door.command('add').description('add a door'))
    .requiredOption('--name <name>', 'door name, e.g. Lobby')
    .option('--communal', 'a communal door (default private)')
    .option('--connected', 'internet-connected lock (receives changes via the uplink)')
    .action(withAuthority((a, o: Common & { name: string; communal?: boolean; connected?: boolean }) => a.addDoor({ name: o.name, kind: o.communal ? 'communal' : 'private', connected: o.connected === true })));
  common(door.command('update').description("change a door's name, kind, connectivity or policy"))
    .requiredOption('--door <id>', 'door id', id('--door'))
    .option('--name <name>', 'new door name')
    .option('--kind <kind>', 'communal | private', oneOf('--kind', ['communal', 'private'] as const))
    .option('--connected <bool>', 'true | false', boolean('--connected'))
    .option('--policy <json>', 'door-level lock policy overrides, or null', jsonOption('--policy'))
    .action(
      withAuthority((a, o: Common & { door: number; name?: string; kind?: 'communal' | 'private'; connected?: boolean; policy?: unknown }) => {
        const input: Parameters<Authority['updateDoor']>[1] = {};
        if (o.name !== undefined) input.name = o.name;
        if (o.kind !== undefined) input.kind = o.kind;
        if (o.connected !== undefined) input.connected = o.connected;
        if (o.policy !== undefined) input.policy = o.policy as never;
        return a.updateDoor(o.door, input);
      }),
    );
  common(door.command('remove').description('remove a door (and its lock)'))
    .requiredOption('--door <id>', 'door id', id('--door'))
    .action(withAuthority((a, o: Common & { door: number }) => a.removeDoor(o.door)));

  const key = auth.command('key').description('Keys: sets of doors with per-door doorcode and schedule settings');
  const doorHelp = 'ID[:nocodes][:sched=DAYS@HH:MM-HH:MM+…] (repeatable)';
  common(key.command('list').description('list the Keys')).action(withAuthority((a) => a.listKeys()));
  common(key.command('create').description('create a Key'))
    .requiredOption('--name <name>', 'Key name')
    .option('--door <spec>', doorHelp, collect)
    .option('--partner <id>', 'attach a partner: makes a partner key (permanent)', id('--partner'))
    .action(withAuthority((a, o: Common & { name: string; door?: string[]; partner?: number }) => a.createKey({ name: o.name, doors: (o.door ?? []).map(parseDoorSpec), partnerId: o.partner ?? null })));
  common(key.command('update').description("change a Key's name, door set or partner"))
    .requiredOption('--key <id>', 'Key id', id('--key'))
    .option('--name <name>', 'new Key name')
    .option('--door <spec>', `replace the door set: ${doorHelp}`, collect)
    .option('--partner <id>', 'attach a partner (cannot be changed or removed later)', id('--partner'))
    .action(
      withAuthority((a, o: Common & { key: number; name?: string; door?: string[]; partner?: number }) => {
        const input: Parameters<Authority['updateKey']>[1] = {};
        if (o.name !== undefined) input.name = o.name;
        if (o.door !== undefined) input.doors = o.door.map(parseDoorSpec);
        if (o.partner !== undefined) input.partnerId = o.partner;
        return a.updateKey(o.key, input);
      }),
    );
  common(key.command('set-door').description('add a door to a Key or change its settings'))
    .requiredOption('--key <id>', 'Key id', id('--key'))
    .requiredOption('--door <spec>', 'ID[:nocodes][:sched=…]')
    .action(withAuthority((a, o: Common & { key: number; door: string }) => a.setKeyDoor(o.key, parseDoorSpec(o.door))));
  common(key.command('remove-door').description('remove a door from a Key'))
    .requiredOption('--key <id>', 'Key id', id('--key'))
    .requiredOption('--door <id>', 'door id', id('--door'))
    .action(withAuthority((a, o: Common & { key: number; door: number }) => a.removeKeyDoor(o.key, o.door)));
  common(key.command('delete').description('delete a Key (and its doorcodes, assignments and guest keys)'))
    .requiredOption('--key <id>', 'Key id', id('--key'))
    .action(withAuthority((a, o: Common & { key: number }) => a.deleteKey(o.key)));

  const user = auth.command('user').description('residents and staff');
  common(user.command('list').description('list the users')).action(withAuthority((a) => a.listUsers()));
  common(user.command('show').description('a user with their Keys, devices, doorcodes and keycards'))
    .requiredOption('--user <id>', 'user id', id('--user'))
    .action(withAuthority((a, o: Common & { user: number }) => a.user(o.user)));
  common(user.command('add').description('add a resident (or staff member)'))
    .requiredOption('--name <name>', "the user's name")
    .option('--staff', 'staff member (default resident)')
    .action(withAuthority((a, o: Common & { name: string; staff?: boolean }) => a.addUser({ name: o.name, role: o.staff ? 'staff' : 'resident' })));
  common(user.command('remove').description('remove a user (their credentials leave every table)'))
    .requiredOption('--user <id>', 'user id', id('--user'))
    .action(withAuthority((a, o: Common & { user: number }) => a.removeUser(o.user)));

  common(auth.command('assign').description('assign a Key to a user (managers assign Keys, never doors)'))
    .requiredOption('--user <id>', 'user id', id('--user'))
    .requiredOption('--key <id>', 'Key id', id('--key'))
    .option('--no-share', 'turn "May Share Key" off')
    .option('--from <unix>', 'valid from (unix seconds)', unix('--from'))
    .option('--until <unix>', 'valid until (unix seconds)', unix('--until'))
    .action(
      withAuthority((a, o: Common & { user: number; key: number; share: boolean; from?: number; until?: number }) => {
        const opts: { mayShare: boolean; validFrom?: number; validUntil?: number } = { mayShare: o.share };
        if (o.from !== undefined) opts.validFrom = o.from;
        if (o.until !== undefined) opts.validUntil = o.until;
        return a.assignKey(o.user, o.key, opts);
      }),
    );
  common(auth.command('unassign').description('take a Key away (its doorcodes and guests go too)'))
    .requiredOption('--user <id>', 'user id', id('--user'))
    .requiredOption('--key <id>', 'Key id', id('--key'))
    .action(withAuthority((a, o: Common & { user: number; key: number }) => a.unassignKey(o.user, o.key)));
  common(auth.command('may-share').description('set "May Share Key" on an assignment'))
    .requiredOption('--user <id>', 'user id', id('--user'))
    .requiredOption('--key <id>', 'Key id', id('--key'))
    .requiredOption('--value <bool>', 'true | false', boolean('--value'))
    .action(withAuthority((a, o: Common & { user: number; key: number; value: boolean }) => a.setMayShare(o.user, o.key, o.value)));

  const guest = auth.command('guest').description('guests invited by residents');
  common(guest.command('invite').description("invite a guest to some of a resident's doors"))
    .requiredOption('--resident <id>', 'id of the inviting resident', id('--resident'))
    .requiredOption('--name <name>', "the guest's name")
    .requiredOption('--doors <ids>', 'comma-separated door ids', idList('--doors'))
    .option('--from <unix>', 'valid from (unix seconds)', unix('--from'))
    .option('--until <unix>', 'valid until (unix seconds)', unix('--until'))
    .action(
      withAuthority((a, o: Common & { resident: number; name: string; doors: number[]; from?: number; until?: number }) => {
        const input: Parameters<Authority['inviteGuest']>[1] = { name: o.name, doorIds: o.doors };
        if (o.from !== undefined) input.validFrom = o.from;
        if (o.until !== undefined) input.validUntil = o.until;
        return a.inviteGuest(o.resident, input);
      }),
    );
  common(guest.command('revoke').description("revoke a guest's access"))
    .requiredOption('--guest <id>', 'guest id', id('--guest'))
    .action(withAuthority((a, o: Common & { guest: number }) => a.revokeGuest(o.guest)));

  const partner = auth.command('partner').description('partners: register, authorize, assign per door, terminate');
  common(partner.command('list').description('list the partners and their doors')).action(withAuthority((a) => a.listPartners()));
  common(partner.command('register').description('make a partner known at the property before DOOR authorizes it (it cannot be assigned until authorized)'))
    .requiredOption('--name <name>', 'partner name, e.g. "Parcel Co"')
    .action(withAuthority((a, o: Common & { name: string }) => a.registerPartner(o.name)));
  common(partner.command('authorize').description('authorize a partner integration (prints its partner token)'))
    .requiredOption('--name <name>', 'partner name, e.g. "Parcel Co"')
    .action(withAuthority((a, o: Common & { name: string }) => a.authorizePartner(o.name)));
  common(partner.command('rotate-token').description("issue an authorized partner a new API token (the old one stops working)"))
    .requiredOption('--partner <id>', 'partner id', id('--partner'))
    .action(withAuthority((a, o: Common & { partner: number }) => a.rotatePartnerToken(o.partner)));
  common(partner.command('assign-door').description('let a partner open a door'))
    .requiredOption('--partner <id>', 'partner id', id('--partner'))
    .requiredOption('--door <id>', 'door id', id('--door'))
    .action(withAuthority((a, o: Common & { partner: number; door: number }) => a.assignPartnerToDoor(o.partner, o.door)));
  common(partner.command('unassign-door').description('remove a partner from a door (pending at offline locks until a sync)'))
    .requiredOption('--partner <id>', 'partner id', id('--partner'))
    .requiredOption('--door <id>', 'door id', id('--door'))
    .action(withAuthority((a, o: Common & { partner: number; door: number }) => a.unassignPartnerFromDoor(o.partner, o.door)));
  common(partner.command('terminate').description('terminate the integration (refused while assigned to any door)'))
    .requiredOption('--partner <id>', 'partner id', id('--partner'))
    .action(withAuthority((a, o: Common & { partner: number }) => a.terminatePartner(o.partner)));
  common(partner.command('grant').description("as the partner: grant one of its own users access within its keys or doors (prints the grant and its credentials)"))
    .requiredOption('--partner <id>', 'the granting partner', id('--partner'))
    .requiredOption('--subject <ref>', "the partner's own reference for its user")
    .option('--role <role>', 'resident | guest | courier', oneOf('--role', ['resident', 'guest', 'courier'] as const), 'resident' as const)
    .requiredOption('--public-key <hex>', "the user's phone public key (32-byte Ed25519, hex)")
    .option('--key <id>', 'one of the partner keys: the grant follows it', id('--key'))
    .option('--doors <ids>', 'only these doors (of the key, or doors the partner is assigned to)', idList('--doors'))
    .option('--from <unix>', 'valid from (unix seconds)', unix('--from'))
    .option('--until <unix>', 'valid until (unix seconds)', unix('--until'))
    .action(
      withAuthority(
        (a, o: Common & { partner: number; subject: string; role: 'resident' | 'guest' | 'courier'; publicKey: string; key?: number; doors?: number[]; from?: number; until?: number }) => {
          const input: Parameters<Authority['grantPartnerAccess']>[1] = { subject: o.subject, role: o.role, publicKey: o.publicKey };
          if (o.key !== undefined) input.keyId = o.key;
          if (o.doors !== undefined) input.doorIds = o.doors;
          if (o.from !== undefined) input.validFrom = o.from;
          if (o.until !== undefined) input.validUntil = o.until;
          return a.grantPartnerAccess(o.partner, input);
        },
      ),
    );
  common(partner.command('grants').description("list a partner's own grants to its users"))
    .requiredOption('--partner <id>', 'partner id', id('--partner'))
    .action(withAuthority((a, o: Common & { partner: number }) => a.partnerGrants(o.partner)));
  common(partner.command('revoke-grant').description("as the partner: revoke one of its grants (pending at offline doors until a sync)"))
    .requiredOption('--partner <id>', 'the granting partner', id('--partner'))
    .requiredOption('--grant <id>', 'grant id', id('--grant'))
    .action(withAuthority((a, o: Common & { partner: number; grant: number }) => (a.revokePartnerGrant(o.partner, o.grant), { revoked: o.grant })));
  common(partner.command('key').description('create a partner key (a Key with the partner attached)'))
    .requiredOption('--partner <id>', 'partner id', id('--partner'))
    .requiredOption('--name <name>', 'Key name')
    .option('--door <spec>', doorHelp, collect)
    .action(withAuthority((a, o: Common & { partner: number; name: string; door?: string[] }) => a.createKey({ name: o.name, doors: (o.door ?? []).map(parseDoorSpec), partnerId: o.partner })));

  const device = auth.command('device').description('phone and partner device public keys');
  common(device.command('enrol').description("enrol a device's public key for a user or a partner (prints its device token)"))
    .option('--user <id>', 'the device belongs to this user (give --user or --partner)', id('--user'))
    .option('--partner <id>', 'the device belongs to this partner (give --user or --partner)', id('--partner'))
    .requiredOption('--public-key <hex>', 'Ed25519 public key generated on the device')
    .action(
      withAuthority((a, o: Common & { user?: number; partner?: number; publicKey: string }) => {
        if ((o.user === undefined) === (o.partner === undefined)) throw invalid('give exactly one of --user or --partner');
        return o.user !== undefined ? a.enrolUserDevice(o.user, o.publicKey) : a.enrolPartnerDevice(o.partner as number, o.publicKey);
      }),
    );
  common(device.command('rotate-token').description("issue a device a new token (the old one is refused as ROTATED); valid for the device-token lifetime"))
    .requiredOption('--device <id>', 'device id', id('--device'))
    .action(withAuthority((a, o: Common & { device: number }) => a.rotateDeviceToken(o.device)));
  common(device.command('revoke').description('revoke a device (its credentials leave every table)'))
    .requiredOption('--device <id>', 'device id', id('--device'))
    .action(withAuthority((a, o: Common & { device: number }) => a.revokeDevice(o.device)));
  common(device.command('credentials').description('the credentials a device holds, per lock'))
    .requiredOption('--device <id>', 'device id', id('--device'))
    .action(withAuthority((a, o: Common & { device: number }) => a.credentialsForDevice(o.device)));
  common(device.command('credential-file').description('write the phone credential file the mobile agent reads'))
    .requiredOption('--device <id>', 'device id', id('--device'))
    .requiredOption('--secret-key-file <file>', 'file holding the device secret key (hex)')
    .requiredOption('--out <file>', 'where to write the credential file (mode 0600)')
    .action(
      withAuthority((a, o: Common & { device: number; secretKeyFile: string; out: string }) => {
        requireWritable(o.out);
        const f = a.credentialFile(o.device, readSecretKeyFile(o.secretKeyFile));
        writeFileSync(o.out, JSON.stringify(f, null, 2) + '\n', { mode: 0o600 });
        return { written: o.out, holder: f.holder, publicKey: f.publicKey, credentials: f.credentials };
      }),
    );
  common(device.command('enrol-demo').description('demo/test: derive a device key from a seed, enrol it, write its credential file'))
    .option('--user <id>', 'the device belongs to this user (give --user or --partner)', id('--user'))
    .option('--partner <id>', 'the device belongs to this partner (give --user or --partner)', id('--partner'))
    .requiredOption('--seed <seed>', 'seed the device key is derived from')
    .requiredOption('--out <file>', 'where to write the credential file (mode 0600)')
    .action(
      withAuthority((a, o: Common & { user?: number; partner?: number; seed: string; out: string }) => {
        if ((o.user === undefined) === (o.partner === undefined)) throw invalid('give exactly one of --user or --partner');
        requireWritable(o.out);
        const r = a.enrolDeviceWithNewKey(o.user !== undefined ? { userId: o.user } : { partnerId: o.partner as number }, o.seed);
        writeFileSync(o.out, JSON.stringify(r.credentialFile, null, 2) + '\n', { mode: 0o600 });
        return { deviceId: r.deviceId, token: r.token, written: o.out, credentials: r.credentialFile.credentials };
      }),
    );

  const doorcode = auth.command('doorcode').description('7-digit permanent doorcodes');
  common(doorcode.command('issue').description('issue a doorcode to a user for a door'))
    .requiredOption('--user <id>', 'user id', id('--user'))
    .requiredOption('--door <id>', 'door id', id('--door'))
    .option('--code <digits>', 'choose the code (default: random)')
    .action(withAuthority((a, o: Common & { user: number; door: number; code?: string }) => a.issueDoorcode(o.user, o.door, o.code)));
  common(doorcode.command('revoke').description("revoke a user's doorcode for a door"))
    .requiredOption('--user <id>', 'user id', id('--user'))
    .requiredOption('--door <id>', 'door id', id('--door'))
    .action(withAuthority((a, o: Common & { user: number; door: number }) => a.revokeDoorcode(o.user, o.door)));

  common(auth.command('daily-code').description('issue a daily or single-use daily code (works without a sync)'))
    .requiredOption('--door <id>', 'door id', id('--door'))
    .option('--single-use', 'a DAILY_SINGLE_USE code (15 minutes after first use)')
    .option('--date <YYYY-MM-DD>', 'local date (default today in the property time zone)')
    .option('--label <text>', 'who or what the code is for')
    .action(
      withAuthority((a, o: Common & { door: number; singleUse?: boolean; date?: string; label?: string }) => {
        const input: Parameters<Authority['issueDailyCode']>[1] = { kind: o.singleUse ? 'dailySingleUse' : 'daily' };
        if (o.date !== undefined) input.date = o.date;
        if (o.label !== undefined) input.label = o.label;
        return a.issueDailyCode(o.door, input);
      }),
    );

  const keycard = auth.command('keycard').description('keycards (UID) per user');
  common(keycard.command('add').description('register a keycard UID for a user'))
    .requiredOption('--user <id>', 'user id', id('--user'))
    .requiredOption('--uid <hex>', 'card UID, 4/7/10 bytes hex')
    .action(withAuthority((a, o: Common & { user: number; uid: string }) => a.addKeycard(o.user, o.uid)));
  common(keycard.command('remove').description('remove a keycard'))
    .requiredOption('--keycard <id>', 'keycard id', id('--keycard'))
    .action(withAuthority((a, o: Common & { keycard: number }) => a.removeKeycard(o.keycard)));

  common(auth.command('rotate-key').description('the offline root certifies a new online signing key')).action(withAuthority((a) => a.rotateSigningKey()));

  common(auth.command('reset-floor').description("root-signed reset of a lock's clock and version floors, for one session (recovery from a far-future time or version)"))
    .requiredOption('--lock <id>', 'lock id')
    .requiredOption('--nonce <hex>', "the lock's hello nonce for the session that will carry the reset")
    .requiredOption('--version-floor <n>', 'new version floor: at or above the newest version legitimately issued, below the snapshot that follows', integer('--version-floor', { min: 0 }))
    .option('--time <unix-seconds>', 'new clock floor and clock (default: now)', unix('--time'))
    .action(
      withAuthority((a, o: Common & { lock: string; nonce: string; versionFloor: number; time?: number }) => {
        const input: { versionFloor: number; time?: number } = { versionFloor: o.versionFloor };
        if (o.time !== undefined) input.time = o.time;
        return a.floorReset(o.lock, o.nonce, input);
      }),
    );

  common(auth.command('provision-lock').description('create the lock for a door; prints (or writes) its provisioning bundle'))
    .requiredOption('--door <id>', 'door id', id('--door'))
    .option('--out <file>', 'write the bundle (it holds the lock secret) to this file, mode 0600')
    .action(
      withAuthority((a, o: Common & { door: number; out?: string }) => {
        if (o.out !== undefined) requireWritable(o.out);
        const bundle = a.provisionLock(o.door);
        if (o.out === undefined) return bundle;
        writeFileSync(o.out, JSON.stringify(bundle, null, 2) + '\n', { mode: 0o600 });
        return { lockId: bundle.lockId, doorId: bundle.doorId, written: o.out };
      }),
    );
  common(auth.command('register-lock').description("record a lock's device public key; prints its lock token"))
    .requiredOption('--lock <id>', 'lock id, e.g. lk-0001')
    .requiredOption('--public-key <hex>', 'the device public key `lock provision` printed')
    .option('--replace', 'replace an existing device key')
    .action(withAuthority((a, o: Common & { lock: string; publicKey: string; replace?: boolean }) => a.registerLockDevice(o.lock, o.publicKey, { replace: o.replace === true })));
  common(auth.command('locks').description('locks, newest version and version in force')).action(withAuthority((a) => a.listLocks()));
  common(auth.command('updates').description('the update message(s) taking a lock from a version to the newest'))
    .requiredOption('--lock <id>', 'lock id, e.g. lk-0001')
    .option('--from <version>', 'version the lock holds', integer('--from', { min: 0 }), 0)
    .action(withAuthority((a, o: Common & { lock: string; from: number }) => a.updatesFor(o.lock, o.from)));

  common(auth.command('pending').description('revocations not yet in force: at which doors, since when'))
    .option('--partner <id>', "only this partner's revocations", id('--partner'))
    .option('--door <id>', 'only at this door', id('--door'))
    .action(
      withAuthority((a, o: Common & { partner?: number; door?: number }) => {
        const f: { partnerId?: number; doorId?: number } = {};
        if (o.partner !== undefined) f.partnerId = o.partner;
        if (o.door !== undefined) f.doorId = o.door;
        return a.pendingRevocations(f);
      }),
    );
  common(
    auth
      .command('what-if')
      .description('when will a partner revocation be in force at every door? predicted spread (50/90/99 %, worst case) under a traffic model, per lease length')
      .addHelpText(
        'after',
        '\nThe doors are those the partner holds (directly or by a partner key) or whose lock still honours it (per receipts). An offline door gets the revocation at the first\n' +
          'background Door Sync (passages × app-sync share, a Poisson process) or when the lease runs out; a connected door at its\n' +
          'next uplink poll. The traffic defaults are assumptions: replace them with your property\'s counts.',
      ),
  )
    .requiredOption('--partner <id>', 'partner id', id('--partner'))
    .option('--communal-passages <n>', 'resident passages per hour at a communal door (assumption)', decimal('--communal-passages', 0, 10_000), 12)
    .option('--private-passages <n>', 'resident passages per hour at a private door (assumption)', decimal('--private-passages', 0, 10_000), 1)
    .option('--app-sync <share>', 'share of passages whose app syncs in the background, 0..1 (assumption)', decimal('--app-sync', 0, 1), 0.5)
    .option('--poll-seconds <s>', 'connected locks\' uplink poll interval in seconds', integer('--poll-seconds', { min: 1, max: 86_400 }), 300)
    .option('--lease-hours <h>', 'lease on the partner\'s credentials (default: the property lock policy)', decimal('--lease-hours', 0, 24 * 365))
    .option('--html <file>', 'also write the curve and tables as a self-contained HTML page (SVG)')
    .action(
      withAuthority((a, o: Common & { partner: number; communalPassages: number; privatePassages: number; appSync: number; pollSeconds: number; leaseHours?: number; html?: string }) => {
        const partner = a.partner(o.partner);
        const doors = a.listDoors();
        // Where the partner can open now or its revocation is still pending: the doors honouring
        // it per receipts, and the doors it holds directly or through its partner keys.
        const doorIds = new Set([...a.doorsHonouringPartner(o.partner).map((h) => h.doorId), ...partner.doors, ...partner.keys.flatMap((k) => a.key(k).doors.map((d) => d.doorId))]);
        const honouring = doors.filter((d) => doorIds.has(d.id) && d.lockId !== null).map((d) => ({ doorId: d.id, doorName: d.name }));
        const leaseSeconds = o.leaseHours !== undefined ? Math.round(o.leaseHours * 3600) : a.property().policy.leaseSeconds;
        const model: WhatIfModel = {
          pollSeconds: o.pollSeconds,
          leaseSeconds,
          doors: honouring.map((h) => {
            const d = doors.find((x) => x.id === h.doorId);
            const kind = d?.kind === 'communal' ? 'communal' : 'private';
            return { name: h.doorName, kind, connected: d?.connected ?? false, passagesPerHour: kind === 'communal' ? o.communalPassages : o.privatePassages, appSyncShare: o.appSync };
          }),
        };
        const report = whatIfReport(model, { partner: partner.name });
        if (o.html !== undefined) {
          try {
            writeFileSync(o.html, renderWhatIfHtml(report));
          } catch (e) {
            throw new CliError('USAGE', `cannot write --html ${o.html}: ${(e as Error).message}`, 'pass a writable path');
          }
        }
        if (o.json) return report;
        return renderWhatIfText(report) + (o.html !== undefined ? `\n\nplot: ${o.html}` : '');
      }),
    );
  common(auth.command('honouring').description('doors whose lock still honours a partner (per receipts)'))
    .requiredOption('--partner <id>', 'partner id', id('--partner'))
    .action(withAuthority((a, o: Common & { partner: number }) => a.doorsHonouringPartner(o.partner)));
  common(auth.command('audit').description('who opened a door (or was refused, and why) between two times, with which credential, anchored by which receipt'))
    .option('--door <id>', 'the door', id('--door'))
    .option('--lock <id>', 'or its lock id, e.g. lk-0001')
    .option('--from <time>', 'from this time: ISO 8601 with Z or an offset, or unix seconds', auditTime('--from'))
    .option('--until <time>', 'until this time (inclusive), same forms', auditTime('--until'))
    .option('--granted-only', 'leave refusals out')
    .action((o: Common & { door?: number; lock?: string; from?: number; until?: number; grantedOnly?: boolean }) => {
      if ((o.door === undefined) === (o.lock === undefined)) throw new CliError('USAGE', 'name exactly one of --door and --lock', 'pass --door ID (see `authority door list`) or --lock LOCK_ID');
      let a: Authority | undefined;
      try {
        a = Authority.open(openOpts(o));
        const q: AuditQuery = {};
        if (o.door !== undefined) q.doorId = o.door;
        if (o.lock !== undefined) q.lockId = o.lock;
        if (o.from !== undefined) q.from = o.from;
        if (o.until !== undefined) q.until = o.until;
        if (o.grantedOnly === true) q.grantedOnly = true;
        const report = auditReport(a, q);
        process.stdout.write((o.json ? JSON.stringify(report) : formatAuditReport(report)) + '\n');
      } catch (e) {
        fail(o, e);
      } finally {
        a?.close();
      }
    });
}

/** `--from 2025-03-10T09:00:00Z` or `--from 1741597200` → unix seconds. */
function auditTime(flag: string): (raw: string) => number {
  return (raw) => {
    if (/^[0-9]+$/.test(raw)) return unix(flag)(raw);
    if (!/(Z|[+-][0-9]{2}:?[0-9]{2})$/i.test(raw) || Number.isNaN(Date.parse(raw)))
      throw new CliError('USAGE', `${flag} ${JSON.stringify(raw)} is not a time`, `pass ISO 8601 with Z or an offset (e.g. 2025-03-10T14:00:00Z) or unix seconds`);
    return Math.floor(Date.parse(raw) / 1000);
  };
}
