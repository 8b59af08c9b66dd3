// `locksync panel`: a local web page over a running world. Per lock: its state machine
// mode, table version, clock trust, battery, connection, its credential table in people's
// terms (who, through which Key / partner / guest grant, until when — joined to the
// authority's model), pending revocations and its audit log; a keypad, a keycard reader and
// a phone unlock to press; a slider that walks a phone away from the lock; fault buttons;
// and the event timeline growing live. node:http on 127.0.0.1, pushed over server-sent
// events (GET /events), actions by POST /action; no framework, no polling.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Command } from 'commander';
import { CliError, parseIntegerOption, reportFailure } from '../cli/errors';
import { auditRecordFromBytes, fromHex } from '../protocol/index';
import { World } from './world';

export interface PanelEvent {
  /** World clock, ms since the panel started. */
  t: number;
  kind: 'decision' | 'sync' | 'manager' | 'fault' | 'move' | 'note';
  text: string;
  ok?: boolean;
}

interface CredentialRow {
  credId: number;
  who: string;
  kind: string;
  grant: string;
  until: string;
}

/** Everything the page shows, as one JSON object (sent on connect and after every change). */
export interface PanelState {
  locks: {
    door: string;
    lockId: string;
    mode: string;
    version: number;
    authorityVersion: number;
    clockTrusted: boolean;
    battery: number;
    connection: string;
    poweredOff: boolean;
    /** Partners assigned to this door (the manager's remove buttons). */
    partners: { id: number; name: string }[];
    pendingRevocations: string[];
    credentials: CredentialRow[];
    audit: { seq: number; time: string; event: string; credId?: number }[];
  }[];
  phones: { name: string; near: string | null }[];
  timeline: PanelEvent[];
  /** What the people in the demo were told (the keypad test types these). */
  told: Record<string, string>;
  /** What the panel is over (the page's header). */
  title?: string;
}

/** The demo's property on the in-process link: Lobby (connected) and Unit 4B (offline), Alice and FastParcel. */
export async function demoWorld(seed = 'panel'): Promise<{ world: World; told: Record<string, string>; partnerId: number }> {
  const world = await World.create({
    seed,
    transport: 'sim',
    doors: [{ name: 'Lobby', kind: 'communal', connected: true, uplinkIntervalSeconds: 120 }, { name: 'Unit 4B' }],
    phones: ['alice', 'fastparcel'],
  });
  const a = world.authority;
  const unit = world.door('Unit 4B');
  const lobby = world.door('Lobby');
  const key = a.createKey({ name: 'Resident - Unit 4B', doors: [{ doorId: unit.doorId, doorcodesEnabled: true }, { doorId: lobby.doorId, doorcodesEnabled: true }] });
  const alice = a.addUser({ name: 'Alice', role: 'resident' });
  const { doorcodes } = a.assignKey(alice.id, key.id, { mayShare: true });
  a.addKeycard(alice.id, '04a1b2c3');
  const { partner } = a.authorizePartner('FastParcel');
  a.assignPartnerToDoor(partner.id, unit.doorId);
  a.assignPartnerToDoor(partner.id, lobby.doorId);
  world.enrolPhone('alice', { userId: alice.id });
  world.enrolPhone('fastparcel', { partnerId: partner.id });
  // Install the property at both doors, as the installer's app does.
  for (const door of ['Unit 4B', 'Lobby']) {
    world.moveTo('alice', door);
    await world.sync('alice', door);
  }
  world.moveTo('alice', null);
  const told: Record<string, string> = { keycard: '04a1b2c3' };
  for (const d of doorcodes) told[`doorcode:${d.doorId === unit.doorId ? 'Unit 4B' : 'Lobby'}`] = d.code;
  return { world, told, partnerId: partner.id };
}

/** World time that passes with each action from the page (more than a lock's relock delay). */
export const ACTION_STEP_MS = 10_000;
/**
 * Frames after a sync connects at which an armed link drop strikes: before the update reaches
 * the lock, which the batched dialogue sends in one flight right after the hellos.
 */
export const LINK_DROP_AFTER_FRAMES = 2;

