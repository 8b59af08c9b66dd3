// Requirement ids of protocol/SPEC.md and who cites them. Every MUST / MUST NOT in the
// SPEC carries an id `[R-AREA-n]`; vectors cite ids in their `requirements` field and tests
// name them in titles or comments. protocol/requirements.test.ts fails when a requirement
// is cited by nothing, a citation names no requirement, or a MUST has no id;
// `npm run requirements` prints the counts.

import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..');
export const SPEC_PATH = join(ROOT, 'protocol', 'SPEC.md');
export const VECTOR_DIR = join(ROOT, 'fixtures', 'vectors');

const DEFINITION = /\[(R-[A-Z]+-\d+)\]/g;
const CITATION = /\bR-[A-Z]+-\d+\b/g;

export interface Requirement {
  id: string;
  /** Top-level SPEC section the id is stated in, e.g. "§5" or "Appendix A". */
  section: string;
  line: number;
}

export interface SpecRequirements {
  requirements: Requirement[];
  /** Ids stated more than once. */
  duplicates: string[];
  /** Paragraphs with a MUST / MUST NOT and no id (first line number and text). */
  untagged: { line: number; text: string }[];
}

export function specRequirements(spec: string = readFileSync(SPEC_PATH, 'utf8')): SpecRequirements {
  const lines = spec.split('\n');
  const requirements: Requirement[] = [];
  const seen = new Set<string>();
  const duplicates: string[] = [];
  let section = 'preamble';
  lines.forEach((text, i) => {
    const h = /^## (\d+)\.|^## (Appendix [A-Z])|^## (Quick notes)/.exec(text);
    if (h) section = h[1] !== undefined ? `§${h[1]}` : (h[2] ?? h[3] ?? section);
    for (const m of text.matchAll(DEFINITION)) {
      const id = m[1] as string;
      if (seen.has(id)) duplicates.push(id);
      seen.add(id);
      requirements.push({ id, section, line: i + 1 });
    }
  });
  // A paragraph (blank-line separated block) that says MUST carries an id; the paragraphs
  // that only explain the convention are exempt.
  const untagged: { line: number; text: string }[] = [];
  let start = 0;
  for (let i = 0; i <= lines.length; i++) {
    if (i < lines.length && (lines[i] as string).trim() !== '') continue;
    const block = lines.slice(start, i).join('\n');
    if (/\bMUST\b/.test(block) && !/\[R-[A-Z]+-\d+\]/.test(block) && !/RFC 2119|Every MUST and MUST NOT/.test(block))
      untagged.push({ line: start + 1, text: block.slice(0, 160) });
    start = i + 1;
  }
  return { requirements, duplicates, untagged };
}

export interface Citation {
  id: string;
  /** Repository-relative file, and for a vector its tcId. */
  where: string;
}

function walk(dir: string, out: string[]): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.name.endsWith('.test.ts')) out.push(p);
  }
}

/** Every citation: `requirements` of every vector test, and ids named in test files. */
export function citations(): Citation[] {
  const out: Citation[] = [];
  for (const name of readdirSync(VECTOR_DIR).filter((f) => f.endsWith('.json')).sort()) {
    const f = JSON.parse(readFileSync(join(VECTOR_DIR, name), 'utf8')) as { testGroups: { tests: { tcId: number; requirements?: string[] }[] }[] };
    for (const g of f.testGroups) for (const t of g.tests) for (const id of t.requirements ?? []) out.push({ id, where: `fixtures/vectors/${name}#${t.tcId}` });
  }
  const tests: string[] = [];
  walk(ROOT, tests);
  for (const file of tests.sort()) {
    const rel = relative(ROOT, file);
    if (rel === 'protocol/requirements.test.ts') continue; // it checks the ids, it does not cite them
    for (const m of readFileSync(file, 'utf8').matchAll(CITATION)) out.push({ id: m[0], where: rel });
  }
  return out;
}

export interface RequirementReport {
  requirements: Requirement[];
  cited: Map<string, Citation[]>;
  uncited: Requirement[];
  unknown: Citation[];
  duplicates: string[];
  untagged: { line: number; text: string }[];
}

export function requirementReport(): RequirementReport {
  const spec = specRequirements();
  const known = new Set(spec.requirements.map((r) => r.id));
  const cited = new Map<string, Citation[]>();
  const unknown: Citation[] = [];
  for (const c of citations()) {
    if (!known.has(c.id)) unknown.push(c);
    else cited.set(c.id, [...(cited.get(c.id) ?? []), c]);
  }
  return {
    requirements: spec.requirements,
    cited,
    uncited: spec.requirements.filter((r) => !cited.has(r.id)),
    unknown,
    duplicates: spec.duplicates,
    untagged: spec.untagged,
  };
}

/** `npm run requirements`: counts, by section; a non-zero exit when the check would fail. */
export function main(): number {
  const r = requirementReport();
  const bySection = new Map<string, { total: number; cited: number; ids: string[] }>();
  for (const q of r.requirements) {
    const s = bySection.get(q.section) ?? { total: 0, cited: 0, ids: [] };
    s.total++;
    if (r.cited.has(q.id)) s.cited++;
    s.ids.push(q.id);
    bySection.set(q.section, s);
  }
  const vectorCitations = [...r.cited.values()].flat().filter((c) => c.where.startsWith('fixtures/')).length;
  const testCitations = [...r.cited.values()].flat().length - vectorCitations;
  console.log(`requirements: ${r.requirements.length}, cited: ${r.requirements.length - r.uncited.length} (${vectorCitations} citations from vectors, ${testCitations} from tests)`);
  for (const [section, s] of bySection) console.log(`  ${section.padEnd(12)} ${String(s.total).padStart(3)} requirements, ${String(s.cited).padStart(3)} cited  ${s.ids.join(' ')}`);
  for (const q of r.uncited) console.log(`uncited: ${q.id} (SPEC.md line ${q.line})`);
  for (const c of r.unknown) console.log(`unknown id cited: ${c.id} in ${c.where}`);
  for (const d of r.duplicates) console.log(`id stated twice: ${d}`);
  for (const u of r.untagged) console.log(`MUST without an id at SPEC.md line ${u.line}: ${u.text.split('\n')[0]}`);
  return r.uncited.length + r.unknown.length + r.duplicates.length + r.untagged.length === 0 ? 0 : 1;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main();
