// Server pings (ping_interval_ms): a connection from which nothing arrived for
// that long gets one empty ping; the idle timeout still counts from the last
// byte received, so a client that answers stays and a dead one is closed at
// idle_timeout_ms. The drain reaches pinged connections too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, openWs, RawWs, SHUTDOWN_REASON, SLOW, sleep, parseClose,
} from './lib/orrery.mjs';

const PING = 300 * SLOW;
const IDLE = 1500 * SLOW;

/** Record the pings a ws client receives: [{ at, data }]. */
function pingsOf(ws) {
  const got = [];
  ws.on('ping', (data) => got.push({ at: performance.now(), data }));
  return got;
}

test('a silent client that answers pings stays open past idle_timeout_ms', async (t) => {
  const srv = await startServer(t, { ping_interval_ms: PING, idle_timeout_ms: IDLE });
  const t0 = performance.now();
  const ws = await openWs(srv.wsUrl('/echo/ws')); // npm ws answers every ping with a pong
  const pings = pingsOf(ws);
  await sleep(2.4 * IDLE); // 3.6 s, more than twice the idle timeout
  assert.equal(ws.readyState, 1, 'still open');
  for (const ev of ws.events.items) assert.notEqual(ev.type, 'close');
  const gaps = pings.map((p, i) => p.at - (i ? pings[i - 1].at : t0));
  t.diagnostic(`${pings.length} pings, gaps ${gaps.map((g) => g.toFixed(0)).join(' ')} ms`);
  for (const p of pings) assert.equal(p.data.length, 0, 'an empty ping');
  // One ping per ping_interval_ms of silence (each pong restarts the clock),
  // give or take a tick.
  assert.ok(pings.length >= 5, `${pings.length} pings in ${(performance.now() - t0).toFixed(0)} ms`);
  for (const g of gaps.slice(1)) assert.ok(g >= PING * 0.8, `pings ${g.toFixed(0)} ms apart`);
  // It still works, and no DISCONNECTED was logged.
  ws.send('hi');
  assert.equal((await ws.nextMessage()).data.toString(), 'hi');
  assert.ok(!srv.lines().some((l) => /DISCONNECTED/.test(l)), srv.stderr);
  ws.close();
  await ws.closed;
});

test('a client that does not answer gets one ping, then is closed at idle_timeout_ms', async (t) => {
  const srv = await startServer(t, { ping_interval_ms: PING, idle_timeout_ms: IDLE, close_timeout_ms: 500 * SLOW });
  // npm ws with autoPong off, and a raw socket that never writes a byte.
  const t0 = performance.now();
  const ws = await openWs(srv.wsUrl('/echo/ws'), { autoPong: false });
  const pings = pingsOf(ws);
  const raw = await RawWs.open(srv.port, '/echo/ws');
  t.after(() => raw.destroy());

  const f1 = await raw.readFrame(IDLE / SLOW);
  const pingAt = performance.now() - t0;
  assert.deepEqual([f1.opcode, f1.fin, f1.masked, f1.payload.length], [9, true, false, 0], 'an empty ping');
  assert.ok(pingAt >= PING * 0.8 && pingAt <= PING + 700 * SLOW, `first ping after ${pingAt.toFixed(0)} ms`);
  const f2 = await raw.readFrame(IDLE / SLOW + 2000);
  const closeAt = performance.now() - t0;
  assert.equal(f2.opcode, 8, 'then the close, no second ping');
  assert.equal(parseClose(f2.payload).code, 1000);
  assert.ok(closeAt >= IDLE * 0.8 && closeAt <= IDLE + 1000 * SLOW, `closed after ${closeAt.toFixed(0)} ms`);
  assert.ok(await raw.conn.waitEnd(3000 * SLOW), 'TCP closed after the close timeout');

  const c = await ws.nextClose(IDLE / SLOW + 3000);
  assert.equal(c.code, 1000);
  assert.ok(c.at - t0 <= IDLE + 1000 * SLOW, `ws closed after ${(c.at - t0).toFixed(0)} ms`);
  assert.equal(pings.length, 1, `${pings.length} pings`);
  await srv.waitForLogCount(/DISCONNECTED .*reason=timeout/, 2);
});

test('bytes from the client postpone the ping', async (t) => {
  const srv = await startServer(t, { ping_interval_ms: PING, idle_timeout_ms: IDLE });
  const ws = await openWs(srv.wsUrl('/echo/ws'));
  const pings = pingsOf(ws);
  const t0 = performance.now();
  while (performance.now() - t0 < 3 * PING) {
    ws.send('k');
    await ws.nextMessage();
    await sleep(PING / 4);
  }
  assert.equal(pings.length, 0, 'no ping while the client talks');
  const quiet = performance.now();
  while (!pings.length && performance.now() - quiet < IDLE) await sleep(20);
  assert.equal(pings.length, 1, 'a ping once it is quiet');
  assert.ok(pings[0].at - quiet >= PING * 0.7, `ping ${(pings[0].at - quiet).toFixed(0)} ms into the silence`);
  ws.close();
  await ws.closed;
});

test('without ping_interval_ms no ping is sent', async (t) => {
  const idle = 600 * SLOW;
  const srv = await startServer(t, { idle_timeout_ms: idle });
  const raw = await RawWs.open(srv.port, '/echo/ws');
  t.after(() => raw.destroy());
  const f = await raw.readFrame(idle / SLOW + 2000);
  assert.equal(f.opcode, 8, `the first frame is the idle close, got opcode ${f.opcode}`);
  assert.equal(parseClose(f.payload).code, 1000);
});

test('SIGTERM: the drain sends 1001 to pinged connections too', async (t) => {
  const drainMs = 500 * SLOW;
  // A long idle timeout: pinged connections that do not answer stay pinged.
  const srv = await startServer(t, { ping_interval_ms: PING, idle_timeout_ms: 20000, drain_ms: drainMs, close_timeout_ms: 1000 * SLOW });
  const silent = await Promise.all(Array.from({ length: 4 }, () => openWs(srv.wsUrl('/echo/ws'), { autoPong: false })));
  const answering = await Promise.all(Array.from({ length: 2 }, () => openWs(srv.wsUrl('/echo/ws'))));
  const raw = await RawWs.open(srv.port, '/echo/ws');
  t.after(() => raw.destroy());
  const pings = [...silent, ...answering].map(pingsOf);
  const f = await raw.readFrame(3000);
  assert.equal(f.opcode, 9);
  while (pings.some((p) => p.length === 0)) await sleep(20);

  srv.signal('SIGTERM');
  const closes = await Promise.all([...silent, ...answering].map((ws) => ws.nextClose(drainMs / SLOW + 5000)));
  for (const c of closes) {
    assert.equal(c.code, 1001);
    assert.equal(c.reason, SHUTDOWN_REASON);
  }
  const rc = await raw.readFrame(drainMs / SLOW + 5000);
  assert.equal(rc.opcode, 8);
  assert.deepEqual(parseClose(rc.payload), { code: 1001, reason: SHUTDOWN_REASON });
  assert.equal((await srv.waitExit(drainMs + 5000 * SLOW)).code, 0);
  assert.equal(srv.lines().filter((l) => /DISCONNECTED .*reason=stop/.test(l)).length, 7, srv.stderr);
});
