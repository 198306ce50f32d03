// The chat page: wires the conversation store, the stream client and the DOM.
import { ConversationStore } from './store.js';
import { startAnswer } from './stream.js';
import { FrameRenderer } from './markdown.js';
import { announce, autosize, copyText, flashButton } from './ui.js';
import { conversationItem, editForm, formatStats, lastIndex, messageEl, statusNote } from './messages.js';

const $ = (id) => document.getElementById(id);
const els = {
  app: $('app'), sidebar: $('sidebar'), scrim: $('scrim'), convList: $('conv-list'), convEmpty: $('conv-empty'),
  newChat: $('new-chat'), openSidebar: $('sidebar-open'), closeSidebar: $('sidebar-close'),
  title: $('chat-title'), modelSelect: $('model-select'), modelBadge: $('model-badge'),
  scroller: $('scroller'), empty: $('empty-state'), messages: $('messages'), jump: $('jump'),
  form: $('composer'), prompt: $('prompt'), send: $('send'), stop: $('stop'),
  statsModel: $('stats-model'), statsTiming: $('stats-timing'),
};
const cfg = {
  apiUrl: document.body.dataset.apiUrl || '/api/streaming',
  adapter: document.body.dataset.adapter || '',
  defaultModel: document.body.dataset.defaultModel || '',
  loginUrl: document.body.dataset.loginUrl || '/login',
};
const MODEL_KEY = 'chatstream.model';

const store = new ConversationStore();
/** convId -> live stream state; several conversations may stream at once. */
const live = new Map();
let stick = true; // follow the newest text unless the user scrolled up

// ---------------------------------------------------------------- models

function modelOptions() {
  return els.modelSelect ? [...els.modelSelect.options].map((o) => o.value) : [cfg.defaultModel];
}

function currentModel() {
  return els.modelSelect ? els.modelSelect.value : cfg.defaultModel;
}

function setModel(model) {
  if (els.modelSelect && model && modelOptions().includes(model)) els.modelSelect.value = model;
  updateStats();
}

// ---------------------------------------------------------------- sidebar

function renderSidebar() {
  const convs = store.list();
  const activeId = store.state.activeId;
  els.convList.replaceChildren(...convs.map((c) => conversationItem(c, c.id === activeId, live.has(c.id))));
  els.convEmpty.hidden = convs.length > 0;
}

function setSidebar(open) {
  els.app.classList.toggle('sidebar-shown', open);
  els.scrim.hidden = !open;
  els.openSidebar.setAttribute('aria-expanded', String(open));
  if (open) els.newChat.focus();
}

const isDrawer = () => window.matchMedia('(max-width: 820px)').matches;

// ---------------------------------------------------------------- messages

function renderConversation() {
  const conv = store.active();
  const msgs = conv ? conv.messages : [];
  els.empty.hidden = msgs.length > 0;
  els.title.textContent = conv ? conv.title : 'New chat';
  document.title = conv && conv.messages.length ? `${conv.title} · chatstream` : 'chatstream';
  const items = msgs.map((m, i) => messageEl(conv, m, i, live.has(conv.id)));
  els.messages.replaceChildren(...items);
  // Point a live stream of this conversation at its fresh element.
  const st = conv && live.get(conv.id);
  if (st) {
    const li = items[st.index];
    st.li = li;
    st.renderer = new FrameRenderer(li.querySelector('.md'), afterRender);
    if (st.msg.content) { st.renderer.set(st.msg.content); st.renderer.flush(); }
  }
  // Render the (possibly long) saved markdown now, not a frame later.
  for (const li of items) {
    if (li.classList.contains('msg-assistant') && !(st && li === st.li)) flushStatic(li, msgs[Number(li.dataset.index)]);
  }
  updateComposer();
  updateStats();
  scrollToBottom(true);
}

function flushStatic(li, msg) {
  if (!msg.content) return;
  const r = new FrameRenderer(li.querySelector('.md'));
  r.set(msg.content);
  r.flush();
}

