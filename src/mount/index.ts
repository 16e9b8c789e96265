// The mount drivers, by kind.
import { attachMountDriver } from './attach.js';
import { bindDriver } from './bind.js';
import type { MountDriver } from './driver.js';
import { nfsDriver } from './nfs.js';
import { overlayDriver } from './overlay.js';
import { uriDriver } from './uri.js';

export const mountDrivers: Record<string, MountDriver<any>> = {
  attach: attachMountDriver,
  overlay: overlayDriver,
  bind: bindDriver,
  nfs: nfsDriver,
  uri: uriDriver,
};
