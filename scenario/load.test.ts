import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadScenario, ScenarioError, type Scenario } from './index';

const FIXTURES = new URL('../fixtures/scenarios/', import.meta.url).pathname;

/** A minimal valid scenario as a plain object; tests mutate a copy. */
function base(): Record<string, any> {
  return {
    name: 'unit test',
    description: 'd',
    seed: 7,
    source: 'unit test',
    property: {
      timeZone: 'America/New_York',
      start: '2025-03-10T09:00:00',
      doors: [
        { id: 'lk-0001', name: 'Unit', kind: 'private', connected: false },
        { id: 'lk-0002', name: 'Lobby', kind: 'communal', connected: true, uplinkIntervalSeconds: 30 },
      ],
      keys: [{ id: 'k1', name: 'K', doors: ['lk-0001', { door: 'lk-0002', doorcodes: false, schedule: [{ days: ['mon'], start: '08:00', end: '18:00' }] }] }],
      users: [{ id: 'alice', role: 'resident', keys: [{ key: 'k1', mayShare: true }], phones: [{ id: 'alice-phone', at: 'lk-0001' }], keycards: ['04a1b2c3'] }],
      partners: [{ id: 'p1', authorized: true, doors: ['lk-0001'], phones: ['partner-1'] }],
    },
    steps: [
      { at: '+5s', unlock: { phone: 'alice-phone', lock: 'lk-0001' }, expect: { decision: 'GRANTED' } },
      { at: '00:01:00', unassignPartner: { partner: 'p1', door: 'lk-0001' }, expect: { manager: 'ok', pendingRevocations: 1 } },
      { at: '2025-03-10T09:02:00', sync: { phone: 'alice-phone', lock: 'lk-0001' }, expect: { syncResult: 'ok', versionAtLock: '>= 2' } },
    ],
  };
}

function load(doc: unknown, format: 'json' | 'yaml' = 'json'): Scenario {
  return loadScenario(format === 'json' ? JSON.stringify(doc, null, 2) : stringify(doc), format);
}

/** The single issue a broken document produces, as "path: message". */
function issues(doc: unknown, format: 'json' | 'yaml' = 'json'): string[] {
  try {
    load(doc, format);
  } catch (e) {
    expect(e).toBeInstanceOf(ScenarioError);
    return (e as ScenarioError).issues.map((i) => `${i.path}: ${i.message}`);
  }
  throw new Error('expected a ScenarioError');
}

