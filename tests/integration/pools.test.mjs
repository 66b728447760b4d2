// Executor pools: ws_max_connections per pool (gear and tenant pools), the
// 503 answers (testgear's JSON, the default TooManyWebsocketConnections), the
// check before the protocol checks, the slot released on every kind of end,
// and SIGHUP reloading the limits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openWs, rawRequest, upgradeHeaders, SLOW, TESTGEAR } from './lib/orrery.mjs';

const TG = `gear:${TESTGEAR}`;

function tgPath(name, tenant) {
  return `/${TESTGEAR}/ws?name=${encodeURIComponent(name)}${tenant ? `&tenant=${encodeURIComponent(tenant)}` : ''}`;
}

/** Open a testgear client and make sure it is up (init done, answering). */
async function tg(srv, name, tenant) {
  const ws = await openWs(srv.wsUrl(tgPath(name, tenant)));
  await alive(ws);
  return ws;
}

async function alive(ws, tag = 'alive') {
  ws.send(`echo:${tag}`);
  const m = await ws.nextMessage();
  assert.equal(m.data.toString(), tag);
}

/** A websocket upgrade request through a raw socket: the whole response, body included. */
function upgrade(srv, target) {
  return rawRequest(srv.port, 'GET', target, upgradeHeaders(srv.port));
}

function assertJson503(res, what) {
  assert.equal(res.status, 503, what);
  assert.match(res.headers['content-type'] || '', /json/, `${what}: content-type`);
  assert.deepEqual(JSON.parse(res.text), { error: 'ws_too_many_connections' }, what);
}

const conns = (srv, pool, n) => srv.waitMetric('orrery_ws_connections', { pool }, n);

test('gear pool limit: testgear answers its JSON 503, logs the pool, counts the rejection', async (t) => {
  const srv = await startServer(t, { workers: 2, pools: { [TG]: { ws_max_connections: 2 } } });
  const a = await tg(srv, 'a');
  const b = await tg(srv, 'b');
  await conns(srv, TG, 2);
  assert.equal(await srv.metric('orrery_ws_max_connections', { pool: TG }), 2);

  // The third: rejected by npm ws with 503, and the body through a raw request.
  await assert.rejects(openWs(srv.wsUrl(tgPath('c'))), (e) => e.statusCode === 503);
  assertJson503(await upgrade(srv, tgPath('d')), 'raw upgrade over the limit');
  await srv.waitForLog(new RegExp(`error .*executor pool ${TG}: ws_max_connections \\(2\\) reached`));
  assert.equal(await srv.metric('orrery_ws_rejected_total', { pool: TG }), 2);
  assert.equal(await srv.metric('orrery_ws_connections', { pool: TG }), 2, 'a rejection takes no slot');

  // The ones in keep working; other pools are not affected.
  await alive(a);
  await alive(b);
  const e = await openWs(srv.wsUrl('/echo/ws'));
  e.send('x');
  assert.equal((await e.nextMessage()).data.toString(), 'x');
  e.close();

  // A slot frees: one more gets in, the next does not.
  a.close();
  await conns(srv, TG, 1);
  const c = await tg(srv, 'c');
  assertJson503(await upgrade(srv, tgPath('e')), 'full again');
  b.close();
  c.close();
  await conns(srv, TG, 0);
});

test('tenant pool limit: tenant:t1 full while gear:testgear and tenant:t2 still accept', async (t) => {
  const srv = await startServer(t, { workers: 2, pools: { 'tenant:t1': { ws_max_connections: 2 } } });
  const t1 = [await tg(srv, 'a', 't1'), await tg(srv, 'b', 't1')];
  await assert.rejects(openWs(srv.wsUrl(tgPath('c', 't1'))), (e) => e.statusCode === 503);
  assertJson503(await upgrade(srv, tgPath('c', 't1')), 'tenant:t1 over its limit');
  await srv.waitForLog(/executor pool tenant:t1: ws_max_connections \(2\) reached/);
  assert.equal(await srv.metric('orrery_ws_rejected_total', { pool: 'tenant:t1' }), 2);

  // The default limit (100) elsewhere.
  const others = [];
  for (let i = 0; i < 3; i++) others.push(await tg(srv, `g${i}`));
  for (let i = 0; i < 3; i++) others.push(await tg(srv, `t${i}`, 't2'));
  assert.equal(await srv.metric('orrery_ws_connections', { pool: 'tenant:t1' }), 2);
  await conns(srv, TG, 3);
  await conns(srv, 'tenant:t2', 3);
  assert.equal(await srv.metric('orrery_ws_max_connections', { pool: 'tenant:t2' }), 100);
  assert.equal(await srv.metric('orrery_ws_rejected_total', { pool: TG }), 0);
  assert.ok(!srv.lines().some((l) => new RegExp(`executor pool (${TG}|tenant:t2): ws_max`).test(l)));

  t1[0].close();
  await conns(srv, 'tenant:t1', 1);
  t1.push(await tg(srv, 'c', 't1'));
  for (const ws of [...t1, ...others]) ws.close();
  await conns(srv, 'tenant:t1', 0);
});

