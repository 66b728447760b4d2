// The registry through testgear, driven by npm `ws`: Unique names (register,
// send, taken, freed on close), per-pool namespaces (tenant=), groups (join,
// leave, publish) with 200 members spread over 2 workers, and ordering between
// one sender and one receiver.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openWs, rawRequest, upgradeHeaders, sleep, SLOW, TESTGEAR } from './lib/orrery.mjs';

const TG = `gear:${TESTGEAR}`;

function tgUrl(srv, name, tenant) {
  return srv.wsUrl(`/${TESTGEAR}/ws?name=${encodeURIComponent(name)}${tenant !== undefined ? `&tenant=${encodeURIComponent(tenant)}` : ''}`);
}

/** Open a testgear client and wait until its init (the name's registration) is done. */
async function tg(srv, name, tenant) {
  const ws = await openWs(tgUrl(srv, name, tenant));
  await roundTrip(ws);
  return ws;
}

/** An echo round trip: everything the connection was answered before is in its queue. */
async function roundTrip(ws, tag = 'sync') {
  ws.send(`echo:${tag}`);
  const m = await ws.nextMessage();
  assert.equal(m.data.toString(), tag, 'echo round trip');
}

/** Send a command and return the text of the next message. */
async function cmd(ws, text) {
  ws.send(text);
  const m = await ws.nextMessage();
  assert.equal(m.isBinary, false);
  return m.data.toString();
}

async function text(ws, ms) {
  const m = await ws.nextMessage(ms);
  assert.equal(m.isBinary, false);
  return m.data.toString();
}

/** Nothing (no message, no close) is queued on any of `socks` after `graceMs`. */
async function expectQuiet(socks, graceMs = 200) {
  await sleep(graceMs * SLOW);
  for (const [i, ws] of socks.entries()) {
    assert.deepEqual(ws.events.items.map((e) => (e.type === 'message' ? e.data.toString().slice(0, 40) : e.type)), [],
      `client #${i} received something extra`);
  }
}

function workerOf(info) {
  return Number(/_(\d+)_\d+$/.exec(JSON.parse(info).context_id)[1]);
}

async function closeAll(socks) {
  for (const ws of socks) ws.close();
  await Promise.all(socks.map((ws) => ws.closed));
}

test('unique names: send, sent:false, taken (4009), freed when the holder closes', async (t) => {
  const srv = await startServer(t, { workers: 2 });
  const alice = await tg(srv, 'alice');
  const bob = await tg(srv, 'bob');
  await srv.waitMetric('orrery_registry_names', undefined, 2);

  assert.equal(await cmd(alice, 'send:bob:hi'), 'sent:true');
  assert.equal(await text(bob), 'alice:hi');
  assert.equal(await cmd(alice, 'send:bob:a:b:c'), 'sent:true', 'colons after the name belong to the text');
  assert.equal(await text(bob), 'alice:a:b:c');
  assert.equal(await cmd(bob, 'send:alice:'), 'sent:true', 'an empty text');
  assert.equal(await text(alice), 'bob:');
  assert.equal(await cmd(bob, 'send:carol:anyone?'), 'sent:false');
  assert.equal(await cmd(bob, 'send:Alice:case'), 'sent:false', 'names are case-sensitive');

  // A second alice: the handshake succeeds, then init finds the name taken.
  const intruder = await openWs(tgUrl(srv, 'alice'));
  const c = await intruder.nextClose();
  assert.equal(c.code, 4009);
  assert.equal(c.reason, 'name taken');
  // The name still belongs to the first alice.
  assert.equal(await cmd(bob, 'send:alice:still yours'), 'sent:true');
  assert.equal(await text(alice), 'bob:still yours');
  assert.equal(await srv.metric('orrery_registry_names'), 2);

  // Freed when its holder closes: wait until the registry has forgotten it.
  alice.close();
  await alice.closed;
  await srv.waitMetric('orrery_registry_names', undefined, 1);
  assert.equal(await cmd(bob, 'send:alice:gone?'), 'sent:false');
  const alice2 = await tg(srv, 'alice');
  assert.equal(await cmd(bob, 'send:alice:new you'), 'sent:true');
  assert.equal(await text(alice2), 'bob:new you');
  assert.equal(await cmd(alice2, 'send:bob:back'), 'sent:true');
  assert.equal(await text(bob), 'alice:back');
  await srv.waitMetric('orrery_registry_names', undefined, 2);

  // An abrupt end (no close handshake) frees the name too.
  bob.terminate();
  await srv.waitMetric('orrery_registry_names', undefined, 1);
  assert.equal(await cmd(alice2, 'send:bob:x'), 'sent:false');
  const bob2 = await tg(srv, 'bob');
  assert.equal(await cmd(alice2, 'send:bob:y'), 'sent:true');
  assert.equal(await text(bob2), 'alice:y');

  await expectQuiet([alice2, bob2]);
  await closeAll([alice2, bob2]);
  await srv.waitMetric('orrery_registry_names', undefined, 0);
});

