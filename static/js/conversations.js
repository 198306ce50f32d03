// Acting on messages and conversations: copy, regenerate, edit, open, delete, new chat.
import { els } from './page.js';
import { live, store } from './session.js';
import { announce, autosize, copyText, flashButton } from './ui.js';
import { editForm } from './messages.js';
import { generate, regenerate } from './answers.js';
import { renderConversation, renderSidebar, setModel } from './view.js';
import { isDrawer, setDrawer } from './drawer.js';

function startEdit(conv, index) {
  const li = els.messages.querySelector(`li[data-index="${index}"]`);
  if (!li || live.has(conv.id)) return;
  const { form, box, cancel, save } = editForm(conv.messages[index].content);
  li.replaceChildren(form);
  li.classList.add('is-editing');
  autosize(box);
  const close = () => { renderConversation(); els.prompt.focus(); };
  box.addEventListener('input', () => { autosize(box); save.disabled = !box.value.trim(); });
  box.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') { event.preventDefault(); close(); }
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) { event.preventDefault(); form.requestSubmit(); }
  });
  cancel.addEventListener('click', close);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = box.value.trim();
    if (!text) return;
    conv.messages.splice(index); // drop this prompt and everything after it
    conv.messages.push({ role: 'user', content: text });
    generate(conv);
    els.prompt.focus();
  });
  box.focus();
  box.setSelectionRange(box.value.length, box.value.length);
}

async function onMessageAction(event) {
  const btn = event.target.closest('button[data-action]');
  const conv = store.active();
  if (!btn || !conv) return;
  const li = btn.closest('li.msg');
  const index = li ? Number(li.dataset.index) : -1;
  switch (btn.dataset.action) {
    case 'copy-code':
      flashButton(btn, await copyText(btn.closest('.code-block').querySelector('pre code').textContent));
      break;
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
}

export function openConversation(id) {
  store.setActive(id);
  const conv = store.active();
  if (conv) setModel(conv.model);
  renderSidebar();
  renderConversation();
  if (isDrawer()) setDrawer(false, { returnFocus: false });
  els.prompt.focus();
}

function deleteConversation(id) {
  const title = store.get(id)?.title || 'conversation';
  const answer = live.get(id);
  if (answer) { answer.handle.stop(); live.delete(id); }
  const wasActive = store.activeId === id;
  store.remove(id);
  renderSidebar();
  if (wasActive) renderConversation();
  announce(`Deleted “${title}”.`);
  (els.convList.querySelector('.conv-open') || els.newChat).focus();
}

export function initConversationActions() {
  els.messages.addEventListener('click', onMessageAction);
  els.convList.addEventListener('click', (event) => {
    const btn = event.target.closest('button[data-action]');
    if (!btn) return;
    const id = btn.closest('li.conv').dataset.id;
    if (btn.dataset.action === 'open') openConversation(id);
    if (btn.dataset.action === 'delete') deleteConversation(id);
  });
  els.newChat.addEventListener('click', () => openConversation(null));
}
