// The push API (POST /_orrery/pools/<pool>/...), slow consumers (1008), and the
// values GET /metrics reports for a scripted session.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, openWs, rawRequest, httpRequest, upgradeHeaders, buildRequest, RawConn, sleep, SLOW,
} from './lib/orrery.mjs';

const TG = 'gear:testgear';
const TOKEN = 's3cr3t-t0ken';

async function tg(srv, name, tenant) {
  // Volumes here are the bytes on the wire: no compression to shrink them.
  const ws = await openWs(srv.wsUrl(`/testgear/ws?name=${encodeURIComponent(name)}${tenant ? `&tenant=${tenant}` : ''}`), { perMessageDeflate: false });
  await roundTrip(ws);
  return ws;
}

async function roundTrip(ws, tag = 'sync') {
  ws.send(`echo:${tag}`);
  const m = await ws.nextMessage();
  assert.equal(m.data.toString(), tag);
}

async function cmd(ws, text) {
  ws.send(text);
  return (await ws.nextMessage()).data.toString();
}

function push(srv, pool, kind, name, body, { token = TOKEN, auth, headers = {} } = {}) {
  const h = { ...headers };
  if (auth !== undefined) {
    if (auth !== null) h.Authorization = auth;
  } else {
    h.Authorization = `Bearer ${token}`;
  }
  return httpRequest(srv.port, 'POST', `/_orrery/pools/${pool}/${kind}/${encodeURIComponent(name)}/messages`, { headers: h, body });
}

