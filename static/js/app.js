// The chat page: opens the saved conversations, wires the composer and the
// page's parts, and follows answers that were streaming before a reload.
//
//   page.js      fixed elements, server settings      session.js  store + live answers
//   store.js     IndexedDB conversations              stream.js   POST + EventSource
//   answers.js   one answer's life                    outcomes.js how an answer ended, in words
//   view.js      drawing the state                    messages.js DOM builders
//   markdown.js  marked + DOMPurify + highlight.js    live-markdown.js  per-frame rendering
//   conversations.js  message and list actions        drawer.js   the modal drawer
//   storage-ui.js  storage alert, export, import      scroll.js   following the newest text
import { els } from './page.js';
import { live, store } from './session.js';
import { autosize } from './ui.js';
import { resumeAll, send, stopActive } from './answers.js';
import { initConversationActions } from './conversations.js';
import { initDrawer } from './drawer.js';
import { initScrolling } from './scroll.js';
import { hideStorageFailure, initStorageUi, showStorageFailure } from './storage-ui.js';
import { initModelPicker, renderConversation, renderSidebar, setModel, updateComposer } from './view.js';

function redraw() {
  renderSidebar();
  renderConversation();
}

function initComposer() {
  els.prompt.addEventListener('input', () => { autosize(els.prompt); updateComposer(); });
  els.prompt.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (!els.send.hidden && !els.send.disabled) els.form.requestSubmit();
    } else if (event.key === 'Escape' && !els.stop.hidden) {
      event.preventDefault();
      stopActive();
    }
  });
  els.form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = els.prompt.value.trim();
    const conv = store.active();
    if (!text || (conv && live.has(conv.id))) return;
    els.prompt.value = '';
    autosize(els.prompt);
    send(text);
    els.prompt.focus();
  });
  els.stop.addEventListener('click', () => { stopActive(); els.prompt.focus(); });
  els.empty.addEventListener('click', (event) => {
    const btn = event.target.closest('button.suggestion');
    if (btn) send(btn.dataset.prompt);
  });
}

async function start() {
  store.hooks = {
    onFailure: showStorageFailure,
    onSaved: hideStorageFailure,
    async onChanged() { // another tab saved conversations
      if (live.size) return;
      await store.reload();
      redraw();
    },
  };
  try {
    await store.open();
  } catch (err) { // no IndexedDB (e.g. a locked-down private window): work in memory, say so
    showStorageFailure(err);
  }
  initComposer();
  initConversationActions();
  initDrawer();
  initScrolling();
  initModelPicker();
  initStorageUi(redraw);
  const conv = store.active();
  if (conv) setModel(conv.model);
  redraw();
  resumeAll();
  autosize(els.prompt);
  els.prompt.focus();
  document.body.classList.add('is-ready');
}

start();