describe('loadScenario', () => {
  it('loads a valid scenario with defaults and resolved times', () => {
    const s = load(base());
    expect(s.seed).toBe(7);
    expect(s.link.profile).toBe('phone-typical');
    expect(s.property.lockPolicy.wrongCodeLimit).toBe(5);
    expect(s.property.doors[0]?.uplinkIntervalSeconds).toBe(0);
    expect(s.property.doors[1]?.uplinkIntervalSeconds).toBe(30);
    expect(s.steps.map((x) => x.atMs)).toEqual([5_000, 60_000, 120_000]);
    expect(s.property.startEpochMs).toBe(Date.UTC(2025, 2, 10, 13, 0, 0)); // EDT began 2025-03-09
    expect(s.steps[2]?.expect?.versionAtLock).toEqual({ op: '>=', value: 2 });
    expect(s.steps[1]?.expect?.manager).toBe('ok');
    expect(s.property.users[0]?.phones[0]?.position).toEqual({ x: 0, y: 1 });
  });

  it('device: names the lock device profile (absent: host); an unknown one is an issue naming the profiles', () => {
    expect(load(base()).device).toBeUndefined();
    expect(load({ ...base(), device: 'nrf52840' }).device).toBe('nrf52840');
    expect(load({ ...base(), device: 'host' }).device).toBeUndefined();
    expect(issues({ ...base(), device: 'z80' })).toEqual([expect.stringMatching(/^device: "z80" is not one of host, nrf52840, esp32-c3/)]);
  });

  it('YAML and JSON of the same document give the same scenario', () => {
    expect(load(base(), 'yaml')).toEqual(load(base(), 'json'));
  });

  it('advance moves the cursor for relative times', () => {
    const d = base();
    d.steps = [
      { at: '+1s', advance: { seconds: 60 } },
      { at: '+1s', check: {}, expect: { lock: 'lk-0002', versionAtLock: 1 } },
    ];
    expect(load(d).steps.map((s) => s.atMs)).toEqual([1_000, 62_000]);
  });

  it('locates issues with a path and a YAML line', () => {
    const d = base();
    d.steps[0].unlock.phone = 'bob';
    try {
      load(d, 'yaml');
      expect.unreachable();
    } catch (e) {
      const err = e as ScenarioError;
      expect(err.path).toBe('steps[0].unlock.phone');
      expect(err.message).toContain('steps[0].unlock.phone');
      expect(err.message).toContain('unknown phone "bob" (known: alice-phone, partner-1)');
      const line = err.issues[0]?.line;
      expect(line).toBeDefined();
      expect(stringify(d).split('\n')[(line as number) - 1]).toContain('bob');
    }
  });

  it('collects every issue, not only the first', () => {
    const d = base();
    d.steps[0].unlock.phone = 'bob';
    d.steps[1].unassignPartner.partner = 'p2';
    expect(issues(d)).toHaveLength(2);
  });

  it('reports a file it cannot read, and YAML syntax errors with a line', () => {
    expect(() => loadScenario('/nonexistent/x.yaml')).toThrow(/cannot read/);
    expect(() => loadScenario('/tmp/x.txt')).toThrow(/\.yaml, \.yml or \.json/);
    try {
      loadScenario('name: x\nsteps: [\n  - a\n', 'yaml');
      expect.unreachable();
    } catch (e) {
      expect((e as ScenarioError).issues[0]?.message).toMatch(/^YAML: /);
      expect((e as ScenarioError).issues[0]?.line).toBeGreaterThan(0);
    }
    expect(() => loadScenario('{"name": ', 'json')).toThrow(/not valid JSON/);
  });
});

