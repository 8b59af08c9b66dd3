// Key material on disk. Three secrets, each in its own 0600 file inside a 0700 directory
// (default `<db>.keys/`):
//   root.key  the offline root signing key (path configurable: keep it on removable or
//             offline storage; it is read only by `init` and `rotateSigningKey`),
//   kek.key   the key-encryption key that seals every secret stored in the database
//             (online signing keys, lock secrets, doorcodes) with AES-256-GCM,
//   seed      present only for seeded (demo/test) properties: every secret is then
//             derived from it, so it is as sensitive as the keys themselves.
// Files are refused when group/other can read them. Nothing here is ever logged.

import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { AuthorityError } from './errors';

export const SECRET_BYTES = 32;

export interface KeyPaths {
  keyDir: string;
  rootKeyPath: string;
  kekPath: string;
  seedPath: string;
}

export function keyPathsFor(dbPath: string, keyDir?: string, rootKeyPath?: string): KeyPaths {
  const dir = keyDir ?? `${dbPath}.keys`;
  return { keyDir: dir, rootKeyPath: rootKeyPath ?? join(dir, 'root.key'), kekPath: join(dir, 'kek.key'), seedPath: join(dir, 'seed') };
}

/** Write a new secret file (refuses to overwrite one). */
export function writeSecretFile(path: string, contents: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new AuthorityError('ALREADY_INITIALIZED', `key file ${path} already exists`);
    throw new AuthorityError('KEY_FILE', `cannot create key file ${path}: ${(e as Error).message}`);
  }
  try {
    writeSync(fd, contents + '\n');
  } finally {
    closeSync(fd);
  }
  chmodSync(path, 0o600); // umask cannot widen it, but be explicit
}

function readRestrictedFile(path: string): string {
  if (!existsSync(path)) throw new AuthorityError('KEY_FILE', `key file ${path} is missing`);
  const st = statSync(path);
  if ((st.mode & 0o077) !== 0)
    throw new AuthorityError('KEY_FILE', `key file ${path} is readable by group/other (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
  return readFileSync(path, 'utf8').trim();
}

export function readSecretFile(path: string): Uint8Array {
  const text = readRestrictedFile(path);
  if (!/^[0-9a-f]{64}$/.test(text)) throw new AuthorityError('KEY_FILE', `key file ${path} does not hold a 32-byte hex secret`);
  return new Uint8Array(Buffer.from(text, 'hex'));
}

export function readSeedFile(path: string): string | undefined {
  return existsSync(path) ? readRestrictedFile(path) : undefined;
}

/**
 * Seals secrets stored in the database. The label (e.g. "lock-secret:lk-0001") is bound
 * as associated data, so a sealed value copied into another row does not open.
 */
export class Sealer {
  constructor(private readonly kek: Uint8Array) {
    if (kek.length !== SECRET_BYTES) throw new AuthorityError('KEY_FILE', 'key-encryption key must be 32 bytes');
  }

  seal(label: string, plaintext: Uint8Array): Uint8Array {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.kek, iv);
    c.setAAD(Buffer.from(label, 'utf8'));
    const body = Buffer.concat([c.update(plaintext), c.final()]);
    return new Uint8Array(Buffer.concat([iv, body, c.getAuthTag()]));
  }

  open(label: string, sealed: Uint8Array): Uint8Array {
    if (sealed.length < 28) throw new AuthorityError('INTERNAL', `sealed value for ${label} is truncated`);
    const buf = Buffer.from(sealed);
    const d = createDecipheriv('aes-256-gcm', this.kek, buf.subarray(0, 12));
    d.setAAD(Buffer.from(label, 'utf8'));
    d.setAuthTag(buf.subarray(buf.length - 16));
    try {
      return new Uint8Array(Buffer.concat([d.update(buf.subarray(12, buf.length - 16)), d.final()]));
    } catch {
      throw new AuthorityError('INTERNAL', `sealed value for ${label} does not open with this key-encryption key`);
    }
  }

  /** Keyed tag for equality lookups on sealed values (e.g. "is this doorcode taken here?"). */
  tag(label: string, value: string): Uint8Array {
    return new Uint8Array(createHmac('sha256', this.kek).update(`${label}\0${value}`).digest());
  }
}
