// No root, no server: suffixes, magic numbers, digests and uri requests.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDigest, shownUrl } from '../../../src/image/fetch.js';
import { compressionOfBytes, formatOfBytes, fromSuffix } from '../../../src/image/format.js';
import { resolve, serverOf } from '../../../src/image/sources/index.js';

const at = (off: number, bytes: number[] | string, len = 4096) => {
  const b = Buffer.alloc(len);
  (typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : Buffer.from(bytes)).copy(b, off);
  return b;
};

describe('image formats and compressions', () => {
  it('suffixes', () => {
    assert.deepEqual(fromSuffix('https://h/x/busybox.sqsh'), { compression: 'none', format: 'squashfs' });
    assert.deepEqual(fromSuffix('https://h/rootfs.squashfs?x=1'), { compression: 'none', format: 'squashfs' });
    assert.deepEqual(fromSuffix('http://h/a.tar'), { compression: 'none', format: 'tar' });
    assert.deepEqual(fromSuffix('http://h/a.tar.gz'), { compression: 'gzip', format: 'tar' });
    assert.deepEqual(fromSuffix('http://h/a.TGZ'), { compression: 'gzip', format: 'tar' });
    assert.deepEqual(fromSuffix('http://h/a.tar.xz'), { compression: 'xz', format: 'tar' });
    assert.deepEqual(fromSuffix('http://h/a.tar.zst'), { compression: 'zstd', format: 'tar' });
    assert.deepEqual(fromSuffix('http://h/a.tar.bz2'), { compression: 'bzip2', format: 'tar' });
    assert.deepEqual(fromSuffix('http://h/a.sqsh.gz'), { compression: 'gzip' });
    assert.deepEqual(fromSuffix('http://h/a.img.xz'), { compression: 'xz' });
    assert.deepEqual(fromSuffix('http://h/a.zst'), { compression: 'zstd' });
    assert.deepEqual(fromSuffix('http://h/a.erofs'), { compression: 'none', format: 'erofs' });
    assert.deepEqual(fromSuffix('http://h/file'), {});
    assert.deepEqual(fromSuffix('images/x/root.tar.xz'), { compression: 'xz', format: 'tar' });
  });

  it('magic numbers: squashfs at 0, erofs at 1024, ext4 at 1080, tar at 257', () => {
    assert.equal(formatOfBytes(at(0, 'hsqs')), 'squashfs');
    assert.equal(formatOfBytes(at(1024, [0xe2, 0xe1, 0xf5, 0xe0])), 'erofs');
    assert.equal(formatOfBytes(at(1080, [0x53, 0xef])), 'ext4');
    assert.equal(formatOfBytes(at(257, 'ustar')), 'tar');
    assert.equal(formatOfBytes(at(0, 'nothing')), undefined);
    assert.equal(formatOfBytes(Buffer.from('hsq')), undefined, 'too short');
    assert.equal(formatOfBytes(at(1024, [0xe0, 0xf5, 0xe1, 0xe2])), undefined, 'erofs magic is little-endian');
  });

  it('compression magic', () => {
    assert.equal(compressionOfBytes(Buffer.from([0x1f, 0x8b, 8, 0])), 'gzip');
    assert.equal(compressionOfBytes(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 0])), 'xz');
    assert.equal(compressionOfBytes(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0])), 'zstd');
    assert.equal(compressionOfBytes(Buffer.from('BZh91AY&SY')), 'bzip2');
    assert.equal(compressionOfBytes(Buffer.from('BZhx')), 'none');
    assert.equal(compressionOfBytes(Buffer.from('hsqs')), 'none');
  });

  it('digests: sha256 with 64 hex digits, sha1 with 40, lower case', () => {
    assert.deepEqual(parseDigest(`sha256:${'a'.repeat(64)}`), { algo: 'sha256', hex: 'a'.repeat(64) });
    assert.deepEqual(parseDigest(`sha1:${'0'.repeat(40)}`), { algo: 'sha1', hex: '0'.repeat(40) });
    for (const bad of [`sha256:${'a'.repeat(40)}`, `sha1:${'a'.repeat(64)}`, `SHA256:${'a'.repeat(64)}`, `sha256:${'A'.repeat(64)}`, `md5:${'a'.repeat(32)}`, 'sha256:', '', `sha256:${'a'.repeat(63)}g`]) {
      assert.throws(() => parseDigest(bad), (e: { kind: string }) => e.kind === 'INVALID', bad);
    }
  });

  it('a URL in a message never carries its user and password', () => {
    assert.equal(shownUrl('https://bob:hunter2@h:8443/a?b=1'), 'https://h:8443/a?b=1');
    assert.equal(shownUrl('not a url'), '(malformed URL)');
  });
});

