// permessage-deflate (RFC 7692), negotiated with no context takeover on both
// sides: npm `ws` with its compression on, raw sockets for the wire (RSV1,
// bombs, corrupt streams, misplaced RSV1), and the config keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { startServer, openWs, RawWs, parseClose, deflateOff, SLOW } from './lib/orrery.mjs';

const ANSWER = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';

/** A message as a compressing client sends it: raw deflate, sync flush, trailer removed. */
function deflate(buf) {
  const z = zlib.deflateRawSync(buf, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  assert.deepEqual([...z.subarray(z.length - 4)], [0, 0, 0xff, 0xff]);
  return z.subarray(0, z.length - 4);
}

function inflate(buf) {
  return zlib.inflateRawSync(Buffer.concat([buf, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
}

async function rawDeflate(srv, target = '/echo/ws', offer = 'permessage-deflate; client_max_window_bits') {
  const ws = await RawWs.open(srv.port, target, { 'Sec-WebSocket-Extensions': offer });
  return ws;
}

test('npm ws negotiates it; messages of every size go both ways, compressed either way', async (t) => {
  const srv = await startServer(t);
  const ws = await openWs(srv.wsUrl('/echo/ws'), { perMessageDeflate: { threshold: 0 } });
  assert.equal(ws.extensions, 'permessage-deflate');
  for (const n of [0, 1, 10, 1023, 1024, 5000, 300000]) {
    const text = 'x{"k":1}é'.repeat(Math.ceil(n / 9) + 1).slice(0, n);
    ws.send(text);
    const m = await ws.nextMessage();
    assert.equal(m.isBinary, false);
    assert.equal(m.data.toString(), text, `text of ${n}`);
    const bin = Buffer.alloc(n, 7);
    ws.send(bin);
    const b = await ws.nextMessage();
    assert.equal(b.isBinary, true);
    assert.ok(b.data.equals(bin), `binary of ${n}`);
  }
  ws.close();
  await ws.closed;
});

test('on the wire: RSV1 in, and out at deflate_min_bytes and above; the 101 answers the offer', async (t) => {
  const srv = await startServer(t);
  const ws = await rawDeflate(srv);
  assert.equal(ws.response.headers['sec-websocket-extensions'], ANSWER);
  // RFC 7692's "Hello", compressed: echoed uncompressed (5 bytes < 1024).
  await ws.send(1, Buffer.from([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]), { rsv: 4 });
  let f = await ws.readFrame();
  assert.equal(f.rsv, 0);
  assert.equal(f.payload.toString(), 'Hello');
  // A long one comes back compressed (RSV1) and inflates to itself.
  const long = Buffer.from('abcdefghij'.repeat(300));
  await ws.send(1, deflate(long), { rsv: 4 });
  f = await ws.readFrame();
  assert.equal(f.rsv, 4, 'RSV1 on the answer');
  assert.ok(f.payload.length < long.length / 4, `${f.payload.length} bytes`);
  assert.ok(inflate(f.payload).equals(long));
  // Fragmented: RSV1 on the first frame only.
  const z = deflate(long);
  await ws.send(1, z.subarray(0, 10), { rsv: 4, fin: false });
  await ws.send(9, Buffer.from('ping'));
  await ws.send(0, z.subarray(10), { fin: true });
  assert.equal((await ws.readFrame()).opcode, 10, 'the pong between');
  f = await ws.readFrame();
  assert.ok(inflate(f.payload).equals(long));
  ws.destroy();
});

test('a bomb costs the close (1009), corrupt data 1007, RSV1 where it may not be 1002', async (t) => {
  const srv = await startServer(t, { max_message_bytes: 1 << 20 });
  const bomb = deflate(Buffer.alloc(64 << 20));
  assert.ok(bomb.length < 100000, `${bomb.length} bytes`);
  const cases = [
    ['bomb', async (ws) => ws.send(2, bomb, { rsv: 4 }), 1009],
    ['corrupt', async (ws) => ws.send(2, Buffer.from([0x0c, 0xc0, 0x81, 0x00, 0x00]), { rsv: 4 }), 1007],
    ['invalid UTF-8 once inflated', async (ws) => ws.send(1, deflate(Buffer.from([0x61, 0xff])), { rsv: 4 }), 1007],
    ['RSV1 on a continuation', async (ws) => {
      await ws.send(1, deflate(Buffer.from('ab')), { rsv: 4, fin: false });
      await ws.send(0, Buffer.from('x'), { rsv: 4 });
    }, 1002],
    ['RSV1 on a ping', async (ws) => ws.send(9, Buffer.from('p'), { rsv: 4 }), 1002],
  ];
  for (const [what, act, code] of cases) {
    const ws = await rawDeflate(srv);
    const t0 = performance.now();
    await act(ws);
    const f = await ws.readFrame();
    assert.equal(f.opcode, 8, what);
    assert.equal(parseClose(f.payload).code, code, what);
    if (what === 'bomb') assert.ok(performance.now() - t0 < 2000 * SLOW, `the bomb took ${performance.now() - t0} ms`);
    ws.destroy();
  }
  // Without an offer, RSV1 is a protocol error.
  const plain = await RawWs.open(srv.port, '/echo/ws');
  assert.equal(plain.response.headers['sec-websocket-extensions'], undefined);
  await plain.send(1, Buffer.from([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]), { rsv: 4 });
  assert.equal(parseClose((await plain.readFrame()).payload).code, 1002);
  plain.destroy();
});

test('config: deflate off at the top or for a pool declines every offer; deflate_min_bytes 0 compresses all', async (t) => {
  const off = await startServer(t, { deflate: 'off' });
  const a = await rawDeflate(off);
  assert.equal(a.response.headers['sec-websocket-extensions'], undefined);
  a.destroy();
  const mixed = await startServer(t, { deflate_min_bytes: 0, pools: { 'gear:echo': { deflate: 'off' } } });
  const b = await rawDeflate(mixed);
  assert.equal(b.response.headers['sec-websocket-extensions'], undefined, 'gear:echo has it off');
  b.destroy();
  const c = await rawDeflate(mixed, '/testgear/ws?name=z');
  assert.equal(c.response.headers['sec-websocket-extensions'], ANSWER);
  await c.send(1, Buffer.from('echo:hi'));
  const f = await c.readFrame();
  assert.equal(f.rsv, 4, 'deflate_min_bytes 0: even 2 bytes go compressed');
  assert.equal(inflate(f.payload).toString(), 'hi');
  c.destroy();
  // An offer the server cannot take is declined, not refused.
  const d = await rawDeflate(mixed, '/testgear/ws?name=y', 'permessage-deflate; server_max_window_bits=8');
  assert.equal(d.response.headers['sec-websocket-extensions'], undefined);
  d.destroy();
  const e = await rawDeflate(mixed, '/testgear/ws?name=x', 'permessage-deflate; server_max_window_bits=9');
  assert.equal(e.response.headers['sec-websocket-extensions'], `${ANSWER}; server_max_window_bits=9`);
  await e.send(1, Buffer.from(`echo:${'q'.repeat(3000)}`));
  assert.equal(inflate((await e.readFrame()).payload).toString(), 'q'.repeat(3000), 'a 9-bit window');
  e.destroy();
});

test('a publication is compressed once per window size: every member gets bytes that inflate with its own window', async (t) => {
  // Two workers, so that members on both race to publish the compressed form.
  const srv = await startServer(t, { workers: 2 });
  const text = (n) => {
    // A random block twice, 2000 bytes apart: a 15-bit window refers back to
    // it, a 10-bit one cannot, so a member given the wrong form fails to inflate.
    let s = '';
    while (s.length < n) s += Math.random().toString(36).slice(2);
    s = s.slice(0, n);
    return `{"t":"${s}","again":"${s}"}`;
  };
  const members = [];
  const join = async (ws) => {
    await ws.send(1, Buffer.from('join:pub'));
    assert.equal((await ws.readFrame()).payload.toString(), 'joined:pub');
    return ws;
  };
  for (let i = 0; i < 4; i++) members.push({ bits: 15, ws: await join(await rawDeflate(srv, `/testgear/ws?name=w15_${i}`)) });
  for (let i = 0; i < 4; i++) {
    const ws = await rawDeflate(srv, `/testgear/ws?name=w10_${i}`, 'permessage-deflate; server_max_window_bits=10');
    assert.match(ws.response.headers['sec-websocket-extensions'], /server_max_window_bits=10/);
    members.push({ bits: 10, ws: await join(ws) });
  }
  for (let i = 0; i < 2; i++) members.push({ bits: 0, ws: await join(await RawWs.open(srv.port, `/testgear/ws?name=plain_${i}`)) });
  const npm = await openWs(srv.wsUrl('/testgear/ws?name=npm'));
  assert.equal(npm.extensions, 'permessage-deflate');
  npm.send('join:pub');
  assert.equal((await npm.nextMessage()).data.toString(), 'joined:pub');
  const publisher = await openWs(srv.wsUrl('/testgear/ws?name=publisher'));
  for (const body of [text(2000), text(30000), 'short and plain']) {
    publisher.send(`publish:pub:${body}`);
    assert.equal((await publisher.nextMessage()).data.toString(), `published:${members.length + 1}`);
    const long = body.length >= 1024;
    const wire = {};
    for (const m of members) {
      const f = await m.ws.readFrame();
      assert.equal(f.opcode, 1);
      if (!m.bits || !long) {
        assert.equal(f.rsv, 0);
        assert.equal(f.payload.toString(), body);
        continue;
      }
      assert.equal(f.rsv, 4, `compressed for a ${m.bits}-bit member`);
      const z = Buffer.concat([f.payload, Buffer.from([0, 0, 0xff, 0xff])]);
      const got = zlib.inflateRawSync(z, { windowBits: m.bits, finishFlush: zlib.constants.Z_SYNC_FLUSH });
      assert.equal(got.toString(), body, `inflates with a ${m.bits}-bit window`);
      // The same bytes for every member with that window: one compression.
      wire[m.bits] ??= f.payload;
      assert.ok(wire[m.bits].equals(f.payload));
    }
    if (long) assert.ok(!wire[10].equals(wire[15]), 'one form per window size');
    assert.equal((await npm.nextMessage()).data.toString(), body);
  }
  for (const m of members) m.ws.destroy();
  npm.close();
  publisher.close();
});

test('ORR_DEFLATE=off (the [nodeflate] variants): the 101 answers no offer, unless the config sets deflate', async (t) => {
  const saved = process.env.ORR_DEFLATE;
  process.env.ORR_DEFLATE = 'off';
  let off, on;
  try {
    assert.ok(deflateOff());
    off = await startServer(t);
    on = await startServer(t, { deflate: 'on' });
  } finally {
    if (saved === undefined) delete process.env.ORR_DEFLATE;
    else process.env.ORR_DEFLATE = saved;
  }
  const a = await rawDeflate(off);
  assert.equal(a.response.headers['sec-websocket-extensions'], undefined, 'no Sec-WebSocket-Extensions in the 101');
  await a.send(1, Buffer.from('x'.repeat(3000)));
  const f = await a.readFrame();
  assert.equal(f.rsv, 0);
  assert.equal(f.payload.toString(), 'x'.repeat(3000));
  a.destroy();
  // npm ws, as the suites use it: it offers, and gets nothing.
  const ws = await openWs(off.wsUrl('/echo/ws'));
  assert.equal(ws.extensions, '');
  ws.close();
  await ws.closed;
  const b = await rawDeflate(on);
  assert.equal(b.response.headers['sec-websocket-extensions'], ANSWER, 'a config that says "on" keeps it');
  b.destroy();
});
