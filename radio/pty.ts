// Pseudo-terminal transport: each controller's host side is the pty slave, reachable
// through a stable symlink. Uses the prebuilt @lydell/node-pty native module (loaded lazily)
// so no system package is needed.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import tty from 'node:tty';
import type { HostPort } from './controller';

interface NativePty {
  open(cols: number, rows: number): { master: number; slave: number; pty: string };
}

export class PtyUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`cannot open a pseudo-terminal: install @lydell/node-pty (npm i @lydell/node-pty) — ${String((cause as Error)?.message ?? cause)}`);
    this.name = 'PtyUnavailableError';
  }
}

let nativePty: NativePty | null = null;

function loadNativePty(): NativePty {
  if (nativePty) return nativePty;
  try {
    const require = createRequire(import.meta.url);
    const { requireBinary } = require('@lydell/node-pty/requireBinary') as { requireBinary(file: string): NativePty };
    nativePty = requireBinary('pty.node');
    return nativePty;
  } catch (error) {
    throw new PtyUnavailableError(error);
  }
}

export class PtyPort implements HostPort {
  private readonly master: tty.ReadStream;
  private closed = false;

  private constructor(
    /** The pty slave device, e.g. /dev/pts/3. */
    readonly devicePath: string,
    /** The stable symlink hosts open. */
    readonly linkPath: string,
    masterFd: number,
    private readonly slaveFd: number,
    onData: (chunk: Buffer) => void,
  ) {
    // One tty stream on the master for both directions (two libuv handles on one fd clash).
    this.master = new tty.ReadStream(masterFd);
    this.master.on('data', (chunk: Buffer | string) => onData(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk));
    // EIO when no slave is open can't happen (we hold one), but never let it crash the radio.
    this.master.on('error', () => {});
  }

  /**
   * Opens a pty and points linkPath at its slave. We keep a plain fd on the slave open so
   * the master never sees EIO between host sessions, and we never read from it: any
   * reader there would steal the host's bytes.
   */
  static open(linkPath: string, onData: (chunk: Buffer) => void): PtyPort {
    const native = loadNativePty();
    const { master, slave, pty } = native.open(80, 24);
    fs.mkdirSync(path.dirname(linkPath), { recursive: true });
    try {
      fs.unlinkSync(linkPath);
    } catch {
      // no previous link
    }
    fs.symlinkSync(pty, linkPath);
    return new PtyPort(pty, linkPath, master, slave, onData);
  }

  write(packet: Buffer): void {
    if (this.closed) return;
    this.master.write(packet);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      if (fs.readlinkSync(this.linkPath) === this.devicePath) fs.unlinkSync(this.linkPath);
    } catch {
      // already gone
    }
    this.master.destroy();
    try {
      fs.closeSync(this.slaveFd);
    } catch {
      // already closed
    }
  }
}