describe('uri requests and sources, resolved without a server', () => {
  const sum = `sha256:${'1'.repeat(64)}`;
  it('a uri with its checksum: compression and format from the suffix unless named', async () => {
    assert.deepEqual(await resolve({ uri: 'https://h/i/busybox.tar.xz', checksum: sum }, []), {
      url: 'https://h/i/busybox.tar.xz',
      digest: sum,
      compression: 'xz',
      format: 'tar',
      description: 'https://h/i/busybox.tar.xz',
    });
    const r = await resolve({ uri: 'file:///srv/x.img', checksum: sum, compression: 'gzip', format: 'ext4', ca_file: '/ca.pem' }, []);
    assert.equal(r.compression, 'gzip');
    assert.equal(r.format, 'ext4');
    assert.equal(r.ca_file, '/ca.pem');
    assert.equal((await resolve({ uri: 'http://h/x', checksum: sum }, [])).compression, 'none');
  });

  it('refused: other schemes, a file URL with a host, a missing or malformed checksum, two kinds at once', async () => {
    const kind = (e: { kind: string }) => e.kind === 'INVALID';
    await assert.rejects(resolve({ uri: 'ftp://h/x.sqsh', checksum: sum }, []), kind);
    await assert.rejects(resolve({ uri: 'file://other/x.sqsh', checksum: sum }, []), kind);
    await assert.rejects(resolve({ uri: 'http://h/x.sqsh' } as never, []), kind);
    await assert.rejects(resolve({ uri: 'http://h/x.sqsh', checksum: 'sha256:xyz' }, []), kind);
    await assert.rejects(resolve({ uri: 'x', checksum: sum }, []), kind);
    await assert.rejects(resolve({ uri: 'http://h/x', checksum: sum, imgapi: {} } as never, []), kind);
    await assert.rejects(resolve({ uri: 'http://h/x', checksum: sum, format: 'zip' } as never, []), kind);
  });

  it('a named source: configured with the right type, else INVALID listing the configured names', () => {
    const sources = [
      { name: 'a', type: 'simplestreams' as const, url: 'https://a/', ca_file: '/a.pem' },
      { name: 'b', type: 'imgapi' as const, url: 'https://b/' },
      { name: 'c', type: 'simplestreams' as const, url: 'https://c/' },
    ];
    assert.deepEqual(serverOf({ source: 'a' }, 'simplestreams', sources), { url: 'https://a/', name: 'a', ca_file: '/a.pem' });
    assert.deepEqual(serverOf({ url: 'http://x/' }, 'imgapi', sources), { url: 'http://x/' });
    assert.throws(() => serverOf({ source: 'b' }, 'simplestreams', sources), /configured: a, c/);
    assert.throws(() => serverOf({ source: 'zz' }, 'imgapi', sources), /no such imgapi source.*configured: b/);
    assert.throws(() => serverOf({ source: 'a' }, 'imgapi', []), /configured: none/);
    assert.throws(() => serverOf({}, 'imgapi', sources), /a source .* or a url is required/);
    assert.throws(() => serverOf({ source: 'a', url: 'http://x/' }, 'simplestreams', sources), /not both/);
  });
});
