// Namespaces of XEP-0060 (publish-subscribe) and XEP-0163 (PEP).
export const NS_PUBSUB = 'http://jabber.org/protocol/pubsub';
export const NS_PUBSUB_OWNER = 'http://jabber.org/protocol/pubsub#owner';
export const NS_PUBSUB_EVENT = 'http://jabber.org/protocol/pubsub#event';
export const NS_PUBSUB_ERRORS = 'http://jabber.org/protocol/pubsub#errors';
export const NS_PUBSUB_CONFIG = 'http://jabber.org/protocol/pubsub#node_config';
export const NS_PUBSUB_PUBLISH_OPTIONS = 'http://jabber.org/protocol/pubsub#publish-options';
export const NS_PUBSUB_META = 'http://jabber.org/protocol/pubsub#meta-data';
export const NS_DATA = 'jabber:x:data';
export const NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info';
export const NS_DISCO_ITEMS = 'http://jabber.org/protocol/disco#items';

/** XEP-0060 §10: the features a service supports, as `http://jabber.org/protocol/pubsub#<name>`. */
export const PUBSUB_FEATURES = [
  'access-open', 'access-presence', 'access-roster', 'access-whitelist', 'auto-create', 'auto-subscribe',
  'config-node', 'config-node-max', 'create-and-configure', 'create-nodes', 'delete-items', 'delete-nodes',
  'filtered-notifications', 'item-ids', 'last-published', 'manage-affiliations', 'member-affiliation',
  'modify-affiliations', 'outcast-affiliation', 'persistent-items', 'presence-notifications',
  'presence-subscribe', 'publish', 'publish-options', 'publisher-affiliation', 'purge-nodes', 'retract-items',
  'retrieve-affiliations', 'retrieve-default', 'retrieve-items', 'retrieve-subscriptions', 'subscribe',
].map((name) => `${NS_PUBSUB}#${name}`);
