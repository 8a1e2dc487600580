#!/usr/bin/env node
// wsclient.js: a real WebSocket client (Node's `ws` package) for the end-to-end tests, run
// against an echo server (one that sends every message back as it came: text as text, binary
// as binary).
//
//   node tests/node/wsclient.js ws://127.0.0.1:PORT/path [--deflate] [--count N] [--max-size B] [--seed S]
//
// It sends N messages (default 200), alternating text and binary, pipelined (a window of
// outstanding messages): sizes from 0 bytes to ~70 KiB so that frames use the 7-bit, 16-bit
// and 64-bit length forms, text with multi-byte UTF-8 ("héllo wörld ✓ 𝄞"), one binary message
// of --max-size bytes (default 1 MiB - 1), some messages in fragments (one with a ping
// between its fragments, text ones split inside a UTF-8 sequence, some with empty
// fragments), and two pings. Every echo must arrive in order, with the same type and bytes,
// and every ping must be answered by a pong with its payload. It then closes with 1000 "bye"
// and the close must report 1000.
//
// --deflate offers permessage-deflate (and requires the server to accept it); some messages
// are then sent uncompressed, to mix compressed and plain frames.
//
// On success it prints one JSON line, {"ok":true,"messages":N,"extensions":"..."}, and exits
// 0; on any failure it prints the reason to stderr and exits 1. It gives up after 30 s.
'use strict';

const crypto = require('crypto');
const WebSocket = require('ws');

const OVERALL_TIMEOUT_MS = 30000;
const WINDOW = 16; // messages sent but not yet echoed, at most
const TOTAL_BUDGET = 3.5 * 1024 * 1024; // bytes sent in all, at most (roughly)
const PHRASE = 'héllo wörld ✓ 𝄞 ';
// Sizes around the frame-length encodings: 7-bit (<=125), 16-bit (126..65535), 64-bit.
const BOUNDARY_SIZES = [0, 1, 2, 125, 126, 127, 128, 1000, 4096, 65535, 65536, 65537, 70 * 1024];

