// The committed vector files are the contract a C lock is built against. (1) Regenerating
// them must reproduce every byte. (2) Each file is consumed the way an independent
// implementation would: only the JSON, the decoder/apply entry points, and for the
// derivations node:crypto instead of our own helpers.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createHash, createHmac } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ed from '@noble/ed25519';
import { CborError, decode, encode } from './cbor';
import { fromHex, toHex } from './crypto';
import { ERROR_CODES, ProtocolError, type ErrorName } from './errors';
import { decodeMessage, encodeMessage } from './messages';
import { decodeTableBytes, encodeTable, tableDigest } from './table';
import { type TableState, applyUpdate, headFromCbor, keyCertFromCbor } from './update';
import { FrameReassembler, FrameSender, FramingError } from './framing';
import { type AccessContext, type IssuedChallenge, decideCode, decideKeycard, decidePhone, decidePhoneKey } from './access';
import { challengeBodyFromBytes, verifyAuditExport } from './messages';
import { checkFloorReset, checkSignedTime } from './time';
import { isStrictEd25519PublicKey, verifyEd25519Strict, weakEd25519EncodingReason, weakEd25519PublicKeyReason } from './ed25519-strict';
import { allVectorFiles } from './vectors/all';

const DIR = fileURLToPath(new URL('../fixtures/vectors', import.meta.url));
const load = (name: string): VectorFileJson => JSON.parse(readFileSync(join(DIR, name), 'utf8')) as VectorFileJson;

interface VectorFileJson {
  algorithm: string;
  numberOfTests: number;
  testGroups: { type: string; [k: string]: unknown; tests: ({ tcId: number; comment: string; result: 'valid' | 'invalid' } & Record<string, unknown>)[] }[];
}
const s = (v: unknown): string => v as string;

describe('committed vectors are exactly what the generator produces', () => {
  for (const [name, text] of allVectorFiles()) {
    it(`fixtures/vectors/${name} is up to date (run npm run vectors)`, () => {
      expect(readFileSync(join(DIR, name), 'utf8') === text, `${name} differs from a fresh generation`).toBe(true);
    });
  }
  it('every file numbers its tests 1..n', () => {
    for (const name of [...allVectorFiles().keys(), 'rfc8032-ed25519.json']) {
      const f = load(name);
      const ids = f.testGroups.flatMap((g) => g.tests.map((t) => t.tcId));
      expect(ids).toEqual(Array.from({ length: f.numberOfTests }, (_, i) => i + 1));
    }
  });
});

/** The lock's access context exactly as an access.json state describes it. */
function accessContext(st: Record<string, unknown>): AccessContext {
  return {
    lockId: (st.lockId as string | undefined) ?? 'lk-0001',
    table: decodeTableBytes(fromHex(s(st.table))),
    lockSecret: fromHex(s(st.lockSecret)),
    timeZone: s(st.timeZone),
    nowMs: st.nowMs as number,
    monotonicMs: (st.monotonicMs as number | undefined) ?? 0,
    clockTrusted: st.clockTrusted as boolean,
    leaseAnchorS: st.leaseAnchor as number,
    singleUse: st.singleUse as AccessContext['singleUse'],
  };
}

