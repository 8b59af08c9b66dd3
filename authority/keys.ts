// The online signing key: installed under a root-signed certificate, sealed at rest, and
// rotated by the offline root.

import { type SignedKeyCert, issueKeyCert, keyCertFromCbor, keyPairFromSeed, publicKeyOf, toHex } from '../protocol';
import { AuthorityError } from './errors';
import { readSecretFile } from './keystore';
import { type SigningKeyRow, u8, blob } from './rows';
import { ModelLookups } from './lookups';

export abstract class SigningKeys extends ModelLookups {
  protected installSigningKey(serial: number, rootSecret: Uint8Array, rootPublic: Uint8Array): { serial: number; keyId: string } {
    const online = keyPairFromSeed(this.draw(`online-key:${serial}`));
    const cert = issueKeyCert(serial, online.publicKey, rootSecret, rootPublic);
    this.db
      .prepare('INSERT INTO signing_keys (serial, public_key, secret_sealed, cert_bytes, cert_signature, created_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(serial, blob(online.publicKey), blob(this.sealer.seal(`online-key:${serial}`, online.secretKey)), blob(cert.certBytes), blob(cert.signature), this.now());
    return { serial, keyId: toHex(online.keyId) };
  }

  protected signingKey(): { serial: number; secretKey: Uint8Array; publicKey: Uint8Array; cert: SignedKeyCert } {
    const r = this.db.prepare('SELECT * FROM signing_keys WHERE retired_at IS NULL ORDER BY serial DESC LIMIT 1').get() as SigningKeyRow | undefined;
    if (r === undefined) throw new AuthorityError('NOT_INITIALIZED', 'no online signing key');
    const secretKey = this.sealer.open(`online-key:${r.serial}`, u8(r.secret_sealed));
    const cert = keyCertFromCbor([u8(r.cert_bytes), u8(r.cert_signature)]);
    return { serial: r.serial, secretKey, publicKey: u8(r.public_key), cert };
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
