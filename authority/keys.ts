// The online signing key: installed under a root-signed certificate, sealed at rest, and
// rotated by the offline root.

import { type SignedKeyCert, bytesEqual, issueKeyCert, keyCertFromCbor, keyPairFromSeed, publicKeyOf, toHex } from '../protocol';
import { AuthorityError } from './errors';
import { readSecretFile } from './keystore';
import { type SigningKeyRow, u8, blob } from './rows';
import { ModelLookups } from './lookups';

export interface SigningKey {
  serial: number;
  secretKey: Uint8Array;
  publicKey: Uint8Array;
  cert: SignedKeyCert;
}

/**
 * The current signing key's columns under names that do not collide with a lock's or a
 * version's, for reading it in the same statement as what it signs.
 */
export const CURRENT_SIGNING_KEY_COLUMNS = `sk.serial AS sk_serial, sk.public_key AS sk_public_key, sk.secret_sealed AS sk_secret_sealed, sk.cert_bytes AS sk_cert_bytes, sk.cert_signature AS sk_cert_signature`;
export const CURRENT_SIGNING_KEY_JOIN = `LEFT JOIN signing_keys sk ON sk.serial = (SELECT MAX(serial) FROM signing_keys WHERE retired_at IS NULL)`;
export interface CurrentSigningKeyColumns {
  sk_serial: number | null;
  sk_public_key: Buffer | null;
  sk_secret_sealed: Buffer | null;
  sk_cert_bytes: Buffer | null;
  sk_cert_signature: Buffer | null;
}

export abstract class SigningKeys extends ModelLookups {
  private readonly unsealedKeys = new Map<number, SigningKey>();

  /** The current signing key from CURRENT_SIGNING_KEY_COLUMNS of a row. */
  protected signingKeyFromColumns(r: CurrentSigningKeyColumns): SigningKey {
    if (r.sk_serial === null || r.sk_public_key === null || r.sk_secret_sealed === null || r.sk_cert_bytes === null || r.sk_cert_signature === null)
      throw new AuthorityError('NOT_INITIALIZED', 'no online signing key');
    return this.signingKeyOf({ serial: r.sk_serial, public_key: r.sk_public_key, secret_sealed: r.sk_secret_sealed, cert_bytes: r.sk_cert_bytes, cert_signature: r.sk_cert_signature });
  }

  protected installSigningKey(serial: number, rootSecret: Uint8Array, rootPublic: Uint8Array): { serial: number; keyId: string } {
    const online = keyPairFromSeed(this.draw(`online-key:${serial}`));
    const cert = issueKeyCert(serial, online.publicKey, rootSecret, rootPublic);
    this.db
      .prepare('INSERT INTO signing_keys (serial, public_key, secret_sealed, cert_bytes, cert_signature, created_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(serial, blob(online.publicKey), blob(this.sealer.seal(`online-key:${serial}`, online.secretKey)), blob(cert.certBytes), blob(cert.signature), this.now());
    return { serial, keyId: toHex(online.keyId) };
  }

  protected signingKey(): SigningKey {
    const r = this.db.prepare('SELECT * FROM signing_keys WHERE retired_at IS NULL ORDER BY serial DESC LIMIT 1').get() as SigningKeyRow | undefined;
    if (r === undefined) throw new AuthorityError('NOT_INITIALIZED', 'no online signing key');
    return this.signingKeyOf(r);
  }

  /**
   * The key of a signing_keys row, unsealed once per serial and process: a serial's key
   * never changes (rotation makes a new serial), so only which serial is current is read
   * from the database each time, never remembered.
   */
  protected signingKeyOf(r: SigningKeyRow): SigningKey {
    const cached = this.unsealedKeys.get(r.serial);
    if (cached !== undefined && bytesEqual(cached.publicKey, r.public_key)) return cached;
    const secretKey = this.sealer.open(`online-key:${r.serial}`, u8(r.secret_sealed));
    const cert = keyCertFromCbor([u8(r.cert_bytes), u8(r.cert_signature)]);
    const key = { serial: r.serial, secretKey, publicKey: u8(r.public_key), cert };
    this.unsealedKeys.set(r.serial, key);
    return key;
  }

  /**
   * Rotation: the offline root certifies a new online key with a higher serial. Updates
   * served from now on are signed by it and carry its certificate; a lock that accepts one
   * raises its certificate floor and refuses the retired key from then on.
   */
  rotateSigningKey(): { serial: number; keyId: string } {
    const rootSecret = readSecretFile(this.paths.rootKeyPath);
    const rootPublic = publicKeyOf(rootSecret);
    const roots = JSON.parse(this.meta('rootPublicKeys')) as string[];
    if (!roots.includes(toHex(rootPublic))) throw new AuthorityError('KEY_FILE', `${this.paths.rootKeyPath} is not this property's root key`);
    return this.batch(() => {
      const cur = this.db.prepare('SELECT MAX(serial) AS s FROM signing_keys').get() as { s: number };
      this.db.prepare('UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL').run(this.now());
      return this.installSigningKey(cur.s + 1, rootSecret, rootPublic);
    });
  }
}
