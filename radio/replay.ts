// `locksync replay CAPTURE --state DIR`: replays the phone's side of a captured locksync
// exchange against a simulated lock and reports the first place the simulator answers
// differently from the captured lock — or that it reproduces what the capture shows.
//
// The capture is decoded by trace-show's decoder (one decoder for HCI → ATT → framing →
// CBOR); this module only walks its records: connections (LE Connection Complete →
// Disconnection Complete), the negotiated ATT MTU, the locksync characteristic handles and
// the reassembled messages in both directions.
//
// The simulated lock boots from a copy of a lock state directory (flash.img, device.json,
// rtc.json — the directory is never written) whose table must be the one the captured hello
// reported. It is fed the phone's messages in captured order with the captured pauses on
// its clock; a captured connection is one lock session, and a link drop closes it. The
// captured lock's own randomness and clock readings are replayed into the simulator (the
// hello's nonce and session id, challenge nonces, the RTC at each challenge): a phone's
// session-bound messages (signed time with the lock's nonce, unlock responses over the
// lock's challenge) are then as valid against the simulator as they were in the field.
// Answers are compared by what they decide (type, version, digest, refusal reason,
// decision), not by bytes that carry fresh signatures or times.

import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { CliError, EXIT_CODES, parseIntegerOption, reportFailure } from '../cli/errors';
import { Lock } from '../firmware-sim/lock';
import { NorFlash, type FlashGeometry } from '../firmware-sim/flash';
import { LockStorage } from '../firmware-sim/storage';
import { FakeClock } from '../firmware-sim/time';
import { CHALLENGE_TTL_MS } from '../firmware-sim/access';
import { decodeMessage, fromHex, SeededRandom, type RandomSource } from '../protocol/index';
import { BtsnoopFormatError } from './btsnoop';
import { decodeCapture, describeMessage, readCaptureFile, type MessageDecoded, type PacketRecord } from './trace-show';

export type MessageDirection = MessageDecoded['direction'];

export interface CapturedMessage {
  /** Record number (Wireshark frame number) the message completed in. */
  n: number;
  /** Seconds since the first record. */
  t: number;
  /** Index into `connections`. */
  connection: number;
  direction: MessageDirection;
  type: string;
  fields: Record<string, unknown>;
  text: string;
  raw: Buffer;
}

export interface CapturedConnection {
  index: number;
  handle: number;
  startN: number;
  startT: number;
  /** ATT MTU both sides agreed (min of the exchanged Rx MTUs); 23 when never exchanged. */
  mtu: number;
  end?: { n: number; t: number; reason: string };
  /** Messages whose frames started in this connection but did not all arrive before it ended. */
  leftIncomplete: { direction: MessageDirection; messageId: number; held: number; total: number }[];
}

export interface CapturedExchange {
  datalink: number;
  datalinkName: string;
  /** ATT handles of the locksync characteristics as the capture used them. */
  handles: { rx?: number; tx?: number; info?: number };
  connections: CapturedConnection[];
  messages: CapturedMessage[];
  /** ACL packets the capture kept only in part (Android's filtered snoop mode keeps 9 bytes). */
  cutPackets: number;
}

