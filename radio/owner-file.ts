// Exclusive ownership of a directory by one live process, through an owner file created
// with O_EXCL. Used by the radio (its --dir: pty links and control socket) and by the lock
// (its state dir: flash image and control socket); it has no radio dependencies.
//
// Liveness is the recorded pid AND that process's start time (Linux: field 22 of
// /proc/PID/stat, in clock ticks since boot), so a pid reused by an unrelated process after
// the owner died does not count as the owner. Where /proc is missing the caller's `probe`
// decides (e.g. "does the owner's control socket answer?").
//
// Creating the file is atomic (O_EXCL): of two processes starting on a free directory one
// wins. Taking over a dead owner's file is remove-then-create, checked by reading the file
// back; two processes that find the same stale file within the same few milliseconds can
// still both win (the later remove hits the earlier winner's fresh file) — a window we
// accept (Node's fs has no flock).
import fs from 'node:fs';

export interface OwnerRecord {
  pid: number;
  /** /proc start time of `pid` (clock ticks since boot), null where /proc is absent. */
  startTime: string | null;
  startedAt: string;
  /** What owns the directory ("radio", "lock"). */
  kind: string;
  /** Unix socket the owner answers on, when it has one. */
  control?: string;
}

/** The directory is owned by another live process. */
export class DirInUseError extends Error {
  override readonly name = 'DirInUseError';
  constructor(
    readonly dir: string,
    readonly owner: OwnerRecord,
  ) {
    super(`${dir} is in use by ${owner.kind} pid ${owner.pid} (since ${owner.startedAt})`);
  }
}

/** Start time of a live process, or null (no /proc) / undefined (no such process). */
export function processStartTime(pid: number): string | null | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null; // field 22 overall
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return fs.existsSync('/proc/self/stat') ? undefined : null;
    return null;
  }
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function readOwner(file: string): OwnerRecord | undefined {
  try {
    const j = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<OwnerRecord>;
    if (typeof j.pid !== 'number' || !Number.isInteger(j.pid) || j.pid <= 0) return undefined;
    return { pid: j.pid, startTime: typeof j.startTime === 'string' ? j.startTime : null, startedAt: String(j.startedAt ?? '?'), kind: String(j.kind ?? '?'), ...(typeof j.control === 'string' ? { control: j.control } : {}) };
  } catch {
    return undefined;
  }
}

/**
 * Whether the recorded owner still runs. A pid whose start time differs is someone else;
 * without /proc, `probe` (when given) decides for a pid that exists.
 */
export async function ownerAlive(owner: OwnerRecord, probe?: (owner: OwnerRecord) => Promise<boolean>): Promise<boolean> {
  if (owner.pid === process.pid) return true;
  if (!pidExists(owner.pid)) return false;
  const now = processStartTime(owner.pid);
  if (now === undefined) return false;
  if (now !== null && owner.startTime !== null) return now === owner.startTime;
  return probe ? probe(owner) : true;
}

export interface Ownership {
  readonly file: string;
  readonly record: OwnerRecord;
  /** Removes the owner file if it is still ours. */
  release(): void;
}

/**
 * Makes this process the owner of `dir` (owner file `dir/name`). A live owner → DirInUseError.
 * A dead owner's file → `cleanStale(owner)` runs (remove its leftovers), then we take over.
 */
export async function acquireOwnership(
  dir: string,
  opts: { name?: string; kind: string; control?: string; probe?: (owner: OwnerRecord) => Promise<boolean>; cleanStale?: (owner: OwnerRecord | undefined) => void },
): Promise<Ownership> {
  const file = `${dir}/${opts.name ?? '.owner'}`;
  const record: OwnerRecord = {
    pid: process.pid,
    startTime: processStartTime(process.pid) ?? null,
    startedAt: new Date().toISOString(),
    kind: opts.kind,
    ...(opts.control !== undefined ? { control: opts.control } : {}),
  };
  const text = `${JSON.stringify(record)}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx', 0o600);
      try {
        fs.writeSync(fd, text);
      } finally {
        fs.closeSync(fd);
      }
      if (fs.readFileSync(file, 'utf8') !== text) continue; // lost a take-over race: look again
      let released = false;
      return {
        file,
        record,
        release: () => {
          if (released) return;
          released = true;
          try {
            if (fs.readFileSync(file, 'utf8') === text) fs.unlinkSync(file);
          } catch {
            // already gone
          }
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = readOwner(file);
    // A file that is not (yet) a record may be an owner mid-write: give it a moment.
    if (owner === undefined && attempt === 0) {
      await new Promise((r) => setTimeout(r, 50));
      if (readOwner(file) !== undefined) continue;
    }
    if (owner !== undefined && (await ownerAlive(owner, opts.probe))) throw new DirInUseError(dir, owner);
    opts.cleanStale?.(owner);
    try {
      fs.unlinkSync(file);
    } catch {
      // someone else cleaned it
    }
  }
  const owner = readOwner(file);
  if (owner) throw new DirInUseError(dir, owner);
  throw new Error(`could not take ownership of ${dir}: ${file} keeps changing`);
}
