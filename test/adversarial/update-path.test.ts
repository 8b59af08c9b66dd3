// Attacks on the update path, as a hostile courier (TUF's "mirror") would mount them. Each
// asserts the named refusal, the flash byte-identical and the next valid update accepted.
// These hold today; they are here so that they keep holding.

import { afterAll, describe, expect, it } from 'vitest';
import {
  ERROR_CODES,
  type CborValue,
  type Update,
  applyOps,
  deriveSeed32,
  encode,
  encodeMessage,
  issueKeyCert,
  keyPairFromSeed,
  makeDelta,
  segmentMessage,
  signHead,
  tableDigest,
  LIMITS,
} from '../../protocol';
import { TestAuthority } from '../../firmware-sim/test-authority';
import { PARTNER_ID, attack, attackLog, buildWorld, deliver, expectNextValidUpdateAccepted, forkAuthority, updateMessage } from './harness';

const ANY_REFUSAL = Object.keys(ERROR_CODES);
const FRAMING_OR_MALFORMED = ['MALFORMED', 'OVER_LIMIT', 'framing:MESSAGE_TOO_LARGE', 'framing:FRAME_TOO_SHORT', 'framing:MALFORMED_FRAME'];

afterAll(() => {
  const refused = attackLog.filter((a) => !a.refusal.startsWith('accepted')).length;
  console.log(`adversarial/update-path: ${attackLog.length} attacks, ${refused} refused`);
});

const removePartner = [{ op: 'removePartner' as const, partnerId: PARTNER_ID }];

describe('forged updates', () => {
  it('head signed by a key the lock does not trust → UNTRUSTED_KEY', () => {
    const w = buildWorld('forged-untrusted');
    const mallory = forkAuthority(w.auth);
    mallory.signer = keyPairFromSeed(deriveSeed32('mallory', 'key'));
    attack(w, 'forged: stranger key', () => deliver(w, updateMessage(mallory.delta(removePartner))), 'UNTRUSTED_KEY');
  });

  it("head signed by a stranger under the authority's key id → BAD_SIGNATURE", () => {
    const w = buildWorld('forged-keyid');
    const mallory = forkAuthority(w.auth);
    const stranger = keyPairFromSeed(deriveSeed32('mallory', 'key'));
    attack(w, 'forged: stolen key id', () => deliver(w, updateMessage(mallory.delta(removePartner, { signWith: stranger.secretKey }))), 'BAD_SIGNATURE');
  });

  it('online key certified by a root the lock was not provisioned with → UNTRUSTED_KEY', () => {
    const w = buildWorld('forged-cert');
    const mallory = forkAuthority(w.auth);
    const fakeRoot = keyPairFromSeed(deriveSeed32('mallory', 'root'));
    const online = keyPairFromSeed(deriveSeed32('mallory', 'online'));
    mallory.signer = online;
    mallory.cert = issueKeyCert(99, online.publicKey, fakeRoot.secretKey, fakeRoot.publicKey);
    attack(w, 'forged: cert from a foreign root', () => deliver(w, updateMessage(mallory.delta(removePartner))), 'UNTRUSTED_KEY');
  });
});