test('push API: unique 200/404, group counts, pool spelled gear%3Atestgear, tenant pools, binary', async (t) => {
  const srv = await startServer(t, { workers: 2, api_token: TOKEN });
  const alice = await tg(srv, 'alice');
  const bob = await tg(srv, 'bob');
  const aliceT1 = await tg(srv, 'alice', 't1');

  let res = await push(srv, TG, 'unique', 'alice', 'hello alice');
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'], /application\/json/);
  assert.deepEqual(JSON.parse(res.text), { delivered: true });
  let m = await alice.nextMessage();
  assert.deepEqual([m.isBinary, m.data.toString()], [false, 'hello alice']);

  res = await push(srv, 'gear%3Atestgear', 'unique', 'alice', 'encoded pool');
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.text), { delivered: true });
  assert.equal((await alice.nextMessage()).data.toString(), 'encoded pool');

  res = await push(srv, TG, 'unique', 'carol', 'nobody');
  assert.equal(res.status, 404);
  assert.deepEqual(JSON.parse(res.text), { delivered: false });
  res = await push(srv, 'tenant:nobody', 'unique', 'alice', 'no such pool');
  assert.equal(res.status, 404);
  assert.deepEqual(JSON.parse(res.text), { delivered: false });

  // The tenant pool's alice is another connection.
  res = await push(srv, 'tenant:t1', 'unique', 'alice', 'to t1');
  assert.deepEqual([res.status, JSON.parse(res.text)], [200, { delivered: true }]);
  assert.equal((await aliceT1.nextMessage()).data.toString(), 'to t1');

  // Not UTF-8: a binary frame with the exact bytes. UTF-8 multibyte text stays text.
  const bin = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x41]);
  res = await push(srv, TG, 'unique', 'bob', bin);
  assert.equal(res.status, 200);
  m = await bob.nextMessage();
  assert.equal(m.isBinary, true);
  assert.ok(m.data.equals(bin));
  res = await push(srv, TG, 'unique', 'bob', 'ünïcødé 🎉');
  assert.equal(res.status, 200);
  m = await bob.nextMessage();
  assert.deepEqual([m.isBinary, m.data.toString()], [false, 'ünïcødé 🎉']);
  // An empty body is an empty text message.
  res = await push(srv, TG, 'unique', 'bob', '');
  assert.equal(res.status, 200);
  m = await bob.nextMessage();
  assert.deepEqual([m.isBinary, m.data.length], [false, 0]);

  // A name with a slash, a space, a colon and non-ASCII, percent-encoded in the path.
  const odd = await tg(srv, 'x/y z:ü');
  res = await push(srv, TG, 'unique', 'x/y z:ü', 'odd name');
  assert.deepEqual([res.status, JSON.parse(res.text)], [200, { delivered: true }]);
  assert.equal((await odd.nextMessage()).data.toString(), 'odd name');
  odd.close();

  // Groups.
  res = await push(srv, TG, 'groups', 'room', 'nobody there');
  assert.deepEqual([res.status, JSON.parse(res.text)], [200, { count: 0 }]);
  assert.equal(await cmd(alice, 'join:room'), 'joined:room');
  assert.equal(await cmd(bob, 'join:room'), 'joined:room');
  assert.equal(await cmd(aliceT1, 'join:room'), 'joined:room');
  res = await push(srv, TG, 'groups', 'room', 'to the room');
  assert.deepEqual([res.status, JSON.parse(res.text)], [200, { count: 2 }]);
  assert.equal((await alice.nextMessage()).data.toString(), 'to the room');
  assert.equal((await bob.nextMessage()).data.toString(), 'to the room');
  res = await push(srv, 'gear%3Atestgear', 'groups', 'room', Buffer.from([0xc3]));
  assert.deepEqual([res.status, JSON.parse(res.text)], [200, { count: 2 }]);
  for (const ws of [alice, bob]) {
    m = await ws.nextMessage();
    assert.equal(m.isBinary, true);
    assert.ok(m.data.equals(Buffer.from([0xc3])));
  }
  res = await push(srv, 'tenant:t1', 'groups', 'room', 'to t1 room');
  assert.deepEqual([res.status, JSON.parse(res.text)], [200, { count: 1 }]);
  assert.equal((await aliceT1.nextMessage()).data.toString(), 'to t1 room');
  assert.equal(await cmd(bob, 'leave:room'), 'left:room');
  res = await push(srv, TG, 'groups', 'room', 'one less');
  assert.deepEqual(JSON.parse(res.text), { count: 1 });
  assert.equal((await alice.nextMessage()).data.toString(), 'one less');

  // Pushed messages come in the order they were accepted.
  for (let i = 0; i < 50; i++) assert.equal((await push(srv, TG, 'unique', 'alice', `n${i}`)).status, 200);
  for (let i = 0; i < 50; i++) assert.equal((await alice.nextMessage()).data.toString(), `n${i}`);

  // A bad path shape is 404.
  for (const p of ['/_orrery/pools/gear:testgear/unique/alice', '/_orrery/pools/gear:testgear/other/alice/messages',
    '/_orrery/pools/gear:testgear/unique/alice/messages/x', '/_orrery/nothing']) {
    const r = await httpRequest(srv.port, 'POST', p, { headers: { Authorization: `Bearer ${TOKEN}` }, body: 'x' });
    assert.equal(r.status, 404, p);
  }

  await sleep(100 * SLOW);
  for (const ws of [alice, bob, aliceT1]) assert.deepEqual(ws.events.items, [], 'nothing extra delivered');
  for (const ws of [alice, bob, aliceT1]) ws.close();
});

