// Executor pools that come and go (issue 8, part 3): a tenant pool the config
// does not list is freed with its last connection (and registry entries, push
// and cluster requests, cluster subscriptions), so max_pools bounds the pools
// alive at once. 5,000 tenants one after another against max_pools 32 all get
// in while an echo client keeps being answered; at the bound a new tenant gets
// 503 (logged with its name) until one leaves; listed and gear pools stay;
// SIGHUP makes a pool freeable or creates one; a cluster node frees a tenant
// pool once its group subscription is dropped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openWs, rawRequest, upgradeHeaders, SLOW } from './lib/orrery.mjs';
import { startCluster, tg as clusterTg, cmd, cmd2, text, push, until, tail } from './lib/cluster.mjs';

function tgPath(name, tenant) {
  return `/testgear/ws?name=${encodeURIComponent(name)}${tenant ? `&tenant=${encodeURIComponent(tenant)}` : ''}`;
}

/** The pools /metrics lists (from orrery_ws_connections), as a Set of names. */
async function livePools(srv) {
  const pools = new Set();
  for (const k of (await srv.metrics()).keys()) {
    const m = /^orrery_ws_connections\{pool="([^"]+)"\}$/.exec(k);
    if (m) pools.add(m[1]);
  }
  return pools;
}

/** Poll /metrics until `pool` is listed (`present`) or not. */
async function waitPool(srv, pool, present, timeoutMs = 5000) {
  await until(async () => (await livePools(srv)).has(pool) === present, timeoutMs,
    async () => `${pool} ${present ? 'listed' : 'gone'} in /metrics: ${[...(await livePools(srv))].join(' ')}`);
}

/** A testgear client that is up (its init ran and it answers). */
async function tg(srv, name, tenant) {
  const ws = await openWs(srv.wsUrl(tgPath(name, tenant)));
  ws.send('echo:up');
  assert.equal((await ws.nextMessage()).data.toString(), 'up');
  return ws;
}

async function closeWs(ws) {
  ws.close();
  await ws.closed;
}

/**
 * SIGTERM with connections still open: they get 1001 and the server exits 0
 * (under ASan, having freed every pool: a leak fails the exit and the test).
 */
async function stopClean(srv, socks) {
  srv.signal('SIGTERM');
  const closes = await Promise.all(socks.map((ws) => ws.closed));
  assert.deepEqual(closes.map((c) => c.code), socks.map(() => 1001));
  const exit = await srv.waitExit(10000 * SLOW);
  assert.equal(exit.code, 0, `exit ${JSON.stringify(exit)}; log tail:\n${tail(srv)}`);
}

/** A websocket upgrade through a raw socket: status and body. */
function upgrade(srv, target) {
  return rawRequest(srv.port, 'GET', target, upgradeHeaders(srv.port));
}

/**
 * An echo client that sends the next message as soon as the previous one is
 * answered, until stop(); stop() resolves to the number of answers.
 */
function echoLoop(srv) {
  let stopped = false;
  let answers = 0;
  let failure = null;
  const run = (async () => {
    const ws = await openWs(srv.wsUrl('/echo/ws'));
    while (!stopped) {
      const msg = `m${answers}`;
      ws.send(msg);
      const got = await ws.nextMessage(5000);
      assert.equal(got.data.toString(), msg);
      answers++;
    }
    await closeWs(ws);
  })().catch((e) => {
    failure = e;
  });
  return {
    get answers() {
      if (failure) throw failure;
      return answers;
    },
    async stop() {
      stopped = true;
      await run;
      if (failure) throw failure;
      return answers;
    },
  };
}

/**
 * Open and close testgear clients one after another: client i (from `next()`,
 * until it returns null) in tenant `tenantOf(i)`. Fails with the log tail when
 * one does not open. Returns how many opened.
 */
async function sequence(srv, next, tenantOf, onOpen = async () => {}) {
  let opened = 0;
  for (let i = next(); i !== null; i = next()) {
    let ws;
    try {
      ws = await openWs(srv.wsUrl(tgPath(`u${i}`, tenantOf(i))));
    } catch (e) {
      throw new Error(`client ${i} in tenant ${tenantOf(i)} (after ${opened} opened): ${e.message}; log tail:\n${tail(srv)}`);
    }
    opened++;
    await onOpen(ws, i);
    await closeWs(ws);
  }
  return opened;
}

