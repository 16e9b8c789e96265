// No server: the choice of product, version and item in simplestreams documents, and of the
// image in IMGAPI lists and manifests.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkManifest, selectByName } from '../../../src/image/sources/imgapi.js';
import { hostArch, productsPath, selectItem } from '../../../src/image/sources/simplestreams.js';

const h = (c: string) => c.repeat(64);
const item = (ftype: string, path: string, c: string, size = 10) => ({ ftype, path, sha256: h(c), size });
const products = {
  'alpine:3.20:amd64:default': {
    aliases: 'alpine/3.20,alpine/3.20/default,alpine/edge',
    arch: 'amd64',
    os: 'Alpine',
    release: '3.20',
    variant: 'default',
    versions: {
      '20261130_0000': { items: { 'root.squashfs': item('squashfs', 'images/alpine/3.20/amd64/default/20261130_0000/rootfs.squashfs', 'a') } },
      '20261201_0000': {
        items: {
          'root.squashfs': item('squashfs', 'images/alpine/3.20/amd64/default/20261201_0000/rootfs.squashfs', 'b'),
          'root.tar.xz': item('root.tar.xz', 'images/alpine/3.20/amd64/default/20261201_0000/root.tar.xz', 'c'),
        },
      },
      '20261202_0000': { items: { 'lxd.tar.xz': item('lxd.tar.xz', 'images/x/lxd.tar.xz', 'd') } },
    },
  },
  'alpine:3.20:arm64:default': {
    aliases: 'alpine/3.20,alpine/3.20/default,alpine/edge',
    arch: 'arm64',
    os: 'Alpine',
    release: '3.20',
    variant: 'default',
    versions: { '20261203_0000': { items: { 'root.squashfs': item('squashfs', 'images/arm/rootfs.squashfs', 'e') } } },
  },
  'alpine:3.20:amd64:cloud': {
    aliases: 'alpine/3.20/cloud',
    arch: 'amd64',
    os: 'Alpine',
    release: '3.20',
    variant: 'cloud',
    versions: { '20261201_0000': { items: { 'root.tar.xz': item('root.tar.xz', 'images/c/root.tar.xz', 'f') } } },
  },
};
const doc = { content_id: 'images', datatype: 'image-downloads', format: 'products:1.0', products };

describe('simplestreams selection', () => {
  it('the index names the products document', () => {
    assert.equal(productsPath({ format: 'index:1.0', index: { images: { datatype: 'image-downloads', path: 'streams/v1/images.json', products: [] } } }, 'S'), 'streams/v1/images.json');
    assert.equal(productsPath({ index: { other: { datatype: 'image-ids', path: 'x.json' }, dl: { datatype: 'image-downloads', path: 'streams/v1/dl.json' } } }, 'S'), 'streams/v1/dl.json');
    for (const broken of [null, {}, { index: [] }, { index: { images: { datatype: 'image-downloads' } } }, { index: { images: { datatype: 'image-downloads', path: 'https://evil/x.json' } } }, { index: { images: { datatype: 'image-downloads', path: '../x.json' } } }]) {
      assert.throws(() => productsPath(broken, 'S'), (e: { kind: string }) => e.kind === 'UPSTREAM', JSON.stringify(broken));
    }
  });

  it('by alias and arch: the newest version that has a squashfs item', () => {
    const s = selectItem(doc, { alias: 'alpine/edge', arch: 'amd64' }, 'S');
    assert.deepEqual(s, { product: 'alpine:3.20:amd64:default', version: '20261201_0000', ftype: 'squashfs', path: 'images/alpine/3.20/amd64/default/20261201_0000/rootfs.squashfs', sha256: h('b'), size: 10 });
    assert.equal(selectItem(doc, { alias: 'alpine/edge', arch: 'arm64' }, 'S').sha256, h('e'), 'the other arch is another product');
  });

  it('by os/release/arch/variant (case-insensitive, variant default), a named version, an ftype', () => {
    assert.equal(selectItem(doc, { os: 'alpine', release: '3.20', arch: 'amd64' }, 'S').sha256, h('b'));
    assert.equal(selectItem(doc, { os: 'ALPINE', release: '3.20', arch: 'amd64', version: '20261130_0000' }, 'S').sha256, h('a'));
    assert.equal(selectItem(doc, { alias: 'alpine/3.20', arch: 'amd64', ftype: 'root.tar.xz' }, 'S').sha256, h('c'));
    assert.equal(selectItem(doc, { alias: 'alpine/3.20', arch: 'amd64', ftype: 'lxd.tar.xz' }, 'S').version, '20261202_0000');
    // No squashfs item at all: the root tarball.
    assert.equal(selectItem(doc, { os: 'alpine', release: '3.20', arch: 'amd64', variant: 'cloud' }, 'S').ftype, 'root.tar.xz');
  });

  it('what is not there is INVALID, listing what is', () => {
    const inv = (re: RegExp) => (e: { kind: string; message: string }) => e.kind === 'INVALID' && re.test(e.message);
    assert.throws(() => selectItem(doc, { alias: 'ubuntu/noble', arch: 'amd64' }, 'S'), inv(/no image with alias "ubuntu\/noble" for amd64 .*alpine\/3\.20, alpine\/3\.20\/cloud/));
    assert.throws(() => selectItem(doc, { os: 'debian', release: '12', arch: 'amd64' }, 'S'), inv(/no image debian\/12\/amd64\/default .*alpine\/3\.20\/amd64\/cloud/));
    assert.throws(() => selectItem(doc, { alias: 'alpine/edge', arch: 'amd64', version: '1' }, 'S'), inv(/no version "1" \(versions: 20261202_0000, 20261201_0000, 20261130_0000\)/));
    assert.throws(() => selectItem(doc, { alias: 'alpine/edge', arch: 'amd64', version: '20261202_0000' }, 'S'), inv(/has no squashfs or root.tar.xz item \(ftypes: lxd.tar.xz\)/));
    assert.throws(() => selectItem(doc, { alias: 'alpine/edge', arch: 'amd64', ftype: 'disk.img' }, 'S'), inv(/disk.img/));
    assert.throws(() => selectItem(doc, { arch: 'amd64' }, 'S'), inv(/name an alias, or os and release/));
  });

  it('a broken products document or item is UPSTREAM', () => {
    const up = (e: { kind: string }) => e.kind === 'UPSTREAM';
    assert.throws(() => selectItem({}, { alias: 'a' }, 'S'), up);
    const broken = (it: object) => ({ products: { 'a:1:amd64:default': { aliases: 'a', arch: 'amd64', versions: { v: { items: { x: { ftype: 'squashfs', ...it } } } } } } });
    assert.throws(() => selectItem(broken({ path: 'a/b', sha256: 'zz' }), { alias: 'a', arch: 'amd64' }, 'S'), up);
    assert.throws(() => selectItem(broken({ path: '../../etc/passwd', sha256: h('a') }), { alias: 'a', arch: 'amd64' }, 'S'), up);
    assert.throws(() => selectItem(broken({ path: 'http://evil/x', sha256: h('a') }), { alias: 'a', arch: 'amd64' }, 'S'), up);
    const dup = { products: { p1: { aliases: 'a', arch: 'amd64', versions: {} }, p2: { aliases: 'a', arch: 'amd64', versions: {} } } };
    assert.throws(() => selectItem(dup, { alias: 'a', arch: 'amd64' }, 'S'), up);
  });

  it('the host arch in simplestreams names', () => {
    assert.equal(hostArch('x64'), 'amd64');
    assert.equal(hostArch('arm64'), 'arm64');
    assert.equal(hostArch('arm'), 'armhf');
  });
});

