// Markdown -> safe DOM for model output.
//
// Pipeline: marked (GFM) -> DOMPurify -> DOM. Two layers on purpose:
//  1. Raw HTML in the markdown is never passed through: the `html` renderer
//     escapes it, so `<img onerror=...>` or `<script>` in an answer shows as text.
//  2. DOMPurify then sanitizes everything marked produced (e.g. a markdown link
//     `[x](javascript:...)` loses its href), so no markup from the model can run.
// Code blocks are highlighted by highlight.js inside the renderer; its output is
// plain <span class="hljs-..."> which survives sanitizing. A block that is still
// growing (see live-markdown.js) is not highlighted: highlighting runs once, when
// the block is finished.
import { Marked } from '../vendor/marked/marked.esm.js';
import DOMPurify from '../vendor/dompurify/purify.es.js';
import hljs from '../vendor/highlight.js/highlight.min.js';

const escapeHtml = (text) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;').replace(/'/g, '&#39;');

function highlight(code, lang) {
  const name = (lang || '').trim().split(/\s+/)[0].toLowerCase();
  if (name && hljs.getLanguage(name)) {
    return { html: hljs.highlight(code, { language: name, ignoreIllegals: true }).value, name };
  }
  // Auto-detection is costly on long text; only guess on modest blocks.
  if (code.length < 5000) {
    const guess = hljs.highlightAuto(code);
    if (guess.language && guess.relevance >= 5) return { html: guess.value, name: guess.language };
  }
  return { html: escapeHtml(code), name: name || '' };
}

/** Set while rendering a block that is still growing: no highlighting yet. */
let drafting = false;

const marked = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    html({ text }) {
      return escapeHtml(text);
    },
    code({ text, lang }) {
      const code = text.replace(/\n$/, '');
      const { html, name } = drafting
        ? { html: escapeHtml(code), name: (lang || '').trim().split(/\s+/)[0].toLowerCase() }
        : highlight(code, lang);
      const label = `<span class="code-lang">${name ? escapeHtml(name) : 'text'}</span>`;
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
  RETURN_DOM_FRAGMENT: true,
};

/** Block tokens of `text` (marked's lexer); `tokens.links` holds reference links. */
export function lexBlocks(text) {
  return marked.lexer(text);
}

/**
 * Parse block tokens to a sanitized, decorated DocumentFragment.
 * @param {object[]} tokens marked block tokens
 * @param {object} links reference-link definitions from the lexer
 * @param {boolean} draft the block is still growing (no highlighting, no buttons)
 */
export function renderTokens(tokens, links, draft = false) {
  const list = [...tokens];
  list.links = links || {};
  drafting = draft;
  let html;
  try { html = marked.parser(list); } finally { drafting = false; }
  const frag = DOMPurify.sanitize(html, PURIFY);
  decorate(frag, draft);
  return frag;
}

/** Render a whole markdown text to a sanitized DocumentFragment. */
export function renderMarkdown(text) {
  const tokens = lexBlocks(text);
  return renderTokens(tokens, tokens.links);
}

/**
 * Attributes, buttons and wrappers added here, never by markdown: a copy button
 * per finished code block, keyboard-reachable sideways scrolling for code and
 * tables, and a text direction per block.
 */
function decorate(root, draft) {
  // Each top-level block takes its direction from its own first strong
  // character, so a Hebrew paragraph, list or quote runs right-to-left (bullets
  // and the quote's rule on the right) inside an English answer. Only top-level
  // blocks and table cells: dir=auto skips descendants that have their own dir.
  for (const block of root.children) if (!block.classList.contains('code-block')) block.dir = 'auto';
  for (const cell of root.querySelectorAll('th, td')) cell.dir = 'auto';
  for (const pre of root.querySelectorAll('.code-block > pre')) {
    pre.tabIndex = 0; // a long line scrolls sideways: keyboard users must reach it
    pre.setAttribute('aria-label', 'Code');
  }
  for (const table of root.querySelectorAll('table')) {
    const wrap = document.createElement('div');
    wrap.className = 'table-wrap';
    wrap.tabIndex = 0;
    wrap.setAttribute('role', 'region');
    wrap.setAttribute('aria-label', 'Table');
    table.replaceWith(wrap);
    wrap.append(table);
  }
  if (draft) return; // a growing code block gets its copy button once it is finished
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
