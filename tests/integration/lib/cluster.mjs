// Test helper for the cluster (issue 4): a real redis-server on a unix socket in
// a temporary directory, and N Orrery nodes (lib/orrery.mjs' startServer) that
// share their registry through it.
//
//   const redis = await startRedis(t);                 // killed when `t` ends
//   const cl = await startCluster(t, 3, { api_token: 'x' }, { redis });
//   const alice = await tg(cl.nodes[0], 'alice');     // registered once this returns
//   await redis.stop(); ... await redis.start();       // same socket path, data lost
//
// Environment: REDIS_SERVER (default /usr/bin/redis-server).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import assert from 'node:assert/strict';
import { startServer, openWs, rawRequest, httpRequest, sleep, SLOW, TESTGEAR } from './orrery.mjs';

const REDIS_BIN = process.env.REDIS_SERVER || '/usr/bin/redis-server';

export const TG = `gear:${TESTGEAR}`;
export const TOKEN = 'cluster-t0ken';

// ---------------------------------------------------------------------------
// Redis

/**
 * One RESP command on a fresh connection to a unix socket; resolves to the
 * parsed reply (string, number, null, array, or an Error object for -ERR).
 * Rejects when the socket cannot be reached or does not answer in time.
 */
export function redisCommand(socket, args, timeoutMs = 2000) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ path: socket });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`redis ${args[0]}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (err, v) => {
      clearTimeout(timer);
      s.destroy();
      if (err) reject(err);
      else resolve(v);
    };
    s.on('error', (e) => done(e));
    s.on('connect', () => {
      const parts = [`*${args.length}\r\n`];
      for (const a of args) {
        const b = Buffer.from(String(a));
        parts.push(`$${b.length}\r\n`, b, '\r\n');
      }
      s.write(Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p)))));
    });
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const r = parseResp(buf, 0);
      if (r) done(null, r.value);
    });
    s.on('close', () => done(new Error(`redis ${args[0]}: connection closed without an answer`)));
  });
}

/** Parse one RESP2 value at `off`; { value, end } or null when incomplete. */
function parseResp(buf, off) {
  const le = buf.indexOf('\r\n', off);
  if (le < 0) return null;
  const type = String.fromCharCode(buf[off]);
  const line = buf.subarray(off + 1, le).toString();
  switch (type) {
    case '+': return { value: line, end: le + 2 };
    case '-': return { value: new Error(line), end: le + 2 };
    case ':': return { value: Number(line), end: le + 2 };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, end: le + 2 };
      if (buf.length < le + 2 + n + 2) return null;
      return { value: buf.subarray(le + 2, le + 2 + n).toString(), end: le + 2 + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, end: le + 2 };
      const out = [];
      let p = le + 2;
      for (let i = 0; i < n; i++) {
        const r = parseResp(buf, p);
        if (!r) return null;
        out.push(r.value);
        p = r.end;
      }
      return { value: out, end: p };
    }
    default: throw new Error(`bad RESP type ${JSON.stringify(type)}`);
  }
}

/** A redis-server process on a unix socket (no TCP port, no persistence). */
export class Redis {
  constructor(dir) {
    this.dir = dir;
    this.socket = path.join(dir, 'redis.sock');
    this.proc = null;
    this.log = ''; // stdout+stderr of every run, for failure messages
    this.exited = null;
  }

  /** Start redis-server and wait until it answers PING. */
  async start(timeoutMs = 5000) {
    if (this.proc) throw new Error('redis already running');
    const proc = spawn(REDIS_BIN, [
      '--port', '0',
      '--unixsocket', this.socket,
      '--unixsocketperm', '700',
      '--save', '',
      '--appendonly', 'no',
      '--dir', this.dir,
      '--daemonize', 'no',
      '--loglevel', 'notice',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    for (const s of [proc.stdout, proc.stderr]) {
      s.setEncoding('utf8');
      s.on('data', (d) => { this.log += d; });
    }
    this.exited = new Promise((resolve) => proc.on('exit', (code, signal) => {
      if (this.proc === proc) this.proc = null;
      resolve({ code, signal });
    }));
    const spawnErr = new Promise((_, reject) => proc.on('error', reject));
    const deadline = performance.now() + timeoutMs * SLOW;
    for (;;) {
      try {
        const pong = await Promise.race([redisCommand(this.socket, ['PING'], 500), spawnErr]);
        if (pong === 'PONG') return this;
      } catch (e) {
        if (e.code === 'ENOENT' && e.syscall === 'spawn') throw e;
      }
      if (!this.proc) throw new Error(`redis-server exited at start; its log:\n${this.log}`);
      if (performance.now() > deadline) throw new Error(`redis-server did not answer PING within ${timeoutMs} ms; log:\n${this.log}`);
      await sleep(20);
    }
  }

  /** Stop it (SIGTERM, no save) and wait for it to exit; the socket file goes away. */
  async stop() {
    const p = this.proc;
    if (!p) return;
    p.kill('SIGTERM');
    await this.exited;
  }

  /** SIGKILL it (the socket file stays; the next start replaces it). */
  async kill() {
    const p = this.proc;
    if (!p) return;
    p.kill('SIGKILL');
    await this.exited;
  }

  /** Stop then start on the same socket path: every key is gone. */
  async restart() {
    await this.stop();
    await this.start();
  }

  get running() {
    return this.proc !== null;
  }

  command(...args) {
    return redisCommand(this.socket, args);
  }

  /** Every key and its type, for failure messages. */
  async dump() {
    try {
      const keys = await this.command('KEYS', '*');
      return keys.sort().join(' ');
    } catch (e) {
      return `(redis not answering: ${e.message})`;
    }
  }

  async cleanup() {
    await this.kill();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Start a redis-server in a fresh temp dir; killed (and the dir removed) when `t` ends. */
export async function startRedis(t, { start = true } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orrery-redis-'));
  const r = new Redis(dir);
  if (t) t.after(() => r.cleanup());
  if (start) await r.start();
  return r;
}

// ---------------------------------------------------------------------------
// Nodes

/** GET /healthz: { status, text }. */
export async function healthz(srv) {
  const res = await rawRequest(srv.port, 'GET', '/healthz');
  return { status: res.status, text: res.text };
}

/** Poll until `cond()` is truthy (returns its value); fails with `what()` after timeoutMs. */
export async function until(cond, timeoutMs, what, stepMs = 25) {
  const deadline = performance.now() + timeoutMs * SLOW;
  let last;
  for (;;) {
    last = await cond();
    if (last) return last;
    if (performance.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs * SLOW} ms: ${typeof what === 'function' ? await what() : what}`);
    }
    await sleep(stepMs);
  }
}

