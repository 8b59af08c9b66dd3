// `locksync agent …`: the phone, from a terminal or a script.

import type { Command } from 'commander';
import { AgentError } from './errors';
import { HttpAuthorityClient, type AuthorityApi } from './authority-client';
import { CourierCache } from './courier';
import { readCredentialFile, CredentialFileError } from './credential';
import { doorSync, deliverOutbox, type SyncEvent } from './sync';
import { unlock } from './unlock';
import { openConnector } from './transports';

/** Exit code for an unlock the lock refused (a decision, not a failure of the agent). */
export const EXIT_ACCESS_REFUSED = 11;

interface CommonOpts {
  transport: string;
  json?: boolean;
}

function authorityFrom(o: { authority?: string; token?: string }): AuthorityApi | undefined {
  if (!o.authority) return undefined;
  return new HttpAuthorityClient(o.authority, o.token ?? process.env.LOCKSYNC_TOKEN ?? '');
}

/** Progress: a bar on a TTY, JSON lines otherwise. */
function progressReporter(json: boolean | undefined): (e: SyncEvent) => void {
  const tty = process.stderr.isTTY && !json;
  return (e) => {
    if (!tty) {
      process.stderr.write(`${JSON.stringify({ event: 'sync', ...e })}\n`);
      return;
    }
    if (e.phase === 'transfer') {
      const width = 30;
      const done = Math.round((e.acked / Math.max(1, e.total)) * width);
      process.stderr.write(`\r  [${'#'.repeat(done)}${'.'.repeat(width - done)}] ${e.acked}/${e.total} B`);
      if (e.acked === e.total) process.stderr.write('\n');
    } else process.stderr.write(`  ${describe(e)}\n`);
  };
}

function describe(e: SyncEvent): string {
  switch (e.phase) {
    case 'connecting':
      return `connecting (attempt ${e.attempt})…`;
    case 'connected':
      return `connected; lock is at version ${e.lockVersion}`;
    case 'fetched':
      return `carrying v${e.from}→v${e.to} (${e.bytes} B, from ${e.source})`;
    case 'time':
      return 'lock clock set from authority-signed time';
    case 'receipt':
      return `receipt: version ${e.version} in force`;
    case 'refused':
      return `lock refused: ${e.code} ${e.detail}`;
    case 'audit':
      return `audit log: ${e.records} record(s)`;
    case 'relayed':
      return e.to === 'authority' ? 'receipt relayed to the authority' : 'authority unreachable: receipt kept in the outbox';
    case 'retry':
      return `link trouble (${e.reason}); retrying in ${e.delayMs} ms`;
    case 'done':
      return `done: version ${e.version}`;
    default:
      return JSON.stringify(e);
  }
}

