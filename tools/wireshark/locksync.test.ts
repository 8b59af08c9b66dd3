// The Wireshark dissector (tools/wireshark/locksync.lua) run by tshark: it must find the same
// locksync frames and reassemble the same messages as `trace show` does from the same
// capture, and show the SPEC registry's field names. Skipped with a notice without tshark.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeCapture } from '../../radio/trace-show';
import { resumeCapture, sampleCapture } from '../../radio/trace-fixture';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const SCRIPT = path.join(ROOT, 'tools', 'wireshark', 'locksync.lua');
const DEMO_CAPTURE = path.join(ROOT, 'fixtures', 'captures', 'demo-lock-unit-4b.btsnoop');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'locksync-lua-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const tshark = spawnSync('tshark', ['--version'], { encoding: 'utf8' }).status === 0;
if (!tshark) console.warn('NOTICE: tshark not installed; skipping the Wireshark Lua dissector tests (tools/wireshark/locksync.lua)');

function run(args: string[]): string {
  const r = spawnSync('tshark', ['-X', `lua_script:${SCRIPT}`, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  expect(r.status, r.stderr).toBe(0);
  // A Lua error in the script shows up on stderr or as a "Lua Error" in the tree.
  expect(r.stderr).not.toMatch(/Lua: Error|lua_script.*error/i);
  expect(r.stdout).not.toMatch(/Lua Error/);
  return r.stdout;
}

function fields(file: string, filter: string, names: string[]): string[][] {
  const out = run(['-r', file, '-Y', filter, '-T', 'fields', '-E', 'separator=\t', ...names.flatMap((n) => ['-e', n])]);
  return out.trim() === '' ? [] : out.trim().split('\n').map((l) => l.split('\t'));
}

function agreesWithTraceShow(file: string): { frames: number; messages: number } {
  const { records } = decodeCapture(fs.readFileSync(file));
  const ourFrames = records.filter((r) => r.locksync?.frame).map((r) => [String(r.n), r.locksync!.frame!.type.toUpperCase()]);
  const theirFrames = fields(file, 'locksync.frame.type_name', ['frame.number', 'locksync.frame.type_name']);
  expect(theirFrames).toEqual(ourFrames);
  const ourMessages = records.flatMap((r) => (r.locksync?.message ? [[String(r.n), r.locksync.message.type, String(r.locksync.message.bytes), String(r.locksync.message.frames)]] : []));
  const theirMessages = fields(file, 'locksync.message.type_name', ['frame.number', 'locksync.message.type_name', 'locksync.message.length', 'locksync.message.frames']);
  expect(theirMessages).toEqual(ourMessages);
  return { frames: ourFrames.length, messages: ourMessages.length };
}

describe.skipIf(!tshark)('Wireshark Lua dissector (tshark -X lua_script:tools/wireshark/locksync.lua)', () => {
  it('on a demo capture: the same frames and messages as trace show, fields by their SPEC names', () => {
    const { frames, messages } = agreesWithTraceShow(DEMO_CAPTURE);
    expect(frames).toBeGreaterThan(50);
    expect(messages).toBeGreaterThan(20);
    // The demo's syncs are pipelined (SPEC §6.5): receipts come inside batchReply, each item by its own schema.
    const receipt = run(['-r', DEMO_CAPTURE, '-Y', 'locksync.message.type_name == "batchReply"', '-V']);
    expect(receipt).toMatch(/locksync lock→phone message batchReply \(\d+ bytes in \d+ frames?, id 0x[0-9a-f]{4}\)/);
    expect(receipt).toMatch(/\[\d\] receipt \(5\)/);
    expect(receipt).toMatch(/body \(1\): [0-9a-f]+… \(108 bytes\) — CBOR receiptBody/);
    for (const line of ['lockId (1): "lk-0002"', 'version (2): 5', 'lockTime (5): 1795442400 (2026-11-23T14:00:00Z)', 'auditHead (7):', 'signature (2):']) expect(receipt).toContain(line);
    const delta = run(['-r', DEMO_CAPTURE, '-Y', 'locksync.message.type_name == "batch"', '-V']);
    expect(delta).toMatch(/\[\d\] delta \(3\)/);
    expect(delta).toMatch(/baseVersion \(1\): 5/);
    expect(delta).toMatch(/\[0\] op removePartner \(3\)/);
    expect(delta).toMatch(/issuedAt \(4\): \d+ \(2026-11-23T/);
  }, 180_000);

  it('on the built capture: INFO, HELLO, ABORT, a message in two frames, and a malformed frame flagged', () => {
    const file = path.join(tmp, 'sample.btsnoop');
    fs.writeFileSync(file, sampleCapture());
    expect(agreesWithTraceShow(file)).toEqual({ frames: 10, messages: 3 });
    expect(fields(file, 'locksync.hello.window', ['frame.number', 'locksync.hello.window', 'locksync.hello.max_message'])).toEqual([
      ['22', '32', '1048576'],
      ['23', '32', '1048576'],
    ]);
    expect(fields(file, 'locksync.abort.reason', ['locksync.abort.message_id', 'locksync.abort.reason'])).toEqual([['0x0404', '8']]);
    const info = fields(file, 'locksync.characteristic == "locksync INFO"', ['frame.number', 'locksync.field']);
    expect(info).toEqual([['19', 'lockId = "lk-0001",protocolVersion = 1,capabilities = 0x006f (delta, snapshot, unlock, auditExport, keypad, keycard),version = 2']]);
    expect(fields(file, 'locksync.message.type_name == "decision"', ['locksync.field'])).toEqual([['granted = true,reason = GRANTED (0),auditSeq = 45']]);
    expect(fields(file, 'locksync.malformed', ['frame.number', '_ws.expert.message'])).toEqual([['51', 'UNKNOWN_FRAME_TYPE: 0x90']]);
  }, 180_000);

  it('reassembles a message resumed after a link drop, as trace show does', () => {
    const file = path.join(tmp, 'resume.btsnoop');
    fs.writeFileSync(file, resumeCapture());
    expect(agreesWithTraceShow(file)).toEqual({ frames: 4, messages: 1 });
    expect(fields(file, 'locksync.hello.partial.held', ['locksync.hello.partial.message_id', 'locksync.hello.partial.total', 'locksync.hello.partial.held'])).toEqual([['0x5151', '151', '100']]);
  }, 180_000);
});
