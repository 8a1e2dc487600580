// The idiomatic Node.js HTTP reverse proxy, for tests/bench/proxy.sh: every
// request forwarded to UPSTREAM with http.request through a keep-alive agent,
// the request body piped up and the answer piped back. One process, one event
// loop.
//
//   node proxy.js PORT UPSTREAM_PORT     (both on 127.0.0.1)
const http = require('http');

const port = Number(process.argv[2] || 1337);
const host = '127.0.0.1';
const upstreamPort = Number(process.argv[3] || 8080);
const keepAliveAgent = new http.Agent({ keepAlive: true });

http.createServer((req, res) => {
  const p = http.request({
    host, port: upstreamPort, path: req.url, method: req.method, headers: req.headers,
    agent: keepAliveAgent,
  }, (r) => {
    res.writeHead(r.statusCode, r.headers);
    r.pipe(res);
  });
  p.on('error', (err) => { // the upstream failed: 502, as a proxy answers
    if (!res.headersSent) res.writeHead(502, { 'Content-Type': 'text/plain' });
    res.end(`proxy: ${err.message}\n`);
  });
  req.pipe(p);
}).listen(port, host, () => {
  console.log(`Server running at http://${host}:${port}/`);
});