describe('processing vectors (state + input -> output)', () => {
  it('access.json: access decisions and unlock responses (R-ACCESS-1, R-ACCESS-2, R-CODE-1, R-CLOCK-1)', () => {
    const f = load('access.json');
    expect(f.numberOfTests).toBeGreaterThanOrEqual(40);
    for (const g of f.testGroups) {
      for (const t of g.tests) {
        const st = t.state as Record<string, unknown>;
        const ctx = accessContext(st);
        const input = t.input as Record<string, string>;
        let got: Record<string, unknown>;
        if (g.type === 'AccessDecision') {
          if (input.phonePublicKey !== undefined) {
            const d = decidePhoneKey(ctx, fromHex(input.phonePublicKey));
            got = d.credId === undefined ? { reason: d.reason } : { reason: d.reason, credId: d.credId };
          } else {
            const d = input.keypadCode !== undefined ? decideCode(ctx, input.keypadCode) : decideKeycard(ctx, fromHex(s(input.keycardUid)));
            got = { reason: d.reason, method: d.method };
            if (d.credId !== undefined) got.credId = d.credId;
            if (d.singleUse !== undefined) got.singleUse = d.singleUse;
          }
        } else {
          const issued: IssuedChallenge[] = (st.issued as { bytes: string; used: boolean; expiresAtMonotonicMs: number }[]).map((c) => ({
            bytes: fromHex(c.bytes), body: challengeBodyFromBytes(fromHex(c.bytes)), used: c.used, expiresAtMonotonicMs: c.expiresAtMonotonicMs,
          }));
          const d = decidePhone(ctx, fromHex(s(st.sessionId)), issued, fromHex(input.challenge as string), fromHex(input.signature as string));
          got = { reason: d.reason };
          if (d.credId !== undefined) got.credId = d.credId;
          got.consumed = d.consumed ?? null;
        }
        expect(got, `${g.type} #${t.tcId}: ${t.comment}`).toEqual(t.expected);
        expect(t.result).toBe((t.expected as { reason: string }).reason === 'GRANTED' ? 'valid' : 'invalid');
      }
    }
  });

  it('audit.json: the chain and signed export verification (R-AUDIT-1)', () => {
    for (const g of load('audit.json').testGroups) {
      for (const t of g.tests) {
        if (g.type === 'AuditChain') {
          let h = fromHex(s(g.genesis));
          (t.records as string[]).forEach((r, i) => {
            h = createHash('sha256').update(h).update(fromHex(r)).digest();
            expect(toHex(h)).toBe((t.heads as string[])[i]);
          });
          continue;
        }
        let got: Record<string, unknown>;
        try {
          const m = decodeMessage(fromHex(s(t.msg)));
          if (m.type !== 'auditExport') throw new Error('not an export');
          const r = verifyAuditExport(m, s(t.lockId), fromHex(s(t.devicePublicKey)));
          got = { firstSeq: r.firstSeq ?? null, lastSeq: r.lastSeq, head: toHex(r.head), oldestSeq: r.oldestSeq };
        } catch (e) {
          if (!(e instanceof ProtocolError)) throw e;
          got = { error: e.reason };
        }
        expect(got, t.comment).toEqual(t.expected);
      }
    }
  });
});

