// The testgear's commands, driven by npm `ws`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startServer, openWs, rawRequest, parseLogLine, TESTGEAR } from './lib/orrery.mjs';

test('connect requires the query parameter name', async (t) => {
  const srv = await startServer(t);
  await assert.rejects(openWs(srv.wsUrl(`/${TESTGEAR}/ws`)), (e) => e.statusCode === 400);
  await assert.rejects(openWs(srv.wsUrl(`/${TESTGEAR}/ws?other=1`)), (e) => e.statusCode === 400);
  assert.equal((await rawRequest(srv.port, 'GET', `/${TESTGEAR}/ws?nam=x`)).status, 400);
  const ws = await openWs(srv.wsUrl(`/${TESTGEAR}/ws?name=alice`));
  ws.send('echo:hi');
  assert.equal((await ws.nextMessage()).data.toString(), 'hi');
  ws.close();
  // URL-encoded names are fine.
  const ws2 = await openWs(srv.wsUrl(`/${TESTGEAR}/ws?x=1&name=b%C3%B6b+and%20c`));
  ws2.close();
  await ws2.closed;
});

test('echo:<t> answers <t> as text; noop answers nothing', async (t) => {
  const srv = await startServer(t);
  const ws = await openWs(srv.wsUrl(`/${TESTGEAR}/ws?name=a`));
  for (const s of ['hello', '', 'a:b:c', 'echo:nested', 'ünïcødé 🎉', 'x'.repeat(70000)]) {
    ws.send(`echo:${s}`);
    const m = await ws.nextMessage();
    assert.equal(m.isBinary, false);
    assert.equal(m.data.toString(), s);
  }
  ws.send('noop');
  ws.send('noop');
  ws.send('echo:after-noop');
  const m = await ws.nextMessage();
  assert.equal(m.data.toString(), 'after-noop', 'noop produced a frame');
  ws.close();
  await ws.closed;
});

test('binary messages are echoed as binary', async (t) => {
  const srv = await startServer(t);
  const ws = await openWs(srv.wsUrl(`/${TESTGEAR}/ws?name=a`));
  for (const b of [Buffer.alloc(0), Buffer.from('echo:not-a-command'), crypto.randomBytes(100000)]) {
    ws.send(b, { binary: true });
    const m = await ws.nextMessage();
    assert.equal(m.isBinary, true);
    assert.ok(Buffer.compare(m.data, b) === 0);
  }
  ws.close();
});

test('close:<code>:<reason> makes the server close with that code and reason (terminate STOP)', async (t) => {
  const srv = await startServer(t);
  for (const [code, reason] of [[4000, 'bye'], [1000, ''], [1001, 'away: with colon'], [3001, 'ünï']]) {
    const ws = await openWs(srv.wsUrl(`/${TESTGEAR}/ws?name=c`));
    ws.send(`close:${code}:${reason}`);
    const c = await ws.nextClose();
    assert.equal(c.code, code);
    assert.equal(c.reason, reason);
  }
  await srv.waitForLogCount(/DISCONNECTED .*reason=stop/, 4);
});

test('frames queued before a close go out first, in order', async (t) => {
  const srv = await startServer(t);
  const ws = await openWs(srv.wsUrl(`/${TESTGEAR}/ws?name=c`));
  ws.send('echo:1');
  ws.send('echo:2');
  ws.send('close:4001:done');
  ws.send('echo:3'); // after the close: never answered
  assert.equal((await ws.nextMessage()).data.toString(), '1');
  assert.equal((await ws.nextMessage()).data.toString(), '2');
  const c = await ws.nextClose();
  assert.equal(c.code, 4001);
  assert.equal(c.reason, 'done');
});

