// Loading a scenario from a file or from text (YAML or JSON), with issues located by
// path and, for YAML/JSON text, by line.

import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import type { Scenario } from './schema';
import { ScenarioError, validateScenario, type ScenarioIssue } from './validate';

export type ScenarioFormat = 'yaml' | 'json';

/** Source text limit: scenarios are small; a huge file is a mistake, not a scenario. */
export const MAX_SCENARIO_BYTES = 1 << 20;

/**
 * Load and validate a scenario.
 * - `loadScenario('fixtures/scenarios/x.yaml')` reads a file (format from the extension).
 * - `loadScenario(text, 'yaml' | 'json')` parses text.
 * Throws ScenarioError listing every problem, each with a path and, where known, a line.
 */
export function loadScenario(pathOrText: string, format?: ScenarioFormat): Scenario {
  let text: string;
  let file: string | undefined;
  let fmt: ScenarioFormat;
  if (format !== undefined) {
    text = pathOrText;
    fmt = format;
  } else {
    file = pathOrText;
    if (!/\.(ya?ml|json)$/i.test(file)) throw new ScenarioError([{ path: '', message: 'scenario files end in .yaml, .yml or .json (or pass text with a format)' }], file);
    try {
      const buf = readFileSync(file);
      if (buf.length > MAX_SCENARIO_BYTES) throw new ScenarioError([{ path: '', message: `file is ${buf.length} bytes; the limit is ${MAX_SCENARIO_BYTES}` }], file);
      text = buf.toString('utf8');
    } catch (e) {
      if (e instanceof ScenarioError) throw e;
      throw new ScenarioError([{ path: '', message: `cannot read: ${(e as Error).message}` }], file);
    }
    fmt = /\.json$/i.test(file) ? 'json' : 'yaml';
  }
  return parseScenarioText(text, fmt, file);
}

export function parseScenarioText(text: string, format: ScenarioFormat, file?: string): Scenario {
  if (text.length > MAX_SCENARIO_BYTES) throw new ScenarioError([{ path: '', message: `text is ${text.length} characters; the limit is ${MAX_SCENARIO_BYTES}` }], file);
  const lineCounter = new LineCounter();
  let doc: Document.Parsed | undefined;
  let value: unknown;
  if (format === 'json') {
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new ScenarioError([{ path: '', message: `not valid JSON: ${(e as Error).message}` }], file);
    }
    // JSON is YAML: parse again only to map paths to lines for error messages.
    doc = parseDocument(text, { lineCounter, uniqueKeys: true });
  } else {
    doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: true });
    if (doc.errors.length > 0) {
      const issues = doc.errors.map((err) => {
        const issue: ScenarioIssue = { path: '', message: `YAML: ${err.message.split('\n')[0] ?? err.message}` };
        const line = err.linePos?.[0]?.line;
        if (line !== undefined) issue.line = line;
        return issue;
      });
      throw new ScenarioError(issues, file);
    }
    value = doc.toJS({ maxAliasCount: 100 });
  }
  try {
    return validateScenario(value, file);
  } catch (e) {
    if (e instanceof ScenarioError && doc !== undefined && doc.errors.length === 0) throw new ScenarioError(locate(e.issues, doc, lineCounter), file);
    throw e;
  }
}

/** `steps[3].unlock.phone` → ['steps', 3, 'unlock', 'phone'] */
export function pathSegments(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : (m[1] as string));
  return out;
}

function locate(issues: readonly ScenarioIssue[], doc: Document.Parsed, lc: LineCounter): ScenarioIssue[] {
  return issues.map((issue) => {
    let segs = pathSegments(issue.path);
    // The deepest existing node: an unknown or missing field points at its parent.
    while (segs.length > 0) {
      const node = doc.getIn(segs, true);
      if (isNode(node) && node.range !== undefined && node.range !== null) {
        return { ...issue, line: lc.linePos(node.range[0]).line };
      }
      // A key with a scalar value: getIn returns the value, which is a node when keepScalar.
      segs = segs.slice(0, -1);
    }
    return issue;
  });
}