describe('independent consumers', () => {
  it('cbor-decoder.json', () => {
    for (const g of load('cbor-decoder.json').testGroups) {
      for (const t of g.tests) {
        const input = fromHex(s(t.input));
        if (t.result === 'valid') expect(toHex(encode(decode(input))), t.comment).toBe(t.input);
        else {
          const code = (() => {
            try {
              decode(input, (t.limits ?? {}) as object);
            } catch (e) {
              if (e instanceof CborError) return e.code;
              throw e;
            }
            return 'accepted';
          })();
          expect(code, t.comment).toBe(t.expectedError);
        }
      }
    }
  });

  it('messages.json', () => {
    for (const g of load('messages.json').testGroups) {
      for (const t of g.tests) {
        if (g.type === 'GattLayout') {
          if (t.lockInfo !== undefined) expect(toHex(encode(decode(fromHex(s(t.lockInfo)))))).toBe(t.lockInfo);
          continue;
        }
        if (g.type === 'AuditChain') {
          let h = fromHex(s(g.genesis));
          expect(toHex(h)).toBe(createHash('sha256').update('locksync/v1/audit-genesis').digest('hex'));
          (t.records as string[]).forEach((r, i) => {
            h = createHash('sha256').update(h).update(fromHex(r)).digest();
            expect(toHex(h)).toBe((t.heads as string[])[i]);
          });
          continue;
        }
        const bytes = fromHex(s(t.msg));
        if (t.result === 'valid') {
          const m = decodeMessage(bytes);
          expect(m.type, t.comment).toBe(t.messageType);
          expect(bytes[2], 'type code is the value of key 0').toBe(t.typeCode);
          expect(toHex(encodeMessage(m))).toBe(t.msg);
        } else {
          expect(() => decodeMessage(bytes), t.comment).toThrow(expect.objectContaining({ reason: t.expectedError }));
        }
      }
    }
  });

  it('updates.json: the lock accepts or refuses exactly as stated, state untouched on refusal (R-UPD-2, R-UPD-3, R-UPD-4)', () => {
    const f = load('updates.json');
    for (const g of f.testGroups) {
      for (const t of g.tests) {
        const v = t.state as Record<string, unknown>;
        const table = decodeTableBytes(fromHex(s(v.table)));
        const head = v.head === null ? null : headFromCbor(decode(fromHex(s(v.head))));
        const state: TableState = {
          lockId: s(v.lockId),
          table,
          head,
          versionFloor: v.versionFloor as number,
          trust: { roots: (v.rootPublicKeys as string[]).map(fromHex), certs: (v.certs as string[]).map((c) => keyCertFromCbor(decode(fromHex(c)))), certFloor: v.certFloor as number },
          newestIssuedAt: v.newestIssuedAt as number,
          leaseAnchor: v.leaseAnchor as number,
        };
        expect(toHex(encodeTable(state.table))).toBe(v.table);
        let outcome: { ok: true; state: TableState } | { ok: false; reason: ErrorName };
        try {
          const m = decodeMessage(fromHex(s(t.msg)));
          if (m.type !== 'delta' && m.type !== 'snapshot') throw new Error('not an update');
          const r = applyUpdate(state, m.update);
          outcome = r.ok ? r : { ok: false, reason: r.error.reason };
        } catch (e) {
          if (!(e instanceof ProtocolError)) throw e;
          outcome = { ok: false, reason: e.reason };
        }
        if (t.result === 'valid') {
          if (!outcome.ok) throw new Error(`${t.comment}: refused ${outcome.reason}`);
          const exp = t.expected as Record<string, unknown>;
          expect(outcome.state.versionFloor).toBe(exp.version);
          expect(toHex(encodeTable(outcome.state.table))).toBe(exp.table);
          const digest = createHash('sha256').update('locksync/v1/table\0').update(fromHex(s(exp.table))).digest('hex');
          expect(digest).toBe(exp.digest);
          expect(outcome.state.trust.certFloor).toBe(exp.certFloor);
          expect(outcome.state.head && toHex(encode(decode(fromHex(s(exp.head)))))).toBe(exp.head);
          expect(outcome.state.head?.version).toBe(exp.version);
          expect(outcome.state.trust.certs.map((k) => toHex(encode([k.certBytes, k.signature]))), t.comment).toEqual(exp.certs);
          expect(outcome.state.newestIssuedAt, t.comment).toBe(exp.newestIssuedAt);
          expect(outcome.state.leaseAnchor, t.comment).toBe(exp.leaseAnchor);
        } else {
          expect(outcome.ok ? 'accepted' : outcome.reason, t.comment).toBe(t.expectedError);
          expect(ERROR_CODES[t.expectedError as ErrorName]).toBe(t.expectedErrorCode);
          expect(toHex(encodeTable(state.table))).toBe(v.table);
        }
      }
    }
  });

  it('time.json: signed time and floor resets give exactly the stated anchors or refusal', () => {
    const f = load('time.json');
    expect(f.numberOfTests).toBeGreaterThanOrEqual(10);
    for (const g of f.testGroups) {
      for (const t of g.tests) {
        const v = t.state as Record<string, unknown>;
        const state: TableState = {
          lockId: s(v.lockId),
          table: decodeTableBytes(fromHex(s(v.table))),
          head: v.head === null ? null : headFromCbor(decode(fromHex(s(v.head)))),
          versionFloor: v.versionFloor as number,
          trust: { roots: (v.rootPublicKeys as string[]).map(fromHex), certs: (v.certs as string[]).map((c) => keyCertFromCbor(decode(fromHex(c)))), certFloor: v.certFloor as number },
          newestIssuedAt: v.newestIssuedAt as number,
          leaseAnchor: v.leaseAnchor as number,
        };
        const session = { nonce: fromHex(s(t.sessionNonce)), used: t.nonceUsed as boolean };
        let outcome: Record<string, unknown>;
        try {
          const m = decodeMessage(fromHex(s(t.msg)));
          if (m.type === 'signedTime') outcome = { ...checkSignedTime(state, m, session) };
          else if (m.type === 'floorReset') outcome = { ...checkFloorReset(state, m, session) };
          else throw new Error(`${t.comment}: not a time message`);
        } catch (e) {
          if (!(e instanceof ProtocolError)) throw e;
          outcome = { error: e.reason };
        }
        if (t.result === 'valid') expect(outcome, t.comment).toEqual(t.expected);
        else {
          expect(outcome, t.comment).toEqual({ error: t.expectedError });
          expect(ERROR_CODES[t.expectedError as ErrorName]).toBe(t.expectedErrorCode);
        }
      }
    }
  });

  it('table.json', () => {
    for (const g of load('table.json').testGroups) {
      for (const t of g.tests) {
        if (g.type === 'EntryEncoding') {
          const e = t.entry as Record<string, unknown>;
          const m = decode(fromHex(s(t.encoded))) as Map<number, unknown>;
          expect(m.get(1)).toBe(e.credId);
          expect(toHex(m.get(3) as Uint8Array)).toBe(e.secret);
          expect(m.get(9) ?? 0).toBe(e.flags);
        } else if (g.type === 'OpEncoding') {
          const op = decode(fromHex(s(t.encoded))) as unknown[];
          expect(op.length).toBe(2);
          expect(['put', 'remove', 'removePartner', 'removeKey', 'setKeyPolicy', 'setLockPolicy'][(op[0] as number) - 1]).toBe(t.op);
        } else if (g.type === 'TableDigest') {
          const digest = createHash('sha256').update('locksync/v1/table\0').update(fromHex(s(t.table))).digest('hex');
          expect(digest, t.comment).toBe(t.digest);
          expect(toHex(tableDigest(decodeTableBytes(fromHex(s(t.table)))))).toBe(t.digest);
        } else {
          expect(() => decodeTableBytes(fromHex(s(t.table))), t.comment).toThrow(expect.objectContaining({ reason: t.expectedError }));
        }
      }
    }
  });

  it('signatures.json: raw Ed25519 over context || 0x00 || msg', () => {
    for (const g of load('signatures.json').testGroups) {
      const pk = fromHex(s(g.publicKey));
      expect(s(g.keyId)).toBe(createHash('sha256').update(pk).digest('hex').slice(0, 8));
      for (const t of g.tests) {
        const input = Buffer.concat([Buffer.from(s(t.context), 'ascii'), Buffer.from([0]), fromHex(s(t.msg))]);
        if (t.signatureInput !== undefined) expect(input.toString('hex')).toBe(t.signatureInput);
        expect(ed.verify(fromHex(s(t.sig)), new Uint8Array(input), pk), t.comment).toBe(t.result === 'valid');
      }
    }
  });

  it('ed25519-strict.json: the strict verifier and key check agree with every vector; ZIP-215 leniency is what it says', () => {
    const f = load('ed25519-strict.json');
    let lenientAccepts = 0;
    for (const g of f.testGroups) {
      for (const t of g.tests) {
        const pk = fromHex(s(t.publicKey));
        if (g.type === 'StrictVerify') {
          const sig = fromHex(s(t.sig));
          const msg = fromHex(s(g.msg));
          expect(verifyEd25519Strict(sig, msg, pk), t.comment).toBe(t.result === 'valid');
          let lenient: boolean;
          try {
            lenient = ed.verify(sig, msg, pk); // noble v2 default: zip215 = true
          } catch {
            lenient = false;
          }
          expect(lenient, t.comment).toBe(t.zip215Accepts);
          if (t.result === 'invalid' && lenient) lenientAccepts++;
        } else {
          expect(isStrictEd25519PublicKey(pk), t.comment).toBe(t.result === 'valid');
          expect(weakEd25519PublicKeyReason(pk), t.comment).toBe(t.result === 'valid' ? null : t.expectedReason);
          if (t.result === 'invalid') expect(weakEd25519EncodingReason(pk) !== null, t.comment).toBe(t.lockRefuses);
        }
      }
    }
    // The leniency the strict rules close: ZIP-215 accepts most of the refused signatures.
    expect(lenientAccepts).toBeGreaterThanOrEqual(20);
  });

  it('codes.json: HMAC-SHA-256 derivations (node:crypto)', () => {
    for (const g of load('codes.json').testGroups) {
      const key = fromHex(s(g.lockSecret));
      const hmac = (label: string, ...parts: Uint8Array[]): Buffer => {
        const h = createHmac('sha256', key).update(`locksync/v1/${label}\0`);
        for (const p of parts) h.update(p);
        return h.digest();
      };
      for (const t of g.tests) {
        if (g.type === 'DoorcodeVerifier') expect(hmac('doorcode', Buffer.from(s(t.code), 'ascii')).subarray(0, 16).toString('hex')).toBe(t.verifier);
        else if (g.type === 'KeycardVerifier') expect(hmac('keycard', fromHex(s(t.uid))).subarray(0, 16).toString('hex')).toBe(t.verifier);
        else {
          const label = t.kind === 'daily' ? 'daily-code' : 'daily-single-use-code';
          const m = hmac(label, Buffer.from(s(t.localDate), 'ascii'), Uint8Array.of(t.slot as number));
          expect(String(m.readUInt32BE(0) % 10_000_000).padStart(7, '0'), t.comment).toBe(t.code);
        }
      }
    }
  });

  it('framing.json: frames reassemble to the message; invalid frame sequences fail with the stated code', () => {
    for (const g of load('framing.json').testGroups) {
      for (const t of g.tests) {
        if (g.type === 'FramingSegmentation') {
          const r = new FrameReassembler();
          let got: Uint8Array | undefined;
          for (const fr of t.frames as string[]) {
            expect(fromHex(fr).length).toBeLessThanOrEqual((g.mtu as number) - 3);
            got = r.push(fromHex(fr)).message ?? got;
          }
          expect(got && toHex(got)).toBe(t.msg);
        } else if (g.type === 'FramingSenderScript') {
          const sender = new FrameSender({ mtu: t.mtu as number });
          sender.send(t.messageId as number, fromHex(s(t.msg)));
          for (const step of t.steps as { input: string; expected: { frames?: string[]; done?: boolean; error?: string } }[]) {
            try {
              sender.onAck(fromHex(step.input));
              expect({ frames: sender.nextFrames().map(toHex), done: sender.done }, t.comment).toEqual(step.expected);
            } catch (e) {
              if (!(e instanceof FramingError)) throw e;
              expect({ error: e.code }, t.comment).toEqual(step.expected);
            }
          }
        } else if (g.type === 'FramingReassemblerScript') {
          const r = new FrameReassembler({ maxMessageBytes: t.maxMessageBytes as number, window: t.window as number, ackEvery: t.ackEvery as number });
          expect(toHex(r.hello())).toBe(t.hello);
          for (const step of t.steps as { input: string; expected: Record<string, unknown> }[]) {
            try {
              const out = r.push(fromHex(step.input));
              expect({ ack: out.ack ? toHex(out.ack) : null, message: out.message ? toHex(out.message) : null }, t.comment).toEqual(step.expected);
            } catch (e) {
              if (!(e instanceof FramingError)) throw e;
              const abort = e.code === 'MESSAGE_TOO_LARGE' ? r.abortFrame() : undefined;
              expect({ error: e.code, abort: abort ? toHex(abort) : null }, t.comment).toEqual(step.expected);
            }
          }
        } else if (g.type === 'FramingReassemblyInvalid') {
          const r = new FrameReassembler({ maxMessageBytes: t.maxMessageBytes as number });
          let code: string | undefined;
          for (const fr of t.frames as string[]) {
            try {
              r.push(fromHex(fr));
            } catch (e) {
              if (!(e instanceof FramingError)) throw e;
              code = e.code;
              break;
            }
          }
          expect(code, t.comment).toBe(t.expectedError);
        }
      }
    }
  });
});
