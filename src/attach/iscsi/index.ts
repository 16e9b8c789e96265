// iscsi: needs the kernel's iSCSI initiator (iscsi_tcp) and open-iscsi's iscsiadm.
// This build answers 501 with the reason: on this project's machines the kernel has no SCSI
// support at all, so an initiator could not be exercised, and an untested login path is not
// offered as working.
import { access } from 'node:fs/promises';
import type { AttachIscsi } from '../../model/types.js';
import { notImplemented } from '../../model/errors.js';
import type { AttachDriver } from '../driver.js';

async function hasInitiator(): Promise<boolean> {
  return access('/sys/class/iscsi_transport').then(
    () => true,
    () => false,
  );
}

export const iscsiDriver: AttachDriver<AttachIscsi> = {
  kind: 'iscsi',
  async available() {
    if (!(await hasInitiator())) {
      throw notImplemented('iscsi: this kernel has no iSCSI initiator (no /sys/class/iscsi_transport; iscsi_tcp is not built in)');
    }
    throw notImplemented('iscsi: attaching iSCSI LUNs is not implemented in this build of imageapi');
  },
  async attach() {
    throw notImplemented('iscsi: attaching iSCSI LUNs is not implemented in this build of imageapi');
  },
  async detach() {},
  async adopt() {
    return null;
  },
  describe(spec) {
    return spec.chap_secret ? { ...spec, chap_secret: '<redacted>' } : spec;
  },
};
