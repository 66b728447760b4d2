// Test helper: start a real orrery process with a temporary config, wait for its
// port, talk to it (ws client, raw HTTP over net sockets) and collect its logs.
//
//   const srv = await startServer(t, { workers: 2 });   // killed when `t` ends
//   const ws = await openWs(srv.wsUrl('/echo/ws'));
//   ws.send('hi'); const m = await ws.nextMessage();
//   await srv.waitForLog(/DISCONNECTED .*reason=remote/);
//
// Environment: ORRERY_BIN (server binary, required), ORR_SANITIZED=1 under
// ASan+UBSan (timeouts are stretched by SLOW then), ORR_DEFLATE=off (every
// config written gets "deflate": "off" unless it sets deflate itself: the
// suites' [nodeflate] variants), ORR_TEE=FILE (every server's stderr is appended there
// as it comes: what a server said before a test gave up on it).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import crypto from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRequire } from 'node:module';

// NODE_PATH is not consulted by ESM `import`, so load ws through require.
const require = createRequire(import.meta.url);
export const WebSocket = require('ws');

// The test gear the testgear suites drive: testgear (C) by default, or
// luatestgear (the same commands in Lua) when ORR_TESTGEAR says so.
export const TESTGEAR = process.env.ORR_TESTGEAR || 'testgear';
export const SLOW = process.env.ORR_SANITIZED ? 3 : 1;
export { sleep };

/** True in the [nodeflate] variants: servers run with permessage-deflate off. */
export function deflateOff() {
  return process.env.ORR_DEFLATE === 'off';
}

/** A config as it is written: with "deflate": "off" under ORR_DEFLATE=off, unless it says. */
export function withDeflateEnv(cfg) {
  return deflateOff() && !('deflate' in cfg) ? { ...cfg, deflate: 'off' } : cfg;
}

const BIN = process.env.ORRERY_BIN;

const SANITIZER_REPORT = /ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer/;

export const SHUTDOWN_REASON = 'server shutting down; please reconnect';
export const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export function acceptFor(key) {
  return crypto.createHash('sha1').update(key + WS_GUID).digest('base64');
}

export function randomKey() {
  return crypto.randomBytes(16).toString('base64');
}

