// HTTP side of the server: routing, the handshake's order of checks and its
// statuses, limits on the request head, plain HTTP endpoints and keep-alive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, rawRequest, RawConn, RawWs, buildRequest, upgradeHeaders, acceptFor, openWs,
  encodeFrame, decodeFrame, parseClose,
  SLOW, sleep,
} from './lib/orrery.mjs';

test('unknown paths answer 404, for plain GETs and upgrades alike', async (t) => {
  const srv = await startServer(t);
  for (const p of ['/nope', '/nope/ws', '/echo/nope', '/echo', '/testgear/other?name=a', '/ws']) {
    const plain = await rawRequest(srv.port, 'GET', p);
    assert.equal(plain.status, 404, `plain GET ${p}`);
    const up = await rawRequest(srv.port, 'GET', p, upgradeHeaders(srv.port));
    assert.equal(up.status, 404, `upgrade ${p}`);
  }
});

test('a known route without the upgrade headers answers 426 with Upgrade: websocket', async (t) => {
  const srv = await startServer(t);
  const cases = [
    ['plain GET', []],
    ['no Upgrade', upgradeHeaders(srv.port, { Upgrade: null })],
    ['no Connection', upgradeHeaders(srv.port, { Connection: null })],
    ['Upgrade: h2c', upgradeHeaders(srv.port, { Upgrade: 'h2c' })],
    ['Connection: keep-alive', upgradeHeaders(srv.port, { Connection: 'keep-alive' })],
  ];
  for (const [what, headers] of cases) {
    const r = await rawRequest(srv.port, 'GET', '/echo/ws', headers);
    assert.equal(r.status, 426, what);
    assert.match(r.headers.upgrade ?? '', /^websocket$/i, `${what}: Upgrade header`);
  }
});

test('missing or malformed key, or a version other than 13, answers 400 with Sec-WebSocket-Version: 13', async (t) => {
  const srv = await startServer(t);
  const cases = [
    ['no key', { 'Sec-WebSocket-Key': null }],
    ['empty key', { 'Sec-WebSocket-Key': '' }],
    ['key not base64', { 'Sec-WebSocket-Key': '!!!!!!!!!!!!!!!!!!!!!!!!' }],
    ['key of 15 bytes', { 'Sec-WebSocket-Key': Buffer.alloc(15, 1).toString('base64') }],
    ['key of 17 bytes', { 'Sec-WebSocket-Key': Buffer.alloc(17, 1).toString('base64') }],
    ['no version', { 'Sec-WebSocket-Version': null }],
    ['version 12', { 'Sec-WebSocket-Version': '12' }],
    ['version 14', { 'Sec-WebSocket-Version': '14' }],
    ['version junk', { 'Sec-WebSocket-Version': 'x' }],
  ];
  for (const [what, o] of cases) {
    const r = await rawRequest(srv.port, 'GET', '/echo/ws', upgradeHeaders(srv.port, o));
    assert.equal(r.status, 400, what);
    assert.equal(r.headers['sec-websocket-version'], '13', `${what}: Sec-WebSocket-Version header`);
  }
});

test('the order of checks: route, then the gear connect, then the protocol', async (t) => {
  const srv = await startServer(t);
  // No route wins over everything.
  assert.equal((await rawRequest(srv.port, 'GET', '/missing/ws', upgradeHeaders(srv.port, { 'Sec-WebSocket-Version': '1' }))).status, 404);
  // testgear's connect rejects a missing `name` before the protocol checks run.
  assert.equal((await rawRequest(srv.port, 'GET', '/testgear/ws')).status, 400, 'no name, plain GET');
  assert.equal((await rawRequest(srv.port, 'GET', '/testgear/ws', upgradeHeaders(srv.port))).status, 400, 'no name, good upgrade');
  // With a name, the protocol checks apply.
  assert.equal((await rawRequest(srv.port, 'GET', '/testgear/ws?name=a')).status, 426, 'name, plain GET');
  const r = await rawRequest(srv.port, 'GET', '/testgear/ws?name=a', upgradeHeaders(srv.port, { 'Sec-WebSocket-Version': '8' }));
  assert.equal(r.status, 400);
  assert.equal(r.headers['sec-websocket-version'], '13');
  const ok = await RawWs.open(srv.port, '/testgear/ws?name=a');
  ok.destroy();
});

