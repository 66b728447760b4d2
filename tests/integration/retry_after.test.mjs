// Every 503 carries Retry-After (retry_after_s): a full pool (the default
// answer and a gear's own), a gear's connect refusing with 503, too many
// pools, the drain, /healthz while the cluster is down. A gear's own
// Retry-After, in any case, is kept and not doubled. Other statuses have none.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, openWs, rawRequest, upgradeHeaders, RawConn, WebSocket, SLOW, sleep,
} from './lib/orrery.mjs';

const TG = 'gear:testgear';

/** A websocket upgrade through a raw socket: the whole response. */
function upgrade(srv, target) {
  return rawRequest(srv.port, 'GET', target, upgradeHeaders(srv.port));
}

/** The values of one header in a raw response (names compared in lower case). */
function values(res, name) {
  return res.rawHeaders.filter(([k]) => k === name).map(([, v]) => v);
}

function assertRetryAfter(res, want, what) {
  assert.equal(res.status, 503, `${what}: status`);
  assert.deepEqual(values(res, 'retry-after'), [want], `${what}: Retry-After`);
}

/** What npm ws sees when the handshake is refused: status and headers of its 'unexpected-response'. */
function refusedByWs(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { handshakeTimeout: 5000 * SLOW });
    ws.once('open', () => {
      ws.terminate();
      reject(new Error(`${url} was accepted`));
    });
    ws.once('error', reject);
    ws.once('unexpected-response', (req, res) => {
      const out = { status: res.statusCode, headers: res.headers };
      res.resume();
      req.destroy();
      resolve(out);
    });
  });
}

test('a full pool answers 503 with Retry-After: retry_after_s, seen by npm ws and raw', async (t) => {
  const srv = await startServer(t, { retry_after_s: 7, ws_max_connections: 1, pools: { [TG]: { ws_max_connections: 1 } } });
  const e = await openWs(srv.wsUrl('/echo/ws'));
  const g = await openWs(srv.wsUrl('/testgear/ws?name=a'));

  // The default answer (echo has no ws_too_many_connections).
  const byWs = await refusedByWs(srv.wsUrl('/echo/ws'));
  assert.equal(byWs.status, 503);
  assert.equal(byWs.headers['retry-after'], '7');
  const raw = await upgrade(srv, '/echo/ws');
  assertRetryAfter(raw, '7', 'echo, default answer');
  assert.equal(raw.text, 'TooManyWebsocketConnections');

  // testgear's own 503 without a Retry-After gets the server's.
  const own = await refusedByWs(srv.wsUrl('/testgear/ws?name=b'));
  assert.equal(own.status, 503);
  assert.equal(own.headers['retry-after'], '7');
  assertRetryAfter(await upgrade(srv, '/testgear/ws?name=b'), '7', "testgear's own 503");
  // One it sets itself ("retry-after: 30", lower case) is kept, and is the only one.
  const kept = await upgrade(srv, '/testgear/ws?name=b&retry_after=30');
  assertRetryAfter(kept, '30', "testgear's own Retry-After");
  assert.deepEqual(JSON.parse(kept.text), { error: 'ws_too_many_connections' });

  // Below the limit nothing else changes: a 426 or a 101 has no Retry-After.
  e.close();
  await srv.waitMetric('orrery_ws_connections', { pool: 'gear:echo' }, 0);
  const plain = await rawRequest(srv.port, 'GET', '/echo/ws');
  assert.equal(plain.status, 426);
  assert.deepEqual(values(plain, 'retry-after'), []);
  const ok = await openWs(srv.wsUrl('/echo/ws'));
  ok.close();
  g.close();
});

test("a gear's connect answering 503 gets Retry-After unless it set one", async (t) => {
  const srv = await startServer(t);
  const r = await upgrade(srv, '/testgear/ws?name=a&refuse=1');
  assertRetryAfter(r, '5', 'connect refusal, default retry_after_s');
  assert.deepEqual(JSON.parse(r.text), { error: 'refused' });
  assertRetryAfter(await upgrade(srv, '/testgear/ws?name=a&refuse=1&retry_after=Fri,%2031%20Dec%202100%2023:59:59%20GMT'),
    'Fri, 31 Dec 2100 23:59:59 GMT', 'connect refusal with its own HTTP-date');
  const byWs = await refusedByWs(srv.wsUrl('/testgear/ws?name=a&refuse=1'));
  assert.equal(byWs.status, 503);
  assert.equal(byWs.headers['retry-after'], '5');
});

test('too many executor pools: 503 with Retry-After', async (t) => {
  // max_pools 4 is taken by the four gears' own pools: no tenant pool fits.
  const srv = await startServer(t, { max_pools: 4, retry_after_s: 0 });
  const r = await upgrade(srv, '/testgear/ws?name=a&tenant=t1');
  assertRetryAfter(r, '0', 'too many pools');
  assert.match(r.text, /too many executor pools/);
});

test('/healthz while the cluster is down: 503 with Retry-After', async (t) => {
  const srv = await startServer(t, { retry_after_s: 12, cluster: { redis: `unix:/nonexistent/orrery-${process.pid}.sock` } });
  const r = await rawRequest(srv.port, 'GET', '/healthz');
  assertRetryAfter(r, '12', '/healthz, cluster down');
  const m = await rawRequest(srv.port, 'GET', '/metrics');
  assert.equal(m.status, 200);
  assert.deepEqual(values(m, 'retry-after'), []);
});

test('during the drain a request under way gets 503 with Retry-After', async (t) => {
  const srv = await startServer(t, { retry_after_s: 3, drain_ms: 1000 * SLOW, close_timeout_ms: 1000 * SLOW });
  const busy = await openWs(srv.wsUrl('/echo/ws')); // keeps the drain going for a while
  const pending = await RawConn.open(srv.port);
  t.after(() => pending.destroy());
  await pending.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n`);
  await sleep(50);
  srv.signal('SIGTERM');
  const r = await pending.readResponse(3000);
  assertRetryAfter(r, '3', 'drain');
  assert.equal(r.text, 'server shutting down\n');
  assert.equal((await busy.closed).code, 1001);
  assert.equal((await srv.waitExit(5000 * SLOW)).code, 0);
});
