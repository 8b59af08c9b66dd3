// The phone's first-contact discovery (SPEC §13.1) against a scripted ATT server that
// answers Find By Type Value, Read By Type and Find Information as the Core specifies
// (Vol 3 Part F §3.4): four requests for the reference lock's database, and the right
// handles for databases laid out otherwise (descriptors before the CCCD, responses cut by
// a small MTU, extra characteristics), named refusals for databases without what it needs.
// The real bleno database is covered end to end in fast-connect.test.ts.
import { describe, expect, it } from 'vitest';
import { GATT_SHORT } from '../protocol/index';
import { leanDiscovery } from './central';
import { AgentError } from '../mobile-agent/errors';

interface Attr {
  handle: number;
  /** 16-bit SIG type or a 128-bit UUID (hex, no dashes). */
  type: number | string;
  value: Buffer;
  /** Services: last handle of the group. */
  groupEnd?: number;
}

const le128 = (uuid: string) => Buffer.from(uuid.match(/../g)!.reverse().join(''), 'hex');
const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
};

/** Builds a database: services of characteristics (uuid, descriptors), handles in order. */
function database(services: { uuid: string | number; chars: { uuid: string | number; descriptors?: number[]; value?: Buffer }[] }[]): Attr[] {
  const attrs: Attr[] = [];
  let h = 1;
  for (const s of services) {
    const svc: Attr = { handle: h++, type: 0x2800, value: typeof s.uuid === 'number' ? u16(s.uuid) : le128(s.uuid) };
    attrs.push(svc);
    for (const c of s.chars) {
      const decl = h++;
      const valueHandle = h++;
      const uuidBytes = typeof c.uuid === 'number' ? u16(c.uuid) : le128(c.uuid);
      attrs.push({ handle: decl, type: 0x2803, value: Buffer.concat([Buffer.from([0x1a]), u16(valueHandle), uuidBytes]) });
      attrs.push({ handle: valueHandle, type: c.uuid, value: c.value ?? Buffer.alloc(0) });
      for (const d of c.descriptors ?? []) attrs.push({ handle: h++, type: d, value: Buffer.from([0, 0]) });
    }
    svc.groupEnd = h - 1;
  }
  return attrs;
}

const HASH = Buffer.from('00112233445566778899aabbccddeeff', 'hex');

function referenceLock(opts: { txDescriptors?: number[]; extras?: number; hash?: boolean; service?: boolean } = {}): Attr[] {
  const chars: { uuid: string | number; descriptors?: number[]; value?: Buffer }[] = [];
  for (let i = 0; i < (opts.extras ?? 0); i++) chars.push({ uuid: `4c4b00f${i}53594e4380006c6f636b7379` });
  chars.push({ uuid: GATT_SHORT.rx }, { uuid: GATT_SHORT.tx, descriptors: opts.txDescriptors ?? [0x2902] }, { uuid: GATT_SHORT.info });
  if (opts.hash !== false) chars.push({ uuid: 0x2b2a, value: HASH });
  return database([
    { uuid: 0x1800, chars: [{ uuid: 0x2a00 }, { uuid: 0x2a01 }] },
    { uuid: 0x1801, chars: [{ uuid: 0x2a05, descriptors: [0x2902] }] },
    ...(opts.service === false ? [] : [{ uuid: GATT_SHORT.service, chars }]),
  ]);
}

/** An ATT server over `attrs`: answers one request PDU, counting them. */
function attServer(attrs: Attr[], mtu = 247): { att: (pdu: Buffer) => Promise<Buffer>; requests: number[] } {
  const requests: number[] = [];
  const notFound = (op: number, start: number) => Buffer.from([0x01, op, start & 0xff, start >> 8, 0x0a]);
  const typeMatches = (a: Attr, t: Buffer) => (t.length === 2 ? a.type === t.readUInt16LE(0) : typeof a.type === 'string' && le128(a.type).equals(t));
  const att = async (pdu: Buffer): Promise<Buffer> => {
    const op = pdu[0] as number;
    requests.push(op);
    const start = pdu.readUInt16LE(1);
    const end = pdu.readUInt16LE(3);
    const inRange = attrs.filter((a) => a.handle >= start && a.handle <= end);
    if (op === 0x06) {
      const type = pdu.readUInt16LE(5);
      const value = pdu.subarray(7);
      const found = inRange.filter((a) => a.type === type && a.value.equals(value)).slice(0, Math.floor((mtu - 1) / 4));
      if (found.length === 0) return notFound(op, start);
      return Buffer.concat([Buffer.from([0x07]), ...found.map((a) => Buffer.concat([u16(a.handle), u16(a.groupEnd ?? a.handle)]))]);
    }
    if (op === 0x08) {
      const t = pdu.subarray(5);
      const found = inRange.filter((a) => typeMatches(a, t));
      if (found.length === 0) return notFound(op, start);
      const len = 2 + (found[0] as Attr).value.length;
      const same = found.filter((a) => 2 + a.value.length === len).slice(0, Math.floor((mtu - 2) / len));
      return Buffer.concat([Buffer.from([0x09, len]), ...same.map((a) => Buffer.concat([u16(a.handle), a.value]))]);
    }
    if (op === 0x04) {
      if (inRange.length === 0) return notFound(op, start);
      const format = typeof (inRange[0] as Attr).type === 'number' ? 1 : 2;
      const len = format === 1 ? 4 : 18;
      const same = inRange.filter((a) => (typeof a.type === 'number' ? 1 : 2) === format).slice(0, Math.floor((mtu - 2) / len));
      const pairs: Buffer[] = [];
      for (const a of same) {
        if ((typeof a.type === 'number' ? 1 : 2) !== format) break;
        pairs.push(Buffer.concat([u16(a.handle), typeof a.type === 'number' ? u16(a.type) : le128(a.type)]));
      }
      return Buffer.concat([Buffer.from([0x05, format]), ...pairs]);
    }
    return Buffer.from([0x01, op, 0, 0, 0x06]);
  };
  return { att, requests };
}

