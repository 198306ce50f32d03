// Renders a growing markdown answer at most once per animation frame, in time
// that does not grow with the answer.
//
// Written by hand because no library does this part: marked parses whole
// documents, so re-rendering the answer every frame costs O(length) per frame
// (quadratic over the answer). Here marked's lexer gives the block boundaries:
// every top-level block followed by another block is finished - it is parsed,
// sanitized and highlighted once, appended, and never touched again. Only the
// last block (an open code fence, a list still getting items, the paragraph being
// written) is lexed and rendered again each frame, so one frame costs about one
// block, whatever the answer's length.
//
// Known limit: a reference-style link definition (`[x]: https://...`) only applies
// to blocks after the block it ends; a whole answer re-rendered from its saved
// text (after a reload) resolves it everywhere.
import { lexBlocks, renderTokens } from './markdown.js';

const CONTROLS = 'a[href], button, [tabindex="0"]';

export class LiveMarkdown {
  /**
   * @param {HTMLElement} el the `.md` element it owns
   * @param {() => void} [onRendered] called after each rendered frame
   */
  constructor(el, onRendered) {
    this.el = el;
    this.onRendered = onRendered;
    this.text = '';
    this.pending = 0;
    this.frozen = 0; // length of the text prefix whose blocks are finished
    this.draftNodes = []; // the nodes of the growing last block
    this.started = false;
    // What a frame cost, for tests and measurements (no timing in here).
    this.stats = { frames: 0, finishedBlocks: 0, lexedChars: 0, maxLexedChars: 0 };
  }

  /** The answer so far (whole text, not a delta); renders on the next frame. */
  set(text) {
    this.text = text.replace(/\r\n?/g, '\n');
    if (!this.pending) this.pending = requestAnimationFrame(() => this.flush());
  }

  /** Render now (and cancel the frame asked for). */
  flush() {
    this.cancel();
    this.render(false);
    this.onRendered?.();
  }

  /** The answer is complete: its last block is finished too (highlighted, buttons). */
  finish(text = this.text) {
    this.text = text.replace(/\r\n?/g, '\n');
    this.cancel();
    this.render(true);
    this.onRendered?.();
  }

  cancel() {
    if (this.pending) cancelAnimationFrame(this.pending);
    this.pending = 0;
  }

  render(complete) {
    if (!this.started) { this.el.replaceChildren(); this.started = true; }
    const rest = this.text.slice(this.frozen);
    const tokens = lexBlocks(rest);
    this.stats.frames += 1;
    this.stats.lexedChars += rest.length;
    this.stats.maxLexedChars = Math.max(this.stats.maxLexedChars, rest.length);
    // The lexer's raw pieces must add up to the text, or block offsets are not
    // trustworthy: then nothing is frozen this frame (correct, just slower).
    const rawLength = tokens.reduce((sum, token) => sum + token.raw.length, 0);
    let last = tokens.length - 1;
    while (last > 0 && tokens[last].type === 'space') last -= 1;
    const cut = complete ? tokens.length : rawLength === rest.length ? Math.max(last, 0) : 0;
    const finished = tokens.slice(0, cut);
    const draft = tokens.slice(cut);

    const focusAt = this.draftFocusIndex();
    for (const node of this.draftNodes) node.remove();
    this.draftNodes = [];
    let added = [];
    if (finished.length) {
      const frag = renderTokens(finished, tokens.links);
      added = [...frag.childNodes];
      this.el.append(frag);
      this.frozen += finished.reduce((sum, token) => sum + token.raw.length, 0);
      this.stats.finishedBlocks += finished.filter((token) => token.type !== 'space').length;
    }
    if (draft.length) {
      const frag = renderTokens(draft, tokens.links, true);
      this.draftNodes = [...frag.childNodes];
      added = [...added, ...this.draftNodes];
      this.el.append(frag);
    }
    if (focusAt >= 0) this.restoreFocus(focusAt, added);
  }

  /** Which link or button of the growing block has focus (-1: none). */
  draftFocusIndex() {
    const active = document.activeElement;
    if (!active || !this.draftNodes.some((node) => node.contains(active))) return -1;
    return controlsIn(this.draftNodes).indexOf(active);
  }

  /** Re-rendering the growing block replaced a focused link: focus its successor. */
  restoreFocus(index, nodes) {
    const controls = controlsIn(nodes);
    const target = controls[Math.min(index, controls.length - 1)];
    if (target) target.focus({ preventScroll: true });
  }
}

function controlsIn(nodes) {
  return nodes.flatMap((node) =>
    (node.nodeType === Node.ELEMENT_NODE ? [...(node.matches(CONTROLS) ? [node] : []), ...node.querySelectorAll(CONTROLS)] : []));
}

/** Render a saved (complete) answer into `el` in one go. */
export function renderComplete(el, text) {
  const live = new LiveMarkdown(el);
  live.finish(text);
  return live;
}
