// The chat gear: its JSON protocol driven by npm `ws`, and its page at GET /
// driven by a real browser (Debian's Chromium through npm playwright-core):
// two users in one room, and a direct message between them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openWs, rawRequest, launchChromium, SLOW } from './lib/orrery.mjs';

/** Connect as `name` and wait for the welcome; the socket gets `json(ms)` (next message, parsed). */
async function join(srv, name) {
  const ws = await openWs(srv.wsUrl(`/chat/ws?name=${encodeURIComponent(name)}`));
  ws.json = async (ms) => {
    const m = await ws.nextMessage(ms);
    assert.equal(m.isBinary, false, 'chat answers in text');
    return JSON.parse(m.data.toString());
  };
  ws.cmd = (o) => ws.send(typeof o === 'string' ? o : JSON.stringify(o));
  assert.deepEqual(await ws.json(), { type: 'welcome', name });
  return ws;
}

/** Collect `n` messages of `ws` and sort them by type, since two sources may interleave. */
async function several(ws, n) {
  const got = [];
  for (let i = 0; i < n; i++) got.push(await ws.json());
  return got.sort((a, b) => a.type.localeCompare(b.type));
}

test('the handshake needs a valid name', async (t) => {
  const srv = await startServer(t);
  for (const target of ['/chat/ws', '/chat/ws?name=', '/chat/ws?name=a%20b', `/chat/ws?name=${'x'.repeat(33)}`]) {
    const res = await rawRequest(srv.port, 'GET', target, {
      Upgrade: 'websocket', Connection: 'Upgrade',
      'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13',
    });
    assert.equal(res.status, 400, target);
    assert.match(res.headers['content-type'], /^text\/plain/, target);
    assert.match(res.text, /name/, target);
  }
  const ws = await join(srv, `A-z_0-9${'x'.repeat(25)}`); // 32 characters, every kind allowed
  ws.close(1000);
  await ws.closed;
});

test('rooms: join, say to every member with a count, leave', async (t) => {
  const srv = await startServer(t);
  const alice = await join(srv, 'alice');
  const bob = await join(srv, 'bob');

  alice.cmd({ type: 'join', room: 'lobby' });
  assert.deepEqual(await alice.json(), { type: 'joined', room: 'lobby' });
  bob.cmd({ type: 'join', room: 'lobby' });
  assert.deepEqual(await bob.json(), { type: 'joined', room: 'lobby' });

  // The sender is a member: it hears its own message as well as the answer.
  const text = 'hello from alice: "quotes", \\ and ✓';
  alice.cmd({ type: 'say', room: 'lobby', text });
  const message = { type: 'message', room: 'lobby', from: 'alice', text };
  assert.deepEqual(await several(alice, 2), [message, { type: 'said', room: 'lobby', count: 2 }]);
  assert.deepEqual(await bob.json(), message);

  // A room nobody is in: the message reaches nobody, which is no error.
  alice.cmd({ type: 'say', room: 'empty', text: 'anyone?' });
  assert.deepEqual(await alice.json(), { type: 'said', room: 'empty', count: 0 });

  bob.cmd({ type: 'leave', room: 'lobby' });
  assert.deepEqual(await bob.json(), { type: 'left', room: 'lobby' });
  bob.cmd({ type: 'leave', room: 'lobby' });
  const err = await bob.json();
  assert.equal(err.type, 'error');
  assert.equal(err.error, 'not_in_room');

  alice.cmd({ type: 'say', room: 'lobby', text: 'alone now' });
  assert.deepEqual(await several(alice, 2), [
    { type: 'message', room: 'lobby', from: 'alice', text: 'alone now' },
    { type: 'said', room: 'lobby', count: 1 },
  ]);

  // When a member goes, it leaves its rooms.
  bob.cmd({ type: 'join', room: 'lobby' });
  assert.deepEqual(await bob.json(), { type: 'joined', room: 'lobby' });
  bob.close(1000);
  await bob.closed;
  await srv.waitForLog(/DISCONNECTED .*reason=remote:1000/);
  alice.cmd({ type: 'say', room: 'lobby', text: 'bye bob' });
  assert.deepEqual((await several(alice, 2))[1], { type: 'said', room: 'lobby', count: 1 });
  alice.close(1000);
});

