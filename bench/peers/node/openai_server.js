// Upstream peer: Node + Express + the official `openai` npm package (6.x: Node 20).
//
// The same per-stream design and HTTP contract as server.js, the model being an
// OpenAI-compatible upstream (OPENAI_BASE_URL) read as the package's README
// shows: one `new OpenAI()` client, `chat.completions.create({stream: true})`
// and `for await (const chunk of stream)`. The POST's `model` passes through.
//
// Usage: OPENAI_BASE_URL=... OPENAI_API_KEY=... node openai_server.js PORT [HOST]
'use strict';

const crypto = require('crypto');
const express = require('express');
const { OpenAI } = require('openai');

const app = express();
app.use(express.json());
const client = new OpenAI();
const streams = new Map();
const PING_MS = 15000;

function frame(id, event, data) {
  return `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

async function runModel(stream, model, prompt) {
  let i = 0;
  let reason = 'stop';
  try {
    const upstream = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: prompt }],
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const chunk of upstream) {
      for (const choice of chunk.choices) {
        if (choice.delta && choice.delta.content) {
          push(stream, frame(i, 'newToken', { token: choice.delta.content }));
          i += 1;
        }
        if (choice.finish_reason) reason = choice.finish_reason;
      }
    }
    push(stream, frame(i, 'end', { finish_reason: reason }));
  } catch (err) {
    push(stream, frame(i, 'error', { code: 'upstream_error', message: String(err) }));
  }
  stream.done = true;
  for (const res of stream.clients) res.end();
  stream.clients.clear();
  setTimeout(() => streams.delete(stream.id), 60000).unref();
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
  const body = req.body || {};
  const model = String(body.model || 't10-d0');
  const prompt = String(body.prompt || '');
  const id = crypto.randomUUID();
  const stream = { id, events: [], clients: new Set(), done: false };
  streams.set(id, stream);
  runModel(stream, model, prompt);
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
const server = app.listen(port, host, 4096);
server.keepAliveTimeout = 5000;
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