test('5,000 tenants one after another against max_pools 32: every one opens, an echo client is answered throughout', async (t) => {
  const MAX = 32;
  const N = 5000;
  const srv = await startServer(t, { workers: 2, max_pools: MAX, pools: { 'tenant:keep': { ws_max_connections: 5 } } });
  const base = await livePools(srv);
  assert.ok(base.has('gear:echo') && base.has('gear:testgear') && base.has('tenant:keep'), [...base].join(' '));
  assert.ok(base.size + 2 < MAX, `${base.size} permanent pools leave room`);

  const echo = echoLoop(srv);
  const progress = []; // echo answers seen at each 500th tenant
  let i = 0;
  const t0 = performance.now();
  const opened = await sequence(srv, () => (i < N ? i++ : null), (k) => `t${k}`, async (ws, k) => {
    if ((k + 1) % 500 === 0) progress.push(echo.answers);
  });
  const ms = performance.now() - t0;
  const answers = await echo.stop();
  t.diagnostic(`${N} tenants one after another in ${Math.round(ms)} ms; echo answered ${answers} times meanwhile`);

  assert.equal(opened, N);
  // The echo client was answered between every 500 tenants, not just at the end.
  for (let k = 1; k < progress.length; k++) {
    assert.ok(progress[k] > progress[k - 1], `echo answers at each 500th tenant: ${progress}`);
  }
  assert.ok(!srv.lines().some((l) => /not created: max_pools/.test(l)), 'no pool was refused');
  assert.equal(await srv.metric('orrery_ws_handshakes_total', { status: '503' }), 0);
  assert.equal(await srv.metric('orrery_ws_handshakes_total', { status: '101' }), N + 1);

  // Every tenant pool went with its last connection; the permanent ones stay.
  await until(async () => (await livePools(srv)).size === base.size, 5000,
    async () => `only the permanent pools left: ${[...(await livePools(srv))].join(' ')}`);
  assert.deepEqual([...(await livePools(srv))].sort(), [...base].sort());
  assert.equal(await srv.metric('orrery_registry_names'), 0, 'the tenants\' names went with them');
});

test('pools made and freed from both workers at once (8 clients at a time, 6 tenants): all open; a reused idx starts from zero', async (t) => {
  const MAX = 16;
  const srv = await startServer(t, { workers: 2, max_pools: MAX, drain_ms: 100 });
  const base = await livePools(srv);
  // 8 sequences over 6 tenant names: the same pool is joined on one worker
  // while its last connection leaves on the other, again and again.
  let i = 0;
  const opened = await Promise.all(Array.from({ length: 8 }, () => sequence(srv, () => (i < 2000 ? i++ : null), (k) => `c${k % 6}`,
    async (ws) => {
      ws.send('echo:x');
      await ws.nextMessage();
    })));
  assert.equal(opened.reduce((a, b) => a + b), 2000);
  assert.ok(!srv.lines().some((l) => /not created: max_pools/.test(l)), 'no pool was refused');
  await until(async () => (await livePools(srv)).size === base.size, 5000,
    async () => `only the permanent pools left: ${[...(await livePools(srv))].join(' ')}`);

  // A new pool gets one of the idx used above: its per-worker frame counters
  // start from zero, not from what the last pool with that idx counted.
  for (const tenant of ['fresh', 'c0']) {
    const ws = await tg(srv, 'z', tenant);
    assert.equal(await srv.metric('orrery_ws_frames_received_total', { pool: `tenant:${tenant}` }), 1, tenant);
    assert.equal(await srv.metric('orrery_ws_frames_sent_total', { pool: `tenant:${tenant}` }), 1, tenant);
    assert.equal(await srv.metric('orrery_ws_rejected_total', { pool: `tenant:${tenant}` }), 0, tenant);
    await closeWs(ws);
  }
  // Stopped with tenant pools in use: freed at exit.
  await stopClean(srv, [await tg(srv, 'y', 'c1'), await tg(srv, 'y', 'last')]);
});