test('names and groups are per pool: tenant=<id> is its own namespace', async (t) => {
  const srv = await startServer(t, { workers: 2 });
  const aliceG = await tg(srv, 'alice');
  const aliceT1 = await tg(srv, 'alice', 't1'); // not taken: another pool
  const aliceT2 = await tg(srv, 'alice', 't2');
  const bobT1 = await tg(srv, 'bob', 't1');
  const carolG = await tg(srv, 'carol');
  const all = [aliceG, aliceT1, aliceT2, bobT1, carolG];

  assert.equal(await cmd(aliceG, 'pool'), TG);
  assert.equal(await cmd(aliceT1, 'pool'), 'tenant:t1');
  assert.equal(await cmd(aliceT2, 'pool'), 'tenant:t2');
  assert.equal(await srv.metric('orrery_registry_names'), 5);

  // Unique names: a send from tenant:t1 only reaches names in tenant:t1.
  assert.equal(await cmd(bobT1, 'send:alice:hi t1'), 'sent:true');
  assert.equal(await text(aliceT1), 'bob:hi t1');
  assert.equal(await cmd(bobT1, 'send:carol:x'), 'sent:false', 'carol is in gear:testgear');
  assert.equal(await cmd(carolG, 'send:bob:x'), 'sent:false', 'bob is in tenant:t1');
  assert.equal(await cmd(carolG, 'send:alice:hi gear'), 'sent:true');
  assert.equal(await text(aliceG), 'carol:hi gear');

  // A second alice in tenant:t1 is taken there.
  const dup = await openWs(tgUrl(srv, 'alice', 't1'));
  const c = await dup.nextClose();
  assert.deepEqual([c.code, c.reason], [4009, 'name taken']);

  // Groups: same group name in three pools, three different groups.
  for (const ws of [aliceG, aliceT1, aliceT2, carolG]) assert.equal(await cmd(ws, 'join:room'), 'joined:room');
  assert.equal(await cmd(bobT1, 'publish:room:to t1'), 'published:1');
  assert.equal(await text(aliceT1), 'to t1');
  assert.equal(await cmd(aliceT2, 'leave:room'), 'left:room');
  assert.equal(await cmd(aliceT2, 'publish:room:to t2'), 'published:0');
  assert.equal(await cmd(bobT1, 'leave:room'), 'not_in_group:room');
  const out = await cmd(carolG, 'publish:room:to gear');
  // carol is a member: she gets the answer and the message (in either order).
  const both = [out, await text(carolG)].sort();
  assert.deepEqual(both, ['published:2', 'to gear']);
  assert.equal(await text(aliceG), 'to gear');
  await srv.waitMetric('orrery_registry_groups', undefined, 2); // gear:testgear room, tenant:t1 room
  assert.equal(await srv.metric('orrery_registry_memberships'), 3);

  await expectQuiet(all);
  await closeAll(all);
  await srv.waitMetric('orrery_registry_names', undefined, 0);
  assert.equal(await srv.metric('orrery_registry_memberships'), 0);
  assert.equal(await srv.metric('orrery_registry_groups'), 0);
});

