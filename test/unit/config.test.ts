import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { agentVersion, loadConfig, logLevel, type Config } from '../../src/config.js';

/** Writes a --config file in a temp dir, runs fn with its path, removes it. */
function withFile<T>(text: string, fn: (path: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'imageapi-cfg-'));
  try {
    const f = join(dir, 'c.yaml');
    writeFileSync(f, text);
    return fn(f);
  } finally {
    rmSync(dir, { recursive: true });
  }
}

const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));

describe('configuration', () => {
  it('image settings: defaults, flags, and image_sources checked like the rest', () => {
    const d = loadConfig([], {}) as Config;
    assert.equal(d.image_dir, undefined, 'default: <run_dir>/images');
    assert.equal(d.image_cache_max, 10 * 1024 ** 3);
    assert.equal(d.image_pull_timeout, 600);
    assert.deepEqual(d.image_sources, []);
    const c = loadConfig(['--image-dir', '/srv/images', '--image-cache-max', '2G', '--image-pull-timeout', '30'], {}) as Config;
    assert.deepEqual([c.image_dir, c.image_cache_max, c.image_pull_timeout], ['/srv/images', 2 * 1024 ** 3, 30]);
    withFile('image_sources:\n  - { name: local, type: simplestreams, url: "https://127.0.0.1:8443/" }\n  - { name: j, type: imgapi, url: "http://x/", ca_file: /etc/ca.pem }\n', (f) => {
      assert.deepEqual((loadConfig(['--config', f], {}) as Config).image_sources, [
        { name: 'local', type: 'simplestreams', url: 'https://127.0.0.1:8443/' },
        { name: 'j', type: 'imgapi', url: 'http://x/', ca_file: '/etc/ca.pem' },
      ]);
    });
    const bad: Array<[string, RegExp]> = [
      ['image_sources: { name: x }', /must be a list/],
      ['image_sources: [{ name: x, type: lxd, url: "http://x/" }]', /image_sources\[0\]\.type: simplestreams or imgapi/],
      ['image_sources: [{ name: x, type: imgapi, url: "ftp://x/" }]', /\.url: an http/],
      ['image_sources: [{ name: x, type: imgapi, url: "http://x/", cafile: /a }]', /unknown key "cafile"/],
      ['image_sources: [{ name: x, type: imgapi, url: "http://x/" }, { name: x, type: imgapi, url: "http://y/" }]', /"x" is given twice/],
      ['image_cache_max: lots', /image_cache_max: must be a whole number/],
    ];
    for (const [text, re] of bad) withFile(`${text}\n`, (f) => assert.throws(() => loadConfig(['--config', f], {}), re, text));
  });
  it('defaults: http on 127.0.0.1:8080 and the unix socket, run-dir /var/run/imageapi', () => {
    const c = loadConfig([], {}) as Config;
    assert.deepEqual(c.scheme, ['http', 'unix']);
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.port, 8080);
    assert.equal(c.socket_path, '/var/run/imageapi.sock');
    assert.equal(c.run_dir, '/var/run/imageapi');
    assert.equal(c.log_level, 'info');
  });
  it('flags win over the YAML file, which wins over defaults', () => {
    const dir = mkdtempSync(join(tmpdir(), 'imageapi-cfg-'));
    const f = join(dir, 'c.yaml');
    writeFileSync(f, 'port: 9000\nrun_dir: /tmp/x\nscheme: [http]\nlog_level: debug\n');
    const c = loadConfig(['--config', f, '--port', '9100'], {}) as Config;
    assert.equal(c.port, 9100);
    assert.equal(c.run_dir, '/tmp/x');
    assert.deepEqual(c.scheme, ['http']);
    assert.equal(c.log_level, 'debug');
    rmSync(dir, { recursive: true });
  });
  it('IMAGEAPI_LOGLEVEL takes upstream names and numbers', () => {
    assert.equal((loadConfig([], { IMAGEAPI_LOGLEVEL: 'WARNING' }) as Config).log_level, 'warn');
    assert.equal(logLevel('panic'), 'fatal');
    assert.equal(logLevel('5'), 'debug');
    assert.throws(() => logLevel('loud'), /unknown log level/);
  });
  it('refuses what cannot work', () => {
    assert.throws(() => loadConfig(['--scheme', 'gopher'], {}), /unknown scheme/);
    assert.throws(() => loadConfig(['--scheme', 'https'], {}), /tls-certificate/);
    assert.throws(() => loadConfig(['--port', '70000'], {}), /port/);
    assert.throws(() => loadConfig(['--bogus'], {}), /bogus/);
    assert.throws(() => loadConfig(['--rbd-mode', 'magic'], {}), /rbd-mode/);
    assert.equal(loadConfig(['--help'], {}), 'help');
  });
  it('an unknown or misspelt key in --config is an error naming the key', () => {
    for (const [text, key, hint] of [
      ['prot: 9000\n', 'prot', 'port'],
      ['run-dir: /tmp/x\n', 'run-dir', 'run_dir'],
      ['log_levle: debug\n', 'log_levle', 'log_level'],
      ['port: 9000\nbogus_thing: 1\n', 'bogus_thing', undefined],
    ] as const) {
      withFile(text, (f) => {
        assert.throws(
          () => loadConfig(['--config', f], {}),
          (err: Error) => {
            assert.match(err.message, new RegExp(`unknown key "${key}"`));
            assert.ok(err.message.includes(f), err.message);
            if (hint) assert.match(err.message, new RegExp(`did you mean "${hint}"`));
            else assert.doesNotMatch(err.message, /did you mean/);
            return true;
          },
        );
      });
    }
  });
  it('values in --config are checked like the flags, naming the key', () => {
    withFile('port: "eighty"\n', (f) => assert.throws(() => loadConfig(['--config', f], {}), /c\.yaml: port: not a port number/));
    withFile('port: 70000\n', (f) => assert.throws(() => loadConfig(['--config', f], {}), /port: not a port number/));
    withFile('scheme: [http, gopher]\n', (f) => assert.throws(() => loadConfig(['--config', f], {}), /scheme: unknown scheme "gopher"/));
    withFile('rbd_mode: magic\n', (f) => assert.throws(() => loadConfig(['--config', f], {}), /rbd_mode: "magic" is not auto/));
    withFile('log_level: loud\n', (f) => assert.throws(() => loadConfig(['--config', f], {}), /log_level: unknown log level/));
    withFile('validate_requests: "no"\n', (f) => assert.throws(() => loadConfig(['--config', f], {}), /validate_requests: must be true or false/));
    withFile('run_dir: [a, b]\n', (f) => assert.throws(() => loadConfig(['--config', f], {}), /run_dir: must be a non-empty string/));
    withFile('- port\n', (f) => assert.throws(() => loadConfig(['--config', f], {}), /must be a mapping/));
    withFile('port: [\n', (f) => assert.throws(() => loadConfig(['--config', f], {}), /c\.yaml/));
    withFile('userns_pool: "0:65536"\n', (f) => assert.throws(() => loadConfig(['--config', f], {}), /userns_pool: must be START:COUNT/));
    withFile('userns_pool: "100000:100"\n', (f) => assert.throws(() => loadConfig(['--config', f], {}), /userns_pool: must be START:COUNT/));
  });

  it('userns_pool: START:COUNT host ids for automatic user-namespace ranges, systemd-nspawn\'s by default', () => {
    assert.deepEqual((loadConfig([], {}) as Config).userns_pool, { start: 0x80000, count: 0x70000000 - 0x80000 });
    withFile('userns_pool: "1000000:655360"\n', (f) => assert.deepEqual((loadConfig(['--config', f], {}) as Config).userns_pool, { start: 1000000, count: 655360 }));
    assert.throws(() => loadConfig(['--userns-pool', '1:65536'], {}), /userns-pool/);
  });
  it('an empty file, and null values, mean the defaults', () => {
    withFile('', (f) => assert.equal((loadConfig(['--config', f], {}) as Config).port, 8080));
    withFile('port: null\nrun_dir: ~\n', (f) => {
      const c = loadConfig(['--config', f], {}) as Config;
      assert.equal(c.port, 8080);
      assert.equal(c.run_dir, '/var/run/imageapi');
    });
  });
  it('one table for flags, file and environment: every flag is a file key, and file-only keys have no flag', () => {
    withFile(
      [
        'scheme: [https, unix]', 'host: 127.0.0.2', 'port: 1', 'tls_host: 127.0.0.3', 'tls_port: 2', 'socket_path: /tmp/s.sock',
        'tls_certificate: /c.pem', 'tls_key: /k.pem', 'tls_ca: /ca.pem', 'run_dir: /tmp/r', 'log_level: 5', 'helper: /h',
        'rbd_mode: fuse', 'validate_responses: true', 'validate_requests: false',
      ].join('\n'),
      (f) => {
        const want = {
          scheme: ['https', 'unix'], host: '127.0.0.2', port: 1, tls_host: '127.0.0.3', tls_port: 2, socket_path: '/tmp/s.sock',
          tls_certificate: '/c.pem', tls_key: '/k.pem', tls_ca: '/ca.pem', run_dir: '/tmp/r', log_level: 'debug', helper: '/h',
          rbd_mode: 'fuse', validate_responses: true, validate_requests: false,
        };
        const got = loadConfig(['--config', f], {}) as unknown as Record<string, unknown>;
        assert.deepEqual(Object.fromEntries(Object.keys(want).map((k) => [k, got[k]])), want);
        // the same keys as flags win over the file
        const c = loadConfig(['--config', f, '--scheme', 'http', '--run-dir', '/tmp/q', '--tls-port', '3', '--log-level', 'warn'], {}) as Config;
        assert.deepEqual(c.scheme, ['http']);
        assert.equal(c.run_dir, '/tmp/q');
        assert.equal(c.tls_port, 3);
        assert.equal(c.log_level, 'warn');
      },
    );
    assert.throws(() => loadConfig(['--validate-requests', 'false'], {}), /validate-requests/);
  });
  it('the environment sits between flags and the file, and is checked too', () => {
    withFile('log_level: debug\nvalidate_responses: false\n', (f) => {
      const c = loadConfig(['--config', f], { IMAGEAPI_LOGLEVEL: 'error', IMAGEAPI_VALIDATE_RESPONSES: '1' }) as Config;
      assert.equal(c.log_level, 'error');
      assert.equal(c.validate_responses, true);
      assert.equal((loadConfig(['--config', f, '--log-level', 'trace'], { IMAGEAPI_LOGLEVEL: 'error' }) as Config).log_level, 'trace');
    });
    assert.throws(() => loadConfig([], { IMAGEAPI_LOGLEVEL: 'loud' }), /IMAGEAPI_LOGLEVEL: unknown log level/);
    assert.throws(() => loadConfig([], { IMAGEAPI_VALIDATE_RESPONSES: 'maybe' }), /IMAGEAPI_VALIDATE_RESPONSES/);
  });
  it('imageapi-server exits non-zero on a config typo, naming the key, before it starts anything', () => {
    withFile('prot: 9000\n', (f) => {
      const r = spawnSync(process.execPath, [MAIN, '--config', f, '--run-dir', join(tmpdir(), 'imageapi-never-made')], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /unknown key "prot" \(did you mean "port"\?\)/);
      assert.equal(r.stdout, '');
    });
  });
  it('imageapi-server exits 1 naming a native program it cannot run, before it makes its run-dir', () => {
    const runDir = join(tmpdir(), `imageapi-never-made-${process.pid}`);
    const r = spawnSync(process.execPath, [MAIN, '--helper', '/nonexistent/imageapi-init', '--run-dir', runDir, '--port', '0'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /the init helper \(--helper\) \/nonexistent\/imageapi-init cannot be run \(ENOENT\): build it with `make -C native`/);
    assert.equal(existsSync(runDir), false, 'nothing made');
  });
  it('imageapi-server --version prints the version of its package', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal(agentVersion(), pkg.version);
    assert.equal(loadConfig(['--version'], {}), 'version');
    const r = spawnSync(process.execPath, [MAIN, '--version'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `imageapi-server ${pkg.version}\n`);
  });
});