test('the default limit (top-level ws_max_connections) and the default 503 body of a gear without a handler', async (t) => {
  const srv = await startServer(t, { workers: 2, ws_max_connections: 1, pools: { [TG]: { ws_max_connections: 3 } } });
  const e1 = await openWs(srv.wsUrl('/echo/ws'));
  await assert.rejects(openWs(srv.wsUrl('/echo/ws')), (e) => e.statusCode === 503);
  const res = await upgrade(srv, '/echo/ws');
  assert.equal(res.status, 503);
  assert.equal(res.text, 'TooManyWebsocketConnections');
  await srv.waitForLog(/executor pool gear:echo: ws_max_connections \(1\) reached/);
  assert.equal(await srv.metric('orrery_ws_max_connections', { pool: 'gear:echo' }), 1);
  assert.equal(await srv.metric('orrery_ws_rejected_total', { pool: 'gear:echo' }), 2);

  // The listed pool has its own limit; an unlisted tenant pool gets the default, 1.
  const g = [await tg(srv, 'a'), await tg(srv, 'b'), await tg(srv, 'c')];
  assertJson503(await upgrade(srv, tgPath('d')), 'gear:testgear at 3');
  const t9 = await tg(srv, 'a', 't9');
  assertJson503(await upgrade(srv, tgPath('b', 't9')), 'tenant:t9 at the default 1');
  assert.equal(await srv.metric('orrery_ws_max_connections', { pool: 'tenant:t9' }), 1);

  for (const ws of [e1, ...g, t9]) ws.close();
  await conns(srv, 'gear:echo', 0);
});

test('the limit is checked before the protocol checks: plain GET is 426 below it, 503 at it', async (t) => {
  const srv = await startServer(t, { workers: 1, pools: { [TG]: { ws_max_connections: 1 }, 'gear:echo': { ws_max_connections: 1 } } });
  for (let i = 0; i < 3; i++) {
    assert.equal((await rawRequest(srv.port, 'GET', tgPath('p'))).status, 426, 'plain GET below the limit');
    assert.equal((await rawRequest(srv.port, 'GET', '/echo/ws')).status, 426);
  }
  // The 426s took no slot.
  assert.equal(await srv.metric('orrery_ws_connections', { pool: TG }), 0);
  const a = await tg(srv, 'a');
  const e = await openWs(srv.wsUrl('/echo/ws'));
  assertJson503(await rawRequest(srv.port, 'GET', tgPath('p')), 'plain GET at the limit (testgear)');
  const plainEcho = await rawRequest(srv.port, 'GET', '/echo/ws');
  assert.equal(plainEcho.status, 503);
  assert.equal(plainEcho.text, 'TooManyWebsocketConnections');
  // Other protocol errors at the limit are 503 too (e.g. a missing Sec-WebSocket-Key).
  const noKey = await rawRequest(srv.port, 'GET', '/echo/ws', upgradeHeaders(srv.port, { 'Sec-WebSocket-Key': null }));
  assert.equal(noKey.status, 503);
  a.close();
  e.close();
  await conns(srv, TG, 0);
  await conns(srv, 'gear:echo', 0);
  assert.equal((await rawRequest(srv.port, 'GET', tgPath('p'))).status, 426, 'below the limit again');
  const noKey2 = await rawRequest(srv.port, 'GET', '/echo/ws', upgradeHeaders(srv.port, { 'Sec-WebSocket-Key': null }));
  assert.equal(noKey2.status, 400);
});

