// Node.js server of the wasmloop streaming benchmark (tests/bench/stream.sh),
// with nothing but Node's own modules. On 127.0.0.1:$PORT (default 1337):
//
//   GET  /download?size=N  N bytes, byte i = i % 251, with Content-Length,
//                          written in 64 KiB pieces; when res.write() returns
//                          false the next piece waits for 'drain'
//   POST /upload           hashes the body as it arrives, answers
//                          "<count> <hex sha256>\n"
//   POST /count            counts the body as it arrives (no hashing: what
//                          stream.sh measures uploads with), answers
//                          "<count>\n"; PUT too
//
// Anything else is 404 (405 for the wrong method, 400 for a bad size).
'use strict';

const http = require('http');
const crypto = require('crypto');

const PIECE = 64 * 1024; // bytes per write
const PERIOD = 251; // byte i of a download is i % PERIOD

// Bytes 0..PIECE+PERIOD-1 of the download stream: the piece that starts at
// offset o is pattern.subarray(o % PERIOD, o % PERIOD + n), for any n <= PIECE.
// Never modified, so handing out views of it to res.write() is safe.
const pattern = Buffer.alloc(PIECE + PERIOD);
for (let i = 0; i < pattern.length; i++) pattern[i] = i % PERIOD;

function fail(res, status, msg) {
  res.writeHead(status, { 'Content-Type': 'text/plain' });
  res.end(msg + '\n');
}

function download(req, res, query) {
  if (req.method !== 'GET') return fail(res, 405, 'method not allowed');
  const raw = query.get('size');
  if (raw === null || !/^[0-9]+$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
    return fail(res, 400, 'size must be a non-negative integer');
  }
  const size = Number(raw);
  res.writeHead(200, {
    'Content-Type': 'application/octet-stream',
    'Content-Length': String(size),
  });
  let off = 0;
  let gone = false;
  res.on('close', () => { gone = true; });
  function pump() {
    while (!gone && off < size) {
      const n = Math.min(PIECE, size - off);
      const s = off % PERIOD;
      off += n;
      if (!res.write(pattern.subarray(s, s + n))) {
        res.once('drain', pump); // back-pressure: wait until the socket takes more
        return;
      }
    }
    if (!gone) res.end();
  }
  pump();
}

function upload(req, res) {
  if (req.method !== 'POST') return fail(res, 405, 'method not allowed');
  const sum = crypto.createHash('sha256');
  let count = 0;
  req.on('data', (chunk) => {
    sum.update(chunk);
    count += chunk.length;
  });
  req.on('end', () => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(count + ' ' + sum.digest('hex') + '\n');
  });
}

function count(req, res) {
  if (req.method !== 'POST' && req.method !== 'PUT') {
    req.resume();
    return fail(res, 405, 'method not allowed');
  }
  let n = 0;
  req.on('data', (chunk) => { n += chunk.length; });
  req.on('end', () => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(n + '\n');
  });
}

const port = Number(process.env.PORT) || 1337;
http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  switch (url.pathname) {
    case '/download': return download(req, res, url.searchParams);
    case '/upload': return upload(req, res);
    case '/count': return count(req, res);
    default:
      req.resume();
      return fail(res, 404, 'not found');
  }
}).listen(port, '127.0.0.1', () => {
  console.log('Server running at http://127.0.0.1:' + port + '/');
});
