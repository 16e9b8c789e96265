// The mount kinds: one line per driver folder. The core's kind list comes from here.
import { attachMountDriver } from './attach/index.js';
import { bindDriver } from './bind/index.js';
import type { MountAlias, MountDriver } from './driver.js';
import { nfsDriver } from './nfs/index.js';
import { overlayDriver } from './overlay/index.js';
import { rbdMountAlias } from './rbd-v01/index.js';
import { uriDriver } from './uri/index.js';

export const mountDrivers: Record<string, MountDriver<any>> = {
  [attachMountDriver.kind]: attachMountDriver,
  [overlayDriver.kind]: overlayDriver,
  [bindDriver.kind]: bindDriver,
  [nfsDriver.kind]: nfsDriver,
  [uriDriver.kind]: uriDriver,
};

export const mountAliases: Record<string, MountAlias> = {
  [rbdMountAlias.kind]: rbdMountAlias,
};