/** A running orrery process. */
export class Server {
  constructor(proc, cfgDir) {
    this.proc = proc;
    this.cfgDir = cfgDir;
    this.port = 0;
    this.stderr = '';
    this.stdout = '';
    this.exit = null; // { code, signal, at } once exited
    this.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        this.exit = { code, signal, at: performance.now() };
        // Said at once: a test that then waits on this server until CTest's timeout
        // would otherwise end without the reason.
        const report = SANITIZER_REPORT.exec(this.stderr);
        if (report) process.stderr.write(`orrery exited (${code ?? signal}) after a sanitizer report:\n${this.stderr.slice(Math.max(0, report.index - 200))}\n`);
        resolve(this.exit);
      });
    });
    this._waiters = [];
    proc.stderr.setEncoding('utf8');
    proc.stdout.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      if (process.env.ORR_TEE) fs.appendFileSync(process.env.ORR_TEE, d);
      this.stderr += d;
      this._wake();
    });
    proc.stdout.on('data', (d) => {
      this.stdout += d;
    });
  }

  _wake() {
    for (const w of [...this._waiters]) w();
  }

  /** Every complete log line so far. */
  lines() {
    const parts = this.stderr.split('\n');
    parts.pop();
    return parts;
  }

  /** Log lines parsed as { time, level, ctx, msg, line }. */
  entries() {
    return this.lines().map(parseLogLine).filter(Boolean);
  }

  /** Wait until `pred` (a RegExp, or a function of the line array) matches; returns the match. */
  async waitForLog(pred, timeoutMs = 5000, what = String(pred)) {
    const test = typeof pred === 'function'
      ? () => pred(this.lines())
      : () => this.lines().find((l) => pred.test(l));
    const deadline = performance.now() + timeoutMs * SLOW;
    for (;;) {
      const r = test();
      if (r) return r;
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new Error(`timed out waiting for log ${what}; log so far:\n${this.stderr}`);
      }
      await new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this._waiters = this._waiters.filter((w) => w !== done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(left, 100));
        this._waiters.push(done);
      });
    }
  }

  /** Wait until `n` lines match `re`; returns them. */
  async waitForLogCount(re, n, timeoutMs = 5000) {
    return this.waitForLog((lines) => {
      const m = lines.filter((l) => re.test(l));
      return m.length >= n ? m : null;
    }, timeoutMs, `${n} x ${re}`);
  }

  url(p = '/') {
    return `http://127.0.0.1:${this.port}${p}`;
  }

  /** The config file the server was started with (SIGHUP reads it again). */
  get configPath() {
    return path.join(this.cfgDir, 'orrery.json');
  }

  /** Replace the config file: an object is written as JSON, a string as is. */
  writeConfig(cfg) {
    fs.writeFileSync(this.configPath, typeof cfg === 'string' ? cfg : JSON.stringify(withDeflateEnv(cfg), null, 2));
  }

  /**
   * Optionally rewrite the config file, send SIGHUP and wait for the reload's
   * outcome. Returns { ok, line }: ok when "SIGHUP: reloaded" was logged, false
   * when "keeping the running config" was.
   */
  async reload(cfg, timeoutMs = 5000) {
    if (cfg !== undefined) this.writeConfig(cfg);
    const re = /SIGHUP: reloaded|keeping the running config/;
    const before = this.lines().filter((l) => re.test(l)).length;
    this.signal('SIGHUP');
    const hits = await this.waitForLogCount(re, before + 1, timeoutMs);
    const line = hits[before];
    return { ok: /SIGHUP: reloaded/.test(line), line };
  }

  /** GET /metrics, parsed: a Map from `name{labels}` (as printed) to a number. */
  async metrics() {
    const res = await rawRequest(this.port, 'GET', '/metrics');
    if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`);
    return parseMetrics(res.text);
  }

  /** One value of GET /metrics (undefined when absent). */
  async metric(name, labels) {
    return (await this.metrics()).get(metricKey(name, labels));
  }

  /**
   * Poll GET /metrics until `name{labels}` satisfies `want` (a number, or a
   * predicate of the value, which is undefined while the series is absent).
   * Returns the value.
   */
  async waitMetric(name, labels, want, timeoutMs = 5000) {
    const ok = typeof want === 'function' ? want : (v) => v === want;
    const deadline = performance.now() + timeoutMs * SLOW;
    let v;
    for (;;) {
      v = await this.metric(name, labels);
      if (ok(v)) return v;
      if (performance.now() > deadline) {
        throw new Error(`timed out waiting for ${metricKey(name, labels)} to be ${typeof want === 'function' ? want : want}: last value ${v}`);
      }
      await sleep(20);
    }
  }

  wsUrl(p) {
    return `ws://127.0.0.1:${this.port}${p}`;
  }

  signal(sig) {
    if (!this.exit) this.proc.kill(sig);
  }

  /** Wait for the process to exit; rejects after timeoutMs. */
  async waitExit(timeoutMs) {
    let timer;
    const t = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`server did not exit within ${timeoutMs} ms; log:\n${this.stderr}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, t]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Teardown: SIGKILL if still running, remove the temp dir; fail on a sanitizer report. */
  async kill() {
    if (!this.exit) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
    fs.rmSync(this.cfgDir, { recursive: true, force: true });
    const report = SANITIZER_REPORT.exec(this.stderr);
    if (report) {
      throw new Error(`sanitizer report in the server's stderr:\n${this.stderr.slice(Math.max(0, report.index - 200))}`);
    }
  }
}

/** `name{k="v",...}` as the server prints it (labels in the given order). */
export function metricKey(name, labels) {
  if (!labels || Object.keys(labels).length === 0) return name;
  return `${name}{${Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',')}}`;
}

