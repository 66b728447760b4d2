// A real browser (Debian's Chromium, driven by npm playwright-core) uses the
// page at GET /: it lists the gears, and its console talks to the echo gear.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchChromium, deflateOff, SLOW } from './lib/orrery.mjs';

test('the page at / lists the gears and its console echoes through a websocket', async (t) => {
  const srv = await startServer(t);
  const browser = await launchChromium(t);
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`http://127.0.0.1:${srv.port}/`);
  assert.equal(await page.title(), 'Orrery');
  const gears = await page.locator('#gears li').allTextContents();
  assert.ok(gears.some((g) => g.includes('/echo/ws')), `gear list: ${gears}`);
  assert.ok(gears.some((g) => g.includes('/testgear/ws')), `gear list: ${gears}`);

  assert.equal(await page.inputValue('#url'), `ws://127.0.0.1:${srv.port}/echo/ws`);
  await page.click('#connect');
  await page.locator('#log .sys', { hasText: 'connected to' }).waitFor({ timeout: 5000 * SLOW });
  await page.fill('#msg', 'hello from chromium ✓');
  await page.click('#sendbtn');
  await page.locator('#log .in', { hasText: '< hello from chromium ✓' }).waitFor({ timeout: 5000 * SLOW });
  await page.click('#disconnect');
  await page.locator('#log .sys', { hasText: 'closed: 1000 bye' }).waitFor({ timeout: 5000 * SLOW });
  assert.deepEqual(errors, []);

  // The server saw a browser's handshake and a clean close from it.
  await srv.waitForLog(/DISCONNECTED .*frames_received=1 frames_sent=1 reason=remote:1000/, 5000 * SLOW);
});

test('Chromium offers subprotocols and permessage-deflate and gets the gear\'s choice and compression, from the C and the Lua testgear', async (t) => {
  const srv = await startServer(t);
  const browser = await launchChromium(t);
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${srv.port}/`);
  for (const g of ['testgear', 'luatestgear']) {
    const got = await page.evaluate(async (url) => new Promise((resolve) => {
      const ws = new WebSocket(url, ['chat.v1', 'chat.v2']);
      const long = 'échos '.repeat(2000);
      let n = 0;
      ws.onopen = () => { ws.send('echo:hi'); ws.send(`echo:${long}`); };
      ws.onmessage = (e) => {
        if (++n === 1 && e.data !== 'hi') resolve(`first: ${e.data}`);
        if (n === 2) {
          resolve(`${ws.protocol} ${ws.extensions} ${e.data === long}`);
          ws.close();
        }
      };
      ws.onerror = () => resolve('error');
    }), `ws://127.0.0.1:${srv.port}/${g}/ws?name=b&proto=chat.v2`);
    // Chromium offers permessage-deflate, and both ways work (the long answer compressed);
    // with deflate off ([nodeflate]) the offer is declined and both ways work uncompressed.
    const ext = deflateOff() ? '' : 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';
    assert.equal(got, `chat.v2 ${ext} true`, g);
  }
});
