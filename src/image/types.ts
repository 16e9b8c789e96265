// What the image layer takes and gives: a request for an image (a URL with its checksum, or a
// reference into an image server), what it resolves to, and a verified file in the cache.
// The transfer (fetch.ts), the sources (sources/*.ts) and the cache (cache.ts) implement it;
// the core turns cache entries into `image` objects.

import type { ImageCompression, ImageImgapi, ImageProgress, ImageSimplestreams } from '../model/types.js';

/** `sha256:<64 hex>` or `sha1:<40 hex>`, of the bytes as the server sends them. */
export type Digest = string;

/** What a file is once decompressed: an image a loop device can carry, or an archive to unpack. */
export type ImageFormat = 'squashfs' | 'erofs' | 'ext4' | 'tar';
export type Compression = ImageCompression;

/** An image server configured by name (`sources` in the config file), like `imgadm sources` or an LXD remote. */
export interface SourceConfig {
  name: string;
  type: 'simplestreams' | 'imgapi';
  url: string;
  /** PEM CA bundle for a private server's certificate. */
  ca_file?: string;
}

/**
 * Where an image comes from, as a request names it (the spec's `image_simplestreams` and
 * `image_imgapi`; a URL's `format` as the image layer knows it: `tar.gz` is a gzip'd `tar`).
 */
export type ImageRequest =
  | { uri: string; checksum: Digest; format?: ImageFormat; compression?: Compression; ca_file?: string }
  | { simplestreams: ImageSimplestreams }
  | { imgapi: ImageImgapi };

/** A request resolved to one file on one server: everything needed to download and verify it. */
export interface ResolvedImage {
  url: string;
  digest: Digest;
  /** Expected length of the download when the server says (a manifest's or an index's size). */
  size?: number;
  compression: Compression;
  format?: ImageFormat;
  ca_file?: string;
  /** For people: "simplestreams busybox/1.36/amd64/default 20261201 at https://127.0.0.1:8443/". */
  description: string;
}

export type Progress = ImageProgress;

/** A verified file in the cache. */
export interface CacheEntry {
  digest: Digest;
  /** The usable file: decompressed when the download was compressed. */
  path: string;
  /** Bytes of `path`. */
  size: number;
  format: ImageFormat;
  /** Last time a mount used it (ISO time), for least-recently-used eviction. */
  last_used: string;
  /** Where it came from (the URL, without user and password) and, for people, what it is. */
  url?: string;
  description?: string;
  /** How it was downloaded: its compression then and the bytes of the download (what `digest` is of). */
  compression?: Compression;
  download_size?: number;
  /** When it entered the cache (ISO time). */
  created?: string;
}
