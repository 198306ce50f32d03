// Conversations kept in localStorage, one key for the whole list.
//
// Shape: { version: 1, activeId, conversations: [{ id, title, model, createdAt,
// updatedAt, messages: [{ role, content, status?, error?, stats? }] }] }
// status (assistant only): "streaming" | "done" | "stopped" | "length" | "error" | "interrupted"

const KEY = 'chatstream.conversations.v1';
const MAX_CONVERSATIONS = 200;

const uid = () =>
  (crypto.randomUUID ? crypto.randomUUID() : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`);

export class ConversationStore {
  constructor(storage = window.localStorage) {
    this.storage = storage;
    this.state = this.load();
  }

  load() {
    try {
      const raw = this.storage.getItem(KEY);
      const data = raw ? JSON.parse(raw) : null;
      if (data && data.version === 1 && Array.isArray(data.conversations)) {
        // Answers still "streaming" were cut off by a reload or a closed tab;
        // the page tries to follow them again (see app.js resumeAll).
        return data;
      }
    } catch (err) {
      console.warn('chatstream: ignoring unreadable saved conversations', err);
    }
    return { version: 1, activeId: null, conversations: [] };
  }

  save() {
    try {
      this.storage.setItem(KEY, JSON.stringify(this.state));
    } catch (err) {
      // Quota exceeded: drop the oldest conversations and try once more.
      if (this.state.conversations.length > 1) {
        this.state.conversations = this.state.conversations.slice(0, Math.ceil(this.state.conversations.length / 2));
        try { this.storage.setItem(KEY, JSON.stringify(this.state)); } catch { /* give up quietly */ }
      }
      console.warn('chatstream: could not save conversations', err);
    }
  }

  /** Conversations, most recently updated first. */
  list() {
    return [...this.state.conversations].sort((a, b) => b.updatedAt - a.updatedAt);
  }

  get(id) {
    return this.state.conversations.find((c) => c.id === id) || null;
  }

  active() {
    return this.get(this.state.activeId);
  }

  setActive(id) {
    this.state.activeId = id;
    this.save();
  }

  create(model) {
    const now = Date.now();
    const conv = { id: uid(), title: 'New chat', model, createdAt: now, updatedAt: now, messages: [] };
    this.state.conversations.unshift(conv);
    if (this.state.conversations.length > MAX_CONVERSATIONS) {
      this.state.conversations = this.list().slice(0, MAX_CONVERSATIONS);
    }
    this.state.activeId = conv.id;
    this.save();
    return conv;
  }

  remove(id) {
    this.state.conversations = this.state.conversations.filter((c) => c.id !== id);
    if (this.state.activeId === id) this.state.activeId = null;
    this.save();
  }

  touch(conv) {
    conv.updatedAt = Date.now();
    const firstUser = conv.messages.find((m) => m.role === 'user');
    if (firstUser) conv.title = firstUser.content.replace(/\s+/g, ' ').trim().slice(0, 80) || 'New chat';
    this.save();
  }
}
