// Markdown and math into the page as DOM. The markdown's HTML (with each
// formula left as an empty slot by markdown.js) goes through DOMPurify when
// the text holds raw HTML (markdown-it's own markup needs none: see
// renderMarkdownSlots); each slot then gets its formula's KaTeX rendering.
//
// KaTeX's own markup is not put through DOMPurify: it is the biggest part of a
// math-heavy notebook (some 80 elements per formula, checked one by one), and
// it is not HTML from the notebook but markup KaTeX generates from TeX with
// `trust: false` (the default): no \href, \url, \includegraphics or \html*
// commands, text escaped, colours checked against a pattern. KaTeX documents
// that output as safe from script injection; its advisories so far all needed
// `trust` turned on. Behind it the page's CSP (script-src 'self', no inline
// handlers, no javascript: URLs) would still stop a script. TeX that KaTeX
// cannot render shows as its error text (a text node).
//
// A formula is parsed (in an inert <template>) once per distinct TeX; a
// formula a notebook repeats costs one clone.

import { renderMarkdownSlots, renderMath } from './markdown.js';
import { sanitize } from './sanitize.js';

/** Distinct formulas kept parsed. */
const CACHE_SIZE = 2000;
const parsed = new Map();

function errorSpan(tex, error) {
  const span = document.createElement('span');
  span.className = 'katex-error';
  span.title = tex;
  span.textContent = String(error);
  return span;
}

/** A formula as DOM (KaTeX's error text when it cannot be rendered). */
export function mathFragment(tex, displayMode) {
  const key = `${displayMode ? 'D' : 'I'}${tex}`;
  let template = parsed.get(key);
  if (!template) {
    let html;
    try {
      html = renderMath(tex, displayMode);
    } catch (error) {
      return errorSpan(tex, error);
    }
    template = document.createElement('template');
    template.innerHTML = html;
    if (parsed.size >= CACHE_SIZE) parsed.delete(parsed.keys().next().value);
    parsed.set(key, template);
  }
  return document.importNode(template.content, true);
}

/** HTML that needs no sanitizing (see renderMarkdownSlots) as a fragment, parsed inert. */
function parseTrusted(html) {
  const template = document.createElement('template');
  template.innerHTML = html;
  return document.importNode(template.content, true);
}

/**
 * A markdown text as a fragment, its math rendered. Raw HTML in it means
 * DOMPurify; without any, markdown-it's own markup is only parsed.
 */
export function markdownFragment(text, attachments = null) {
  const { html, rawHtml } = renderMarkdownSlots(text, attachments);
  const fragment = rawHtml ? sanitize(html) : parseTrusted(html);
  for (const slot of fragment.querySelectorAll('span[data-quire-tex]')) {
    slot.replaceWith(mathFragment(slot.getAttribute('data-quire-tex'), slot.hasAttribute('data-quire-display')));
  }
  return fragment;
}
