// Gears loaded from shared objects at start: every refusal is logged as
// `gear FILE: why` and skipped while the other gears serve, a gear built
// against the previous minor API version loads and runs, and the server
// exports exactly what gear.h declares.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { startServer, openWs, httpRequest } from './lib/orrery.mjs';

const GEARS = process.env.ORR_GEARS_DIR;
const TEST_GEARS = process.env.ORR_TEST_GEARS_DIR;

/** A gears_dir holding these files: [source path, name in the directory]. */
function gearsDir(t, files) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orrery-gears-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const [from, name] of files) fs.copyFileSync(from, path.join(dir, name));
  return dir;
}

async function echoes(srv, gear, msg, want = msg) {
  const ws = await openWs(`ws://127.0.0.1:${srv.port}/${gear}/ws`);
  ws.send(msg);
  const ev = await ws.nextMessage();
  assert.equal(ev.data.toString(), want);
  ws.close();
  await ws.closed;
}

test('each refused file is logged with why and skipped; the other gears serve', async (t) => {
  const tg = (n) => path.join(TEST_GEARS, `${n}.so`);
  const dir = gearsDir(t, [
    [path.join(GEARS, 'echo.so'), 'echo.so'],
    [tg('hello'), 'hello.so'],
    [tg('noentry'), 'noentry.so'],
    [tg('api999'), 'api999.so'],
    [tg('newer_minor'), 'newer_minor.so'],
    [tg('badname'), 'badname.so'],
    [tg('badroute'), 'badroute.so'],
    [tg('dup'), 'zz_dup.so'], // after echo.so: echo is served already
    [tg('refuse'), 'refuse.so'],
    [tg('unresolved'), 'unresolved.so'],
  ]);
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'not a shared object name: ignored');
  fs.writeFileSync(path.join(dir, 'garbage.so'), 'this is not an ELF file');
  const srv = await startServer(t, {}, { args: ['--gears-dir', dir] });
  const why = {
    'noentry.so': /gear noentry\.so: no orr_gear_entry: not a gear/,
    'api999.so': /gear api999\.so: built against gear API 0\.999 \(api_version 999\); this server speaks 3\.3: rebuild it/,
    'newer_minor.so': /gear newer_minor\.so: built against gear API 3\.99, newer than this server's 3\.3/,
    'badname.so': /gear badname\.so: gear name 'Bad-Name' is not valid/,
    'badroute.so': /gear badroute\.so: route no-leading-slash: /,
    'zz_dup.so': /gear zz_dup\.so: gear echo is served already \(by echo\.so\)/,
    'refuse.so': /gear refuse\.so: on_load refused it \(-1\)/,
    'unresolved.so': /gear unresolved\.so: dlopen: .*undefined symbol: orr_not_in_the_api/,
    'garbage.so': /gear garbage\.so: dlopen: /,
  };
  for (const [file, re] of Object.entries(why)) {
    const line = await srv.waitForLog(re, 2000, `${file}'s refusal`);
    assert.match(line, / error /, `${file}: an error line`);
  }
  await srv.waitForLog(/listening on .*\(2 workers, 2 gears\)/);
  assert.ok(!srv.stderr.includes('notes.txt'), 'a file not named *.so is not looked at');
  await echoes(srv, 'echo', 'still here');
  await echoes(srv, 'hello', 'hi');
  for (const gone of ['refuse', 'badroute', 'future', 'api999']) {
    const r = await httpRequest(srv.port, 'GET', `/${gone}/ws`);
    assert.equal(r.status, 404, `${gone}: not served`);
  }
});

test("a gear refused by its on_load is served once its gear_config lets it", async (t) => {
  const dir = gearsDir(t, [[path.join(TEST_GEARS, 'refuse.so'), 'refuse.so']]);
  const srv = await startServer(t, { gear_config: { refuse: { ok: true } } },
    { args: ['--gears-dir', dir] });
  await srv.waitForLog(/gear refuse: loaded from refuse\.so/);
  await echoes(srv, 'refuse', 'configured');
});

test('a gear built against gear API 3.0 loads and runs on 3.2 (no field read past its struct)', async (t) => {
  const dir = gearsDir(t, [[path.join(TEST_GEARS, 'oldapi.so'), 'oldapi.so']]);
  const srv = await startServer(t, {}, { args: ['--gears-dir', dir] });
  await srv.waitForLog(/gear oldapi: loaded from oldapi\.so \(gear API 3\.0\)/);
  await echoes(srv, 'oldapi', 'ping', 'old:ping');
  // Stopping runs every gear's on_unload: 3.0 had none, and none is called.
  srv.proc.kill('SIGTERM');
  const exit = await srv.exited;
  assert.equal(exit.code, 0, srv.stderr);
});

test('a gears_dir that cannot be read stops the start with a clear error', () => {
  const missing = path.join(os.tmpdir(), `orrery-no-such-dir-${process.pid}`);
  const r = spawnSync(process.env.ORRERY_BIN,
    ['--listen', '127.0.0.1:0', '--gears-dir', missing], { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`orrery: gears_dir ${missing}: No such file or directory`));
});

test('the server exports exactly the functions gear.h declares', () => {
  const out = execFileSync('python3', [
    path.join(process.env.ORR_SOURCE_DIR, 'scripts', 'gear_exports.py'), 'check',
    path.join(process.env.ORR_SOURCE_DIR, 'include', 'orrery', 'gear.h'), process.env.ORRERY_BIN,
  ], { encoding: 'utf8' });
  assert.match(out, /exports the \d+ functions of gear\.h, and nothing else/);
});