/** Decodes a capture and extracts the locksync exchange in it. Throws BtsnoopFormatError. */
export function findExchange(buf: Buffer): CapturedExchange {
  const { records, summary } = decodeCapture(buf);
  const ex: CapturedExchange = { datalink: summary.datalink, datalinkName: summary.datalinkName, handles: {}, connections: [], messages: [], cutPackets: 0 };
  const current = new Map<number, CapturedConnection>();
  // Frames of a message in flight per connection and direction: start (total) and bytes held.
  const inFlight = new Map<string, { messageId: number; total: number; held: number }>();
  const mtus = new Map<number, { client?: number; server?: number }>();
  // A phone's capture shows what its host handed to its controller, not what reached the
  // lock: a message whose frames all left the phone may still be partial at the lock when
  // the link drops. The lock's framing HELLO on the next connection says what it holds; such
  // a message is delivered where its resumed transfer completes.
  const lastPhoneMessage = new Map<number, CapturedMessage>();
  const resuming = new Map<number, { message: CapturedMessage; held: number; total: number }>();
  const open = (handle: number, r: PacketRecord): CapturedConnection => {
    const c: CapturedConnection = { index: ex.connections.length, handle, startN: r.n, startT: r.t, mtu: 23, leftIncomplete: [] };
    ex.connections.push(c);
    current.set(handle, c);
    return c;
  };
  for (const r of records) {
    const hci = r.hci as Record<string, unknown>;
    if (hci['type'] === 'event') {
      const name = hci['name'];
      const handle = hci['handle'];
      if ((name === 'LE Connection Complete' || name === 'LE Enhanced Connection Complete') && hci['status'] === 0 && typeof handle === 'number') open(handle, r);
      if (name === 'Disconnection Complete' && typeof handle === 'number') {
        const c = current.get(handle);
        if (c) {
          c.end = { n: r.n, t: r.t, reason: String(hci['reasonName'] ?? hci['reason']) };
          for (const dir of ['phone-to-lock', 'lock-to-phone'] as const) {
            const f = inFlight.get(`${c.index}/${dir}`);
            if (f && f.held < f.total) c.leftIncomplete.push({ direction: dir, ...f });
            inFlight.delete(`${c.index}/${dir}`);
          }
          current.delete(handle);
        }
      }
      continue;
    }
    if (hci['type'] !== 'acl') continue;
    if (r.malformed?.includes('snapshot length')) ex.cutPackets++;
    const handle = hci['handle'] as number;
    const conn = current.get(handle) ?? open(handle, r); // a capture started mid-connection
    const att = r.att;
    if (att) {
      const m = mtus.get(conn.index) ?? {};
      if (typeof att['clientRxMtu'] === 'number') m.client = att['clientRxMtu'];
      if (typeof att['serverRxMtu'] === 'number') m.server = att['serverRxMtu'];
      mtus.set(conn.index, m);
      if (m.client !== undefined && m.server !== undefined) conn.mtu = Math.max(23, Math.min(m.client, m.server));
    }
    const ls = r.locksync;
    if (!ls) continue;
    const attHandle = typeof att?.['handle'] === 'number' ? (att['handle'] as number) : undefined;
    if (attHandle !== undefined) {
      const role = ls.characteristic === 'locksync RX' ? 'rx' : ls.characteristic === 'locksync TX' ? 'tx' : 'info';
      ex.handles[role] ??= attHandle;
    }
    const direction: MessageDirection = ls.characteristic === 'locksync RX' ? 'phone-to-lock' : 'lock-to-phone';
    const frame = ls.frame;
    if (frame?.type === 'hello' && direction === 'lock-to-phone') {
      const partial = frame.fields['partial'] as { messageId: number; offset: number; total: number } | undefined;
      const m = partial ? lastPhoneMessage.get(partial.messageId) : undefined;
      if (partial && m && m.connection !== conn.index && !resuming.has(partial.messageId)) {
        ex.messages.splice(ex.messages.indexOf(m), 1);
        ex.connections[m.connection]?.leftIncomplete.push({ direction: 'phone-to-lock', messageId: partial.messageId, held: partial.offset, total: partial.total });
        resuming.set(partial.messageId, { message: m, held: partial.offset, total: partial.total });
      }
    }
    if (frame && (frame.type === 'start' || frame.type === 'data')) {
      const key = `${conn.index}/${direction}`;
      const bytes = frame.fields['payloadBytes'] as number;
      if (frame.type === 'start') inFlight.set(key, { messageId: frame.fields['messageId'] as number, total: frame.fields['total'] as number, held: (frame.fields['offset'] as number) + bytes });
      else {
        const f = inFlight.get(key);
        if (f) f.held += bytes;
      }
      const f = inFlight.get(key);
      const r2 = f && direction === 'phone-to-lock' ? resuming.get(f.messageId) : undefined;
      if (f && r2 && f.held >= r2.total) {
        resuming.delete(f.messageId);
        inFlight.delete(key);
        ex.messages.push({ ...r2.message, n: r.n, t: r.t, connection: conn.index });
      }
    }
    const m = ls.message;
    if (m?.raw) {
      inFlight.delete(`${conn.index}/${m.direction}`);
      const captured: CapturedMessage = { n: r.n, t: r.t, connection: conn.index, direction: m.direction, type: m.type, fields: m.fields, text: m.text, raw: m.raw };
      ex.messages.push(captured);
      if (m.direction === 'phone-to-lock') {
        lastPhoneMessage.set(m.messageId, captured);
        resuming.delete(m.messageId);
      }
    }
  }
  return ex;
}

// ---------------------------------------------------------------------------------------
// The simulated lock

/** Replays the captured lock's random draws where it has them (nonce, session id, challenge nonces); seeded otherwise. */
class CapturedRandom implements RandomSource {
  private readonly queue: Uint8Array[] = [];
  constructor(private readonly fallback: RandomSource) {}
  push(b: Uint8Array): void {
    this.queue.push(b);
  }
  clear(): void {
    this.queue.length = 0;
  }
  bytes(n: number): Uint8Array {
    const next = this.queue[0];
    if (next !== undefined && next.length === n) {
      this.queue.shift();
      return Uint8Array.from(next);
    }
    return this.fallback.bytes(n);
  }
}

