// Small DOM helpers shared by the page: icons, the live region, copying, sizing.

const SVG_NS = 'http://www.w3.org/2000/svg';
const ICONS = {
  copy: ['M9 9h10v10H9z', 'M5 15V5h10'],
  check: ['M5 12.5l4.5 4.5L19 7.5'],
  retry: ['M4 12a8 8 0 0 1 13.7-5.6L20 8.7', 'M20 4v4.7h-4.7', 'M20 12a8 8 0 0 1-13.7 5.6L4 15.3', 'M4 20v-4.7h4.7'],
  edit: ['M4 20h4L19 9l-4-4L4 16z', 'M13.5 6.5l4 4'],
  trash: ['M5 7h14', 'M10 11v6M14 11v6', 'M6 7l1 12h10l1-12', 'M9 7V4h6v3'],
  alert: ['M12 8v5', 'M12 16.5v.01', 'M10.3 4.2L2.8 17.5A2 2 0 0 0 4.5 20.5h15a2 2 0 0 0 1.7-3L13.7 4.2a2 2 0 0 0-3.4 0z'],
};

/** An inline SVG icon built with DOM calls (no markup strings). */
export function icon(name) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.classList.add('icon');
  for (const pathData of ICONS[name] || []) {
    const path = document.createElementNS(SVG_NS, 'path');
    path.setAttribute('d', pathData);
    svg.append(path);
  }
  return svg;
}

let announceTimer = 0;
/**
 * Say something in the polite live region. Used for completion and status only,
 * never per token, so screen readers are not flooded while an answer streams.
 */
export function announce(text) {
  const region = document.getElementById('announcer');
  if (!region) return;
  clearTimeout(announceTimer);
  region.textContent = '';
  // Clearing first and setting a moment later makes repeated messages be read again.
  announceTimer = setTimeout(() => { region.textContent = text; }, 60);
}

/** Browsers that size a textarea to its text in CSS (app.css `field-sizing`). */
const CSS_SIZING = typeof CSS !== 'undefined' && CSS.supports('field-sizing', 'content');

/**
 * Grow a textarea with its text, up to its CSS max-height. Where CSS does it
 * (field-sizing), nothing to do: the JS way forces a synchronous layout of the
 * whole page on every key, which costs a lot next to a long answer.
 */
export function autosize(area) {
  if (CSS_SIZING) return;
  area.style.height = 'auto';
  area.style.height = `${area.scrollHeight + (area.offsetHeight - area.clientHeight)}px`;
}

/** Copy text to the clipboard; true on success. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Fallback for browsers without the async clipboard (or without permission).
    const ta = document.createElement('textarea');
    ta.value = text;
    ta.setAttribute('readonly', '');
    ta.className = 'clipboard-proxy';
    document.body.append(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch { ok = false; }
    ta.remove();
    return ok;
  }
}

/** Briefly show "Copied" (or a failure) on a button, and announce it. */
export function flashButton(btn, ok) {
  const label = btn.querySelector('span') || btn;
  if (!btn.dataset.label) btn.dataset.label = label.textContent;
  label.textContent = ok ? 'Copied' : 'Copy failed';
  btn.classList.toggle('is-done', ok);
  announce(ok ? 'Copied to clipboard.' : 'Could not copy.');
  clearTimeout(Number(btn.dataset.timer));
  btn.dataset.timer = String(setTimeout(() => {
    label.textContent = btn.dataset.label;
    btn.classList.remove('is-done');
  }, 1600));
}