/** Replace one message element in place (status or actions changed). */
function rerenderMessage(conv, index) {
  if (store.state.activeId !== conv.id) return;
  const old = els.messages.querySelector(`li[data-index="${index}"]`);
  if (!old) return renderConversation();
  const li = messageEl(conv, conv.messages[index], index, live.has(conv.id));
  old.replaceWith(li);
  if (li.classList.contains('msg-assistant')) flushStatic(li, conv.messages[index]);
  // The previous user message gains or loses its Edit button with streaming state.
  const u = lastIndex(conv, 'user');
  const uOld = els.messages.querySelector(`li[data-index="${u}"]`);
  if (u >= 0 && uOld) uOld.replaceWith(messageEl(conv, conv.messages[u], u, live.has(conv.id)));
  afterRender();
}

// ---------------------------------------------------------------- scrolling

function atBottom() {
  const s = els.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
}

function scrollToBottom(force = false) {
  if (force) stick = true;
  if (stick) els.scroller.scrollTop = els.scroller.scrollHeight;
  els.jump.hidden = stick || atBottom();
}

function afterRender() {
  scrollToBottom();
}

// ---------------------------------------------------------------- composer & status

function updateComposer() {
  const conv = store.active();
  const busy = Boolean(conv && live.has(conv.id));
  els.send.hidden = busy;
  els.stop.hidden = !busy;
  els.send.disabled = !els.prompt.value.trim();
  els.form.classList.toggle('is-busy', busy);
}

function updateStats() {
  const conv = store.active();
  const model = (conv && conv.model) || currentModel();
  els.statsModel.textContent = cfg.adapter && cfg.adapter !== model ? `${model} · ${cfg.adapter} adapter` : `model ${model}`;
  let text = '';
  if (conv && live.has(conv.id)) text = 'streaming…';
  else if (conv) {
    const last = [...conv.messages].reverse().find((m) => m.role === 'assistant' && m.stats);
    if (last) text = formatStats(last.stats);
  }
  els.statsTiming.textContent = text ? ` · ${text}` : '';
}

// ---------------------------------------------------------------- generation

function history(conv) {
  return conv.messages
    // Failed or unfinished answers are not sent back to the model.
    .filter((m) => (m.role === 'user' || m.role === 'assistant') && m.content && m.status !== 'streaming' && m.status !== 'error')
    .map(({ role, content }) => ({ role, content }));
}

function generate(conv) {
  const messages = history(conv);
  const model = currentModel();
  conv.model = model;
  const msg = { role: 'assistant', content: '', status: 'streaming', model };
  conv.messages.push(msg);
  store.touch(conv);
  follow(conv, msg, { messages, model });
}

/**
 * Stream into `msg` (the conversation's last message): a new answer when
 * `request` has `messages`, or an answer already running on the server when it
 * has `streamUrl` (after a reload; the server replays it from the start).
 */
