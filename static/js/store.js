// Conversations kept in this browser's IndexedDB, one record per conversation.
//
// Record: { id, title, model, createdAt, updatedAt, messages: [{ role, content,
// status?, error?, stats?, streamUrl? }] }
// status (assistant only): "streaming" | "done" | "stopped" | "length" | "ended"
// | "error" | "interrupted"
//
// The page works on the objects in memory; writes go out in one transaction per
// turn of the event loop. When the browser refuses a write (quota, private mode),
// nothing already saved is ever deleted: the unsaved conversations stay marked
// dirty and in memory, `onFailure` lets the page tell the user, and the next
// successful write catches up. idb-keyval is the whole IndexedDB layer.
import { createStore, del, entries, setMany } from '../vendor/idb-keyval/idb-keyval.js';

/** The first version's localStorage key: migrated once, then removed. */
export const LEGACY_KEY = 'chatstream.conversations.v1';
const ACTIVE_KEY = 'chatstream.active';
const CHANNEL = 'chatstream.conversations';

const newId = () =>
  (crypto.randomUUID ? crypto.randomUUID() : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`);

export class ConversationStore {
  /**
   * @param {{onFailure?: (err: Error) => void, onSaved?: () => void, onChanged?: () => void}} hooks
   *   onFailure: a write was refused; onSaved: a write after a failure succeeded;
   *   onChanged: another tab saved conversations.
   */
  constructor(hooks = {}) {
    this.hooks = hooks;
    this.db = createStore('chatstream', 'conversations');
    this.conversations = [];
    this.activeId = null;
    this.dirty = new Set();
    this.removed = new Set();
    this.writing = null;
    this.failed = null; // the last refused write's error, until one succeeds
    this.channel = 'BroadcastChannel' in window ? new BroadcastChannel(CHANNEL) : null;
    if (this.channel) this.channel.onmessage = () => this.hooks.onChanged?.();
  }

  /** Load everything (migrating the localStorage format once). */
  async open() {
    this.conversations = (await entries(this.db)).map(([, conv]) => conv);
    await this.migrate();
    const active = readLocal(ACTIVE_KEY);
    this.activeId = this.get(active) ? active : null;
    return this;
  }

  async reload() {
    this.conversations = (await entries(this.db)).map(([, conv]) => conv);
    if (!this.get(this.activeId)) this.activeId = null;
  }

  async migrate() {
    let legacy = null;
    try { legacy = JSON.parse(readLocal(LEGACY_KEY) || 'null'); } catch { legacy = null; }
    if (!legacy || !Array.isArray(legacy.conversations)) return;
    this.merge(legacy.conversations, true); // answers still streaming are followed again
    if (legacy.activeId && !readLocal(ACTIVE_KEY)) writeLocal(ACTIVE_KEY, legacy.activeId);
    // The old copy goes only once the new one is committed.
    if (await this.flush()) localStorage.removeItem(LEGACY_KEY);
  }

  /** Add conversations (an import or a migration); a known id keeps its newer copy. */
  merge(convs, resumable = false) {
    let added = 0;
    for (const conv of convs.map((item) => normalized(item, resumable)).filter(Boolean)) {
      const mine = this.get(conv.id);
      if (mine && mine.updatedAt >= conv.updatedAt) continue;
      if (mine) this.conversations.splice(this.conversations.indexOf(mine), 1);
      this.conversations.push(conv);
      this.dirty.add(conv.id);
      added += 1;
    }
    this.schedule();
    return added;
  }

  /** Conversations, most recently updated first. */
  list() {
    return [...this.conversations].sort((a, b) => b.updatedAt - a.updatedAt);
  }

  get(id) {
    return this.conversations.find((conv) => conv.id === id) || null;
  }

  active() {
    return this.get(this.activeId);
  }

  setActive(id) {
    this.activeId = id;
    writeLocal(ACTIVE_KEY, id || '');
  }

  create(model) {
    const now = Date.now();
    const conv = { id: newId(), title: 'New chat', model, createdAt: now, updatedAt: now, messages: [] };
    this.conversations.unshift(conv);
    this.setActive(conv.id);
    this.save(conv);
    return conv;
  }

  remove(id) {
    this.conversations = this.conversations.filter((conv) => conv.id !== id);
    if (this.activeId === id) this.setActive(null);
    this.dirty.delete(id);
    this.removed.add(id);
    this.schedule();
  }

  /** The user's choice when storage is full: delete the `count` least recently used. */
  removeOldest(count) {
    const oldest = this.list().slice(-count);
    for (const conv of oldest) this.remove(conv.id);
    return oldest.length;
  }

  /** A conversation changed (title from its first prompt, updatedAt) - save it. */
  touch(conv) {
    conv.updatedAt = Date.now();
    const firstUser = conv.messages.find((msg) => msg.role === 'user');
    if (firstUser) conv.title = firstUser.content.replace(/\s+/g, ' ').trim().slice(0, 80) || 'New chat';
    this.save(conv);
  }

  /** Write `conv` soon (same turn of the event loop: one transaction). */
  save(conv) {
    this.dirty.add(conv.id);
    this.schedule();
  }

  schedule() {
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => { this.scheduled = false; this.flush(); });
    }
  }

  /** Write every dirty conversation; true when all of it is stored. */
  async flush() {
    while (this.writing) await this.writing.catch(() => {}); // one write at a time; its failure is its own
    if (!this.dirty.size && !this.removed.size) return !this.failed;
    const ids = [...this.dirty];
    const gone = [...this.removed];
    this.dirty.clear();
    this.removed.clear();
    const records = ids.map((id) => this.get(id)).filter(Boolean).map((conv) => [conv.id, conv]);
    this.writing = (async () => {
      for (const id of gone) await del(id, this.db);
      if (records.length) await setMany(records, this.db);
    })();
    try {
      await this.writing;
    } catch (err) {
      for (const id of ids) this.dirty.add(id); // kept in memory, written next time
      for (const id of gone) this.removed.add(id);
      this.failed = err;
      this.hooks.onFailure?.(err);
      return false;
    } finally {
      this.writing = null;
    }
    if (this.failed) { this.failed = null; this.hooks.onSaved?.(); }
    this.channel?.postMessage('saved');
    return true;
  }

  /** Everything, as the JSON file "Export all" downloads. */
  exportJson() {
    return JSON.stringify({ format: 'chatstream.conversations', version: 1, exportedAt: new Date().toISOString(),
      conversations: this.list() }, null, 2);
  }

  /** Conversations from an exported file (or the old localStorage value); returns how many were added. */
  importJson(text) {
    const data = JSON.parse(text);
    const convs = Array.isArray(data) ? data : data && data.conversations;
    if (!Array.isArray(convs)) throw new Error('This file holds no conversations.');
    return this.merge(convs);
  }
}

/** A well-formed copy of an imported conversation, or null. */
function normalized(conv, resumable) {
  if (!conv || typeof conv.id !== 'string' || !Array.isArray(conv.messages)) return null;
  if (!conv.messages.every((msg) => msg && typeof msg.role === 'string' && typeof msg.content === 'string')) return null;
  const messages = conv.messages.map((msg) =>
    (msg.status === 'streaming' && !(resumable && msg.streamUrl) ? { ...msg, status: 'interrupted' } : msg));
  const now = Date.now();
  return { ...conv, messages, title: String(conv.title || 'New chat'),
    createdAt: Number(conv.createdAt) || now, updatedAt: Number(conv.updatedAt) || now };
}

function readLocal(key) {
  try { return localStorage.getItem(key); } catch { return null; }
}

/** The active id is a convenience: when localStorage is full it is simply not remembered. */
function writeLocal(key, value) {
  try { localStorage.setItem(key, value); } catch { /* not worth bothering the user */ }
}
