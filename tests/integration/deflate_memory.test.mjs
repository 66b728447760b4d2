// permessage-deflate's memory, by design: a connection holds no zlib state
// (the worker's compressor and inflater serve all of them, no context
// takeover either way), so a connection with deflate negotiated costs what
// one without does. Measured as the server's RSS per connection, against a
// server with deflate off on the same load: npm ws (2,000 connections) and
// Chromium (200, the browser's own offer), idle after one compressed
// exchange each, and busy (every connection sending while RSS is sampled).
// RSS figures mean nothing under ASan: there the loads run, unasserted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startServer, openWs, launchChromium, sleep, SLOW } from './lib/orrery.mjs';

const KiB = 1024;
const TEXT = JSON.stringify(Array.from({ length: 40 }, (_, i) => ({ id: i, user: `user${i % 7}`, seen: i % 3 === 0 })));

function rssKiB(srv) {
  return Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8'))[1]);
}

/** One worker, so that its scratch (made by the warm-up) is counted once, before the baseline. */
async function server(t, deflate) {
  return startServer(t, { workers: 1, deflate, ws_max_connections: 10000, idle_timeout_ms: 120000 });
}

async function exchange(ws) {
  ws.send(TEXT);
  const m = await ws.nextMessage();
  assert.equal(m.data.toString(), TEXT);
}

/** Server RSS per connection: n npm ws connections, each after one exchange. */
async function perConnNpm(t, deflate, n) {
  const srv = await server(t, deflate);
  const warm = [];
  for (let i = 0; i < 50; i++) warm.push(await openWs(srv.wsUrl('/echo/ws')));
  await Promise.all(warm.map(exchange));
  await sleep(200);
  const rss0 = rssKiB(srv);
  const conns = [];
  for (let i = 0; i < n; i += 100) {
    const batch = await Promise.all(Array.from({ length: Math.min(100, n - i) }, () => openWs(srv.wsUrl('/echo/ws'))));
    await Promise.all(batch.map(exchange));
    conns.push(...batch);
  }
  assert.equal(conns[0].extensions, deflate === 'on' ? 'permessage-deflate' : '');
  await sleep(300);
  const idle = (rssKiB(srv) - rss0) / n;
  // Busy: every connection sends a message every 20 ms for a second while RSS is sampled.
  let peak = 0;
  const until = Date.now() + 1000;
  await Promise.all([
    ...conns.map(async (ws) => {
      while (Date.now() < until) {
        await exchange(ws);
        await sleep(20);
      }
    }),
    (async () => {
      while (Date.now() < until) {
        peak = Math.max(peak, rssKiB(srv));
        await sleep(50);
      }
    })(),
  ]);
  const busy = (peak - rss0) / n;
  for (const ws of conns.concat(warm)) ws.terminate();
  return { idle, busy };
}

test('npm ws: a connection with deflate costs at most 1 KiB more than one without, idle and busy', { timeout: 120000 * SLOW }, async (t) => {
  const n = SLOW === 1 ? 2000 : 300;
  const on = await perConnNpm(t, 'on', n);
  const off = await perConnNpm(t, 'off', n);
  const fmt = (v) => `${v.toFixed(2)} KiB`;
  t.diagnostic(`npm ws, ${n} connections, server RSS per connection: idle ${fmt(on.idle)} with deflate, ${fmt(off.idle)} without; busy ${fmt(on.busy)} with, ${fmt(off.busy)} without`);
  if (SLOW !== 1) return;
  assert.ok(on.idle - off.idle <= 1, `idle: ${fmt(on.idle)} with deflate, ${fmt(off.idle)} without`);
  assert.ok(on.busy - off.busy <= 1, `busy: ${fmt(on.busy)} with deflate, ${fmt(off.busy)} without`);
});

/** Server RSS per connection: n sockets from one Chromium page, each after one exchange. */
async function perConnChromium(t, browser, deflate, n) {
  const srv = await server(t, deflate);
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${srv.port}/`);
  const open = (k) => page.evaluate(async ({ k, text }) => {
    window.socks ??= [];
    const opened = await Promise.all(Array.from({ length: k }, () => new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://${location.host}/echo/ws`);
      ws.onopen = () => ws.send(text);
      ws.onmessage = (e) => (e.data === text ? resolve(ws) : reject(new Error('wrong echo')));
      ws.onerror = () => reject(new Error('socket error'));
    })));
    window.socks.push(...opened);
    return opened[0].extensions;
  }, { k, text: TEXT });
  await open(20); // the warm-up: the worker's scratch is made before the baseline
  await sleep(200);
  const rss0 = rssKiB(srv);
  const ext = await open(n);
  if (deflate === 'on') assert.match(ext, /^permessage-deflate; server_no_context_takeover; client_no_context_takeover/);
  else assert.equal(ext, '');
  await sleep(300);
  const idle = (rssKiB(srv) - rss0) / n;
  await page.close();
  return idle;
}

test('Chromium: its own offer; a connection with deflate costs at most 1 KiB more than one without', { timeout: 120000 * SLOW }, async (t) => {
  const browser = await launchChromium(t);
  const n = 200; // Chromium allows 255 sockets at once
  const on = await perConnChromium(t, browser, 'on', n);
  const off = await perConnChromium(t, browser, 'off', n);
  t.diagnostic(`Chromium, ${n} connections, server RSS per idle connection: ${on.toFixed(2)} KiB with deflate, ${off.toFixed(2)} KiB without`);
  if (SLOW !== 1) return;
  assert.ok(on - off <= 1, `${on.toFixed(2)} KiB with deflate, ${off.toFixed(2)} KiB without`);
});
