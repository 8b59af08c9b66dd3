// The dissector names codes from its own copy of the SPEC registries (Lua cannot import the
// TypeScript ones): this test keeps that copy equal to protocol/, so a new message type,
// error, decision reason or audit event cannot be added without the dissector learning it.
// Runs without tshark.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DECISION_REASONS, ERROR_CODES } from '../../protocol/errors';
import { AUDIT_EVENTS, CAPABILITIES, MESSAGE_TYPES } from '../../protocol/messages';

const lua = fs.readFileSync(path.join(import.meta.dirname, 'locksync.lua'), 'utf8');

/** `local NAME = { [1] = "a", [2] = "b", … }` → { a: 1, b: 2 }. */
function luaTable(name: string): Record<string, number> {
  const m = new RegExp(`local ${name} = \\{([\\s\\S]*?)\\n\\}`).exec(lua);
  if (!m) throw new Error(`no table ${name} in locksync.lua`);
  return Object.fromEntries([...(m[1] ?? '').matchAll(/\[(\d+)\]\s*=\s*"([A-Za-z_]+)"/g)].map((x) => [x[2] as string, Number(x[1])]));
}

describe('Wireshark dissector registries', () => {
  it.each([
    ['MESSAGE_TYPES', MESSAGE_TYPES],
    ['ERROR_CODES', ERROR_CODES],
    ['DECISION_REASONS', DECISION_REASONS],
    ['AUDIT_EVENTS', AUDIT_EVENTS],
  ] as const)('%s in locksync.lua equals protocol/', (name, registry) => {
    expect(luaTable(name)).toEqual({ ...registry });
  });

  it('CAPABILITIES in locksync.lua names every hello capability bit in order (bit n = item n + 1)', () => {
    const m = /local CAPABILITIES = \{([^}]*)\}/.exec(lua);
    const names = [...(m?.[1] ?? '').matchAll(/"([A-Za-z]+)"/g)].map((x) => x[1]);
    expect(Object.fromEntries(names.map((n, i) => [n, 1 << i]))).toEqual({ ...CAPABILITIES });
  });

  it('has a field schema for every message type', () => {
    const schema = /S\.message = \{([\s\S]*?)\n\}/.exec(lua)?.[1] ?? '';
    const typed = new Set([...schema.matchAll(/^\s*\[(\d+)\] = \{/gm)].map((m) => Number(m[1])));
    for (const [name, code] of Object.entries(MESSAGE_TYPES)) expect(typed.has(code), name).toBe(true);
  });
});
