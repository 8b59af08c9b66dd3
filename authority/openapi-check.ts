// Test support: checks a real HTTP exchange with the authority against the OpenAPI document
// (openapi-backend's validator): the request must match a described operation and validate
// against its parameters and body schema; the response body against the schema of its status
// (or the `default` error schema). Used by authority/openapi.test.ts and authority/http.test.ts.
import OpenAPIBackend from 'openapi-backend';
import { openApiDocument } from './openapi';

export interface Exchange {
  method: string;
  /** Path with query string, as sent. */
  url: string;
  headers?: Record<string, string>;
  body?: unknown;
  status: number;
  response: unknown;
}

export type ExchangeChecker = (ex: Exchange) => string[];

/** Problems with an exchange ([] = it conforms), labelled with the method and path. */
export async function openApiChecker(): Promise<ExchangeChecker> {
  const api = new OpenAPIBackend({ definition: structuredClone(openApiDocument()) as never, strict: true, validate: true, quick: false });
  await api.init();
  return (ex) => {
    const u = new URL(ex.url, 'http://authority');
    const query: Record<string, string> = {};
    for (const [k, v] of u.searchParams) query[k] = v;
    const req = { method: ex.method.toLowerCase(), path: u.pathname, query, headers: { 'content-type': 'application/json', ...(ex.headers ?? {}) }, body: ex.body ?? {} };
    const label = `${ex.method} ${u.pathname} → ${ex.status}`;
    const op = api.matchOperation(req as never);
    if (op === undefined) {
      // An undescribed route or method is answered 404 NOT_FOUND / 405 METHOD_NOT_ALLOWED.
      const code = (ex.response as { error?: { code?: unknown } } | null)?.error?.code;
      if ((ex.status === 404 && code === 'NOT_FOUND') || (ex.status === 405 && code === 'METHOD_NOT_ALLOWED')) return [];
      return [`${label}: no operation in the OpenAPI document`];
    }
    const problems: string[] = [];
    // A refused request (4xx) may be malformed on purpose; its answer must still be described.
    if (ex.status < 400) {
      const vr = api.validateRequest(req as never, op);
      for (const e of vr.errors ?? []) problems.push(`${label}: request ${e.instancePath || '/'} ${e.message ?? ''}`.trim());
    }
    const vs = api.validateResponse(ex.response, op, ex.status);
    for (const e of vs.errors ?? []) problems.push(`${label}: response ${e.instancePath || '/'} ${e.message ?? ''}`.trim());
    return problems;
  };
}
