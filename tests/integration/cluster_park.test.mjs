// Parking across nodes (issue 14, docs/CLUSTER.md "parking"): a Unique name
// whose connection ends, or whose node drains, keeps what is sent to it in
// Redis for park_ms, and whoever registers it next, on any node, gets the kept
// messages first, in order, then live ones. The drain test: a sender
// on node 2 sends to alice every millisecond with a sequence number while the
// node alice is on drains, five times in a row; alice reconnects to another
// node at each 1001; every number arrives once, in order, and no send answers
// not found. Also: expiry and the caps across nodes, the push API's 202, and
// Redis away at the close (parking degrades to today's behaviour, counted).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openWs, sleep, SLOW, SHUTDOWN_REASON, TESTGEAR, auditSeqs } from './lib/orrery.mjs';
import {
  TG, startCluster, startNode, waitHealth, tgUrl, tg, cmd, text, push, metricTotal, until, closeAll,
} from './lib/cluster.mjs';

const parkCfg = (pool) => ({ pools: { [TG]: { park_ms: 10000 * SLOW, park_max_messages: 100000, ...pool } } });
const PARKED = 'orrery_parked_messages_total';

const audit = auditSeqs;

const seqs = (texts, from = 'bob') => texts.filter((s) => s.startsWith(`${from}:`)).map((s) => Number(s.slice(from.length + 1)));

/** The per-result series of orrery_parked_messages_total summed over live nodes. */
async function parkedSum(nodes, result) {
  let sum = 0;
  for (const s of nodes) {
    if (s.exit) continue;
    sum += (await s.metric(PARKED, { pool: TG, result })) ?? 0;
  }
  return sum;
}

/** A testgear client on `srv` whose messages are collected in `got` from the first one. */
async function collecting(srv, name, got) {
  const ws = await openWs(tgUrl(srv, name), {}, (d) => got.push(d.toString()));
  ws.node = srv.nodeId;
  return ws;
}

test('a client that closes on node 1 and comes back on node 3 gets what node 2 sent meanwhile, in order', async (t) => {
  const { nodes: [n1, n2, n3] } = await startCluster(t, 3, parkCfg());
  const bob = await tg(n2, 'bob');
  const got = [];
  let alice = await collecting(n1, 'alice', got);
  await until(async () => (await cmd(bob, 'send:alice:0')) === 'sent:true', 5000, 'alice registered');
  const answers = { 'sent:true': 0, 'sent:parked': 0, 'sent:false': 0 };
  let n = 0;
  const sendSome = async (k) => {
    for (let i = 0; i < k; i++) answers[await cmd(bob, `send:alice:${++n}`)]++;
  };
  await sendSome(20);
  const closing = alice.closed;
  alice.close();
  const during = sendSome(100);
  await closing;
  await until(async () => (await metricTotal(n2, 'orrery_parked_names')) === 1, 5000, 'the gauge counts her name');
  await during;
  await sendSome(20); // parked for sure
  // The push API on node 3, where nobody ever held her: 202 parked.
  const r = await push(n3, TG, 'unique', 'alice', 'bob:pushed');
  assert.equal(r.status, 202, r.text);
  assert.deepEqual(JSON.parse(r.text), { delivered: false, parked: true });
  const live = sendSome(100);
  alice = await collecting(n3, 'alice', got);
  await live;
  await sendSome(20);
  alice.send('echo:done');
  await until(async () => got.includes('done'), 5000, 'her echo');
  const recv = seqs(got.filter((s) => s !== 'bob:pushed'));
  const all = Array.from({ length: n + 1 }, (_, i) => i);
  const a = audit(recv.filter((k) => k > 0 || recv.indexOf(k) === recv.lastIndexOf(k)), all.slice(1));
  console.log(`cross-node park: ${n} sent (${answers['sent:true']} delivered, ${answers['sent:parked']} parked): lost ${a.lost}, duplicated ${a.dup}, reordered ${a.reordered}`);
  assert.deepEqual(a, { lost: 0, dup: 0, reordered: 0 });
  assert.equal(answers['sent:false'], 0, 'no send answered not found');
  assert.ok(answers['sent:parked'] >= 20);
  assert.ok(got.includes('bob:pushed'), 'the pushed message was kept too');
  // The kept messages were handed over on node 3; the gauge is back to 0.
  assert.ok((await n3.metric(PARKED, { pool: TG, result: 'delivered' })) >= answers['sent:parked'] + 1);
  await until(async () => (await metricTotal(n1, 'orrery_parked_names')) === 0, 5000, 'the gauge back to 0');
  await closeAll([bob, alice]);
});

