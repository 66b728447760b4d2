// Subprotocols (RFC 6455 sections 1.9, 4.2.2, 11.3.4): a gear reads what the
// client offered and chooses one in connect; the 101 names only a value the
// client offered. testgear and luatestgear choose `?proto=` when offered and
// `?proto_force=` anyway. Driven by npm `ws` and raw sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openWs, rawRequest, upgradeHeaders } from './lib/orrery.mjs';

const GEARS = ['testgear', 'luatestgear'];

/** A raw upgrade with these extra header lines (names may repeat). */
function upgradeWith(srv, target, extra) {
  return rawRequest(srv.port, 'GET', target, [...upgradeHeaders(srv.port), ...extra]);
}

test('the gear chooses one of the offered subprotocols; the 101 names it, and nothing when it chooses none', async (t) => {
  const srv = await startServer(t);
  for (const g of GEARS) {
    const ws = await openWs(srv.wsUrl(`/${g}/ws?name=a&proto=chat.v2`), {}, null, ['chat.v1', 'chat.v2']);
    assert.equal(ws.protocol, 'chat.v2', g);
    ws.send('echo:ok');
    assert.equal((await ws.nextMessage()).data.toString(), 'ok');
    ws.close();
    await ws.closed;
    // Offered, not chosen: no Sec-WebSocket-Protocol in the 101.
    const none = await upgradeWith(srv, `/${g}/ws?name=b`, [['Sec-WebSocket-Protocol', 'chat.v1']]);
    assert.equal(none.status, 101, g);
    assert.equal(none.headers['sec-websocket-protocol'], undefined, g);
    // Chosen but not offered by this client: proto= only takes an offered one.
    const other = await upgradeWith(srv, `/${g}/ws?name=c&proto=x`, [['Sec-WebSocket-Protocol', 'y']]);
    assert.equal(other.status, 101, g);
    assert.equal(other.headers['sec-websocket-protocol'], undefined, g);
  }
});

test('several Sec-WebSocket-Protocol lines form one list; empty elements and spaces are allowed', async (t) => {
  const srv = await startServer(t);
  for (const g of GEARS) {
    for (const [lines, want] of [
      [[['Sec-WebSocket-Protocol', 'a, b'], ['Sec-WebSocket-Protocol', 'c']], 'c'],
      [[['Sec-WebSocket-Protocol', ' , a,,  b ,'], ['sec-websocket-protocol', 'c']], 'b'],
      [[['Sec-WebSocket-Protocol', "x!#$%&'*+-.^_`|~9"]], "x!#$%&'*+-.^_`|~9"],
    ]) {
      const r = await upgradeWith(srv, `/${g}/ws?name=p&proto=${encodeURIComponent(want)}`, lines);
      assert.equal(r.status, 101, `${g} ${JSON.stringify(lines)}`);
      assert.equal(r.headers['sec-websocket-protocol'], want, `${g} ${JSON.stringify(lines)}`);
    }
  }
});

test('a list that is not made of tokens is 400; a gear choosing one not offered is 500 with a log line', async (t) => {
  const srv = await startServer(t);
  for (const g of GEARS) {
    for (const bad of ['a b', '@x', 'a;b', 'a, "b"', 'a/b', 'ü']) {
      const r = await upgradeWith(srv, `/${g}/ws?name=q`, [['Sec-WebSocket-Protocol', bad]]);
      assert.equal(r.status, 400, `${g}: ${JSON.stringify(bad)}`);
    }
    const r = await upgradeWith(srv, `/${g}/ws?name=f&proto_force=nope`, [['Sec-WebSocket-Protocol', 'a']]);
    assert.equal(r.status, 500, g);
    await srv.waitForLog(new RegExp(`gear ${g}: connect chose the subprotocol 'nope', which the client did not offer`));
  }
});
