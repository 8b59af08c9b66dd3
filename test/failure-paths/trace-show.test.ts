// `locksync trace show` as a separate process: a capture it cannot read whole is named as
// such in one line with exit 16 (BAD_STATE) and nothing on stdout; a good one decodes, as
// text or JSON Lines.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, expectFailure, locksync, tempDir } from './harness';

const FIXTURE = path.join(ROOT, 'fixtures', 'captures', 'demo-lock-unit-4b.btsnoop');
const dir = tempDir('locksync-trace-fail-');
/** A hard deadline against hangs, generous for a loaded 2-core machine; not a timing goal. */
const LONG = { deadlineMs: 60_000 };
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('trace show failure paths', () => {
  it('a truncated capture: exit 16, one line naming the record and byte where it ends', async () => {
    const whole = fs.readFileSync(FIXTURE);
    const cut = path.join(dir, 'cut.btsnoop');
    fs.writeFileSync(cut, whole.subarray(0, whole.length - 5));
    const r = await locksync(['trace', 'show', cut], LONG);
    expectFailure(r, 'BAD_STATE', /cut\.btsnoop is a truncated btsnoop capture: record \d+ at byte \d+ declares \d+ packet bytes, \d+ remain — the capture was cut short/);
    expect(r.stdout).toBe('');
    // Cut inside a record header, and inside the file header: still named as truncated.
    fs.writeFileSync(cut, whole.subarray(0, 16 + 10));
    expectFailure(await locksync(['trace', 'show', cut, '--json'], LONG), 'BAD_STATE', /truncated btsnoop capture: record 1 at byte 16 has 10 of its 24 header bytes/);
    fs.writeFileSync(cut, whole.subarray(0, 12));
    expectFailure(await locksync(['trace', 'show', cut], LONG), 'BAD_STATE', /truncated btsnoop capture: 12 bytes, shorter than the 16-byte btsnoop file header/);
  }, 240_000);

  it('not a capture, another datalink, a missing file: exit 16, one line each', async () => {
    const text = path.join(dir, 'notes.txt');
    fs.writeFileSync(text, 'these are not the packets you are looking for\n');
    expectFailure(await locksync(['trace', 'show', text], LONG), 'BAD_STATE', /notes\.txt is not a capture trace show reads: not a btsnoop file/);
    const pcap = path.join(dir, 'other.btsnoop');
    const other = Buffer.from(fs.readFileSync(FIXTURE));
    other.writeUInt32BE(1003, 12);
    fs.writeFileSync(pcap, other);
    expectFailure(await locksync(['trace', 'show', pcap], LONG), 'BAD_STATE', /datalink 1003 is not one trace show reads/);
    expectFailure(await locksync(['trace', 'show', path.join(dir, 'missing.btsnoop')], LONG), 'BAD_STATE', /cannot read capture .*missing\.btsnoop: no such file/);
  }, 240_000);

  it('a good capture: text, and --json as one object per packet then a summary', async () => {
    const text = await locksync(['trace', 'show', FIXTURE], LONG);
    expect(text.code, text.stderr).toBe(0);
    // The Database Hash characteristic (SPEC §13.1) ends the lock's database at 0x0013.
    expect(text.stdout).toMatch(/ATT Error Response - Attribute Not Found, Handle: 0x0014, in reply to Read By Group Type Request/);
    // The revocation's receipt rides in the batchReply of the pipelined sync (SPEC §6.5).
    expect(text.stdout).toMatch(/lock → phone message 0x[0-9a-f]{4} \(\d+ B in \d+ frames?\): batchReply of \d: .*receipt lockId=lk-0002 version=6/);
    const json = await locksync(['trace', 'show', FIXTURE, '--json'], LONG);
    expect(json.code, json.stderr).toBe(0);
    const lines = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as { kind: string; n?: number; locksync?: { message?: { type: string } } });
    expect(lines.at(-1)?.kind).toBe('summary');
    expect(lines.slice(0, -1).every((l, i) => l.kind === 'packet' && l.n === i + 1)).toBe(true);
    expect(lines.filter((l) => l.locksync?.message?.type === 'batch')).toHaveLength(2);
    const help = await locksync(['trace', 'show', '--help'], LONG);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--json/);
    expect(help.stdout).toMatch(/16 BAD_STATE/);
  }, 240_000);
});