test('the slot is released on every kind of end (limit 1)', async (t) => {
  const srv = await startServer(t, { workers: 2, close_timeout_ms: 1000 * SLOW, pools: { [TG]: { ws_max_connections: 1 } } });

  /** Hold the only slot with `name`, check the pool is full, end it with `end`, check it is free. */
  async function scenario(what, end) {
    const ws = await tg(srv, what);
    await conns(srv, TG, 1);
    assertJson503(await upgrade(srv, tgPath(`${what}-2`)), `${what}: full`);
    const c = await end(ws);
    await conns(srv, TG, 0);
    // A new client gets in at once.
    const next = await tg(srv, `${what}-next`);
    await conns(srv, TG, 1);
    next.close();
    await next.closed;
    await conns(srv, TG, 0);
    return c;
  }

  const byClient = await scenario('client-close', async (ws) => {
    ws.close(1000, 'bye');
    return ws.closed;
  });
  assert.equal(byClient.code, 1000);

  await scenario('client-terminate', async (ws) => {
    ws.terminate(); // TCP gone, no close frame
    return ws.closed;
  });

  const crash = await scenario('crash', async (ws) => {
    ws.send('crash');
    return ws.nextClose();
  });
  assert.equal(crash.code, 1005);

  const serverClose = await scenario('server-close', async (ws) => {
    ws.send('close:4000:bye');
    return ws.nextClose();
  });
  assert.deepEqual([serverClose.code, serverClose.reason], [4000, 'bye']);

  // A server close the client never answers: released by close_timeout_ms at the
  // latest (in fact when the server sends its close; the TCP connection itself
  // lingers until close_timeout_ms).
  await scenario('server-close-unanswered', async (ws) => {
    ws._socket.pause(); // the close frame is never read, so never answered
    ws.send('close:4001:unanswered');
    await srv.waitMetric('orrery_ws_connections', { pool: TG }, 0, 1000 + 1500);
    await srv.waitForLogCount(/DISCONNECTED .*reason=stop/, 2, 1000 + 1500); // the one of server-close, then this
    ws.terminate();
  });

  assert.equal(await srv.metric('orrery_ws_rejected_total', { pool: TG }), 5);
});

test('the slot is released when the server closes the connection: name taken (4009)', async (t) => {
  const srv = await startServer(t, { workers: 2, pools: { [TG]: { ws_max_connections: 2 } } });
  const a = await tg(srv, 'a');
  for (let i = 0; i < 3; i++) {
    const dup = await openWs(srv.wsUrl(tgPath('a')));
    assert.equal((await dup.nextClose()).code, 4009);
    await conns(srv, TG, 1);
  }
  const b = await tg(srv, 'b');
  await conns(srv, TG, 2);
  a.close();
  b.close();
  await conns(srv, TG, 0);
});

test('the slot is released on idle timeout', async (t) => {
  const idle = 500 * SLOW;
  const srv = await startServer(t, { workers: 2, idle_timeout_ms: idle, pools: { [TG]: { ws_max_connections: 1 } } });
  for (let i = 0; i < 2; i++) {
    const ws = await openWs(srv.wsUrl(tgPath(`idle${i}`)));
    await conns(srv, TG, 1);
    assertJson503(await upgrade(srv, tgPath('other')), 'full while the idle one is connected');
    const c = await ws.nextClose(idle / SLOW + 3000);
    assert.equal(c.code, 1000);
    await conns(srv, TG, 0);
  }
  await srv.waitForLogCount(/DISCONNECTED .*reason=timeout/, 2);
  const ws = await tg(srv, 'last');
  ws.close();
});

