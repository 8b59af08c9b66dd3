// Time: authority time signed for a lock session, and the root-signed floor reset.

import {
  emptyTable,
  encodeMessage,
  keyIdOf,
  makeSignedTime,
  makeFloorReset,
  type SignedTimeBody,
  publicKeyOf,
  tableDigest,
  toHex,
  NONCE_BYTES,
} from '../protocol';
import { AuthorityError } from './errors';
import { readSecretFile } from './keystore';
import { invalid, requireHex } from './validate';
import { u8 } from './rows';
import { UpdateServer } from './updates';

export abstract class SignedTimeSource extends UpdateServer {
  /**
   * Authority time signed with the online key, bound to the lock's session nonce if given.
   * It names the table version and digest current for the lock now: the lock refreshes its
   * lease only when they are its own (SPEC §8.1), so relaying fresh time while withholding
   * a revocation buys nothing.
   */
  signedTime(lockId: string, nonceHex?: string): string {
    // The lock, its newest version and the signing key: one statement.
    const { key, latest: row } = this.lockHead(lockId);
    const digest = row !== undefined ? u8(row.digest) : tableDigest(emptyTable());
    const body: SignedTimeBody = { lockId, time: this.now(), keyId: keyIdOf(key.publicKey), version: row?.version ?? 0, digest };
    if (nonceHex !== undefined && nonceHex !== '') body.nonce = requireHex(nonceHex, 'nonce', { exact: NONCE_BYTES });
    return toHex(encodeMessage(makeSignedTime(body, key.secretKey)));
  }

  /**
   * Root-signed floor reset for one lock session (SPEC §8.3): recovery from a far-future
   * signed time or table version. Reads the offline root key file, like rotation. The
   * nonce is the lock's hello nonce, so the reset is good in that session only.
   */
  floorReset(lockId: string, nonceHex: string, input: { versionFloor: number; time?: number }): { lockId: string; time: number; versionFloor: number; floorReset: string } {
    this.lockRow(lockId);
    const nonce = requireHex(nonceHex, 'nonce', { exact: NONCE_BYTES });
    if (!Number.isSafeInteger(input.versionFloor) || input.versionFloor < 0) throw invalid('version floor must be a version number ≥ 0');
    const time = input.time ?? this.now();
    if (!Number.isSafeInteger(time) || time < 0) throw invalid('time must be unix seconds ≥ 0');
    const rootSecret = readSecretFile(this.paths.rootKeyPath);
    const rootPublic = publicKeyOf(rootSecret);
    const roots = JSON.parse(this.meta('rootPublicKeys')) as string[];
    if (!roots.includes(toHex(rootPublic))) throw new AuthorityError('KEY_FILE', `${this.paths.rootKeyPath} is not this property's root key`);
    const m = makeFloorReset({ lockId, time, versionFloor: input.versionFloor, keyId: keyIdOf(rootPublic), nonce }, rootSecret);
    return { lockId, time, versionFloor: input.versionFloor, floorReset: toHex(encodeMessage(m)) };
  }
}
