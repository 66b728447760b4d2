// The echo gear driven by npm `ws`: sizes from 0 B to the maximum, the limit,
// fragmentation with interleaved pings, ordering and concurrency.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startServer, openWs } from './lib/orrery.mjs';

const SIZES = [0, 1, 125, 126, 127, 65535, 65536, 1 << 20];

function textOf(n) {
  // ASCII with some variety, so a wrong offset shows.
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[(i * 7 + (i >> 5)) % alphabet.length];
  return s;
}

test('text messages are echoed as text at every length boundary up to 1 MiB', async (t) => {
  const srv = await startServer(t);
  const ws = await openWs(srv.wsUrl('/echo/ws'));
  for (const n of SIZES) {
    const s = textOf(n);
    ws.send(s);
    const m = await ws.nextMessage(10000);
    assert.equal(m.isBinary, false, `${n} B is text`);
    assert.equal(m.data.length, n, `${n} B length`);
    assert.ok(m.data.toString() === s, `${n} B content`);
  }
  ws.close(1000);
  assert.equal((await ws.closed).code, 1000);
});

test('binary messages are echoed as binary at every length boundary up to 1 MiB', async (t) => {
  const srv = await startServer(t);
  const ws = await openWs(srv.wsUrl('/echo/ws'));
  for (const n of SIZES) {
    const b = crypto.randomBytes(n);
    ws.send(b);
    const m = await ws.nextMessage(10000);
    assert.equal(m.isBinary, true, `${n} B is binary`);
    assert.ok(Buffer.compare(m.data, b) === 0, `${n} B content`);
  }
  ws.close(1000);
  assert.equal((await ws.closed).code, 1000);
});

test('multi-byte UTF-8 text is echoed intact', async (t) => {
  const srv = await startServer(t);
  const ws = await openWs(srv.wsUrl('/echo/ws'));
  for (const s of ['héllo', '日本語テキスト', '𝄞 music 🎉', '\u0000nul', '\uFFFF\u{10FFFF}', 'κόσμε'.repeat(20000)]) {
    ws.send(s);
    const m = await ws.nextMessage();
    assert.equal(m.isBinary, false);
    assert.equal(m.data.toString(), s);
  }
  ws.close();
});

test('a message of exactly max_message_bytes is echoed; max+1 is closed with 1009', async (t) => {
  const max = 100000;
  const srv = await startServer(t, { max_message_bytes: max });
  const ws = await openWs(srv.wsUrl('/echo/ws'));
  const text = textOf(max);
  ws.send(text);
  const m = await ws.nextMessage();
  assert.equal(m.isBinary, false);
  assert.ok(m.data.toString() === text, 'text at max echoed');
  const bin = crypto.randomBytes(max);
  ws.send(bin);
  const mb = await ws.nextMessage();
  assert.equal(mb.isBinary, true);
  assert.ok(Buffer.compare(mb.data, bin) === 0, 'binary at max echoed');
  // Fragmented, exactly at max across fragments, is fine too.
  ws.send(bin.subarray(0, 40000), { fin: false });
  ws.send(bin.subarray(40000), { fin: true });
  const mf = await ws.nextMessage();
  assert.ok(Buffer.compare(mf.data, bin) === 0, 'fragmented message at max echoed');

  ws.send(crypto.randomBytes(max + 1));
  const c = await ws.nextClose();
  assert.equal(c.code, 1009);
  await srv.waitForLog(/DISCONNECTED .*reason=badsize/);
});

test('max+1 across fragments is closed with 1009', async (t) => {
  const max = 100000;
  const srv = await startServer(t, { max_message_bytes: max });
  const ws = await openWs(srv.wsUrl('/echo/ws'));
  ws.send('x'.repeat(60000), { fin: false });
  ws.send('y'.repeat(40001), { fin: true });
  const c = await ws.nextClose();
  assert.equal(c.code, 1009);
});

test('the default max_message_bytes (5000000) lets 4.9 MB through and stops 5.1 MB', async (t) => {
  const srv = await startServer(t);
  const ws = await openWs(srv.wsUrl('/echo/ws'));
  const ok = crypto.randomBytes(4900000);
  ws.send(ok);
  const m = await ws.nextMessage(20000);
  assert.ok(Buffer.compare(m.data, ok) === 0);
  ws.send(crypto.randomBytes(5100000));
  assert.equal((await ws.nextClose(10000)).code, 1009);
});

