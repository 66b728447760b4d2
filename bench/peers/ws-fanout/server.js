'use strict';
// Node "ws" group fan-out server used as a performance anchor: the part of
// Orrery's testgear protocol the fanout benchmark uses, written the way a ws
// user writes a broadcast (the loop of the ws README's broadcast example).
//
//   ws://HOST:PORT/testgear/ws?name=<name>   (a name is required, as testgear)
//   join:<g>           -> joined:<g>
//   leave:<g>          -> left:<g> (error:not_member if it was not one)
//   publish:<g>:<text> -> <text> as a text message to every member of <g>
//                         (the publisher too, if it is one), then published:<count>
//   echo:<t>           -> <t>
//   anything else      -> error:unknown_command; binary messages are echoed
//
// Usage: PORT=9004 node server.js
const { WebSocket, WebSocketServer } = require('ws');

const port = Number(process.env.PORT || 9004);
const host = process.env.HOST || '127.0.0.1';

const groups = new Map(); // group name -> Set of sockets

const wss = new WebSocketServer({
  host,
  port,
  path: '/testgear/ws', // compared without the query string
  perMessageDeflate: false, // ws default on the server, stated explicitly
  maxPayload: 100 * 1024 * 1024,
  verifyClient: ({ req }, done) => {
    const name = new URL(req.url, 'http://x').searchParams.get('name');
    if (name) done(true);
    else done(false, 400, "query parameter 'name' is required");
  },
});

function join(ws, g) {
  let members = groups.get(g);
  if (!members) groups.set(g, (members = new Set()));
  members.add(ws);
  ws.groups.add(g);
}

function leave(ws, g) {
  const members = groups.get(g);
  if (!members || !members.delete(ws)) return false;
  if (members.size === 0) groups.delete(g);
  ws.groups.delete(g);
  return true;
}

function publish(g, text) {
  const members = groups.get(g);
  let count = 0;
  if (!members) return 0;
  for (const member of members) {
    if (member.readyState === WebSocket.OPEN) {
      member.send(text);
      count++;
    }
  }
  return count;
}

wss.on('connection', (ws) => {
  ws.groups = new Set();
  ws.on('message', (data, isBinary) => {
    if (isBinary) return ws.send(data, { binary: true });
    const msg = data.toString();
    if (msg.startsWith('join:')) {
      const g = msg.slice(5);
      join(ws, g);
      ws.send('joined:' + g);
    } else if (msg.startsWith('publish:')) {
      const sep = msg.indexOf(':', 8);
      if (sep < 0) return ws.send('error:bad_publish');
      const count = publish(msg.slice(8, sep), msg.slice(sep + 1));
      ws.send('published:' + count);
    } else if (msg.startsWith('leave:')) {
      const g = msg.slice(6);
      ws.send(leave(ws, g) ? 'left:' + g : 'error:not_member');
    } else if (msg.startsWith('echo:')) {
      ws.send(msg.slice(5));
    } else {
      ws.send('error:unknown_command');
    }
  });
  ws.on('close', () => {
    for (const g of [...ws.groups]) leave(ws, g);
  });
  ws.on('error', () => {});
});

wss.on('listening', () =>
  console.log(`ws ${require('ws/package.json').version} fan-out listening on ${host}:${port}`),
);
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
