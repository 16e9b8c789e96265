// The attachment drivers, by kind.
import type { AttachDriver } from './driver.js';
import { iscsiDriver } from './iscsi.js';
import { localDriver } from './local.js';
import { loopbackDriver } from './loopback.js';

export const attachDrivers: Record<string, AttachDriver<any>> = {
  loopback: loopbackDriver,
  local: localDriver,
  iscsi: iscsiDriver,
};