/** Poll GET /healthz until its status is `status`; returns { status, text, ms } (ms: how long it took). */
export async function waitHealth(srv, status, timeoutMs = 5000) {
  const t0 = performance.now();
  let last = null;
  await until(async () => {
    try {
      last = await healthz(srv);
    } catch (e) {
      last = { status: `error ${e.message}`, text: '' };
    }
    return last.status === status;
  }, timeoutMs, () => `GET /healthz on ${srv.nodeId ?? srv.port} to be ${status}: last ${last?.status} ${JSON.stringify(last?.text)}; log tail:\n${tail(srv)}`);
  return { ...last, ms: performance.now() - t0 };
}

export function tail(srv, n = 30) {
  return srv.lines().slice(-n).join('\n');
}

/** The config of node `i` (0-based; node id n<i+1>). */
export function nodeConfig(redis, i, extra = {}) {
  const e = typeof extra === 'function' ? extra(i) : extra;
  const { cluster: clusterExtra, ...rest } = e || {};
  return {
    workers: 2,
    api_token: TOKEN,
    ...rest,
    cluster: {
      redis: `unix:${redis.socket}`,
      node_id: `n${i + 1}`,
      heartbeat_ms: 200,
      node_ttl_ms: 1000,
      ...clusterExtra,
    },
  };
}

/**
 * Start node `i` (0-based, node id n<i+1>) on `redis` with nodeConfig(redis, i, extra);
 * killed when `t` ends. Does not wait for /healthz.
 */