test('an invalid tenant id is 404', async (t) => {
  const srv = await startServer(t, { workers: 1 });
  const ok64 = 'a'.repeat(64);
  const ws = await tg(srv, 'x', ok64);
  assert.equal(await cmd(ws, 'pool'), `tenant:${ok64}`);
  ws.close();
  for (const tenant of ['', 'a'.repeat(65), 'bad id', 'a/b', 'a:b', 'ü']) {
    const target = `/${TESTGEAR}/ws?name=x&tenant=${encodeURIComponent(tenant)}`;
    const res = await rawRequest(srv.port, 'GET', target, upgradeHeaders(srv.port));
    assert.equal(res.status, 404, `tenant=${JSON.stringify(tenant)}`);
  }
  const okChars = await tg(srv, 'y', 'A-z_0.9');
  assert.equal(await cmd(okChars, 'pool'), 'tenant:A-z_0.9');
  okChars.close();
  await okChars.closed;
});

test('200 members on 2 workers: publish counts, each member receives exactly once; leave and close', async (t) => {
  const N = 200;
  const srv = await startServer(t, { workers: 2, pools: { [TG]: { ws_max_connections: 1000 } } });
  const members = [];
  for (let b = 0; b < N; b += 50) {
    members.push(...(await Promise.all(Array.from({ length: 50 }, (_, i) => openWs(tgUrl(srv, `m${b + i}`))))));
  }
  // Where each landed: the worker index is in the context id.
  const workers = await Promise.all(members.map(async (ws) => workerOf(await cmd(ws, 'info'))));
  const perWorker = [0, 1].map((w) => workers.filter((x) => x === w).length);
  assert.ok(perWorker[0] > 0 && perWorker[1] > 0, `members on both workers: ${perWorker}`);

  const joined = await Promise.all(members.map((ws) => cmd(ws, 'join:room')));
  assert.ok(joined.every((a) => a === 'joined:room'));
  await srv.waitMetric('orrery_registry_memberships', undefined, N);
  assert.equal(await srv.metric('orrery_registry_groups'), 1);
  assert.equal(await srv.metric('orrery_registry_names'), N);

  const pub = await tg(srv, 'publisher');
  const expectRound = async (msg, receivers, count) => {
    assert.equal(await cmd(pub, `publish:room:${msg}`), `published:${count}`);
    const got = await Promise.all(receivers.map((ws) => text(ws)));
    assert.ok(got.every((g) => g === msg), `every member got ${msg}`);
  };

  await expectRound('hello-1', members, N);
  await expectRound('hello-2', members, N);
  await expectQuiet([...members, pub]);

  // One leaves: counted one less, and it gets nothing.
  assert.equal(await cmd(members[0], 'leave:room'), 'left:room');
  assert.equal(await cmd(members[0], 'leave:room'), 'not_in_group:room');
  await expectRound('after-leave', members.slice(1), N - 1);

  // One closes: no longer counted.
  members[1].close();
  await members[1].closed;
  await srv.waitMetric('orrery_registry_memberships', undefined, N - 2);
  await expectRound('after-close', members.slice(2), N - 2);

  // One ends abruptly.
  members[2].terminate();
  await srv.waitMetric('orrery_registry_memberships', undefined, N - 3);
  await expectRound('after-terminate', members.slice(3), N - 3);

  // A member that publishes gets the answer and its own copy.
  members[3].send('publish:room:from-a-member');
  const mine = [await text(members[3]), await text(members[3])].sort();
  assert.deepEqual(mine, ['from-a-member', `published:${N - 3}`]);
  const got = await Promise.all(members.slice(4).map((ws) => text(ws)));
  assert.ok(got.every((g) => g === 'from-a-member'));

  // Joining twice does not deliver twice.
  assert.equal(await cmd(members[0], 'join:room'), 'joined:room');
  assert.equal(await cmd(members[0], 'join:room'), 'joined:room');
  await expectRound('rejoined', [members[0], ...members.slice(3)], N - 2);

  await expectQuiet([...members.slice(3), members[0], pub]);
  await closeAll([members[0], ...members.slice(3), pub]);
  await srv.waitMetric('orrery_registry_memberships', undefined, 0);
  assert.equal(await srv.metric('orrery_registry_groups'), 0);
});

