// Peer (a): the seed's design in Node + Express, made per-stream.
//
// The seed ran the model on POST and pushed each token through one shared
// express-sse channel that an EventSource GET had opened.  Here each POST gets
// its own stream object: the model starts at once and appends framed events to
// it; GET /api/streaming/:id replays what is buffered and then follows it.
// POST with "Accept: text/event-stream" streams in the reply (single request).
//
// Usage: node server.js PORT [HOST]
'use strict';

const crypto = require('crypto');
const express = require('express');

const app = express();
app.use(express.json());
const streams = new Map();
const PING_MS = 15000;

function frame(id, event, data) {
  return `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

// The fake model: `tokens` tokens "<i> ", `delayMs` apart, the first at once.
function startModel(stream, tokens, delayMs) {
  let i = 0;
  const step = () => {
    if (i < tokens) {
      push(stream, frame(i, 'newToken', { token: `${i} ` }));
      i += 1;
      // setTimeout(fn, 0) is clamped to 1 ms; setImmediate yields to I/O without it.
      stream.timer = delayMs > 0 ? setTimeout(step, delayMs) : setImmediate(step);
    } else {
      push(stream, frame(tokens, 'end', { finish_reason: 'stop', tokens }));
      stream.done = true;
      for (const res of stream.clients) res.end();
      stream.clients.clear();
      setTimeout(() => streams.delete(stream.id), 60000).unref();
    }
  };
  step();
}

function push(stream, chunk) {
  stream.events.push(chunk);
  for (const res of stream.clients) res.write(chunk);
}

function attach(stream, req, res) {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    'X-Accel-Buffering': 'no',
  });
  res.write('retry: 3000\n\n' + stream.events.join(''));
  if (stream.done) {
    res.end();
    return;
  }
  stream.clients.add(res);
  const ping = setInterval(() => res.write(': ping\n\n'), PING_MS);
  res.on('close', () => {
    clearInterval(ping);
    stream.clients.delete(res);
  });
}

app.post('/api/streaming', (req, res) => {
  const opts = (req.body && req.body.options) || {};
  const tokens = Number(opts.tokens ?? 10);
  const delayMs = Number(opts.delay_ms ?? 0);
  const id = crypto.randomUUID();
  const stream = { id, events: [], clients: new Set(), done: false, timer: null };
  streams.set(id, stream);
  startModel(stream, tokens, delayMs);
  if ((req.get('accept') || '').includes('text/event-stream')) {
    attach(stream, req, res);
  } else {
    res.status(202).json({ id, stream_url: `/api/streaming/${id}` });
  }
});

app.get('/api/streaming/:id', (req, res) => {
  const stream = streams.get(req.params.id);
  if (!stream) {
    res.status(404).json({ error: 'not found' });
    return;
  }
  attach(stream, req, res);
});

const port = Number(process.argv[2] || 3000);
const host = process.argv[3] || '127.0.0.1';
// Backlog 4096 like gunicorn/uvicorn's 2048+, so a connection burst is not cut by Node's 511.
const server = app.listen(port, host, 4096);
server.keepAliveTimeout = 5000;
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
