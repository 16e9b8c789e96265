import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig, logLevel, type Config } from '../../src/config.js';

describe('configuration', () => {
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
});
