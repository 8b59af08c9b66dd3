// Entry of the authority's worker thread (authority-thread.ts). The world's code is
// TypeScript run without a build step: register tsx's loader here (a worker started from
// vitest does not inherit one), then serve.
import { register } from 'tsx/esm/api';

register();
await import('./authority-thread-serve.ts');
