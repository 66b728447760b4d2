// The cluster (issue 4): three Orrery nodes on loopback ports sharing their
// registry through a real redis-server on a unix socket in a temp dir, driven
// through testgear with npm `ws`. Unique names and groups across nodes, the
// push API on any node, kill -9 of a node (reaped after its TTL), Redis
// restarted (local sends keep working, cross-node ones come back), SIGTERM
// (names freed as the drained node's connections close), /healthz and metrics.
// Then what the design implies (docs/CLUSTER.md): names written back after an
// outage (the newer of two wins, 1008), CLIENT KILL, Redis absent at start,
// binary/large payloads and odd names across nodes, leave/rejoin, publication
// order, a node restarted under the same node_id, a long outage (backoff).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SHUTDOWN_REASON, sleep, SLOW } from './lib/orrery.mjs';
import {
  TG, startRedis, startCluster, startNode, healthz, waitHealth, until, tail,
  openTg, registered, tg, tryName, text, cmd, cmd2, textSkipping, expectQuiet, closeAll,
  push, metricTotal, metricSum, metricsLike,
} from './lib/cluster.mjs';

const NODE_TTL_MS = 1000; // lib/cluster.mjs' nodeConfig (heartbeat_ms 200)

const M = {
  up: 'orrery_cluster_redis_up',
  sent: 'orrery_cluster_messages_sent_total',
  received: 'orrery_cluster_messages_received_total',
  failures: 'orrery_cluster_send_failures_total',
  reaped: 'orrery_cluster_reaped_nodes_total',
};

/** Spread `names` round-robin over `nodes`: [{ srv, name, i }]. */
function spread(nodes, names) {
  return names.map((name, i) => ({ srv: nodes[i % nodes.length], name, i }));
}

/** Publish from `ws` (not a member) and check the answer and that each of `members` got `msg` next. */
async function publishRound(ws, group, msg, members, skip = /^$/) {
  assert.equal(await cmd(ws, `publish:${group}:${msg}`), `published:${members.length}`, `publish ${msg} from ${ws.node}`);
  const got = await Promise.all(members.map((m) => textSkipping(m, skip)));
  const wrong = got.map((g, i) => [members[i].gearName, members[i].node, g]).filter(([, , g]) => g !== msg);
  assert.deepEqual(wrong, [], `every member got ${msg}`);
}

test('unique names across nodes: send, sent:false, taken cluster-wide (4009), freed on close, order', async (t) => {
  const { nodes: [n1, n2, n3] } = await startCluster(t, 3);

  // Every node reports its Redis connection and the cluster counters.
  for (const s of [n1, n2, n3]) {
    const m = await metricsLike(s);
    assert.equal(await metricTotal(s, M.up), 1, `${s.nodeId} ${M.up}: ${JSON.stringify(m)}`);
    for (const name of [M.sent, M.received, M.failures, M.reaped]) {
      assert.notEqual(await metricTotal(s, name), undefined, `${s.nodeId} has ${name}: ${JSON.stringify(m)}`);
    }
  }

  const alice = await tg(n1, 'alice');
  const bob = await tg(n2, 'bob');
  const carol = await tg(n3, 'carol');

  assert.equal(await cmd(bob, 'send:alice:hi'), 'sent:true');
  assert.equal(await text(alice), 'bob:hi');
  assert.equal(await cmd(alice, 'send:bob:hello'), 'sent:true');
  assert.equal(await text(bob), 'alice:hello');
  assert.equal(await cmd(carol, 'send:alice:a:b:c'), 'sent:true', 'colons after the name belong to the text');
  assert.equal(await text(alice), 'carol:a:b:c');
  assert.equal(await cmd(alice, 'send:carol:'), 'sent:true', 'an empty text');
  assert.equal(await text(carol), 'alice:');
  assert.equal(await cmd(bob, 'send:nobody:anyone?'), 'sent:false', 'a name nobody holds');
  assert.equal(await cmd(bob, 'send:Alice:case'), 'sent:false', 'names are case-sensitive');

  // Taken cluster-wide: on another node, and on the holder's own node.
  for (const s of [n3, n2, n1]) {
    const r = await tryName(s, 'alice');
    assert.equal(r.held, false, `a second alice on ${s.nodeId} must not hold the name`);
    assert.deepEqual([r.close.code, r.close.reason], [4009, 'name taken'], `second alice on ${s.nodeId}`);
  }
  assert.equal(await cmd(bob, 'send:alice:still yours'), 'sent:true');
  assert.equal(await text(alice), 'bob:still yours');

  // Freed when its holder closes: another node can take it (no TTL wait).
  alice.close();
  await alice.closed;
  const t0 = performance.now();
  let alice2;
  await until(async () => {
    const r = await tryName(n3, 'alice');
    if (r.held) alice2 = r.ws;
    else assert.deepEqual([r.close.code, r.close.reason], [4009, 'name taken']);
    return r.held;
  }, 2000, 'alice freed after its holder closed', 50);
  const freedMs = performance.now() - t0;
  assert.ok(freedMs < 2000 * SLOW, `freed in ${freedMs} ms`);
  assert.equal(await cmd(bob, 'send:alice:new you'), 'sent:true');
  assert.equal(await text(alice2), 'bob:new you');

  // One sender, one receiver on another node: in order, all sent:true.
  const sent0 = await metricTotal(n2, M.sent);
  const recv0 = await metricTotal(n3, M.received);
  const N = 300;
  for (let i = 0; i < N; i++) bob.send(`send:alice:${i}`);
  const answers = [];
  for (let i = 0; i < N; i++) answers.push(await text(bob));
  assert.deepEqual(answers.filter((a) => a !== 'sent:true'), [], 'every send answered sent:true');
  for (let i = 0; i < N; i++) assert.equal(await text(alice2), `bob:${i}`, 'in order');
  assert.ok((await metricTotal(n2, M.sent)) - sent0 >= N, `${M.sent} on the sender grew by ${N}: ${JSON.stringify(await metricsLike(n2))}`);
  assert.ok((await metricTotal(n3, M.received)) - recv0 >= N, `${M.received} on the receiver grew by ${N}: ${JSON.stringify(await metricsLike(n3))}`);

  const all = [alice2, bob, carol];
  await expectQuiet(all);
  await closeAll(all);
});