interface LockState {
  flash: Uint8Array;
  geometry: FlashGeometry;
  lockId: string;
  rtcTrusted: boolean;
}

/** Reads a lock state directory (never writes it). */
export function readLockState(dir: string): LockState {
  const flashPath = path.join(dir, 'flash.img');
  const devicePath = path.join(dir, 'device.json');
  if (!fs.existsSync(flashPath) || !fs.existsSync(devicePath)) throw new CliError('BAD_STATE', `${dir} is not a lock state directory (no flash.img and device.json)`, 'pass the directory `locksync lock provision --state DIR` made, as it was when the capture was taken');
  let device: { lockId: string; geometry: FlashGeometry };
  try {
    device = JSON.parse(fs.readFileSync(devicePath, 'utf8')) as { lockId: string; geometry: FlashGeometry };
  } catch (e) {
    throw new CliError('BAD_STATE', `${devicePath} is not JSON: ${(e as Error).message}`, 'restore the state directory from the lock, or provision it again');
  }
  let rtcTrusted = true;
  const rtcPath = path.join(dir, 'rtc.json');
  if (fs.existsSync(rtcPath)) {
    try {
      rtcTrusted = (JSON.parse(fs.readFileSync(rtcPath, 'utf8')) as { trusted?: boolean }).trusted !== false;
    } catch {
      /* a torn rtc.json: the lock would boot with its clock lost; keep the default */
    }
  }
  return { flash: fs.readFileSync(flashPath), geometry: device.geometry, lockId: device.lockId, rtcTrusted };
}

export interface AnswerComparison {
  captured?: { n: number; text: string; decides: string };
  simulated?: { text: string; decides: string };
}

export interface ReplayStep {
  connection: number;
  /** The phone's message (undefined for the hello that opens a connection). */
  phone?: { n: number; text: string };
  answers: AnswerComparison[];
  agree: boolean;
  /** Why a missing captured answer is not a disagreement (the link dropped before it arrived). */
  lost?: string;
  /** Captured lock messages left over after every phone message had its answers. */
  unanswered?: true;
}

export interface ReplayReport {
  layout: string;
  handles: CapturedExchange['handles'];
  mtus: number[];
  connections: { index: number; startN: number; end?: CapturedConnection['end']; leftIncomplete: CapturedConnection['leftIncomplete']; mtu: number }[];
  phoneMessages: number;
  lockMessages: number;
  steps: ReplayStep[];
  /** The first step where the simulator answered differently, if any. */
  disagreement?: ReplayStep;
  /** What went wrong in the captured sync, each reproduced by the simulator unless disagreement says otherwise. */
  failures: string[];
  verdict: 'disagrees' | 'reproduced' | 'no-failure';
  /** The captured update the phone carried (first one), for the scenario writer. */
  update?: { type: string; newEntries: number };
  /** The lock's refusal code, when it refused an update. */
  refusal?: string;
  /** The lock's IANA time zone (from its provisioning), for the scenario writer. */
  timeZone?: string;
}

/**
 * What an answer decides: the fields a correct lock must reproduce (no signatures, nonces,
 * times). `bootRecords`: audit records the replay's own boot appended (the field lock wrote
 * its boot record before the capture), taken out of the simulator's sequence numbers.
 */
export function decides(type: string, fields: Record<string, unknown>, boot?: { afterSeq: number; records: number }): string {
  let f = fields;
  if (boot && boot.records > 0) {
    const shift = (seq: number): number => (seq > boot.afterSeq ? seq - boot.records : seq);
    f = { ...fields };
    if (typeof f['auditSeq'] === 'number') f['auditSeq'] = shift(f['auditSeq']);
    if (Array.isArray(f['records']))
      f['records'] = (f['records'] as { seq: number; event: string }[]).filter((r) => r.seq <= boot.afterSeq || r.seq > boot.afterSeq + boot.records).map((r) => ({ ...r, seq: shift(r.seq) }));
  }
  switch (type) {
    case 'hello':
      return `hello ${String(f['lockId'])} v${String(f['version'])} digest ${String(f['digest']).slice(0, 16)} auditSeq ${String(f['auditSeq'])}`;
    case 'receipt':
      return `receipt ${String(f['lockId'])} v${String(f['version'])} digest ${String(f['digest']).slice(0, 16)} auditSeq ${String(f['auditSeq'])}`;
    case 'error':
      return `error ${String(f['code'])}`;
    case 'decision':
      return `decision ${f['granted'] ? 'granted' : 'refused'} ${String(f['reason'])}`;
    case 'challenge':
      return `challenge ${String(f['lockId'])} credId ${String(f['credId'])}`;
    case 'auditExport': {
      const records = (f['records'] as { seq: number; event: string }[] | undefined) ?? [];
      return `auditExport ${records.map((r) => `${r.seq}:${r.event}`).join(' ')}`;
    }
    case 'batch':
    case 'batchReply': {
      // Each item decides as it would alone (SPEC §6.5).
      const items = (f['items'] as Record<string, unknown>[] | undefined) ?? [];
      return `${type} [${items.map((i) => decides(String(i['type']), i, boot)).join(' | ')}]`;
    }
    default:
      return type;
  }
}