/** Prometheus text format to a Map from `name{labels}` to a number (comments skipped). */
export function parseMetrics(text) {
  const m = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

/** Parse `<ISO time> <level> [<ctx>] <message>`. */
export function parseLogLine(line) {
  const m = /^(\S+) (\w+) \[([^\]]*)\] (.*)$/.exec(line);
  if (!m) return null;
  return { time: m[1], level: m[2], ctx: m[3], msg: m[4], line };
}

/**
 * Start orrery with `config` (merged over { workers: 2, log_level: 'info' }).
 * If `t` (a node:test context) is given the server is killed when the test ends.
 */
export async function startServer(t, config = {}, { args = [], bin = BIN } = {}) {
  if (!bin) throw new Error('ORRERY_BIN is not set');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orrery-it-'));
  const cfgPath = path.join(dir, 'orrery.json');
  const cfg = withDeflateEnv({ workers: 2, ...config });
  fs.writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
  const proc = spawn(bin, ['--config', cfgPath, '--listen', '127.0.0.1:0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const srv = new Server(proc, dir);
  if (t) t.after(() => srv.kill());
  const spawnErr = new Promise((_, reject) => proc.on('error', reject));
  const line = await Promise.race([
    srv.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 10000),
    spawnErr,
    srv.exited.then((e) => {
      throw new Error(`server exited early (${JSON.stringify(e)}); log:\n${srv.stderr}`);
    }),
  ]);
  srv.port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(line)[1]);
  if (!srv.port) throw new Error(`bad port in ${line}`);
  return srv;
}

/** An async queue with a timeout on `next`. */
export class Queue {
  constructor() {
    this.items = [];
    this.waiters = [];
  }
  push(x) {
    const w = this.waiters.shift();
    if (w) w(x);
    else this.items.push(x);
  }
  next(timeoutMs = 5000, what = 'event') {
    if (this.items.length) return Promise.resolve(this.items.shift());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== got);
        reject(new Error(`timed out after ${timeoutMs * SLOW} ms waiting for ${what}`));
      }, timeoutMs * SLOW);
      const got = (x) => {
        clearTimeout(timer);
        resolve(x);
      };
      this.waiters.push(got);
    });
  }
}

/**
 * Open a ws client. The returned socket has:
 *   events: Queue of {type:'message', data, isBinary} | {type:'pong', data} | {type:'close', code, reason, at}
 *   next(ms), nextMessage(ms), nextClose(ms) (skips nothing: the next event must be of that type),
 *   closed: Promise of {code, reason, at}
 */
/**
 * A connected client (its events queued, see attachQueue). onMessage, if
 * given, is attached before the handshake: a message that arrives in the
 * same read as the 101 is emitted before `await openWs(...)` returns, so a
 * listener attached after it would miss that one. protocols: the
 * subprotocols to offer.
 */
export async function openWs(url, opts = {}, onMessage = null, protocols = undefined) {
  const o = { handshakeTimeout: 5000 * SLOW, ...opts };
  const ws = protocols ? new WebSocket(url, protocols, o) : new WebSocket(url, o);
  attachQueue(ws);
  if (onMessage) ws.on('message', onMessage);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (req, res) => {
      reject(Object.assign(new Error(`unexpected response ${res.statusCode}`), { statusCode: res.statusCode }));
    });
  });
  return ws;
}

function attachQueue(ws) {
  const q = new Queue();
  ws.events = q;
  ws.errors = [];
  ws.on('message', (data, isBinary) => q.push({ type: 'message', data, isBinary }));
  ws.on('pong', (data) => q.push({ type: 'pong', data }));
  ws.on('error', (e) => ws.errors.push(e));
  ws.closed = new Promise((resolve) => {
    ws.on('close', (code, reason) => {
      const ev = { type: 'close', code, reason: reason.toString(), at: performance.now() };
      q.push(ev);
      resolve(ev);
    });
  });
  ws.next = (ms = 5000) => q.next(ms);
  ws.nextOf = async (type, ms = 5000) => {
    const ev = await q.next(ms, type);
    if (ev.type !== type) {
      throw new Error(`expected ${type}, got ${ev.type}: ${describe(ev)}`);
    }
    return ev;
  };
  ws.nextMessage = (ms) => ws.nextOf('message', ms);
  ws.nextClose = (ms) => ws.nextOf('close', ms);
}

