// uri: download an image into a ramdisk mount. Not implemented yet: answered 501 with the reason.
import { notImplemented } from '../../model/errors.js';
import type { MountDriver } from '../driver.js';

const WHY = 'uri: downloading images from a URI is not implemented yet';

export const uriDriver: MountDriver<Record<string, unknown>> = {
  kind: 'uri',
  async available() {
    throw notImplemented(WHY);
  },
  async mount() {
    throw notImplemented(WHY);
  },
  async unmount() {},
  async adopt() {
    return null;
  },
};
