// SPEC.md's hex examples must be real: every hex string in the document (outside the
// framing chapter, whose examples framing.test.ts pins) occurs in a generated vector file,
// so regenerating the vectors after a wire change flags the stale SPEC text too.
import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const spec = readFileSync(fileURLToPath(new URL('./SPEC.md', import.meta.url)), 'utf8');
const dir = fileURLToPath(new URL('../fixtures/vectors/', import.meta.url));
const vectors = readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => readFileSync(dir + f, 'utf8')).join('\n');

describe('SPEC.md', () => {
  const core = spec.slice(0, spec.indexOf('### 13.2 Framing'));
  const hexes = [...new Set(core.match(/(?<![0-9a-f])[0-9a-f]{10,}(?![0-9a-f])/g) ?? [])];
  it('has hex examples', () => expect(hexes.length).toBeGreaterThan(30));
  for (const h of hexes) {
    it(`example ${h.slice(0, 24)}… appears in fixtures/vectors`, () => expect(vectors.includes(h)).toBe(true));
  }
  it('has the framing chapter and the flash-format pointer', () => {
    expect(spec).toMatch(/### 13\.2 Framing[\s\S]*#### Quick notes/);
    expect(spec).toMatch(/## 16\. Flash format[\s\S]*firmware-sim\/FLASH\.md/);
  });
});
