// What `locksync radio up` tells the world about its life: the machine-readable ready line
// (so CI waits on it instead of sleeping) and its failures as one-line CLI errors.
import path from 'node:path';
import { CliError } from '../cli/errors';
import { DirInUseError } from './owner-file';
import { PtyUnavailableError } from './pty';
import { RadioError, type Radio } from './radio';

/**
 * The last line `radio up` writes on stdout once every controller's pty link and the
 * control socket exist:
 *   {"event":"ready","pid":…,"dir":…,"control":…,"controllers":[{"name","address","transport","capture"?}]}
 */
export function radioReadyLine(radio: Radio, captureDir?: string): string {
  return JSON.stringify({
    event: 'ready',
    pid: process.pid,
    dir: radio.dir,
    control: radio.controlSocketPath,
    controllers: radio.controllers.map((c) => ({
      name: c.name,
      address: c.address,
      transport: c.transport,
      ...(captureDir !== undefined ? { capture: path.join(path.resolve(captureDir), `${c.name}.btsnoop`) } : {}),
    })),
  });
}

/** A radio start-up failure the user can act on, as a CliError; anything else unchanged. */
export function radioFailure(error: unknown): unknown {
  if (error instanceof DirInUseError) {
    return new CliError(
      'IN_USE',
      `radio directory ${error.dir} is owned by a running radio (pid ${error.owner.pid}, up since ${error.owner.startedAt})`,
      `use that radio (its transports are uart:${error.dir}/NAME), stop it first (kill ${error.owner.pid}), or pick another --dir`,
    );
  }
  if (error instanceof PtyUnavailableError) return new CliError('TRANSPORT_UNAVAILABLE', error.message, 'reinstall the dependencies with npm ci');
  // A controller name, a --dir or a schedule the radio cannot use: the user's to change.
  if (error instanceof RadioError) return new CliError('USAGE', error.message, 'see `locksync radio up --help` and radio/README.md');
  return error;
}
