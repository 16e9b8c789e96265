// uri: download an image into a ramdisk mount. Not implemented yet: answered 501 with the reason.
import { unsupported } from '../../model/errors.js';
import type { MountDriver } from '../driver.js';

const WHY = 'uri: downloading images from a URI is not implemented yet';

export const uriDriver: MountDriver = {
  kind: 'uri',
  async available() {
    throw unsupported(WHY);
  },
  async mount() {
    throw unsupported(WHY);
  },
  async unmount() {},
  async adopt() {
    return null;
  },
};
