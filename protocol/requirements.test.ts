// Every MUST / MUST NOT of SPEC.md has an id, and every id is checked by something: a vector
// citing it in `requirements`, or a test naming it. Nothing may cite an id the SPEC does not
// state. (`npm run requirements` prints the same report with counts by section.)
import { describe, expect, it } from 'vitest';
import { requirementReport, specRequirements } from '../tools/requirements';

describe('SPEC.md requirement ids', () => {
  const r = requirementReport();

  it('states requirements, each id once', () => {
    expect(r.requirements.length).toBeGreaterThanOrEqual(40);
    expect(r.duplicates).toEqual([]);
  });

  it('has an id on every paragraph that says MUST or MUST NOT', () => {
    expect(r.untagged).toEqual([]);
  });

  it('lists no requirement that nothing cites', () => {
    expect(r.uncited.map((q) => `${q.id} (SPEC.md line ${q.line})`)).toEqual([]);
  });

  it('lists no citation of an id the SPEC does not define', () => {
    expect(r.unknown.map((c) => `${c.id} in ${c.where}`)).toEqual([]);
  });

  it('the checks can fail: an untagged MUST, a duplicate id are found', () => {
    const probe = specRequirements('## 1. A\n\nA lock MUST do it.\n\nA lock MUST do that [R-X-1].\n\nAgain [R-X-1].\n');
    expect(probe.untagged.map((u) => u.line)).toEqual([3]);
    expect(probe.duplicates).toEqual(['R-X-1']);
    expect(probe.requirements.map((q) => q.section)).toEqual(['§1', '§1']);
  });
});
