// Deploying gears into a running server: SIGHUP and POST /_orrery/gears/reload
// scan gears_dir again. A changed file is a new version for new handshakes
// while open connections keep theirs (no one dropped, no message lost); the
// old version is unloaded after its last connection; a removed file stops
// new handshakes; every refusal leaves the served version answering.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, openWs, httpRequest, parseMetrics, SLOW, sleep } from './lib/orrery.mjs';

const GEARS = process.env.ORR_GEARS_DIR;
const TG = (n) => path.join(process.env.ORR_TEST_GEARS_DIR, `${n}.so`);
const TOKEN = 'reload-t0ken';

function gearsDir(t, files) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orrery-reload-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const [from, name] of files) fs.copyFileSync(from, path.join(dir, name));
  return dir;
}

/** An atomic deploy: copied under a hidden name, then renamed into place. */
function deploy(dir, from, name) {
  const tmp = path.join(dir, `.${name}.tmp`);
  fs.copyFileSync(from, tmp);
  fs.renameSync(tmp, path.join(dir, name));
}

async function reload(srv, token = TOKEN) {
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  const r = await httpRequest(srv.port, 'POST', '/_orrery/gears/reload', { headers });
  return { status: r.status, body: r.status === 200 ? JSON.parse(r.body.toString()) : r.body.toString() };
}

async function metrics(srv) {
  return parseMetrics((await httpRequest(srv.port, 'GET', '/metrics')).body.toString());
}

async function ask(ws, text) {
  ws.send(text);
  return (await ws.nextMessage()).data.toString();
}

/** A client that sends and checks its answers in a loop until stopped. */
function chatter(ws, id, version) {
  const c = { sent: 0, got: 0, wrong: [], running: true };
  c.done = (async () => {
    while (c.running) {
      const msg = `c${id}-${c.sent++}`;
      ws.send(msg);
      const ev = await ws.next(10000);
      if (ev.type !== 'message') {
        c.wrong.push(`${ev.type} ${ev.code || ''}`);
        return;
      }
      c.got++;
      if (ev.data.toString() !== `v${version}:${msg}`) c.wrong.push(ev.data.toString());
    }
  })();
  return c;
}

test('upgrade under load: 200 clients stay on version 1, new ones get version 2, version 1 unloads after the last', async (t) => {
  const dir = gearsDir(t, [[TG('upgrade_v1'), 'upgrade.so']]);
  const srv = await startServer(t, { api_token: TOKEN, ws_max_connections: 1000 },
    { args: ['--gears-dir', dir] });
  const url = `ws://127.0.0.1:${srv.port}/upgrade/ws`;
  const keeper = await openWs(`${url}?name=keeper`);
  assert.equal((await keeper.nextMessage()).data.toString(), 'registered keeper');
  const olds = [];
  for (let i = 0; i < 200; i++) olds.push(await openWs(url));
  const chats = olds.map((ws, i) => chatter(ws, i, 1));
  await sleep(300);

  deploy(dir, TG('upgrade_v2'), 'upgrade.so');
  srv.proc.kill('SIGHUP');
  await srv.waitForLog(/gears reloaded from .*"upgraded":\["upgrade\.so"\]/);
  const fresh = await openWs(url);
  assert.equal(await ask(fresh, 'hi'), 'v2:hi', 'a new handshake gets version 2');
  // A name taken under version 1 is still there: the pool belongs to the gear.
  assert.equal(await ask(fresh, 'to:keeper:across'), 'sent keeper');
  assert.equal((await keeper.nextMessage()).data.toString(), 'v1-got:across');
  let m = await metrics(srv);
  assert.equal(m.get('orrery_gear_versions{gear="upgrade"}'), 2);
  await sleep(500 * SLOW); // the old clients keep going on version 1 meanwhile

  for (const c of chats) c.running = false;
  await Promise.all(chats.map((c) => c.done));
  for (const [i, c] of chats.entries()) {
    assert.deepEqual(c.wrong, [], `client ${i}: every answer from version 1, none lost`);
    assert.equal(c.got, c.sent, `client ${i}`);
    assert.ok(c.sent > 3, `client ${i} kept talking (${c.sent})`);
  }
  assert.ok(olds.every((ws) => ws.readyState === 1), 'no connection was dropped');
  assert.ok(!/upgrade: version upgrade\.so.* unloaded/.test(srv.stderr), 'not unloaded while used');

  for (const ws of olds.concat([keeper])) ws.close();
  await Promise.all(olds.map((ws) => ws.closed));
  const line = await srv.waitForLog(/gear upgrade: version upgrade\.so, loaded \S+ unloaded/);
  assert.match(line, / info /);
  m = await metrics(srv);
  assert.equal(m.get('orrery_gear_versions{gear="upgrade"}'), 1);
  assert.equal(m.get('orrery_gear_loads_total{gear="upgrade",result="ok"}'), 2);
  assert.equal(await ask(fresh, 'still'), 'v2:still');
  fresh.close();
});

