// What the user sees of storage: the "could not save" alert with its choices,
// "Export all" (a JSON download) and "Import".
import { els } from './page.js';
import { store } from './session.js';
import { announce } from './ui.js';

const PRUNE_COUNT = 10;

/** The browser refused a write: say so once, offer the choices; nothing is deleted. */
export function showStorageFailure(err) {
  const full = err && (err.name === 'QuotaExceededError' || /quota/i.test(String(err.message)));
  const reason = full ? 'This browser’s storage for the page is full' : 'This browser refused to save conversations';
  const text = `${reason}: the latest changes are not saved yet. Nothing saved was deleted, and the current answer `
    + 'is kept in this tab. Export your conversations, or delete old ones to make room.';
  if (!els.storageAlert.hidden && els.storageAlertText.textContent === text) return;
  els.storageAlertText.textContent = text;
  els.storageAlert.hidden = false;
}

export function hideStorageFailure() {
  els.storageAlert.hidden = true;
}

function exportAll() {
  const blob = new Blob([store.exportJson()], { type: 'application/json' });
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = `chatstream-conversations-${new Date().toISOString().slice(0, 10)}.json`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  announce(`Exported ${store.conversations.length} conversations.`);
}

/** Wire the sidebar's Export/Import and the alert's buttons; `changed` redraws the page. */
export function initStorageUi(changed) {
  els.exportAll.addEventListener('click', exportAll);
  els.storageExport.addEventListener('click', exportAll);
  els.storagePrune.addEventListener('click', () => {
    const removed = store.removeOldest(PRUNE_COUNT);
    changed();
    announce(`Deleted ${removed} old conversations.`);
    els.prompt.focus();
  });
  els.storageDismiss.addEventListener('click', () => { hideStorageFailure(); els.prompt.focus(); });
  els.importOpen.addEventListener('click', () => els.importFile.click());
  els.importFile.addEventListener('change', async () => {
    const file = els.importFile.files && els.importFile.files[0];
    els.importFile.value = '';
    if (!file) return;
    try {
      const added = store.importJson(await file.text());
      await store.flush();
      changed();
      announce(`Imported ${added} conversations.`);
    } catch (err) {
      announce(`Could not import ${file.name}: ${err.message}`);
    }
    els.importOpen.focus();
  });
}
