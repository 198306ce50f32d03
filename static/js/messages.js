// DOM builders for messages and the conversation list (no state, no network).
//
// Every piece of text goes in with textContent; only the markdown renderer
// (markdown.js) produces HTML, and it sanitizes what it produces.
import { icon } from './ui.js';

export function button(label, action, iconName, extraClass = '') {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = `act ${extraClass}`.trim();
  b.dataset.action = action;
  if (iconName) b.append(icon(iconName));
  const span = document.createElement('span');
  span.textContent = label;
  b.append(span);
  return b;
}

export function statusNote(msg) {
  const note = document.createElement('div');
  note.className = 'msg-note';
  if (msg.status === 'stopped') note.textContent = 'Stopped';
  else if (msg.status === 'length') note.textContent = 'Cut off: the answer reached its length limit';
  else if (msg.status === 'interrupted') note.textContent = 'Interrupted: this answer could not be resumed';
  else if (msg.status === 'error') {
    note.classList.add('is-error');
    note.setAttribute('role', 'alert');
    const text = document.createElement('span');
    text.textContent = (msg.error && msg.error.message) || 'Something went wrong.';
    note.append(icon('alert'), text);
    if (msg.error && msg.error.loginUrl) { // access control is on and the login lapsed
      const login = document.createElement('a');
      login.className = 'act act-retry';
      login.href = msg.error.loginUrl;
      login.textContent = 'Log in';
      note.append(login);
    } else note.append(button('Retry', 'retry', 'retry', 'act-retry'));
  } else if (msg.reconnecting) {
    note.classList.add('is-reconnecting');
    note.append(document.createElement('span'));
    note.lastChild.className = 'spinner';
    note.append(document.createTextNode('Reconnecting…'));
  } else return null;
  note.dataset.kind = msg.reconnecting ? 'reconnecting' : msg.status;
  return note;
}

export function lastIndex(conv, role) {
  for (let i = conv.messages.length - 1; i >= 0; i -= 1) if (conv.messages[i].role === role) return i;
  return -1;
}

export function messageEl(conv, msg, i, busy) {
  const li = document.createElement('li');
  li.className = `msg msg-${msg.role}`;
  li.dataset.index = String(i);
  const streaming = msg.status === 'streaming';
  const isLastUser = i === lastIndex(conv, 'user');
  if (msg.role === 'user') {
    const label = document.createElement('h3');
    label.className = 'visually-hidden';
    label.textContent = 'You';
    const bubble = document.createElement('div');
    bubble.className = 'bubble';
    bubble.textContent = msg.content; // user text is always text, never markup
    li.append(label, bubble);
    if (isLastUser && !busy) {
      const actions = document.createElement('div');
      actions.className = 'msg-actions';
      actions.append(button('Edit', 'edit', 'edit'));
      li.append(actions);
    }
    return li;
  }
  li.dataset.status = msg.status || 'done';
  const avatar = document.createElement('div');
  avatar.className = 'avatar';
  avatar.setAttribute('aria-hidden', 'true');
  const body = document.createElement('div');
  body.className = 'msg-body';
  const label = document.createElement('h3');
  label.className = 'visually-hidden';
  label.textContent = 'Assistant';
  const md = document.createElement('div');
  md.className = 'md';
  body.append(label, md);
  if (streaming) li.setAttribute('aria-busy', 'true');
  if (!msg.content && streaming) md.append(typingDots());
  const note = statusNote(msg);
  if (note) body.append(note);
  if (!streaming) {
    const actions = document.createElement('div');
    actions.className = 'msg-actions';
    if (msg.content) actions.append(button('Copy', 'copy', 'copy'));
    if (i === conv.messages.length - 1 && msg.status !== 'error') actions.append(button('Regenerate', 'regenerate', 'retry'));
    if (msg.stats && msg.stats.ttftMs != null) {
      const s = document.createElement('span');
      s.className = 'msg-meta';
      s.textContent = formatStats(msg.stats);
      actions.append(s);
    }
    if (actions.childElementCount) body.append(actions);
  }
  li.append(avatar, body);
  return li;
}

function typingDots() {
  const d = document.createElement('span');
  d.className = 'typing';
  d.setAttribute('role', 'img');
  d.setAttribute('aria-label', 'Assistant is writing');
  d.append(document.createElement('i'), document.createElement('i'), document.createElement('i'));
  return d;
}

export function formatStats(s) {
  const parts = [];
  if (s.ttftMs != null) parts.push(`first token ${Math.round(s.ttftMs)} ms`);
  if (s.tps != null) parts.push(`${s.tps.toFixed(1)} tok/s`);
  return parts.join(' · ');
}

/** The inline editor that replaces the last prompt's bubble. */
export function editForm(text) {
  const form = document.createElement('form');
  form.className = 'edit-form';
  const label = document.createElement('label');
  label.className = 'visually-hidden';
  label.textContent = 'Edit message';
  const ta = document.createElement('textarea');
  ta.value = text;
  ta.rows = 1;
  label.htmlFor = ta.id = 'edit-box';
  const row = document.createElement('div');
  row.className = 'edit-actions';
  const cancel = button('Cancel', 'cancel-edit');
  const save = button('Send', 'save-edit', null, 'act-primary');
  save.type = 'submit';
  row.append(cancel, save);
  form.append(label, ta, row);
  return { form, ta, cancel, save };
}

/** One entry of the conversation list: open it, or delete it. */
export function conversationItem(conv, active, busy) {
  const li = document.createElement('li');
  li.className = 'conv';
  li.dataset.id = conv.id;
  const open = document.createElement('button');
  open.type = 'button';
  open.className = 'conv-open';
  open.dataset.action = 'open';
  open.textContent = conv.title;
  open.title = conv.title;
  if (active) open.setAttribute('aria-current', 'page');
  if (busy) li.classList.add('is-live');
  const del = document.createElement('button');
  del.type = 'button';
  del.className = 'icon-btn conv-delete';
  del.dataset.action = 'delete';
  del.setAttribute('aria-label', `Delete conversation: ${conv.title}`);
  del.append(icon('trash'));
  li.append(open, del);
  return li;
}