test('the drain, five times: a sender on node 2 sends to alice every millisecond; every number arrives once, in order', async (t) => {
  const extra = { drain_ms: 300, ...parkCfg() };
  const { redis, nodes } = await startCluster(t, 3, extra);
  const bob = await tg(nodes[1], 'bob');
  const got = [];
  let at = 0; // alice's node index (0 or 2)
  let alice = await collecting(nodes[at], 'alice', got);
  await until(async () => (await cmd(bob, 'send:alice:0')) === 'sent:true', 5000, 'alice registered');
  bob.events.items.length = 0;
  // The sender: one send every millisecond, answers read as they come (in order).
  let n = 0, stop = false;
  const answers = { 'sent:true': 0, 'sent:parked': 0, 'sent:false': 0 };
  const falseAt = [];
  const sent = [];
  bob.on('message', (d) => {
    const s = d.toString();
    const k = sent.shift();
    answers[s] = (answers[s] ?? 0) + 1;
    if (s === 'sent:false') falseAt.push(k);
  });
  // At most 256 unanswered (a Lua gear lets 1,024 wait behind registry calls,
  // and a sanitized node may fall behind one send a millisecond).
  const timer = setInterval(() => {
    if (stop || bob.readyState !== bob.OPEN || sent.length >= 256) return;
    bob.send(`send:alice:${++n}`);
    sent.push(n);
  }, 1);
  const report = [];
  for (let round = 0; round < 5; round++) {
    await sleep(300);
    const from = nodes[at];
    const to = at === 0 ? 2 : 0;
    const before = n;
    // alice reconnects where she is sent, at her 1001 (a load balancer's job).
    const back = new Promise((resolve, reject) => {
      alice.once('close', (code, reason) => {
        if (code !== 1001 || reason.toString() !== SHUTDOWN_REASON) reject(new Error(`alice closed ${code} ${reason}`));
        collecting(nodes[to], 'alice', got).then(resolve, reject);
      });
    });
    from.signal('SIGTERM');
    alice = await back;
    await from.waitExit(10000 * SLOW);
    report.push(`drain ${round + 1}: n${at + 1} -> n${to + 1} at send ${before}`);
    // The drained node comes back (a deploy), for the next round's move.
    nodes[at] = await startNode(t, redis, at, extra);
    await waitHealth(nodes[at], 200, 10000);
    at = to;
  }
  await sleep(300);
  stop = true;
  clearInterval(timer);
  await until(async () => sent.length === 0, 10000 * SLOW, 'every send answered');
  alice.send('echo:done');
  await until(async () => got.includes('done'), 10000 * SLOW, 'her echo');
  const recv = seqs(got).filter((k) => k > 0);
  const want = Array.from({ length: n }, (_, i) => i + 1).filter((k) => !falseAt.includes(k));
  const a = audit(recv, want);
  console.log(`${report.join('; ')}`);
  console.log(`drains: ${n} sent (${answers['sent:true']} delivered, ${answers['sent:parked']} parked, ${answers['sent:false']} not found): lost ${a.lost}, duplicated ${a.dup}, reordered ${a.reordered}`);
  assert.deepEqual(a, { lost: 0, dup: 0, reordered: 0 });
  assert.deepEqual(falseAt, [], 'no send answered not found during the drains');
  assert.ok(answers['sent:parked'] > 0, 'some sends came while her name was parked');
  await closeAll([bob, alice]);
});

