// TLS on the listener (`tls: {cert, key}`): a test CA and server certificates
// made here with the openssl CLI; wss:// from npm ws and Chromium, https for
// the push API and /metrics, the drain over TLS, SIGHUP with a new and with a
// broken pair, TLS 1.2/1.3 only and ALPN http/1.1, garbage before and during
// the handshake, the handshake timeout, and the start-up errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import {
  startServer, openWs, launchChromium, sleep, SLOW, SHUTDOWN_REASON, TESTGEAR,
} from './lib/orrery.mjs';

const TOKEN = 'tls-test-token';
let dir;
let ca;

function openssl(...args) {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A key and a certificate for localhost/127.0.0.1 signed by the test CA: {cert, key} paths. */
function makeLeaf(name, cn) {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.pem`);
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(ext, 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${cn}`,
    '-keyout', key, '-out', csr);
  openssl('x509', '-req', '-in', csr, '-CA', path.join(dir, 'ca.pem'), '-CAkey', path.join(dir, 'ca.key'),
    '-set_serial', String(1000 + Math.floor(Math.random() * 1e6)), '-days', '2', '-extfile', ext, '-out', cert);
  return { cert, key };
}

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orrery-tls-'));
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=Orrery Test CA', '-keyout', path.join(dir, 'ca.key'), '-out', path.join(dir, 'ca.pem'));
  ca = fs.readFileSync(path.join(dir, 'ca.pem'));
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A server on TLS with a fresh pair (copied to files of its own, which SIGHUP tests overwrite). */
async function startTls(t, config = {}, cn = 'orrery-a') {
  const leaf = makeLeaf(`${cn}-${crypto.randomBytes(4).toString('hex')}`, cn);
  const srv = await startServer(t, { tls: { cert: leaf.cert, key: leaf.key }, ...config });
  srv.leaf = leaf;
  srv.wssUrl = (p) => `wss://localhost:${srv.port}${p}`;
  return srv;
}

/** A TLS handshake with the server: {subject CN, serial, protocol, alpn}, or {error}. */
function probe(port, opts = {}) {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, ...opts }, () => {
      const c = s.getPeerCertificate();
      resolve({ cn: c.subject.CN, serial: c.serialNumber, protocol: s.getProtocol(), alpn: s.alpnProtocol });
      s.destroy();
    });
    s.on('error', (e) => resolve({ error: e.code || e.message }));
  });
}

function httpsRequest(port, method, p, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const h = body === undefined ? headers : { 'Content-Length': Buffer.byteLength(body), ...headers };
    const req = https.request({ host: '127.0.0.1', port, method, path: p, servername: 'localhost', ca, headers: h }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** A raw TCP connection: resolves {closedAfterMs, data} when the server closes it. */
function rawTcp(port, send) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const chunks = [];
    const s = net.connect({ port, host: '127.0.0.1' }, () => send(s));
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => {});
    s.on('close', () => resolve({ closedAfterMs: performance.now() - t0, data: Buffer.concat(chunks) }));
  });
}

/** The bytes of a real ClientHello (from node's TLS client, caught by a plain TCP server). */
async function clientHello() {
  const sink = net.createServer();
  await new Promise((r) => sink.listen(0, '127.0.0.1', r));
  const got = new Promise((resolve) => sink.on('connection', (s) => s.once('data', (d) => { resolve(d); s.destroy(); })));
  const c = tls.connect({ host: '127.0.0.1', port: sink.address().port, servername: 'localhost' });
  c.on('error', () => {});
  const hello = await got;
  c.destroy();
  sink.close();
  return hello;
}

function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

test('wss echo with npm ws (the test CA trusted), TLS 1.3 and 1.2, ALPN http/1.1', async (t) => {
  const srv = await startTls(t);
  const ws = await openWs(srv.wssUrl('/echo/ws'), { ca });
  ws.send('hello over tls');
  assert.equal((await ws.nextMessage()).data.toString(), 'hello over tls');
  const big = crypto.randomBytes(300000); // many records each way
  ws.send(big);
  assert.ok((await ws.nextMessage()).data.equals(big));
  ws.close(1000, 'bye');
  assert.equal((await ws.nextClose()).code, 1000);

  const v13 = await probe(srv.port, { ALPNProtocols: ['h2', 'http/1.1'] });
  assert.deepEqual([v13.protocol, v13.alpn, v13.cn], ['TLSv1.3', 'http/1.1', 'orrery-a']);
  const v12 = await probe(srv.port, { maxVersion: 'TLSv1.2' });
  assert.equal(v12.protocol, 'TLSv1.2');
  const ws12 = await openWs(srv.wssUrl('/echo/ws'), { ca, maxVersion: 'TLSv1.2' });
  ws12.send('twelve');
  assert.equal((await ws12.nextMessage()).data.toString(), 'twelve');
  ws12.close();
  // A client that offers ALPN without http/1.1 is refused (RFC 7301).
  assert.match((await probe(srv.port, { ALPNProtocols: ['h2'] })).error, /NO_APPLICATION_PROTOCOL/);
  await srv.waitForLog(/TLS handshake from 127\.0\.0\.1 failed: no application protocol: closed/);
});