test('20 clients racing for one name on 3 nodes: exactly one holds it, 19 are closed 4009', async (t) => {
  const { nodes } = await startCluster(t, 3);
  const K = 20;
  const socks = await Promise.all(Array.from({ length: K }, (_, i) => openTg(nodes[i % 3], 'hot')));
  // Wait until 19 are closed; the other stays open.
  await until(() => socks.filter((ws) => ws.readyState === 3).length >= K - 1, 5000,
    () => `19 closes; closed: ${socks.filter((ws) => ws.readyState === 3).length}`);
  await sleep(300 * SLOW); // time for a wrongful extra close
  const open = socks.filter((ws) => ws.readyState !== 3);
  const closed = socks.filter((ws) => ws.readyState === 3);
  assert.equal(open.length, 1, `exactly one holder stays open, got ${open.length}`);
  const closes = await Promise.all(closed.map((ws) => ws.closed));
  assert.deepEqual(closes.filter((c) => c.code !== 4009 || c.reason !== 'name taken').map((c) => [c.code, c.reason]), [],
    'the others are closed 4009 "name taken"');
  const [holder] = open;
  assert.equal(await registered(holder), true, 'the open one holds the name');
  // Anyone, on any node, reaches the holder.
  for (const s of nodes) {
    const probe = await tg(s, `probe-${s.nodeId}`);
    assert.equal(await cmd(probe, 'send:hot:hey'), 'sent:true');
    assert.equal(await text(holder), `probe-${s.nodeId}:hey`);
    probe.close();
  }
  await expectQuiet([holder]);
  await closeAll([holder]);
});

