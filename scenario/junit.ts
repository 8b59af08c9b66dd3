// JUnit XML for CI: one <testsuite> per scenario run, one <testcase> per expectation (a
// failed one carries <failure> with expected and actual), and the replay command and output
// files in <system-out>, so a red CI job says how to reproduce it. The format is the common
// subset Jenkins, GitLab and GitHub test reporters read.

import type { RunResult } from './runner';

/** Escapes text for XML content and attribute values; drops characters XML 1.0 forbids. */
export function xmlEscape(text: string): string {
  return text
    .replace(/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

const attrs = (a: Record<string, string | number>): string =>
  Object.entries(a)
    .map(([k, v]) => ` ${k}="${xmlEscape(String(v))}"`)
    .join('');

export interface JunitSuiteInput {
  /** The scenario file as given on the command line (the test class name). */
  file: string;
  /** Wall time of the run in seconds (informational). */
  seconds: number;
  /** ISO time the run started. */
  timestamp: string;
}

/** A JUnit document for one scenario run. */
export function junitForRun(r: RunResult, input: JunitSuiteInput): string {
  const failures = r.expectations.filter((e) => !e.ok).length;
  const classname = input.file.replace(/\.(ya?ml|json)$/i, '');
  const cases = r.expectations.map((e) => {
    const head = `    <testcase${attrs({ name: `steps[${e.step}] ${e.description}`, classname, time: 0 })}`;
    if (e.ok) return `${head}/>`;
    const message = `expected ${e.expected}, got ${e.actual}`;
    return `${head}>\n      <failure${attrs({ message, type: 'expectation' })}>${xmlEscape(`expected: ${e.expected}\nactual:   ${e.actual}\nreplay:   ${r.replayCommand}`)}</failure>\n    </testcase>`;
  });
  const out = [`replay: ${r.replayCommand}`, `seed: ${String(r.seed)}`, `transport: ${r.transport}`, `trace hash: ${r.traceHash}`, `trace: ${r.files.trace}`, `timeline: ${r.files.timeline}`, ...r.files.captures.map((c) => `capture: ${c}`)].join('\n');
  const counts = { tests: r.expectations.length, failures, errors: 0, skipped: 0 };
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites${attrs({ name: 'locksync scenarios', ...counts, time: input.seconds.toFixed(3) })}>`,
    `  <testsuite${attrs({ name: r.scenario, ...counts, time: input.seconds.toFixed(3), timestamp: input.timestamp })}>`,
    '    <properties>',
    ...Object.entries({ file: input.file, seed: String(r.seed), transport: r.transport, traceHash: r.traceHash }).map(([name, value]) => `      <property${attrs({ name, value })}/>`),
    '    </properties>',
    ...cases,
    `    <system-out>${xmlEscape(out)}</system-out>`,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}

/** A JUnit document for a scenario that could not run (invalid file): one errored test case. */
export function junitForInvalid(file: string, message: string, timestamp: string): string {
  const counts = { tests: 1, failures: 0, errors: 1, skipped: 0 };
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites${attrs({ name: 'locksync scenarios', ...counts, time: '0.000' })}>`,
    `  <testsuite${attrs({ name: file, ...counts, time: '0.000', timestamp })}>`,
    `    <testcase${attrs({ name: 'load and validate', classname: file.replace(/\.(ya?ml|json)$/i, ''), time: 0 })}>`,
    `      <error${attrs({ message: message.split('\n')[0] ?? message, type: 'invalid scenario' })}>${xmlEscape(message)}</error>`,
    '    </testcase>',
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}