test('backlogs over TLS: a 15 MiB echo to a client that reads, a slow consumer closed 1008 with its close frame readable', async (t) => {
  const cfg = { workers: 1, max_message_bytes: 20000000, max_outbound_bytes: 65536 };
  const big1 = await startTls(t, cfg);
  const ws = await openWs(big1.wssUrl('/echo/ws'), { ca, maxPayload: 0, perMessageDeflate: false });
  const big = crypto.randomBytes(15 << 20);
  ws.send(big);
  assert.ok((await ws.nextMessage(20000 * SLOW)).data.equals(big), 'the echo is the message');
  ws.send('after');
  assert.equal((await ws.nextMessage()).data.toString(), 'after');
  ws.close();

  // A client that stops reading while it sends: its echoes back up past
  // max_outbound_bytes (after the kernel's buffers, megabytes on loopback),
  // with OpenSSL holding a record it could not write; closed 1008 when more
  // output comes, or at the idle timeout.
  const srv = await startTls(t, { ...cfg, idle_timeout_ms: 3000 * SLOW });
  const slow = await openWs(srv.wssUrl('/echo/ws'), { ca, perMessageDeflate: false });
  slow._socket.pause();
  const chunk = crypto.randomBytes(7000);
  for (let i = 0; i < 2000; i++) slow.send(chunk);
  await srv.waitForLog(/warn .*slow consumer: \d+ bytes unsent \(max_outbound_bytes 65536\): closing 1008/, 10000);
  slow._socket.resume();
  let ev;
  let echoes = 0;
  while ((ev = await slow.next(10000)).type === 'message') {
    assert.ok(ev.data.equals(chunk), 'whole echoes only');
    echoes++;
  }
  assert.deepEqual([ev.type, ev.code, ev.reason], ['close', 1008, 'slow consumer']);
  assert.ok(echoes < 2000, `${echoes} echoes`);
  assert.ok(!/write: /.test(srv.stderr), srv.stderr);
});