export async function startNode(t, redis, i, extra = {}) {
  const srv = await startServer(t, nodeConfig(redis, i, extra));
  srv.nodeId = `n${i + 1}`;
  return srv;
}

/**
 * Start `n` nodes sharing one Redis (a new one unless `opts.redis` is given);
 * `extra` (an object, or a function of the node index) is merged over each
 * node's config, its `cluster` key over the cluster defaults. Waits until each
 * node's /healthz is 200 unless opts.waitHealthy is false.
 * Returns { redis, nodes }.
 */
export async function startCluster(t, n = 3, extra = {}, { redis, waitHealthy = true } = {}) {
  redis ??= await startRedis(t);
  const nodes = await Promise.all(Array.from({ length: n }, (_, i) => startNode(t, redis, i, extra)));
  if (waitHealthy) await Promise.all(nodes.map((s) => waitHealth(s, 200, 10000)));
  return { redis, nodes };
}

// ---------------------------------------------------------------------------
// testgear clients

export function tgUrl(srv, name, tenant) {
  return srv.wsUrl(`/${TESTGEAR}/ws?name=${encodeURIComponent(name)}${tenant !== undefined ? `&tenant=${encodeURIComponent(tenant)}` : ''}`);
}

export async function text(ws, ms = 5000) {
  const m = await ws.nextMessage(ms);
  assert.equal(m.isBinary, false);
  return m.data.toString();
}

/** Send a command and return the text of the next message. */
export async function cmd(ws, line, ms = 5000) {
  ws.send(line);
  return text(ws, ms);
}

/** Send a command whose sender also receives a message: both texts, sorted. */
export async function cmd2(ws, line, ms = 5000) {
  ws.send(line);
  return [await text(ws, ms), await text(ws, ms)].sort();
}

const REG_PROBE = /:__reg([0-9a-z]+)$/;
let probeSeq = 0;

/**
 * Open a testgear client (its handshake done, its name's registration perhaps
 * still under way). Registration probes another connection sent (see
 * `registered`) are dropped from its queue and counted in ws.strayProbes.
 */
export async function openTg(srv, name, tenant) {
  const ws = await openWs(tgUrl(srv, name, tenant));
  ws.gearName = name;
  ws.node = srv.nodeId;
  ws.srv = srv;
  ws.pool = tenant !== undefined ? `tenant:${tenant}` : TG;
  ws.ownProbes = new Set();
  ws.strayProbes = [];
  const push = ws.events.push.bind(ws.events);
  ws.events.push = (ev) => {
    if (ev.type === 'message' && !ev.isBinary) {
      const m = REG_PROBE.exec(ev.data.toString());
      if (m && !ws.ownProbes.has(m[1])) {
        ws.strayProbes.push(ev.data.toString());
        return;
      }
    }
    push(ev);
  };
  return ws;
}

/**
 * Wait until the name of `ws` (opened with openTg) is registered: its own
 * connection sends to it and gets the message back (a name this node holds is
 * delivered locally). Returns true, or false when the connection was closed
 * instead (the close stays first in ws.events). A probe that reached another
 * holder is dropped there (openTg).
 */