test('push API: 401 without a valid bearer token; nothing is delivered', async (t) => {
  const srv = await startServer(t, { workers: 1, api_token: TOKEN });
  const alice = await tg(srv, 'alice');
  const cases = [
    ['no header', null],
    ['wrong token', `Bearer ${TOKEN}x`],
    ['token prefix', `Bearer ${TOKEN.slice(0, -1)}`],
    ['other token same length', `Bearer ${'x'.repeat(TOKEN.length)}`],
    ['empty token', 'Bearer '],
    ['Basic scheme', `Basic ${Buffer.from(`user:${TOKEN}`).toString('base64')}`],
    ['token without scheme', TOKEN],
    ['Token scheme', `Token ${TOKEN}`],
  ];
  for (const [what, auth] of cases) {
    for (const kind of ['unique', 'groups']) {
      const res = await push(srv, TG, kind, 'alice', 'should not arrive', { auth });
      assert.equal(res.status, 401, `${what} (${kind})`);
      assert.match(res.headers['www-authenticate'] || '', /^Bearer/i, `${what}: WWW-Authenticate`);
    }
  }
  // The scheme is case-insensitive.
  const ok = await push(srv, TG, 'unique', 'alice', 'lowercase scheme', { auth: `bearer ${TOKEN}` });
  assert.equal(ok.status, 200);
  assert.equal((await alice.nextMessage()).data.toString(), 'lowercase scheme');
  await roundTrip(alice, 'nothing else');
  alice.close();
});

test('push API: a body over max_message_bytes is 413 and the rest is not read', async (t) => {
  const max = 1000;
  const srv = await startServer(t, { workers: 1, api_token: TOKEN, max_message_bytes: max });
  const alice = await tg(srv, 'alice');
  const okRes = await push(srv, TG, 'unique', 'alice', 'a'.repeat(max));
  assert.equal(okRes.status, 200);
  assert.equal((await alice.nextMessage()).data.toString(), 'a'.repeat(max));

  // Content-Length one over: answered from the head alone (only part of the body is sent).
  for (const [kind, len] of [['unique', max + 1], ['groups', max + 1], ['unique', 1 << 30]]) {
    const c = await RawConn.open(srv.port);
    await c.write(buildRequest('POST', `/_orrery/pools/${TG}/${kind}/alice/messages`, [
      ['Host', `127.0.0.1:${srv.port}`], ['Authorization', `Bearer ${TOKEN}`], ['Content-Length', String(len)],
    ]) + 'b'.repeat(100));
    const res = await c.readResponse();
    assert.equal(res.status, 413, `${kind} ${len}`);
    assert.ok(await c.waitEnd(3000 * SLOW), 'the connection ends after the 413');
    c.destroy();
  }
  // Without a valid token, 401 comes first.
  const c = await RawConn.open(srv.port);
  await c.write(buildRequest('POST', `/_orrery/pools/${TG}/unique/alice/messages`, [
    ['Host', `127.0.0.1:${srv.port}`], ['Content-Length', String(max + 1)],
  ]));
  assert.equal((await c.readResponse()).status, 401);
  c.destroy();
  await roundTrip(alice, 'nothing else');
  alice.close();
});

test('push API is off (404) without api_token', async (t) => {
  const srv = await startServer(t, { workers: 1 });
  const alice = await tg(srv, 'alice');
  for (const auth of [undefined, null, 'Bearer ']) {
    const res = await push(srv, TG, 'unique', 'alice', 'x', { auth });
    assert.equal(res.status, 404);
    const g = await push(srv, TG, 'groups', 'room', 'x', { auth });
    assert.equal(g.status, 404);
  }
  await roundTrip(alice, 'nothing else');
  // SIGHUP with a token turns it on; without one, off again.
  let r = await srv.reload({ workers: 1, api_token: TOKEN });
  assert.ok(r.ok, r.line);
  assert.equal((await push(srv, TG, 'unique', 'alice', 'on now')).status, 200);
  assert.equal((await alice.nextMessage()).data.toString(), 'on now');
  r = await srv.reload({ workers: 1 });
  assert.ok(r.ok, r.line);
  assert.equal((await push(srv, TG, 'unique', 'alice', 'off again')).status, 404);
  await roundTrip(alice, 'nothing else');
  alice.close();
});

