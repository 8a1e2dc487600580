// Node.js server of the wasmloop WebSocket benchmark (tests/bench/ws.sh): the
// `ws` package (resolved from tests/node_modules: npm ci --prefix tests) on
// Node's own http server, on 127.0.0.1:$PORT (default 1337).
//
//   WebSocket, any path   every message is sent back as it came: text as
//                         text, binary as binary. No permessage-deflate.
//                         The 101 carries "X-Worker: 0" (one process, one
//                         event loop), like samples/wsecho names its worker.
//   anything else         200 text/plain, so a plain GET tells that the
//                         server is up
'use strict';

const http = require('http');
const { WebSocketServer } = require('ws');

const port = Number(process.env.PORT) || 1337;

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end('WebSocket echo server: connect with WebSocket\n');
});

const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('headers', (headers) => {
  headers.push('X-Worker: 0');
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    ws.send(data, { binary: isBinary });
  });
  ws.on('error', () => {}); // a client that goes away is not the server's problem
});

server.listen(port, '127.0.0.1', () => {
  console.log('Server running at http://127.0.0.1:' + port + '/');
});
