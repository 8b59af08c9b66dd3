import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // End-to-end tests spawn ptys and real host stacks; keep the pool small on 2-core CI.
    maxWorkers: 2,
  },
});
