// Memory no client can grow (issue 8), hole 1 with npm `ws` clients: clients
// that each send one big message to /echo/ws and never read the echo used to
// pin it for good. Now every byte is counted: such a client is closed (1008,
// a slow consumer, at the idle timeout at the latest), one that would need a
// buffer past the node's budget is refused (1013), RSS stays within
// max_buffered_bytes, and a normal client keeps getting its answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startServer, openWs, sleep, SLOW } from './lib/orrery.mjs';

const MiB = 1 << 20;

function rss(srv) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8'));
  return Number(m[1]) * 1024;
}

/** An echo client sending every 20 ms; stop() resolves to its worst round trip (ms). */
async function normalClient(srv) {
  const ws = await openWs(srv.wsUrl('/echo/ws'), { perMessageDeflate: false });
  let stopped = false;
  let worst = 0;
  let rounds = 0;
  let failure = null;
  const loop = (async () => {
    for (let i = 0; !stopped; i++) {
      const t0 = performance.now();
      ws.send(`normal ${i}`);
      const m = await ws.nextMessage(5000 * SLOW);
      assert.equal(m.data.toString(), `normal ${i}`);
      worst = Math.max(worst, performance.now() - t0);
      rounds++;
      await sleep(20);
    }
  })().catch((e) => {
    failure = e; // reported by stop(), not as an unhandled rejection after the test
  });
  return {
    async stop() {
      stopped = true;
      await loop;
      if (failure) throw failure;
      ws.close();
      assert.ok(rounds > 10, `${rounds} rounds`);
      return worst;
    },
  };
}

test('clients that send 15 MiB and never read: closed 1008 or refused 1013, memory within the budget', async (t) => {
  const BUDGET = 64 * MiB;
  const N = 20;
  const srv = await startServer(t, {
    workers: 2,
    max_message_bytes: 20000000,
    max_buffered_bytes: BUDGET,
    idle_timeout_ms: 3000 * SLOW,
    close_timeout_ms: 30000,
  });
  const rss0 = rss(srv);
  const normal = await normalClient(srv);
  const big = Buffer.alloc(15 * MiB, 0x61);
  const clients = [];
  for (let i = 0; i < N; i++) {
    const ws = await openWs(srv.wsUrl('/echo/ws'), { maxPayload: 0, perMessageDeflate: false });
    ws._socket.pause(); // never reads (until the end of the test)
    ws.send(big);
    clients.push(ws);
  }
  // While they sit: sample RSS and the gauge.
  let peak = 0;
  let peakGauge = 0;
  const until = performance.now() + 4500 * SLOW;
  while (performance.now() < until) {
    peak = Math.max(peak, rss(srv));
    peakGauge = Math.max(peakGauge, await srv.metric('orrery_buffered_bytes'));
    await sleep(50);
  }
  assert.ok(peakGauge <= BUDGET, `buffered ${peakGauge} > ${BUDGET}`);
  if (SLOW === 1) assert.ok(peak - rss0 < BUDGET + 48 * MiB, `RSS grew by ${((peak - rss0) / MiB).toFixed(0)} MiB`);

  // Each one reads now: what it was sent (a prefix of its echo, in
  // fragments) and then its close.
  const codes = [];
  for (const ws of clients) {
    ws._socket.resume();
    for (;;) {
      const ev = await ws.next(10000 * SLOW);
      if (ev.type === 'close') {
        codes.push(ev.code);
        break;
      }
      assert.equal(ev.type, 'message', 'no whole echo: it was cut at a frame boundary');
    }
  }
  // 1008: a slow consumer (at the idle timeout, with its echo unread), or
  // shed by the budget when echoes and new buffers together came near it.
  const closed = codes.filter((c) => c === 1008).length;
  const refused = codes.filter((c) => c === 1013).length;
  assert.equal(closed + refused, N, `close codes ${codes}`);
  assert.ok(closed > 0 && refused > 0, `close codes ${codes}`);
  const log = () => srv.stderr.split('\n').filter((l) => /slow consumer|DISCONNECTED|memory budget/.test(l)).join('\n');
  assert.equal(await srv.metric('orrery_budget_closes_total', { reason: 'message_refused' }), refused, log());
  const slow = await srv.metric('orrery_ws_slow_consumer_closes_total', { pool: 'gear:echo' });
  const shed = await srv.metric('orrery_budget_closes_total', { reason: 'output_shed' });
  assert.equal(slow + shed, closed, log());
  if (slow) await srv.waitForLog(/warn .*slow consumer: \d+ bytes unsent \(max_outbound_bytes 1048576\): closing 1008/);
  if (shed) await srv.waitForLog(/warn .*memory budget: .* unsent: closing 1008/);
  await srv.waitForLog(/warn .*memory budget: .* refused: closing 1013/);
  const worst = await normal.stop();
  assert.ok(worst < 1000 * SLOW, `the normal client waited ${worst.toFixed(0)} ms`);
  await srv.waitMetric('orrery_buffered_bytes', undefined, 0, 10000 * SLOW);
});

test('a client that reads gets a 15 MiB echo whole (one message may pass max_outbound_bytes)', async (t) => {
  const srv = await startServer(t, { workers: 1, max_message_bytes: 20000000, max_outbound_bytes: 65536 });
  const ws = await openWs(srv.wsUrl('/echo/ws'), { maxPayload: 0, perMessageDeflate: false });
  const big = Buffer.alloc(15 * MiB);
  for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;
  ws.send(big);
  const m = await ws.nextMessage(20000 * SLOW);
  assert.ok(Buffer.compare(m.data, big) === 0, 'the echo is the message');
  ws.send('after');
  assert.equal((await ws.nextMessage()).data.toString(), 'after');
  ws.close();
  assert.ok(!srv.stderr.includes('slow consumer'));
});

test('max_buffered_bytes changes on SIGHUP, and the new budget is the one defended', async (t) => {
  const srv = await startServer(t, { workers: 1, max_buffered_bytes: 256 * MiB, max_message_bytes: 20000000 });
  assert.equal(await srv.metric('orrery_max_buffered_bytes'), 256 * MiB);
  const r = await srv.reload({ workers: 1, max_buffered_bytes: 4 * MiB, max_message_bytes: 20000000 });
  assert.ok(r.ok, r.line);
  assert.equal(await srv.metric('orrery_max_buffered_bytes'), 4 * MiB);
  // A message needing an 8 MiB buffer no longer fits: 1013.
  const ws = await openWs(srv.wsUrl('/echo/ws'), { maxPayload: 0, perMessageDeflate: false });
  ws.send(Buffer.alloc(8 * MiB));
  const ev = await ws.nextClose(10000 * SLOW);
  assert.deepEqual([ev.code, ev.reason], [1013, 'server busy: try again later']);
  assert.equal(await srv.metric('orrery_budget_closes_total', { reason: 'message_refused' }), 1);
});
