// XEP-0480 SASL Upgrade Tasks, SCRAM upgrades (§3): an account without the keys of a stronger
// hash (imported with SHA-1 keys only, or made before SHA-512 keys were kept) gets them from a
// client that logged in through SASL2 and asked for the task, since only the client knows the
// password. The SASL2 side (<continue/>, <next/>, <task-data/>) is ../features/sasl2.ts.
//
//   S: <authentication> ... <upgrade xmlns='urn:xmpp:sasl:upgrade:0'>UPGR-SCRAM-SHA-512</upgrade>
//   C: <authenticate mechanism=...> ... <upgrade xmlns='urn:xmpp:sasl:upgrade:0'>UPGR-SCRAM-SHA-512</upgrade>
//   S: <continue> (the mechanism's additional data) <tasks><task>UPGR-SCRAM-SHA-512</task></tasks>
//   C: <next task='UPGR-SCRAM-SHA-512'/>
//   S: <task-data><salt xmlns='urn:xmpp:scram-upgrade:0' iterations='4096'>base64</salt></task-data>
//   C: <task-data><hash xmlns='urn:xmpp:scram-upgrade:0'>base64 SaltedPassword</hash></task-data>
//   S: <success> (or <continue/> with the next task)
import crypto from 'node:crypto';
import type Element from 'ltx/lib/Element.js';
import { HASH_LENGTH, SCRAM_MECHANISMS, credentialsFromSaltedPassword, type ScramCredentials, type ScramHash } from '../../accounts/credentials.js';
import { decodeBase64 } from './negotiation.js';

export const NS_SASL_UPGRADE = 'urn:xmpp:sasl:upgrade:0';
export const NS_SCRAM_UPGRADE = 'urn:xmpp:scram-upgrade:0';

/** The hashes a task can add, strongest last. SHA-1 is no upgrade: a PLAIN login adds it. */
export const UPGRADABLE: readonly ScramHash[] = ['sha256', 'sha512'];

/** §2.1: "UPGR-" and the mechanism's name, never the -PLUS one (binding is no property of the keys). */
export function taskName(hash: ScramHash): string {
  return `UPGR-${SCRAM_MECHANISMS[hash]}`;
}

const BY_TASK = new Map<string, ScramHash>(UPGRADABLE.map((hash) => [taskName(hash), hash]));

/** §2.1: the tasks offered inside SASL2's <authentication/>, one <upgrade/> each. */
export function upgradeAdvertisement(hashes: readonly ScramHash[]): string {
  return hashes.map((hash) => `<upgrade xmlns='${NS_SASL_UPGRADE}'>${taskName(hash)}</upgrade>`).join('');
}

/** §2.2: the upgrades the client asked for in its <authenticate/>, in its order; names we do not know are left out. */
export function requestedUpgrades(authenticate: Element): ScramHash[] {
  const hashes = authenticate.getChildren('upgrade', NS_SASL_UPGRADE).map((upgrade) => BY_TASK.get(upgrade.getText().trim()));
  return [...new Set(hashes.filter((hash): hash is ScramHash => hash !== undefined))];
}

/**
 * Only a login that proved the password (SCRAM, PLAIN) may set keys derived from it: a FAST
 * token (HT-*) proves possession of the token, and keys set with one would outlive it.
 */
export function provesPassword(mechanism: string): boolean {
  return mechanism === 'PLAIN' || mechanism.startsWith('SCRAM-');
}

/** A fresh salt for the keys a task makes (16 bytes, as for a new password). */
export function newSalt(): Buffer {
  return crypto.randomBytes(16);
}

/** §3: the salt and the account's iteration count, for the client to compute the SaltedPassword. */
export function saltXml(salt: Buffer, iterations: number): string {
  return `<salt xmlns='${NS_SCRAM_UPGRADE}' iterations='${iterations}'>${salt.toString('base64')}</salt>`;
}

/**
 * §3: the client's <task-data/> holds the base64 SaltedPassword in <hash/>; the keys to store are
 * derived from it as from a password (RFC 5802 §3). A string says what is wrong with it.
 */
export function keysFromTaskData(taskData: Element, hash: ScramHash, salt: Buffer, iterations: number): ScramCredentials | string {
  const element = taskData.getChild('hash', NS_SCRAM_UPGRADE);
  if (element === undefined) return `expected <hash xmlns='${NS_SCRAM_UPGRADE}'/>`;
  const salted = decodeBase64(element.getText());
  // §3: it MUST NOT be empty; a SaltedPassword is as long as the hash's output
  if (salted === null || salted.length !== HASH_LENGTH[hash]) return `the hash must be the base64 of a ${HASH_LENGTH[hash]}-byte ${SCRAM_MECHANISMS[hash]} SaltedPassword`;
  return credentialsFromSaltedPassword(salted, salt, iterations, hash);
}