async function run(json: boolean | undefined, body: () => Promise<{ exit: number; out: unknown; text: string }>): Promise<void> {
  try {
    const r = await body();
    process.stdout.write(json ? `${JSON.stringify(r.out)}\n` : `${r.text}\n`);
    process.exitCode = r.exit;
  } catch (e) {
    if (e instanceof AgentError) {
      const out = { ok: false, reason: e.reason, message: e.message, advice: e.advice, ...(e.lockError ? { lockError: e.lockError } : {}) };
      process.stdout.write(json ? `${JSON.stringify(out)}\n` : `FAILED ${e.message}\n${e.advice}\n`);
      process.exitCode = e.exitCode;
      return;
    }
    if (e instanceof CredentialFileError) {
      process.stderr.write(`${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw e;
  }
}

export function registerAgentCommands(program: Command): void {
  const agent = program.command('agent').description('the phone: scan, Door Sync, unlock, courier (BLE central on noble)');

  agent
    .command('scan')
    .description('list nearby locks with RSSI and their advertised table version')
    .requiredOption('--transport <spec>', 'uart:PATH | hci:N')
    .option('--timeout <ms>', 'scan duration', '3000')
    .option('--json', 'machine-readable output')
    .action(async (o: CommonOpts & { timeout: string }) =>
      run(o.json, async () => {
        const c = await openConnector(o.transport);
        try {
          const locks = await c.scan(Number(o.timeout));
          const text = locks.length === 0 ? 'no locks in range' : locks.map((l) => `${l.lockId}  rssi ${l.rssi} dBm  version ${l.version ?? '?'}  ${l.address ?? ''}`).join('\n');
          return { exit: 0, out: { ok: true, locks }, text };
        } finally {
          await c.close();
        }
      }),
    );

  agent
    .command('sync')
    .description('Door Sync: carry pending updates to a lock and relay its signed receipt')
    .requiredOption('--lock <id>', 'lock id')
    .requiredOption('--transport <spec>', 'uart:PATH | hci:N')
    .option('--authority <url>', 'authority base URL (omit with --offline)')
    .option('--token <token>', 'device token (or LOCKSYNC_TOKEN)')
    .option('--cache <dir>', 'courier cache directory', '.locksync-courier')
    .option('--offline', 'carry updates fetched earlier; queue the receipt for later delivery')
    .option('--attempts <n>', 'connection attempts before giving up', '4')
    .option('--json', 'machine-readable output')
    .action(async (o: CommonOpts & { lock: string; authority?: string; token?: string; cache: string; offline?: boolean; attempts: string }) =>
      run(o.json, async () => {
        const authority = o.offline ? undefined : authorityFrom(o);
        if (!authority && !o.offline) throw new AgentError('AUTHORITY_UNREACHABLE', 'no --authority given (use --offline to carry cached updates)');
        const cache = new CourierCache(o.cache);
        const connector = await openConnector(o.transport);
        try {
          const syncOpts: Parameters<typeof doorSync>[0] = { lockId: o.lock, connector, cache, attempts: Number(o.attempts), onEvent: progressReporter(o.json) };
          if (authority) syncOpts.authority = authority;
          const r = await doorSync(syncOpts);
          const text =
            r.versionAfter > r.versionBefore
              ? `Door Sync OK: ${o.lock} now enforces version ${r.versionAfter} (was ${r.versionBefore})${r.receiptDelivered ? '; receipt delivered' : '; receipt queued'}`
              : `Door Sync OK: ${o.lock} is up to date at version ${r.versionAfter}`;
          return { exit: 0, out: { ok: true, ...r, receipt: r.receipt ? Buffer.from(r.receipt).toString('hex') : undefined }, text };
        } finally {
          await connector.close();
        }
      }),
    );

  agent
    .command('fetch')
    .description('courier mode: fetch updates for a lock now, deliver them later with sync --offline')
    .requiredOption('--lock <id>', 'lock id')
    .requiredOption('--authority <url>', 'authority base URL')
    .option('--token <token>', 'device token (or LOCKSYNC_TOKEN)')
    .option('--from <version>', 'version the lock is known to hold (0 = any: a snapshot)', '0')
    .option('--cache <dir>', 'courier cache directory', '.locksync-courier')
    .option('--json', 'machine-readable output')
    .action(async (o: { lock: string; authority: string; token?: string; from: string; cache: string; json?: boolean }) =>
      run(o.json, async () => {
        const u = await (authorityFrom(o) as AuthorityApi).updates(o.lock, Number(o.from));
        new CourierCache(o.cache).storeUpdates(u);
        return { exit: 0, out: { ok: true, lockId: u.lockId, from: u.from, to: u.to, messages: u.messages.length }, text: `carrying ${o.lock} v${u.from}→v${u.to} (${u.messages.length} message(s))` };
      }),
    );

  agent
    .command('deliver')
    .description('deliver receipts and audit logs collected offline')
    .requiredOption('--authority <url>', 'authority base URL')
    .option('--token <token>', 'device token (or LOCKSYNC_TOKEN)')
    .option('--cache <dir>', 'courier cache directory', '.locksync-courier')
    .option('--json', 'machine-readable output')
    .action(async (o: { authority: string; token?: string; cache: string; json?: boolean }) =>
      run(o.json, async () => {
        const n = await deliverOutbox(new CourierCache(o.cache), authorityFrom(o) as AuthorityApi);
        return { exit: 0, out: { ok: true, delivered: n }, text: `delivered ${n} item(s)` };
      }),
    );

  agent
    .command('unlock')
    .description('present a phone credential by challenge–response; passive sync afterwards')
    .requiredOption('--credential <file>', 'phone credential JSON')
    .requiredOption('--lock <id>', 'lock id')
    .requiredOption('--transport <spec>', 'uart:PATH | hci:N')
    .option('--authority <url>', 'authority base URL, for the passive sync')
    .option('--token <token>', 'device token (or LOCKSYNC_TOKEN)')
    .option('--cache <dir>', 'courier cache directory', '.locksync-courier')
    .option('--no-passive-sync', 'skip the sync after the decision')
    .option('--json', 'machine-readable output')
    .action(async (o: CommonOpts & { credential: string; lock: string; authority?: string; token?: string; cache: string; passiveSync: boolean }) =>
      run(o.json, async () => {
        const credential = readCredentialFile(o.credential);
        const connector = await openConnector(o.transport);
        try {
          const opts: Parameters<typeof unlock>[0] = { lockId: o.lock, credential, connector, cache: new CourierCache(o.cache), passiveSync: o.passiveSync };
          const authority = authorityFrom(o);
          if (authority) opts.authority = authority;
          const r = await unlock(opts);
          const text = `${r.granted ? 'UNLOCKED' : 'REFUSED'} ${o.lock}: ${r.reason} (credential ${r.credId}, audit #${r.auditSeq})${r.sync ? `; synced to v${r.sync.versionAfter}` : ''}`;
          return { exit: r.granted ? 0 : EXIT_ACCESS_REFUSED, out: { ok: true, ...r, sync: r.sync ? { ...r.sync, receipt: undefined } : undefined }, text };
        } finally {
          await connector.close();
        }
      }),
    );
}
