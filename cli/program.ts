// Commander conventions shared by every `locksync` subcommand: a usage mistake (unknown
// option or command, missing required option or argument, excess arguments, a bad option
// value) ends as one line `error USAGE: … — see \`locksync … --help\`` with exit status 2,
// instead of commander's own message and exit 1; `--help` and `--version` still exit 0.

import { type Command, CommanderError } from 'commander';
import { CliError, parseIntegerOption } from './errors';

/** `locksync radio up`: the command's name with its parents', as the user typed it. */
export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c !== null; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Commander's codes for output the user asked for (help, version): not failures. */
const ASKED_FOR = new Set(['commander.helpDisplayed', 'commander.version']);

function usageFromCommander(cmd: Command, err: CommanderError): Error {
  if (ASKED_FOR.has(err.code) || err.exitCode === 0) return err;
  const help = `see \`${commandPath(cmd)} --help\``;
  // A group called without a subcommand has already printed its help on stderr.
  if (err.code === 'commander.help') return new CliError('USAGE', `${commandPath(cmd)} needs a subcommand`, `pick one of the commands listed above, or ${help}`);
  return new CliError('USAGE', err.message.replace(/^error:\s*/, ''), help);
}

/**
 * Applies the conventions to `root` and every command under it. Call once, after every
 * subcommand is registered (commands added later do not inherit them).
 */
export function applyCliConventions(root: Command): Command {
  const visit = (cmd: Command): void => {
    cmd.exitOverride((err) => {
      throw usageFromCommander(cmd, err);
    });
    // The error line is printed once, by the top-level handler (reportFailure).
    cmd.configureOutput({ outputError: () => undefined });
    cmd.showHelpAfterError(false);
    // Help marks required options, so no command has to say it in each description.
    for (const option of cmd.options) {
      if (option.mandatory && option.description !== '' && !option.description.includes('(required)')) option.description += ' (required)';
    }
    for (const sub of cmd.commands) visit(sub);
  };
  visit(root);
  return root;
}

/** Is `e` commander's way of saying "help or version was printed, exit 0"? */
export function isAskedForOutput(e: unknown): boolean {
  return e instanceof CommanderError && (ASKED_FOR.has(e.code) || e.exitCode === 0);
}

/**
 * An option parser for commander: the value must be an integer in `range`, else a usage
 * error naming the option. `name` is the flag as typed (`--port`).
 */
export function integer(name: string, range: { min?: number; max?: number } = {}): (raw: string) => number {
  return (raw) => parseIntegerOption(name, raw, range);
}

/** An option parser accepting exactly one of `choices`. */
export function oneOf<T extends string>(name: string, choices: readonly T[]): (raw: string) => T {
  return (raw) => {
    if ((choices as readonly string[]).includes(raw)) return raw as T;
    throw new CliError('USAGE', `${name} must be one of ${choices.join(', ')}, got "${raw}"`, `pass e.g. ${name} ${choices[0] ?? ''}`);
  };
}

/** An option parser for `true`/`false`. */
export function boolean(name: string): (raw: string) => boolean {
  return (raw) => {
    if (raw === 'true') return true;
    if (raw === 'false') return false;
    throw new CliError('USAGE', `${name} must be true or false, got "${raw}"`, `pass ${name} true or ${name} false`);
  };
}
