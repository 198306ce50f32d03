// The single-request form with Node's fetch and `eventsource-parser`:
// POST with Accept: text/event-stream, and after a drop GET the response's
// Content-Location with Last-Event-ID (fetch has no reconnect of its own).
// Usage: node parser_fetch.mjs <base URL> <options JSON>
// Prints {"tokens": [...], "streamIds": [...], "connections": n, "finish": {...}}.
import { createParser } from 'eventsource-parser';

const [base, optionsJson] = process.argv.slice(2);
const tokens = [];
const streamIds = [];
let finish = null;
let lastId = '';
let url = new URL('/api/streaming', base).href;
let init = {
  method: 'POST',
  headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
  body: JSON.stringify({ prompt: 'x', options: JSON.parse(optionsJson) }),
};
let connections = 0;
setTimeout(() => process.exit(3), 30_000).unref(); // bounds a failing run

for (let attempt = 0; attempt < 5 && !finish; attempt++) {
  connections += 1;
  try {
    const res = await fetch(url, init);
    if (res.status === 204) break; // everything was delivered
    if (res.status !== 200) throw new Error(`status ${res.status}`);
    streamIds.push(res.headers.get('X-Stream-Id'));
    const resumeUrl = new URL(res.headers.get('Content-Location'), base).href;
    const parser = createParser({
      onEvent(event) {
        if (event.id) lastId = event.id;
        const data = JSON.parse(event.data);
        if (event.event === 'newToken') tokens.push(data.token);
        else if (event.event === 'end') finish = data;
      },
    });
    // The next attempt resumes the same stream by its URL (no new generation).
    url = resumeUrl;
    const decoder = new TextDecoder();
    for await (const chunk of res.body) parser.feed(decoder.decode(chunk, { stream: true }));
  } catch (err) {
    if (!String(err).includes('terminated') && !(err.cause && err.cause.code)) {
      console.error(err);
    }
  }
  init = { headers: { Accept: 'text/event-stream', 'Last-Event-ID': lastId } };
}
console.log(JSON.stringify({ tokens, streamIds, connections, finish }));