test('SIGHUP: raising a limit lets new clients in, lowering it disconnects nobody but rejects new ones', async (t) => {
  const cfg = { workers: 2, pools: { [TG]: { ws_max_connections: 1 } } };
  const srv = await startServer(t, cfg);
  const a = await tg(srv, 'a');
  assertJson503(await upgrade(srv, tgPath('b')), 'limit 1');

  // Raise to 3.
  let r = await srv.reload({ ...cfg, pools: { [TG]: { ws_max_connections: 3 } } });
  assert.ok(r.ok, r.line);
  assert.equal(await srv.metric('orrery_ws_max_connections', { pool: TG }), 3);
  const b = await tg(srv, 'b');
  const c = await tg(srv, 'c');
  assertJson503(await upgrade(srv, tgPath('d')), 'limit 3');

  // Lower to 1: a, b and c stay.
  r = await srv.reload({ ...cfg, pools: { [TG]: { ws_max_connections: 1 } } });
  assert.ok(r.ok, r.line);
  assert.equal(await srv.metric('orrery_ws_max_connections', { pool: TG }), 1);
  for (const ws of [a, b, c]) await alive(ws, 'after lowering');
  assert.equal(await srv.metric('orrery_ws_connections', { pool: TG }), 3);
  assertJson503(await upgrade(srv, tgPath('d')), 'lowered to 1 with 3 open');
  // Still over the limit after two leave; in once all three have.
  a.close();
  b.close();
  await conns(srv, TG, 1);
  assertJson503(await upgrade(srv, tgPath('d')), 'at the lowered limit');
  c.close();
  await conns(srv, TG, 0);
  const d = await tg(srv, 'd');

  // A pool created at run time (an unlisted tenant) takes the new default at once,
  // and a listed one its own limit.
  const t1a = await tg(srv, 'x', 't1');
  const t1b = await tg(srv, 'y', 't1');
  r = await srv.reload({ ...cfg, ws_max_connections: 2, pools: { [TG]: { ws_max_connections: 1 } } });
  assert.ok(r.ok, r.line);
  assert.equal(await srv.metric('orrery_ws_max_connections', { pool: 'tenant:t1' }), 2);
  assert.equal(await srv.metric('orrery_ws_max_connections', { pool: 'gear:echo' }), 2);
  assertJson503(await upgrade(srv, tgPath('z', 't1')), 'tenant:t1 under the new default');
  r = await srv.reload({ ...cfg, ws_max_connections: 2, pools: { [TG]: { ws_max_connections: 1 }, 'tenant:t1': { ws_max_connections: 3 } } });
  assert.ok(r.ok, r.line);
  assert.equal(await srv.metric('orrery_ws_max_connections', { pool: 'tenant:t1' }), 3);
  const t1c = await tg(srv, 'z', 't1');
  assertJson503(await upgrade(srv, tgPath('w', 't1')), 'tenant:t1 at its own 3');
  for (const ws of [d, t1a, t1b, t1c]) await alive(ws, 'after reloads');
  for (const ws of [d, t1a, t1b, t1c]) ws.close();
});

test('SIGHUP with a bad config file keeps the running config and logs why', async (t) => {
  const cfg = { workers: 2, pools: { [TG]: { ws_max_connections: 2 } } };
  const srv = await startServer(t, cfg);
  const a = await tg(srv, 'a');

  const bad = [
    '{"workers": 2, "pools": {"gear:testgear": {"ws_max_connections": 50}',         // truncated JSON
    JSON.stringify({ workers: 2, pools: { [TG]: { ws_max_connections: 'fifty' } } }), // wrong type
    JSON.stringify({ workers: 2, pools: { [TG]: { ws_max_connections: -5 } } }),      // out of range
    JSON.stringify({ workers: 2, pools: { 'nonsense pool': { ws_max_connections: 5 } } }), // bad pool name
  ];
  for (const text of bad) {
    const r = await srv.reload(text);
    assert.equal(r.ok, false, `${text} was accepted: ${r.line}`);
    assert.match(r.line, /error .*keeping the running config/);
    assert.equal(await srv.metric('orrery_ws_max_connections', { pool: TG }), 2, text);
  }
  // The old limit (2) still holds.
  await alive(a);
  const b = await tg(srv, 'b');
  assertJson503(await upgrade(srv, tgPath('c')), 'old limit kept');

  // An empty file: same.
  srv.writeConfig('');
  let r = await srv.reload();
  assert.equal(r.ok, false, r.line);

  // A good file again applies.
  r = await srv.reload({ ...cfg, pools: { [TG]: { ws_max_connections: 3 } } });
  assert.ok(r.ok, r.line);
  const c = await tg(srv, 'c');
  for (const ws of [a, b, c]) ws.close();
  await conns(srv, TG, 0);
});