test('slow consumer: closed with 1008 after what it had not read, while a fast member keeps receiving', async (t) => {
  // max_outbound_bytes at its default (1 MiB); the publisher keeps at most
  // WINDOW publishes unanswered, so the fast member is never far behind.
  const srv = await startServer(t, { workers: 2, close_timeout_ms: 10000 * SLOW });
  const slow = await tg(srv, 'slow');
  const fast = await tg(srv, 'fast');
  const pub = await tg(srv, 'pub');
  assert.equal(await cmd(slow, 'join:room'), 'joined:room');
  assert.equal(await cmd(fast, 'join:room'), 'joined:room');
  slow._socket.pause(); // stop reading: the kernel buffers fill, then the server's queue

  const N = 400;
  const WINDOW = 4;
  const SIZE = 64 * 1024;
  const tag = (i) => String(i).padStart(6, '0');
  const body = (i) => `${tag(i)}:${'x'.repeat(SIZE - 7)}`;
  // The fast member reads everything, in order, while the publisher publishes.
  let fastGot = 0;
  const fastDone = (async () => {
    for (; fastGot < N; fastGot++) {
      const m = await fast.nextMessage(10000);
      assert.equal(m.data.length, SIZE);
      assert.equal(m.data.toString('latin1', 0, 6), tag(fastGot), 'fast member: in order');
    }
  })();
  const counts = [];
  for (let i = 0; i < N; i++) {
    pub.send(`publish:room:${body(i)}`);
    if (i >= WINDOW) counts.push((await pub.nextMessage(10000)).data.toString());
  }
  while (counts.length < N) counts.push((await pub.nextMessage(10000)).data.toString());
  await fastDone;
  // Every publication counted 2 members, then 1 once the slow one was dropped.
  assert.ok(counts.every((c) => c === 'published:2' || c === 'published:1'), [...new Set(counts)].join());
  const firstOne = counts.indexOf('published:1');
  assert.ok(firstOne > 0, 'the slow member was dropped at some point');
  assert.ok(counts.slice(firstOne).every((c) => c === 'published:1'), 'and not counted again');
  await srv.waitMetric('orrery_ws_slow_consumer_closes_total', { pool: TG }, 1, 10000);

  // The slow member resumes: it gets a prefix of the messages, in order, then 1008.
  slow._socket.resume();
  let k = 0;
  for (;;) {
    const ev = await slow.next(10000);
    if (ev.type === 'close') {
      assert.equal(ev.code, 1008);
      assert.equal(ev.reason, 'slow consumer');
      break;
    }
    assert.equal(ev.type, 'message');
    assert.equal(ev.data.length, SIZE);
    assert.equal(ev.data.toString('latin1', 0, 6), tag(k), 'slow member: a prefix, in order');
    k++;
  }
  assert.ok(k > 0 && k < N, `the slow member got ${k} of ${N} before its close`);
  assert.equal(await srv.metric('orrery_ws_slow_consumer_closes_total', { pool: TG }), 1);
  await srv.waitForLog(/warn .*slow consumer: \d+ bytes unsent \(max_outbound_bytes 1048576\): closing 1008/);
  await srv.waitForLog(/DISCONNECTED .*reason=slow/, 5000);

  // The others are fine and the group has one member left.
  await roundTrip(fast, 'fast ok');
  await srv.waitMetric('orrery_registry_memberships', undefined, 1);
  assert.equal(await cmd(pub, 'publish:room:after'), 'published:1');
  assert.equal((await fast.nextMessage()).data.toString(), 'after');
  fast.close();
  pub.close();
});

