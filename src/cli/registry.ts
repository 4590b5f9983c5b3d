// `xmppd <group> <command> ...` generated from the admin command registry (src/control): each
// command runs on the running server through its control socket, or — when no server answers
// and the command allows it — on the database directly.
import type { Command } from 'commander';
import { commandList } from '../control/commands.js';
import { CommandError, parseArgs, type AdminContext, type AnyCommand, type ArgSpec } from '../control/registry.js';
import { callControl, controlSocketPath } from '../control/socket.js';

export interface CliEnvironment {
  /** The configuration's data directory (where the control socket is). */
  dataDir(): string;
  /** Runs `work` on the database when no server is running. */
  withDatabase<T>(work: (context: AdminContext) => Promise<T>): Promise<T>;
  /** A password typed or piped when none was given. */
  readPassword(): Promise<string>;
  fail(message: string): never;
  json(): boolean;
}

function flag(name: string, spec: ArgSpec): string {
  if (spec.type === 'boolean') return `--${name}`;
  if (spec.type === 'password') return `-p, --${name} <${name}>`;
  return `--${name} <${spec.type === 'jid' ? 'jid' : name}>`;
}

/** The command's usage line: `user add <jid> [--password <password>]`. */
export function usage(command: AnyCommand): string {
  const words = [command.name.split('.').join(' ')];
  for (const [name, spec] of Object.entries(command.args)) {
    const shown = spec.type === 'jids' ? `${name}...` : name;
    if (spec.positional) words.push(spec.optional ? `[${shown}]` : `<${shown}>`);
    else words.push(spec.optional || spec.type === 'password' ? `[${flag(name, spec).replace(/^-p, /, '')}]` : flag(name, spec));
  }
  return words.join(' ');
}

/** A listing of every registry command, for `xmppd help`. */
export function registryHelp(): string {
  const lines = commandList.map((c) => `  ${usage(c).padEnd(44)} ${c.description}${c.needs === 'server' ? ' (running server)' : ''}`);
  return `\nAdmin commands (on the running server through its control socket, or on the database when it is stopped):\n${lines.join('\n')}\n`;
}

export function addRegistryCommands(program: Command, env: CliEnvironment): Map<string, Command> {
  const groups = new Map<string, Command>();
  for (const command of commandList) {
    const parts = command.name.split('.');
    let parent = program;
    for (const group of parts.slice(0, -1)) {
      let existing = groups.get(group);
      if (existing === undefined) {
        existing = program.command(group).description(`${group} commands`);
        groups.set(group, existing);
      }
      parent = existing;
    }
    const positional = Object.entries(command.args).filter(([, spec]) => spec.positional);
    const options = Object.entries(command.args).filter(([, spec]) => !spec.positional);
    const sub = parent.command([parts.at(-1)!, ...positional.map(([name, spec]) => {
      const shown = spec.type === 'jids' ? `${name}...` : name;
      return spec.optional ? `[${shown}]` : `<${shown}>`;
    })].join(' '));
    for (const alias of command.aliases ?? []) sub.alias(alias);
    sub.description(command.description);
    for (const [name, spec] of options) sub.option(flag(name, spec), spec.description);
    sub.action(async (...given: unknown[]) => {
      const args: Record<string, unknown> = {};
      positional.forEach(([name], index) => {
        if (given[index] !== undefined) args[name] = given[index];
      });
      const opts = given[positional.length] as Record<string, unknown>;
      for (const [name, spec] of options) {
        // commander camel-cases option names: --not-authorized → notAuthorized
        const key = name.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
        if (opts[key] !== undefined) args[name] = opts[key];
        else if (spec.type === 'password') {
          if (opts[key] === '') env.fail('the password must not be empty');
        }
      }
      for (const [name, spec] of options) {
        if (spec.type === 'password' && !spec.optional && args[name] === undefined) args[name] = await env.readPassword();
        if (spec.type === 'password' && args[name] === '') env.fail('the password must not be empty');
      }
      await runFromCli(command, args, env);
    });
  }
  return groups;
}

async function runFromCli(command: AnyCommand, args: Record<string, unknown>, env: CliEnvironment): Promise<void> {
  let result: unknown;
  try {
    parseArgs(command, args); // refused here with the same words the server would use
    const answered = await callControl(env.dataDir(), command.name, args);
    if (answered !== undefined) result = answered.result;
    else if (command.needs === 'server') env.fail(`${command.name.replace('.', ' ')} needs the running server; none answers on ${controlSocketPath(env.dataDir())}`);
    else result = await env.withDatabase((context) => command.run(context, parseArgs(command, args)));
  } catch (err) {
    if (err instanceof CommandError) env.fail(err.message);
    throw err;
  }
  const text = env.json() || command.format === undefined ? JSON.stringify(result, null, 2) : command.format(result);
  if (text !== '') process.stdout.write(`${text}\n`);
}
