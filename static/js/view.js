// Drawing the state: the conversation list, the open conversation, the composer and the status line.
import { cfg, els } from './page.js';
import { live, store } from './session.js';
import { LiveMarkdown, renderComplete } from './live-markdown.js';
import { conversationItem, formatStats, lastIndex, messageEl, updateAnswerChrome } from './messages.js';
import { scrollToBottom } from './scroll.js';

export function renderSidebar() {
  const convs = store.list();
  els.convList.replaceChildren(...convs.map((conv) => conversationItem(conv, conv.id === store.activeId, live.has(conv.id))));
  els.convEmpty.hidden = convs.length > 0;
}

/** Draw the open conversation from scratch (switching, a new answer, a reload). */
export function renderConversation() {
  const conv = store.active();
  const msgs = conv ? conv.messages : [];
  els.empty.hidden = msgs.length > 0;
  els.title.textContent = conv ? conv.title : 'New chat';
  document.title = conv && msgs.length ? `${conv.title} · chatstream` : 'chatstream';
  const streaming = conv && live.get(conv.id);
  const items = msgs.map((msg, index) => messageEl(conv, msg, index, Boolean(streaming)));
  els.messages.replaceChildren(...items);
  items.forEach((li, index) => {
    const msg = msgs[index];
    if (msg.role !== 'assistant') return;
    if (streaming && index === streaming.index) attachRenderer(streaming, li);
    else if (msg.content) renderComplete(li.querySelector('.md'), msg.content);
  });
  updateComposer();
  updateStats();
  scrollToBottom(true);
}

/** Point a live answer at its (fresh) element. */
function attachRenderer(answer, li) {
  answer.li = li;
  answer.renderer = new LiveMarkdown(li.querySelector('.md'), () => scrollToBottom());
  if (answer.msg.content) {
    answer.renderer.set(answer.msg.content);
    answer.renderer.flush();
  }
}

export function messageItem(index) {
  return els.messages.querySelector(`li[data-index="${index}"]`);
}

/** An answer changed state: update it in place (its markdown and focus stay), and the prompt's Edit button. */
export function refreshAnswer(conv, index) {
  if (store.activeId !== conv.id) return;
  const li = messageItem(index);
  if (!li) { renderConversation(); return; }
  updateAnswerChrome(li, conv, conv.messages[index], index);
  const userIndex = lastIndex(conv, 'user');
  const userLi = messageItem(userIndex);
  if (userLi && !userLi.classList.contains('is-editing')) {
    userLi.replaceWith(messageEl(conv, conv.messages[userIndex], userIndex, live.has(conv.id)));
  }
  scrollToBottom();
}

export function updateComposer() {
  const conv = store.active();
  const busy = Boolean(conv && live.has(conv.id));
  els.send.hidden = busy;
  els.stop.hidden = !busy;
  els.send.disabled = !els.prompt.value.trim();
  els.form.classList.toggle('is-busy', busy);
}

export function updateStats() {
  const conv = store.active();
  const model = (conv && conv.model) || currentModel();
  els.statsModel.textContent = cfg.adapter && cfg.adapter !== model ? `${model} · ${cfg.adapter} adapter` : `model ${model}`;
  let text = '';
  if (conv && live.has(conv.id)) text = 'streaming…';
  else if (conv) {
    const last = [...conv.messages].reverse().find((msg) => msg.role === 'assistant' && msg.stats);
    if (last) text = formatStats(last.stats);
  }
  els.statsTiming.textContent = text ? ` · ${text}` : '';
}

// ---------------------------------------------------------------- models

const MODEL_KEY = 'chatstream.model';

function modelOptions() {
  return els.modelSelect ? [...els.modelSelect.options].map((option) => option.value) : [cfg.defaultModel];
}

export function currentModel() {
  return els.modelSelect ? els.modelSelect.value : cfg.defaultModel;
}

export function setModel(model) {
  if (els.modelSelect && model && modelOptions().includes(model)) els.modelSelect.value = model;
  updateStats();
}

export function initModelPicker() {
  if (!els.modelSelect) return;
  let saved = null;
  try { saved = localStorage.getItem(MODEL_KEY); } catch { saved = null; }
  if (saved && modelOptions().includes(saved)) els.modelSelect.value = saved;
  els.modelSelect.addEventListener('change', () => {
    try { localStorage.setItem(MODEL_KEY, els.modelSelect.value); } catch { /* a preference, not data */ }
    updateStats();
  });
}