test('direct messages: delivered to a name, or not when nobody holds it', async (t) => {
  const srv = await startServer(t, { workers: 2 });
  const alice = await join(srv, 'alice');
  // Several clients make it likely that some share alice's worker and some do not.
  const others = [];
  for (let i = 0; i < 4; i++) others.push(await join(srv, `bob${i}`));
  for (const [i, bob] of others.entries()) {
    bob.cmd({ type: 'dm', to: 'alice', text: `hi alice, ${i} here` });
    assert.deepEqual(await bob.json(), { type: 'dm_sent', to: 'alice', delivered: true });
    assert.deepEqual(await alice.json(), { type: 'dm', from: `bob${i}`, text: `hi alice, ${i} here` });
  }
  alice.cmd({ type: 'dm', to: 'nobody', text: 'hello?' });
  assert.deepEqual(await alice.json(), { type: 'dm_sent', to: 'nobody', delivered: false });

  // A name is free again once its holder is gone.
  others[0].close(1000);
  await others[0].closed;
  await srv.waitForLog(/DISCONNECTED .*reason=remote:1000/);
  alice.cmd({ type: 'dm', to: 'bob0', text: 'still there?' });
  assert.deepEqual(await alice.json(), { type: 'dm_sent', to: 'bob0', delivered: false });
  const again = await join(srv, 'bob0');
  again.close(1000);
  alice.close(1000);
});

test('a name held by another connection is refused with close 4009', async (t) => {
  const srv = await startServer(t);
  const first = await join(srv, 'alice');
  const second = await openWs(srv.wsUrl('/chat/ws?name=alice'));
  const m = await second.nextMessage();
  assert.deepEqual(JSON.parse(m.data.toString()), { type: 'error', error: 'name_taken' });
  const c = await second.nextClose();
  assert.equal(c.code, 4009);
  assert.equal(c.reason, 'name taken');

  // The first holder is untouched.
  first.send(JSON.stringify({ type: 'dm', to: 'alice', text: 'note to self' }));
  assert.deepEqual(
    await several(first, 2),
    [{ type: 'dm', from: 'alice', text: 'note to self' }, { type: 'dm_sent', to: 'alice', delivered: true }],
  );
  first.close(1000);
});

test('bad input is answered with an error and the connection stays usable', async (t) => {
  const srv = await startServer(t);
  const ws = await join(srv, 'carol');
  const bad = [
    ['{not json', 'bad_json'],
    ['', 'bad_json'],
    ['[1,2]', 'bad_json'],
    ['"join"', 'bad_json'],
    [{ room: 'lobby' }, 'bad_type'],
    [{ type: 42 }, 'bad_type'],
    [{ type: 'dance' }, 'unknown_type'],
    [{ type: 'join' }, 'bad_room'],
    [{ type: 'join', room: '' }, 'bad_room'],
    [{ type: 'join', room: 'r'.repeat(65) }, 'bad_room'],
    [{ type: 'join', room: 7 }, 'bad_room'],
    [{ type: 'say', room: 'lobby' }, 'bad_text'],
    [{ type: 'say', room: 'lobby', text: 'x'.repeat(4001) }, 'text_too_long'],
    [{ type: 'dm', text: 'hi' }, 'bad_to'],
    [{ type: 'dm', to: 'no spaces', text: 'hi' }, 'bad_to'],
    [{ type: 'dm', to: 'carol', text: 'é'.repeat(2001) }, 'text_too_long'], // 4002 bytes
  ];
  for (const [input, error] of bad) {
    ws.cmd(input);
    const m = await ws.json();
    assert.equal(m.type, 'error', JSON.stringify(input));
    assert.equal(m.error, error, JSON.stringify(input));
  }
  ws.send(Buffer.from([1, 2, 3])); // binary
  assert.equal((await ws.json()).error, 'expected_text');

  // Still usable, and the bounds themselves are accepted.
  const room = 'r'.repeat(64);
  ws.cmd({ type: 'join', room });
  assert.deepEqual(await ws.json(), { type: 'joined', room });
  const text = 'x'.repeat(4000);
  ws.cmd({ type: 'say', room, text });
  assert.deepEqual(await several(ws, 2), [
    { type: 'message', room, from: 'carol', text },
    { type: 'said', room, count: 1 },
  ]);
  ws.close(1000);
  assert.equal((await ws.closed).code, 1000);
  assert.ok(!/ERROR/.test(srv.stderr), srv.stderr);
});

