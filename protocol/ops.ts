// Delta operations and the one pure `applyOps` that both the lock and the authority run,
// so what the authority signs and what the lock computes can never diverge.
//
// Wire form (SPEC.md §5.2): each op is a CBOR array whose first element is its code.
//   [1, entry]            put: insert or replace by credId
//   [2, credId]           remove one credential (and, transitively, guests chained to it)
//   [3, partnerId]        remove every credential of a partner (cascading)
//   [4, keyId]            remove every credential of a Key and the Key's door policy (cascading)
//   [5, keyPolicy]        set a Key's door policy (doorcodes on/off, schedule)
//   [6, lockPolicy]       set the lock-wide policy

import { type CborValue, bytesEqual, encode } from './cbor';
import { ProtocolError } from './errors';
import { expectTuple, expectUint } from './schema';
import {
  type Entry,
  type KeyPolicy,
  type LockPolicy,
  type Table,
  LIMITS,
  encodeEntry,
  entryFromCbor,
  entryToCbor,
  keyPolicyFromCbor,
  keyPolicyToCbor,
  lockPolicyFromCbor,
  lockPolicyToCbor,
  validateEntry,
  validateLockPolicy,
} from './table';

export type Op =
  | { op: 'put'; entry: Entry }
  | { op: 'remove'; credId: number }
  | { op: 'removePartner'; partnerId: number }
  | { op: 'removeKey'; keyId: number }
  | { op: 'setKeyPolicy'; policy: KeyPolicy }
  | { op: 'setLockPolicy'; policy: LockPolicy };

export const OP_CODES = {
  put: 1,
  remove: 2,
  removePartner: 3,
  removeKey: 4,
  setKeyPolicy: 5,
  setLockPolicy: 6,
} as const;

export function opToCbor(o: Op): CborValue {
  switch (o.op) {
    case 'put':
      return [OP_CODES.put, entryToCbor(o.entry)];
    case 'remove':
      return [OP_CODES.remove, o.credId];
    case 'removePartner':
      return [OP_CODES.removePartner, o.partnerId];
    case 'removeKey':
      return [OP_CODES.removeKey, o.keyId];
    case 'setKeyPolicy':
      return [OP_CODES.setKeyPolicy, keyPolicyToCbor(o.policy)];
    case 'setLockPolicy':
      return [OP_CODES.setLockPolicy, lockPolicyToCbor(o.policy)];
  }
}

export function opFromCbor(v: CborValue, what = 'op'): Op {
  const arr = expectTuple(v, what, 2);
  const code = expectUint(arr[0], `${what}[0]`); // registry value: unknown (any size) is MALFORMED below
  const arg = arr[1] as CborValue;
  switch (code) {
    case OP_CODES.put:
      return { op: 'put', entry: entryFromCbor(arg, `${what}.entry`) };
    case OP_CODES.remove:
      return { op: 'remove', credId: credIdFrom(arg, `${what}.credId`) };
    case OP_CODES.removePartner:
      return { op: 'removePartner', partnerId: expectUint(arg, `${what}.partnerId`, LIMITS.maxIds) };
    case OP_CODES.removeKey:
      return { op: 'removeKey', keyId: expectUint(arg, `${what}.keyId`, LIMITS.maxIds) };
    case OP_CODES.setKeyPolicy:
      return { op: 'setKeyPolicy', policy: keyPolicyFromCbor(arg, `${what}.policy`) };
    case OP_CODES.setLockPolicy:
      return { op: 'setLockPolicy', policy: lockPolicyFromCbor(arg, `${what}.policy`) };
    default:
      throw new ProtocolError('MALFORMED', `${what}: unknown op code ${code}`);
  }
}

/** A credId on the wire: 1..2^32-1 (0 is reserved: MALFORMED, as below any stated minimum). */
export function credIdFrom(v: CborValue | undefined, what: string): number {
  const id = expectUint(v, what, LIMITS.maxIds);
  if (id === 0) throw new ProtocolError('MALFORMED', `${what}: credId 0 is reserved`);
  return id;
}

/**
 * Apply ops to a copy of `base`. Returns the new table, or throws ProtocolError
 * ('INVALID_OP' | 'OVER_LIMIT') — in which case `base` is untouched (it is never mutated).
 */
