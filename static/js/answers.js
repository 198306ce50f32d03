// One answer's life: POST, follow the stream, render it live, save it, end it honestly.
import { cfg, els } from './page.js';
import { live, store } from './session.js';
import { startAnswer } from './stream.js';
import { announce } from './ui.js';
import { statusNote } from './messages.js';
import { announcement, endOutcome, errorOutcome } from './outcomes.js';
import { currentModel, refreshAnswer, renderConversation, renderSidebar, updateComposer, updateStats } from './view.js';
import { scrollToBottom, stickToBottom } from './scroll.js';

/** The longest answer text read out in full by the live region. */
const ANNOUNCE_CHARS = 2000;

function history(conv) {
  return conv.messages
    // Failed or unfinished answers are not sent back to the model.
    .filter((msg) => (msg.role === 'user' || msg.role === 'assistant') && msg.content
      && msg.status !== 'streaming' && msg.status !== 'error')
    .map(({ role, content }) => ({ role, content }));
}

/** Ask for a new answer to the conversation as it is. */
export function generate(conv) {
  const messages = history(conv);
  const model = currentModel();
  conv.model = model;
  const msg = { role: 'assistant', content: '', status: 'streaming', model };
  conv.messages.push(msg);
  store.touch(conv);
  stickToBottom();
  follow(conv, msg, { messages, model });
}

/**
 * Stream into `msg` (the conversation's last message): a new answer when
 * `request` has `messages`, or one already running on the server when it has
 * `streamUrl` (after a reload; the server replays it from the start).
 */
function follow(conv, msg, request) {
  const resumed = Boolean(request.streamUrl);
  const answer = {
    conv, msg, index: conv.messages.indexOf(msg), resumed, saved: msg.content, li: null, renderer: null,
    tokens: 0, t0: performance.now(), tFirst: 0, tLast: 0, saveTimer: 0,
  };
  if (resumed) msg.content = '';
  delete msg.reconnecting;
  live.set(conv.id, answer);
  renderSidebar();
  if (store.activeId === conv.id) renderConversation();
  answer.handle = startAnswer({ apiUrl: cfg.apiUrl, ...request, ...streamCallbacks(answer) });
  answer.stop = () => {
    answer.handle.stop();
    finalize(answer, { status: 'stopped' });
  };
}

function streamCallbacks(answer) {
  const { conv, msg } = answer;
  return {
    onStart({ streamUrl }) {
      msg.streamUrl = streamUrl; // lets a reloaded page follow this answer again
      store.save(conv);
    },
    onToken(token) {
      const now = performance.now();
      if (!answer.tokens) answer.tFirst = now; // the typing dots go at the next render
      answer.tokens += 1;
      answer.tLast = now;
      msg.content += token;
      if (answer.renderer && store.activeId === conv.id) answer.renderer.set(msg.content);
      if (!answer.saveTimer) answer.saveTimer = setTimeout(() => { answer.saveTimer = 0; store.save(conv); }, 1000);
    },
    onEnd(info) {
      finalize(answer, endOutcome(info));
    },
    onError(err) {
      if (answer.resumed && !answer.tokens) { // the stream expired or is unknown: keep what we had
        finalize(answer, { status: 'interrupted', content: answer.saved });
        return;
      }
      if (err.serverEvent) { // the server ended the stream with an `error` event
        finalize(answer, errorOutcome(err.code, err.message));
        return;
      }
      let message = err.message;
      if (err.retryAfter) message += ` Try again in ${err.retryAfter} s.`;
      const error = { code: err.code, message };
      if (err.status === 401) error.loginUrl = `${cfg.loginUrl}?next=${encodeURIComponent(window.location.pathname)}`;
      finalize(answer, { status: 'error', error });
    },
    onReconnecting() {
      msg.reconnecting = true;
      setNote(answer, statusNote(msg));
      announce('Connection lost. Reconnecting…');
    },
    onReconnected() {
      delete msg.reconnecting;
      setNote(answer, null);
      announce('Reconnected.');
    },
  };
}

function setNote(answer, note) {
  if (!answer.li || !answer.li.isConnected) return;
  const body = answer.li.querySelector('.msg-body');
  body.querySelector(':scope > .msg-note')?.remove();
  if (note) body.append(note);
  scrollToBottom();
}

/** The answer ended (any way): save, draw its final state, say so once, put focus somewhere useful. */
function finalize(answer, fields) {
  const { conv, msg } = answer;
  clearTimeout(answer.saveTimer);
  live.delete(conv.id);
  msg.status = fields.status;
  delete msg.reconnecting;
  delete msg.streamUrl;
  Object.assign(msg, fields);
  if (answer.tokens && !answer.resumed) { // a replay's timing says nothing about the model
    const span = (answer.tLast - answer.tFirst) / 1000;
    msg.stats = {
      ttftMs: answer.tFirst - answer.t0,
      tokens: answer.tokens,
      tps: answer.tokens > 1 && span > 0 ? (answer.tokens - 1) / span : null,
    };
  }
  store.touch(conv);
  const stopHadFocus = document.activeElement === els.stop;
  if (answer.renderer && answer.li && answer.li.isConnected) answer.renderer.finish(msg.content);
  renderSidebar();
  refreshAnswer(conv, answer.index);
  if (store.activeId === conv.id) {
    updateComposer();
    updateStats();
    if (stopHadFocus || document.activeElement === document.body) focusAnswerAction(answer.index);
  }
  announce(spoken(answer));
}

/** Stop (now hidden) had focus, e.g. after Regenerate: move it to the finished answer's first action. */
function focusAnswerAction(index) {
  const li = els.messages.querySelector(`li[data-index="${index}"]`);
  const target = li && li.querySelector('.msg-actions button, .msg-note button, .msg-note a');
  (target || els.prompt).focus();
}

/** What the live region says: how it ended, then the answer itself (once, not token by token). */
function spoken(answer) {
  const { msg } = answer;
  const head = announcement(msg);
  if (msg.status !== 'done' && msg.status !== 'length') return head;
  const md = answer.li && answer.li.isConnected ? answer.li.querySelector('.md') : null;
  const text = (md ? md.textContent : msg.content).replace(/\s+/g, ' ').trim();
  if (!text) return head;
  const body = text.length > ANNOUNCE_CHARS ? `${text.slice(0, ANNOUNCE_CHARS)}… The rest is in the conversation.` : text;
  return `${head} ${body}`;
}

/** After a reload: follow again every answer that was still streaming. */
export function resumeAll() {
  for (const conv of store.conversations) {
    const msg = conv.messages[conv.messages.length - 1];
    if (!msg || msg.status !== 'streaming') continue;
    if (msg.streamUrl) follow(conv, msg, { streamUrl: msg.streamUrl });
    else { msg.status = 'interrupted'; store.save(conv); }
  }
}

export function send(text) {
  let conv = store.active();
  if (conv && live.has(conv.id)) return;
  if (!conv) conv = store.create(currentModel());
  conv.messages.push({ role: 'user', content: text });
  generate(conv);
}

export function stopActive() {
  const conv = store.active();
  const answer = conv && live.get(conv.id);
  if (answer) answer.stop();
}

/** Replace the last answer with a new one; focus goes to its Stop button. */
export function regenerate(conv) {
  if (live.has(conv.id)) return;
  const last = conv.messages[conv.messages.length - 1];
  if (last && last.role === 'assistant') conv.messages.pop();
  if (!conv.messages.length || conv.messages[conv.messages.length - 1].role !== 'user') return;
  generate(conv);
  if (!els.stop.hidden) els.stop.focus();
}