test('a TLS 1.0/1.1-only client is refused with a log line', async (t) => {
  const srv = await startTls(t);
  const r = await probe(srv.port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
  assert.ok(r.error, JSON.stringify(r));
  await srv.waitForLog(/TLS handshake from 127\.0\.0\.1 failed: (unsupported protocol|.*version).*: closed/);
});

test('the push API and /metrics over https', async (t) => {
  const srv = await startTls(t, { api_token: TOKEN });
  const ws = await openWs(srv.wssUrl(`/${TESTGEAR}/ws?name=alice`), { ca });
  const res = await httpsRequest(srv.port, 'POST', '/_orrery/pools/gear:testgear/unique/alice/messages', {
    headers: { Authorization: `Bearer ${TOKEN}` }, body: 'pushed over https',
  });
  if (TESTGEAR === 'testgear') {
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(JSON.parse(res.text), { delivered: true });
    assert.equal((await ws.nextMessage()).data.toString(), 'pushed over https');
  }
  const m = await httpsRequest(srv.port, 'GET', '/metrics');
  assert.equal(m.status, 200);
  assert.match(m.text, /orrery_ws_connections\{pool="gear:testgear"\} 1/);
  const h = await httpsRequest(srv.port, 'GET', '/healthz');
  assert.deepEqual([h.status, h.text.trim()], [200, 'ok']);
  ws.close();
});

test('SIGTERM drains TLS connections with close 1001', async (t) => {
  const srv = await startTls(t, { drain_ms: 200 });
  const a = await openWs(srv.wssUrl('/echo/ws'), { ca });
  const b = await openWs(srv.wssUrl('/echo/ws'), { ca });
  srv.signal('SIGTERM');
  for (const ws of [a, b]) {
    const c = await ws.nextClose(5000);
    assert.deepEqual([c.code, c.reason], [1001, SHUTDOWN_REASON]);
  }
  const e = await srv.waitExit(10000 * SLOW);
  assert.equal(e.code, 0);
});

test('SIGHUP: a new pair serves new handshakes, open connections keep going; a broken one is logged and the old kept', async (t) => {
  const srv = await startTls(t, {}, 'orrery-a');
  const first = await probe(srv.port);
  assert.equal(first.cn, 'orrery-a');
  const ws = await openWs(srv.wssUrl('/echo/ws'), { ca });

  // New files in place of the old: the next handshakes see them.
  const b = makeLeaf(`b-${crypto.randomBytes(4).toString('hex')}`, 'orrery-b');
  fs.copyFileSync(b.cert, srv.leaf.cert);
  fs.copyFileSync(b.key, srv.leaf.key);
  srv.signal('SIGHUP');
  await srv.waitForLog(/SIGHUP: TLS certificate .* loaded/);
  const second = await probe(srv.port);
  assert.equal(second.cn, 'orrery-b');
  assert.notEqual(second.serial, first.serial);
  ws.send('still here');
  assert.equal((await ws.nextMessage()).data.toString(), 'still here');

  // A broken certificate: logged with its key's place, the pair in service kept.
  fs.writeFileSync(srv.leaf.cert, '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n');
  srv.signal('SIGHUP');
  await srv.waitForLog(/SIGHUP: .*orrery\.json:\d+:\d+: tls\.cert: .*keeping the certificate in service/);
  assert.equal((await probe(srv.port)).cn, 'orrery-b');

  // A key that is not the certificate's.
  fs.copyFileSync(b.cert, srv.leaf.cert);
  const other = makeLeaf(`c-${crypto.randomBytes(4).toString('hex')}`, 'orrery-c');
  fs.copyFileSync(other.key, srv.leaf.key);
  srv.signal('SIGHUP');
  await srv.waitForLog(/SIGHUP: .*orrery\.json:\d+:\d+: tls\.key: .*does not match the certificate/);
  const third = await probe(srv.port);
  assert.deepEqual([third.cn, third.serial], ['orrery-b', second.serial]);
  ws.send('and still');
  assert.equal((await ws.nextMessage()).data.toString(), 'and still');
  ws.close();
});

test('garbage before and during the handshake is closed with a log line; others are unaffected', async (t) => {
  const srv = await startTls(t, { handshake_timeout_ms: 600 });
  const ws = await openWs(srv.wssUrl('/echo/ws'), { ca, handshakeTimeout: 5000 });
  const rss0 = rssKiB(srv.proc.pid);

  // Random bytes.
  const r1 = await rawTcp(srv.port, (s) => s.write(crypto.randomBytes(4096)));
  assert.ok(r1.closedAfterMs < 500 * SLOW, `closed after ${r1.closedAfterMs} ms`);
  // An HTTP request on the TLS port.
  await rawTcp(srv.port, (s) => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  await srv.waitForLog(/TLS handshake from 127\.0\.0\.1 failed: http request: closed/);
  // A ClientHello, then garbage where the rest of the handshake should be.
  const hello = await clientHello();
  await rawTcp(srv.port, (s) => { s.write(hello); s.write(crypto.randomBytes(2000)); });
  // A ClientHello cut mid-way, then nothing: closed by handshake_timeout_ms.
  const cut = await rawTcp(srv.port, (s) => s.write(hello.subarray(0, Math.floor(hello.length / 2))));
  assert.ok(cut.closedAfterMs >= 550 && cut.closedAfterMs < 3000 * SLOW, `closed after ${cut.closedAfterMs} ms`);
  await srv.waitForLog(/TLS handshake from 127\.0\.0\.1 not done within handshake_timeout_ms: closed/);
  // Nothing at all: closed too.
  const silent = await rawTcp(srv.port, () => {});
  assert.ok(silent.closedAfterMs >= 550, `closed after ${silent.closedAfterMs} ms`);

  // Many at once, big garbage: bounded memory.
  await Promise.all(Array.from({ length: 200 }, (_, i) => rawTcp(srv.port, (s) => {
    s.write(i % 2 ? crypto.randomBytes(65536) : Buffer.concat([hello, crypto.randomBytes(65536)]));
  })));
  // (ASan keeps freed memory in quarantine: a looser bound there.)
  const grown = rssKiB(srv.proc.pid) - rss0;
  assert.ok(grown < (process.env.ORR_SANITIZED ? 160 : 32) * 1024, `RSS grew ${grown} KiB`);

  ws.send('unaffected');
  assert.equal((await ws.nextMessage()).data.toString(), 'unaffected');
  ws.close();
});

test('handshake_timeout_ms counts from the accept through the TLS handshake to the end of the head', async (t) => {
  const srv = await startTls(t, { handshake_timeout_ms: 800 });
  const t0 = performance.now();
  const s = tls.connect({ host: '127.0.0.1', port: srv.port, servername: 'localhost', ca });
  await new Promise((r) => s.once('secureConnect', r));
  // Half a head after 600 ms: 408 at 800 ms from the accept. Had its first
  // byte restarted the clock, it would come at 1400 ms at the earliest.
  await sleep(600);
  s.write('GET /healthz HTTP/1.1\r\n');
  let text = '';
  s.on('data', (d) => { text += d; });
  s.on('error', () => {});
  await new Promise((r) => s.once('close', r));
  const ms = performance.now() - t0;
  assert.match(text, /^HTTP\/1\.1 408 /);
  assert.ok(ms >= 750 && ms < 1350, `408 after ${ms} ms`);

  // Keep-alive over TLS: the second request's head has its own time.
  const ok = await httpsRequest(srv.port, 'GET', '/healthz');
  assert.equal(ok.status, 200);
});

test('start-up errors name the file, line and key', async () => {
  const run = (cfg) => new Promise((resolve) => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'orrery-tls-cfg-'));
    const p = path.join(d, 'orrery.json');
    fs.writeFileSync(p, JSON.stringify(cfg, null, 2));
    const proc = spawn(process.env.ORRERY_BIN, ['--config', p, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    proc.stderr.on('data', (x) => { err += x; });
    proc.on('exit', (code) => {
      fs.rmSync(d, { recursive: true, force: true });
      resolve({ code, err, file: p });
    });
  });
  const a = makeLeaf(`e-${crypto.randomBytes(4).toString('hex')}`, 'orrery-e');
  const b = makeLeaf(`f-${crypto.randomBytes(4).toString('hex')}`, 'orrery-f');
  const missing = await run({ tls: { cert: path.join(dir, 'nope.pem'), key: a.key } });
  assert.notEqual(missing.code, 0);
  assert.match(missing.err, /orrery\.json:3:13: tls\.cert: cannot read .*nope\.pem: No such file or directory/);
  const noKey = await run({ tls: { cert: a.cert } });
  assert.match(noKey.err, /orrery\.json:2:\d+: tls: "key" is required/);
  const mismatch = await run({ tls: { cert: a.cert, key: b.key } });
  assert.notEqual(mismatch.code, 0);
  assert.match(mismatch.err, /orrery\.json:4:12: tls\.key: .* does not match the certificate of tls\.cert/);
  const notPem = await run({ tls: { cert: a.key, key: a.key } });
  assert.notEqual(notPem.code, 0);
  assert.match(notPem.err, /orrery\.json:3:13: tls\.cert: .*not a PEM certificate/);
  const badType = await run({ tls: 'yes' });
  assert.match(badType.err, /orrery\.json:2:10: tls: expected an object/);
});

test('Chromium: the page and wss:// echo, the test certificate trusted by its SPKI', async (t) => {
  const srv = await startTls(t);
  const spki = crypto.createHash('sha256')
    .update(new crypto.X509Certificate(fs.readFileSync(srv.leaf.cert)).publicKey.export({ type: 'spki', format: 'der' }))
    .digest('base64');
  const browser = await launchChromium(t, [`--ignore-certificate-errors-spki-list=${spki}`]);
  const page = await browser.newPage();
  await page.goto(`https://localhost:${srv.port}/`);
  assert.equal(await page.inputValue('#url'), `wss://localhost:${srv.port}/echo/ws`);
  const got = await page.evaluate(async (url) => new Promise((resolve) => {
    const ws = new WebSocket(url);
    const long = 'tls '.repeat(10000);
    let n = 0;
    ws.onopen = () => { ws.send('hi'); ws.send(long); };
    ws.onmessage = (e) => {
      n += 1;
      if (n === 1 && e.data !== 'hi') resolve(`first: ${e.data}`);
      if (n === 2) { resolve(`ok ${e.data === long} ${ws.extensions}`); ws.close(1000, 'bye'); }
    };
    ws.onerror = () => resolve('error');
  }), `wss://localhost:${srv.port}/echo/ws`);
  assert.equal(got, 'ok true permessage-deflate; server_no_context_takeover; client_no_context_takeover');
  await srv.waitForLog(/DISCONNECTED .*frames_received=2 frames_sent=2 reason=remote:1000/, 5000 * SLOW);
});
