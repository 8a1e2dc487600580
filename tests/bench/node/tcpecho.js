// The idiomatic Node.js TCP echo server, for tests/bench/tcpecho.sh: every
// connection piped into itself, one process, one event loop.
//
//   node tcpecho.js [PORT]     (default 7000; listens on 127.0.0.1)
const net = require('net');

const port = Number(process.argv[2] || process.env.PORT || 7000);

net.createServer((s) => {
  s.on('error', () => {}); // a client that resets must not take the process down
  s.pipe(s);
}).listen(port, '127.0.0.1', () => {
  console.log(`Server running at tcp://127.0.0.1:${port}/`);
});