test('max_pools alive at once: the next new tenant gets 503 and a log line naming it, until one leaves', async (t) => {
  const MAX = 8;
  const srv = await startServer(t, { workers: 2, max_pools: MAX });
  const base = await livePools(srv);
  const held = [];
  for (let k = 0; held.length + base.size < MAX; k++) held.push(await tg(srv, 'h', `h${k}`));
  assert.equal((await livePools(srv)).size, MAX);

  const over = await upgrade(srv, tgPath('o', 'over'));
  assert.equal(over.status, 503);
  assert.equal(over.text, 'too many executor pools\n');
  await srv.waitForLog(/error .*executor pool tenant:over: not created: max_pools \(8\) reached/);
  await assert.rejects(openWs(srv.wsUrl(tgPath('o', 'over'))), (e) => e.statusCode === 503);
  assert.equal(await srv.metric('orrery_ws_handshakes_total', { status: '503' }), 2);

  // Pools alive still take connections: a second client of a held tenant,
  // the gears' own pools.
  const second = await tg(srv, 'h2', 'h0');
  const plain = await tg(srv, 'p');
  const echo = await openWs(srv.wsUrl('/echo/ws'));
  echo.send('still here');
  assert.equal((await echo.nextMessage()).data.toString(), 'still here');
  assert.equal((await livePools(srv)).size, MAX);

  // h0 has two connections: one leaving frees nothing.
  await closeWs(second);
  assert.equal((await upgrade(srv, tgPath('o', 'over'))).status, 503, 'tenant:h0 still has a connection');
  // h1's only connection leaves: its pool goes, and the new tenant gets in.
  await closeWs(held[1]);
  await waitPool(srv, 'tenant:h1', false);
  const inNow = await tg(srv, 'o', 'over');
  assert.equal((await livePools(srv)).size, MAX);
  assert.equal((await upgrade(srv, tgPath('h', 'h1'))).status, 503, 'the bound holds again');
  await srv.waitForLog(/executor pool tenant:h1: not created: max_pools \(8\) reached/);

  for (const ws of [...held.filter((_, k) => k !== 1), inNow, plain, echo]) await closeWs(ws);
  await until(async () => (await livePools(srv)).size === base.size, 5000, 'the tenant pools go');
});

test('a listed pool stays after its last connection, an unlisted one goes; SIGHUP lists and unlists', async (t) => {
  const cfg = { workers: 2, drain_ms: 100, pools: { 'tenant:keep': { ws_max_connections: 5 } } };
  const srv = await startServer(t, cfg);
  assert.ok((await livePools(srv)).has('tenant:keep'), 'a listed pool exists from the start');
  const keep = await tg(srv, 'k', 'keep');
  const gone = await tg(srv, 'g', 'gone');
  await waitPool(srv, 'tenant:gone', true);
  await closeWs(keep);
  await closeWs(gone);
  await waitPool(srv, 'tenant:gone', false);
  assert.ok((await livePools(srv)).has('tenant:keep'));
  // It keeps its counters too.
  assert.equal(await srv.metric('orrery_ws_frames_received_total', { pool: 'tenant:keep' }), 1);
  assert.equal(await srv.metric('orrery_ws_connections', { pool: 'tenant:keep' }), 0);

  // Unlisted by a reload while unused: freed at once. Newly listed: made at once.
  let r = await srv.reload({ ...cfg, pools: { 'tenant:new': { ws_max_connections: 2 } } });
  assert.ok(r.ok, r.line);
  let pools = await livePools(srv);
  assert.ok(!pools.has('tenant:keep') && pools.has('tenant:new'), [...pools].join(' '));
  assert.equal(await srv.metric('orrery_ws_max_connections', { pool: 'tenant:new' }), 2);

  // Unlisted while in use: it stays until its last connection leaves.
  const a = await tg(srv, 'a', 'new');
  r = await srv.reload({ ...cfg, pools: {} });
  assert.ok(r.ok, r.line);
  assert.ok((await livePools(srv)).has('tenant:new'));
  assert.equal(await srv.metric('orrery_ws_max_connections', { pool: 'tenant:new' }), 100, 'the default limit now');
  await closeWs(a);
  await waitPool(srv, 'tenant:new', false);

  // Listed while in use (it was made by a client): it stays after it leaves.
  const b = await tg(srv, 'b', 'late');
  r = await srv.reload({ ...cfg, pools: { 'tenant:late': {} } });
  assert.ok(r.ok, r.line);
  await closeWs(b);
  const c = await tg(srv, 'c', 'other');
  await closeWs(c);
  await waitPool(srv, 'tenant:other', false);
  pools = await livePools(srv);
  assert.ok(pools.has('tenant:late'), [...pools].join(' '));
  assert.ok(pools.has('gear:testgear') && pools.has('gear:echo') && pools.has('gear:chat'), 'the gears\' pools stay');
  await stopClean(srv, [await tg(srv, 'd', 'late'), await tg(srv, 'e', 'unlisted')]);
});