describe('validator error classes', () => {
  const cases: [string, (d: Record<string, any>) => void, RegExp][] = [
    ['unknown top-level field with suggestion', (d) => (d.stpes = []), /^stpes: unknown field "stpes" \(did you mean "steps"\?\)/],
    ['missing source', (d) => delete d.source, /^source: required/],
    ['bad seed', (d) => (d.seed = -1), /^seed: expected a non-negative integer/],
    ['bad time zone', (d) => (d.property.timeZone = 'Mars/Olympus'), /^property\.timeZone: "Mars\/Olympus" is not an IANA time zone/],
    ['start in a DST gap', (d) => (d.property.start = '2025-03-09T02:30:00'), /^property\.start: .*daylight-saving gap/],
    ['start with an offset', (d) => (d.property.start = '2025-03-10T09:00:00Z'), /^property\.start: .*without Z/],
    ['bad lock id', (d) => (d.property.doors[0].id = 'Lock 1'), /^property\.doors\[0\]\.id: "Lock 1" is not a valid lock id/],
    ['duplicate id', (d) => (d.property.doors[1].id = 'lk-0001'), /^property\.doors\[1\]\.id: duplicate id "lk-0001"/],
    ['uplink on an offline door', (d) => (d.property.doors[0].uplinkIntervalSeconds = 5), /^property\.doors\[0\]\.uplinkIntervalSeconds: only applies to connected doors/],
    ['bad door kind', (d) => (d.property.doors[0].kind = 'privat'), /^property\.doors\[0\]\.kind: "privat" is not one of communal, private \(did you mean "private"\?\)/],
    ['key names unknown door', (d) => (d.property.keys[0].doors[0] = 'lk-0009'), /^property\.keys\[0\]\.doors\[0\]: unknown door "lk-0009"/],
    ['key lists a door twice', (d) => d.property.keys[0].doors.push('lk-0001'), /^property\.keys\[0\]\.doors\[2\]: door "lk-0001" is listed twice/],
    ['partner key names unknown partner', (d) => (d.property.keys[0].partner = 'nobody'), /^property\.keys\[0\]\.partner: unknown partner "nobody"/],
    ['user holds unknown key', (d) => (d.property.users[0].keys = ['k9']), /^property\.users\[0\]\.keys\[0\]: unknown key "k9"/],
    ['doorcode not 7 digits', (d) => (d.property.users[0].doorcode = '1234'), /^property\.users\[0\]\.doorcode: "1234" is not a valid doorcode/],
    ['doorcode as number', (d) => (d.property.users[0].doorcode = 1234567), /^property\.users\[0\]\.doorcode: expected a string, got 1234567/],
    ['bad keycard uid', (d) => (d.property.users[0].keycards = ['XYZ']), /^property\.users\[0\]\.keycards\[0\]: "XYZ" is not a keycard UID/],
    ['duplicate phone', (d) => (d.property.partners[0].phones = ['alice-phone']), /phones\[0\]\.id: duplicate id "alice-phone"/],
    ['unauthorized partner on doors', (d) => (d.property.partners[0].authorized = false), /^property\.partners\[0\]\.doors: a partner not authorized/],
    ['partner key of an unauthorized partner', (d) => ((d.property.partners[0].authorized = false), (d.property.partners[0].doors = []), (d.property.keys[0].partner = 'p1')), /^property\.keys\[0\]\.partner: partner "p1" is not authorized/],
    ['schedule window crosses midnight', (d) => (d.property.keys[0].doors[1].schedule = [{ days: ['mon'], start: '22:00', end: '02:00' }]), /schedule\[0\]: start 22:00 must be before end 02:00/],
    ['schedule day misspelt', (d) => (d.property.keys[0].doors[1].schedule = [{ days: ['mom'], start: '08:00', end: '09:00' }]), /schedule\[0\]\.days\[0\]: "mom" is not a day .*did you mean "mon"/],
    ['schedule time unquoted / bad', (d) => (d.property.keys[0].doors[1].schedule = [{ days: ['mon'], start: '8:00', end: '09:00' }]), /schedule\[0\]\.start: "8:00" is not HH:MM/],
    ['schedule hour 25', (d) => (d.property.keys[0].doors[1].schedule = [{ days: ['mon'], start: '08:00', end: '25:00' }]), /schedule\[0\]\.end: "25:00" is not a time of day/],
    [
      'more than 8 windows on a day',
      (d) => (d.property.keys[0].doors[1].schedule = Array.from({ length: 9 }, (_, i) => ({ days: ['tue'], start: `${String(i + 10)}:00`, end: `${String(i + 10)}:30` }))),
      /property\.keys\[0\]\.doors\[1\]\.schedule: 9 windows on tue; a door schedule allows at most 8 per day/,
    ],
    ['lock policy out of range', (d) => (d.property.lockPolicy = { wrongCodeLimit: 0 }), /^property\.lockPolicy\.wrongCodeLimit: 0 is below the minimum 1/],
    ['guest without mayShare', (d) => {
      d.property.users[0].keys = [{ key: 'k1', mayShare: false }];
      d.property.guests = [{ id: 'g1', invitedBy: 'alice', doors: ['lk-0001'] }];
    }, /^property\.guests\[0\]\.doors\[0\]: "alice" holds no Key with mayShare: true that covers door "lk-0001"/],
    ['unknown link profile', (d) => (d.link = 'phone-typcal'), /^link: "phone-typcal" is not a link profile .*did you mean "phone-typical"/],
    ['link interval not a multiple of 1.25 ms', (d) => (d.link = { intervalMs: 8, mtu: 23, dataLength: 27 }), /^link\.intervalMs: 8 is not a multiple of 1\.25 ms/],
    ['link mtu out of range', (d) => (d.link = { intervalMs: 7.5, mtu: 600, dataLength: 27 }), /^link\.mtu: 600 is above the maximum 517/],
    ['step with no action', (d) => (d.steps[0] = { at: '+1s' }), /^steps\[0\]: no action/],
    ['step with two actions', (d) => (d.steps[0].sync = { phone: 'alice-phone', lock: 'lk-0001' }), /^steps\[0\]: one action per step, found unlock and sync/],
    ['unknown step field', (d) => (d.steps[0].expcet = {}), /^steps\[0\]\.expcet: unknown field "expcet" \(did you mean "expect"\?\)/],
    ['bad relative time', (d) => (d.steps[0].at = '+5 seconds'), /^steps\[0\]\.at: "\+5 seconds" is not a relative time/],
    ['bad time format', (d) => (d.steps[0].at = 'soon'), /^steps\[0\]\.at: "soon" is not a step time/],
    ['time going backwards', (d) => (d.steps[2].at = '00:00:30'), /^steps\[2\]\.at: "00:00:30" is 30\.000 s before the end of the previous step/],
    ['absolute time in a DST gap', (d) => (d.steps[2].at = '2025-03-09T02:30:00'), /^steps\[2\]\.at: .*daylight-saving gap/],
    ['unknown phone', (d) => (d.steps[0].unlock.phone = 'bob'), /^steps\[0\]\.unlock\.phone: unknown phone "bob" \(known: alice-phone, partner-1\)/],
    ['unknown lock', (d) => (d.steps[0].unlock.lock = 'lk-0003'), /^steps\[0\]\.unlock\.lock: unknown door "lk-0003" \(did you mean "lk-0001"\?\)/],
    ['unknown partner', (d) => (d.steps[1].unassignPartner.partner = 'p2'), /^steps\[1\]\.unassignPartner\.partner: unknown partner "p2"/],
    ['deletePartnerKey on a non-partner key', (d) => (d.steps[1] = { at: '+1s', deletePartnerKey: { key: 'k1' } }), /^steps\[1\]\.deletePartnerKey\.key: "k1" is not a partner key/],
    ['editKey with nothing to do', (d) => (d.steps[1] = { at: '+1s', editKey: { key: 'k1' } }), /^steps\[1\]\.editKey: an edit needs at least one of/],
    ['editKey schedule for unknown door', (d) => (d.steps[1] = { at: '+1s', editKey: { key: 'k1', schedule: { 'lk-0007': [] } } }), /^steps\[1\]\.editKey\.schedule\.lk-0007: unknown field "lk-0007"/],
    ['keypad with two inputs', (d) => (d.steps[0] = { at: '+1s', keypad: { lock: 'lk-0001', code: '1234567', codeOf: { user: 'alice' } } }), /^steps\[0\]\.keypad: give exactly one of code, codeOf, dailyCode \(found code, codeOf\)/],
    ['keypad codeOf unknown user', (d) => (d.steps[0] = { at: '+1s', keypad: { lock: 'lk-0001', codeOf: { user: 'zed' } } }), /^steps\[0\]\.keypad\.codeOf\.user: unknown user "zed"/],
    ['daily code slot beyond policy', (d) => (d.steps[0] = { at: '+1s', keypad: { lock: 'lk-0001', dailyCode: { slot: 16 } } }), /^steps\[0\]\.keypad\.dailyCode\.slot: 16 is above the maximum 15/],
    ['card of a user without keycards', (d) => {
      d.property.users[0].keycards = [];
      d.steps[0] = { at: '+1s', card: { lock: 'lk-0001', cardOf: 'alice' } };
    }, /^steps\[0\]\.card\.cardOf: user "alice" has no keycards/],
    ['linkDrop without a trigger', (d) => (d.steps[0] = { at: '+1s', linkDrop: { phone: 'alice-phone' } }), /^steps\[0\]\.linkDrop: give exactly one of atPacket, atTimeMs/],
    ['packet error rate above 1', (d) => (d.steps[0] = { at: '+1s', packetErrorRate: { rate: 1.5 } }), /^steps\[0\]\.packetErrorRate\.rate: 1\.5 is above the maximum 1/],
    ['bad courier mode', (d) => (d.steps[0] = { at: '+1s', courier: { phone: 'alice-phone', mode: 'withold' } }), /^steps\[0\]\.courier\.mode: "withold" is not one of .*did you mean "withhold"/],
    ['powerCut at flash op 0', (d) => (d.steps[0] = { at: '+1s', powerCut: { lock: 'lk-0001', atFlashOp: 0 } }), /^steps\[0\]\.powerCut\.atFlashOp: 0 is below the minimum 1/],
    ['unknown decision reason', (d) => (d.steps[0].expect = { decision: 'DENIED' }), /^steps\[0\]\.expect\.decision: "DENIED" is not one of GRANTED, UNKNOWN_CREDENTIAL/],
    ['decision on a sync step', (d) => (d.steps[2].expect = { decision: 'GRANTED' }), /^steps\[2\]\.expect\.decision: only unlock, keypad and card steps produce an access decision/],
    ['unknown protocol error in syncResult', (d) => (d.steps[2].expect = { syncResult: 'refused:ROLLBAK' }), /^steps\[2\]\.expect\.syncResult: "ROLLBAK" is not a protocol ERROR_CODES name \(did you mean "ROLLBACK"\?\)/],
    ['bad syncResult word', (d) => (d.steps[2].expect = { syncResult: 'fine' }), /^steps\[2\]\.expect\.syncResult: "fine" is not one of ok, out_of_range, link_lost/],
    ['syncResult on a manager step', (d) => (d.steps[1].expect = { syncResult: 'ok' }), /^steps\[1\]\.expect\.syncResult: only sync and unlock steps/],
    ['manager result on a phone step', (d) => (d.steps[0].expect = { manager: 'ok' }), /^steps\[0\]\.expect\.manager: only manager operations/],
    ['bad versionAtLock', (d) => (d.steps[2].expect = { versionAtLock: 'at least 2' }), /^steps\[2\]\.expect\.versionAtLock: expected a version N or a comparison like '>= N'/],
    ['versionAtLock with no lock', (d) => (d.steps[2] = { at: '+1s', advance: { seconds: 1 }, expect: { versionAtLock: 2 } }), /^steps\[2\]\.expect: versionAtLock and pendingRevocations need a lock/],
    ['empty expectation', (d) => (d.steps[0].expect = {}), /^steps\[0\]\.expect: empty expectation/],
    ['authorityInForce unknown door', (d) => (d.steps[2].expect = { authorityInForce: { door: 'lk-9', version: 2 } }), /^steps\[2\]\.expect\.authorityInForce\.door: unknown door "lk-9"/],
    ['unknown expectation field', (d) => (d.steps[0].expect = { decison: 'GRANTED' }), /^steps\[0\]\.expect\.decison: unknown field "decison" \(did you mean "decision"\?\)/],
  ];

  for (const [title, mutate, pattern] of cases) {
    it(title, () => {
      const d = base();
      mutate(d);
      const found = issues(d);
      expect(found.some((f) => pattern.test(f)), `no issue matched ${pattern}; got:\n${found.join('\n')}`).toBe(true);
    });
  }

  it('a phone introduced by inviteGuest is known to later steps only', () => {
    const d = base();
    d.steps = [
      { at: '+1s', unlock: { phone: 'dana-phone', lock: 'lk-0001' } },
      { at: '+1s', inviteGuest: { guest: 'dana', by: 'alice', doors: ['lk-0001'], phones: ['dana-phone'], validUntil: '+1d' }, expect: { manager: 'ok' } },
      { at: '+1s', unlock: { phone: 'dana-phone', lock: 'lk-0001' }, expect: { decision: 'UNKNOWN_CREDENTIAL' } },
    ];
    expect(issues(d)).toEqual([expect.stringMatching(/^steps\[0\]\.unlock\.phone: unknown phone "dana-phone"/)]);
    d.steps.shift();
    const s = load(d);
    const invite = s.steps[0]?.action;
    expect(invite?.kind === 'inviteGuest' && invite.validUntilMs).toBe(1_000 + 86_400_000);
  });
});

describe('fixtures/scenarios', () => {
  const files = readdirSync(FIXTURES).filter((f) => /\.(ya?ml|json)$/.test(f)).sort();

  it('holds at least 15 scenarios', () => {
    expect(files.length).toBeGreaterThanOrEqual(15);
  });

  for (const f of files) {
    it(`${f} loads, has expectations, and stays short`, () => {
      const s = loadScenario(join(FIXTURES, f));
      expect(s.source.length).toBeGreaterThan(0);
      expect(s.steps.filter((x) => x.expect !== undefined).length).toBeGreaterThanOrEqual(3);
      expect(s.steps.length).toBeLessThanOrEqual(15);
      const last = s.steps[s.steps.length - 1];
      const end = (last?.atMs ?? 0) + (last?.action.kind === 'advance' ? last.action.seconds * 1000 : 0);
      expect(end).toBeLessThanOrEqual(12 * 3600_000);
    });
  }

  it('names are unique', () => {
    const names = files.map((f) => loadScenario(join(FIXTURES, f)).name);
    expect(new Set(names).size).toBe(names.length);
  });
});
