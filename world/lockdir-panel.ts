// `locksync panel --lock-dir DIR…`: the live panel over locks started from state
// directories (`lock run --state DIR` daemons, each in its own process). Everything goes
// through each lock's control socket (firmware-sim/lifecycle.ts): the `state` op for what
// it holds (FSM state, table version, clock trust, battery model, credential table, audit
// log), `keypad` / `present` for the keypad and the keycard reader, `dropLinks` and
// `setBattery` for faults. The server asks each socket every REFRESH_MS and pushes the page
// a new state over server-sent events only when something changed (the page never polls).
// Such a lock has no authority or phones beside it: people are shown by credential, and
// the phone unlock, sync and manager buttons of the world panel are absent.

import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { CliError } from '../cli/errors';
import { controlRequest, controlSocketPath } from '../firmware-sim/lifecycle';
import { type PanelEvent, type PanelState, routePanelRequest } from './panel';

export const REFRESH_MS = 500;

interface LockReport {
  lockId: string;
  mode: string;
  version: number;
  clockTrusted: boolean;
  battery: number;
  batteryModel?: { percent: number; usedMah: number; capacityMah: number };
  advertisingIntervalMs?: number;
  sessionOpen: boolean;
  credentials: { credId: number; kind: string; holder: string; keyId?: number; partnerId?: number; parent?: number; validUntil?: number }[];
  audit: { seq: number; time: string; event: string; credId?: number; reason?: string }[];
}

/** Refuses a directory that is not a provisioned lock state, before serving anything. */
export function checkLockDir(dir: string): void {
  if (!fs.existsSync(path.join(dir, 'flash.img')))
    throw new CliError('BAD_STATE', `${dir} is not a lock state directory (no flash.img)`, 'pass the --state directory of a `locksync lock run` (provisioned with `locksync lock provision`)');
}

export class LockDirPanel {
  private readonly clients = new Set<http.ServerResponse>();
  private readonly timeline: PanelEvent[] = [];
  private readonly reports = new Map<string, LockReport | { error: string }>();
  private readonly startMs = Date.now();
  private server: http.Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastPushed = '';

  constructor(readonly dirs: string[]) {}

  private record(kind: PanelEvent['kind'], text: string, ok?: boolean): void {
    this.timeline.push({ t: Date.now() - this.startMs, kind, text, ...(ok !== undefined ? { ok } : {}) });
  }

  private name(dir: string): string {
    return path.basename(path.resolve(dir));
  }

  /** Asks every lock for its state; notes what changed on the timeline. */
  async refresh(): Promise<void> {
    for (const dir of this.dirs) {
      const before = this.reports.get(dir);
      let now: LockReport | { error: string };
      try {
        const r = await controlRequest(controlSocketPath(dir), { op: 'state' }, 3000);
        now = r.ok ? (r.result as LockReport) : { error: r.error ?? 'refused' };
      } catch (e) {
        now = { error: `no lock running (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` };
      }
      this.reports.set(dir, now);
      const name = this.name(dir);
      if (before === undefined) continue;
      if ('error' in now) {
        if (!('error' in before)) this.record('fault', `${name}: ${now.error}`, false);
        continue;
      }
      if ('error' in before) {
        this.record('note', `${name}: lock running (${now.lockId}, v${now.version})`);
        continue;
      }
      if (now.version !== before.version) this.record('sync', `${name}: table v${before.version} → v${now.version}`, true);
      if (now.mode !== before.mode) this.record('note', `${name}: state ${before.mode} → ${now.mode}`);
      if (now.sessionOpen !== before.sessionOpen) this.record('note', `${name}: ${now.sessionOpen ? 'a phone connected' : 'the phone disconnected'}`);
      const lastSeq = before.audit.at(-1)?.seq ?? -1;
      for (const a of now.audit.filter((x) => x.seq > lastSeq)) this.record('note', `${name}: audit #${a.seq} ${a.event}${a.reason !== undefined ? ` ${a.reason}` : ''}${a.credId !== undefined ? ` (credential ${a.credId})` : ''}`);
    }
  }