// The name comes back on the sender's own node: while its claim there is
// pending, the sender's messages go through Redis; once it is confirmed they
// go directly. Neither may overtake the other (a sender on node 2, alice
// parked from node 1 and back on node 2, then away and back on node 1).
test('a name that comes back on the sender\'s own node gets its messages in order', async (t) => {
  const { nodes: [n1, n2] } = await startCluster(t, 2, parkCfg());
  const bob = await tg(n2, 'bob');
  const got = [];
  let alice = await collecting(n1, 'alice', got);
  await until(async () => (await cmd(bob, 'send:alice:0')) === 'sent:true', 5000, 'alice registered');
  let n = 0, stop = false;
  const sent = [];
  const falseAt = [];
  bob.on('message', (d) => {
    const k = sent.shift();
    if (d.toString() === 'sent:false') falseAt.push(k);
  });
  const timer = setInterval(() => {
    if (stop || sent.length >= 256) return;
    bob.send(`send:alice:${++n}`);
    sent.push(n);
  }, 1);
  const moves = [];
  for (const to of [n2, n1, n2, n1, n2, n1]) {
    await sleep(150);
    moves.push(`close@${n}`);
    alice.close();
    await alice.closed;
    await sleep(100); // parked meanwhile
    moves.push(`${to.nodeId}@${n}`);
    alice = await collecting(to, 'alice', got);
  }
  await sleep(200);
  stop = true;
  clearInterval(timer);
  await until(async () => sent.length === 0, 10000 * SLOW, 'every send answered');
  alice.send('echo:done');
  await until(async () => got.includes('done'), 10000 * SLOW, 'her echo');
  const want = Array.from({ length: n }, (_, i) => i + 1).filter((k) => !falseAt.includes(k));
  const a = audit(seqs(got).filter((k) => k > 0), want);
  console.log(`back and forth: ${n} sent, ${falseAt.length} not found: lost ${a.lost}, duplicated ${a.dup}, reordered ${a.reordered}`);
  if (a.reordered) {
    const r = seqs(got).filter((k) => k > 0);
    const at = r.findIndex((k, i) => i > 0 && k < r[i - 1]);
    console.log(`reordered around: ${r.slice(Math.max(0, at - 8), at + 8).join(' ')}; moves at ${moves.join(' ')}`);
  }
  assert.deepEqual(a, { lost: 0, dup: 0, reordered: 0 });
  assert.deepEqual(falseAt, []);
  await closeAll([bob, alice]);
});

test('across nodes: expiry after park_ms (not found, counted expired) and the caps (oldest dropped, counted)', async (t) => {
  const { nodes: [n1, n2, n3] } = await startCluster(t, 3, parkCfg({ park_ms: 800, park_max_messages: 3 }));
  const bob = await tg(n2, 'bob');
  let alice = await tg(n1, 'alice');
  alice.close();
  await alice.closed;
  await until(async () => (await cmd(bob, 'send:alice:1')) === 'sent:parked', 5000, 'her name parked');
  for (let i = 2; i <= 5; i++) assert.equal(await cmd(bob, `send:alice:${i}`), 'sent:parked');
  assert.equal(await parkedSum([n1, n2, n3], 'dropped'), 2, 'two past the cap of 3');
  await sleep(1000);
  assert.equal(await cmd(bob, 'send:alice:6'), 'sent:false', 'after park_ms: not found');
  await until(async () => (await parkedSum([n1, n2, n3], 'expired')) === 3, 5000, 'the three kept ones counted expired');
  assert.equal(await parkedSum([n1, n2, n3], 'delivered'), 0);
  // Caps, then taken on another node within park_ms: the newest three, in order.
  alice = await tg(n1, 'alice');
  alice.close();
  await alice.closed;
  await until(async () => (await cmd(bob, 'send:alice:7')) === 'sent:parked', 5000, 'parked again');
  for (let i = 8; i <= 10; i++) assert.equal(await cmd(bob, `send:alice:${i}`), 'sent:parked');
  const got = [];
  alice = await collecting(n3, 'alice', got);
  await until(async () => got.length >= 3, 5000, 'the kept messages');
  assert.deepEqual(got.slice(0, 3), ['bob:8', 'bob:9', 'bob:10']);
  assert.equal(await n3.metric(PARKED, { pool: TG, result: 'delivered' }), 3);
  await closeAll([bob, alice]);
});

