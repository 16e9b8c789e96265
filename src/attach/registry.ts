// The attachment kinds: one line per driver folder. The core's kind list comes from here.
import type { AttachDriver } from './driver.js';
import { iscsiDriver } from './iscsi/index.js';
import { localDriver } from './local/index.js';
import { loopbackDriver } from './loopback/index.js';
import { rbdDriver } from './rbd/index.js';

export const attachDrivers: Record<string, AttachDriver<any>> = {
  [loopbackDriver.kind]: loopbackDriver,
  [localDriver.kind]: localDriver,
  [iscsiDriver.kind]: iscsiDriver,
  [rbdDriver.kind]: rbdDriver,
};
