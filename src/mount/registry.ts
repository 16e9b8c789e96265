// The mount drivers, by kind.
import { attachMountDriver } from './attach/index.js';
import { bindDriver } from './bind/index.js';
import type { MountDriver } from './driver.js';
import { nfsDriver } from './nfs/index.js';
import { overlayDriver } from './overlay/index.js';
import { uriDriver } from './uri/index.js';

export const mountDrivers: Record<string, MountDriver<any>> = {
  attach: attachMountDriver,
  overlay: overlayDriver,
  bind: bindDriver,
  nfs: nfsDriver,
  uri: uriDriver,
};
