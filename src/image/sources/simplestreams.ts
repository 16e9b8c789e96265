// simplestreams, as LXD reads an image server (lxd-image-server, images.linuxcontainers.org):
// GET <url>/streams/v1/index.json → the index's image-downloads entry names its products
// document (streams/v1/images.json) → products["<os>:<release>:<arch>:<variant>"] with `aliases`
// (a comma list), `versions` (keys like 20261201_0000: the newest is the greatest key unless one
// is named), and per version `items` with `ftype`, `path`, `sha256`, `size`. The item taken is
// the `squashfs` one (LXD's container rootfs) unless `ftype` names another (`root.tar.xz`, say);
// without a squashfs item a root tarball. The selection is pure (unit-tested without a server).
import { invalid, upstream } from '../../model/errors.js';
import { fetchJson, shownUrl } from '../fetch.js';
import { fromSuffix } from '../format.js';
import type { ImageFormat, ImageRequest, ResolvedImage } from '../types.js';
import { joinUrl, serverContext, type ResolveOptions, type Server } from './common.js';

/** The request's `simplestreams` part (src/image/types.ts). */
export type SimplestreamsQuery = Extract<ImageRequest, { simplestreams: unknown }>['simplestreams'];

/** simplestreams' name of this machine's architecture (LXD's names: amd64, arm64, armhf, …). */
export function hostArch(arch: string = process.arch): string {
  return ({ x64: 'amd64', arm64: 'arm64', arm: 'armhf', ia32: 'i386', ppc64: 'ppc64el', s390x: 's390x', riscv64: 'riscv64' } as Record<string, string>)[arch] ?? arch;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A bounded list for a message: the first 20, then how many more. */
export function listed(xs: string[], max = 20): string {
  if (xs.length === 0) return 'none';
  return xs.slice(0, max).join(', ') + (xs.length > max ? `, … (${xs.length - max} more)` : '');
}

/** The products document's path from an index document (the image-downloads entry). */
export function productsPath(index: unknown, where: string): string {
  const idx = isObj(index) ? index.index : undefined;
  if (!isObj(idx)) throw upstream(`${where}: not a simplestreams index (no "index" object)`);
  const entries = Object.entries(idx).filter(([, v]) => isObj(v) && typeof v.path === 'string');
  const pick =
    entries.find(([k, v]) => k === 'images' && (v as { datatype?: unknown }).datatype === 'image-downloads') ??
    entries.find(([, v]) => (v as { datatype?: unknown }).datatype === 'image-downloads') ??
    entries.find(([k]) => k === 'images');
  if (!pick) throw upstream(`${where}: the index names no image-downloads products document`);
  const path = (pick[1] as { path: string }).path;
  if (/^[a-z][a-z0-9+.-]*:/i.test(path) || path.split('/').includes('..')) throw upstream(`${where}: the index's products path ${JSON.stringify(path.slice(0, 200))} is not a relative path`);
  return path;
}

export interface Selected {
  product: string;
  version: string;
  ftype: string;
  path: string;
  sha256: string;
  size?: number;
}

/** Pick product, version and item from a products document (images.json). */
export function selectItem(doc: unknown, q: SimplestreamsQuery, where: string): Selected {
  const products = isObj(doc) ? doc.products : undefined;
  if (!isObj(products)) throw upstream(`${where}: not a simplestreams products document (no "products" object)`);
  const arch = q.arch ?? hostArch();
  const all = Object.entries(products).filter((e): e is [string, Record<string, unknown>] => isObj(e[1]));
  const field = (key: string, p: Record<string, unknown>, name: 'os' | 'release' | 'arch' | 'variant') => {
    const parts = key.split(':');
    const v = p[name] ?? parts[['os', 'release', 'arch', 'variant'].indexOf(name)];
    return String(v ?? '').toLowerCase();
  };
  let matches: [string, Record<string, unknown>][];
  let asked: string;
  if (q.alias !== undefined) {
    asked = `alias ${JSON.stringify(q.alias)} for ${arch}`;
    const aliasesOf = (p: Record<string, unknown>) =>
      String(p.aliases ?? '')
        .split(',')
        .map((a) => a.trim())
        .filter(Boolean);
    matches = all.filter(([k, p]) => aliasesOf(p).includes(q.alias!) && field(k, p, 'arch') === arch.toLowerCase());
    if (matches.length === 0) {
      const known = [...new Set(all.filter(([k, p]) => field(k, p, 'arch') === arch.toLowerCase()).flatMap(([, p]) => aliasesOf(p)))].sort();
      throw invalid(`simplestreams ${where}: no image with ${asked} (aliases there: ${listed(known)})`);
    }
  } else {
    if (q.os === undefined || q.release === undefined) throw invalid('simplestreams: name an alias, or os and release (with arch and variant, defaults: this host and "default")');
    const want = { os: q.os, release: q.release, arch, variant: q.variant ?? 'default' };
    asked = `${want.os}/${want.release}/${want.arch}/${want.variant}`;
    matches = all.filter(([k, p]) => (['os', 'release', 'arch', 'variant'] as const).every((n) => field(k, p, n) === want[n].toLowerCase()));
    if (matches.length === 0) {
      const known = all.map(([k, p]) => (['os', 'release', 'arch', 'variant'] as const).map((n) => field(k, p, n)).join('/')).sort();
      throw invalid(`simplestreams ${where}: no image ${asked} (images there: ${listed(known)})`);
    }
  }
  if (matches.length > 1) throw upstream(`simplestreams ${where}: ${asked} matches several products (${listed(matches.map(([k]) => k))})`);
  const [product, p] = matches[0]!;
  const versions = isObj(p.versions) ? p.versions : {};
  const itemsOf = (v: unknown): Record<string, unknown>[] =>
    isObj(v) && isObj(v.items) ? Object.values(v.items).filter(isObj) : [];
  const pickItem = (items: Record<string, unknown>[]) =>
    q.ftype !== undefined ? items.find((i) => i.ftype === q.ftype) : (items.find((i) => i.ftype === 'squashfs') ?? items.find((i) => i.ftype === 'root.tar.xz'));
  const keys = Object.keys(versions).sort();
  let version: string;
  if (q.version !== undefined) {
    if (!Object.hasOwn(versions, q.version)) throw invalid(`simplestreams ${where}: ${product} has no version ${JSON.stringify(q.version)} (versions: ${listed(keys.reverse())})`);
    version = q.version;
  } else {
    const usable = keys.filter((k) => pickItem(itemsOf(versions[k])));
    if (usable.length === 0) {
      if (keys.length === 0) throw invalid(`simplestreams ${where}: ${product} has no versions`);
      const ftypes = [...new Set(keys.flatMap((k) => itemsOf(versions[k]).map((i) => String(i.ftype))))].sort();
      throw invalid(`simplestreams ${where}: no version of ${product} has ${q.ftype === undefined ? 'a squashfs or root.tar.xz item' : `an item of ftype ${JSON.stringify(q.ftype)}`} (ftypes: ${listed(ftypes)})`);
    }
    version = usable[usable.length - 1]!;
  }
  const items = itemsOf(versions[version]);
  const item = pickItem(items);
  if (!item) {
    throw invalid(
      `simplestreams ${where}: ${product} ${version} has no ${q.ftype === undefined ? 'squashfs or root.tar.xz' : JSON.stringify(q.ftype)} item (ftypes: ${listed(items.map((i) => String(i.ftype)))})`,
    );
  }
  const path = item.path;
  const sha256 = item.sha256;
  if (typeof path !== 'string' || path === '' || /^[a-z][a-z0-9+.-]*:/i.test(path) || path.split('/').includes('..')) {
    throw upstream(`simplestreams ${where}: ${product} ${version} ${String(item.ftype)}: no relative path`);
  }
  if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) throw upstream(`simplestreams ${where}: ${product} ${version} ${String(item.ftype)}: no sha256`);
  const size = typeof item.size === 'number' && Number.isSafeInteger(item.size) && item.size >= 0 ? item.size : undefined;
  return { product, version, ftype: String(item.ftype), path, sha256, ...(size === undefined ? {} : { size }) };
}

/** The format an item's ftype or path says (squashfs items, root tarballs). */
function formatOf(sel: Selected): { format?: ImageFormat; compression: ResolvedImage['compression'] } {
  const hint = fromSuffix(sel.path);
  const format = sel.ftype === 'squashfs' ? 'squashfs' : hint.format;
  return { ...(format ? { format } : {}), compression: hint.compression ?? 'none' };
}

export async function resolveSimplestreams(q: SimplestreamsQuery, server: Server, opts: ResolveOptions = {}): Promise<ResolvedImage> {
  const { where, fetch: common } = serverContext(server, opts);
  const index = await fetchJson(joinUrl(server.url, 'streams/v1/index.json'), common);
  const doc = await fetchJson(joinUrl(server.url, productsPath(index, where)), common);
  const sel = selectItem(doc, q, where);
  return {
    url: joinUrl(server.url, sel.path),
    digest: `sha256:${sel.sha256}`,
    ...(sel.size === undefined ? {} : { size: sel.size }),
    ...formatOf(sel),
    ...(server.ca_file === undefined ? {} : { ca_file: server.ca_file }),
    description: `simplestreams ${sel.product} ${sel.version} ${sel.ftype} at ${where}`,
  };
}
