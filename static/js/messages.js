// DOM builders for messages and the conversation list (no state, no network).
//
// Every piece of text goes in with textContent; only the markdown renderer
// (markdown.js) produces HTML, and it sanitizes what it produces. Each message is
// one <article> labelled by its (visually hidden) heading; text the user or the
// model wrote gets dir="auto", so Hebrew or Arabic runs right-to-left.
import { icon } from './ui.js';
import { noteText } from './outcomes.js';

export function button(label, action, iconName, extraClass = '') {
  const btn = document.createElement('button');
  btn.type = 'button';
  btn.className = `act ${extraClass}`.trim();
  btn.dataset.action = action;
  if (iconName) btn.append(icon(iconName));
  const span = document.createElement('span');
  span.textContent = label;
  btn.append(span);
  return btn;
}

/** The note under an answer: how it ended, an error with Retry, or "Reconnecting". */
export function statusNote(msg) {
  const note = document.createElement('div');
  note.className = 'msg-note';
  const words = noteText(msg);
  if (words) {
    note.textContent = words;
    if (msg.status === 'ended') note.classList.add('is-ended');
  } else if (msg.status === 'error') {
    // Not role=alert: the error is announced once, through the page's status region.
    note.classList.add('is-error');
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
    const spinner = document.createElement('span');
    spinner.className = 'spinner';
    note.append(spinner, document.createTextNode('Reconnecting…'));
  } else return null;
  note.dataset.kind = msg.reconnecting ? 'reconnecting' : msg.status;
  return note;
}

export function lastIndex(conv, role) {
  for (let i = conv.messages.length - 1; i >= 0; i -= 1) if (conv.messages[i].role === role) return i;
  return -1;
}

function heading(text, id) {
  const label = document.createElement('h2');
  label.className = 'visually-hidden';
  label.id = id;
  label.textContent = text;
  return label;
}

/** One message: <li> (list item, state in data-*) > <article> labelled by its heading. */
export function messageEl(conv, msg, index, busy) {
  const li = document.createElement('li');
  li.className = `msg msg-${msg.role}`;
  li.dataset.index = String(index);
  const article = document.createElement('article');
  article.className = 'msg-box';
  const headingId = `msg-${index}-label`;
  article.setAttribute('aria-labelledby', headingId);
  li.append(article);
  if (msg.role === 'user') {
    const bubble = document.createElement('div');
    bubble.className = 'bubble';
    bubble.dir = 'auto';
    bubble.textContent = msg.content; // user text is always text, never markup
    article.append(heading('You', headingId), bubble);
    if (index === lastIndex(conv, 'user') && !busy) {
      const actions = document.createElement('div');
      actions.className = 'msg-actions';
      actions.append(button('Edit', 'edit', 'edit'));
      article.append(actions);
    }
    return li;
  }
  const avatar = document.createElement('div');
  avatar.className = 'avatar';
  avatar.setAttribute('aria-hidden', 'true');
  const body = document.createElement('div');
  body.className = 'msg-body';
  const md = document.createElement('div');
  md.className = 'md';
  md.dir = 'auto';
  body.append(heading('Assistant', headingId), md);
  if (!msg.content && msg.status === 'streaming') md.append(typingDots());
  article.append(avatar, body);
  updateAnswerChrome(li, conv, msg, index);
  return li;
}

/**
 * Bring an answer's state, note and actions up to date without touching its
 * rendered markdown (so focus and finished blocks inside it stay as they are).
 */
export function updateAnswerChrome(li, conv, msg, index) {
  const streaming = msg.status === 'streaming';
  li.dataset.status = msg.status || 'done';
  if (streaming) li.setAttribute('aria-busy', 'true');
  else li.removeAttribute('aria-busy');
  const body = li.querySelector('.msg-body');
  body.querySelector(':scope > .msg-note')?.remove();
  body.querySelector(':scope > .msg-actions')?.remove();
  const note = statusNote(msg);
  if (note) body.append(note);
  if (streaming) return;
  const actions = document.createElement('div');
  actions.className = 'msg-actions';
  if (msg.content) actions.append(button('Copy', 'copy', 'copy'));
  if (index === conv.messages.length - 1 && msg.status !== 'error') actions.append(button('Regenerate', 'regenerate', 'retry'));
  if (msg.stats && msg.stats.ttftMs != null) {
    const meta = document.createElement('span');
    meta.className = 'msg-meta';
    meta.textContent = formatStats(msg.stats);
    actions.append(meta);
  }
  if (actions.childElementCount) body.append(actions);
}

function typingDots() {
  const dots = document.createElement('span');
  dots.className = 'typing';
  dots.setAttribute('role', 'img');
  dots.setAttribute('aria-label', 'Assistant is writing');
  dots.append(document.createElement('i'), document.createElement('i'), document.createElement('i'));
  return dots;
}

export function formatStats(stats) {
  const parts = [];
  if (stats.ttftMs != null) parts.push(`first token ${Math.round(stats.ttftMs)} ms`);
  if (stats.tps != null) parts.push(`${stats.tps.toFixed(1)} tok/s`);
  return parts.join(' · ');
}

/** The inline editor that replaces the last prompt's bubble. */
export function editForm(text) {
  const form = document.createElement('form');
  form.className = 'edit-form';
  form.setAttribute('aria-label', 'Edit message');
  const label = document.createElement('label');
  label.className = 'visually-hidden';
  label.textContent = 'Edit message';
  const box = document.createElement('textarea');
  box.value = text;
  box.rows = 1;
  box.dir = 'auto';
  label.htmlFor = box.id = 'edit-box';
  const row = document.createElement('div');
  row.className = 'edit-actions';
  const cancel = button('Cancel', 'cancel-edit');
  const save = button('Send', 'save-edit', null, 'act-primary');
  save.type = 'submit';
  row.append(cancel, save);
  form.append(label, box, row);
  return { form, box, cancel, save };
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
  open.dir = 'auto';
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
