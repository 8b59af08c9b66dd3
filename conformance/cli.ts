// `locksync conformance`: certify a lock under test over the air, message by message.
//
//   locksync conformance                                    the reference lock, in-process (sim)
//   locksync conformance --provision-bundle FILE [--seed S] [--lock ID]
//                                                           the bundle to provision a lock under test with
//   locksync conformance --transport uart:PATH|hci:N --device-key HEX [--second-transport T]
//   locksync conformance --self-test                        the suite against broken variants: mutation score
//
// Exit: 0 every case passed (self-test: and every variant caught); 18 EXPECTATION_FAILED a
// case failed (the lock does not conform); 10 TRANSPORT_UNAVAILABLE the transport cannot be
// opened; 3 LOCK_NOT_FOUND the lock is not advertising; 2 USAGE.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { CliError } from '../cli/errors';
import { AgentError } from '../mobile-agent/errors';
import { LOCK_ID_PATTERN, TransportSpecError, fromHex, parseTransport } from '../protocol';
import { humanReport, junitReport, selfTestReport, summaryLine, caseLine } from './report';
import { type RunReport, TargetUnreachable, runConformance, selectCases, selfTest } from './run';
import { type LockUnderTest, bleTarget, provisioningBundle, simTarget, suiteIdentity } from './target';
import { CASES } from './cases';
import { MUTANTS, type Mutant, mutantById } from './mutants';

export const DEFAULT_LOCK_ID = 'lk-conf-0001';
export const DEFAULT_SEED = 'conformance';

interface ConformanceOptions {
  transport: string;
  secondTransport?: string;
  lock: string;
  deviceKey?: string;
  seed: string;
  only?: string;
  junit?: string;
  report?: string;
  json?: boolean;
  selfTest?: boolean;
  provisionBundle?: string;
  list?: boolean;
  mutant?: string;
}