const sha1 = (c: string) => c.repeat(40);
const m = (uuid: string, name: string, version: string, published_at: string, extra: object = {}) => ({
  uuid,
  name,
  version,
  published_at,
  state: 'active',
  files: [{ sha1: sha1(uuid[0]!), size: 100, compression: 'gzip' }],
  ...extra,
});
const U = (c: string) => `${c.repeat(8)}-${c.repeat(4)}-4${c.repeat(3)}-8${c.repeat(3)}-${c.repeat(12)}`;
const list = [
  m(U('a'), 'base', '1.0', '2026-01-01T00:00:00Z'),
  m(U('b'), 'base', '2.0', '2026-06-01T00:00:00Z'),
  m(U('c'), 'base', '3.0', '2026-09-01T00:00:00Z', { state: 'disabled' }),
  m(U('d'), 'base', '1.5', '2026-03-01T00:00:00Z'),
  m(U('e'), 'other', '1', '2026-12-01T00:00:00Z'),
];

describe('IMGAPI selection', () => {
  it('by name: the newest published active image; by name and version: that one', () => {
    assert.equal(selectByName(list, 'base', undefined, 'S').uuid, U('b'));
    assert.equal(selectByName(list, 'base', '1.0', 'S').uuid, U('a'));
    assert.deepEqual(selectByName(list, 'other', undefined, 'S').file, { sha1: sha1('e'), size: 100, compression: 'gzip' });
  });

  it('unknown names and versions are INVALID listing what there is; a disabled image is not offered', () => {
    const inv = (re: RegExp) => (e: { kind: string; message: string }) => e.kind === 'INVALID' && re.test(e.message);
    assert.throws(() => selectByName(list, 'nope', undefined, 'S'), inv(/names there: base, other/));
    assert.throws(() => selectByName(list, 'base', '3.0', 'S'), inv(/no version "3.0" \(versions: 2.0, 1.5, 1.0\)/));
    assert.throws(() => selectByName({ images: [] }, 'base', undefined, 'S'), (e: { kind: string }) => e.kind === 'UPSTREAM');
  });

  it('manifests: files[0] sha1 (40 hex), size, compression (gzip, bzip2, xz, none; default none)', () => {
    assert.deepEqual(checkManifest({ uuid: U('a'), files: [{ sha1: sha1('1'), size: 5 }] }, 'S'), { uuid: U('a'), file: { sha1: sha1('1'), size: 5, compression: 'none' } });
    const up = (e: { kind: string }) => e.kind === 'UPSTREAM';
    assert.throws(() => checkManifest({ uuid: U('a'), files: [] }, 'S'), up);
    assert.throws(() => checkManifest({ uuid: U('a'), files: [{ sha1: 'x', size: 5 }] }, 'S'), up);
    assert.throws(() => checkManifest({ uuid: U('a'), files: [{ sha1: sha1('1'), size: -1 }] }, 'S'), up);
    assert.throws(() => checkManifest({ uuid: U('a'), files: [{ sha1: sha1('1'), size: 5, compression: 'lz4' }] }, 'S'), up);
    assert.throws(() => checkManifest({ uuid: '../x', files: [{ sha1: sha1('1'), size: 5 }] }, 'S'), up);
  });
});
