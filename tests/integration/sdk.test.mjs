// The SDK as an author outside the tree meets it: `cmake --install` into a
// temporary prefix (what `make install PREFIX=...` runs), then the example
// gear examples/gears/counter, copied out of the tree, built with its own
// Makefile (pkg-config) and with the one-line cc of the README, installed
// into the prefix's gears directory and served by the installed binary to
// real clients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { startServer, openWs, httpRequest } from './lib/orrery.mjs';

const SRC = process.env.ORR_SOURCE_DIR;
const BUILD = process.env.ORR_BUILD_DIR;

function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

/** Every file under dir, relative to it. */
function files(dir, rel = '') {
  return fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(dir, path.join(rel, e.name)) : [path.join(rel, e.name)]).sort();
}

test('an out-of-tree gear built against the installed SDK is served by the installed server', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'orrery-sdk-'));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const prefix = path.join(tmp, 'prefix');

  // The install: exactly these files, all under the prefix.
  run('cmake', ['--install', BUILD, '--prefix', prefix]);
  assert.deepEqual(files(prefix), [
    'bin/orrery',
    'etc/orrery/orrery.json',
    'include/orrery/gear.h',
    'lib/orrery/gears/chat.so',
    'lib/orrery/gears/echo.so',
    'lib/pkgconfig/orrery-gear.pc',
    'lib/systemd/system/orrery.service',
  ], 'the test gears are never installed');
  const manifest = fs.readFileSync(path.join(BUILD, 'install_manifest.txt'), 'utf8').trim().split('\n');
  for (const f of manifest) assert.ok(f.startsWith(`${prefix}/`), `${f} is outside the prefix`);
  const unit = fs.readFileSync(path.join(prefix, 'lib/systemd/system/orrery.service'), 'utf8');
  assert.match(unit, new RegExp(`^ExecStart=${prefix}/bin/orrery --config ${prefix}/etc/orrery/orrery.json$`, 'm'));
  assert.match(unit, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
  assert.match(unit, /^KillSignal=SIGTERM$/m);
  const stop = Number(/^TimeoutStopSec=(\d+)$/m.exec(unit)[1]);
  assert.ok(stop > 5 + 5, `TimeoutStopSec ${stop} s: above drain_ms + close_timeout_ms`);

  // The author's side: pkg-config and nothing else.
  const env = { ...process.env, PKG_CONFIG_PATH: path.join(prefix, 'lib/pkgconfig') };
  assert.equal(run('pkg-config', ['--cflags', 'orrery-gear'], { env }).trim(), `-I${prefix}/include`);
  assert.equal(run('pkg-config', ['--modversion', 'orrery-gear'], { env }).trim(), '3.3');
  const work = path.join(tmp, 'author');
  fs.cpSync(path.join(SRC, 'examples/gears/counter'), work, { recursive: true });
  fs.rmSync(path.join(work, 'counter.so'), { force: true });
  run('sh', ['-c', 'cc -shared -fPIC $(pkg-config --cflags orrery-gear) counter.c -o counter-oneline.so'],
    { env, cwd: work });
  assert.ok(fs.existsSync(path.join(work, 'counter-oneline.so')));
  run('make', ['-C', work, 'install'], { env });
  assert.ok(fs.existsSync(path.join(prefix, 'lib/orrery/gears/counter.so')));

  // The installed binary finds its gears next to itself: no --gears-dir.
  const srv = await startServer(t, { gear_config: { counter: { start: 100 } } },
    { bin: path.join(prefix, 'bin/orrery') });
  await srv.waitForLog(/gear counter: loaded from counter\.so \(gear API 3\.3\)/);
  await srv.waitForLog(/\(2 workers, 3 gears\)/);
  assert.equal((await httpRequest(srv.port, 'GET', '/testgear/ws')).status, 404, 'testgear is not installed');

  const alice = await openWs(`ws://127.0.0.1:${srv.port}/counter/ws?name=alice`);
  assert.equal((await alice.nextMessage()).data.toString(), 'registered alice');
  const bob = await openWs(`ws://127.0.0.1:${srv.port}/counter/ws`);
  bob.send('hello');
  assert.equal((await bob.nextMessage()).data.toString(), 'count 101', 'counts start at gear_config.counter.start');
  bob.send('to alice hi there');
  assert.equal((await bob.nextMessage()).data.toString(), 'count 102');
  assert.equal((await bob.nextMessage()).data.toString(), 'sent alice');
  assert.equal((await alice.nextMessage()).data.toString(), 'from-peer hi there');
  alice.send('x');
  assert.equal((await alice.nextMessage()).data.toString(), 'count 102', "alice's own count: the peer's message and this one");
  bob.send('to nobody x');
  assert.equal((await bob.nextMessage()).data.toString(), 'count 103');
  assert.equal((await bob.nextMessage()).data.toString(), 'not-found nobody');

  const echo = await openWs(`ws://127.0.0.1:${srv.port}/echo/ws`);
  echo.send('installed echo');
  assert.equal((await echo.nextMessage()).data.toString(), 'installed echo');
  for (const ws of [alice, bob, echo]) ws.close();
});