function follow(conv, msg, request) {
  const index = conv.messages.indexOf(msg);
  const resumed = Boolean(request.streamUrl);
  const saved = msg.content; // kept if a resumed stream is gone
  if (resumed) msg.content = '';
  delete msg.reconnecting;
  const st = { conv, msg, index, li: null, renderer: null, tokens: 0, t0: performance.now(), tFirst: 0, tLast: 0, saveTimer: 0 };
  live.set(conv.id, st);
  renderSidebar();
  if (store.state.activeId === conv.id) renderConversation();

  const save = () => {
    if (!st.saveTimer) st.saveTimer = setTimeout(() => { st.saveTimer = 0; store.save(); }, 1000);
  };
  const finalize = (status, extra = {}) => {
    clearTimeout(st.saveTimer);
    if (st.renderer) st.renderer.cancel();
    live.delete(conv.id);
    msg.status = status;
    delete msg.reconnecting;
    delete msg.streamUrl;
    Object.assign(msg, extra);
    if (st.tokens && !resumed) { // a replay's timing says nothing about the model
      const span = (st.tLast - st.tFirst) / 1000;
      msg.stats = {
        ttftMs: st.tFirst - st.t0,
        tokens: st.tokens,
        tps: st.tokens > 1 && span > 0 ? (st.tokens - 1) / span : null,
      };
    }
    store.touch(conv);
    renderSidebar();
    rerenderMessage(conv, index);
    if (store.state.activeId === conv.id) { updateComposer(); updateStats(); }
  };

  st.handle = startAnswer({
    apiUrl: cfg.apiUrl,
    ...request,
    onStart({ streamUrl }) {
      msg.streamUrl = streamUrl; // lets a reloaded page follow this answer again
      store.save();
    },
    onToken(token) {
      const now = performance.now();
      if (!st.tokens) st.tFirst = now; // the typing dots go at the next render
      st.tokens += 1;
      st.tLast = now;
      msg.content += token;
      if (st.renderer && store.state.activeId === conv.id) st.renderer.set(msg.content);
      save();
    },
    onEnd(info) {
      const reason = info.finish_reason;
      finalize(reason === 'cancelled' ? 'stopped' : reason === 'length' ? 'length' : 'done', info.usage ? { usage: info.usage } : {});
      announce(reason === 'cancelled' ? 'Answer stopped.' : reason === 'length' ? 'Answer cut off at the length limit.' : 'Answer complete.');
    },
    onError(err) {
      if (resumed && !st.tokens) { // the stream expired or is unknown: keep what we had
        finalize('interrupted', { content: saved });
        return;
      }
      let message = err.message;
      if (err.retryAfter) message += ` Try again in ${err.retryAfter} s.`;
      const error = { code: err.code, message };
      if (err.status === 401) error.loginUrl = `${cfg.loginUrl}?next=${encodeURIComponent(window.location.pathname)}`;
      finalize('error', { error });
      announce(`Error: ${message}`);
    },
    onReconnecting() {
      msg.reconnecting = true;
      if (st.li) setNote(st, statusNote(msg));
      announce('Connection lost. Reconnecting…');
    },
    onReconnected() {
      delete msg.reconnecting;
      if (st.li) setNote(st, null);
      announce('Reconnected.');
    },
  });
  st.stop = () => {
    st.handle.stop();
    finalize('stopped');
    announce('Answer stopped.');
  };
}

/** After a reload: follow again every answer that was still streaming. */
function resumeAll() {
  for (const conv of store.state.conversations) {
    const msg = conv.messages[conv.messages.length - 1];
    if (!msg || msg.status !== 'streaming') continue;
    if (msg.streamUrl) follow(conv, msg, { streamUrl: msg.streamUrl });
    else { msg.status = 'interrupted'; store.save(); }
  }
}

function setNote(st, note) {
  if (!st.li || !st.li.isConnected) return;
  st.li.querySelector('.msg-note')?.remove();
  if (note) st.li.querySelector('.msg-body').append(note);
  afterRender();
}

function send(text) {
  let conv = store.active();
  if (conv && live.has(conv.id)) return;
  if (!conv) conv = store.create(currentModel());
  conv.messages.push({ role: 'user', content: text });
  stick = true;
  generate(conv);
}

function stopActive() {
  const conv = store.active();
  const st = conv && live.get(conv.id);
  if (st) st.stop();
}

function regenerate(conv) {
  if (live.has(conv.id)) return;
  const last = conv.messages[conv.messages.length - 1];
  if (last && last.role === 'assistant') conv.messages.pop();
  if (!conv.messages.length || conv.messages[conv.messages.length - 1].role !== 'user') return;
  stick = true;
  generate(conv);
}

function startEdit(conv, index) {
  const li = els.messages.querySelector(`li[data-index="${index}"]`);
  if (!li || live.has(conv.id)) return;
  const msg = conv.messages[index];
  const { form, ta, cancel, save } = editForm(msg.content);
  li.replaceChildren(form);
  li.classList.add('is-editing');
  autosize(ta);
  ta.addEventListener('input', () => { autosize(ta); save.disabled = !ta.value.trim(); });
  ta.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { e.preventDefault(); renderConversation(); els.prompt.focus(); }
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });
  cancel.addEventListener('click', () => { renderConversation(); els.prompt.focus(); });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = ta.value.trim();
    if (!text) return;
    conv.messages.splice(index); // drop this prompt and everything after it
    conv.messages.push({ role: 'user', content: text });
    stick = true;
    generate(conv);
    els.prompt.focus();
  });
  ta.focus();
  ta.setSelectionRange(ta.value.length, ta.value.length);
}

// ---------------------------------------------------------------- switching