function usage(msg) {
  process.stderr.write(`wsclient: ${msg}\nusage: node wsclient.js ws://host:port/path [--deflate] [--count N] [--max-size B] [--seed S]\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { url: '', deflate: false, count: 200, maxSize: 1024 * 1024 - 1, seed: Date.now() >>> 0 };
  const num = (i) => {
    const v = Number(argv[i]);
    if (i >= argv.length || !Number.isInteger(v) || v < 0) usage(`${argv[i - 1]} needs a non-negative integer`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--deflate') o.deflate = true;
    else if (a === '--count') o.count = num(++i);
    else if (a === '--max-size') o.maxSize = num(++i);
    else if (a === '--seed') o.seed = num(++i) >>> 0;
    else if (a.startsWith('--')) usage(`unknown flag ${a}`);
    else if (!o.url) o.url = a;
    else usage(`unexpected argument ${a}`);
  }
  if (!/^wss?:\/\//.test(o.url)) usage('the first argument must be a ws:// URL');
  return o;
}

const opts = parseArgs(process.argv.slice(2));

let finished = false;
function fail(reason) {
  if (finished) return;
  finished = true;
  process.stderr.write(`wsclient: FAIL (seed ${opts.seed}): ${reason}\n`);
  process.exit(1);
}

const overall = setTimeout(() => {
  fail(`timed out after ${OVERALL_TIMEOUT_MS / 1000} s (sent ${sent}, echoed ${received}, pongs ${pongs.length}/${pings.length})`);
}, OVERALL_TIMEOUT_MS);

// mulberry32: a small seeded PRNG, so that a failing size sequence can be replayed (--seed).
let rngState = opts.seed;
function rand() {
  rngState = (rngState + 0x6d2b79f5) >>> 0;
  let t = rngState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const randInt = (n) => Math.floor(rand() * n); // 0..n-1

// text returns a UTF-8 buffer of exactly n bytes: PHRASE repeated, padded with ASCII.
function text(n) {
  const unit = Buffer.from(PHRASE, 'utf8');
  const buf = Buffer.alloc(n, 'a');
  let off = 0;
  while (off + unit.length <= n) {
    unit.copy(buf, off);
    off += unit.length;
  }
  return buf;
}

// cutPoints returns the fragment boundaries for a message of buf (a sorted list of offsets
// strictly inside or at the ends, so empty fragments happen). For text, the first cut falls
// inside a multi-byte UTF-8 sequence when there is one, to check the server validates
// UTF-8 across fragments rather than per frame.
function cutPoints(buf, isText) {
  const cuts = [];
  if (isText) {
    const mid = buf.length >> 1;
    let c = mid;
    while (c < buf.length && (buf[c] & 0xc0) !== 0x80) c++;
    cuts.push(c < buf.length ? c : mid);
  } else {
    cuts.push(randInt(buf.length + 1));
  }
  cuts.push(randInt(buf.length + 1));
  return cuts.sort((a, b) => a - b);
}

// The plan: each message's type, bytes, whether it is fragmented and compressed.
const plan = [];
{
  let total = 0;
  const bigAt = opts.count > 2 * BOUNDARY_SIZES.length ? 2 * BOUNDARY_SIZES.length + 1 : -1; // a binary slot
  for (let i = 0; i < opts.count; i++) {
    const isText = i % 2 === 0;
    let size;
    if (i < 2 * BOUNDARY_SIZES.length) size = BOUNDARY_SIZES[i >> 1];
    else if (i === bigAt) size = opts.maxSize;
    else if (rand() < 0.1) size = randInt(70 * 1024 + 1);
    else size = randInt(2049);
    size = Math.min(size, opts.maxSize);
    if (total + size > TOTAL_BUDGET) size = randInt(Math.min(257, opts.maxSize + 1));
    total += size;
    const buf = isText ? text(size) : crypto.randomBytes(size);
    plan.push({
      isText,
      buf,
      fragmented: i % 17 === 3 || i === 2 * BOUNDARY_SIZES.length - 2, // the latter: 70 KiB text
      compress: i % 4 !== 3,
    });
  }
}

const pings = []; // payloads of the pings sent, in order
const pongs = []; // payloads of the pongs received
let sent = 0;
let received = 0;
let pingedInFragments = false;
let pingedMidway = false;
let closing = false;

const ws = new WebSocket(opts.url, {
  perMessageDeflate: opts.deflate ? { threshold: 0 } : false,
  handshakeTimeout: 10000,
});

function ping(payload) {
  pings.push(Buffer.from(payload));
  ws.ping(payload);
}

function sendOne(i) {
  const m = plan[i];
  const base = { binary: !m.isText, compress: m.compress };
  if (!m.fragmented) {
    // Text goes as a string (ws encodes it); binary as a Buffer.
    ws.send(m.isText ? m.buf.toString('utf8') : m.buf, { ...base, fin: true });
    return;
  }
  const cuts = cutPoints(m.buf, m.isText);
  const bounds = [0, ...cuts, m.buf.length];
  for (let k = 0; k + 1 < bounds.length; k++) {
    const last = k + 2 === bounds.length;
    // Buffers with binary:false make text frames whose bytes need not be valid UTF-8 alone.
    ws.send(m.buf.subarray(bounds[k], bounds[k + 1]), { ...base, fin: last });
    if (k === 0 && !pingedInFragments) {
      pingedInFragments = true;
      ping('ping between fragments');
    }
  }
}

function pump() {
  while (sent < plan.length && sent - received < WINDOW) {
    sendOne(sent);
    sent++;
    if (!pingedMidway && sent >= plan.length / 2) {
      pingedMidway = true;
      ping('midway ✓');
    }
  }
  maybeClose();
}

function maybeClose() {
  if (closing || received < plan.length || pongs.length < pings.length) return;
  closing = true;
  ws.close(1000, 'bye');
}

function firstDiff(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

ws.on('unexpected-response', (req, res) => {
  fail(`the handshake got HTTP ${res.statusCode} ${res.statusMessage}`);
});

ws.on('error', (err) => fail(`error: ${err && err.message ? err.message : err}`));

ws.on('open', () => {
  if (opts.deflate && !ws.extensions.split(',').includes('permessage-deflate')) {
    fail(`the server did not accept permessage-deflate (extensions: ${JSON.stringify(ws.extensions)})`);
    return;
  }
  if (!opts.deflate && ws.extensions !== '') {
    fail(`extensions negotiated without being offered: ${JSON.stringify(ws.extensions)}`);
    return;
  }
  pump();
});

ws.on('message', (data, isBinary) => {
  if (finished) return;
  const i = received;
  if (i >= sent) {
    fail(`message ${i} arrived but only ${sent} were sent (${isBinary ? 'binary' : 'text'}, ${data.length} bytes)`);
    return;
  }
  const want = plan[i];
  const got = Buffer.isBuffer(data) ? data : Buffer.concat(Array.isArray(data) ? data : [Buffer.from(data)]);
  if (isBinary === want.isText) {
    fail(`message ${i}: sent ${want.isText ? 'text' : 'binary'}, echo is ${isBinary ? 'binary' : 'text'}`);
    return;
  }
  if (!got.equals(want.buf)) {
    fail(`message ${i} (${want.isText ? 'text' : 'binary'}${want.fragmented ? ', fragmented' : ''}): sent ${want.buf.length} bytes, echo has ${got.length}, first difference at byte ${firstDiff(got, want.buf)}`);
    return;
  }
  received++;
  pump();
});

ws.on('pong', (data) => {
  if (finished) return;
  const k = pongs.length;
  if (k >= pings.length) {
    fail(`unsolicited pong ${JSON.stringify(data.toString())}`);
    return;
  }
  if (!data.equals(pings[k])) {
    fail(`pong ${k} has payload ${JSON.stringify(data.toString())}, want ${JSON.stringify(pings[k].toString())}`);
    return;
  }
  pongs.push(data);
  maybeClose();
});

ws.on('close', (code, reason) => {
  if (finished) return;
  if (!closing) {
    fail(`the connection closed early (code ${code}, reason ${JSON.stringify(reason.toString())}) after ${received}/${plan.length} echoes, ${pongs.length}/${pings.length} pongs`);
    return;
  }
  if (code !== 1000) {
    fail(`closed with code ${code} (reason ${JSON.stringify(reason.toString())}), want 1000`);
    return;
  }
  finished = true;
  clearTimeout(overall);
  process.stdout.write(JSON.stringify({ ok: true, messages: received, pongs: pongs.length, extensions: ws.extensions, seed: opts.seed }) + '\n');
  process.exit(0);
});
