// One fixed example of every session message (SPEC.md §6), built from the vector world.

import { type AuditRecord, type Message, AUDIT_GENESIS, CAPABILITIES, PROTOCOL_VERSION, answerChallenge, encodeMessage, chainAudit, encodeAuditRecord, encodeChallengeBody, makeAuditAnchor, makeFloorReset, makeReceipt, makeSignedAuditExport, makeSignedTime } from '../messages';
import { deriveSeed32 } from '../random';
import { applyUpdate, initialTableState } from '../update';
import { tableDigest } from '../table';
import { EPOCH, KEYS, LOCK_ID, PARTNER_ID, WORLD_SEED, baseTable, deltaFrom, snapshotOf } from './world';

const nonce = (label: string, n = 16): Uint8Array => deriveSeed32(WORLD_SEED, `nonce:${label}`).slice(0, n);

export const SAMPLE_AUDIT_RECORDS: AuditRecord[] = [
  { seq: 41, time: EPOCH + 7200, event: 'access', credId: 1, reason: 0, value: 0 },
  { seq: 42, time: EPOCH + 7260, event: 'access', credId: 1000, reason: 2, value: 2 },
  { seq: 43, time: EPOCH + 7300, event: 'updateApplied', value: 2 },
  { seq: 44, time: EPOCH + 7301, event: 'updateRefused', reason: 5 },
];