test('crash: empty close frame (1005), an error log line, DISCONNECTED reason=error; others unaffected', async (t) => {
  const srv = await startServer(t, { workers: 1 });
  const bystander = await openWs(srv.wsUrl(`/${TESTGEAR}/ws?name=bystander`));
  const ws = await openWs(srv.wsUrl(`/${TESTGEAR}/ws?name=crasher`));
  ws.send('echo:before');
  assert.equal((await ws.nextMessage()).data.toString(), 'before');
  ws.send('crash');
  const c = await ws.nextClose();
  assert.equal(c.code, 1005, 'close with an empty payload');
  assert.equal(c.reason, '');

  const disc = await srv.waitForLog(/DISCONNECTED .*reason=error/);
  const ctx = parseLogLine(disc).ctx;
  assert.ok(ctx && ctx !== '-', 'DISCONNECTED carries a context id');
  const errLines = srv.entries().filter((e) => e.level === 'error' && e.ctx === ctx);
  assert.ok(errLines.length >= 1, `an error-level line with context ${ctx}:\n${srv.stderr}`);

  bystander.send('echo:still here');
  assert.equal((await bystander.nextMessage()).data.toString(), 'still here');
  // The server keeps accepting.
  const again = await openWs(srv.wsUrl(`/${TESTGEAR}/ws?name=crasher`));
  again.send('echo:ok');
  assert.equal((await again.nextMessage()).data.toString(), 'ok');
  again.close();
  bystander.close();
  await Promise.all([again.closed, bystander.closed]);
});

test('registry commands answer in order, on one connection', async (t) => {
  const srv = await startServer(t);
  const ws = await openWs(srv.wsUrl(`/${TESTGEAR}/ws?name=r`));
  const expect = [
    ['send:bob:hi', 'sent:false'],
    ['send:r:self', 'sent:true'],
    ['join:room', 'joined:room'],
    ['leave:room', 'left:room'],
    ['leave:room', 'not_in_group:room'],
    ['publish:room:hello', 'published:0'],
    ['send:nocolon', 'error:bad_name'],
  ];
  for (const [cmd, answer] of expect) {
    ws.send(cmd);
    let m = await ws.nextMessage();
    if (cmd === 'send:r:self') {
      // The message to itself arrives through its mailbox, after the answer.
      assert.equal(m.data.toString(), answer, cmd);
      m = await ws.nextMessage();
      assert.equal(m.data.toString(), 'r:self');
      continue;
    }
    assert.equal(m.isBinary, false);
    assert.equal(m.data.toString(), answer, cmd);
  }
  ws.send('echo:alive');
  assert.equal((await ws.nextMessage()).data.toString(), 'alive');
  ws.close();
});

test('testgear on its own host route', async (t) => {
  const srv = await startServer(t);
  const ws = await openWs(`ws://${TESTGEAR}.localhost:${srv.port}/ws?name=h`, {
    lookup: (host, opts, cb) => (opts && opts.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4)),
  });
  ws.send('echo:host');
  assert.equal((await ws.nextMessage()).data.toString(), 'host');
  ws.close();
  await ws.closed;
});

test('the gear API shows connect/init the handshake: path params, query, cookies, headers, client IP', async (t) => {
  const srv = await startServer(t);
  const url = srv.wsUrl(`/${TESTGEAR}/rooms/r%C3%A9d/a/b%20c?name=al%20ice&x=1`);
  const ws = await openWs(url, {
    headers: { Cookie: 'other=1; session="s3cr3t"', 'X-Test': 'hello', 'X-Forwarded-For': '203.0.113.9, 198.51.100.7' },
  });
  ws.send('info');
  const info = JSON.parse((await ws.nextMessage()).data.toString());
  assert.equal(info.method, 'GET');
  assert.equal(info.path, `/${TESTGEAR}/rooms/r%C3%A9d/a/b%20c`);
  assert.equal(info.query, 'name=al%20ice&x=1');
  assert.equal(info.name, 'al ice');
  assert.equal(info.room, 'réd');
  assert.equal(info.rest, 'a/b c');
  assert.equal(info.cookie, 's3cr3t');
  assert.equal(info.header, 'hello');
  assert.equal(info.ip, '198.51.100.7', 'the last X-Forwarded-For entry');
  assert.match(info.context_id, /^\d{8}-\d{6}\.\d{3}_\d+_\d+$/);
  ws.close();
  await ws.closed;

  // Without X-Forwarded-For the peer's address is the client IP; /ws has no params.
  const ws2 = await openWs(srv.wsUrl(`/${TESTGEAR}/ws?name=b`));
  ws2.send('info');
  const info2 = JSON.parse((await ws2.nextMessage()).data.toString());
  assert.equal(info2.ip, '127.0.0.1');
  assert.equal(info2.room, null);
  assert.equal(info2.cookie, null);
  ws2.close();
  await ws2.closed;
});
