// Cluster correctness under faults (issue 9), with a real redis-server and npm
// `ws` clients through testgear. Every send's answer is matched against what
// every client socket received: delivered, sent:false, or lost although
// sent:true; duplicates; reorders; messages seen by someone else.
//
// Scenario 1 (no fault at all): clients on another node keep trying to take a
// name that is held; each is refused (4009). A claim that is not confirmed yet
// must never receive a message addressed to the name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openWs, SLOW } from './lib/orrery.mjs';
import { startCluster, tgUrl, tg, cmd, closeAll } from './lib/cluster.mjs';

/** Accounting of one sender's sends to one name, against what the holder got. */
function account(answers, got) {
  const delivered = new Set();
  let dups = 0;
  let reorders = 0;
  let last = -1;
  for (const seq of got) {
    if (delivered.has(seq)) dups++;
    delivered.add(seq);
    if (seq < last) reorders++;
    last = seq;
  }
  const acked = answers.filter((a) => a.answer === 'sent:true').map((a) => a.seq);
  return {
    sent: answers.length,
    acked: acked.length,
    refused: answers.filter((a) => a.answer === 'sent:false').length,
    lost: acked.filter((s) => !delivered.has(s)).length,
    dups,
    reorders,
  };
}

test('refused claimants on another node never see the holder\'s messages; none is lost', async (t) => {
  const { nodes: [n1, n2] } = await startCluster(t, 3);
  const holder = await tg(n1, 'r0');
  const sender = await tg(n2, 's0');
  const got = [];
  holder.on('message', (d) => {
    const m = /^s0:(\d+)$/.exec(d.toString());
    if (m) got.push(Number(m[1]));
  });

  // Claimants on the sender's node, one after another, until the sends end.
  let sending = true;
  let claims = 0;
  const stolen = [];
  const claimants = (async () => {
    while (sending) {
      const ws = await openWs(tgUrl(n2, 'r0'));
      claims++;
      for (;;) {
        const ev = await ws.next(5000 * SLOW);
        if (ev.type === 'close') {
          assert.equal(ev.code, 4009, `a claimant of r0 on ${n2.nodeId} is refused`);
          break;
        }
        stolen.push(ev.data.toString());
      }
    }
  })();

  const N = 1500;
  const answers = [];
  for (let seq = 0; seq < N; seq++) answers.push({ seq, answer: await cmd(sender, `send:r0:${seq}`) });
  sending = false;
  await claimants;
  // Whatever was acknowledged has had time to arrive.
  assert.equal(await cmd(sender, 'send:r0:end'), 'sent:true');
  await holder.events.next(5000, 'the end marker');

  const acc = account(answers, got);
  assert.ok(claims > 20, `${claims} claims`);
  assert.deepEqual({ stolen: stolen.length, lost: acc.lost, dups: acc.dups, reorders: acc.reorders, refused: acc.refused },
    { stolen: 0, lost: 0, dups: 0, reorders: 0, refused: 0 },
    `${JSON.stringify(acc)}; ${claims} claims; stolen ${stolen.slice(0, 5)}`);
  await closeAll([holder, sender]);
});
