// One-off measurement (not a test): server RSS per idle connection with and without deflate.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import WebSocket from 'ws';
const N = Number(process.env.N || 3000);
const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
async function run(deflate, port) {
  fs.writeFileSync('/tmp/rss.json', JSON.stringify({ workers: 1, ws_max_connections: 100000, idle_timeout_ms: 600000 }));
  const p = spawn('/work/main/build/orrery', ['--config', '/tmp/rss.json', '--listen', `127.0.0.1:${port}`], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  const socks = [];
  const open = async (n) => { for (let i = 0; i < n; i++) { const ws = new WebSocket(`ws://127.0.0.1:${port}/echo/ws`, { perMessageDeflate: deflate }); await new Promise((r, j) => { ws.on('open', r); ws.on('error', j); }); socks.push(ws); } };
  await open(100);
  await new Promise((r) => setTimeout(r, 500));
  const before = rss(p.pid);
  await open(N);
  await new Promise((r) => setTimeout(r, 1000));
  const after = rss(p.pid);
  const ext = socks[socks.length - 1].extensions;
  for (const s of socks) s.terminate();
  p.kill('SIGKILL');
  return { deflate, ext, perConnKiB: ((after - before) / N).toFixed(3) };
}
console.log(JSON.stringify(await run(false, 19851)));
console.log(JSON.stringify(await run(true, 19852)));
console.log(JSON.stringify(await run(false, 19853)));
console.log(JSON.stringify(await run(true, 19854)));