export function applyOps(base: Table, ops: readonly Op[]): Table {
  if (ops.length > LIMITS.maxOpsPerDelta) throw new ProtocolError('OVER_LIMIT', `${ops.length} ops > ${LIMITS.maxOpsPerDelta}`);
  const entries = new Map(base.entries);
  const keyPolicies = new Map(base.keyPolicies);
  let policy = base.policy;
  const removed: number[] = [];
  // Partner- and Key-wide removals look their credentials up in an index built on the
  // first such op, so a delta of 20,000 of them costs one pass over the table, not one
  // pass per op (a lock-side availability bound: SPEC §5.2).
  let groups: GroupIndex | undefined;

  for (const [i, o] of ops.entries()) {
    switch (o.op) {
      case 'put': {
        validateEntry(o.entry, `op[${i}].entry`);
        const old = entries.get(o.entry.credId);
        if (groups !== undefined) {
          if (old !== undefined) groups.remove(old);
          groups.add(o.entry);
        }
        entries.set(o.entry.credId, o.entry);
        break;
      }
      case 'remove': {
        const old = entries.get(o.credId);
        if (old === undefined) throw new ProtocolError('INVALID_OP', `op[${i}]: remove of absent credential ${o.credId}`);
        groups?.remove(old);
        entries.delete(o.credId);
        removed.push(o.credId);
        break;
      }
      case 'removePartner':
        groups ??= new GroupIndex(entries);
        for (const id of groups.takePartner(o.partnerId)) (entries.delete(id), removed.push(id));
        break;
      case 'removeKey':
        groups ??= new GroupIndex(entries);
        for (const id of groups.takeKey(o.keyId)) (entries.delete(id), removed.push(id));
        keyPolicies.delete(o.keyId);
        break;
      case 'setKeyPolicy':
        keyPolicies.set(o.policy.keyId, o.policy);
        break;
      case 'setLockPolicy':
        validateLockPolicy(o.policy, `op[${i}].policy`);
        policy = o.policy;
        break;
    }
  }
  if (removed.length > 0) cascadeRemovals(entries, removed);
  if (entries.size > LIMITS.maxEntries) throw new ProtocolError('OVER_LIMIT', `${entries.size} entries > ${LIMITS.maxEntries}`);
  if (keyPolicies.size > LIMITS.maxKeyPolicies) throw new ProtocolError('OVER_LIMIT', `${keyPolicies.size} key policies > ${LIMITS.maxKeyPolicies}`);
  // A put may name a parent that a later op removed, or that never existed.
  for (const e of entries.values()) {
    if (e.parent !== undefined && !entries.has(e.parent))
      throw new ProtocolError('INVALID_OP', `credential ${e.credId} names missing parent ${e.parent}`);
  }
  return { entries, keyPolicies, policy: { ...policy } };
}

/**
 * The credentials of each partner and each Key, kept in step with the working copy of the
 * entries while ops apply. Removal order within a group does not matter: the result of
 * applyOps is the set of entries left, and the cascade runs on the set of removals.
 */
class GroupIndex {
  private readonly byPartner = new Map<number, Set<number>>();
  private readonly byKey = new Map<number, Set<number>>();
  private readonly entryOf = new Map<number, Entry>();

  constructor(entries: ReadonlyMap<number, Entry>) {
    for (const e of entries.values()) this.add(e);
  }

  add(e: Entry): void {
    this.entryOf.set(e.credId, e);
    if (e.partnerId !== undefined) GroupIndex.member(this.byPartner, e.partnerId).add(e.credId);
    if (e.keyId !== undefined) GroupIndex.member(this.byKey, e.keyId).add(e.credId);
  }

  remove(e: Entry): void {
    this.entryOf.delete(e.credId);
    if (e.partnerId !== undefined) this.byPartner.get(e.partnerId)?.delete(e.credId);
    if (e.keyId !== undefined) this.byKey.get(e.keyId)?.delete(e.credId);
  }

  /** Every credential of partner `id`, dropped from the index. */
  takePartner(id: number): number[] {
    return this.take(this.byPartner, id);
  }

  /** Every credential of Key `id`, dropped from the index. */
  takeKey(id: number): number[] {
    return this.take(this.byKey, id);
  }

  private take(groups: Map<number, Set<number>>, id: number): number[] {
    const members = groups.get(id);
    if (members === undefined) return [];
    const ids = [...members];
    for (const credId of ids) {
      const e = this.entryOf.get(credId);
      if (e !== undefined) this.remove(e);
    }
    groups.delete(id);
    return ids;
  }

  private static member(groups: Map<number, Set<number>>, id: number): Set<number> {
    let set = groups.get(id);
    if (set === undefined) groups.set(id, (set = new Set()));
    return set;
  }
}

/**
 * Guests lose access when the credential they were shared from goes. After all ops, remove
 * (to a fixed point) every entry whose parent is a credential this delta removed and that
 * is still absent. Only removals seed the cascade: a put naming a parent that never existed
 * is not silently dropped but refused by the parent check that follows.
 */
function cascadeRemovals(entries: Map<number, Entry>, removed: readonly number[]): void {
  const children = new Map<number, number[]>();
  for (const e of entries.values()) {
    if (e.parent === undefined) continue;
    const list = children.get(e.parent);
    if (list) list.push(e.credId);
    else children.set(e.parent, [e.credId]);
  }
  const queue: number[] = [];
  for (const id of new Set(removed)) if (!entries.has(id)) queue.push(id);
  while (queue.length > 0) {
    const gone = queue.pop() as number;
    for (const child of children.get(gone) ?? []) {
      if (entries.delete(child)) queue.push(child);
    }
  }
}