export class Panel {
  private readonly clients = new Set<http.ServerResponse>();
  private readonly timeline: PanelEvent[] = [];
  private readonly startMs: number;
  private server: http.Server | undefined;
  /** Doors whose next sync loses its link (the "drop link" button). */
  private readonly armedDrops = new Set<string>();
  /** Actions run one at a time, in the order they arrive. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly world: World,
    private readonly told: Record<string, string> = {},
  ) {
    this.startMs = world.clock.nowMs();
  }

  private record(kind: PanelEvent['kind'], text: string, ok?: boolean): void {
    this.timeline.push({ t: this.world.clock.nowMs() - this.startMs, kind, text, ...(ok !== undefined ? { ok } : {}) });
  }

  private subjectName(subject: string | undefined): string {
    if (subject === undefined) return 'unknown';
    const [kind, id] = subject.split(':');
    try {
      if (kind === 'user') return this.world.authority.user(Number(id)).name;
      if (kind === 'partner') return this.world.authority.partner(Number(id)).name;
    } catch {
      /* removed since: fall through to the raw subject */
    }
    return subject;
  }

  state(): PanelState {
    const a = this.world.authority;
    const locks = [...this.world.doors.values()].map((d) => {
      const lock = d.lock;
      const subjects = new Map(
        (a.db.prepare('SELECT cred_id, subject FROM cred_ids WHERE lock_id = ?').all(d.lockId) as { cred_id: number; subject: string }[]).map((r) => [r.cred_id, r.subject]),
      );
      const table = lock.durable.tableState.table;
      const credentials: CredentialRow[] = [...table.entries.values()].map((e) => {
        let grant = e.keyId !== undefined ? `Key "${safe(() => a.key(e.keyId as number).name, `#${e.keyId}`)}"` : 'no Key';
        if (e.partnerId !== undefined) grant = `partner ${safe(() => a.partner(e.partnerId as number).name, `#${e.partnerId}`)}`;
        if (e.holder === 'guest') grant = `guest grant${e.parent !== undefined ? ` from credential ${e.parent}` : ''}`;
        return {
          credId: e.credId,
          who: this.subjectName(subjects.get(e.credId)),
          kind: e.kind,
          grant,
          until: e.validUntil !== undefined ? new Date(e.validUntil * 1000).toISOString().replace('.000Z', 'Z') : 'no end',
        };
      });
      const audit = lock.storage.exportAudit(0, 1000).records.map((b) => {
        const r = auditRecordFromBytes(b);
        return { seq: r.seq, time: new Date(r.time * 1000).toISOString().replace('.000Z', 'Z'), event: r.event, ...(r.credId !== undefined ? { credId: r.credId } : {}) };
      });
      const near = [...this.world.phones.values()].filter((p) => p.near === d.name).map((p) => p.name);
      return {
        door: d.name,
        lockId: d.lockId,
        mode: lock.machine.mode.kind,
        version: lock.version,
        authorityVersion: a.currentVersion(d.lockId),
        clockTrusted: lock.rtc.trusted,
        battery: d.battery ? Math.round(d.battery.sample(this.world.clock.nowMs()).percent * 1000) / 1000 : lock.machine.battery,
        connection: d.poweredOff ? 'off the air (power cut)' : lock.machine.sessionOpen ? 'phone connected' : near.length > 0 ? `in range of ${near.join(', ')}` : 'advertising',
        poweredOff: d.poweredOff,
        partners: a.listPartners().filter((p) => p.status === 'authorized' && p.doors.includes(d.doorId)).map((p) => ({ id: p.id, name: p.name })),
        pendingRevocations: a.pendingRevocations({ doorId: d.doorId }).map((p) => `credential ${p.credId} of ${this.subjectName(p.subject)} (removed in v${p.removedInVersion})`),
        credentials,
        audit,
      };
    });
    return { locks, phones: [...this.world.phones.values()].map((p) => ({ name: p.name, near: p.near })), timeline: this.timeline, told: this.told, title: 'a world on the in-process link' };
  }

  private push(): void {
    const data = `data: ${JSON.stringify(this.state())}\n\n`;
    for (const c of this.clients) c.write(data);
  }

  /** One action from the page; returns what it did (also recorded on the timeline). */
  async act(body: Record<string, unknown>): Promise<{ ok: boolean; text: string }> {
    const run = async (): Promise<{ ok: boolean; text: string }> => {
      // Each press is a step of world time, so a lock relocks and timers fire between presses.
      await this.world.advance(ACTION_STEP_MS);
      const door = typeof body['door'] === 'string' ? body['door'] : '';
      const phone = typeof body['phone'] === 'string' ? body['phone'] : '';
      const w = this.world;
      const decision = (what: string, r: { granted: boolean; reason: string } | undefined): { ok: boolean; text: string } => {
        const text = `${door}: ${what} → ${r ? r.reason : 'no decision'}`;
        this.record('decision', text, r?.granted ?? false);
        return { ok: r?.granted ?? false, text };
      };
      switch (body['op']) {
        case 'keypad': {
          const code = String(body['code'] ?? '');
          if (!/^[0-9]{1,12}$/.test(code)) return { ok: false, text: 'a code is digits' };
          return decision(`keypad ${'•'.repeat(code.length)}`, w.door(door).lock.enterCode(code));
        }
        case 'card':
          return decision(`keycard ${String(body['uid'])}`, w.door(door).lock.presentCard(fromHex(String(body['uid']))));
        case 'unlock': {
          w.moveTo(phone, door);
          try {
            const r = await w.unlock(phone, door, { passiveSync: false });
            return decision(`${phone}'s phone`, r);
          } catch (e) {
            this.record('decision', `${door}: ${phone}'s phone → ${(e as Error).message}`, false);
            return { ok: false, text: (e as Error).message };
          } finally {
            w.moveTo(phone, null);
          }
        }
        case 'sync': {
          w.moveTo(phone, door);
          try {
            const drop = this.armedDrops.delete(door);
            const lockId = w.door(door).lockId;
            // An armed drop strikes a few frames after the hello: inside the update when there is one.
            const r = await w.sync(phone, door, { attempts: 1, ...(drop ? { onEvent: (e) => void (e.phase === 'connected' && w.simAir?.dropLink(lockId, LINK_DROP_AFTER_FRAMES)) } : {}) });
            const text = `${door}: ${phone} synced v${r.versionBefore} → v${r.versionAfter}${r.receiptDelivered ? ', receipt at the authority' : ''}`;
            this.record('sync', text, true);
            return { ok: true, text };
          } catch (e) {
            this.record('sync', `${door}: ${phone}'s sync failed: ${(e as Error).message}`, false);
            return { ok: false, text: (e as Error).message };
          } finally {
            w.moveTo(phone, null);
          }
        }
        case 'removePartner': {
          const partnerId = Number(body['partnerId']);
          w.authority.unassignPartnerFromDoor(partnerId, w.door(door).doorId);
          const text = `manager removed ${w.authority.partner(partnerId).name} from ${door}`;
          this.record('manager', text, true);
          return { ok: true, text };
        }
        case 'walk': {
          const metres = Number(body['metres']);
          if (!Number.isFinite(metres) || metres < 0) return { ok: false, text: 'metres ≥ 0' };
          w.placeAt(phone, door, metres);
          const text = `${phone} is ${metres} m from ${door} (${w.phone(phone).near === door ? 'in range' : 'out of range'})`;
          this.record('move', text);
          return { ok: true, text };
        }
        case 'dropLink': {
          w.door(door); // an unknown door throws here, not at the next sync
          this.armedDrops.add(door);
          this.record('fault', `${door}: the next sync loses its link ${LINK_DROP_AFTER_FRAMES} frames after connecting`);
          return { ok: true, text: 'link drop armed for the next sync' };
        }
        case 'powerCut': {
          if (w.isPoweredOff(door)) {
            await w.reboot(door);
            this.record('fault', `${door}: power back, lock rebooted`);
            return { ok: true, text: 'rebooted' };
          }
          await w.powerCut(door);
          this.record('fault', `${door}: power cut`);
          return { ok: true, text: 'power cut' };
        }
        case 'blackout': {
          for (const d of w.doors.values()) w.simAir?.setInRange(d.lockId, false);
          this.record('fault', 'radio blackout: no lock reachable');
          return { ok: true, text: 'blackout' };
        }
        case 'battery': {
          // A failing battery (below the 10 % the lock needs to drive its motor), or a new one.
          const d = w.door(door);
          const lock = d.lock;
          const percent = lock.machine.battery < 10 ? 100 : 5;
          if (d.battery) d.battery.setLevel(percent, w.clock.nowMs());
          else lock.setBattery(percent);
          this.record('fault', `${door}: battery ${percent === 100 ? 'replaced' : 'nearly flat (5 %)'} → ${lock.machine.mode.kind}`);
          return { ok: true, text: `battery ${percent} %` };
        }
        case 'restoreRadio': {
          for (const d of w.doors.values()) w.simAir?.setInRange(d.lockId, true);
          this.record('fault', 'radio back');
          return { ok: true, text: 'radio back' };
        }
        default:
          return { ok: false, text: `unknown action ${String(body['op'])}` };
      }
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    try {
      return await result;
    } finally {
      this.push();
    }
  }

  async listen(port = 0): Promise<string> {
    this.server = http.createServer((req, res) => void this.route(req, res));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', () => resolve());
    });
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`;
  }

  private route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    return routePanelRequest(req, res, { clients: this.clients, state: () => this.state(), act: (body) => this.act(body) });
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.end();
    this.clients.clear();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

function safe<T>(f: () => T, fallback: T): T {
  try {
    return f();
  } catch {
    return fallback;
  }
}

export function registerPanelCommand(program: Command): void {
  program
    .command('panel')
    .description('a local web page over the demo\'s world, a scenario\'s (sim link) or running `lock run --state DIR` daemons: each lock\'s state, battery, credentials by person and grant, audit log; keypad, keycard, phone unlock, sync, a walk-away slider, fault buttons; the timeline live (server-sent events)')
    .option('--port <n>', 'port on 127.0.0.1 (0 = any free port)', '0')
    .option('--seed <seed>', 'seed of the world (keys, lock randomness); default: the demo\'s "panel", or the scenario\'s own')
    .option('--scenario <file>', 'serve this scenario\'s world as its run begins (property built, version 1 installed) instead of the demo\'s')
    .option('--lock-dir <dirs...>', 'serve the locks running from these state directories (`lock run --state DIR`), through their control sockets: state, table, audit and battery live; keypad, keycard, drop link and battery faults')
    .addHelpText('after', '\nPrints the URL, serves until interrupted. Exit codes: 2 USAGE for a bad --port; 15 IN_USE when the port is taken; 16 BAD_STATE for a --lock-dir that is not a lock state directory.')
    .action(async (opts: { port: string; seed?: string; scenario?: string; lockDir?: string[] }) => {
      try {
        const port = parseIntegerOption('--port', opts.port, { min: 0, max: 65535 });
        if (opts.lockDir !== undefined) {
          if (opts.scenario !== undefined) throw new CliError('USAGE', '--lock-dir and --scenario are two different worlds', 'pass one of them');
          const { LockDirPanel, checkLockDir } = await import('./lockdir-panel');
          for (const dir of opts.lockDir) checkLockDir(dir);
          const panel = new LockDirPanel(opts.lockDir);
          let url: string;
          try {
            url = await panel.listen(port);
          } catch (e) {
            await panel.close();
            if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new CliError('IN_USE', `port ${port} on 127.0.0.1 is taken`, 'pass another --port, or 0 for any free port');
            throw e;
          }
          process.stdout.write(`panel: ${url}\n`);
          await new Promise<void>((resolve) => {
            process.once('SIGINT', resolve);
            process.once('SIGTERM', resolve);
          });
          await panel.close();
          return;
        }
        let world: World;
        let told: Record<string, string>;
        if (opts.scenario !== undefined) {
          const { loadScenario } = await import('../scenario/load');
          const { ScenarioError } = await import('../scenario/validate');
          const { startScenarioWorld } = await import('../scenario/runner');
          let scenario: ReturnType<typeof loadScenario>;
          try {
            scenario = loadScenario(opts.scenario);
          } catch (e) {
            if (e instanceof ScenarioError) throw new CliError('USAGE', `${opts.scenario} is not a valid scenario: ${e.issues.length} problem(s), first: ${e.issues[0]?.path ?? ''} ${e.issues[0]?.message ?? ''}`, `\`locksync scenario list\` or \`scenario run ${opts.scenario}\` lists every problem`);
            throw new CliError('BAD_STATE', `cannot read scenario ${opts.scenario}: ${(e as Error).message}`, 'pass a scenario file (fixtures/scenarios/*.yaml)');
          }
          const started = await startScenarioWorld(scenario, opts.seed !== undefined ? { seed: opts.seed } : {});
          world = started.world;
          const keycard = scenario.property.users.flatMap((u) => u.keycards)[0];
          told = { ...started.codes, ...(keycard !== undefined ? { keycard } : {}) };
        } else {
          const demo = await demoWorld(opts.seed ?? 'panel');
          world = demo.world;
          told = demo.told;
        }
        const panel = new Panel(world, told);
        let url: string;
        try {
          url = await panel.listen(port);
        } catch (e) {
          await world.close();
          if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new CliError('IN_USE', `port ${port} on 127.0.0.1 is taken`, 'pass another --port, or 0 for any free port');
          throw e;
        }
        process.stdout.write(`panel: ${url}\n`);
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        await panel.close();
        await world.close();
      } catch (e) {
        process.exitCode = reportFailure(e);
      }
    });
}

