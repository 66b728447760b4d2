// Connection lifecycle: idle timeout, keep-alive by pings, graceful drain on
// SIGTERM/SIGINT, and the log lines of a connection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import {
  startServer, openWs, RawConn, parseLogLine, SHUTDOWN_REASON, SLOW, sleep,
  buildRequest, upgradeHeaders, decodeFrame, parseClose,
} from './lib/orrery.mjs';

test('an idle connection is closed with 1000 after idle_timeout_ms (reason=timeout)', async (t) => {
  const idle = 500 * SLOW;
  const srv = await startServer(t, { idle_timeout_ms: idle });
  const t0 = performance.now();
  const ws = await openWs(srv.wsUrl('/echo/ws'));
  const c = await ws.nextClose(idle / SLOW + 3000);
  const dt = c.at - t0;
  assert.equal(c.code, 1000);
  assert.ok(dt >= idle * 0.8, `closed after ${dt.toFixed(0)} ms, idle timeout is ${idle} ms`);
  assert.ok(dt <= idle + 1500 * SLOW, `closed after ${dt.toFixed(0)} ms, idle timeout is ${idle} ms`);
  await srv.waitForLog(/DISCONNECTED .*reason=timeout/);
});

test('a client that keeps pinging stays connected; messages reset the timer too', async (t) => {
  const idle = 500 * SLOW;
  const srv = await startServer(t, { idle_timeout_ms: idle });
  const pinger = await openWs(srv.wsUrl('/echo/ws'));
  const talker = await openWs(srv.wsUrl('/echo/ws'));
  const t0 = performance.now();
  while (performance.now() - t0 < idle * 3) {
    pinger.ping('k');
    talker.send('k');
    await sleep(idle / 4);
  }
  // Drain what arrived: only pongs and echoes, no close.
  for (const [name, ws] of [['pinger', pinger], ['talker', talker]]) {
    for (const ev of ws.events.items) assert.notEqual(ev.type, 'close', `${name} was closed`);
    assert.equal(ws.readyState, 1, `${name} still open`);
  }
  // Once quiet, both time out.
  const [a, b] = await Promise.all([pinger.closed, talker.closed]);
  assert.equal(a.code, 1000);
  assert.equal(b.code, 1000);
  const quietFor = Math.max(a.at, b.at) - (t0 + idle * 3);
  assert.ok(quietFor <= idle + 2000 * SLOW, `timed out ${quietFor.toFixed(0)} ms after the last ping`);
});

test('outbound traffic does not count as activity', async (t) => {
  // A connection that receives a big echo but sends nothing afterwards still
  // times out counted from its last inbound byte.
  const idle = 600 * SLOW;
  const srv = await startServer(t, { idle_timeout_ms: idle });
  const ws = await openWs(srv.wsUrl('/echo/ws'));
  const t0 = performance.now();
  ws.send(Buffer.alloc(1 << 20));
  await ws.nextMessage();
  const c = await ws.nextClose(idle / SLOW + 3000);
  assert.equal(c.code, 1000);
  assert.ok(c.at - t0 <= idle + 1500 * SLOW);
});

async function drainScenario(t, { clients, drainMs, closeTimeoutMs, signal }) {
  const srv = await startServer(t, { drain_ms: drainMs, close_timeout_ms: closeTimeoutMs, workers: 2 });
  const socks = await Promise.all(Array.from({ length: clients }, (_, i) => openWs(srv.wsUrl(i % 2 ? '/echo/ws' : '/testgear/ws?name=d' + i))));
  await Promise.all(socks.map(async (ws, i) => {
    ws.send(i % 2 ? 'ping' : 'echo:ping');
    assert.equal((await ws.nextMessage()).data.toString(), 'ping');
  }));
  // The arrival times below are this process's: if its own event loop was
  // held up (a loaded machine), closes that came meanwhile share one time.
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const t0 = performance.now();
  srv.signal(signal);
  const closes = await Promise.all(socks.map((ws) => ws.nextClose(drainMs / SLOW + closeTimeoutMs / SLOW + 5000)));
  lag.disable();
  const exit = await srv.waitExit(drainMs + closeTimeoutMs + 2000 * SLOW);
  return { srv, closes: closes.map((c) => ({ ...c, dt: c.at - t0 })), exit: { ...exit, dt: exit.at - t0 }, stallMs: lag.max / 1e6 };
}