test('POST /_orrery/gears/reload: the token, the summary, and new handshakes see it at once', async (t) => {
  const dir = gearsDir(t, [[path.join(GEARS, 'echo.so'), 'echo.so'], [TG('upgrade_v1'), 'upgrade.so']]);
  const srv = await startServer(t, { api_token: TOKEN }, { args: ['--gears-dir', dir] });
  assert.equal((await reload(srv, null)).status, 401);
  assert.equal((await reload(srv, 'wrong')).status, 401);
  const get = await httpRequest(srv.port, 'GET', '/_orrery/gears/reload',
    { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(get.status, 405);

  let r = await reload(srv);
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { loaded: [], upgraded: [], removed: [], failed: [] }, 'nothing changed');

  const open = await openWs(`ws://127.0.0.1:${srv.port}/upgrade/ws`);
  assert.equal(await ask(open, 'a'), 'v1:a');
  deploy(dir, TG('hello'), 'hello.so');
  fs.unlinkSync(path.join(dir, 'upgrade.so'));
  r = await reload(srv);
  assert.deepEqual(r.body, { loaded: ['hello.so'], upgraded: [], removed: ['upgrade.so'], failed: [] });
  const hello = await openWs(`ws://127.0.0.1:${srv.port}/hello/ws`);
  assert.equal(await ask(hello, 'new'), 'new');
  assert.equal((await httpRequest(srv.port, 'GET', '/upgrade/ws')).status, 404, 'removed: no new handshakes');
  assert.equal(await ask(open, 'b'), 'v1:b', 'its open connection runs on');
  const page = (await httpRequest(srv.port, 'GET', '/')).body.toString();
  assert.match(page, /<b>hello<\/b>.*\(hello\.so, loaded \d{4}-\d\d-\d\dT/);
  assert.ok(!page.includes('<b>upgrade</b>'));
  open.close();
  await srv.waitForLog(/gear upgrade: version upgrade\.so, loaded \S+ unloaded/);
  hello.close();
});

test('every refusal on reload is logged and leaves the served version answering', async (t) => {
  const dir = gearsDir(t, [[TG('upgrade_v1'), 'upgrade.so'], [path.join(GEARS, 'echo.so'), 'echo.so']]);
  const srv = await startServer(t, { api_token: TOKEN }, { args: ['--gears-dir', dir] });
  const ws = await openWs(`ws://127.0.0.1:${srv.port}/upgrade/ws`);
  const cases = [
    ['noentry', /no orr_gear_entry: not a gear/],
    ['api999', /built against gear API 0\.999/],
    ['newer_minor', /newer than this server's 3\.3/],
    ['badname', /gear name 'Bad-Name' is not valid/],
    ['badroute', /route no-leading-slash: /],
    ['dup', /gear echo is served already \(by echo\.so\)/],
    ['refuse', /on_load refused it \(-1\)/],
    ['unresolved', /dlopen: .*undefined symbol: orr_not_in_the_api/],
  ];
  for (const [variant, why] of cases) {
    deploy(dir, TG(variant), 'upgrade.so');
    const r = await reload(srv);
    assert.equal(r.status, 200);
    assert.equal(r.body.failed.length, 1, `${variant}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.failed[0].file, 'upgrade.so');
    assert.match(r.body.failed[0].why, why, variant);
    assert.deepEqual([r.body.loaded, r.body.upgraded, r.body.removed], [[], [], []]);
    await srv.waitForLog(new RegExp(`error .*gear upgrade\\.so: .*${why.source}`));
    assert.equal(await ask(ws, variant), `v1:${variant}`, `${variant}: version 1 still serves`);
    const fresh = await openWs(`ws://127.0.0.1:${srv.port}/upgrade/ws`);
    assert.equal(await ask(fresh, 'new'), 'v1:new', `${variant}: new handshakes still get version 1`);
    fresh.close();
  }
  const echo = await openWs(`ws://127.0.0.1:${srv.port}/echo/ws`);
  assert.equal(await ask(echo, 'untouched'), 'untouched');
  const m = await metrics(srv);
  assert.equal(m.get('orrery_gear_versions{gear="upgrade"}'), 1);
  // No gear could be read from five of them (not a gear, two versions
  // refused, a bad name, dlopen): counted under the file's name.
  assert.equal(m.get('orrery_gear_loads_total{gear="upgrade.so",result="error"}'), 5);
  assert.equal(m.get('orrery_gear_loads_total{gear="echo",result="error"}'), 1, 'the duplicate');
  assert.equal(m.get('orrery_gear_loads_total{gear="refuse",result="error"}'), 1);
  // Overwritten in place (same inode, new content): still a new version.
  fs.copyFileSync(TG('upgrade_v2'), path.join(dir, 'upgrade.so'));
  const r = await reload(srv);
  assert.deepEqual(r.body.upgraded, ['upgrade.so']);
  const v2 = await openWs(`ws://127.0.0.1:${srv.port}/upgrade/ws`);
  assert.equal(await ask(v2, 'x'), 'v2:x');
  assert.equal(await ask(ws, 'y'), 'v1:y');
  for (const s of [ws, echo, v2]) s.close();
});

test("on_load and on_unload run once per version, with the gear_config SIGHUP loaded", async (t) => {
  const dir = gearsDir(t, [[TG('hooks'), 'hooks.so']]);
  const marks = fs.mkdtempSync(path.join(os.tmpdir(), 'orrery-marks-'));
  t.after(() => fs.rmSync(marks, { recursive: true, force: true }));
  const [a, b] = [path.join(marks, 'a'), path.join(marks, 'b')];
  const read = (f) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '');
  const srv = await startServer(t, { gear_config: { hooks: { mark: a } } }, { args: ['--gears-dir', dir] });
  assert.equal(read(a), 'load\n', "version 1's on_load got its gear_config");
  const v1 = await openWs(`ws://127.0.0.1:${srv.port}/hooks/ws`);
  assert.equal(await ask(v1, 'one'), 'one');

  // A new gear_config, then a new file: SIGHUP reloads both, config first.
  const cfgPath = path.join(srv.cfgDir, 'orrery.json');
  const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
  cfg.gear_config.hooks.mark = b;
  fs.writeFileSync(cfgPath, JSON.stringify(cfg));
  deploy(dir, TG('hooks'), 'hooks.so'); // the same bytes, a new file: a new version
  srv.proc.kill('SIGHUP');
  await srv.waitForLog(/gears reloaded from .*"upgraded":\["hooks\.so"\]/);
  assert.equal(read(b), 'load\n', "version 2's on_load got the new gear_config");
  assert.equal(read(a), 'load\n', 'version 1 is still used: not unloaded');

  v1.close();
  await srv.waitForLog(/gear hooks: version hooks\.so, loaded \S+ unloaded/);
  assert.equal(read(a), 'load\nunload\n', "version 1's on_unload ran once, in its own object");
  srv.proc.kill('SIGTERM');
  assert.equal((await srv.exited).code, 0);
  assert.equal(read(b), 'load\nunload\n', "version 2's on_unload ran at the stop");
});
