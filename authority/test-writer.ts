// Test helper process: opens a property database and performs N manager operations as
// fast as it can, so the concurrency test can run several writers against one file.
// Usage: node --import tsx authority/test-writer.ts DB LABEL N KEY_ID [KEY_DIR]
import { Authority } from './authority';

const [dbPath, label, n, keyId, keyDir] = process.argv.slice(2);
if (dbPath === undefined || label === undefined || n === undefined || keyId === undefined) {
  process.stderr.write('usage: test-writer DB LABEL N KEY_ID\n');
  process.exit(2);
}
const a = Authority.open({ dbPath, ...(keyDir !== undefined ? { keyDir } : {}) });
const versions: number[] = [];
for (let i = 0; i < Number(n); i++) {
  // Read the version this writer's own change produced under the same write lock.
  const v = a.db
    .transaction(() => {
      const u = a.addUser({ name: `${label}-${i}` });
      a.assignKey(u.id, Number(keyId));
      return a.currentVersion('lk-0001');
    })
    .immediate();
  versions.push(v);
}
a.close();
process.stdout.write(JSON.stringify({ label, versions }) + '\n');
