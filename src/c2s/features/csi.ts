// XEP-0352 client state indication: <active/> and <inactive/> on a bound stream.
import { NS_CSI } from '../csi.js';
import type { StreamFeature } from './feature.js';

export const clientStateIndication: StreamFeature = {
  name: 'csi',
  advertise: (stream) => (stream.state === 'authenticated' ? `<csi xmlns='${NS_CSI}'/>` : ''),
  accepts: (element, stream) => stream.state === 'bound' && element.attrs.xmlns === NS_CSI && (element.name === 'active' || element.name === 'inactive'),
  handle: (element, stream) => stream.session!.setInactive(element.name === 'inactive'),
};
