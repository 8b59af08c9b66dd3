// The authority: the property model from the seed articles, kept in SQLite, compiled into
// one signed credential table per lock.
//
// Every manager operation is one IMMEDIATE transaction: validate, mutate, then recompile
// the tables of the locks whose doors the operation touched — all or nothing. A table is
// rebuilt from the model, diffed against the lock's previous version with the protocol's
// `diffTables`, checked with the protocol's `applyOps` + `tableDigest` (the exact code the
// lock runs), signed with the online key and stored as a new version.
//
// The class is built in layers, one file per concern, each extending the one below:
//   store.ts        SQLite, transactions (batch), secrets, tokens, meta
//   lookups.ts      rows by id with named refusals; door sets of users and partners
//   keys.ts         the online signing key and its rotation
//   credentials.ts  devices, doorcodes, keycards, daily codes
//   model.ts        property, doors, Keys, locks
//   people.ts       users, Key assignments, May Share Key, guests
//   partners.ts     OpenDOOR partners
//   compile.ts      model → per-lock table, diff, sign, store; history and revocations
//   updates.ts      deltas and snapshots served to locks and phones
//   time.ts         signed time and floor resets
//   receipts.ts     receipts and the pending-revocation view
//   audit.ts        audit exports and anchors
//   access.ts       bearer tokens → principals, and who may carry which lock's data
//   authority.ts    (this file) creating and opening a property
// Public types are in types.ts.

import { randomBytes } from 'node:crypto';
import { type SqlDatabase, describeLocation, storageExists } from './db';
import { DEFAULT_LOCK_POLICY, keyPairFromSeed, toHex, deriveSeed32 } from '../protocol';
import { AuthorityError } from './errors';
import { type KeyPaths, Sealer, readSecretFile, readSeedFile, writeSecretFile } from './keystore';
import { migrate } from './schema';
import { normalizePolicy, requireTimeZone } from './validate';
import { type AuthorityOptions, type AuthorityInitOptions } from './types';
import { sha256 } from './rows';
import { AccessControl } from './access';

export * from './types';

export class Authority extends AccessControl {
  private constructor(db: SqlDatabase, sealer: Sealer, paths: KeyPaths, seed: string | undefined, opts: AuthorityOptions) {
    super(db, sealer, paths, seed, opts);
  }

  /** Create a property: database, key files, root key, first online key, manager token. */
  static init(opts: AuthorityInitOptions): { authority: Authority; managerToken: string; rootPublicKey: string } {
    const paths = Authority.keyPaths(opts);
    if (storageExists(opts.dbPath)) {
      const probe = Authority.openDb(opts.dbPath, opts);
      try {
        if (probe.hasTable('meta') && probe.prepare("SELECT 1 FROM meta WHERE key = 'initialized'").get() !== undefined)
          throw new AuthorityError('ALREADY_INITIALIZED', `${describeLocation(opts.dbPath)} already holds a property`);
      } finally {
        probe.close();
      }
    }
    const timeZone = requireTimeZone(opts.timeZone ?? 'UTC');
    const policy = { ...DEFAULT_LOCK_POLICY, ...(opts.policy ? normalizePolicy(opts.policy, 'policy') : {}) };
    const secret = (label: string): Uint8Array => (opts.seed !== undefined ? deriveSeed32(opts.seed, label) : new Uint8Array(randomBytes(32)));
    const kek = secret('kek');
    const root = keyPairFromSeed(secret('root-key'));
    writeSecretFile(paths.kekPath, toHex(kek));
    writeSecretFile(paths.rootKeyPath, toHex(root.secretKey));
    if (opts.seed !== undefined) writeSecretFile(paths.seedPath, opts.seed);

    const db = Authority.openDb(opts.dbPath, opts);
    const now = (opts.now ?? (() => Math.floor(Date.now() / 1000)))();
    migrate(db, now);
    const a = new Authority(db, new Sealer(kek), paths, opts.seed, opts);
    let managerToken = '';
    db.transaction(() => {
      const setMeta = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
      setMeta.run('propertyName', opts.propertyName ?? 'Property');
      setMeta.run('timeZone', timeZone);
      setMeta.run('policy', JSON.stringify(policy));
      setMeta.run('rootPublicKeys', JSON.stringify([toHex(root.publicKey)]));
      setMeta.run('drawCounter', '0');
      setMeta.run('lockCounter', '0');
      managerToken = a.newToken('manager');
      setMeta.run('managerTokenHash', sha256(managerToken).toString('hex'));
      a.installSigningKey(1, root.secretKey, root.publicKey);
      setMeta.run('initialized', String(now));
    }).immediate();
    return { authority: a, managerToken, rootPublicKey: toHex(root.publicKey) };
  }

  /** Open an initialised property (any number of processes may open the same file). */
  static open(opts: AuthorityOptions): Authority {
    if (!storageExists(opts.dbPath)) throw new AuthorityError('NOT_INITIALIZED', `${opts.dbPath} does not exist: run authority init first`);
    const paths = Authority.keyPaths(opts);
    const db = Authority.openDb(opts.dbPath, opts);
    try {
      // Never create tables in a database (or PostgreSQL schema) that holds no property.
      if (!db.hasTable('meta')) throw new AuthorityError('NOT_INITIALIZED', `${describeLocation(opts.dbPath)} holds no property: run authority init first`);
      migrate(db, Math.floor(Date.now() / 1000));
      if (db.prepare("SELECT 1 FROM meta WHERE key = 'initialized'").get() === undefined)
        throw new AuthorityError('NOT_INITIALIZED', `${describeLocation(opts.dbPath)} holds no property: run authority init first`);
      const kek = readSecretFile(paths.kekPath);
      return new Authority(db, new Sealer(kek), paths, readSeedFile(paths.seedPath), opts);
    } catch (e) {
      db.close();
      throw e;
    }
  }
}