function handleOf(attrs: Attr[], type: number | string, after = 0): number {
  const a = attrs.find((x) => x.type === type && x.handle > after);
  if (!a) throw new Error(`no ${type}`);
  return a.handle;
}

describe('first-contact discovery in four ATT round trips', () => {
  it('the reference database: service range, declarations, CCCD, hash — four requests, the right handles', async () => {
    const attrs = referenceLock();
    const server = attServer(attrs);
    const known = await leanDiscovery('lk-1', server.att);
    expect(server.requests).toEqual([0x06, 0x08, 0x04, 0x08]);
    const tx = handleOf(attrs, GATT_SHORT.tx);
    expect(known).toEqual({ rx: handleOf(attrs, GATT_SHORT.rx), tx, cccd: handleOf(attrs, 0x2902, tx), hashHandle: handleOf(attrs, 0x2b2a), hash: HASH });
  });

  it('finds the CCCD behind other descriptors, and the characteristics across responses cut by a 23-byte MTU', async () => {
    const attrs = referenceLock({ txDescriptors: [0x2901, 0x2904, 0x2902], extras: 3 });
    const server = attServer(attrs, 23);
    const known = await leanDiscovery('lk-1', server.att);
    const tx = handleOf(attrs, GATT_SHORT.tx);
    expect(known?.cccd).toBe(handleOf(attrs, 0x2902, tx));
    expect(known?.rx).toBe(handleOf(attrs, GATT_SHORT.rx));
    // One declaration per response at MTU 23: the extras and RX and TX take five, no more.
    expect(server.requests.filter((op) => op === 0x08).length).toBe(5 + 1);
  });

  it('a lock without a Database Hash: the handles are not cached (undefined), nothing refused', async () => {
    expect(await leanDiscovery('lk-1', attServer(referenceLock({ hash: false })).att)).toBeUndefined();
  });

  it('a device without the locksync service, or a TX without a CCCD, is refused by name', async () => {
    const noService = leanDiscovery('lk-1', attServer(referenceLock({ service: false })).att);
    await expect(noService).rejects.toBeInstanceOf(AgentError);
    await expect(noService).rejects.toMatchObject({ reason: 'PROTOCOL_VIOLATION', message: expect.stringContaining('does not expose the locksync service') });
    await expect(leanDiscovery('lk-1', attServer(referenceLock({ txDescriptors: [0x2901] })).att)).rejects.toMatchObject({
      reason: 'PROTOCOL_VIOLATION',
      message: expect.stringContaining('no Client Characteristic Configuration'),
    });
  });

  it('a malformed answer (wrong opcode, a handle outside the range asked) is a protocol violation, not a crash', async () => {
    const attrs = referenceLock();
    const good = attServer(attrs);
    const wrongOpcode = async (pdu: Buffer) => (pdu[0] === 0x08 ? Buffer.from([0x0b, 0x00]) : good.att(pdu));
    await expect(leanDiscovery('lk-1', wrongOpcode)).rejects.toMatchObject({ reason: 'PROTOCOL_VIOLATION' });
    const outside = async (pdu: Buffer) => {
      const rsp = await good.att(pdu);
      if (pdu[0] === 0x08 && pdu.readUInt16LE(5) === 0x2803) rsp.writeUInt16LE(0x0001, 2);
      return rsp;
    };
    await expect(leanDiscovery('lk-1', outside)).rejects.toMatchObject({ reason: 'PROTOCOL_VIOLATION' });
  });
});