export const PAGE = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>locksync panel</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;background:#f6f8fa;color:#24292f}
header{background:#fff;border-bottom:1px solid #d0d7de;padding:10px 20px}
main{display:flex;gap:16px;padding:16px;flex-wrap:wrap}
section.lock{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:12px;width:560px}
h2{margin:0 0 6px;font-size:18px} table{border-collapse:collapse;width:100%;font-size:12px;margin:6px 0}
td,th{border-bottom:1px solid #eaeef2;padding:2px 6px;text-align:left}
.keypad button{width:40px;height:32px;margin:2px} .ok{color:#1a7f37;font-weight:700} .bad{color:#cf222e;font-weight:700}
#timeline{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:12px;width:560px;font-size:12px;max-height:600px;overflow:auto}
.state span{margin-right:12px}
</style></head>
<body><header><b>locksync panel</b> — <span id="title"></span> · <span id="conn">connecting…</span></header>
<main id="locks"></main>
<main><div id="timeline"><h2>Timeline</h2><ol id="events"></ol></div></main>
<script>
const S = { state: null, typed: {} };
const post = (body) => fetch('/action', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json());
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
function lockHtml(l) {
  const id = l.lockId;
  const typed = S.typed[id] || '';
  const keys = ['1','2','3','4','5','6','7','8','9','0'].map((k) => '<button data-key="' + k + '" data-lock="' + id + '">' + k + '</button>').join('');
  return '<section class="lock" id="lock-' + id + '"><h2>' + esc(l.door) + ' <small>' + esc(id) + '</small></h2>' +
    '<div class="state"><span>state <b class="mode">' + esc(l.mode) + '</b></span><span>table <b class="version">v' + l.version + '</b> (authority v' + l.authorityVersion + ')</span>' +
    '<span>clock ' + (l.clockTrusted ? 'trusted' : '<b class="bad">untrusted</b>') + '</span><span>battery <b class="battery">' + l.battery + '%</b></span><span class="connection">' + esc(l.connection) + '</span></div>' +
    '<div>pending revocations: <b class="pending">' + l.pendingRevocations.length + '</b> ' + l.pendingRevocations.map(esc).join('; ') + '</div>' +
    '<table class="credentials"><tr><th>who may enter</th><th>with</th><th>through</th><th>until</th></tr>' +
    l.credentials.map((c) => '<tr><td>' + esc(c.who) + '</td><td>' + esc(c.kind) + ' #' + c.credId + '</td><td>' + esc(c.grant) + '</td><td>' + esc(c.until) + '</td></tr>').join('') + '</table>' +
    '<div class="keypad">keypad <input class="typed" readonly value="' + '•'.repeat(typed.length) + '" size="10"> ' + keys +
    ' <button data-enter="' + id + '">⏎</button> <span class="result" id="result-' + id + '"></span></div>' +
    '<div><button data-card="' + id + '">present keycard ' + esc(S.state.told.keycard || '') + '</button> ' +
    S.state.phones.map((p) => '<button data-unlock="' + esc(p.name) + '" data-door="' + esc(l.door) + '">unlock with ' + esc(p.name) + '</button> <button data-sync="' + esc(p.name) + '" data-door="' + esc(l.door) + '">sync with ' + esc(p.name) + '</button>').join(' ') + '</div>' +
    '<div>walk ' + esc(S.state.phones[0]?.name ?? '') + ' away: <input type="range" min="0" max="20" value="1" data-walk="' + esc(l.door) + '"> </div>' +
    '<div>' + l.partners.map((p) => '<button data-remove="' + esc(l.door) + '" data-partner="' + p.id + '">manager: remove ' + esc(p.name) + ' from ' + esc(l.door) + '</button> ').join('') +
    '<button data-fault="dropLink" data-door="' + esc(l.door) + '">drop link</button> <button data-fault="powerCut" data-door="' + esc(l.door) + '">' + (l.poweredOff ? 'restore power' : 'cut power') + '</button> ' +
    '<button data-fault="blackout" data-door="' + esc(l.door) + '">blackout</button> <button data-fault="restoreRadio" data-door="' + esc(l.door) + '">radio back</button> ' +
    '<button data-fault="battery" data-door="' + esc(l.door) + '">' + (l.battery < 10 ? 'new battery' : 'battery nearly flat') + '</button></div>' +
    '<details><summary>audit log (' + l.audit.length + ')</summary><table>' + l.audit.map((a) => '<tr><td>' + a.seq + '</td><td>' + esc(a.time) + '</td><td>' + esc(a.event) + '</td><td>' + (a.credId ?? '') + '</td></tr>').join('') + '</table></details></section>';
}
function render() {
  const st = S.state;
  const results = {};
  document.querySelectorAll('.result').forEach((e) => (results[e.id] = e.innerHTML));
  document.getElementById('title').textContent = st.title || '';
  document.getElementById('locks').innerHTML = st.locks.map(lockHtml).join('');
  for (const [k, v] of Object.entries(results)) { const e = document.getElementById(k); if (e) e.innerHTML = v; }
  document.getElementById('events').innerHTML = st.timeline.map((e) => '<li class="' + (e.ok === false ? 'bad' : e.ok ? 'ok' : '') + '">+' + (e.t / 1000).toFixed(1) + ' s ' + esc(e.kind) + ': ' + esc(e.text) + '</li>').join('');
}
async function run(body, lockId) {
  const r = await post(body);
  if (lockId) document.getElementById('result-' + lockId).innerHTML = '<span class="' + (r.ok ? 'ok' : 'bad') + '">' + esc(r.text) + '</span>';
}
document.addEventListener('click', (ev) => {
  const b = ev.target.closest('button'); if (!b) return;
  const d = b.dataset;
  const door = (id) => S.state.locks.find((l) => l.lockId === id).door;
  if (d.key) { S.typed[d.lock] = (S.typed[d.lock] || '') + d.key; render(); }
  else if (d.enter) { const code = S.typed[d.enter] || ''; S.typed[d.enter] = ''; run({ op: 'keypad', door: door(d.enter), code }, d.enter); }
  else if (d.card) run({ op: 'card', door: door(d.card), uid: S.state.told.keycard }, d.card);
  else if (d.unlock) run({ op: 'unlock', phone: d.unlock, door: d.door }, S.state.locks.find((l) => l.door === d.door).lockId);
  else if (d.sync) run({ op: 'sync', phone: d.sync, door: d.door }, S.state.locks.find((l) => l.door === d.door).lockId);
  else if (d.remove) run({ op: 'removePartner', door: d.remove, partnerId: Number(d.partner) }, S.state.locks.find((l) => l.door === d.remove).lockId);
  else if (d.fault) run({ op: d.fault, door: d.door }, S.state.locks.find((l) => l.door === d.door).lockId);
});
document.addEventListener('change', (ev) => {
  const d = ev.target.dataset; if (!d || !d.walk) return;
  run({ op: 'walk', phone: S.state.phones[0].name, door: d.walk, metres: Number(ev.target.value) });
});
const es = new EventSource('/events');
es.onopen = () => (document.getElementById('conn').textContent = 'live');
es.onerror = () => (document.getElementById('conn').textContent = 'reconnecting…');
es.onmessage = (m) => { S.state = JSON.parse(m.data); render(); };
</script></body></html>
`;

/**
 * The panel's HTTP surface, shared by the world panel and the lock-directory panel: the page,
 * the server-sent state stream, and actions posted as JSON (a failing action is a 500 with
 * its message, never an unhandled rejection).
 */
export async function routePanelRequest(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  panel: { clients: Set<http.ServerResponse>; state(): unknown; act(body: Record<string, unknown>): Promise<unknown> },
): Promise<void> {
  if (req.method === 'GET' && req.url === '/') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(PAGE);
    return;
  }
  if (req.method === 'GET' && req.url === '/events') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    panel.clients.add(res);
    req.on('close', () => panel.clients.delete(res));
    res.write(`data: ${JSON.stringify(panel.state())}\n\n`);
    return;
  }
  if (req.method === 'POST' && req.url === '/action') {
    let raw = '';
    for await (const chunk of req) raw += String(chunk);
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      res.writeHead(400).end('{"ok":false,"text":"body is not JSON"}');
      return;
    }
    try {
      const r = await panel.act(body);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(r));
    } catch (e) {
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: false, text: (e as Error).message }));
    }
    return;
  }
  res.writeHead(404).end('not found');
}
