// A built-in module of the runtime, when there is one: process.getBuiltinModule (Node ≥
// 20.16) rather than an import, so protocol/ still loads where the module does not exist
// (a browser, an MCU JavaScript engine). The native Ed25519 and SHA-256 backends use it.

export function runtimeBuiltin<T>(id: string): T | undefined {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  return proc?.getBuiltinModule?.(id) as T | undefined;
}