describe('altered, mixed and reordered updates', () => {
  it('ops altered after signing (partner 7 → partner 8) → DIGEST_MISMATCH', () => {
    const w = buildWorld('altered-ops');
    const d = forkAuthority(w.auth).delta(removePartner) as Extract<Update, { type: 'delta' }>;
    attack(w, 'altered: ops swapped', () => deliver(w, updateMessage({ ...d, ops: [{ op: 'removePartner', partnerId: PARTNER_ID + 1 }] })), 'DIGEST_MISMATCH');
  });

  it('an op dropped from a genuine delta (keep the revocation, drop nothing else) → DIGEST_MISMATCH', () => {
    const w = buildWorld('altered-drop');
    const d = forkAuthority(w.auth).delta([...removePartner, { op: 'remove', credId: 3 }]) as Extract<Update, { type: 'delta' }>;
    attack(w, 'altered: op dropped', () => deliver(w, updateMessage({ ...d, ops: d.ops.slice(1) })), 'DIGEST_MISMATCH');
  });

  it('mix and match: ops of one genuine delta under the head of another → DIGEST_MISMATCH', () => {
    const w = buildWorld('mixed');
    const a = forkAuthority(w.auth).delta(removePartner) as Extract<Update, { type: 'delta' }>;
    const b = forkAuthority(w.auth).delta([{ op: 'remove', credId: 3 }]) as Extract<Update, { type: 'delta' }>;
    attack(w, 'mixed: ops of A, head of B', () => deliver(w, updateMessage({ ...a, head: b.head })), 'DIGEST_MISMATCH');
  });

  it('a genuine update for another lock of the same authority → WRONG_LOCK', () => {
    const w = buildWorld('mixed-lock');
    const d = forkAuthority(w.auth).delta(removePartner, { lockId: 'lk-0002' });
    attack(w, 'mixed: other lock', () => deliver(w, updateMessage(d)), 'WRONG_LOCK');
  });

  it('reordered: v3 delivered before v2 → BROKEN_CHAIN, then v2, v3 in order apply', () => {
    const w = buildWorld('reordered');
    const v2 = w.auth.delta([{ op: 'remove', credId: 3 }]);
    const v3 = w.auth.delta(removePartner);
    attack(w, 'reordered: v3 first', () => deliver(w, updateMessage(v3)), 'BROKEN_CHAIN', { thenValid: false });
    expect(deliver(w, updateMessage(v2))).toMatchObject({ kind: 'reply', messages: [{ type: 'receipt' }] });
    expect(deliver(w, updateMessage(v3))).toMatchObject({ kind: 'reply', messages: [{ type: 'receipt' }] });
    expectNextValidUpdateAccepted(w, 'after reordering');
  });

  it('a delta whose base digest names another table at the right version → BROKEN_CHAIN', () => {
    const w = buildWorld('broken-base');
    const d = forkAuthority(w.auth).delta(removePartner) as Extract<Update, { type: 'delta' }>;
    const prefix = d.baseDigestPrefix.slice();
    prefix[3] = (prefix[3] as number) ^ 0x40;
    attack(w, 'mixed: wrong base digest', () => deliver(w, updateMessage({ ...d, baseDigestPrefix: prefix })), 'BROKEN_CHAIN');
  });
});

describe('replayed, rolled back, truncated and oversized updates', () => {
  it('the accepted update replayed → ROLLBACK', () => {
    const w = buildWorld('replay');
    const v2 = w.auth.delta(removePartner);
    expect(deliver(w, updateMessage(v2))).toMatchObject({ kind: 'reply', messages: [{ type: 'receipt' }] });
    attack(w, 'replayed: v2 again', () => deliver(w, updateMessage(v2)), 'ROLLBACK');
  });

  it('rolled back: a genuine older snapshot (before the revocation) → ROLLBACK', () => {
    const w = buildWorld('rollback');
    const old = w.auth.snapshot(); // v1, partner still in
    expect(deliver(w, updateMessage(w.auth.delta(removePartner)))).toMatchObject({ kind: 'reply', messages: [{ type: 'receipt' }] });
    attack(w, 'rolled back: snapshot v1 at v2', () => deliver(w, updateMessage(old)), 'ROLLBACK');
  });

  it('a snapshot with one credential removed under an honest head → DIGEST_MISMATCH', () => {
    const w = buildWorld('snapshot-drop');
    const s = forkAuthority(w.auth);
    s.version += 1;
    const snap = s.snapshot() as Extract<Update, { type: 'snapshot' }>;
    const entries = new Map(snap.table.entries);
    entries.delete(4);
    attack(w, 'altered: snapshot entry dropped', () => deliver(w, updateMessage({ ...snap, table: { ...snap.table, entries } })), 'DIGEST_MISMATCH');
  });

  it(`more ops than LIMITS.maxOpsPerDelta → OVER_LIMIT`, () => {
    const w = buildWorld('over-limit');
    const a = forkAuthority(w.auth);
    const ops = Array.from({ length: LIMITS.maxOpsPerDelta + 1 }, () => ({ op: 'setKeyPolicy' as const, policy: { keyId: 5, doorcodesEnabled: true } }));
    const table = a.table;
    const head = signHead({ lockId: a.lockId, version: a.version + 1, digest: tableDigest(table), issuedAt: a.now, keyId: a.signer.keyId }, a.signer.secretKey);
    const d = makeDelta({ base: { version: a.version, digest: tableDigest(table) }, ops, head });
    attack(w, 'oversized: too many ops', () => deliver(w, updateMessage(d)), ['OVER_LIMIT', 'MALFORMED']);
  });

  it('truncated at every length → refused, never applied', () => {
    const w = buildWorld('truncated');
    const msg = updateMessage(w.auth.delta(removePartner));
    for (let n = 1; n < msg.length; n++) attack(w, `truncated to ${n}/${msg.length} B`, () => deliver(w, msg.slice(0, n)), FRAMING_OR_MALFORMED, { thenValid: false });
    expect(deliver(w, msg)).toMatchObject({ kind: 'reply', messages: [{ type: 'receipt' }] });
    expectNextValidUpdateAccepted(w, 'after truncations');
  });

  it('every single-bit flip of a signed revocation delta → refused with a registry reason', () => {
    const w = buildWorld('bitflips');
    const msg = updateMessage(w.auth.delta(removePartner));
    const seen = new Map<string, number>();
    for (let bit = 0; bit < msg.length * 8; bit++) {
      const m = msg.slice();
      m[bit >> 3] = (m[bit >> 3] as number) ^ (1 << (bit & 7));
      const r = attack(w, `bit ${bit} flipped`, () => deliver(w, m), ANY_REFUSAL, { thenValid: false });
      seen.set(r, (seen.get(r) ?? 0) + 1);
    }
    // the flips reach several distinct checks, not one early catch-all
    expect([...seen.keys()].length).toBeGreaterThanOrEqual(4);
    expect(deliver(w, msg)).toMatchObject({ kind: 'reply', messages: [{ type: 'receipt' }] });
    expectNextValidUpdateAccepted(w, 'after bit flips');
  });
});