  state(): PanelState {
    const locks: PanelState['locks'] = this.dirs.map((dir) => {
      const r = this.reports.get(dir);
      const door = this.name(dir);
      if (r === undefined || 'error' in r)
        return { door, lockId: door, mode: r?.error ?? 'unknown', version: 0, authorityVersion: 0, clockTrusted: false, battery: 0, connection: 'not running', poweredOff: true, partners: [], pendingRevocations: [], credentials: [], audit: [] };
      return {
        door,
        lockId: r.lockId,
        mode: r.mode,
        version: r.version,
        authorityVersion: r.version,
        clockTrusted: r.clockTrusted,
        battery: r.batteryModel ? Math.round(r.batteryModel.percent * 1000) / 1000 : r.battery,
        connection: r.sessionOpen ? 'phone connected' : `advertising${r.advertisingIntervalMs !== undefined ? ` every ${r.advertisingIntervalMs} ms` : ''}`,
        poweredOff: false,
        partners: [],
        pendingRevocations: [],
        credentials: r.credentials.map((c) => ({
          credId: c.credId,
          who: `${c.holder} #${c.credId}`,
          kind: c.kind,
          grant: c.partnerId !== undefined ? `partner #${c.partnerId}` : c.holder === 'guest' ? `guest grant${c.parent !== undefined ? ` from credential ${c.parent}` : ''}` : c.keyId !== undefined ? `Key #${c.keyId}` : 'no Key',
          until: c.validUntil !== undefined ? new Date(c.validUntil * 1000).toISOString().replace('.000Z', 'Z') : 'no end',
        })),
        audit: r.audit,
      };
    });
    return { locks, phones: [], timeline: this.timeline, told: {}, title: `lock run daemons: ${this.dirs.map((d) => this.name(d)).join(', ')}` };
  }

  private push(force = false): void {
    const json = JSON.stringify(this.state());
    if (!force && json === this.lastPushed) return;
    this.lastPushed = json;
    for (const c of this.clients) c.write(`data: ${json}\n\n`);
  }

  private dirOf(door: string): string {
    const dir = this.dirs.find((d) => this.name(d) === door);
    if (dir === undefined) throw new Error(`no lock "${door}" on this panel`);
    return dir;
  }

  /** One action from the page, through that lock's control socket. */
  async act(body: Record<string, unknown>): Promise<{ ok: boolean; text: string }> {
    const door = typeof body['door'] === 'string' ? body['door'] : '';
    try {
      const dir = this.dirOf(door);
      const socket = controlSocketPath(dir);
      const ask = async (req: Record<string, unknown>): Promise<Record<string, unknown>> => {
        const r = await controlRequest(socket, req, 5000);
        if (!r.ok) throw new Error(r.error ?? 'refused');
        return r.result as Record<string, unknown>;
      };
      const decision = (what: string, r: Record<string, unknown>): { ok: boolean; text: string } => {
        const d = r['result'] as { granted: boolean; reason: string } | null;
        const text = `${door}: ${what} → ${d ? d.reason : 'no decision'}`;
        this.record('decision', text, d?.granted ?? false);
        return { ok: d?.granted ?? false, text };
      };
      switch (body['op']) {
        case 'keypad': {
          const code = String(body['code'] ?? '');
          if (!/^[0-9]{1,12}$/.test(code)) return { ok: false, text: 'a code is digits' };
          return decision(`keypad ${'•'.repeat(code.length)}`, await ask({ op: 'keypad', digits: code }));
        }
        case 'card':
          return decision(`keycard ${String(body['uid'])}`, await ask({ op: 'present', card: String(body['uid'] ?? '') }));
        case 'dropLink': {
          const r = await ask({ op: 'dropLinks' });
          const text = `${door}: links dropped (${String(r['dropped'])} phone${r['dropped'] === 1 ? '' : 's'} connected)`;
          this.record('fault', text);
          return { ok: true, text };
        }
        case 'battery': {
          const report = this.reports.get(dir);
          const flat = report !== undefined && !('error' in report) && report.battery < 10;
          const r = await ask({ op: 'setBattery', percent: flat ? 100 : 5 });
          const text = `${door}: battery ${flat ? 'replaced' : 'nearly flat (5 %)'} → ${String(r['mode'])}`;
          this.record('fault', text);
          return { ok: true, text };
        }
        default:
          return { ok: false, text: `${String(body['op'])} is not available for a lock run daemon (keypad, keycard, drop link and battery are)` };
      }
    } catch (e) {
      this.record('fault', `${door}: ${(e as Error).message}`, false);
      return { ok: false, text: (e as Error).message };
    } finally {
      await this.refresh();
      this.push(true);
    }
  }

  async listen(port = 0): Promise<string> {
    await this.refresh();
    this.server = http.createServer((req, res) => void this.route(req, res));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', () => resolve());
    });
    const tick = async (): Promise<void> => {
      await this.refresh().catch(() => undefined);
      this.push();
      this.timer = setTimeout(() => void tick(), REFRESH_MS);
    };
    this.timer = setTimeout(() => void tick(), REFRESH_MS);
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`;
  }

  private route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    return routePanelRequest(req, res, { clients: this.clients, state: () => this.state(), act: (body) => this.act(body) });
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    for (const c of this.clients) c.end();
    this.clients.clear();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