test('a member that never reads is dropped (max_outbound_bytes from the config); the publisher never waits', async (t) => {
  const srv = await startServer(t, { workers: 1, max_outbound_bytes: 65536, close_timeout_ms: 500 * SLOW });
  const slow = await tg(srv, 'slow');
  const pub = await tg(srv, 'pub');
  assert.equal(await cmd(slow, 'join:room'), 'joined:room');
  slow._socket.pause();
  const big = 'y'.repeat(32 * 1024);
  let last = '';
  let i = 0;
  // Kernel buffers take a few MB; past them, 64 KiB more and the member is dropped.
  for (; i < 2000 && last !== 'published:0'; i++) {
    last = await cmd(pub, `publish:room:${big}`);
    assert.match(last, /^published:[01]$/);
  }
  assert.equal(last, 'published:0', `still a member after ${i} publications of 32 KiB`);
  await srv.waitMetric('orrery_ws_slow_consumer_closes_total', { pool: TG }, 1);
  await srv.waitForLog(/warn .*slow consumer: \d+ bytes unsent \(max_outbound_bytes 65536\): closing 1008/);
  // Not read, not answered: the server ends the TCP connection after close_timeout_ms.
  await srv.waitForLog(/DISCONNECTED .*reason=slow/, 500 + 3000);
  // What reached the client's kernel buffer is a prefix, in order, then the end.
  slow._socket.resume();
  let k = 0;
  for (;;) {
    const ev = await slow.next(5000);
    if (ev.type === 'close') {
      assert.ok([1006, 1008].includes(ev.code), `close ${ev.code}`);
      break;
    }
    assert.equal(ev.data.length, big.length);
    k++;
  }
  assert.ok(k > 0 && k < i, `${k} of ${i}`);
  await roundTrip(pub, 'pub ok');
  pub.close();
});