test('a group of 30 members on 3 nodes: publish from any node counts 30, each gets it once; push API anywhere', async (t) => {
  const { nodes } = await startCluster(t, 3);
  const [n1, n2, n3] = nodes;
  const members = await Promise.all(spread(nodes, Array.from({ length: 30 }, (_, i) => `m${i}`)).map(({ srv, name }) => tg(srv, name)));
  for (const s of nodes) assert.equal(members.filter((m) => m.node === s.nodeId).length, 10);
  const joined = await Promise.all(members.map((ws) => cmd(ws, 'join:room')));
  assert.deepEqual(joined.filter((j) => j !== 'joined:room'), [], 'every join answered');

  const pubs = await Promise.all(nodes.map((s) => tg(s, `pub-${s.nodeId}`)));
  for (const [i, p] of pubs.entries()) await publishRound(p, 'room', `hello-from-${p.node}-${i}`, members);
  await expectQuiet([...members, ...pubs]);

  // A member that publishes gets the answer and its own copy.
  const self = members[4]; // on n2
  assert.deepEqual(await cmd2(self, 'publish:room:from-a-member'), ['from-a-member', 'published:30']);
  const got = await Promise.all(members.filter((m) => m !== self).map((m) => text(m)));
  assert.ok(got.every((g) => g === 'from-a-member'), 'every other member got it');

  // Push API on any node: names and groups held elsewhere.
  let res = await push(n3, TG, 'unique', 'm0', 'pushed to m0'); // m0 is on n1
  assert.deepEqual([res.status, JSON.parse(res.text)], [200, { delivered: true }], `push to m0 via n3: ${res.status} ${res.text}`);
  assert.equal(await text(members[0]), 'pushed to m0');
  res = await push(n1, TG, 'unique', 'm2', 'pushed to m2'); // m2 is on n3
  assert.deepEqual([res.status, JSON.parse(res.text)], [200, { delivered: true }], `push to m2 via n1: ${res.status} ${res.text}`);
  assert.equal(await text(members[2]), 'pushed to m2');
  res = await push(n2, TG, 'unique', 'nobody', 'x');
  assert.deepEqual([res.status, JSON.parse(res.text)], [404, { delivered: false }], 'push to a name nobody holds');
  for (const s of nodes) {
    res = await push(s, TG, 'groups', 'room', `pushed-group-${s.nodeId}`);
    assert.deepEqual([res.status, JSON.parse(res.text)], [200, { count: 30 }], `push to the group via ${s.nodeId}: ${res.text}`);
    const g = await Promise.all(members.map((m) => text(m)));
    assert.ok(g.every((x) => x === `pushed-group-${s.nodeId}`), `every member got the push via ${s.nodeId}`);
  }
  // A tenant pool that only exists on n1 so far: the push API on n2 reaches it.
  const tx = await tg(n1, 'tx', 't1');
  res = await push(n2, 'tenant:t1', 'unique', 'tx', 'to a tenant elsewhere');
  assert.deepEqual([res.status, JSON.parse(res.text)], [200, { delivered: true }], `push to tenant:t1 via n2: ${res.status} ${res.text}`);
  assert.equal(await text(tx), 'to a tenant elsewhere');
  assert.equal(await cmd(tx, 'join:room'), 'joined:room');
  res = await push(n3, 'tenant:t1', 'groups', 'room', 'tenant room');
  assert.deepEqual([res.status, JSON.parse(res.text)], [200, { count: 1 }], 'the tenant pool\'s room is its own group');
  assert.equal(await text(tx), 'tenant room');

  // Leaving is counted at once, everywhere.
  assert.equal(await cmd(members[0], 'leave:room'), 'left:room');
  assert.equal(await cmd(members[0], 'leave:room'), 'not_in_group:room');
  await publishRound(pubs[1], 'room', 'after-leave', members.slice(1));
  // A member that closes is no longer counted (poll: its leave follows the close).
  members[1].close();
  await members[1].closed;
  const rest = members.slice(2);
  let k = 0;
  await until(async () => (await cmd(pubs[2], `publish:room:probe-${k++}`)) === `published:${rest.length}`, 2000,
    'the closed member no longer counted', 50);
  // The same publisher as the probes: order holds per sender, not across senders.
  await publishRound(pubs[2], 'room', 'after-close', rest, /^probe-/);

  await expectQuiet([...rest, members[0], ...pubs, tx]);
  await closeAll([...rest, members[0], ...pubs, tx]);
});

test('kill -9 of a node: within node_ttl_ms + 5 s its names are free and its members no longer counted', async (t) => {
  const { nodes, redis } = await startCluster(t, 3);
  const [n1, n2, n3] = nodes;
  const members = await Promise.all(spread(nodes, Array.from({ length: 30 }, (_, i) => `m${i}`)).map(({ srv, name }) => tg(srv, name)));
  for (const ws of members) assert.equal(await cmd(ws, 'join:room'), 'joined:room');
  const doomedNames = ['k0', 'k1', 'k2', 'k3'];
  await Promise.all(doomedNames.map((n) => tg(n3, n)));
  const p1 = await tg(n1, 'p1');
  const p2 = await tg(n2, 'p2');
  assert.equal(await cmd(p1, 'send:k0:alive?'), 'sent:true');
  await publishRound(p1, 'room', 'before', members);
  const reaped0 = await metricSum([n1, n2], M.reaped);

  const live = members.filter((m) => m.node !== 'n3');
  n3.signal('SIGKILL');
  const t0 = performance.now();
  await n3.exited;
  const budget = NODE_TTL_MS + 5000;

  // Its clients lose their connections; a send to its names is not delivered.
  await until(async () => (await cmd(p2, 'send:k1:gone?')) === 'sent:false', 1000, 'send to a name of the killed node answers sent:false');

  // Names free again (registered on a live node) within the budget.
  let k0 = null;
  await until(async () => {
    const r = await tryName(n1, 'k0');
    if (r.held) k0 = r.ws;
    else assert.deepEqual([r.close.code, r.close.reason], [4009, 'name taken']);
    return r.held;
  }, budget, async () => `k0 free again after kill -9 of n3; redis keys: ${await redis.dump()}`, 100);
  const freeMs = performance.now() - t0;
  // Members no longer counted.
  let k = 0;
  await until(async () => (await cmd(p1, `publish:room:probe-${k++}`)) === `published:${live.length}`, budget, 'n3\'s members no longer counted', 100);
  const countedMs = performance.now() - t0;
  assert.ok(freeMs <= budget * SLOW, `names free after ${Math.round(freeMs)} ms (budget ${budget})`);
  assert.ok(countedMs <= budget * SLOW, `members dropped after ${Math.round(countedMs)} ms (budget ${budget})`);
  t.diagnostic(`kill -9: names free after ${Math.round(freeMs)} ms, members dropped after ${Math.round(countedMs)} ms`);

  // The other names, from the other node, at once.
  const others = await Promise.all(doomedNames.slice(1).map((n) => tg(n2, n)));
  assert.equal(await cmd(p1, 'send:k1:new owner'), 'sent:true');
  assert.equal(await text(others[0]), 'p1:new owner');
  assert.equal(await cmd(p2, 'send:k0:new owner'), 'sent:true');
  assert.equal(await text(k0), 'p2:new owner');
  await publishRound(p1, 'room', 'after-kill', live, /^probe-/); // the probes' sender: ordered after them
  await until(async () => (await metricSum([n1, n2], M.reaped)) > reaped0, 2000,
    async () => `${M.reaped} to grow on n1 or n2: ${JSON.stringify(await metricsLike(n1))} ${JSON.stringify(await metricsLike(n2))}`);

  const all = [...live, p1, p2, k0, ...others];
  await expectQuiet(all);
  await closeAll(all);
});