test('fragmented messages with pings between fragments: pongs first, then the reassembled echo', async (t) => {
  const srv = await startServer(t);
  const ws = await openWs(srv.wsUrl('/echo/ws'));
  ws.send('Hel', { fin: false });
  ws.ping('p1');
  ws.send('lo, ', { fin: false });
  ws.ping(Buffer.alloc(0));
  ws.send('', { fin: false });
  ws.ping('x'.repeat(125));
  ws.send('world', { fin: true });
  const evs = [];
  for (let i = 0; i < 4; i++) evs.push(await ws.next());
  assert.deepEqual(evs.map((e) => e.type), ['pong', 'pong', 'pong', 'message']);
  assert.equal(evs[0].data.toString(), 'p1');
  assert.equal(evs[1].data.length, 0);
  assert.equal(evs[2].data.toString(), 'x'.repeat(125));
  assert.equal(evs[3].isBinary, false);
  assert.equal(evs[3].data.toString(), 'Hello, world');

  // Binary, many fragments, with a code point split across text fragments afterwards.
  const parts = [];
  for (let i = 0; i < 50; i++) parts.push(crypto.randomBytes(i * 13));
  parts.forEach((p, i) => ws.send(p, { fin: i === parts.length - 1, binary: true }));
  const mb = await ws.nextMessage();
  assert.equal(mb.isBinary, true);
  assert.ok(Buffer.compare(mb.data, Buffer.concat(parts)) === 0);

  const euro = Buffer.from('€', 'utf8'); // 3 bytes
  ws.send(Buffer.concat([Buffer.from('a'), euro.subarray(0, 1)]), { fin: false, binary: false });
  ws.send(euro.subarray(1, 2), { fin: false, binary: false });
  ws.send(Buffer.concat([euro.subarray(2), Buffer.from('b')]), { fin: true, binary: false });
  const mt = await ws.nextMessage();
  assert.equal(mt.isBinary, false);
  assert.equal(mt.data.toString(), 'a€b');
  ws.close();
});

test('pings are answered with pongs carrying the same payload and never echoed as messages', async (t) => {
  const srv = await startServer(t);
  const ws = await openWs(srv.wsUrl('/echo/ws'));
  for (const p of [Buffer.alloc(0), Buffer.from('hi'), crypto.randomBytes(125)]) {
    ws.ping(p);
    const e = await ws.nextOf('pong');
    assert.ok(Buffer.compare(e.data, p) === 0);
  }
  ws.pong('unsolicited'); // ignored
  ws.send('after');
  const m = await ws.nextMessage();
  assert.equal(m.data.toString(), 'after');
  ws.close();
});

test('1000 messages in a burst are echoed in order', async (t) => {
  const srv = await startServer(t);
  const ws = await openWs(srv.wsUrl('/echo/ws'));
  const n = 1000;
  for (let i = 0; i < n; i++) ws.send(i % 2 ? `m${i}` : Buffer.from(`b${i}`));
  for (let i = 0; i < n; i++) {
    const m = await ws.nextMessage();
    assert.equal(m.isBinary, i % 2 === 0);
    assert.equal(m.data.toString(), i % 2 ? `m${i}` : `b${i}`);
  }
  ws.close();
});

test('50 concurrent clients on two workers each get their own echoes', async (t) => {
  const srv = await startServer(t, { workers: 2 });
  const clients = await Promise.all(Array.from({ length: 50 }, () => openWs(srv.wsUrl('/echo/ws'))));
  await Promise.all(clients.map(async (ws, i) => {
    for (let k = 0; k < 20; k++) {
      ws.send(`c${i}-${k}`);
      const m = await ws.nextMessage();
      assert.equal(m.data.toString(), `c${i}-${k}`);
    }
  }));
  await Promise.all(clients.map((ws) => {
    ws.close(1000);
    return ws.closed;
  }));
  await srv.waitForLogCount(/DISCONNECTED .*reason=remote/, 50);
});

test('a client close is echoed with the same code and reason', async (t) => {
  const srv = await startServer(t);
  for (const [code, reason] of [[1000, ''], [1000, 'bye'], [1001, 'going'], [3000, 'app'], [4999, 'ünïcødé']]) {
    const ws = await openWs(srv.wsUrl('/echo/ws'));
    ws.close(code, reason);
    const c = await ws.closed;
    assert.equal(c.code, code, `close ${code} ${JSON.stringify(reason)}`);
    assert.equal(c.reason.toString(), reason, `reason of close ${code}`);
  }
  const ws = await openWs(srv.wsUrl('/echo/ws'));
  ws.close(); // empty close payload
  const c = await ws.closed;
  assert.ok(c.code === 1005 || c.code === 1000, `empty close answered with ${c.code}`);
});