test('101 carries the right Sec-WebSocket-Accept; header names and tokens are case-insensitive', async (t) => {
  const srv = await startServer(t);
  // RFC 6455 section 1.3's example.
  assert.equal(acceptFor('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  const variants = [
    {},
    { 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' },
    { Connection: 'keep-alive, Upgrade' },
    { Upgrade: 'WebSocket', Connection: 'upgrade' },
  ];
  for (const v of variants) {
    const c = await RawConn.open(srv.port);
    const headers = upgradeHeaders(srv.port, v);
    const key = headers.find(([k]) => k.toLowerCase() === 'sec-websocket-key')[1];
    const lowered = headers.map(([k, val]) => [k.toLowerCase(), val]);
    await c.write(buildRequest('GET', '/echo/ws', v.Connection ? headers : lowered));
    const r = await c.readResponse(5000, { head: true });
    assert.equal(r.status, 101, JSON.stringify(v));
    assert.equal(r.headers['sec-websocket-accept'], acceptFor(key));
    assert.match(r.headers.upgrade, /^websocket$/i);
    assert.match(r.headers.connection, /\bupgrade\b/i);
    c.destroy();
  }
});

test('a gear is reachable at Host <gear>.<base_domain> without the prefix', async (t) => {
  const srv = await startServer(t);
  for (const host of ['echo.localhost', `echo.localhost:${srv.port}`, 'ECHO.LOCALHOST']) {
    const ws = await RawWs.open(srv.port, '/ws', { Host: host });
    await ws.send(1, 'via host');
    const f = await ws.readFrame();
    assert.equal(f.opcode, 1);
    assert.equal(f.payload.toString(), 'via host');
    ws.destroy();
  }
  const tg = await RawWs.open(srv.port, '/ws?name=x', { Host: `testgear.localhost:${srv.port}` });
  await tg.send(1, 'echo:tg');
  assert.equal((await tg.readFrame()).payload.toString(), 'tg');
  tg.destroy();
  // Not a gear's host, and the prefix is not also a route under a gear's host.
  assert.equal((await rawRequest(srv.port, 'GET', '/ws', upgradeHeaders(srv.port, { Host: 'nothing.localhost' }))).status, 404);
  assert.equal((await rawRequest(srv.port, 'GET', '/ws', upgradeHeaders(srv.port, { Host: 'echo.otherdomain' }))).status, 404);
});

test('base_domain comes from the config', async (t) => {
  const srv = await startServer(t, { base_domain: 'orrery.test' });
  const ws = await RawWs.open(srv.port, '/ws', { Host: `echo.orrery.test:${srv.port}` });
  await ws.send(2, Buffer.from([1, 2, 3]));
  const f = await ws.readFrame();
  assert.equal(f.opcode, 2);
  assert.deepEqual([...f.payload], [1, 2, 3]);
  ws.destroy();
  assert.equal((await rawRequest(srv.port, 'GET', '/ws', upgradeHeaders(srv.port, { Host: 'echo.localhost' }))).status, 404);
});

test('GET /healthz answers 200 and GET / serves an HTML page listing the gears', async (t) => {
  const srv = await startServer(t);
  const h = await rawRequest(srv.port, 'GET', '/healthz');
  assert.equal(h.status, 200);
  const home = await rawRequest(srv.port, 'GET', '/');
  assert.equal(home.status, 200);
  assert.match(home.headers['content-type'] ?? '', /text\/html/);
  assert.match(home.text, /<html|<!doctype html/i);
  assert.match(home.text, /echo/);
  assert.match(home.text, /testgear/);
  // Node's own HTTP client agrees.
  const res = await fetch(srv.url('/healthz'));
  assert.equal(res.status, 200);
  await res.arrayBuffer();
});

test('plain HTTP/1.1 keep-alive: several requests on one connection, sequential and pipelined', async (t) => {
  const srv = await startServer(t);
  const c = await RawConn.open(srv.port);
  t.after(() => c.destroy());
  const host = [['Host', `127.0.0.1:${srv.port}`]];
  const seq = [['/healthz', 200], ['/', 200], ['/nope', 404], ['/healthz', 200], ['/echo/ws', 426]];
  for (const [p, status] of seq) {
    await c.write(buildRequest('GET', p, host));
    const r = await c.readResponse();
    assert.equal(r.status, status, `sequential ${p}`);
  }
  // Pipelined: three requests in one write, answered in order.
  const pipe = [['/nope', 404], ['/healthz', 200], ['/', 200]];
  await c.write(pipe.map(([p]) => buildRequest('GET', p, host)).join(''));
  for (const [p, status] of pipe) {
    const r = await c.readResponse();
    assert.equal(r.status, status, `pipelined ${p}`);
  }
  assert.equal(c.ended, false, 'connection still open');
  // And a websocket upgrade on a connection that already served requests.
  await c.write(buildRequest('GET', '/echo/ws', upgradeHeaders(srv.port)));
  const up = await c.readResponse(5000, { head: true });
  assert.equal(up.status, 101);
});

test('a request head over 8 KiB answers 431', async (t) => {
  const srv = await startServer(t);
  const small = await rawRequest(srv.port, 'GET', '/healthz', { 'X-Pad': 'a'.repeat(6000) });
  assert.equal(small.status, 200, 'a 6 KB head is fine');
  const big = await rawRequest(srv.port, 'GET', '/healthz', { 'X-Pad': 'a'.repeat(9000) });
  assert.equal(big.status, 431, 'one 9 KB header');
  const many = [];
  for (let i = 0; i < 40; i++) many.push([`X-Pad-${i}`, 'b'.repeat(250)]);
  assert.equal((await rawRequest(srv.port, 'GET', '/healthz', many)).status, 431, '40 x 250 B headers');
  assert.equal((await rawRequest(srv.port, 'GET', '/echo/ws', upgradeHeaders(srv.port, { 'X-Pad': 'c'.repeat(9000) }))).status, 431, 'upgrade with a 9 KB header');
  const longTarget = await rawRequest(srv.port, 'GET', `/healthz?${'q'.repeat(9000)}`);
  assert.equal(longTarget.status, 431, 'a 9 KB request target');
});

test('more than 100 headers answers 431', async (t) => {
  const srv = await startServer(t);
  const hdrs = (n) => {
    const out = [['Host', `127.0.0.1:${srv.port}`]];
    for (let i = 1; i < n; i++) out.push([`X-H${i}`, 'v']);
    return out;
  };
  assert.equal((await rawRequest(srv.port, 'GET', '/healthz', hdrs(100))).status, 200, '100 headers');
  assert.equal((await rawRequest(srv.port, 'GET', '/healthz', hdrs(101))).status, 431, '101 headers');
  assert.equal((await rawRequest(srv.port, 'GET', '/healthz', hdrs(300))).status, 431, '300 headers');
});

test('a head not complete within handshake_timeout_ms answers 408 and closes', async (t) => {
  const timeout = 500 * SLOW;
  const srv = await startServer(t, { handshake_timeout_ms: timeout });
  const c = await RawConn.open(srv.port);
  t.after(() => c.destroy());
  const t0 = performance.now();
  await c.write(`GET /echo/ws HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nUpgrade: websocket\r\n`);
  const r = await c.readResponse(timeout / SLOW + 3000);
  const dt = performance.now() - t0;
  assert.equal(r.status, 408);
  assert.ok(dt >= timeout * 0.8, `408 after ${dt.toFixed(0)} ms, before the ${timeout} ms timeout`);
  assert.ok(await c.waitEnd(2000 * SLOW), 'connection closed after 408');

  // Trickling bytes does not extend the deadline.
  const d = await RawConn.open(srv.port);
  t.after(() => d.destroy());
  const t1 = performance.now();
  const trickle = (async () => {
    const head = `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ${'z'.repeat(200)}`;
    for (const ch of head) {
      if (d.ended || d.buf.length) break;
      await d.write(ch);
      await sleep(20);
    }
  })();
  const r2 = await d.readResponse(timeout / SLOW + 5000);
  await trickle;
  assert.equal(r2.status, 408);
  const dt2 = performance.now() - t1;
  assert.ok(dt2 < timeout + 1500 * SLOW, `slowloris answered after ${dt2.toFixed(0)} ms`);
});

test('an idle connection that never sends a byte is dropped after handshake_timeout_ms', async (t) => {
  const timeout = 400 * SLOW;
  const srv = await startServer(t, { handshake_timeout_ms: timeout });
  const c = await RawConn.open(srv.port);
  t.after(() => c.destroy());
  assert.ok(await c.waitEnd(timeout + 2000 * SLOW), 'closed');
  // A 408 before the close is allowed, nothing else.
  if (c.buf.length) assert.match(c.buf.toString('latin1'), /^HTTP\/1\.1 408/);
});

test('ws client handshake works on both prefix and host routes; rejections surface as HTTP statuses', async (t) => {
  const srv = await startServer(t);
  const a = await openWs(srv.wsUrl('/echo/ws'));
  a.close();
  await a.closed;
  const b = await openWs(srv.wsUrl('/testgear/ws?name=b'));
  b.close();
  await b.closed;
  await assert.rejects(openWs(srv.wsUrl('/testgear/ws')), (e) => e.statusCode === 400);
  await assert.rejects(openWs(srv.wsUrl('/nope/ws')), (e) => e.statusCode === 404);
});

test('route matching is on URL-decoded segments and allows a trailing slash', async (t) => {
  const srv = await startServer(t);
  for (const p of ['/echo/ws/', '/echo/%77s', '/%65cho/ws', '/testgear/ws/?name=a', '/echo/ws?x=1']) {
    const ws = await RawWs.open(srv.port, p);
    await ws.send(1, 'echo:ok');
    const f = await ws.readFrame();
    assert.equal(f.opcode, 1, p);
    assert.ok(['echo:ok', 'ok'].includes(f.payload.toString()), `${p}: ${f.payload}`);
    ws.destroy();
  }
  assert.equal((await rawRequest(srv.port, 'GET', '/echo/ws//', upgradeHeaders(srv.port))).status, 404, '//');
  assert.equal((await rawRequest(srv.port, 'GET', '/echo/ws/extra', upgradeHeaders(srv.port))).status, 404);
});

test('frames sent in the same write as the upgrade request are not lost', async (t) => {
  const srv = await startServer(t);
  const c = await RawConn.open(srv.port);
  t.after(() => c.destroy());
  await c.write(Buffer.concat([
    Buffer.from(buildRequest('GET', '/echo/ws', upgradeHeaders(srv.port))),
    encodeFrame(1, 'early bird'),
    encodeFrame(9, 'early ping'),
    encodeFrame(8, Buffer.from([0x03, 0xe8])),
  ]));
  const r = await c.readResponse(5000, { head: true });
  assert.equal(r.status, 101);
  const frames = [];
  assert.ok(await c.waitUntil(() => {
    let d;
    while ((d = decodeFrame(c.buf))) {
      frames.push(d.frame);
      c.buf = d.rest;
    }
    return frames.length >= 3;
  }, 3000 * SLOW), `got ${frames.length} frames`);
  assert.deepEqual(frames.map((f) => [f.opcode, f.opcode === 8 ? parseClose(f.payload).code : f.payload.toString()]),
    [[1, 'early bird'], [10, 'early ping'], [8, 1000]]);
  assert.ok(await c.waitEnd(2000 * SLOW), 'server closes TCP after the close handshake');
});

test('keep-alive stays in sync across request bodies; Connection: close and HTTP/1.0 end the connection', async (t) => {
  const srv = await startServer(t);
  const host = ['Host', `127.0.0.1:${srv.port}`];
  const c = await RawConn.open(srv.port);
  t.after(() => c.destroy());
  // A request with a body the server does not want, then a normal one.
  await c.write(buildRequest('POST', '/nope', [host, ['Content-Length', '11']]) + 'GET /x HTTP');
  const r1 = await c.readResponse();
  assert.ok(r1.status >= 400, `POST /nope: ${r1.status}`);
  if (/\bclose\b/i.test(r1.headers.connection ?? '')) {
    // Refusing the body and closing is fine too; then the connection must end.
    assert.ok(await c.waitEnd(2000 * SLOW), 'closed after Connection: close');
  } else {
    await c.write(buildRequest('GET', '/healthz', [host]));
    const r2 = await c.readResponse();
    assert.equal(r2.status, 200, 'the body was not taken for a request');
  }
  // Connection: close
  const d = await RawConn.open(srv.port);
  t.after(() => d.destroy());
  await d.write(buildRequest('GET', '/healthz', [host, ['Connection', 'close']]));
  assert.equal((await d.readResponse()).status, 200);
  assert.ok(await d.waitEnd(2000 * SLOW), 'closed after Connection: close');
  // HTTP/1.0 without keep-alive
  const e = await RawConn.open(srv.port);
  t.after(() => e.destroy());
  await e.write(`GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n`);
  assert.equal((await e.readResponse()).status, 200);
  assert.ok(await e.waitEnd(2000 * SLOW), 'closed after an HTTP/1.0 response');
});