function writeFile(file: string, text: string, what: string): void {
  try {
    mkdirSync(dirname(resolve(file)), { recursive: true });
    writeFileSync(file, text);
  } catch (e) {
    throw new CliError('USAGE', `cannot write the ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'pass a writable path');
  }
}

function replayCommand(o: ConformanceOptions): string {
  const parts = ['locksync conformance', `--transport ${o.transport}`, `--lock ${o.lock}`, `--seed ${o.seed}`];
  if (o.deviceKey !== undefined) parts.push(`--device-key ${o.deviceKey}`);
  if (o.secondTransport !== undefined) parts.push(`--second-transport ${o.secondTransport}`);
  if (o.mutant !== undefined) parts.push(`--mutant ${o.mutant}`);
  if (o.only !== undefined) parts.push(`--only ${o.only}`);
  return parts.join(' ');
}

function checkTransport(flag: string, spec: string): 'sim' | 'ble' {
  try {
    return parseTransport(spec).kind === 'sim' ? 'sim' : 'ble';
  } catch (e) {
    if (e instanceof TransportSpecError) throw new CliError('USAGE', `${flag} ${spec}: ${e.message}`, 'use sim, uart:PATH[@BAUD] or hci:N');
    throw e;
  }
}

export function registerConformanceCommand(program: Command): void {
  program
    .command('conformance')
    .description(
      'certify a lock under test over BLE: acting as phone and authority, run every behavioural case of the SPEC message by message; writes a report and JUnit XML (see conformance/README.md); exit 0 all passed, 18 a case failed',
    )
    .option('--transport <spec>', 'sim (the reference lock, in-process) | uart:PATH[@BAUD] | hci:N (a lock under test on the air)', 'sim')
    .option('--second-transport <spec>', 'a second phone controller (uart:/hci:) for the BUSY case; without it that case is skipped on BLE')
    .option('--lock <id>', 'lock id of the lock under test (as in its provisioning bundle)', DEFAULT_LOCK_ID)
    .option('--device-key <hex>', "the lock's device public key (printed by `locksync lock provision`); required on uart:/hci:")
    .option('--seed <text>', 'derives the suite authority root key, the lock secret and the phone keys: use the seed the bundle was written with', DEFAULT_SEED)
    .option('--only <ids>', 'comma-separated case ids or group prefixes ending in "." (e.g. time.,unlock.replay)')
    .option('--junit <file>', 'also write a JUnit XML report (one test case per conformance case)')
    .option('--report <file>', 'also write the human report to a file')
    .option('--json', 'print the result as JSON instead of text')
    .option('--list', 'list the cases with their SPEC sections and exit')
    .option('--self-test', 'run the suite against the reference lock and each deliberately broken variant (sim only); print the mutation score')
    .option('--mutant <id>', `sim only: run against the reference lock with one deliberate bug (${MUTANTS.map((m) => m.id).join(', ')}), to see a failing verdict`)
    .option('--provision-bundle <file>', 'write the provisioning bundle for a lock under test (for `locksync lock provision --bundle`) and exit')
    .action(async (o: ConformanceOptions) => {
      const out = (s: string): void => void process.stdout.write(`${s}\n`);
      if (!LOCK_ID_PATTERN.test(o.lock)) throw new CliError('USAGE', `--lock ${o.lock} is not a lock id (${String(LOCK_ID_PATTERN)})`, 'pass the lock id of the provisioning bundle');
      const id = suiteIdentity(o.seed, o.lock);
      const only = o.only?.split(',').map((s) => s.trim()).filter((s) => s !== '');
      if (only !== undefined) {
        const unknown = only.filter((q) => selectCases([q]).length === 0);
        if (unknown.length > 0) throw new CliError('USAGE', `--only names no case: ${unknown.join(', ')}`, 'see `locksync conformance --list`');
      }

      if (o.list === true) {
        for (const c of selectCases(only, CASES)) out(`${c.id.padEnd(28)} ${c.spec.padEnd(30)} ${c.title}`);
        return;
      }
      if (o.provisionBundle !== undefined) {
        writeFile(o.provisionBundle, `${JSON.stringify(provisioningBundle(id), null, 2)}\n`, 'provisioning bundle');
        out(`wrote ${o.provisionBundle}: lock ${o.lock}, root key of the suite seed "${o.seed}"`);
        out(`provision the lock under test from it (the reference lock: \`locksync lock provision --state DIR --bundle ${o.provisionBundle}\`, which prints its device key),`);
        out(`run it on the air (\`locksync lock run --state DIR --transport uart:…\`), then:`);
        out(`  locksync conformance --transport uart:PATH --lock ${o.lock} --seed ${o.seed} --device-key <device key>`);
        return;
      }

      const kind = checkTransport('--transport', o.transport);
      if (o.secondTransport !== undefined && checkTransport('--second-transport', o.secondTransport) === 'sim')
        throw new CliError('USAGE', '--second-transport must be a BLE transport (uart:PATH or hci:N)', 'the sim transport has its second phone built in');
      if (o.selfTest === true) {
        if (o.mutant !== undefined) throw new CliError('USAGE', '--mutant and --self-test do not go together (the self-test runs every variant)', 'drop one of them');
        if (kind !== 'sim') throw new CliError('USAGE', '--self-test runs on the in-process reference lock only', 'drop --transport, or drop --self-test to certify the lock on the air');
        const s = await selfTest(id, o.json === true ? {} : { onVariant: (v) => out(`  ${v.caughtBy.length > 0 ? 'caught' : 'MISSED'} ${v.mutant.id}`) });
        if (o.json === true)
          out(
            JSON.stringify(
              {
                reference: { passed: s.reference.passed, failed: s.reference.failed, skipped: s.reference.skipped, failures: s.reference.results.filter((r) => r.status === 'failed') },
                variants: s.variants.map((v) => ({ id: v.mutant.id, description: v.mutant.description, caughtBy: v.caughtBy.map((c) => ({ id: c.id, message: c.message })) })),
                caught: s.caught,
                total: s.variants.length,
                score: s.score,
              },
              null,
              2,
            ),
          );
        else out(`\n${selfTestReport(s)}`);
        if (o.junit !== undefined) writeFile(o.junit, junitReport(s.reference, replayCommand(o)), 'JUnit report');
        if (s.reference.failed > 0)
          throw new CliError('EXPECTATION_FAILED', `the reference lock failed ${s.reference.failed} case(s), first ${s.reference.results.find((r) => r.status === 'failed')?.id ?? ''}`, 'the suite or the reference lock has a bug: run `locksync conformance` to see the FAIL lines');
        if (s.caught < s.variants.length)
          throw new CliError('EXPECTATION_FAILED', `${s.variants.length - s.caught} broken variant(s) passed every case: ${s.variants.filter((v) => v.caughtBy.length === 0).map((v) => v.mutant.id).join(', ')}`, 'add a case that catches each MISSED variant');
        return;
      }

      let mutant: Mutant | undefined;
      if (o.mutant !== undefined) {
        if (kind !== 'sim') throw new CliError('USAGE', '--mutant applies to the in-process reference lock only (--transport sim)', 'drop --mutant');
        mutant = mutantById(o.mutant);
        if (mutant === undefined) throw new CliError('USAGE', `--mutant ${o.mutant} is not a broken variant`, `pick one of ${MUTANTS.map((m) => m.id).join(', ')}`);
      }
      let target: LockUnderTest;
      if (kind === 'sim') target = simTarget(id, mutant !== undefined ? { mutant } : {});
      else {
        if (o.deviceKey === undefined) throw new CliError('USAGE', `--device-key is required on ${o.transport}: receipts and audit exports are checked against it`, 'pass the device public key `locksync lock provision` printed (or your firmware reports)');
        let deviceKey: Uint8Array;
        try {
          deviceKey = fromHex(o.deviceKey);
        } catch {
          deviceKey = new Uint8Array(0);
        }
        if (deviceKey.length !== 32) throw new CliError('USAGE', '--device-key must be 64 hex digits (an Ed25519 public key)', 'pass the device public key `locksync lock provision` printed');
        try {
          target = await bleTarget({ transport: o.transport, ...(o.secondTransport !== undefined ? { secondTransport: o.secondTransport } : {}), lockId: o.lock, devicePublicKey: deviceKey });
        } catch (e) {
          if (!(e instanceof AgentError) || e.reason !== 'TRANSPORT_UNAVAILABLE') throw e;
          // The host stack's message carries its own advice after " — ".
          const [what, todo] = e.detail.split(' — ');
          throw new CliError('TRANSPORT_UNAVAILABLE', what ?? e.detail, todo ?? 'check the transport string and that the radio or adapter is up (docs/hardware.md)');
        }
      }
      let r: RunReport;
      try {
        if (o.json !== true) out(`locksync conformance — lock ${o.lock} over ${o.transport}${mutant ? ` (broken variant ${mutant.id}: ${mutant.description})` : ''}, seed ${o.seed}`);
        r = await runConformance(target, id, { ...(only !== undefined ? { only } : {}), ...(o.json === true ? {} : { onCase: (c) => out(caseLine(c)) }) });
      } catch (e) {
        if (e instanceof TargetUnreachable)
          throw new CliError(
            e.reason,
            e.message,
            e.reason === 'LOCK_NOT_FOUND' ? `start the lock under test on the air (provisioned from \`locksync conformance --provision-bundle\`) and pass its id with --lock` : 'check the transport string and that the radio or adapter is up (docs/hardware.md)',
          );
        throw e;
      } finally {
        await target.close();
      }
      if (o.json === true) out(JSON.stringify(r, null, 2));
      else out(`\n${summaryLine(r)}`);
      if (o.report !== undefined) writeFile(o.report, `${humanReport(r)}\n`, 'report');
      if (o.junit !== undefined) writeFile(o.junit, junitReport(r, replayCommand(o)), 'JUnit report');
      if (r.failed > 0) {
        const first = r.results.find((c) => c.status === 'failed');
        throw new CliError(
          'EXPECTATION_FAILED',
          `${r.failed} of ${r.results.length} conformance cases failed on ${o.lock}${first ? `, first ${first.id} (${first.spec}): ${first.message ?? ''}` : ''}`,
          `the FAIL lines say which SPEC section each broke; rerun one with \`${replayCommand({ ...o, only: first?.id ?? '' })}\``,
        );
      }
    });
}