test('the page at / chats: two browsers in one room, and a direct message', async (t) => {
  const srv = await startServer(t);
  const browser = await launchChromium(t);
  const errors = [];
  const wait = { timeout: 5000 * SLOW };

  async function user(name) {
    const page = await browser.newPage();
    page.on('pageerror', (e) => errors.push(`${name}: ${e}`));
    await page.goto(srv.url('/'));
    await page.fill('#chat-name', name);
    await page.click('#chat-connect');
    await page.locator('#chat-log .sys', { hasText: `connected as ${name}` }).waitFor(wait);
    await page.fill('#chat-room', 'lobby');
    await page.click('#chat-join');
    await page.locator('#chat-log .sys', { hasText: 'joined lobby' }).waitFor(wait);
    return page;
  }
  const alice = await user('alice');
  const bob = await user('bob');

  // The console above is still there and untouched.
  assert.equal(await alice.inputValue('#url'), `ws://127.0.0.1:${srv.port}/echo/ws`);

  await alice.fill('#chat-text', 'hello from alice');
  await alice.click('#chat-send');
  await bob.locator('#chat-log .in', { hasText: '[lobby] alice: hello from alice' }).waitFor(wait);
  await alice.locator('#chat-log .sys', { hasText: 'sent to 2 in lobby' }).waitFor(wait);

  await bob.fill('#chat-to', 'alice');
  await bob.fill('#chat-text', 'psst, bob here');
  await bob.click('#chat-dm');
  await alice.locator('#chat-log .dm', { hasText: '[dm] bob: psst, bob here' }).waitFor(wait);
  await bob.locator('#chat-log .sys', { hasText: 'dm delivered to alice' }).waitFor(wait);

  // What others write is shown as text, never interpreted as HTML.
  const markup = '<img src=x onerror="window.pwned=1"><b>bold</b>';
  await bob.fill('#chat-text', markup);
  await bob.click('#chat-send');
  await alice.locator('#chat-log .in', { hasText: `bob: ${markup}` }).waitFor(wait);
  assert.equal(await alice.locator('#chat-log img, #chat-log b').count(), 0);
  assert.equal(await alice.evaluate(() => window.pwned), undefined);

  // A second tab cannot take a name in use.
  const mallory = await browser.newPage();
  await mallory.goto(srv.url('/'));
  await mallory.fill('#chat-name', 'alice');
  await mallory.click('#chat-connect');
  await mallory.locator('#chat-log .err', { hasText: 'error: name_taken' }).waitFor(wait);
  await mallory.locator('#chat-log .sys', { hasText: 'closed: 4009 name taken' }).waitFor(wait);

  await alice.click('#chat-disconnect');
  await alice.locator('#chat-log .sys', { hasText: 'closed: 1000 bye' }).waitFor(wait);
  assert.deepEqual(errors, []);
});

// A deploy: the node drains (1001) and a new one takes its port. The page
// reconnects by itself after a random 0.2-2.2 s (trying again while nothing
// answers), with its name and its rooms.
test('the page reconnects by itself after a 1001, with its name and rooms', async (t) => {
  const first = await startServer(t, { drain_ms: 200 });
  const browser = await launchChromium(t);
  const wait = { timeout: 10000 * SLOW };
  async function user(name) {
    const page = await browser.newPage();
    await page.goto(first.url('/'));
    await page.fill('#chat-name', name);
    await page.click('#chat-connect');
    await page.locator('#chat-log .sys', { hasText: `connected as ${name}` }).waitFor(wait);
    await page.fill('#chat-room', 'lobby');
    await page.click('#chat-join');
    await page.locator('#chat-log .sys', { hasText: 'joined lobby' }).waitFor(wait);
    return page;
  }
  const alice = await user('alice');
  const bob = await user('bob');
  first.signal('SIGTERM');
  await first.waitExit(10000 * SLOW);
  await alice.locator('#chat-log .sys', { hasText: 'closed: 1001' }).waitFor(wait);
  await startServer(t, {}, { args: ['--listen', `127.0.0.1:${first.port}`] });
  for (const [page, name] of [[alice, 'alice'], [bob, 'bob']]) {
    await page.locator('#chat-log .sys', { hasText: 'reconnecting in' }).first().waitFor(wait);
    await page.locator('#chat-log .sys', { hasText: `connected as ${name}` }).nth(1).waitFor(wait);
    await page.locator('#chat-log .sys', { hasText: 'joined lobby' }).nth(1).waitFor(wait);
  }
  await bob.fill('#chat-text', 'back again');
  await bob.click('#chat-send');
  await alice.locator('#chat-log .in', { hasText: '[lobby] bob: back again' }).waitFor(wait);
});
