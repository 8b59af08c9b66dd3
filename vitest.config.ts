import { defineConfig } from 'vitest/config';

// The authority suites run a second time against PostgreSQL when a server is given
// (LOCKSYNC_TEST_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/postgres; .ci/run starts
// one). Without it they run on SQLite only, and the PostgreSQL runs are skipped with a notice.
const postgresUrl = process.env.LOCKSYNC_TEST_POSTGRES_URL;
const POSTGRES_SUITES = ['authority/model.test.ts', 'authority/sync.test.ts', 'authority/concurrency.test.ts', 'authority/time.test.ts', 'authority/http.test.ts', 'authority/postgres.test.ts'];

if (postgresUrl === undefined || postgresUrl === '') {
  process.stderr.write('notice: PostgreSQL runs of the authority suites skipped: set LOCKSYNC_TEST_POSTGRES_URL=postgres://… to run them (.ci/run starts a server when it can)\n');
}

export default defineConfig({
  test: {
    exclude: ['node_modules/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // End-to-end tests spawn ptys and real host stacks; keep the pool small on 2-core CI.
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: {
          name: 'default',
          include: ['**/*.test.ts'],
          // The default project is SQLite: the PostgreSQL URL reaches only the project below.
          env: { LOCKSYNC_TEST_POSTGRES_URL: '' },
        },
      },
      ...(postgresUrl !== undefined && postgresUrl !== ''
        ? [{ extends: true as const, test: { name: 'authority-postgres', include: POSTGRES_SUITES, env: { LOCKSYNC_TEST_POSTGRES_URL: postgresUrl } } }]
        : []),
    ],
  },
});
