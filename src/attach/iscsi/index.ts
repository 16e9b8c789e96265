// iscsi: needs the kernel's iSCSI initiator (iscsi_tcp) and open-iscsi's iscsiadm.
// This build answers 501 with the reason: on this project's machines the kernel has no SCSI
// support at all, so an initiator could not be exercised, and an untested login path is not
// offered as working.
import { unsupported } from '../../model/errors.js';
import type { AttachIscsi } from '../../model/types.js';
import { exists } from '../../sys/fs.js';
import type { AttachDriver } from '../driver.js';

const NOT_BUILT = 'iscsi: attaching iSCSI LUNs is not implemented in this build of imageapi';

export const iscsiDriver: AttachDriver<AttachIscsi> = {
  kind: 'iscsi',
  secretFields: ['chap_secret'],
  async available() {
    if (!(await exists('/sys/class/iscsi_transport'))) {
      throw unsupported('iscsi: this kernel has no iSCSI initiator (no /sys/class/iscsi_transport; iscsi_tcp is not built in)');
    }
    throw unsupported(NOT_BUILT);
  },
  async attach() {
    throw unsupported(NOT_BUILT);
  },
  async detach() {},
  async adopt() {
    return null;
  },
};