test('Redis restarted: 503 and sent:false across nodes meanwhile, local sends work; back within 10 s', async (t) => {
  // Local sends work while the nodes' leases last (node_ttl_ms, long here):
  // the outage below is shorter.
  const { nodes, redis } = await startCluster(t, 3, { cluster: { node_ttl_ms: 10000 * SLOW } });
  const [n1, n2, n3] = nodes;
  const alice = await tg(n1, 'alice');
  const carol = await tg(n1, 'carol'); // same node as alice
  const bob = await tg(n2, 'bob');
  const dan = await tg(n3, 'dan');
  for (const ws of [alice, bob, dan]) assert.equal(await cmd(ws, 'join:room'), 'joined:room');
  assert.equal(await cmd(bob, 'send:alice:before'), 'sent:true');
  assert.equal(await text(alice), 'bob:before');
  await publishRound(carol, 'room', 'before', [alice, bob, dan]);

  await redis.stop();
  const down = await Promise.all(nodes.map((s) => waitHealth(s, 503, 5000)));
  t.diagnostic(`healthz 503 after ${down.map((d) => Math.round(d.ms)).join('/')} ms: ${JSON.stringify(down[0].text)}`);
  for (const s of nodes) assert.equal(await metricTotal(s, M.up), 0, `${s.nodeId} ${M.up} during the outage`);

  // Local names still work.
  assert.equal(await cmd(carol, 'send:alice:local'), 'sent:true', 'a send between two clients of one node during the outage');
  assert.equal(await text(alice), 'carol:local');
  assert.equal(await cmd(alice, 'send:carol:local back'), 'sent:true');
  assert.equal(await text(carol), 'alice:local back');
  // Cross-node sends are not delivered, and counted.
  const fail0 = await metricTotal(n2, M.failures);
  assert.equal(await cmd(bob, 'send:alice:cross'), 'sent:false', 'a cross-node send during the outage');
  assert.equal(await cmd(dan, 'send:bob:cross'), 'sent:false', 'a cross-node send during the outage');
  assert.ok((await metricTotal(n2, M.failures)) > fail0, `${M.failures} grew on n2: ${JSON.stringify(await metricsLike(n2))}`);
  // Local group members still get a publication.
  // Local group members still get a publication (docs/CLUSTER.md: it answers the local count).
  assert.deepEqual(await cmd2(alice, 'publish:room:outage-pub'), ['outage-pub', 'published:1'], 'a publication during the outage');
  // A name registered meanwhile holds locally and is written back later.
  const erin = await tg(n2, 'erin');

  await redis.start();
  const t0 = performance.now();
  const up = await Promise.all(nodes.map((s) => waitHealth(s, 200, 10000)));
  t.diagnostic(`healthz 200 again after ${up.map((d) => Math.round(d.ms)).join('/')} ms`);
  for (const s of nodes) assert.equal(await metricTotal(s, M.up), 1, `${s.nodeId} ${M.up} after the restart`);
  // n1 had taken messages from its inbox: it notices the restarted Redis lost it (what waited there is lost).
  await n1.waitForLog(/warn .*cluster: n1#.*: its inbox was gone from Redis/);
  assert.equal(await metricTotal(n1, 'orrery_cluster_inbox_lost_total'), 1);

  // Cross-node sends work again (each sent:true is delivered exactly once).
  const retry = async (from, to, ws, label) => {
    let i = 0;
    await until(async () => (await cmd(from, `send:${to}:${label}-${i++}`)) === 'sent:true', 10000,
      async () => `${from.gearName}@${from.node} -> ${to} again after Redis came back; keys: ${await redis.dump()}`, 100);
    assert.equal(await textSkipping(ws, /^outage-pub$/), `${from.gearName}:${label}-${i - 1}`, 'only the send answered sent:true was delivered');
  };
  await retry(bob, 'alice', alice, 'again');
  await retry(alice, 'bob', bob, 'again');
  await retry(dan, 'erin', erin, 'written-back');
  const backMs = performance.now() - t0;
  assert.ok(backMs <= 10000 * SLOW, `cross-node sends back after ${Math.round(backMs)} ms`);
  t.diagnostic(`cross-node sends back after ${Math.round(backMs)} ms`);
  // Memberships rewritten: the group counts all three again.
  let k = 0;
  await until(async () => (await cmd(carol, `publish:room:probe-${k++}`)) === 'published:3', Math.max(1000, 10000 - (performance.now() - t0) / SLOW),
    async () => `publish counts 3 members again; keys: ${await redis.dump()}`, 100);
  await publishRound(carol, 'room', 'after', [alice, bob, dan], /^(probe-|outage-pub)/);
  // The name still taken cluster-wide after the restart.
  const dup = await tryName(n3, 'alice');
  assert.deepEqual([dup.held, dup.close?.code], [false, 4009], 'alice is still taken after the restart');

  const all = [alice, carol, bob, dan, erin];
  await expectQuiet(all);
  await closeAll(all);
});

test('a name registered on two nodes while Redis was down: the newer keeps it, the older is closed 1008', async (t) => {
  const { nodes, redis } = await startCluster(t, 3);
  const [n1, n2, n3] = nodes;
  const watcher = await tg(n3, 'watcher');
  await redis.stop();
  await Promise.all([n1, n2].map((s) => waitHealth(s, 503, 5000)));
  const older = await tg(n1, 'eve');
  // Registrations are ordered by the wall-clock ms they were taken at (the
  // nodes share this machine's clock): once the clock has moved past the
  // moment the older one was confirmed, the next one is newer.
  const olderConfirmed = Date.now();
  await until(() => Date.now() > olderConfirmed, 1000, 'the clock moves on', 1);
  const newer = await tg(n2, 'eve');
  await redis.start();
  const c = await older.nextClose(12000);
  assert.deepEqual([c.code, c.reason], [1008, 'unique name conflict'], 'the older registration is closed');
  let i = 0;
  await until(async () => (await cmd(watcher, `send:eve:x${i++}`)) === 'sent:true', 10000, 'eve reachable again', 100);
  assert.equal(await text(newer), `watcher:x${i - 1}`, 'the newer eve holds the name');
  assert.equal(await registered(newer), true);
  assert.ok((await metricSum(nodes, 'orrery_cluster_name_conflicts_total')) >= 1,
    `orrery_cluster_name_conflicts_total counted: ${JSON.stringify(await metricsLike(n1))} ${JSON.stringify(await metricsLike(n2))}`);
  await expectQuiet([newer, watcher]);
  await closeAll([newer, watcher]);
});

test('Redis kills the nodes\' connections (CLIENT KILL): they reconnect and cross-node sends work within 10 s', async (t) => {
  const { nodes, redis } = await startCluster(t, 2);
  const [n1, n2] = nodes;
  const alice = await tg(n1, 'alice');
  const bob = await tg(n2, 'bob');
  assert.equal(await cmd(bob, 'send:alice:before'), 'sent:true');
  assert.equal(await text(alice), 'bob:before');
  const killed = await redis.command('CLIENT', 'KILL', 'SKIPME', 'yes', 'TYPE', 'normal');
  const killedPubsub = await redis.command('CLIENT', 'KILL', 'SKIPME', 'yes', 'TYPE', 'pubsub');
  t.diagnostic(`CLIENT KILL: ${killed} normal, ${killedPubsub} pubsub`);
  const t0 = performance.now();
  let i = 0;
  await until(async () => (await cmd(bob, `send:alice:x${i++}`)) === 'sent:true', 10000, 'bob -> alice after CLIENT KILL', 100);
  assert.equal(await text(alice), `bob:x${i - 1}`);
  // Both directions, and the subscription to n2's inbox is back too.
  let j = 0;
  await until(async () => (await cmd(alice, `send:bob:y${j++}`)) === 'sent:true', 10000, 'alice -> bob after CLIENT KILL', 100);
  assert.equal(await text(bob), `alice:y${j - 1}`);
  t.diagnostic(`back after ${Math.round(performance.now() - t0)} ms`);
  await Promise.all(nodes.map((s) => waitHealth(s, 200, 10000)));
  await expectQuiet([alice, bob]);
  await closeAll([alice, bob]);
});

test('SIGTERM on a node: clients get 1001, reconnect elsewhere and register the same names at once', async (t) => {
  const { nodes } = await startCluster(t, 3, { drain_ms: 200 });
  const [n1, n2, n3] = nodes;
  const carol = await tg(n1, 'carol');
  assert.equal(await cmd(carol, 'join:room'), 'joined:room');
  const names = ['alice', 'bob', 'gm', 'x1', 'x2', 'x3'];
  const onN3 = await Promise.all(names.map((n) => tg(n3, n)));
  for (const ws of onN3) assert.equal(await cmd(ws, 'join:room'), 'joined:room');
  const p2 = await tg(n2, 'p2');
  await publishRound(p2, 'room', 'before', [carol, ...onN3]);

  // On its close, each client reconnects at once to n1 or n2 with its name.
  const again = onN3.map((ws, i) => ws.closed.then(async (c) => {
    const r = await tryName(i % 2 ? n2 : n1, names[i]);
    return { c, r };
  }));
  n3.signal('SIGTERM');
  const results = await Promise.all(again);
  for (const [i, { c, r }] of results.entries()) {
    assert.deepEqual([c.code, c.reason], [1001, SHUTDOWN_REASON], `${names[i]}'s close`);
    assert.equal(r.held, true, `${names[i]} registers again at once on ${i % 2 ? 'n2' : 'n1'}: ${r.close ? `closed ${r.close.code} ${r.close.reason}` : ''}`);
  }
  const moved = results.map(({ r }) => r.ws);
  const ex = await n3.waitExit(5000 * SLOW);
  assert.equal(ex.code, 0, `n3 exits 0 after draining: ${tail(n3)}`);

  // The drained node's memberships are gone (not only at TTL): only carol counts.
  assert.equal(await cmd(p2, 'publish:room:after-drain'), 'published:1', 'n3\'s members no longer counted');
  assert.equal(await text(carol), 'after-drain');
  assert.equal(await cmd(carol, 'send:alice:found you'), 'sent:true');
  assert.equal(await text(moved[0]), 'carol:found you');
  assert.equal(await cmd(moved[1], 'join:room'), 'joined:room');
  await publishRound(p2, 'room', 'rejoined', [carol, moved[1]]);

  const all = [carol, p2, ...moved];
  await expectQuiet(all);
  await closeAll(all);
});

test('Redis unreachable at start: the node starts, /healthz 503 with a reason, then 200 once Redis is up', async (t) => {
  const redis = await startRedis(t, { start: false });
  const { nodes: [n1] } = await startCluster(t, 1, {}, { redis, waitHealthy: false });
  const h = await healthz(n1);
  assert.equal(h.status, 503, `healthz while Redis is unreachable: ${h.status} ${h.text}`);
  assert.ok(h.text.trim().length > 0, 'the 503 says why');
  t.diagnostic(`healthz 503: ${JSON.stringify(h.text)}`);
  assert.equal(await metricTotal(n1, M.up), 0);
  // Names are taken locally meanwhile (written back once Redis is up), but
  // without a lease the node does not deliver as their holder: another node
  // may hold them (docs/CLUSTER.md, leases).
  const a = await openTg(n1, 'a');
  const b = await openTg(n1, 'b');
  assert.equal(await cmd(a, 'send:b:local'), 'sent:false');
  await redis.start();
  const up = await waitHealth(n1, 200, 10000);
  t.diagnostic(`healthz 200 ${Math.round(up.ms)} ms after Redis started`);
  assert.equal(await metricTotal(n1, M.up), 1);
  let k = 0;
  await until(async () => (await cmd(a, `send:b:local-${k++}`)) === 'sent:true', 5000, 'a -> b once the node has its lease', 50);
  assert.equal(await text(b), `a:local-${k - 1}`);
  // A second node sees the names registered before Redis was up.
  const n2 = await startNode(t, redis, 1);
  await waitHealth(n2, 200, 10000);
  const c = await tg(n2, 'c');
  let i = 0;
  await until(async () => (await cmd(c, `send:a:${i++}`)) === 'sent:true', 10000, 'a reachable from another node', 100);
  assert.equal(await text(a), `c:${i - 1}`);
  await closeAll([a, b, c]);
});

// Beyond the issue's list: what the design implies and a user would rely on.

test('across nodes: binary and NUL bytes, large messages, odd names, per-pool namespaces', async (t) => {
  const { nodes } = await startCluster(t, 3);
  const [n1, n2, n3] = nodes;
  const bin = await tg(n2, 'bin');
  // Not UTF-8, with NUL bytes: pushed on n1, a binary frame with the exact bytes on n2.
  const bytes = Buffer.from([0xff, 0x00, 0x80, 0x41, 0x00, 0x0d, 0x0a]);
  let res = await push(n1, TG, 'unique', 'bin', bytes);
  assert.deepEqual([res.status, JSON.parse(res.text)], [200, { delivered: true }]);
  let m = await bin.nextMessage();
  assert.equal(m.isBinary, true);
  assert.ok(m.data.equals(bytes), `exact bytes: ${m.data.toString('hex')}`);
  // Text with NUL and CR LF through testgear's send.
  const s3 = await tg(n3, 's3');
  assert.equal(await cmd(s3, 'send:bin:a\u0000b\r\nc'), 'sent:true');
  assert.equal(await text(bin), 's3:a\u0000b\r\nc');
  // Large: 256 KiB by name, 1 MiB to a group with members on the three nodes.
  const big = 'x'.repeat(256 * 1024 - 1) + 'y';
  assert.equal(await cmd(s3, `send:bin:${big}`), 'sent:true');
  assert.equal(await text(bin), `s3:${big}`);
  const members = [bin, s3, await tg(n1, 'g1')];
  for (const ws of members) assert.equal(await cmd(ws, 'join:big'), 'joined:big');
  const huge = Buffer.alloc(1024 * 1024, 'z').toString();
  res = await push(n1, TG, 'groups', 'big', huge);
  assert.deepEqual([res.status, JSON.parse(res.text)], [200, { count: 3 }]);
  for (const ws of members) assert.ok((await text(ws, 10000)) === huge, `${ws.gearName} got the 1 MiB publication`);
  // Odd names: UTF-8 and spaces (testgear), a colon and a slash (push API only).
  const odd = await tg(n1, 'ünï cødé ☃');
  assert.equal(await cmd(s3, 'send:ünï cødé ☃:snow'), 'sent:true');
  assert.equal(await text(odd), 's3:snow');
  const colon = await tg(n2, 'x/y z:ü');
  res = await push(n3, TG, 'unique', 'x/y z:ü', 'odd name');
  assert.deepEqual([res.status, JSON.parse(res.text)], [200, { delivered: true }], 'a name with a colon, pushed from another node');
  assert.equal(await text(colon), 'odd name');
  res = await push(n3, TG, 'unique', 'x/y z', 'prefix');
  assert.deepEqual([res.status, JSON.parse(res.text)], [404, { delivered: false }], 'a prefix of that name is not it');
  // Per pool: alice in gear:testgear on n1 and alice in tenant:t1 on n2 are two names.
  const aliceG = await tg(n1, 'alice');
  const aliceT = await tg(n2, 'alice', 't1');
  const bobT = await tg(n3, 'bob', 't1');
  assert.equal(await cmd(bobT, 'send:alice:to t1'), 'sent:true');
  assert.equal(await text(aliceT), 'bob:to t1');
  assert.equal(await cmd(s3, 'send:alice:to gear'), 'sent:true');
  assert.equal(await text(aliceG), 's3:to gear');
  assert.equal(await cmd(bobT, 'send:s3:x'), 'sent:false', 's3 is in another pool');
  const dupT = await tryName(n1, 'alice', 't1');
  assert.deepEqual([dupT.held, dupT.close?.code], [false, 4009], 'alice taken in tenant:t1 from another node');
  assert.equal(await cmd(aliceT, 'join:big'), 'joined:big');
  assert.deepEqual(await cmd2(aliceT, 'publish:big:t1 only'), ['published:1', 't1 only'], 'tenant:t1\'s group "big" is its own');
  const all = [bin, s3, members[2], odd, colon, aliceG, aliceT, bobT];
  await expectQuiet(all);
  await closeAll(all);
});

test('across nodes: a name that moves is reached where it is now; leave and rejoin; empty group; publication order', async (t) => {
  const { nodes } = await startCluster(t, 3);
  const [n1, n2, n3] = nodes;
  const s = await tg(n3, 'sender');
  // alice moves n1 -> n2 (close), then n2 -> n1 (abrupt end).
  let alice = await tg(n1, 'alice');
  assert.equal(await cmd(s, 'send:alice:1'), 'sent:true');
  assert.equal(await text(alice), 'sender:1');
  alice.close();
  await alice.closed;
  await until(async () => (await cmd(s, 'send:alice:gone?')) === 'sent:false', 2000, 'alice gone after close');
  alice = await tg(n2, 'alice');
  assert.equal(await cmd(s, 'send:alice:2'), 'sent:true');
  assert.equal(await text(alice), 'sender:2', 'reached on n2');
  alice.terminate();
  await until(async () => (await cmd(s, 'send:alice:gone?')) === 'sent:false', 2000, 'alice gone after an abrupt end');
  alice = await tg(n1, 'alice');
  assert.equal(await cmd(s, 'send:alice:3'), 'sent:true');
  assert.equal(await text(alice), 'sender:3', 'reached on n1 again');

  // Empty and unknown groups.
  assert.equal(await cmd(s, 'publish:nobody-here:x'), 'published:0');
  // The only member on n2 leaves and rejoins (its node unsubscribes and subscribes again).
  const solo = await tg(n2, 'solo');
  for (let i = 0; i < 5; i++) {
    assert.equal(await cmd(solo, 'join:cycle'), 'joined:cycle');
    assert.equal(await cmd(s, `publish:cycle:in-${i}`), 'published:1');
    assert.equal(await text(solo), `in-${i}`);
    assert.equal(await cmd(solo, 'leave:cycle'), 'left:cycle');
    assert.equal(await cmd(s, `publish:cycle:out-${i}`), 'published:0');
  }
  // Joined twice: counted and delivered once.
  assert.equal(await cmd(solo, 'join:cycle'), 'joined:cycle');
  assert.equal(await cmd(solo, 'join:cycle'), 'joined:cycle');
  assert.equal(await cmd(s, 'publish:cycle:once'), 'published:1');
  assert.equal(await text(solo), 'once');

  // One publisher (on n1), members on the three nodes: 300 publications in order everywhere.
  const pub = await tg(n1, 'pub');
  const members = await Promise.all([n1, n2, n3, n2].map((srv, i) => tg(srv, `o${i}`)));
  for (const ws of members) assert.equal(await cmd(ws, 'join:ord'), 'joined:ord');
  const N = 300;
  for (let i = 0; i < N; i++) pub.send(`publish:ord:${i}`);
  for (let i = 0; i < N; i++) assert.equal(await text(pub), `published:${members.length}`);
  await Promise.all(members.map(async (ws) => {
    for (let i = 0; i < N; i++) assert.equal(await text(ws), String(i), `${ws.gearName}@${ws.node} in order`);
  }));
  const all = [s, alice, solo, pub, ...members];
  await expectQuiet(all);
  await closeAll(all);
});

test('kill -9 and an immediate restart with the same node_id: the old process\'s names and members are freed', async (t) => {
  const { nodes, redis } = await startCluster(t, 2);
  const [n1, n2] = nodes;
  const old = await Promise.all(['k0', 'k1'].map((n) => tg(n2, n)));
  for (const ws of old) assert.equal(await cmd(ws, 'join:room'), 'joined:room');
  const p = await tg(n1, 'p');
  assert.equal(await cmd(p, 'publish:room:x'), 'published:2');
  n2.signal('SIGKILL');
  await n2.exited;
  const t0 = performance.now();
  const n2b = await startNode(t, redis, 1); // node_id n2 again
  await waitHealth(n2b, 200, 5000);
  const budget = NODE_TTL_MS + 5000;
  let k0 = null;
  await until(async () => {
    const r = await tryName(n1, 'k0');
    if (r.held) k0 = r.ws;
    else assert.deepEqual([r.close.code, r.close.reason], [4009, 'name taken']);
    return r.held;
  }, budget, async () => `k0 free after n2 was killed and restarted; keys: ${await redis.dump()}`, 100);
  const freedMs = performance.now() - t0;
  let k = 0;
  await until(async () => (await cmd(p, `publish:room:y${k++}`)) === 'published:0', Math.max(1000, budget - freedMs / SLOW),
    'the old process\'s members no longer counted', 100);
  t.diagnostic(`names freed after ${Math.round(freedMs)} ms, members after ${Math.round(performance.now() - t0)} ms`);
  // The new n2 holds names of its own, and the old ones can move to it.
  const k1 = await tg(n2b, 'k1');
  assert.equal(await cmd(p, 'send:k1:new'), 'sent:true');
  assert.equal(await text(k1), 'p:new');
  await closeAll([p, k0, k1]);
});

test('a long Redis outage (7 s): cross-node sends work again within 10 s of its return', async (t) => {
  const { nodes, redis } = await startCluster(t, 2);
  const [n1, n2] = nodes;
  const alice = await tg(n1, 'alice');
  const bob = await tg(n2, 'bob');
  await redis.stop();
  await Promise.all(nodes.map((s) => waitHealth(s, 503, 5000)));
  await sleep(7000); // past several reconnect attempts: the backoff has grown
  assert.equal(await cmd(bob, 'send:alice:down'), 'sent:false');
  await redis.start();
  const t0 = performance.now();
  let i = 0;
  await until(async () => (await cmd(bob, `send:alice:${i++}`)) === 'sent:true', 10000, 'bob -> alice after a long outage', 100);
  assert.equal(await text(alice), `bob:${i - 1}`);
  let j = 0;
  await until(async () => (await cmd(alice, `send:bob:${j++}`)) === 'sent:true', Math.max(1000, 10000 - (performance.now() - t0) / SLOW), 'alice -> bob after a long outage', 100);
  assert.equal(await text(bob), `alice:${j - 1}`);
  t.diagnostic(`back ${Math.round(performance.now() - t0)} ms after Redis returned`);
  await Promise.all(nodes.map((s) => waitHealth(s, 200, 5000)));
  await closeAll([alice, bob]);
});

test('unregister on one node frees the name cluster-wide', async (t) => {
  const { nodes: [n1, n2] } = await startCluster(t, 2);
  const holder = await tg(n1, 'uname');
  const other = await tg(n2, 'uother');
  assert.equal(await cmd(holder, 'unregister:uname'), 'unregistered:uname');
  assert.equal(await cmd(other, 'send:uname:x'), 'sent:false', 'nobody holds it any more');
  const taker = await tg(n2, 'uname'); // not closed 4009: the name was free
  assert.equal(await cmd(holder, 'send:uname:hi'), 'sent:true');
  assert.equal(await text(taker), 'uname:hi');
  for (const ws of [holder, other, taker]) ws.close();
});
