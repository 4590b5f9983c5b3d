// Reading a new account password for `xmppd user add` / `user passwd`. On a terminal it is typed
// without echo (raw mode, like passwd(1)) and asked twice; from a pipe it is the first line. An
// empty password is refused either way: it would make the account as good as open.
import type { Writable } from 'node:stream';

/** What the prompt reads from: process.stdin, a TTY when a person types. */
export interface PasswordInput extends NodeJS.ReadableStream {
  isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
}

/** A password that cannot be used; the message says why, for the admin. */
export class PasswordRefused extends Error {}

const CTRL_C = '\u0003';
const CTRL_D = '\u0004';
const CTRL_U = '\u0015';
const BACKSPACE = '\u007f';
const CTRL_H = '\b';

/** One line typed on a terminal without echo; null at end of input (Ctrl-D on an empty line). */
export function readHidden(input: PasswordInput, output: Writable, prompt: string): Promise<string | null> {
  return new Promise((resolve, reject) => {
    // Echo goes off before the prompt shows, as getpass(3) does: a person (or a script) answering
    // the prompt the moment it appears must never see the password echoed by the terminal.
    input.setRawMode?.(true);
    output.write(prompt);
    input.setEncoding('utf8');
    let line = '';
    const finish = (value: string | null, err?: Error) => {
      input.off('data', onData);
      input.off('end', onEnd);
      output.write('\n');
      input.setRawMode?.(false);
      input.pause();
      if (err) reject(err);
      else resolve(value);
    };
    const onEnd = () => finish(line === '' ? null : line);
    const onData = (chunk: string | Buffer) => {
      for (const ch of String(chunk)) {
        if (ch === '\r' || ch === '\n') return finish(line);
        if (ch === CTRL_C) return finish(null, new PasswordRefused('interrupted'));
        if (ch === CTRL_D) {
          if (line === '') return finish(null);
          continue;
        }
        if (ch === BACKSPACE || ch === CTRL_H) line = line.slice(0, -1);
        else if (ch === CTRL_U) line = '';
        else if (ch >= ' ') line += ch;
      }
    };
    input.on('data', onData);
    input.on('end', onEnd);
    input.resume();
  });
}

/** The first line of a pipe (without its line ending), or null when there is none. */
export function readLine(input: PasswordInput): Promise<string | null> {
  return new Promise((resolve, reject) => {
    input.setEncoding('utf8');
    let data = '';
    const done = (value: string | null) => {
      input.off('data', onData);
      input.off('end', onEnd);
      input.off('error', reject);
      input.pause();
      resolve(value);
    };
    const onData = (chunk: string | Buffer) => {
      data += String(chunk);
      const newline = data.indexOf('\n');
      if (newline !== -1) done(data.slice(0, newline).replace(/\r$/, ''));
    };
    const onEnd = () => done(data === '' ? null : data.replace(/\r$/, ''));
    input.on('data', onData);
    input.on('end', onEnd);
    input.on('error', reject);
    input.resume();
  });
}

/**
 * A new password: hidden and confirmed on a terminal, one line from a pipe. Throws
 * PasswordRefused when there is none, it is empty, or the two entries differ.
 */
export async function readNewPassword(input: PasswordInput, output: Writable): Promise<string> {
  if (input.isTTY) {
    const first = await readHidden(input, output, 'Password: ');
    if (first === null) throw new PasswordRefused('no password given');
    if (first === '') throw new PasswordRefused('the password must not be empty');
    const again = await readHidden(input, output, 'Password (again): ');
    if (again !== first) throw new PasswordRefused('the passwords do not match');
    return first;
  }
  const line = await readLine(input);
  if (line === null) throw new PasswordRefused('no password given (use --password or pipe it on standard input)');
  if (line === '') throw new PasswordRefused('the password must not be empty');
  return line;
}