export async function registered(ws, timeoutMs = 5000) {
  const name = ws.gearName;
  const deadline = performance.now() + timeoutMs * SLOW;
  for (;;) {
    const tok = `${process.pid.toString(36)}x${(probeSeq++).toString(36)}`;
    const probe = `${name}:__reg${tok}`;
    ws.ownProbes.add(tok);
    if (name.includes(':')) {
      // testgear's send:<to>:<text> cannot name it: push to it on its own node instead.
      const res = await push(ws.srv, ws.pool, 'unique', name, probe);
      if (res.status === 200) {
        const ev = await ws.events.next(timeoutMs, `${name}'s registration probe`);
        if (ev.type === 'close') {
          ws.events.items.unshift(ev);
          return false;
        }
        assert.equal(ev.type === 'message' && ev.data.toString(), probe, `${name}: the pushed probe`);
        return true;
      }
      assert.equal(res.status, 404, `push of ${name}'s registration probe: ${res.status} ${res.text}`);
      if (ws.events.items.length) {
        assert.equal(ws.events.items[0].type, 'close', `${name}: unexpected event while probing`);
        return false;
      }
      if (performance.now() > deadline) throw new Error(`${name} on ${ws.node}: still not registered after ${timeoutMs} ms`);
      await sleep(20);
      continue;
    }
    ws.send(`send:${name}:__reg${tok}`);
    let answered = null;
    let delivered = false;
    while (answered === null || (answered === 'sent:true' && !delivered)) {
      const ev = await ws.events.next(timeoutMs, `answer to ${name}'s registration probe`);
      if (ev.type === 'close') {
        ws.events.items.unshift(ev);
        return false;
      }
      assert.equal(ev.type, 'message', `${name}: ${ev.type} while probing the registration`);
      const a = ev.data.toString();
      if (a === probe) delivered = true;
      else if (a === 'sent:true' || a === 'sent:false') answered = a;
      else assert.fail(`${name}: unexpected ${JSON.stringify(a)} while probing the registration`);
    }
    if (delivered) return true;
    if (performance.now() > deadline) throw new Error(`${name} on ${ws.node}: still not registered after ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** Open a testgear client on `srv` and wait until its name is registered; fails if it is closed. */
export async function tg(srv, name, tenant) {
  const ws = await openTg(srv, name, tenant);
  if (!(await registered(ws))) {
    const c = await ws.nextClose();
    throw new Error(`${name} on ${srv.nodeId}: closed ${c.code} ${JSON.stringify(c.reason)} instead of registering`);
  }
  return ws;
}

/**
 * Open a testgear client and find out whether it gets its name:
 * { ws, held: true } or { ws, held: false, close: { code, reason } }.
 */
export async function tryName(srv, name, tenant) {
  const ws = await openTg(srv, name, tenant);
  if (await registered(ws)) return { ws, held: true };
  return { ws, held: false, close: await ws.nextClose() };
}

/** Next message text, skipping those matching `skip`. */
export async function textSkipping(ws, skip, ms = 5000) {
  for (;;) {
    const t = await text(ws, ms);
    if (!skip.test(t)) return t;
  }
}

/** Nothing (no message, no close) is queued on any of `socks` after `graceMs`. */
export async function expectQuiet(socks, graceMs = 200) {
  await sleep(graceMs * SLOW);
  for (const [i, ws] of socks.entries()) {
    assert.deepEqual(ws.events.items.map((e) => (e.type === 'message' ? e.data.toString().slice(0, 40) : `${e.type} ${e.code ?? ''}`)), [],
      `client #${i} (${ws.gearName}) received something extra`);
  }
}

export async function closeAll(socks) {
  for (const ws of socks) if (ws.readyState <= 1) ws.close();
  await Promise.all(socks.map((ws) => ws.closed));
}

// ---------------------------------------------------------------------------
// Push API

export function push(srv, pool, kind, name, body, { token = TOKEN } = {}) {
  return httpRequest(srv.port, 'POST', `/_orrery/pools/${pool}/${kind}/${encodeURIComponent(name)}/messages`, {
    headers: { Authorization: `Bearer ${token}` },
    body,
  });
}

// ---------------------------------------------------------------------------
// Metrics

/** Sum of one metric (all its series) over `nodes`; absent counts as 0, exited nodes are skipped. */
export async function metricSum(nodes, name) {
  let sum = 0;
  for (const s of nodes) {
    if (s.exit) continue;
    sum += (await metricTotal(s, name)) ?? 0;
  }
  return sum;
}

/** Every series of GET /metrics whose name starts with `prefix`, as an object (for messages). */
export async function metricsLike(srv, prefix = 'orrery_cluster') {
  const out = {};
  for (const [k, v] of await srv.metrics()) if (k.startsWith(prefix)) out[k] = v;
  return out;
}

/** Sum of every series of `name` on one node, whatever its labels (undefined when it has none). */
export async function metricTotal(srv, name) {
  let sum;
  for (const [k, v] of await srv.metrics()) {
    if (k === name || k.startsWith(`${name}{`)) sum = (sum ?? 0) + v;
  }
  return sum;
}
