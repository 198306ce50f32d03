// How an answer ended, in plain words: the note under it and what is announced.
//
// "Stopped" is only ever the user's own Stop (app-side: the page closes the
// stream itself, so a server `end` never arrives after it). Any `end` with
// `cancelled` that does arrive was decided elsewhere - the server gave up because
// no reader came back within its grace period, another tab or client cancelled
// it - and is shown as the server's end, with Regenerate. Error codes come from
// chatstream/errors.py and generation.py; unknown codes fall back to the server's
// message.

const SERVER_ENDS = {
  no_reader: 'The server gave up on this answer: this page was disconnected for too long.',
  client: 'This answer was stopped from another tab or client.',
  cancelled: 'The server ended this answer before it was finished.',
  generation_interrupted: 'The server was interrupted before the answer was finished.',
  server_shutdown: 'The server restarted before the answer was finished.',
  store_unavailable: 'The server lost its stream store before the answer was finished.',
  generation_timeout: 'The model took too long; the server cut the answer.',
};

/**
 * The message fields for an `end` event: `status` plus, for a server-side end,
 * an `error`-like note ({code, message}).
 * @param {{finish_reason?: string, reason?: string, code?: string, usage?: object}} info
 */
export function endOutcome(info) {
  const reason = info.finish_reason;
  const extra = info.usage ? { usage: info.usage } : {};
  if (reason === 'length') return { status: 'length', ...extra };
  if (reason === 'cancelled') {
    const code = info.reason || info.code || 'cancelled';
    return { status: 'ended', ended: { code, message: SERVER_ENDS[code] || SERVER_ENDS.cancelled }, ...extra };
  }
  return { status: 'done', ...extra };
}

/** The message fields for the server's `error` event. */
export function errorOutcome(code, message) {
  if (SERVER_ENDS[code]) return { status: 'ended', ended: { code, message: SERVER_ENDS[code] } };
  return { status: 'error', error: { code, message } };
}

/** The note under an answer that did not simply complete (null: no note). */
export function noteText(msg) {
  switch (msg.status) {
    case 'stopped': return 'Stopped';
    case 'length': return 'Cut off at the length limit';
    case 'interrupted': return 'Interrupted: this answer could not be resumed';
    case 'ended': return (msg.ended && msg.ended.message) || SERVER_ENDS.cancelled;
    default: return null;
  }
}

/** What the live region says when an answer ends (the answer's own text is added by the caller). */
export function announcement(msg) {
  switch (msg.status) {
    case 'done': return 'Answer complete.';
    case 'stopped': return 'Answer stopped.';
    case 'length': return 'Answer cut off at the length limit.';
    case 'ended': return `Answer ended by the server. ${noteText(msg)}`;
    case 'interrupted': return 'The answer could not be resumed.';
    case 'error': return `Error: ${(msg.error && msg.error.message) || 'Something went wrong.'}`;
    default: return '';
  }
}
