// uri: an image from an image server (an http(s) or file URL with its checksum, a simplestreams or
// IMGAPI reference, or an image object by id), verified and cached by the core's image part.
// An image format (squashfs, erofs, ext4) is mounted read-only from a read-only loop attachment
// over the cache file (`attach`, a child of kind loopback with base image, which the core makes
// once the image's format is known); a tar archive is unpacked into a tmpfs of `size` (GNU tar:
// owners and modes kept, absolute and `..` member names refused), and the mount holds the image.
import { shownUrl } from '../../image/fetch.js';
import { invalid, noSpace, toAgentError } from '../../model/errors.js';
import { imageDep, type Dep } from '../../model/objects.js';
import type { MountUri } from '../../model/types.js';
import { run } from '../../sys/exec.js';
import { checkOptions, requireFilesystem, unmount } from '../../sys/mount.js';
import { mountAt } from '../../sys/mountinfo.js';
import type { MountDriver } from '../driver.js';
import { mountOrInvalid, unmountOrInUse } from '../kernel.js';

/** The tmpfs size of an archive when the spec gives none. */
export const DEFAULT_ARCHIVE_SIZE = '1g';
/** Unpacking a big archive takes a while; a stuck tar does not hold the request forever. */
const TAR_TIMEOUT_MS = 15 * 60_000;

const FORMS = ['uri', 'simplestreams', 'imgapi', 'image'] as const;

/** The image the spec names: a reference or a definition (`image`), or the request its own fields make. */
function imageOf(spec: MountUri): unknown {
  const given = FORMS.filter((k) => spec[k] !== undefined);
  if (given.length !== 1) {
    throw invalid(`uri: name the image by exactly one of ${FORMS.join(', ')} (${given.length ? `got ${given.join(', ')}` : 'none given'})`);
  }
  if (spec.image !== undefined) {
    for (const k of ['checksum', 'format', 'compression', 'ca_file'] as const) {
      if (spec[k] !== undefined) throw invalid(`uri.${k}: belongs with "uri" (inside "image" for an image definition)`);
    }
    return spec.image;
  }
  if (spec.uri !== undefined) {
    if (spec.checksum === undefined) throw invalid('uri.checksum: required with "uri" (sha256:<hex> or sha1:<hex> of the file)');
    // Upstream's `tar.gz` format is a tar archive with gzip compression.
    const targz = spec.format === 'tar.gz';
    if (targz && spec.compression !== undefined && spec.compression !== 'gzip') throw invalid(`uri.compression: format tar.gz is gzip, not ${spec.compression}`);
    return {
      uri: spec.uri,
      checksum: spec.checksum,
      ...(spec.format !== undefined ? { format: targz ? 'tar' : spec.format } : {}),
      ...(targz ? { compression: 'gzip' } : spec.compression !== undefined ? { compression: spec.compression } : {}),
      ...(spec.ca_file !== undefined ? { ca_file: spec.ca_file } : {}),
    };
  }
  for (const k of ['checksum', 'format', 'compression', 'ca_file'] as const) {
    if (spec[k] !== undefined) throw invalid(`uri.${k}: only with "uri" (a server's index or manifest names it)`);
  }
  return spec.simplestreams !== undefined ? { simplestreams: spec.simplestreams } : { imgapi: spec.imgapi };
}

/** A URL's user and password are never shown back. */
function shownOf(spec: MountUri): { shown?: Record<string, unknown> } {
  return spec.uri !== undefined && /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(spec.uri) ? { shown: { uri: shownUrl(spec.uri) } } : {};
}

function attachDep(deps: Record<string, Dep | Dep[]>): Extract<Dep, { type: 'attach' }> | undefined {
  const d = deps.attach;
  return d && !Array.isArray(d) && d.type === 'attach' ? d : undefined;
}

export const uriDriver: MountDriver<MountUri> = {
  kind: 'uri',

  children: (spec) => [
    { field: 'image', type: 'image', derive: () => imageOf(spec) },
    {
      field: 'attach',
      type: 'attach',
      // An image format goes through a read-only loop device over the cache file; an archive does not.
      derive: (deps) => {
        const img = imageDep(deps, 'image');
        return img && img.format !== 'tar' ? { kind: 'loopback', loopback: { base: 'image', image: { id: img.id }, readonly: true } } : undefined;
      },
    },
  ],

  async available(spec) {
    if (spec.attach !== undefined) throw invalid('uri.attach: the loop attachment is made by the agent and may not be given');
    checkOptions(spec.mount_options, 'uri.mount_options', ['size', 'mode']);
  },

  async mount(spec, deps, mountpoint) {
    const img = imageDep(deps, 'image');
    if (!img) throw invalid('uri: no image');
    if (img.format !== 'tar') {
      const dev = attachDep(deps);
      if (!dev) throw invalid(`uri: image ${img.id} (${img.format}) has no loop attachment`);
      await requireFilesystem(img.format, ` (image ${img.id} is ${img.format})`);
      const options = checkOptions(spec.mount_options, 'uri.mount_options');
      if (!options.includes('ro')) options.push('ro');
      await mountOrInvalid({ source: dev.device_file, target: mountpoint, fstype: img.format, options });
      return { mountpoint, state: { fstype: img.format, source: dev.device_file }, ...shownOf(spec) };
    }
    const size = spec.size ?? DEFAULT_ARCHIVE_SIZE;
    const options = [...checkOptions(spec.mount_options, 'uri.mount_options', ['size', 'mode']), `size=${size}`, 'mode=0755'];
    await mountOrInvalid({ source: 'imageapi-uri', target: mountpoint, fstype: 'tmpfs', options });
    try {
      // As root GNU tar keeps owners and modes (a root filesystem); it strips a leading `/` and
      // refuses members whose names hold `..` (failing the unpack).
      await run('tar', ['--extract', '--file', img.path, '--directory', mountpoint, '--numeric-owner', '--preserve-permissions', '--delay-directory-restore'], {
        timeoutMs: TAR_TIMEOUT_MS,
        failKind: 'INVALID',
      });
    } catch (err) {
      await unmount(mountpoint).catch(() => {});
      const e = toAgentError(err);
      if (/No space left on device|Wrote only \d+ of \d+ bytes|Cannot write/i.test(e.message)) {
        throw noSpace(`uri: image ${img.id} does not fit into a tmpfs of size ${size} (give a larger "size"): ${e.message}`);
      }
      throw e.within(`uri: unpacking image ${img.id}`);
    }
    return { mountpoint, state: { fstype: 'tmpfs', size }, ...shownOf(spec) };
  },

  async unmount(_spec, mounted) {
    await unmountOrInUse(mounted.mountpoint);
  },

  async adopt(_spec, mounted) {
    const m = await mountAt(mounted.mountpoint);
    return m && m.fstype === mounted.state.fstype ? mounted : null;
  },
};