test('SIGTERM drains: every client gets 1001 with the reason, spread over drain_ms, then exit 0', async (t) => {
  const drainMs = 1000 * SLOW;
  const closeTimeoutMs = 1000 * SLOW;
  const { srv, closes, exit, stallMs } = await drainScenario(t, { clients: 20, drainMs, closeTimeoutMs, signal: 'SIGTERM' });
  for (const c of closes) {
    assert.equal(c.code, 1001);
    assert.equal(c.reason, SHUTDOWN_REASON);
  }
  const dts = closes.map((c) => c.dt).sort((a, b) => a - b);
  t.diagnostic(`1001 arrivals (ms after SIGTERM): ${dts.map((d) => d.toFixed(0)).join(' ')}; exit after ${exit.dt.toFixed(0)} ms`);
  const span = dts[dts.length - 1] - dts[0];
  assert.ok(span >= drainMs * 0.5, `closes spread over ${span.toFixed(0)} ms only (drain_ms ${drainMs}): ${dts.map((d) => d.toFixed(0)).join(' ')}`);
  assert.ok(dts[dts.length - 1] <= drainMs + 500 * SLOW, `last close at ${dts[dts.length - 1].toFixed(0)} ms`);
  // No stampede: at most half the clients inside any drain_ms / 5 window
  // (two thirds under sanitizers, whose workers fall behind and catch up),
  // unless this client was itself held up that long and cannot tell.
  if (stallMs >= drainMs / 5) {
    t.diagnostic(`the client's event loop was held up ${stallMs.toFixed(0)} ms: arrival times cannot show a stampede`);
  } else {
    const most = SLOW === 1 ? dts.length / 2 : (dts.length * 2) / 3;
    for (let i = 0; i < dts.length; i++) {
      const inWindow = dts.filter((d) => d >= dts[i] && d < dts[i] + drainMs / 5).length;
      assert.ok(inWindow <= most, `${inWindow} closes within ${drainMs / 5} ms of ${dts[i].toFixed(0)} ms: ${dts.map((d) => d.toFixed(0)).join(' ')}`);
    }
  }
  assert.equal(exit.code, 0, `exit ${JSON.stringify(exit)}`);
  assert.equal(exit.signal, null);
  assert.ok(exit.dt <= drainMs + closeTimeoutMs + 2000 * SLOW, `exited after ${exit.dt.toFixed(0)} ms`);
  assert.equal(srv.lines().filter((l) => /DISCONNECTED .*reason=stop/.test(l)).length, 20, srv.stderr);
});

test('SIGINT drains the same way', async (t) => {
  const { closes, exit } = await drainScenario(t, { clients: 3, drainMs: 300 * SLOW, closeTimeoutMs: 500 * SLOW, signal: 'SIGINT' });
  for (const c of closes) {
    assert.equal(c.code, 1001);
    assert.equal(c.reason, SHUTDOWN_REASON);
  }
  assert.equal(exit.code, 0);
});

test('SIGTERM with no connections exits 0 promptly', async (t) => {
  const drainMs = 1000 * SLOW;
  const closeTimeoutMs = 1000 * SLOW;
  const srv = await startServer(t, { drain_ms: drainMs, close_timeout_ms: closeTimeoutMs });
  const t0 = performance.now();
  srv.signal('SIGTERM');
  const exit = await srv.waitExit(drainMs + closeTimeoutMs + 2000 * SLOW);
  assert.equal(exit.code, 0);
  assert.ok(exit.at - t0 <= drainMs + closeTimeoutMs + 2000 * SLOW);
});

test('a client that ignores the 1001 close is dropped after close_timeout_ms; exit 0 still', async (t) => {
  const drainMs = 200 * SLOW;
  const closeTimeoutMs = 700 * SLOW;
  const srv = await startServer(t, { drain_ms: drainMs, close_timeout_ms: closeTimeoutMs });
  const c = await RawConn.open(srv.port);
  t.after(() => c.destroy());
  await c.write(buildRequest('GET', '/echo/ws', upgradeHeaders(srv.port)));
  assert.equal((await c.readResponse(5000, { head: true })).status, 101);
  const t0 = performance.now();
  srv.signal('SIGTERM');
  assert.ok(await c.waitUntil(() => decodeFrame(c.buf) !== null, drainMs + 3000 * SLOW), 'a close frame arrived');
  const f = decodeFrame(c.buf).frame;
  assert.equal(f.opcode, 8);
  assert.deepEqual(parseClose(f.payload), { code: 1001, reason: SHUTDOWN_REASON });
  // We never answer: the server closes TCP after close_timeout_ms and exits 0.
  assert.ok(await c.waitEnd(drainMs + closeTimeoutMs + 2000 * SLOW), 'TCP dropped');
  const exit = await srv.waitExit(drainMs + closeTimeoutMs + 2000 * SLOW);
  assert.equal(exit.code, 0);
  assert.ok(exit.at - t0 <= drainMs + closeTimeoutMs + 2000 * SLOW, `exit after ${(exit.at - t0).toFixed(0)} ms`);
});

