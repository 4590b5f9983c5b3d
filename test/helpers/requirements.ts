// Tests that need a program from outside npm (a real XMPP server or client, a browser). On a
// developer's machine without it they are skipped; in CI (CI set, as .ci/run does) a missing
// program fails them instead, naming the Debian package, so that interoperability is never
// silently untested there.
import test, { type ExecutionContext } from 'ava';

export interface Requirement {
  /** Whether the program is there. */
  available: boolean;
  /** What is missing, e.g. "Prosody (/usr/bin/prosody)". */
  what: string;
  /** The Debian package(s) that provide it (installed by .ci/run). */
  debianPackages: string;
}

export type Implementation = (t: ExecutionContext) => void | Promise<void>;
export type TestDeclaration = (title: string, implementation: Implementation) => void;

/** Whether a missing requirement fails the tests instead of skipping them. */
export const inCi = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false';

/** The message a test fails with in CI when the requirement is missing. */
export function missingMessage(requirement: Requirement): string {
  return `${requirement.what} is missing: install the Debian package(s) ${requirement.debianPackages} (apt-get install -y ${requirement.debianPackages}; see .ci/run)`;
}

/** `test` when the requirement is met; else skipped, or in CI a test that fails saying what to install. */
export function testNeeding(requirement: Requirement): TestDeclaration {
  if (requirement.available) return (title, implementation) => test(title, implementation);
  if (!inCi) return (title, implementation) => test.skip(title, implementation);
  return (title) => test(title, (t) => t.fail(missingMessage(requirement)));
}

/** The same for tests that run one at a time (test.serial). */
export function serialTestNeeding(requirement: Requirement): TestDeclaration {
  if (requirement.available) return (title, implementation) => test.serial(title, implementation);
  if (!inCi) return (title, implementation) => test.serial.skip(title, implementation);
  return (title) => test.serial(title, (t) => t.fail(missingMessage(requirement)));
}
