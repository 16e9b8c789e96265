// local: an existing block device of the host; the agent only keeps a reference to it.
import { stat } from 'node:fs/promises';
import { fromFsError, invalid } from '../../model/errors.js';
import type { AttachLocal } from '../../model/types.js';
import type { AttachDriver } from '../driver.js';

async function isBlockDevice(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isBlockDevice(),
    () => false,
  );
}

export const localDriver: AttachDriver<AttachLocal> = {
  kind: 'local',
  async attach(spec) {
    const st = await stat(spec.path).catch((e) => {
      throw fromFsError(e, `local.path "${spec.path}"`);
    });
    if (!st.isBlockDevice()) throw invalid(`local.path "${spec.path}" is not a block device`);
    return { device_file: spec.path, state: {} };
  },
  async detach() {
    // Nothing to undo: the device belongs to the host.
  },
  async adopt(spec, attached) {
    return (await isBlockDevice(spec.path)) ? attached : null;
  },
};