function describeBytes(bytes: Uint8Array): { type: string; text: string; fields: Record<string, unknown> } {
  try {
    const m = decodeMessage(bytes, { maxBytes: Math.max(bytes.length, 1) });
    return { type: m.type, ...describeMessage(m) };
  } catch (e) {
    return { type: 'undecodable', text: `undecodable (${(e as Error).message})`, fields: {} };
  }
}

/**
 * Plays the phone's side of `ex` against a lock booted from `state`. Pure apart from the
 * state it is given: same capture and state ⇒ same report.
 */
export function replayExchange(ex: CapturedExchange, state: LockState): ReplayReport {
  const report: ReplayReport = {
    layout: `btsnoop datalink ${ex.datalink} (${ex.datalinkName})`,
    handles: ex.handles,
    mtus: [...new Set(ex.connections.map((c) => c.mtu))],
    connections: ex.connections.map((c) => ({ index: c.index, startN: c.startN, mtu: c.mtu, leftIncomplete: c.leftIncomplete, ...(c.end ? { end: c.end } : {}) })),
    phoneMessages: ex.messages.filter((m) => m.direction === 'phone-to-lock').length,
    lockMessages: ex.messages.filter((m) => m.direction === 'lock-to-phone').length,
    steps: [],
    failures: [],
    verdict: 'no-failure',
  };
  const firstHello = ex.messages.find((m) => m.type === 'hello');
  if (!firstHello) throw new CliError('BAD_STATE', 'the capture holds no locksync hello: no session with a lock to replay', 'capture the whole sync from the phone connecting to the lock (`locksync trace show FILE` lists what the capture holds)');
  if (firstHello.fields['lockId'] !== state.lockId) throw new CliError('BAD_STATE', `the captured lock is ${String(firstHello.fields['lockId'])}, the state directory holds ${state.lockId}`, 'pass the state directory of the lock in the capture');

  const lockTimeS = firstHello.fields['lockTime'] as number;
  const image = new NorFlash(state.geometry, { image: state.flash });
  const auditSeqStored = LockStorage.mount(new NorFlash(state.geometry, { image: state.flash })).auditHead().seq;
  const clock = new FakeClock(lockTimeS * 1000);
  const random = new CapturedRandom(new SeededRandom(`replay:${state.lockId}:${lockTimeS}`));
  const lock = Lock.boot({
    flash: image,
    clock,
    timers: clock,
    random,
    rtc: { continueAtMs: lockTimeS * 1000, trusted: state.rtcTrusted },
    battery: typeof firstHello.fields['battery'] === 'number' ? (firstHello.fields['battery'] as number) : 100,
  });
  const boot = { afterSeq: auditSeqStored, records: lock.storage.auditHead().seq - auditSeqStored };
  const entriesAtHello = lock.durable.tableState.table.entries.size;
  report.timeZone = lock.durable.secrets.timeZone;
  // The update went alone or as an item of a batch (SPEC §6.5).
  const update = ex.messages
    .filter((m) => m.direction === 'phone-to-lock')
    .flatMap((m): { type: string; fields: Record<string, unknown> }[] =>
      m.type === 'batch' ? ((m.fields['items'] as Record<string, unknown>[] | undefined) ?? []).map((f) => ({ type: String(f['type']), fields: f })) : [m],
    )
    .find((m) => m.type === 'delta' || m.type === 'snapshot');
  if (update) {
    const puts = update.type === 'delta' ? ((update.fields['ops'] as string[] | undefined) ?? []).filter((o) => o.startsWith('put ')).length : Math.max(0, (update.fields['entries'] as number) - entriesAtHello);
    report.update = { type: update.type, newEntries: puts };
  }
  const t0 = firstHello.t;
  const advanceTo = (t: number): void => {
    const target = lockTimeS * 1000 + Math.round((t - t0) * 1000);
    if (target > clock.nowMs()) clock.advance(target - clock.nowMs());
  };

  const pushStep = (step: ReplayStep): void => {
    report.steps.push(step);
    if (!step.agree && report.disagreement === undefined) report.disagreement = step;
  };

  for (const conn of ex.connections) {
    const msgs = ex.messages.filter((m) => m.connection === conn.index);
    const hello = msgs.find((m) => m.type === 'hello' && m.direction === 'lock-to-phone');
    if (!hello) continue; // a connection that never reached the locksync session (scan, GATT discovery only)
    advanceTo(hello.t);
    random.clear();
    random.push(fromHex(String(hello.fields['nonce'])));
    const challenge = msgs.find((m) => m.type === 'challenge');
    if (challenge) random.push(fromHex(String(challenge.fields['sessionId'])));
    else random.push(new SeededRandom(`replay-session:${conn.index}`).bytes(16));
    const session = lock.openSession();
    const simHello = describeBytes(session.hello());
    const helloCmp: AnswerComparison = { captured: { n: hello.n, text: hello.text, decides: decides('hello', hello.fields) }, simulated: { text: simHello.text, decides: decides(simHello.type, simHello.fields, boot) } };
    pushStep({ connection: conn.index, answers: [helloCmp], agree: helloCmp.captured?.decides === helloCmp.simulated?.decides });

    // The phone may resume an update before the lock's hello reaches it (the framing resumes
    // on its own HELLO frame): every message of the connection goes to the session, in order.
    // A lock answers each request with one message, in order; a phone may pipeline (send its
    // update before the time acknowledgement arrives), so answers are paired by order, not
    // by what came between two requests.
    const lockAnswers = msgs.filter((x) => x !== hello && x.direction === 'lock-to-phone');
    let next = 0;
    for (const m of msgs.filter((x) => x.direction === 'phone-to-lock')) {
      advanceTo(m.t);
      if (m.type === 'unlockRequest') {
        // The challenge's expiry is the lock's RTC + TTL: replay the captured RTC reading.
        const c = lockAnswers[next];
        if (c?.type === 'challenge') {
          random.push(fromHex(String(c.fields['nonce'])));
          lock.rtc.reset((c.fields['expiresAtMs'] as number) - CHALLENGE_TTL_MS, lock.rtc.trusted);
        }
      }
      if (m.type === 'auditAnchor') {
        // The authority signed it over the field lock's audit chain hash, which a simulator
        // booted from a state directory cannot share (its own boot adds records): it is not
        // replayed, and the captured answer stands for both.
        const c = lockAnswers[next];
        const answers: AnswerComparison[] = [];
        if (c?.type === 'auditAnchored' || c?.type === 'error') {
          next++;
          const d = decides(c.type, c.fields);
          answers.push({ captured: { n: c.n, text: c.text, decides: d }, simulated: { text: 'not replayed (bound to the field lock\'s audit chain)', decides: d } });
        }
        pushStep({ connection: conn.index, phone: { n: m.n, text: m.text }, answers, agree: true });
        continue;
      }
      const simulated = session.handle(m.raw).map(describeBytes);
      const captured = lockAnswers.slice(next, next + simulated.length);
      next += captured.length;
      const answers: AnswerComparison[] = simulated.map((sim, k) => {
        const c = captured[k];
        const a: AnswerComparison = { simulated: { text: sim.text, decides: decides(sim.type, sim.fields, boot) } };
        if (c) a.captured = { n: c.n, text: c.text, decides: decides(c.type, c.fields) };
        return a;
      });
      const step: ReplayStep = { connection: conn.index, phone: { n: m.n, text: m.text }, answers, agree: true };
      for (const a of answers) {
        if (a.captured && a.simulated && a.captured.decides !== a.simulated.decides) step.agree = false;
        if (!a.captured && a.simulated) {
          // Every captured answer is used up: this one never reached the phone.
          if (conn.end) step.lost = `the link dropped (${conn.end.reason}, record ${conn.end.n}) before the lock's ${answerName(a.simulated.decides)} reached the phone`;
          else step.lost = `the capture ends before the lock's ${answerName(a.simulated.decides)} reached the phone`;
        }
      }
      pushStep(step);
    }
    if (next < lockAnswers.length) {
      // The captured lock said more than the simulator answers: a disagreement.
      pushStep({ connection: conn.index, answers: lockAnswers.slice(next).map((c) => ({ captured: { n: c.n, text: c.text, decides: decides(c.type, c.fields) } })), agree: false, unanswered: true });
    }
    session.close();
    if (conn.end) {
      const incomplete = conn.leftIncomplete.map((l) => `${l.direction === 'phone-to-lock' ? 'phone → lock' : 'lock → phone'} message ${l.held}/${l.total} bytes`);
      if (incomplete.length > 0) report.failures.push(`link dropped mid-transfer in connection ${conn.index + 1} (${conn.end.reason}, record ${conn.end.n}): ${incomplete.join(', ')}`);
    }
  }
  for (const s of report.steps) {
    for (const a of s.answers) {
      // A batch's refusal is one of its items (SPEC §6.5); the items after it were not attempted.
      if (!a.captured?.decides.startsWith('batchReply [')) continue;
      for (const item of batchPairs(s.phone?.text, a.captured.decides)) {
        if (!item.answer.startsWith('error ') || item.answer === 'error NOT_ATTEMPTED') continue;
        if (/^(delta|snapshot)\b/.test(item.phone)) report.refusal ??= item.answer.slice('error '.length);
        report.failures.push(`the lock refused: ${item.answer} (record ${a.captured.n}, answering ${item.phone} in a batch)`);
      }
    }
    for (const a of s.answers) if (a.captured?.decides.startsWith('error ') && /^(delta|snapshot)\b/.test(s.phone?.text ?? '')) report.refusal ??= a.captured.decides.slice('error '.length);
    for (const a of s.answers) if (a.captured?.decides.startsWith('error ')) report.failures.push(`the lock refused: ${a.captured.text} (record ${a.captured.n}, after ${s.phone?.text ?? 'hello'})`);
    if (s.lost) report.failures.push(`answer lost: ${s.lost}`);
  }
  report.verdict = report.disagreement ? 'disagrees' : report.failures.length > 0 ? 'reproduced' : 'no-failure';
  return report;
}

