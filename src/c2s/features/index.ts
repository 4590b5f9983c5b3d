// The stream features of a client stream, in the order they are offered and consulted
// (RFC 6120 §4.3.2): STARTTLS, SASL2 (XEP-0388, with Bind2 and what modules inline) and SASL, then after authentication binding, stream management and
// client state; what modules add; the limits last. A top-level element goes to the first
// feature that accepts it.
import type { StreamFeature } from './feature.js';
import { starttls } from './starttls.js';
import { sasl } from './sasl.js';
import { sasl2 } from './sasl2.js';
import { bind } from './bind.js';
import { streamManagement } from './sm.js';
import { clientStateIndication } from './csi.js';
import { moduleFeatures } from './modules.js';
import { streamLimits } from './limits.js';

export type { NegotiatingStream, NegotiatedSession, StreamFeature, StreamState, TakeOverRefusal } from './feature.js';
export type { StreamFeaturesEvent, UnauthenticatedIqEvent, NonzaEvent } from './modules.js';
export type { Sasl2InlineEvent, Sasl2TokenEvent, Sasl2SuccessEvent, UserAgent } from './sasl2.js';
export type { Bind2InlineEvent, Bind2ElementEvent } from './bind2.js';

export const clientStreamFeatures: readonly StreamFeature[] = [
  starttls,
  sasl2,
  sasl,
  bind,
  streamManagement,
  clientStateIndication,
  moduleFeatures,
  streamLimits,
];