export function messageSamples(): { comment: string; message: Message }[] {
  const s0 = initialTableState(LOCK_ID, [KEYS.root.publicKey]);
  const snap = snapshotOf(baseTable(3), { version: 1 });
  const r = applyUpdate(s0, snap);
  if (!r.ok) throw r.error;
  const delta = deltaFrom(r.state, [{ op: 'removePartner', partnerId: PARTNER_ID }], { version: 2 });
  const digest = tableDigest(baseTable(3));
  const helloNonce = nonce('hello');
  const challengeBytes = encodeChallengeBody({ lockId: LOCK_ID, sessionId: nonce('session', 8), nonce: nonce('challenge'), credId: 1, expiresAtMs: (EPOCH + 7200) * 1000 + 5000 });
  const records = SAMPLE_AUDIT_RECORDS.map(encodeAuditRecord);
  let auditHead = AUDIT_GENESIS;
  for (const rb of records) auditHead = chainAudit(auditHead, rb);
  const signedTime = makeSignedTime({ lockId: LOCK_ID, time: EPOCH + 7290, keyId: KEYS.online1.keyId, nonce: helloNonce, version: 1, digest }, KEYS.online1.secretKey);
  const deltaMessage: Message = { type: 'delta', update: delta };
  const auditRequest: Message = { type: 'auditRequest', fromSeq: 41 };
  const timeAck: Message = { type: 'timeAck', lockTime: EPOCH + 7290 };
  const receipt = makeReceipt({ lockId: LOCK_ID, version: 2, digest: delta.head.head.digest, nonce: helloNonce, lockTime: EPOCH + 7301, auditSeq: 44, auditHead }, KEYS.device.secretKey);
  const auditExport = makeSignedAuditExport(LOCK_ID, AUDIT_GENESIS, records, 41, 44, KEYS.device.secretKey);
  return [
    {
      comment: 'hello from lk-0001 at v1',
      message: {
        type: 'hello', protocolVersion: PROTOCOL_VERSION, lockId: LOCK_ID, version: 1, digest, nonce: helloNonce, lockTime: EPOCH + 7200,
        capabilities: CAPABILITIES.delta | CAPABILITIES.snapshot | CAPABILITIES.unlock | CAPABILITIES.auditExport | CAPABILITIES.resume, auditSeq: 44, battery: 87,
      },
    },
    { comment: 'delta v1 -> v2: remove partner 7', message: { type: 'delta', update: delta } },
    { comment: 'snapshot v1 with the cert of online key 1', message: { type: 'snapshot', update: snap } },
    {
      comment: 'receipt for v2, bound to the hello nonce, signed by the device key',
      message: makeReceipt({ lockId: LOCK_ID, version: 2, digest: delta.head.head.digest, nonce: helloNonce, lockTime: EPOCH + 7301, auditSeq: 44, auditHead }, KEYS.device.secretKey),
    },
    {
      comment: 'signed time bound to the hello nonce, naming v1 as current, signed by online key 1',
      message: makeSignedTime({ lockId: LOCK_ID, time: EPOCH + 7290, keyId: KEYS.online1.keyId, nonce: helloNonce, version: 1, digest }, KEYS.online1.secretKey),
    },
    {
      comment: 'signed time without a nonce, naming v1 (may only raise the clock floor; refreshes the lease of a lock at v1)',
      message: makeSignedTime({ lockId: LOCK_ID, time: EPOCH + 7290, keyId: KEYS.online1.keyId, version: 1, digest }, KEYS.online1.secretKey),
    },
    {
      comment: 'floor reset to time EPOCH+7290 and version floor 1, bound to the hello nonce, signed by the root',
      message: makeFloorReset({ lockId: LOCK_ID, time: EPOCH + 7290, versionFloor: 1, keyId: KEYS.root.keyId, nonce: helloNonce }, KEYS.root.secretKey),
    },
    { comment: 'unlock request for credential 1', message: { type: 'unlockRequest', credId: 1 } },
    { comment: 'challenge for credential 1, 5 s validity', message: { type: 'challenge', bodyBytes: challengeBytes, body: { lockId: LOCK_ID, sessionId: nonce('session', 8), nonce: nonce('challenge'), credId: 1, expiresAtMs: (EPOCH + 7200) * 1000 + 5000 } } },
    { comment: "phone's response: its Ed25519 signature over the challenge bytes", message: answerChallenge(challengeBytes, KEYS.phoneResident.secretKey) },
    { comment: 'decision: granted', message: { type: 'decision', granted: true, reason: 'GRANTED', auditSeq: 45 } },
    { comment: 'decision: refused, out of schedule', message: { type: 'decision', granted: false, reason: 'OUT_OF_SCHEDULE', auditSeq: 46 } },
    { comment: 'audit request from seq 41', message: { type: 'auditRequest', fromSeq: 41 } },
    { comment: 'audit export of records 41-44 chained from the genesis hash', message: { type: 'auditExport', prevHash: AUDIT_GENESIS, records } },
    {
      comment: 'signed audit export of records 41-44: the device key signs {lockId, seq 44, chain hash after 44, oldest held 41}',
      message: makeSignedAuditExport(LOCK_ID, AUDIT_GENESIS, records, 41, 44, KEYS.device.secretKey),
    },
    {
      comment: 'audit anchor: the authority holds lk-0001 records through 44 (online key 1)',
      message: makeAuditAnchor({ lockId: LOCK_ID, seq: 44, hash: auditHead, keyId: KEYS.online1.keyId }, KEYS.online1.secretKey),
    },
    { comment: "the lock's answer to an anchor: anchored through 44", message: { type: 'auditAnchored', anchoredSeq: 44 } },
    { comment: 'error: rollback', message: { type: 'error', reason: 'ROLLBACK', detail: 'version 1 <= floor 2' } },
    { comment: 'error without detail', message: { type: 'error', reason: 'BUSY', detail: '' } },
    { comment: 'time acknowledgement', message: { type: 'timeAck', lockTime: EPOCH + 7290 } },
    { comment: 'receipt request (receipt of the table in force, for this session)', message: { type: 'receiptRequest' } },
    {
      comment: 'hello from lk-0001 at v1 offering batches (capability bit 7)',
      message: {
        type: 'hello', protocolVersion: PROTOCOL_VERSION, lockId: LOCK_ID, version: 1, digest, nonce: helloNonce, lockTime: EPOCH + 7200,
        capabilities: CAPABILITIES.delta | CAPABILITIES.snapshot | CAPABILITIES.unlock | CAPABILITIES.auditExport | CAPABILITIES.batch, auditSeq: 44, battery: 87,
      },
    },
    { comment: 'batch: signed time bound to the hello nonce, delta v1 -> v2, audit request from seq 41 (each item one encoded message)', message: { type: 'batch', messages: [encodeMessage(signedTime), encodeMessage(deltaMessage), encodeMessage(auditRequest)] } },
    { comment: 'batchReply to it: timeAck, receipt for v2, audit export of records 41-44', message: { type: 'batchReply', replies: [encodeMessage(timeAck), encodeMessage(receipt), encodeMessage(auditExport)] } },
    {
      comment: 'batchReply after a refusal: timeAck, error ROLLBACK for the update, error NOT_ATTEMPTED for the audit request',
      message: {
        type: 'batchReply',
        replies: [
          encodeMessage(timeAck),
          encodeMessage({ type: 'error', reason: 'ROLLBACK', detail: 'version 1 <= floor 2' }),
          encodeMessage({ type: 'error', reason: 'NOT_ATTEMPTED', detail: 'an earlier item of the batch was refused' }),
        ],
      },
    },
    { comment: 'error NOT_ATTEMPTED without detail', message: { type: 'error', reason: 'NOT_ATTEMPTED', detail: '' } },
  ];
}
