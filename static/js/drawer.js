// The conversation list as a drawer on small screens: a modal dialog while open.
//
// Modal means: role=dialog + aria-modal, everything behind it `inert` (not
// focusable, not clickable, hidden from screen readers), Tab wraps inside it,
// Escape or the scrim closes it, and focus returns to the button that opened it.
import { els } from './page.js';

const DRAWER_QUERY = window.matchMedia('(max-width: 820px)');
const FOCUSABLE = 'button:not([disabled]):not([tabindex="-1"]), a[href], select, textarea, input:not([tabindex="-1"])';

export const isDrawer = () => DRAWER_QUERY.matches;

export function isOpen() {
  return els.app.classList.contains('sidebar-shown');
}

/** Open or close the drawer; closing returns focus to the menu button unless told where. */
export function setDrawer(open, { returnFocus = true } = {}) {
  const modal = open && isDrawer();
  els.app.classList.toggle('sidebar-shown', open);
  els.scrim.hidden = !open;
  els.openSidebar.setAttribute('aria-expanded', String(open));
  if (modal) {
    els.sidebar.setAttribute('role', 'dialog');
    els.sidebar.setAttribute('aria-modal', 'true');
  } else {
    els.sidebar.setAttribute('role', 'complementary');
    els.sidebar.removeAttribute('aria-modal');
  }
  els.mainCol.inert = modal;
  if (els.skipLink) els.skipLink.inert = modal;
  if (open) els.newChat.focus();
  else if (returnFocus && isDrawer()) els.openSidebar.focus();
}

function trapTab(event) {
  if (event.key !== 'Tab' || !isOpen() || !isDrawer()) return;
  const items = [...els.sidebar.querySelectorAll(FOCUSABLE)].filter((el) => el.offsetParent !== null);
  if (!items.length) return;
  const first = items[0];
  const last = items[items.length - 1];
  if (event.shiftKey && document.activeElement === first) { event.preventDefault(); last.focus(); }
  else if (!event.shiftKey && document.activeElement === last) { event.preventDefault(); first.focus(); }
}

export function initDrawer() {
  els.openSidebar.addEventListener('click', () => setDrawer(true));
  els.closeSidebar.addEventListener('click', () => setDrawer(false));
  els.scrim.addEventListener('click', () => setDrawer(false));
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && isOpen() && isDrawer()) { event.preventDefault(); setDrawer(false); }
    trapTab(event);
  });
  // Growing past the breakpoint turns the dialog back into a plain sidebar.
  DRAWER_QUERY.addEventListener('change', () => { if (isOpen()) setDrawer(isDrawer(), { returnFocus: false }); });
}
