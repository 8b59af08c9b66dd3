// Every relative link in the repository's Markdown resolves to a file inside the
// repository: the docs must stand alone on a fresh clone.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function markdownFiles(dir: string, out: string[] = []): string[] {
  for (const name of fs.readdirSync(dir)) {
    if (name === 'node_modules' || name === '.git' || name === 'out' || name.startsWith('.')) continue;
    const p = path.join(dir, name);
    const st = fs.statSync(p);
    if (st.isDirectory()) markdownFiles(p, out);
    else if (name.endsWith('.md')) out.push(p);
  }
  return out;
}

/** `[text](target)` links, ignoring code spans and fenced blocks. */
function links(markdown: string): string[] {
  const prose = markdown.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
  return [...prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1] ?? '');
}

describe('documentation links', () => {
  const files = markdownFiles(ROOT);

  it('finds the repository documents', () => {
    expect(files.map((f) => path.relative(ROOT, f))).toEqual(expect.arrayContaining(['README.md', 'docs/DESIGN.md', 'protocol/SPEC.md']));
  });

  for (const file of files) {
    it(`${path.relative(ROOT, file)}: every relative link resolves inside the repository`, () => {
      const broken: string[] = [];
      for (const target of links(fs.readFileSync(file, 'utf8'))) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue; // URL or same-page anchor
        const resolved = path.resolve(path.dirname(file), decodeURIComponent(target.split('#')[0] ?? ''));
        const inside = resolved === ROOT || resolved.startsWith(ROOT + path.sep);
        if (!inside || !fs.existsSync(resolved)) broken.push(target);
      }
      expect(broken).toEqual([]);
    });
  }
});