/** What an answer was, for a report line: its type, and for a batchReply the types it carried. */
function answerName(decidesText: string): string {
  const name = decidesText.split(' ')[0] ?? decidesText;
  if (name !== 'batchReply') return name;
  return `batchReply (${batchItems(decidesText).map((i) => i.split(' ')[0]).join(', ')})`;
}

function batchItems(decidesText: string): string[] {
  const inner = decidesText.replace(/^batchReply \[/, '').replace(/\]$/, '');
  return inner.length > 0 ? inner.split(' | ') : [];
}

/** A batch's items beside their answers, in order: the phone's item text and what its answer decides. */
function batchPairs(phoneText: string | undefined, replyDecides: string): { phone: string; answer: string }[] {
  const phone = (phoneText ?? '').replace(/^batch of \d+: /, '').split(' | ');
  return batchItems(replyDecides).map((answer, i) => ({ phone: phone[i] ?? 'a batch item', answer }));
}

/** Residents a generated scenario adds at most (each brings a phone and a doorcode entry). */
export const SCENARIO_MAX_RESIDENTS = 40;

/**
 * A scenario (fixtures/scenarios format) that reproduces the captured failure's class from a
 * seed: the capture names no people, so the property is synthetic — the captured lock id, a
 * Key, the field phone's resident, and as many new residents as the captured update carried
 * new credentials (two entries each, at most SCENARIO_MAX_RESIDENTS) — with the captured
 * MTU. A link dropped mid-transfer becomes a linkDrop inside the update and a resumed sync;
 * a refused update becomes a replaying courier and the lock's refusal code. Returns
 * undefined when the capture shows neither (a lost receipt alone has no scenario form: the
 * scenario language cannot cut a link between a lock's commit and its receipt).
 */
