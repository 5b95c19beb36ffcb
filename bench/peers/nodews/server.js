// Node.js peer of the GoChat benchmark: the `ws` library's broadcast pattern, with rooms
// (?room=<name>) so that it can run scenario b. Every text message is sent as-is to every
// open socket of the sender's room, the sender included (like the gorilla chat hub).
//
//   node server.js --port 9002
'use strict';
const http = require('http');
const { WebSocketServer, WebSocket } = require('ws');

const portArg = process.argv.indexOf('--port');
const port = portArg > 0 ? Number(process.argv[portArg + 1]) : 9002;
const rooms = new Map();

const server = http.createServer((req, res) => {
  res.writeHead(req.url === '/healthz' ? 200 : 404);
  res.end(req.url === '/healthz' ? 'ok' : '');
});
const wss = new WebSocketServer({ server, path: '/ws', perMessageDeflate: false, clientTracking: false });

wss.on('connection', (ws, req) => {
  const room = new URL(req.url, 'http://x').searchParams.get('room') || '';
  let members = rooms.get(room);
  if (!members) {
    members = new Set();
    rooms.set(room, members);
  }
  members.add(ws);
  ws.on('message', (data, isBinary) => {
    for (const client of members) {
      if (client.readyState === WebSocket.OPEN) {
        client.send(data, { binary: isBinary });
      }
    }
  });
  ws.on('close', () => {
    members.delete(ws);
  });
  ws.on('error', () => {});
});

server.listen(port, '127.0.0.1');