test('metrics: exact values for a scripted session', async (t) => {
  const srv = await startServer(t, { workers: 2, api_token: TOKEN, pools: { [TG]: { ws_max_connections: 3 } } });
  const res = await rawRequest(srv.port, 'GET', '/metrics');
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  for (const f of ['orrery_ws_connections', 'orrery_ws_max_connections', 'orrery_ws_rejected_total',
    'orrery_ws_frames_received_total', 'orrery_ws_frames_sent_total', 'orrery_ws_slow_consumer_closes_total',
    'orrery_ws_handshakes_total', 'orrery_registry_names', 'orrery_registry_groups', 'orrery_registry_memberships',
    'orrery_accept_errors_total']) {
    assert.match(res.text, new RegExp(`^# TYPE ${f} (gauge|counter)$`, 'm'), f);
  }
  assert.match(res.text, /^orrery_accept_errors_total 0$/m);
  const hs = async () => {
    const m = await srv.metrics();
    return Object.fromEntries(['101', '400', '404', '426', '503', '4xx', '500', 'other']
      .map((s) => [s, m.get(`orrery_ws_handshakes_total{status="${s}"}`)]));
  };
  assert.deepEqual(await hs(), { 101: 0, 400: 0, 404: 0, 426: 0, 503: 0, '4xx': 0, 500: 0, other: 0 });

  // Handshakes that fail: 400 (testgear without a name), 404 (bad tenant), 426 (plain GET).
  assert.equal((await rawRequest(srv.port, 'GET', '/testgear/ws', upgradeHeaders(srv.port))).status, 400);
  assert.equal((await rawRequest(srv.port, 'GET', '/testgear/ws?name=x&tenant=bad%20id', upgradeHeaders(srv.port))).status, 404);
  assert.equal((await rawRequest(srv.port, 'GET', '/testgear/ws?name=x')).status, 426);
  assert.equal((await rawRequest(srv.port, 'GET', '/echo/ws')).status, 426);

  // A scripted session: a and b on testgear, e on echo.
  const a = await openWs(srv.wsUrl('/testgear/ws?name=a'));
  const b = await openWs(srv.wsUrl('/testgear/ws?name=b'));
  const e = await openWs(srv.wsUrl('/echo/ws'), { perMessageDeflate: false });
  assert.equal(await cmd(a, 'echo:1'), '1');                 // a: in 1, out 1
  assert.equal(await cmd(a, 'echo:2'), '2');                 // a: in 2, out 2
  assert.equal(await cmd(a, 'join:g'), 'joined:g');          // a: in 3, out 3
  assert.equal(await cmd(b, 'join:g'), 'joined:g');          // b: in 1, out 1
  b.send(Buffer.from([1, 2, 3]), { binary: true });          // b: in 2, out 2 (binary echo)
  assert.ok((await b.nextMessage()).isBinary);
  a.send('publish:g:x');                                     // a: in 4; a out 5 (answer + x), b out 3
  assert.deepEqual([(await a.nextMessage()).data.toString(), (await a.nextMessage()).data.toString()].sort(), ['published:2', 'x']);
  assert.equal((await b.nextMessage()).data.toString(), 'x');
  a.send('noop');                                            // a: in 5, nothing out
  a.ping('p');                                               // control frames are not data messages
  assert.equal((await a.nextOf('pong')).type, 'pong');
  assert.equal(await cmd(b, 'send:a:dm'), 'sent:true');      // b: in 3, out 4; a out 6
  assert.equal((await a.nextMessage()).data.toString(), 'b:dm');
  const pushed = await push(srv, TG, 'unique', 'b', 'pushed'); // b out 5
  assert.equal(pushed.status, 200);
  assert.equal((await b.nextMessage()).data.toString(), 'pushed');
  for (let i = 0; i < 3; i++) assert.equal(await cmd(e, `e${i}`), `e${i}`); // echo: in 3, out 3

  // The third testgear connection fills the pool; two more are rejected (one a plain GET).
  const c = await openWs(srv.wsUrl('/testgear/ws?name=c'));
  await assert.rejects(openWs(srv.wsUrl('/testgear/ws?name=d')), (err) => err.statusCode === 503);
  assert.equal((await rawRequest(srv.port, 'GET', '/testgear/ws?name=d')).status, 503);
  await roundTrip(c); // c: in 1, out 1

  let m = await srv.metrics();
  const get = (name, pool) => m.get(pool ? `${name}{pool="${pool}"}` : name);
  assert.equal(get('orrery_ws_connections', TG), 3);
  assert.equal(get('orrery_ws_connections', 'gear:echo'), 1);
  assert.equal(get('orrery_ws_max_connections', TG), 3);
  assert.equal(get('orrery_ws_max_connections', 'gear:echo'), 100);
  assert.equal(get('orrery_ws_rejected_total', TG), 2);
  assert.equal(get('orrery_ws_rejected_total', 'gear:echo'), 0);
  assert.equal(get('orrery_ws_frames_received_total', TG), 5 + 3 + 1);
  assert.equal(get('orrery_ws_frames_sent_total', TG), 6 + 5 + 1);
  assert.equal(get('orrery_ws_frames_received_total', 'gear:echo'), 3);
  assert.equal(get('orrery_ws_frames_sent_total', 'gear:echo'), 3);
  assert.equal(get('orrery_ws_slow_consumer_closes_total', TG), 0);
  assert.equal(get('orrery_registry_names'), 3);
  assert.equal(get('orrery_registry_groups'), 1);
  assert.equal(get('orrery_registry_memberships'), 2);
  assert.deepEqual(await hs(), { 101: 4, 400: 1, 404: 1, 426: 2, 503: 2, '4xx': 0, 500: 0, other: 0 });

  // Ends: the gauges go down, the counters stay.
  a.close();
  e.close();
  await srv.waitMetric('orrery_ws_connections', { pool: TG }, 2);
  await srv.waitMetric('orrery_ws_connections', { pool: 'gear:echo' }, 0);
  await srv.waitMetric('orrery_registry_memberships', undefined, 1);
  m = await srv.metrics();
  assert.equal(get('orrery_registry_names'), 2);
  assert.equal(get('orrery_registry_groups'), 1);
  assert.equal(get('orrery_ws_frames_received_total', TG), 9);
  assert.equal(get('orrery_ws_frames_sent_total', TG), 12);
  assert.equal(get('orrery_ws_rejected_total', TG), 2);
  b.close();
  c.close();
  await srv.waitMetric('orrery_ws_connections', { pool: TG }, 0);
  await srv.waitMetric('orrery_registry_groups', undefined, 0);
  assert.equal(await srv.metric('orrery_registry_names'), 0);
});
