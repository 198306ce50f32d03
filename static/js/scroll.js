// Following the newest text: the view sticks to the bottom unless the user scrolled up.
import { els } from './page.js';

let stick = true;

function atBottom() {
  const scroller = els.scroller;
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
}

/** Keep the newest text in view (when following); `force` starts following again. */
export function scrollToBottom(force = false) {
  if (force) stick = true;
  if (stick) els.scroller.scrollTop = els.scroller.scrollHeight;
  els.jump.hidden = stick || atBottom();
}

export function stickToBottom() {
  stick = true;
}

export function initScrolling() {
  els.scroller.addEventListener('scroll', () => {
    stick = atBottom();
    els.jump.hidden = stick;
  }, { passive: true });
  els.jump.addEventListener('click', () => {
    scrollToBottom(true);
    els.jump.hidden = true;
    els.prompt.focus();
  });
  new ResizeObserver(() => scrollToBottom()).observe(els.messages);
}