test('Redis away when a connection ends: its name is not parked (today\'s behaviour), counted', async (t) => {
  const { redis, nodes: [n1, n2] } = await startCluster(t, 2, parkCfg());
  const alice = await tg(n1, 'alice');
  await redis.stop();
  alice.close();
  await alice.closed;
  await until(async () => (await metricTotal(n1, 'orrery_cluster_park_failures_total')) >= 1, 5000, 'counted');
  await redis.start();
  await waitHealth(n1, 200, 10000);
  await waitHealth(n2, 200, 10000);
  const bob = await tg(n2, 'bob');
  await until(async () => (await cmd(bob, 'send:alice:1')) === 'sent:false', 10000, 'not found, not parked');
  await closeAll([bob]);
});

// Redis holds what parked names keep: 10,000 names parked at once stay within
// their caps there, and expiry sweeps them all (batches of 1,000), counting
// each kept message once and leaving Redis with what it had before.
test('10,000 names parked in Redis: caps hold, every one expires, counted once, their keys gone', { skip: TESTGEAR !== 'testgear' && 'C testgear only' }, async (t) => {
  const { redis, nodes } = await startCluster(t, 2, parkCfg({ park_ms: 4000 * SLOW, park_max_messages: 2 }));
  const [n1, n2] = nodes;
  const holders = [await tg(n1, 'h0'), await tg(n1, 'h1')];
  const keysBefore = Number(await redis.command('DBSIZE'));
  await Promise.all(holders.map(async (ws, h) => {
    for (let b = 0; b < 5000; b += 500) {
      for (let i = b; i < b + 500; i++) ws.send(`register:n${h}_${i}`);
      for (let i = b; i < b + 500; i++) assert.equal(await text(ws), `registered:n${h}_${i}`);
    }
  }));
  await closeAll(holders);
  await until(async () => (await metricTotal(n2, 'orrery_parked_names')) === 10002, 10000 * SLOW, 'all parked', 100);
  // Three messages to 200 of them: one over the cap of 2 each.
  const bob = await tg(n2, 'bob');
  for (let i = 0; i < 200; i++) for (let k = 0; k < 3; k++) bob.send(`send:n0_${i}:${k}`);
  for (let i = 0; i < 600; i++) assert.equal(await text(bob), 'sent:parked');
  assert.equal(await parkedSum(nodes, 'dropped'), 200);
  assert.ok(Number(await redis.command('ZCARD', 'orr:parked')) === 10002);
  await until(async () => (await metricTotal(n2, 'orrery_parked_names')) === 0, 20000 * SLOW, 'all expired', 200);
  await until(async () => (await parkedSum(nodes, 'expired')) === 400, 5000, 'the kept ones counted expired once');
  assert.equal(Number(await redis.command('ZCARD', 'orr:parked')), 0);
  // What is left is bob's own entries, the nodes' and the inboxes: no parked name's key.
  const left = await redis.command('KEYS', 'orr:p*');
  assert.deepEqual(left, [], `parking keys left: ${left}`);
  assert.ok(Number(await redis.command('DBSIZE')) <= keysBefore + 10, 'Redis holds what it held before');
  await closeAll([bob]);
});
