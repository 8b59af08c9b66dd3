// The CLI drives the same operations: init, a few manager commands, a typed refusal.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CliError } from '../cli/errors';
import { registerAuthorityCommands } from './cli';
import { Authority } from './authority';

const dir = mkdtempSync(join(tmpdir(), 'locksync-authority-cli-'));
afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = 0;
});

/** Runs one command with --json: its JSON output, and the CliError a refusal ends with. */
async function run(...args: string[]): Promise<any> {
  let out = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((out += String(s)), true));
  const program = new Command('locksync').exitOverride();
  registerAuthorityCommands(program);
  let failure: CliError | undefined;
  try {
    await program.parseAsync(['node', 'locksync', 'authority', ...args, '--json']);
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    failure = e;
  } finally {
    vi.restoreAllMocks();
  }
  const result = JSON.parse(out.trim().split('\n').pop() as string);
  return failure === undefined ? result : { ...result, exitCode: failure.exitCode, line: failure.line };
}

describe('locksync authority CLI', () => {
  it('init, doors, keys, a bad value (USAGE 2), a partner refusal (AUTHORITY_REFUSED 13), and a state unchanged by the refusal', async () => {
    const db = join(dir, 'cli.db');
    const init = await run('init', '--db', db, '--seed', 'cli', '--tz', 'America/New_York');
    expect(init.managerToken).toMatch(/^lst_/);
    expect(statSync(join(`${db}.keys`, 'root.key')).mode & 0o777).toBe(0o600);
    const door = await run('door', 'add', '--db', db, '--name', 'Lobby', '--communal');
    const key = await run('key', 'create', '--db', db, '--name', 'Residents', '--door', `${door.id}:sched=weekdays@06:00-22:00+sat,sun@08:00-20:00`);
    expect(key.doors[0].schedule).toEqual([
      { days: 31, start: 360, end: 1320 },
      { days: 96, start: 480, end: 1200 },
    ]);
    const bad = await run('key', 'create', '--db', db, '--name', 'Bad', '--door', `${door.id}:sched=fri@22:00-02:00`);
    expect(bad.error.code).toBe('VALIDATION');
    expect(bad.exitCode).toBe(2);
    expect(bad.line).toMatch(/^error USAGE: VALIDATION: .+ — .+$/);
    const { partner } = await run('partner', 'authorize', '--db', db, '--name', 'Parcel Co');
    await run('partner', 'assign-door', '--db', db, '--partner', String(partner.id), '--door', String(door.id));
    const a = Authority.open({ dbPath: db });
    const dump = () => JSON.stringify([a.listDoors(), a.listKeys(), a.listPartners(), a.listLocks()]);
    const before = dump();
    const refused = await run('partner', 'terminate', '--db', db, '--partner', String(partner.id));
    expect(refused.error).toMatchObject({ code: 'PARTNER_STILL_ASSIGNED', details: { doors: [{ doorId: door.id, name: 'Lobby', via: 'door' }] } });
    expect(refused.exitCode).toBe(13);
    expect(refused.line).toMatch(/^error AUTHORITY_REFUSED: PARTNER_STILL_ASSIGNED: /);
    expect(dump()).toBe(before);
    a.close();
    rmSync(dir, { recursive: true, force: true });
  });
});
