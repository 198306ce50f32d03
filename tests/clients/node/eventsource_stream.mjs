// Read one chatstream answer with the npm `eventsource` package, which
// reconnects by itself (with Last-Event-ID) after a dropped connection.
// Usage: node eventsource_stream.mjs <stream URL>
// Prints {"tokens": [...], "lastEventIds": [...], "finish": {...} | null} on one line:
// lastEventIds holds the Last-Event-ID each connection sent ("" for none).
import { EventSource } from 'eventsource';

const [url] = process.argv.slice(2);
const tokens = [];
const lastEventIds = [];
const source = new EventSource(url, {
  fetch: (input, init) => {
    lastEventIds.push(new Headers(init.headers).get('Last-Event-ID') || '');
    return fetch(input, init);
  },
});

function done(finish) {
  source.close();
  console.log(JSON.stringify({ tokens, lastEventIds, finish }));
  process.exit(finish ? 0 : 1);
}

source.addEventListener('newToken', (e) => tokens.push(JSON.parse(e.data).token));
source.addEventListener('end', (e) => done(JSON.parse(e.data)));
source.addEventListener('error', () => {
  // A connection error: the package reconnects by itself unless CLOSED.
  if (source.readyState === EventSource.CLOSED) done(null);
});
setTimeout(() => done(null), 30_000); // bounds a failing run
