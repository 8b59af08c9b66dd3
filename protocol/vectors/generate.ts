// `npm run vectors`: write every generated vector file to fixtures/vectors/. Output is a
// pure function of the code (fixed seeds), so re-running it on an unchanged tree changes
// nothing; protocol/vectors.test.ts fails when the committed files drift from the code.
// fixtures/vectors/rfc8032-ed25519.json is vendored from the RFC, not generated.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { allVectorFiles } from './all';

export const VECTOR_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures', 'vectors');

mkdirSync(VECTOR_DIR, { recursive: true });
for (const [name, text] of allVectorFiles()) {
  writeFileSync(join(VECTOR_DIR, name), text);
  const tests = (JSON.parse(text) as { numberOfTests: number }).numberOfTests;
  console.log(`${join('fixtures/vectors', name)}: ${tests} tests, ${text.length} bytes`);
}
