// The suite's two reports: a human one (one line per case naming its SPEC section and
// requirements, the failure under it) and JUnit XML for CI (one <testcase> per case).

import { xmlEscape } from '../scenario/junit';
import type { CaseResult, RunReport, SelfTestReport } from './run';

const LABEL = { passed: 'PASS', failed: 'FAIL', skipped: 'SKIP' } as const;

export function citation(r: Pick<CaseResult, 'spec' | 'requirements'>): string {
  return r.requirements.length > 0 ? `${r.spec} ${r.requirements.map((q) => `[${q}]`).join(' ')}` : r.spec;
}

export function caseLine(r: CaseResult): string {
  const lines = [`${LABEL[r.status]}  ${r.id.padEnd(28)} ${citation(r).padEnd(30)} ${r.title}`];
  if (r.message !== undefined) lines.push(`        ${r.status === 'failed' ? '→ ' : ''}${r.message}`);
  for (const n of r.notes) lines.push(`        · ${n}`);
  return lines.join('\n');
}

export function humanReport(r: RunReport): string {
  return [
    `locksync conformance — lock ${r.lockId} over ${r.transport}, seed ${r.seed}, ${r.startedAt}`,
    ...r.notes.map((n) => `  (${n})`),
    '',
    ...r.results.map(caseLine),
    '',
    summaryLine(r),
  ].join('\n');
}

export function summaryLine(r: RunReport): string {
  return `${r.results.length} cases: ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped (${r.seconds.toFixed(1)} s)`;
}

const attrs = (a: Record<string, string | number>): string =>
  Object.entries(a)
    .map(([k, v]) => ` ${k}="${xmlEscape(String(v))}"`)
    .join('');

/** JUnit XML: classname `conformance.<group>`, name `<id> (<SPEC section> [requirements])`. */
export function junitReport(r: RunReport, replay: string): string {
  const counts = { tests: r.results.length, failures: r.failed, errors: 0, skipped: r.skipped };
  const suite = `conformance ${r.lockId} over ${r.transport}`;
  const cases = r.results.map((c) => {
    const head = `    <testcase${attrs({ name: `${c.id} (${citation(c)})`, classname: `conformance.${c.id.split('.')[0] ?? c.id}`, time: (c.ms / 1000).toFixed(3) })}`;
    if (c.status === 'passed') return `${head}/>`;
    if (c.status === 'skipped') return `${head}>\n      <skipped${attrs({ message: c.message ?? '' })}/>\n    </testcase>`;
    return `${head}>\n      <failure${attrs({ message: c.message ?? '', type: 'nonconformance' })}>${xmlEscape(`${c.title}\nSPEC: ${citation(c)}\n${c.message ?? ''}\nreplay: ${replay}`)}</failure>\n    </testcase>`;
  });
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites${attrs({ name: 'locksync conformance', ...counts, time: r.seconds.toFixed(3) })}>`,
    `  <testsuite${attrs({ name: suite, ...counts, time: r.seconds.toFixed(3), timestamp: r.startedAt.replace(/\.\d+Z$/, '') })}>`,
    '    <properties>',
    ...Object.entries({ transport: r.transport, lockId: r.lockId, seed: r.seed }).map(([name, value]) => `      <property${attrs({ name, value })}/>`),
    '    </properties>',
    ...cases,
    `    <system-out>${xmlEscape([`replay: ${replay}`, ...r.notes].join('\n'))}</system-out>`,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}

export function selfTestReport(s: SelfTestReport): string {
  const lines = [`reference lock: ${summaryLine(s.reference)}`, '', 'broken variants:'];
  for (const v of s.variants) {
    const by = v.caughtBy.map((c) => c.id).join(', ');
    lines.push(`  ${v.caughtBy.length > 0 ? 'CAUGHT ' : 'MISSED '} ${v.mutant.id.padEnd(30)} ${v.caughtBy.length > 0 ? `by ${by}` : 'no case failed'}`);
    lines.push(`          ${v.mutant.description}`);
  }
  lines.push('', `mutation score: ${s.caught}/${s.variants.length} = ${(s.score * 100).toFixed(0)} %`);
  return lines.join('\n');
}
