// The Origin allowlist (RFC 6455 section 10.2, Cross-Site WebSocket
// Hijacking): allowed_origins and require_origin at the top level and per
// pool; a handshake from an origin its pool does not list gets 403 and a log
// line naming it, before the gear's connect runs. Raw sockets, npm `ws` and
// headless Chromium (a page of another origin, and the chat page with its
// own origin listed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServer, openWs, rawRequest, upgradeHeaders, launchChromium, SLOW } from './lib/orrery.mjs';

/** A raw upgrade to target with these Origin header values (none: no header). */
async function status(srv, target, ...origins) {
  const r = await rawRequest(srv.port, 'GET', target, [...upgradeHeaders(srv.port), ...origins.map((o) => ['Origin', o])]);
  return r.status;
}

test('without a list any Origin, and none, is served (the default)', async (t) => {
  const srv = await startServer(t);
  assert.equal(await status(srv, '/echo/ws', 'https://anywhere.example'), 101);
  assert.equal(await status(srv, '/echo/ws'), 101);
});

test('a top-level list: exact origins as browsers write them, *. patterns, everything else 403 with a log line', async (t) => {
  const srv = await startServer(t, {
    allowed_origins: ['https://app.example.com', '*.trusted.org', 'http://localhost:8080'],
  });
  const cases = [
    ['https://app.example.com', 101],
    ['HTTPS://APP.EXAMPLE.COM:443', 101],
    ['http://localhost:8080', 101],
    ['http://a.trusted.org:9000', 101],
    ['wss://x.y.trusted.org', 101],
    ['https://app.example.com:8443', 403],
    ['http://app.example.com', 403],
    ['https://trusted.org', 403],
    ['https://evil.example', 403],
    ['null', 403],
    ['https://app.example.com/path', 403],
    ['not an origin', 403],
  ];
  for (const [o, want] of cases) assert.equal(await status(srv, '/echo/ws', o), want, o);
  await srv.waitForLog(/warn .*origin "https:\/\/evil\.example" refused for pool gear:echo \(not in allowed_origins\): 403/);
  // Two Origin headers are refused, even when both are allowed.
  assert.equal(await status(srv, '/echo/ws', 'https://app.example.com', 'https://app.example.com'), 403);
  // No Origin (not a browser): served, as require_origin is false.
  assert.equal(await status(srv, '/echo/ws'), 101);
  // The gear never saw the refused ones: testgear's connect would answer 400 without a name.
  assert.equal(await status(srv, '/testgear/ws', 'https://evil.example'), 403);
  // npm ws sends no Origin unless asked: served; with a foreign one, refused.
  const ws = await openWs(srv.wsUrl('/echo/ws'));
  ws.close();
  await assert.rejects(openWs(srv.wsUrl('/echo/ws'), { origin: 'https://evil.example' }), (e) => e.statusCode === 403);
  const ok = await openWs(srv.wsUrl('/echo/ws'), { origin: 'https://app.example.com' });
  ok.send('hi');
  assert.equal((await ok.nextMessage()).data.toString(), 'hi');
  ok.close();
});

test('per pool: a pool\'s own list and require_origin win over the top level; SIGHUP changes them', async (t) => {
  const cfg = {
    allowed_origins: ['https://app.example.com'],
    pools: {
      'gear:echo': { allowed_origins: ['https://echo.example'] },
      'tenant:t1': { require_origin: true },
    },
  };
  const srv = await startServer(t, cfg);
  assert.equal(await status(srv, '/echo/ws', 'https://echo.example'), 101);
  assert.equal(await status(srv, '/echo/ws', 'https://app.example.com'), 403, 'the pool\'s own list');
  assert.equal(await status(srv, '/testgear/ws?name=a', 'https://app.example.com'), 101, 'gear:testgear: the top-level list');
  assert.equal(await status(srv, '/testgear/ws?name=b&tenant=t1'), 403, 'tenant:t1 requires an Origin');
  await srv.waitForLog(/origin \(none\) refused for pool tenant:t1 \(no Origin, and require_origin is true\): 403/);
  assert.equal(await status(srv, '/testgear/ws?name=c&tenant=t1', 'https://app.example.com'), 101, 'and takes the top-level list');
  assert.equal(await status(srv, '/testgear/ws?name=d&tenant=t2'), 101, 'another tenant does not');

  const r = await srv.reload({ ...cfg, allowed_origins: ['https://other.example'], require_origin: true });
  assert.ok(r.ok, r.line);
  assert.equal(await status(srv, '/testgear/ws?name=e', 'https://other.example'), 101, 'after SIGHUP');
  assert.equal(await status(srv, '/testgear/ws?name=f', 'https://app.example.com'), 403, 'after SIGHUP');
  assert.equal(await status(srv, '/testgear/ws?name=g'), 403, 'require_origin at the top level now');
  assert.equal(await status(srv, '/echo/ws', 'https://echo.example'), 101, 'the pool keeps its own list');
});

test('Chromium: a page of another origin is refused; the chat page, its own origin listed, works', async (t) => {
  const srv = await startServer(t, { workers: 2 });
  assert.ok((await srv.reload({ workers: 2, allowed_origins: [`http://127.0.0.1:${srv.port}`] })).ok);
  // Another site's page, served from another port, that opens a socket to Orrery.
  const evil = http.createServer((req, res) => {
    res.setHeader('content-type', 'text/html');
    res.end('<!doctype html><title>evil</title><script>' +
      `const ws = new WebSocket('ws://127.0.0.1:${srv.port}/echo/ws');` +
      'ws.onopen = () => { document.title = "open"; };' +
      'ws.onclose = (e) => { document.title = "closed " + e.code; };</script>');
  });
  await new Promise((resolve) => evil.listen(0, '127.0.0.1', resolve));
  t.after(() => evil.close());
  const browser = await launchChromium(t);
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${evil.address().port}/`);
  await page.waitForFunction(() => document.title.startsWith('closed') || document.title === 'open', null, { timeout: 5000 * SLOW });
  assert.equal(await page.title(), 'closed 1006', 'the cross-site socket never opens');
  await srv.waitForLog(new RegExp(`origin "http://127\\.0\\.0\\.1:${evil.address().port}" refused for pool gear:echo`));

  // The page at / is of the listed origin: its console's socket opens.
  const own = await browser.newPage();
  await own.goto(`http://127.0.0.1:${srv.port}/`);
  await own.click('#connect');
  await own.locator('#log .sys', { hasText: 'connected to' }).waitFor({ timeout: 5000 * SLOW });
  await own.fill('#msg', 'same origin');
  await own.click('#sendbtn');
  await own.locator('#log .in', { hasText: '< same origin' }).waitFor({ timeout: 5000 * SLOW });
  // And its chat: connect, join, say something, see it.
  const wait = { timeout: 5000 * SLOW };
  await own.fill('#chat-name', 'ann');
  await own.click('#chat-connect');
  await own.locator('#chat-log .sys', { hasText: 'connected as ann' }).waitFor(wait);
  await own.fill('#chat-room', 'lobby');
  await own.click('#chat-join');
  await own.locator('#chat-log .sys', { hasText: 'joined lobby' }).waitFor(wait);
  await own.fill('#chat-text', 'hello, same origin');
  await own.click('#chat-send');
  await own.locator('#chat-log .sys', { hasText: 'sent to 1 in lobby' }).waitFor(wait);
});