describe('decoder bombs through the real framing', () => {
  const bombs: [string, () => Uint8Array, readonly string[]][] = [
    ['100,000 nested arrays', () => new Uint8Array([...new Array<number>(100_000).fill(0x81), 0x00]), ['MALFORMED', 'OVER_LIMIT']],
    ['a lone indefinite-length array header (cbor-x PR #141)', () => new Uint8Array([0x9f]), ['MALFORMED']],
    ['indefinite-length array of 40 KB nested headers (cbor-x PR #142)', () => new Uint8Array(40_000).fill(0x9f), ['MALFORMED', 'OVER_LIMIT']],
    ['map declaring 2^32 − 1 pairs', () => new Uint8Array([0xba, 0xff, 0xff, 0xff, 0xff, 0x00]), ['MALFORMED', 'OVER_LIMIT']],
    ['byte string declaring 2^63 bytes', () => new Uint8Array([0x5b, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x00]), ['MALFORMED', 'OVER_LIMIT']],
    ['array of 1,000,000 zeros (item limit)', () => new Uint8Array([0x9a, 0x00, 0x0f, 0x42, 0x40, ...new Array<number>(1_000_000).fill(0)]), ['MALFORMED', 'OVER_LIMIT']],
    ['delta whose map has a duplicate key', () => {
      const hex = Buffer.from(encode(new Map<number, CborValue>([[0, 3], [1, 1]]))).toString('hex');
      return Buffer.from(hex.replace(/^a2/, 'a3') + '0003', 'hex');
    }, ['MALFORMED']],
    ['message of 3 MB declared in START (refused before buffering)', () => new Uint8Array(3 * 1024 * 1024), ['framing:MESSAGE_TOO_LARGE']],
  ];
  for (const [name, make, expected] of bombs) {
    it(`${name} → refused`, () => {
      const w = buildWorld(`bomb/${name}`);
      attack(w, `bomb: ${name}`, () => deliver(w, make(), { mtu: 517 }), expected);
    });
  }

  it('a receipt (a lock-only message) sent to the lock → UNEXPECTED_MESSAGE', () => {
    const w = buildWorld('unexpected');
    const s = w.lock.openSession();
    const receipt = s.handle(encodeMessage({ type: 'receiptRequest' }))[0] as Uint8Array;
    s.close();
    attack(w, 'receipt sent to a lock', () => deliver(w, receipt), 'UNEXPECTED_MESSAGE');
  });

  it('a message split at MTU 23 arrives intact only when framed honestly: a frame dropped → framing refusal', () => {
    const w = buildWorld('frame-drop');
    const msg = updateMessage(forkAuthority(w.auth).delta(removePartner));
    const frames = segmentMessage(msg, 23);
    attack(w, 'frame 2 dropped', () => deliver(w, msg, { frames: [frames[0] as Uint8Array, ...frames.slice(2)] }), 'framing:BAD_SEQUENCE');
    attack(w, 'frame 2 duplicated', () => deliver(w, msg, { frames: [frames[0] as Uint8Array, frames[1] as Uint8Array, ...frames.slice(1)] }), 'framing:BAD_SEQUENCE');
  });
});

describe('the world itself', () => {
  it('an honest update through the same path is accepted (the attacks can fail)', () => {
    const w = buildWorld('honest');
    expect(deliver(w, updateMessage(w.auth.delta(removePartner)))).toMatchObject({ kind: 'reply', messages: [{ type: 'receipt' }] });
    expect(w.lock.durable.tableState.table.entries.has(2)).toBe(false);
    expect(applyOps(w.auth.table, []).entries.size).toBe(w.lock.durable.tableState.table.entries.size);
    expect(TestAuthority.message(w.auth.snapshot()).length).toBeGreaterThan(100);
  });
});