/**
 * The ops that turn `from` into `to`, using the compact partner-wide and Key-wide
 * removals when every credential of that partner/Key goes, and leaving cascades implicit.
 * The authority uses it to build deltas; applyOps(from, diffTables(from, to)) equals `to`.
 */
export function diffTables(from: Table, to: Table): Op[] {
  const compact = diffTablesWith(from, to, true);
  // Leaving cascades implicit is only right when the cascade at the end of the delta removes
  // exactly the credentials `to` lacks (a re-parented ancestor can keep a guest alive).
  // Check by applying; otherwise spell every removal out.
  try {
    if (sameEntries(applyOps(from, compact), to)) return compact;
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
  }
  return diffTablesWith(from, to, false);
}

function sameEntries(a: Table, b: Table): boolean {
  if (a.entries.size !== b.entries.size) return false;
  for (const [id, e] of a.entries) {
    const o = b.entries.get(id);
    if (o === undefined || (o !== e && !bytesEqual(encodeEntry(o), encodeEntry(e)))) return false;
  }
  return true;
}

function diffTablesWith(from: Table, to: Table, implicitCascade: boolean): Op[] {
  const ops: Op[] = [];
  const removedIds = new Set<number>();
  for (const id of from.entries.keys()) if (!to.entries.has(id)) removedIds.add(id);

  // Partner- and Key-wide removals: when none of that partner's/Key's credentials survive.
  const survivingPartners = new Set<number>();
  const survivingKeys = new Set<number>();
  for (const e of to.entries.values()) {
    if (e.partnerId !== undefined) survivingPartners.add(e.partnerId);
    if (e.keyId !== undefined) survivingKeys.add(e.keyId);
  }
  const covered = new Set<number>();
  const partnerRemovals = new Set<number>();
  const keyRemovals = new Set<number>();
  for (const id of removedIds) {
    const e = from.entries.get(id) as Entry;
    if (e.partnerId !== undefined && !survivingPartners.has(e.partnerId)) partnerRemovals.add(e.partnerId);
    else if (e.keyId !== undefined && !survivingKeys.has(e.keyId) && !to.keyPolicies.has(e.keyId)) keyRemovals.add(e.keyId);
  }
  // A Key's door policy can only leave the table through removeKey, which needs the Key
  // to have no surviving credentials here.
  for (const k of from.keyPolicies.keys()) {
    if (to.keyPolicies.has(k)) continue;
    if (survivingKeys.has(k)) throw new ProtocolError('INVALID_OP', `Key ${k} loses its door policy but keeps credentials`);
    keyRemovals.add(k);
  }
  for (const p of [...partnerRemovals].sort((a, b) => a - b)) {
    ops.push({ op: 'removePartner', partnerId: p });
    for (const e of from.entries.values()) if (e.partnerId === p) covered.add(e.credId);
  }
  for (const k of [...keyRemovals].sort((a, b) => a - b)) {
    ops.push({ op: 'removeKey', keyId: k });
    for (const e of from.entries.values()) if (e.keyId === k) covered.add(e.credId);
  }
  // Cascade: removing a parent removes its (transitive) guests; leave those implicit.
  const parentGone = (e: Entry): boolean => {
    let p = e.parent;
    const seen = new Set<number>();
    while (p !== undefined && !seen.has(p)) {
      seen.add(p);
      if (removedIds.has(p)) return true;
      p = from.entries.get(p)?.parent;
    }
    return false;
  };
  for (const id of [...removedIds].sort((a, b) => a - b)) {
    if (covered.has(id)) continue;
    const e = from.entries.get(id) as Entry;
    if (implicitCascade && parentGone(e)) continue;
    ops.push({ op: 'remove', credId: id });
  }
  for (const [k, p] of [...to.keyPolicies].sort((a, b) => a[0] - b[0])) {
    const old = from.keyPolicies.get(k);
    if (old === undefined || !sameCbor(keyPolicyToCbor(old), keyPolicyToCbor(p))) ops.push({ op: 'setKeyPolicy', policy: p });
  }
  if (!sameCbor(lockPolicyToCbor(from.policy), lockPolicyToCbor(to.policy))) ops.push({ op: 'setLockPolicy', policy: to.policy });
  for (const e of [...to.entries.values()].sort((a, b) => a.credId - b.credId)) {
    const old = from.entries.get(e.credId);
    if (old === undefined || !sameCbor(entryToCbor(old), entryToCbor(e))) ops.push({ op: 'put', entry: e });
  }
  return ops;
}

function sameCbor(a: CborValue, b: CborValue): boolean {
  return bytesEqual(encode(a), encode(b));
}
