// Public surface of authority/: the property model, per-lock signed tables, receipts,
// SQLite storage, the HTTP service and the CLI commands.
export * from './errors';
export * from './authority';
export { startAuthorityServer, type AuthorityServer, type AuthorityServerOptions } from './server';
export { registerAuthorityCommands } from './cli';
export { keyPathsFor, type KeyPaths } from './keystore';
export type { ScheduleWindowInput } from './validate';
