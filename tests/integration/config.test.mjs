// The command line and the config file: --help, and config errors that stop the
// start with `FILE:LINE:COL: key: why`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SLOW, startServer, httpRequest, openWs } from './lib/orrery.mjs';

const BIN = process.env.ORRERY_BIN;
const KEYS = {
  listen: '127.0.0.1:8080',
  workers: null, // default: the number of cores
  base_domain: 'localhost',
  idle_timeout_ms: '60000',
  max_message_bytes: '5000000',
  drain_ms: '5000',
  close_timeout_ms: '5000',
  handshake_timeout_ms: '10000',
  log_level: 'info',
};

function run(args, configText) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orrery-cfg-'));
  try {
    const file = path.join(dir, 'orrery.json');
    if (configText !== undefined) fs.writeFileSync(file, configText);
    const r = spawnSync(BIN, args.map((a) => (a === '@CFG' ? file : a)), { encoding: 'utf8', timeout: 10000 * SLOW });
    return { ...r, file };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('--help lists every flag and config key with its default', () => {
  const r = run(['--help']);
  assert.equal(r.status, 0);
  const out = r.stdout + r.stderr;
  for (const flag of ['--config', '--listen', '--help']) assert.ok(out.includes(flag), flag);
  for (const [k, def] of Object.entries(KEYS)) {
    const line = out.split('\n').find((l) => new RegExp(`^\\s*"?${k}\\b`).test(l));
    assert.ok(line, `key ${k} listed`);
    if (def) assert.ok(line.includes(def), `default of ${k} (${def}) in: ${line}`);
  }
});

test('config errors name the file, line, column and key, and stop the start', () => {
  const cases = [
    ['unknown key', '{\n  "workers": 2,\n  "bogus": 1\n}\n', 3, 'bogus'],
    ['wrong type', '{\n  "workers": "two"\n}\n', 2, 'workers'],
    ['out of range', '{\n  "idle_timeout_ms": -5\n}\n', 2, 'idle_timeout_ms'],
    ['bad listen', '{\n  "drain_ms": 10,\n  "listen": "nope"\n}\n', 3, 'listen'],
    ['bad log level', '{"log_level": "loud"}', 1, 'log_level'],
    ['max_message_bytes zero', '{"max_message_bytes": 0}', 1, 'max_message_bytes'],
  ];
  for (const [what, text, line, key] of cases) {
    const r = run(['--config', '@CFG', '--listen', '127.0.0.1:0'], text);
    assert.notEqual(r.status, 0, `${what}: exit status`);
    assert.equal(r.signal, null, `${what}: not killed by a signal (${r.signal})`);
    const re = new RegExp(`${r.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:${line}:\\d+: ${key}: \\S`);
    assert.match(r.stderr, re, what);
  }
  const syntax = run(['--config', '@CFG'], '{"workers": 2,,}');
  assert.notEqual(syntax.status, 0);
  assert.match(syntax.stderr, /orrery\.json:1:\d+: /);
  const missing = run(['--config', '/nonexistent/orrery.json']);
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /\/nonexistent\/orrery\.json/);
});

test('an unknown flag or a missing flag argument stops the start', () => {
  for (const args of [['--bogus-flag'], ['--listen'], ['--config']]) {
    const r = run(args);
    assert.notEqual(r.status, 0, args.join(' '));
    assert.equal(r.signal, null);
    assert.ok(r.stderr.length > 0, `${args.join(' ')}: says why`);
  }
});

test('more pools listed than max_pools stops the start', () => {
  const r = run(['--config', '@CFG', '--listen', '127.0.0.1:0'],
    '{"max_pools": 1, "pools": {"tenant:a": {}, "tenant:b": {}}}');
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /2 pools listed in "pools", more than max_pools \(1\)/);
});

test('a gear whose pool does not fit in max_pools is refused and skipped like any failed file', async (t) => {
  const srv = await startServer(t, { max_pools: 3, pools: { 'tenant:a': {} } });
  // The listed pool, then chat and echo (files in order): no room for luatestgear's or testgear's.
  await srv.waitForLog(/error .*gear testgear\.so: no room for its pool gear:testgear \(max_pools 3\)/);
  await srv.waitForLog(/\(2 workers, 2 gears\)/);
  assert.equal((await httpRequest(srv.port, 'GET', '/testgear/ws')).status, 404);
  const ws = await openWs(`ws://127.0.0.1:${srv.port}/echo/ws`);
  ws.send('fits');
  assert.equal((await ws.nextMessage()).data.toString(), 'fits');
  ws.close();
});