function openConversation(id) {
  store.setActive(id);
  const conv = store.active();
  if (conv) setModel(conv.model);
  renderSidebar();
  renderConversation();
  if (isDrawer()) setSidebar(false);
  els.prompt.focus();
}

function newChat() {
  store.setActive(null);
  renderSidebar();
  renderConversation();
  if (isDrawer()) setSidebar(false);
  els.prompt.focus();
}

// ---------------------------------------------------------------- events

els.prompt.addEventListener('input', () => { autosize(els.prompt); updateComposer(); });
els.prompt.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    if (!els.send.hidden && !els.send.disabled) els.form.requestSubmit();
  } else if (e.key === 'Escape' && !els.stop.hidden) {
    e.preventDefault();
    stopActive();
  }
});
els.form.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = els.prompt.value.trim();
  const conv = store.active();
  if (!text || (conv && live.has(conv.id))) return;
  els.prompt.value = '';
  autosize(els.prompt);
  send(text);
  els.prompt.focus();
});
els.stop.addEventListener('click', () => { stopActive(); els.prompt.focus(); });

els.messages.addEventListener('click', async (e) => {
  const btn = e.target.closest('button[data-action]');
  const conv = store.active();
  if (!btn || !conv) return;
  const li = btn.closest('li.msg');
  const index = li ? Number(li.dataset.index) : -1;
  switch (btn.dataset.action) {
    case 'copy-code': {
      const code = btn.closest('.code-block').querySelector('pre code');
      flashButton(btn, await copyText(code.textContent));
      break;
    }
    case 'copy':
      flashButton(btn, await copyText(conv.messages[index].content));
      break;
    case 'regenerate':
    case 'retry':
      regenerate(conv);
      break;
    case 'edit':
      startEdit(conv, index);
      break;
    default:
  }
});

els.convList.addEventListener('click', (e) => {
  const btn = e.target.closest('button[data-action]');
  if (!btn) return;
  const id = btn.closest('li.conv').dataset.id;
  if (btn.dataset.action === 'open') openConversation(id);
  if (btn.dataset.action === 'delete') {
    const title = store.get(id)?.title || 'conversation';
    const st = live.get(id);
    if (st) { st.handle.stop(); live.delete(id); }
    const wasActive = store.state.activeId === id;
    store.remove(id);
    renderSidebar();
    if (wasActive) renderConversation();
    announce(`Deleted “${title}”.`);
    (els.convList.querySelector('.conv-open') || els.newChat).focus();
  }
});
els.newChat.addEventListener('click', newChat);
els.empty.addEventListener('click', (e) => {
  const btn = e.target.closest('button.suggestion');
  if (btn) send(btn.dataset.prompt);
});
els.openSidebar.addEventListener('click', () => setSidebar(true));
els.closeSidebar.addEventListener('click', () => { setSidebar(false); els.openSidebar.focus(); });
els.scrim.addEventListener('click', () => setSidebar(false));
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && els.app.classList.contains('sidebar-shown')) { setSidebar(false); els.openSidebar.focus(); }
});

els.scroller.addEventListener('scroll', () => {
  stick = atBottom();
  els.jump.hidden = stick;
}, { passive: true });
els.jump.addEventListener('click', () => {
  stick = true;
  els.scroller.scrollTop = els.scroller.scrollHeight;
  els.jump.hidden = true;
  els.prompt.focus();
});
new ResizeObserver(() => scrollToBottom()).observe(els.messages);

if (els.modelSelect) {
  const saved = localStorage.getItem(MODEL_KEY);
  if (saved && modelOptions().includes(saved)) els.modelSelect.value = saved;
  els.modelSelect.addEventListener('change', () => {
    localStorage.setItem(MODEL_KEY, els.modelSelect.value);
    updateStats();
  });
}

window.addEventListener('storage', (e) => { // another tab changed the saved conversations
  if (e.key && e.key.startsWith('chatstream.conversations') && live.size === 0) {
    store.state = store.load();
    renderSidebar();
    renderConversation();
  }
});

// ---------------------------------------------------------------- start

{
  const conv = store.active();
  if (conv) setModel(conv.model);
  renderSidebar();
  renderConversation();
  resumeAll();
  autosize(els.prompt);
  els.prompt.focus();
  document.body.classList.add('is-ready');
}