test('cluster: a tenant pool is freed on a node once its connection left, and its members per node follow', async (t) => {
  const { redis, nodes: [n1, n2] } = await startCluster(t, 2, { drain_ms: 100 });
  // orr:gn:<pool>\0<group> counts the group's members per node: how many nodes have some.
  const listeners = async () => Number(await redis.command('HLEN', 'orr:gn:tenant:tc\0room'));

  // alice (n1) and bob (n2) in tenant:tc: names taken cluster-wide, both in a group.
  const alice = await clusterTg(n1, 'alice', 'tc');
  const bob = await clusterTg(n2, 'bob', 'tc');
  assert.equal(await cmd(alice, 'join:room'), 'joined:room');
  assert.equal(await cmd(bob, 'join:room'), 'joined:room');
  assert.equal(await listeners(), 2);
  // A member that publishes gets the answer and its own copy.
  assert.deepEqual(await cmd2(bob, 'publish:room:hi'), ['hi', 'published:2']);
  assert.equal(await text(alice), 'hi');
  assert.equal(await cmd(bob, 'send:alice:x'), 'sent:true');
  assert.equal(await text(alice), 'bob:x');
  await waitPool(n1, 'tenant:tc', true);

  // alice leaves: on n1 the pool goes with her.
  await closeWs(alice);
  await waitPool(n1, 'tenant:tc', false);
  await until(async () => (await listeners()) === 1, 5000, 'n1 has no member left in Redis');
  assert.equal(await n1.metric('orrery_registry_names'), 0);
  assert.ok((await livePools(n2)).has('tenant:tc'), 'bob still uses it on n2');

  // The push API on n1 makes the pool for the request's time only.
  let res = await push(n1, 'tenant:tc', 'groups', 'room', 'pushed');
  assert.deepEqual([res.status, JSON.parse(res.text)], [200, { count: 1 }]);
  assert.equal(await text(bob), 'pushed');
  res = await push(n1, 'tenant:tc', 'unique', 'bob', 'to bob');
  assert.deepEqual([res.status, JSON.parse(res.text)], [200, { delivered: true }]);
  assert.equal(await text(bob), 'to bob');
  await waitPool(n1, 'tenant:tc', false);

  // A name freed with its pool is free cluster-wide, and the pool comes back for it.
  const alice2 = await clusterTg(n1, 'alice', 'tc');
  assert.equal(await cmd(bob, 'send:alice:again'), 'sent:true');
  assert.equal(await text(alice2), 'bob:again');
  assert.equal(await cmd(alice2, 'join:room'), 'joined:room');
  assert.deepEqual(await cmd2(alice2, 'publish:room:back'), ['back', 'published:2']);
  assert.equal(await text(bob), 'back');
  await closeWs(alice2);
  await closeWs(bob);
  await waitPool(n1, 'tenant:tc', false);
  await waitPool(n2, 'tenant:tc', false);
  await until(async () => (await listeners()) === 0, 5000, 'no node has members');

  // Stopped while a tenant pool has a member and requests under way.
  const carol = await clusterTg(n1, 'carol', 'tc');
  assert.equal(await cmd(carol, 'join:room'), 'joined:room');
  carol.send('publish:room:bye');
  await stopClean(n1, [carol]);
});
