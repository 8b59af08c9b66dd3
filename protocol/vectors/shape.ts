// Test-vector files follow the shape of Project Wycheproof: one JSON file per topic,
// groups of tests, each with a tcId, a comment, flags, hex inputs and either the
// expected output or the expected error code (from protocol/errors.ts).

export type VectorResult = 'valid' | 'invalid';

export interface VectorTest {
  tcId: number;
  comment: string;
  flags: string[];
  result: VectorResult;
  /** Inputs and outputs as lowercase hex strings or plain JSON values. */
  [field: string]: unknown;
}

export interface VectorGroup {
  type: string;
  /** Group-wide inputs (keys, lock id, MTU, …). */
  [field: string]: unknown;
  tests: VectorTest[];
}

export interface VectorFile {
  algorithm: string;
  generatorVersion: string;
  header: string[];
  notes: Record<string, string>;
  numberOfTests: number;
  testGroups: VectorGroup[];
}

export function vectorFile(
  algorithm: string,
  header: string[],
  notes: Record<string, string>,
  testGroups: VectorGroup[],
): VectorFile {
  let tcId = 1;
  for (const g of testGroups) for (const t of g.tests) t.tcId = tcId++;
  return { algorithm, generatorVersion: '1', header, notes, numberOfTests: tcId - 1, testGroups };
}

// Vectors spell bytes as lowercase hex: the same helpers as everywhere else.
export { toHex as hex, fromHex as unhex } from '../crypto';