test('during the drain the listeners are closed and a handshake in progress gets 503', async (t) => {
  const drainMs = 1500 * SLOW;
  const srv = await startServer(t, { drain_ms: drainMs, close_timeout_ms: 1000 * SLOW });
  // Keep the drain busy with a few connections.
  const socks = await Promise.all(Array.from({ length: 6 }, () => openWs(srv.wsUrl('/echo/ws'))));
  const pending = await RawConn.open(srv.port);
  t.after(() => pending.destroy());
  await pending.write(`GET /echo/ws HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nUpgrade: websocket\r\n`);
  await sleep(50);
  srv.signal('SIGTERM');
  await sleep(100 * SLOW);
  // The server may answer 503 right away; otherwise it does when the head completes.
  if (!pending.buf.length && !pending.ended) {
    await pending.write(`Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  }
  const r = await pending.readResponse(3000);
  assert.equal(r.status, 503);
  assert.ok(await pending.waitEnd(2000 * SLOW), 'closed after 503');

  // A new connection is refused: the workers closed their listening sockets
  // (ECONNREFUSED; ECONNRESET if it was queued on one as it closed), or a
  // worker that accepted it answers 503. Never upgraded, never a silent close.
  const attempt = await new Promise((resolve) => {
    const s = net.connect({ port: srv.port, host: '127.0.0.1' });
    let data = '';
    s.on('connect', () => s.write(`GET /echo/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`));
    s.on('data', (d) => { data += d; });
    s.on('error', (e) => resolve({ error: e.code, data }));
    s.on('close', () => resolve({ data }));
    setTimeout(() => { s.destroy(); resolve({ data, timeout: true }); }, 2000 * SLOW);
  });
  assert.ok(['ECONNREFUSED', 'ECONNRESET'].includes(attempt.error) || /^HTTP\/1\.1 503 /.test(attempt.data),
    `new connection during drain: ${JSON.stringify(attempt)}`);
  const closes = await Promise.all(socks.map((ws) => ws.closed));
  for (const c of closes) assert.equal(c.code, 1001);
  assert.equal((await srv.waitExit(drainMs + 3000 * SLOW)).code, 0);
});

test('log lines: status=101, CONNECTED, DISCONNECTED with message counts, one context id', async (t) => {
  const srv = await startServer(t);
  const ws = await openWs(srv.wsUrl('/echo/ws'));
  ws.send('one');
  ws.send(Buffer.from('two'));
  ws.send('th', { fin: false }); // one message in three fragments
  ws.ping('not counted');
  ws.send('r', { fin: false });
  ws.send('ee', { fin: true });
  const got = [];
  while (got.length < 3) {
    const ev = await ws.next();
    if (ev.type === 'message') got.push(ev.data.toString());
  }
  assert.deepEqual(got, ['one', 'two', 'three']);
  ws.close(1000, 'done');
  await ws.closed;
  const disc = await srv.waitForLog(/DISCONNECTED /);
  const d = parseLogLine(disc);
  assert.ok(d, `parsable: ${disc}`);
  assert.match(d.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/);
  assert.ok(d.ctx && d.ctx !== '-', 'a context id');
  assert.match(d.msg, /connected_at=\S+/);
  assert.match(d.msg, /frames_received=3\b/, disc);
  assert.match(d.msg, /frames_sent=3\b/, disc);
  assert.match(d.msg, /reason=remote(:1000)?\b/, disc);
  const mine = srv.entries().filter((e) => e.ctx === d.ctx);
  assert.ok(mine.some((e) => /status=101\b/.test(e.msg)), `status=101 line with ctx ${d.ctx}:\n${srv.stderr}`);
  assert.ok(mine.some((e) => /\bCONNECTED\b/.test(e.msg) && !/DISCONNECTED/.test(e.msg)), `CONNECTED line with ctx ${d.ctx}:\n${srv.stderr}`);
  assert.ok(/DISCONNECTED/.test(mine[mine.length - 1].msg), 'DISCONNECTED is the last line of the connection');
});

test('log lines: counts follow what the gear sent, context ids differ per connection, reason=closed on TCP drop', async (t) => {
  const srv = await startServer(t);
  const a = await openWs(srv.wsUrl('/testgear/ws?name=a'));
  a.send('noop');
  a.send('noop');
  a.send('echo:x');
  a.send(Buffer.from([1, 2]));
  await a.nextMessage();
  await a.nextMessage();
  a.close(4000, 'client');
  await a.closed;
  const da = parseLogLine(await srv.waitForLog(/DISCONNECTED /));
  assert.match(da.msg, /frames_received=4\b/, da.line);
  assert.match(da.msg, /frames_sent=2\b/, da.line);
  assert.match(da.msg, /reason=remote(:4000)?\b/, da.line);

  const b = await openWs(srv.wsUrl('/echo/ws'));
  b.send('x');
  await b.nextMessage();
  b.terminate(); // TCP closed without a close frame
  const lines = await srv.waitForLogCount(/DISCONNECTED /, 2);
  const db = parseLogLine(lines[1]);
  assert.notEqual(db.ctx, da.ctx);
  assert.match(db.msg, /reason=closed\b/, db.line);
  assert.match(db.msg, /frames_received=1\b/, db.line);
  assert.match(db.msg, /frames_sent=1\b/, db.line);
});
