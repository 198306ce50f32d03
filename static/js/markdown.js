// Markdown -> safe HTML for model output.
//
// Pipeline: marked (GFM) -> DOMPurify -> DOM. Two layers on purpose:
//  1. Raw HTML in the markdown is never passed through: the `html` renderer
//     escapes it, so `<img onerror=...>` or `<script>` in an answer shows as text.
//  2. DOMPurify then sanitizes everything marked produced (e.g. a markdown link
//     `[x](javascript:...)` loses its href), so no markup from the model can run.
// Code blocks are highlighted by highlight.js inside the renderer; its output is
// plain <span class="hljs-..."> which survives sanitizing.
import { Marked } from '../vendor/marked/marked.esm.js';
import DOMPurify from '../vendor/dompurify/purify.es.js';
import hljs from '../vendor/highlight.js/highlight.min.js';

const escapeHtml = (s) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;').replace(/'/g, '&#39;');

function highlight(code, lang) {
  const name = (lang || '').trim().split(/\s+/)[0].toLowerCase();
  if (name && hljs.getLanguage(name)) {
    return { html: hljs.highlight(code, { language: name, ignoreIllegals: true }).value, name };
  }
  // Auto-detection is costly on long text; only guess on modest blocks.
  if (code.length < 5000) {
    const r = hljs.highlightAuto(code);
    if (r.language && r.relevance >= 5) return { html: r.value, name: r.language };
  }
  return { html: escapeHtml(code), name: name || '' };
}

const marked = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    html({ text }) {
      return escapeHtml(text);
    },
    code({ text, lang }) {
      const { html, name } = highlight(text.replace(/\n$/, ''), lang);
      const label = name ? `<span class="code-lang">${escapeHtml(name)}</span>` : '<span class="code-lang">text</span>';
      return `<div class="code-block"><div class="code-head">${label}</div>` +
        `<pre><code class="hljs${name ? ` language-${escapeHtml(name)}` : ''}">${html}</code></pre></div>`;
    },
  },
});

DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A' && node.hasAttribute('href')) {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer nofollow');
  }
});

const PURIFY = {
  FORBID_TAGS: ['style', 'form', 'button', 'textarea', 'select', 'iframe', 'object', 'embed'],
  FORBID_ATTR: ['style', 'id', 'name'],
  ADD_ATTR: ['target'],
};

/** Render markdown to a sanitized DocumentFragment. */
export function renderMarkdown(text) {
  const html = marked.parse(text, { async: false });
  return DOMPurify.sanitize(html, { ...PURIFY, RETURN_DOM_FRAGMENT: true });
}

/** Add a copy button to each code block in `root` (buttons are built here, not by markdown). */
export function decorateCodeBlocks(root) {
  for (const head of root.querySelectorAll('.code-block > .code-head')) {
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'copy-code';
    btn.dataset.action = 'copy-code';
    btn.textContent = 'Copy';
    btn.setAttribute('aria-label', 'Copy code');
    head.append(btn);
  }
}

/**
 * Re-renders one element from a growing markdown string at most once per
 * animation frame, however fast tokens arrive.
 */
export class FrameRenderer {
  constructor(el, onRendered) {
    this.el = el;
    this.text = '';
    this.pending = 0;
    this.onRendered = onRendered;
  }

  set(text) {
    this.text = text;
    if (!this.pending) this.pending = requestAnimationFrame(() => this.flush());
  }

  flush() {
    if (this.pending) cancelAnimationFrame(this.pending);
    this.pending = 0;
    const frag = renderMarkdown(this.text);
    decorateCodeBlocks(frag);
    this.el.replaceChildren(frag);
    if (this.onRendered) this.onRendered();
  }

  cancel() {
    if (this.pending) cancelAnimationFrame(this.pending);
    this.pending = 0;
  }
}