export function scenarioFor(r: ReplayReport, lockId: string, seed: number): string | undefined {
  const dropped = r.failures.some((f) => f.startsWith('link dropped mid-transfer'));
  const refused = r.refusal;
  if (!dropped && refused === undefined) return undefined;
  const residents = Math.min(SCENARIO_MAX_RESIDENTS, Math.max(dropped ? 20 : 1, Math.ceil((r.update?.newEntries ?? 2) / 2)));
  const mtu = Math.max(23, Math.min(...r.mtus));
  const names = Array.from({ length: residents + (refused !== undefined ? 1 : 0) }, (_, i) => `resident-${i + 1}`);
  const lines = [
    `name: replayed capture of ${lockId} (${[dropped ? 'link dropped mid-transfer' : '', refused !== undefined ? `update refused ${refused}` : ''].filter(Boolean).join(', ')})`,
    'description: >',
    '  Written by locksync replay from a field capture. The capture names no people, so the',
    `  property is synthetic: the captured lock id, one Key, the field phone's resident and`,
    `  ${residents} new resident(s) standing for the captured update's new credentials, at the`,
    `  captured ATT MTU (${mtu}).`,
    `seed: ${seed}`,
    'source:',
    `  - field capture replayed by locksync replay (${r.layout})`,
    'property:',
    `  timeZone: ${r.timeZone ?? 'UTC'}`,
    '  doors:',
    `    - { id: ${lockId}, name: Captured door, kind: private, connected: false }`,
    '  keys:',
    `    - { id: k-door, name: Door, doors: [${lockId}] }`,
    '  users:',
    `    - { id: field, role: resident, keys: [k-door], phones: [{ id: field-phone, at: ${lockId} }] }`,
    ...names.map((n) => `    - { id: ${n}, role: resident, keys: [], phones: [${n}-phone] }`),
    `link: { intervalMs: 30, mtu: ${mtu}, dataLength: 251, phy: 1M, packetsPerEvent: 4 }`,
    'steps:',
  ];
  let version = 1;
  const assign = (n: string): void => {
    lines.push('  - at: "+1s"', `    assignKey: { user: ${n}, key: k-door }`);
    version++;
  };
  if (refused !== undefined) {
    // The courier first carries an update, then replays it in front of the next one.
    assign(names[names.length - 1] as string);
    lines.push('  - at: "+1m"', `    sync: { phone: field-phone, lock: ${lockId} }`, `    expect: { syncResult: ok, versionAtLock: ${version} }`);
  }
  for (const n of names.slice(0, residents)) assign(n);
  if (dropped) {
    lines.push('  - at: "+1m"', `    linkDrop: { phone: field-phone, lock: ${lockId}, atPacket: 6 }`);
    lines.push('  - at: "+1s"', `    sync: { phone: field-phone, lock: ${lockId} }`, `    note: the link drops inside the update, as captured`, `    expect: { syncResult: link_lost, versionAtLock: ${refused !== undefined ? 2 : 1} }`);
  }
  if (refused !== undefined) {
    lines.push('  - at: "+1s"', `    courier: { phone: field-phone, mode: replay }`);
    lines.push('  - at: "+1s"', `    sync: { phone: field-phone, lock: ${lockId} }`, `    note: the lock refuses the replayed update, as captured`, `    expect: { syncResult: "refused:${refused}" }`);
  } else {
    lines.push('  - at: "+5s"', `    sync: { phone: field-phone, lock: ${lockId} }`, `    note: the resumed sync lands the update`, `    expect: { syncResult: ok, versionAtLock: ${version} }`);
  }
  return `${lines.join('\n')}\n`;
}

