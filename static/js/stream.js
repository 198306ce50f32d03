// Talks to the streaming API: POST the conversation, then follow the SSE stream.
//
//   POST {apiUrl} {messages, model?}  -> 202 {id, stream_url}
//   GET  stream_url (EventSource)     -> newToken* then end | error
//   DELETE stream_url                 -> cancel
//
// EventSource reconnects by itself after a dropped connection and sends
// Last-Event-ID, so the server resumes right after the last event we saw: text
// is neither repeated nor lost. The `error` listener sees two different things:
// the server's `error` event (a MessageEvent carrying JSON data) and the
// browser's own connection-trouble Event (no data).

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

// A page being left closes its EventSources, which fire `error`: that is not a
// failure of the answer (a reloaded page follows it again), so it is ignored.
let leaving = false;
window.addEventListener('beforeunload', () => {
  leaving = true;
  // Still here a moment later: the navigation did not happen (e.g. a download).
  setTimeout(() => { leaving = false; }, 2000);
});
window.addEventListener('pagehide', () => { leaving = true; });
window.addEventListener('pageshow', () => { leaving = false; });

/** Extra request fields for tests/debugging (e.g. demo `options`); unset in normal use. */
function extraBody() {
  const extra = window.chatstreamRequestExtra;
  return extra && typeof extra === 'object' ? extra : {};
}

async function postPrompt(apiUrl, messages, model) {
  const body = { messages, ...extraBody() };
  if (model) body.model = model;
  let res;
  try {
    res = await fetch(apiUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network', 'Could not reach the server. Check your connection and try again.');
  }
  let data = null;
  try { data = await res.json(); } catch { /* non-JSON error page */ }
  if (!res.ok) {
    const err = (data && data.error) || {};
    const retryAfter = Number(res.headers.get('Retry-After')) || null;
    throw new ApiError(res.status, err.code || `http_${res.status}`,
      err.message || `The server answered ${res.status} ${res.statusText}.`, retryAfter);
  }
  if (!data || !data.stream_url) throw new ApiError(res.status, 'bad_response', 'The server gave no stream URL.');
  return data;
}

/**
 * Start one answer, or follow one already started (pass `streamUrl`: the server
 * replays a stream from its start to a reader without Last-Event-ID).
 * Callbacks: onStart({id, streamUrl}), onToken(token), onEnd({finish_reason,
 * usage, reason?}), onError({code, message, status?, retryAfter?, serverEvent?}) - `serverEvent`:
 * the server's own `error` event -, onReconnecting(), onReconnected().
 * Returns a handle with stop() (close + DELETE). Event ids are the browser's
 * business (Last-Event-ID): the page never reads them, so any opaque string works.
 */
export function startAnswer({ apiUrl, messages, model, streamUrl: existing, ...callbacks }) {
  const state = { source: null, streamUrl: null, done: false, reconnecting: false };
  state.finish = () => {
    state.done = true;
    if (state.source) state.source.close();
  };
  const started = existing ? Promise.resolve({ id: null, stream_url: existing })
    : postPrompt(apiUrl, messages, model);
  started.then((data) => {
    if (state.done) { // stopped while the POST was in flight
      fetch(data.stream_url, { method: 'DELETE' }).catch(() => {});
      return;
    }
    state.streamUrl = new URL(data.stream_url, window.location.href).href;
    callbacks.onStart?.({ id: data.id, streamUrl: state.streamUrl });
    state.source = new EventSource(state.streamUrl);
    listen(state, callbacks);
  }, (err) => {
    if (state.done || leaving) return;
    state.finish();
    callbacks.onError?.({ code: err.code || 'error', message: err.message, status: err.status, retryAfter: err.retryAfter });
  });

  return {
    /** Stop generating: freeze what we have and ask the server to cancel. */
    stop() {
      if (state.done) return;
      state.finish();
      if (state.streamUrl) {
        fetch(state.streamUrl, { method: 'DELETE' }).catch(() => { /* best effort */ });
      }
    },
  };
}

function parseData(ev) {
  try { return JSON.parse(ev.data) || {}; } catch { return {}; }
}

/** Route the EventSource's events to the callbacks (see startAnswer). */
function listen(state, callbacks) {
  const { source } = state;
  const reconnecting = () => {
    if (!state.reconnecting) { state.reconnecting = true; callbacks.onReconnecting?.(); }
  };
  const recovered = () => {
    if (state.reconnecting) { state.reconnecting = false; callbacks.onReconnected?.(); }
  };
  source.addEventListener('open', recovered);
  source.addEventListener('newToken', (ev) => {
    if (state.done) return;
    recovered();
    const { token } = parseData(ev);
    if (typeof token === 'string') callbacks.onToken?.(token);
  });
  source.addEventListener('end', (ev) => {
    if (state.done) return;
    state.finish();
    callbacks.onEnd?.(parseData(ev));
  });
  source.addEventListener('error', (ev) => {
    if (state.done || leaving) return;
    if (typeof ev.data === 'string') { // the server's own `error` event
      const info = parseData(ev);
      if (info.reconnect === true) {
        // A server going down gracefully (SIGTERM) says so and closes the
        // stream; the event has no id, so EventSource keeps its
        // Last-Event-ID and reconnects by itself, resuming exactly.
        reconnecting();
        return;
      }
      state.finish();
      callbacks.onError?.({ code: info.code || 'error', message: info.message || 'The model failed to answer.', serverEvent: true });
      return;
    }
    if (source.readyState === EventSource.CONNECTING) { // the browser retries by itself
      reconnecting();
      return;
    }
    state.finish(); // CLOSED: the browser gave up (e.g. HTTP error status)
    callbacks.onError?.({ code: 'connection_lost', message: 'The connection to the server was lost.' });
  });
}