test('one sender to one receiver by name: 500 messages arrive in order (also across workers)', async (t) => {
  const srv = await startServer(t, { workers: 2 });
  const rcv = await tg(srv, 'rcv');
  const rw = workerOf(await cmd(rcv, 'info'));
  // Find a sender on the other worker (SO_REUSEPORT spreads connections), and one on the same.
  let other = null;
  let same = null;
  const extra = [];
  for (let i = 0; i < 40 && !(other && same); i++) {
    const ws = await tg(srv, `s${i}`);
    const w = workerOf(await cmd(ws, 'info'));
    if (w !== rw && !other) other = ws;
    else if (w === rw && !same) same = ws;
    else extra.push(ws);
  }
  assert.ok(other, 'a sender on the other worker');
  const senders = same ? [other, same] : [other];
  const names = await Promise.all(senders.map(async (ws) => JSON.parse(await cmd(ws, 'info')).name));

  const M = 500;
  for (let i = 0; i < M; i++) for (const ws of senders) ws.send(`send:rcv:${i}`);
  // Each sender: 500 sent:true, in command order.
  await Promise.all(senders.map(async (ws) => {
    for (let i = 0; i < M; i++) assert.equal(await text(ws), 'sent:true');
  }));
  // The receiver: from each sender, 0..499 in order.
  const next = new Map(names.map((n) => [n, 0]));
  for (let k = 0; k < M * senders.length; k++) {
    const m = await text(rcv);
    const i = m.indexOf(':');
    const from = m.slice(0, i);
    assert.ok(next.has(from), `from a sender: ${m}`);
    assert.equal(Number(m.slice(i + 1)), next.get(from), `in order from ${from}`);
    next.set(from, next.get(from) + 1);
  }
  await expectQuiet([rcv, ...senders]);
  await closeAll([rcv, ...senders, ...extra]);
});

test('one connection holds at most 10,000 names and memberships: the next join fails, others are not affected', async (t) => {
  const srv = await startServer(t);
  const ws = await tg(srv, 'hoarder'); // its name is one entry
  const N = 10000;
  for (let i = 0; i < N; i++) ws.send(`join:g${i}`);
  for (let i = 0; i < N - 1; i++) assert.equal(await text(ws, 10000 * SLOW), `joined:g${i}`);
  assert.equal(await text(ws), `error:join_failed:g${N - 1}`);
  // Already a member: still fine. Leaving makes room again.
  assert.equal(await cmd(ws, 'join:g0'), 'joined:g0');
  assert.equal(await cmd(ws, 'leave:g0'), 'left:g0');
  assert.equal(await cmd(ws, `join:g${N - 1}`), `joined:g${N - 1}`);
  // Another connection is not limited by it.
  const other = await tg(srv, 'other');
  assert.equal(await cmd(other, 'join:g5'), 'joined:g5');
  assert.equal(await cmd(other, 'publish:g5:x'), 'published:2');
  ws.close();
  other.close();
});

test('unregister gives a name up: it is free for another, and only its holder may', async (t) => {
  const srv = await startServer(t);
  const a = await tg(srv, 'ua');
  const b = await tg(srv, 'ub');
  assert.equal(await cmd(b, 'unregister:ua'), 'not_registered:ua');
  assert.equal(await cmd(a, 'unregister:ua'), 'unregistered:ua');
  assert.equal(await cmd(a, 'unregister:ua'), 'not_registered:ua');
  assert.equal(await cmd(b, 'send:ua:x'), 'sent:false');
  const again = await tg(srv, 'ua');
  assert.equal(await cmd(b, 'send:ua:y'), 'sent:true');
  assert.equal(await text(again), 'ub:y');
  for (const ws of [a, b, again]) ws.close();
});