function describe(ev) {
  if (ev.type === 'close') return `code=${ev.code} reason=${JSON.stringify(ev.reason)}`;
  if (ev.type === 'message') return `${ev.isBinary ? 'binary' : 'text'} ${ev.data.length} B ${ev.isBinary ? '' : JSON.stringify(ev.data.toString().slice(0, 80))}`;
  return `${ev.type} ${ev.data ? ev.data.length + ' B' : ''}`;
}

/**
 * Debian's Chromium, headless, driven by npm playwright-core (a fresh
 * temporary profile), closed when `t` ends. extraArgs: more command-line
 * flags (e.g. --ignore-certificate-errors-spki-list=... for a test cert).
 */
export async function launchChromium(t, extraArgs = []) {
  const { chromium } = require('playwright-core');
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ...extraArgs],
  });
  t.after(() => browser.close());
  return browser;
}

/** Wait for a promise with a timeout. */
export async function within(p, ms, what = 'operation') {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------
// Raw TCP / HTTP

/** A net socket with a byte buffer and awaitable reads. */
export class RawConn {
  static async open(port, host = '127.0.0.1') {
    const sock = net.connect({ port, host });
    const c = new RawConn(sock);
    await new Promise((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    return c;
  }

  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.ended = false;
    this.error = null;
    this.endedAt = null;
    this._wait = null;
    sock.setNoDelay(true);
    sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this._kick();
    });
    sock.on('end', () => {
      this.ended = true;
      this.endedAt ??= performance.now();
      this._kick();
    });
    sock.on('close', () => {
      this.ended = true;
      this.endedAt ??= performance.now();
      this._kick();
    });
    sock.on('error', (e) => {
      this.error = e;
      this.ended = true;
      this.endedAt ??= performance.now();
      this._kick();
    });
  }

  _kick() {
    const w = this._wait;
    this._wait = null;
    if (w) w();
  }

  write(data) {
    return new Promise((resolve) => {
      if (this.sock.destroyed) return resolve(false);
      this.sock.write(data, (err) => resolve(!err));
    });
  }

  /** Wait until `cond()` is true or the socket ends; false on timeout. */
  async waitUntil(cond, timeoutMs) {
    const deadline = performance.now() + timeoutMs;
    while (!cond()) {
      if (this.ended) return cond();
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await new Promise((resolve) => {
        const timer = setTimeout(() => {
          this._wait = null;
          resolve();
        }, left);
        this._wait = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return true;
  }

  /** Wait for the peer to close (EOF or reset). Returns true if it did within timeoutMs. */
  async waitEnd(timeoutMs) {
    return this.waitUntil(() => this.ended, timeoutMs);
  }

  /** Read one HTTP response (Content-Length or chunked body, or until close). */
  async readResponse(timeoutMs = 5000, { head = false } = {}) {
    const ms = timeoutMs * SLOW;
    const headEnd = () => this.buf.indexOf('\r\n\r\n');
    if (!(await this.waitUntil(() => headEnd() >= 0, ms))) {
      throw new Error(`no complete HTTP response head within ${ms} ms (got ${JSON.stringify(this.buf.toString('latin1'))}, ended=${this.ended})`);
    }
    const he = headEnd();
    const headText = this.buf.subarray(0, he).toString('latin1');
    this.buf = this.buf.subarray(he + 4);
    const [statusLine, ...hl] = headText.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
    if (!m) throw new Error(`bad status line ${JSON.stringify(statusLine)}`);
    const headers = {};
    const rawHeaders = [];
    for (const h of hl) {
      const i = h.indexOf(':');
      const k = h.slice(0, i).trim().toLowerCase();
      const v = h.slice(i + 1).trim();
      rawHeaders.push([k, v]);
      headers[k] = headers[k] !== undefined ? `${headers[k]}, ${v}` : v;
    }
    const status = Number(m[1]);
    let body = Buffer.alloc(0);
    const noBody = head || status === 101 || status === 204 || status === 304 || (status >= 100 && status < 200);
    if (!noBody) {
      if (headers['content-length'] !== undefined) {
        const n = Number(headers['content-length']);
        if (!(await this.waitUntil(() => this.buf.length >= n, ms))) {
          throw new Error(`body shorter than Content-Length ${n}`);
        }
        body = this.buf.subarray(0, n);
        this.buf = this.buf.subarray(n);
      } else if (/chunked/i.test(headers['transfer-encoding'] || '')) {
        const parts = [];
        for (;;) {
          if (!(await this.waitUntil(() => this.buf.indexOf('\r\n') >= 0, ms))) throw new Error('truncated chunk');
          const le = this.buf.indexOf('\r\n');
          const size = parseInt(this.buf.subarray(0, le).toString('latin1'), 16);
          if (!(await this.waitUntil(() => this.buf.length >= le + 2 + size + 2, ms))) throw new Error('truncated chunk');
          parts.push(this.buf.subarray(le + 2, le + 2 + size));
          this.buf = this.buf.subarray(le + 2 + size + 2);
          if (size === 0) break;
        }
        body = Buffer.concat(parts);
      } else {
        await this.waitEnd(ms);
        body = this.buf;
        this.buf = Buffer.alloc(0);
      }
    }
    return { status, reason: m[2] || '', headers, rawHeaders, body, text: body.toString('utf8') };
  }

  destroy() {
    this.sock.destroy();
  }
}

/** Build an HTTP/1.1 request head. `headers` is an array of [name, value] or an object. */
export function buildRequest(method, target, headers) {
  const list = Array.isArray(headers) ? headers : Object.entries(headers);
  return `${method} ${target} HTTP/1.1\r\n${list.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}

/** One request on a fresh connection; returns the response (and closes the socket). */
export async function rawRequest(port, method, target, headers = {}, { timeoutMs = 5000 } = {}) {
  const c = await RawConn.open(port);
  try {
    const hs = Array.isArray(headers) ? headers : Object.entries(headers);
    const hasHost = hs.some(([k]) => k.toLowerCase() === 'host');
    const all = hasHost ? hs : [['Host', `127.0.0.1:${port}`], ...hs];
    await c.write(buildRequest(method, target, all));
    return await c.readResponse(timeoutMs);
  } finally {
    c.destroy();
  }
}

/**
 * One request with a body (Buffer or string; Content-Length set unless given
 * in `headers`) on a fresh connection; returns the response and closes the socket.
 */
export async function httpRequest(port, method, target, { headers = {}, body = '', timeoutMs = 5000 } = {}) {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const hs = Array.isArray(headers) ? headers : Object.entries(headers);
  const all = [['Host', `127.0.0.1:${port}`], ...hs];
  if (!hs.some(([k]) => k.toLowerCase() === 'content-length')) all.push(['Content-Length', String(b.length)]);
  const c = await RawConn.open(port);
  try {
    await c.write(Buffer.concat([Buffer.from(buildRequest(method, target, all), 'latin1'), b]));
    return await c.readResponse(timeoutMs);
  } finally {
    c.destroy();
  }
}

/**
 * Headers of a well-formed websocket upgrade as [name, value] pairs, with
 * overrides (case-insensitive names; a null value removes the header).
 */
export function upgradeHeaders(port, overrides = {}) {
  const h = new Map();
  const base = {
    Host: `127.0.0.1:${port}`,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': randomKey(),
    'Sec-WebSocket-Version': '13',
  };
  for (const [k, v] of Object.entries(base)) h.set(k.toLowerCase(), [k, v]);
  for (const [k, v] of Object.entries(overrides)) {
    if (v === null) h.delete(k.toLowerCase());
    else h.set(k.toLowerCase(), [k, v]);
  }
  return [...h.values()];
}

// ---------------------------------------------------------------------------
// Minimal RFC 6455 frame codec for raw-socket tests.

export function encodeFrame(opcode, payload = Buffer.alloc(0), { fin = true, rsv = 0, mask = true } = {}) {
  payload = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const len = payload.length;
  let hdr;
  if (len < 126) {
    hdr = Buffer.alloc(2);
    hdr[1] = len;
  } else if (len < 65536) {
    hdr = Buffer.alloc(4);
    hdr[1] = 126;
    hdr.writeUInt16BE(len, 2);
  } else {
    hdr = Buffer.alloc(10);
    hdr[1] = 127;
    hdr.writeBigUInt64BE(BigInt(len), 2);
  }
  hdr[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0xf);
  if (!mask) return Buffer.concat([hdr, payload]);
  hdr[1] |= 0x80;
  const key = crypto.randomBytes(4);
  const masked = Buffer.alloc(len);
  for (let i = 0; i < len; i++) masked[i] = payload[i] ^ key[i & 3];
  return Buffer.concat([hdr, key, masked]);
}

/** Parse one server frame from `buf`; returns { frame, rest } or null if incomplete. */
export function decodeFrame(buf) {
  if (buf.length < 2) return null;
  const b0 = buf[0];
  const b1 = buf[1];
  let len = b1 & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    off = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    len = Number(buf.readBigUInt64BE(2));
    off = 10;
  }
  const masked = (b1 & 0x80) !== 0;
  if (masked) off += 4;
  if (buf.length < off + len) return null;
  const payload = Buffer.from(buf.subarray(off, off + len));
  if (masked) {
    const key = buf.subarray(off - 4, off);
    for (let i = 0; i < len; i++) payload[i] ^= key[i & 3];
  }
  return {
    frame: { fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0xf, masked, payload },
    rest: buf.subarray(off + len),
  };
}

/** Raw websocket over RawConn: handshake, then frames. */
export class RawWs {
  static async open(port, target = '/echo/ws', headers = {}) {
    const c = await RawConn.open(port);
    const key = randomKey();
    await c.write(buildRequest('GET', target, upgradeHeaders(port, { 'Sec-WebSocket-Key': key, ...headers })));
    const res = await c.readResponse(5000, { head: true });
    if (res.status !== 101) {
      c.destroy();
      throw Object.assign(new Error(`handshake got ${res.status}`), { res });
    }
    const ws = new RawWs(c);
    ws.response = res;
    ws.key = key;
    return ws;
  }

  constructor(conn) {
    this.conn = conn;
  }

  send(opcode, payload, opts) {
    return this.conn.write(encodeFrame(opcode, payload, opts));
  }

  async readFrame(timeoutMs = 5000) {
    let r = null;
    const ok = await this.conn.waitUntil(() => (r = decodeFrame(this.conn.buf)) !== null, timeoutMs * SLOW);
    if (!ok) throw new Error(`no frame within ${timeoutMs * SLOW} ms (ended=${this.conn.ended})`);
    this.conn.buf = r.rest;
    return r.frame;
  }

  destroy() {
    this.conn.destroy();
  }
}

/** Close code/reason of a close frame payload. */
export function parseClose(payload) {
  if (payload.length < 2) return { code: null, reason: '' };
  return { code: payload.readUInt16BE(0), reason: payload.subarray(2).toString('utf8') };
}

/**
 * lost / duplicated / reordered of the sequence numbers `got` (in arrival
 * order) against `want`: a number, meaning 1..want, or the list expected.
 */
export function auditSeqs(got, want) {
  const seen = new Set();
  let dup = 0, reordered = 0, last = 0;
  for (const k of got) {
    if (seen.has(k)) dup++;
    seen.add(k);
    if (k < last) reordered++;
    last = Math.max(last, k);
  }
  const all = typeof want === 'number' ? Array.from({ length: want }, (_, i) => i + 1) : want;
  let lost = 0;
  for (const k of all) if (!seen.has(k)) lost++;
  return { lost, dup, reordered };
}
