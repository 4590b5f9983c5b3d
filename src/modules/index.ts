// Every module this build ships. Enabling one is a line in the `modules:` section of the config.
import type { ModuleDefinition } from '../core/module.js';
import avatarConversion from './avatar_conversion/index.js';
import adhoc from './adhoc/index.js';
import blocking from './blocking/index.js';
import bookmarks from './bookmarks/index.js';
import caps from './caps/index.js';
import carbons from './carbons/index.js';
import disco from './disco/index.js';
import externalServices from './external_services/index.js';
import fast from './fast/index.js';
import last from './last/index.js';
import mail from './mail/index.js';
import mam from './mam/index.js';
import muc from './muc/index.js';
import offline from './offline/index.js';
import invites from './invites/index.js';
import ping from './ping/index.js';
import presence from './presence/index.js';
import privateStorage from './private/index.js';
import proxy65 from './proxy65/index.js';
import pubsub from './pubsub/index.js';
import push from './push/index.js';
import register from './register/index.js';
import roster from './roster/index.js';
import time from './time/index.js';
import upload from './upload/index.js';
import vcard from './vcard/index.js';
import version from './version/index.js';
import webchat from './webchat/index.js';

/** Each module is typed by its own options; the registry only needs them side by side. */
function entry<Options>(definition: ModuleDefinition<Options>): ModuleDefinition<unknown> {
  return definition as unknown as ModuleDefinition<unknown>;
}

export const builtinModules: ReadonlyArray<ModuleDefinition<unknown>> = [
  entry(roster), entry(presence), entry(offline), entry(last), entry(register), entry(disco), entry(version), entry(time), entry(ping), entry(muc),
  entry(carbons), entry(blocking), entry(vcard), entry(privateStorage), entry(mam), entry(upload), entry(webchat), entry(invites), entry(mail),
  entry(caps), entry(pubsub), entry(externalServices), entry(bookmarks), entry(avatarConversion), entry(adhoc), entry(fast), entry(push), entry(proxy65),
];

export const moduleRegistry: ReadonlyMap<string, ModuleDefinition<unknown>> = new Map(
  builtinModules.map((definition) => [definition.name, definition]),
);
