// The attachment drivers, by kind.
import type { AttachDriver } from './driver.js';
import { iscsiDriver } from './iscsi/index.js';
import { localDriver } from './local/index.js';
import { loopbackDriver } from './loopback/index.js';
import { rbdDriver } from './rbd/index.js';

export const attachDrivers: Record<string, AttachDriver<any>> = {
  loopback: loopbackDriver,
  local: localDriver,
  iscsi: iscsiDriver,
  rbd: rbdDriver,
};
