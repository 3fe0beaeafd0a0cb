// Markdown and math into the page as DOM: the markdown's HTML (formulas left
// as slots by markdown.js) goes through DOMPurify, then each slot gets its
// formula's KaTeX rendering, itself rendered and sanitized once per distinct
// formula (sanitizeCached). Everything that reaches the page went through
// sanitize.js; a formula repeated across a notebook costs one clone.

import { renderMarkdownSlots, renderMath } from './markdown.js';
import { sanitize, sanitizeCached } from './sanitize.js';

/** A formula as sanitized DOM (KaTeX's error text when it cannot be rendered). */
export function mathFragment(tex, displayMode) {
  let html;
  try {
    html = renderMath(tex, displayMode);
  } catch (error) {
    const span = document.createElement('span');
    span.className = 'katex-error';
    span.title = tex;
    span.textContent = String(error);
    return span;
  }
  return sanitizeCached(html);
}

/** A markdown text as a sanitized fragment, its math rendered. */
export function markdownFragment(text, attachments = null) {
  const fragment = sanitize(renderMarkdownSlots(text, attachments));
  for (const slot of fragment.querySelectorAll('span[data-quire-tex]')) {
    slot.replaceWith(mathFragment(slot.getAttribute('data-quire-tex'), slot.hasAttribute('data-quire-display')));
  }
  return fragment;
}
