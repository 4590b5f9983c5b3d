// Admin commands, declared once: name, typed arguments (a zod schema) and what they do. The CLI
// runs them through a running server's control socket (socket.ts), or on the database itself when
// no server answers; the same registry is meant to back XEP-0050 ad-hoc commands and an admin
// HTTP API (issue 15), so a command never knows which of them called it.
import { z } from 'zod';
import { parseJid } from '../core/jid.js';
import type { AccountDeletion } from '../accounts/lifecycle.js';

/** What a command may act on: a running server's, or one built from the database alone. */
export interface CommandContext {
  /** The virtual hosts served (domains). */
  hosts: readonly string[];
  /** Deletes an account and all its data; a running server also ends its sessions. */
  deleteAccount(host: string, username: string): Promise<AccountDeletion>;
}

/** A refusal the caller shows as is (bad arguments, no such host...). */
export class CommandError extends Error {}

export interface CommandDefinition<Args extends z.ZodType = z.ZodType, Result = unknown> {
  name: string;
  description: string;
  args: Args;
  run(context: CommandContext, args: z.output<Args>): Promise<Result>;
}

function defineCommand<Args extends z.ZodType, Result>(definition: CommandDefinition<Args, Result>): CommandDefinition<Args, Result> {
  return definition;
}

/** An account's bare JID on one of the served hosts. */
function account(context: CommandContext, jid: string): { host: string; username: string } {
  const parsed = parseJid(jid);
  if (parsed === null || parsed.local === '' || parsed.resource !== '') throw new CommandError(`"${jid}" is not an account address like alice@${context.hosts[0] ?? 'example.org'}`);
  if (!context.hosts.includes(parsed.domain)) throw new CommandError(`${parsed.domain} is not a host in this configuration`);
  return { host: parsed.domain, username: parsed.local };
}

export const userDelete = defineCommand({
  name: 'user.delete',
  description: 'delete an account with all its data (roster, archive, offline messages, files...); its sessions are ended',
  args: z.strictObject({ jid: z.string().min(1) }),
  async run(context, { jid }) {
    const { host, username } = account(context, jid);
    const deletion = await context.deleteAccount(host, username);
    return { jid: `${username}@${host}`, ...deletion };
  },
});

export const commands: ReadonlyMap<string, CommandDefinition> = new Map(
  [userDelete as CommandDefinition].map((command) => [command.name, command]),
);

/** Validates the arguments and runs the named command; a CommandError for anything the caller got wrong. */
export async function runCommand(context: CommandContext, name: string, args: unknown): Promise<unknown> {
  const command = commands.get(name);
  if (command === undefined) throw new CommandError(`unknown command "${name}" (known: ${[...commands.keys()].join(', ')})`);
  const parsed = command.args.safeParse(args ?? {});
  if (!parsed.success) throw new CommandError(`${name}: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'args'}: ${i.message}`).join('; ')}`);
  return command.run(context, parsed.data);
}