export function reportLines(file: string, r: ReplayReport): string[] {
  const lines = [
    `capture ${file}: ${r.layout}; locksync handles RX ${r.handles.rx ?? '?'} TX ${r.handles.tx ?? '?'} INFO ${r.handles.info ?? '?'}; ATT MTU ${r.mtus.join('/')}; ${r.connections.length} connection(s); ${r.phoneMessages} phone → lock and ${r.lockMessages} lock → phone messages`,
  ];
  for (const s of r.steps) {
    const head = s.phone ? `  [conn ${s.connection + 1}] #${s.phone.n} phone: ${s.phone.text}` : s.unanswered ? `  [conn ${s.connection + 1}] the captured lock sent more than its requests' answers` : `  [conn ${s.connection + 1}] lock opens the session`;
    lines.push(head);
    for (const a of s.answers) {
      const mark = a.captured && a.simulated ? (a.captured.decides === a.simulated.decides ? '=' : '≠') : a.captured ? '≠' : s.lost ? '~' : '≠';
      lines.push(`    ${mark} captured  : ${a.captured ? `#${a.captured.n} ${a.captured.text}` : '(nothing)'}`);
      lines.push(`      simulated: ${a.simulated ? a.simulated.text : '(nothing)'}`);
    }
    if (s.lost) lines.push(`    ~ ${s.lost}`);
  }
  for (const f of r.failures) lines.push(`failure: ${f}`);
  if (r.verdict === 'disagrees') {
    const d = r.disagreement!;
    const a = d.answers.find((x) => !x.captured || !x.simulated || x.captured.decides !== x.simulated.decides)!;
    lines.push(`FINDING: the simulator answers differently from the captured lock at ${d.phone ? `record ${d.phone.n} (${d.phone.text})` : d.unanswered ? `the end of connection ${d.connection + 1} (messages no request explains)` : `the hello of connection ${d.connection + 1}`}:`);
    lines.push(`  captured lock: ${a.captured ? a.captured.decides : '(no answer)'}`);
    lines.push(`  simulator    : ${a.simulated ? a.simulated.decides : '(no answer)'}`);
  } else if (r.verdict === 'reproduced') lines.push(`REPRODUCED: the simulator answers every captured message as the captured lock did (${r.failures.length} failure(s) above)`);
  else lines.push('AGREES: the simulator answers every captured message as the captured lock did; the capture shows no failure');
  return lines;
}

/** `locksync replay CAPTURE --state DIR [--json]`: exit 0 reproduced/agrees, 8 (PROTOCOL_VIOLATION) on a finding. */
export function replayCommand(file: string, opts: { state?: string; json?: boolean; scenarioOut?: string; seed?: string }, out: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): number {
  if (opts.state === undefined) throw new CliError('USAGE', 'replay needs the lock\'s state: --state DIR', 'pass the lock state directory as it was when the capture was taken (flash.img, device.json)');
  const buf = readCaptureFile(file);
  let ex: CapturedExchange;
  try {
    ex = findExchange(buf);
  } catch (e) {
    if (!(e instanceof BtsnoopFormatError)) throw e;
    throw new CliError('BAD_STATE', `${file} cannot be read as a btsnoop capture: ${e.message}`, 'pass a whole btsnoop capture (datalink 1001, 1002 or 2001); `locksync trace show FILE` says what is wrong with it');
  }
  if (ex.messages.length === 0 && ex.cutPackets > 0)
    throw new CliError('BAD_STATE', `${file} keeps only the first bytes of ${ex.cutPackets} ACL packet(s): ATT payloads are cut (Android's filtered snoop log)`, 'on the phone set Developer options → Enable Bluetooth HCI snoop log → Enabled (full, not filtered), reproduce, and take btsnoop_hci.log again');
  const state = readLockState(opts.state);
  const report = replayExchange(ex, state);
  if (opts.json) out(JSON.stringify({ file, ...report }));
  else for (const l of reportLines(file, report)) out(l);
  if (opts.scenarioOut !== undefined) {
    const seed = parseIntegerOption('--seed', opts.seed ?? '1', { min: 0 });
    const text = scenarioFor(report, state.lockId, seed);
    if (text === undefined) out('scenario: not written — the capture shows no link drop mid-transfer and no refused update (the failures a scenario can express)');
    else {
      fs.writeFileSync(opts.scenarioOut, text);
      out(`scenario: ${opts.scenarioOut} (locksync scenario run ${opts.scenarioOut} --seed ${seed})`);
    }
  }
  if (report.verdict === 'disagrees' && report.disagreement) {
    // A finding is a failure of the run: the report above, then the one error line.
    const d = report.disagreement;
    const differing = d.answers.find((a) => a.captured?.decides !== a.simulated?.decides) ?? d.answers[0];
    const where = differing?.captured ? `record ${differing.captured.n}` : `connection ${d.connection + 1}`;
    throw new CliError(
      'PROTOCOL_VIOLATION',
      `the simulator disagrees with the captured lock at ${where}${d.phone ? ` (after ${d.phone.text})` : ''}: captured ${differing?.captured?.decides ?? 'nothing'}, simulated ${differing?.simulated?.decides ?? 'nothing'}`,
      'check that --state is the lock as it was when the capture was taken; if it is, the field firmware and the SPEC differ here — file it with the capture',
    );
  }
  return EXIT_CODES.OK;
}

export function registerReplayCommand(program: Command): void {
  program
    .command('replay')
    .description('replay the phone\'s side of a captured locksync sync against a simulated lock booted from the lock\'s state; report the first answer that differs from the captured lock, or the failure reproduced')
    .argument('<capture>', 'btsnoop capture of the sync: the radio\'s, Android\'s btsnoop_hci.log (full mode), btmon -w (H4 1002, H1 1001, btmon 2001)')
    .option('--state <dir>', 'lock state directory (flash.img, device.json, rtc.json) as it was at the captured hello; read, never written')
    .option('--json', 'one JSON object: connections, MTU, handles, every step with captured and simulated answers, failures, verdict')
    .option('--scenario-out <file>', 'also write a scenario (fixtures/scenarios format) that reproduces the captured failure from a seed')
    .option('--seed <n>', 'seed written into that scenario', '1')
    .addHelpText('after', '\nExit codes: 0 reproduced (or agrees, no failure in the capture); 8 PROTOCOL_VIOLATION when the simulator answers differently from the captured lock (a finding: both answers are printed); 2 USAGE without --state; 16 BAD_STATE for an unreadable or filtered capture, a capture without a locksync session, or a state directory of another lock.')
    .action((file: string, opts: { state?: string; json?: boolean; scenarioOut?: string; seed?: string }) => {
      try {
        process.exitCode = replayCommand(file, opts);
      } catch (e) {
        process.exitCode = reportFailure(e);
      }
    });
}
