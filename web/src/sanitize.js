// The one door for HTML that comes from a notebook (HTML outputs, markdown
// with raw HTML) into the page: DOMPurify, returning a fragment. (KaTeX's
// markup and markdown-it's markup of text without raw HTML are generated, not
// the notebook's HTML: see markdown-dom.js.) Scripts, event-handler attributes, `javascript:` URLs, iframes,
// objects and forms are dropped; tables, inline styles, SVG and MathML stay
// (a pandas DataFrame still renders as a table). `<style>` elements are
// dropped too: the page's CSP only lets nonce-carrying style elements apply,
// and a notebook's stylesheet would restyle the whole page. What DOMPurify
// checked is what goes in: its result is a DOM fragment, never re-parsed.

import DOMPurify from 'dompurify';

const CONFIG = {
  RETURN_DOM_FRAGMENT: true,
  FORBID_TAGS: ['style', 'iframe', 'frame', 'object', 'embed', 'form', 'base', 'link', 'meta'],
  FORBID_ATTR: ['srcdoc', 'formaction', 'action', 'ping'],
  ADD_ATTR: ['target'],
};
// Once, not per call: given a config per call, DOMPurify parses it every time.
DOMPurify.setConfig(CONFIG);

// Links open in a new tab and hand the notebook page nothing.
DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A' && node.hasAttribute('href')) {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer');
  }
});

/**
 * `html` without its `<style>` elements, parsed in a template (inert: nothing
 * loads, runs or applies there), as a fragment for DOMPurify to check (no
 * second parse). DOMPurify would drop them too, but it parses into a document
 * of its own, where the page's CSP already reports each one as a violation.
 */
function withoutStyleElements(html) {
  // Most HTML has no style element: skip the extra parse (DOMPurify drops any anyway).
  if (!html.toLowerCase().includes('<style')) return html;
  const template = document.createElement('template');
  template.innerHTML = html;
  for (const style of template.content.querySelectorAll('style')) style.remove();
  return template.content;
}

/** A fragment holding `html` with everything that could script removed. */
export function sanitize(html) {
  return DOMPurify.sanitize(withoutStyleElements(String(html ?? '')));
}

/** Puts sanitized `html` into `el` (replacing its children). */
export function setSafeHtml(el, html) {
  el.replaceChildren(sanitize(html));
  return el;
}

/** Distinct HTML strings kept sanitized, and the longest one kept. */
const CACHE_SIZE = 1000;
const CACHE_MAX_CHARS = 64 * 1024;
const cache = new Map();

/**
 * Like sanitize, but HTML seen before is not parsed and checked again: the
 * fragment DOMPurify made of it the first time is cloned (KaTeX formulas a
 * notebook repeats, outputs shown again after a reconnect).
 */
export function sanitizeCached(html) {
  const text = String(html ?? '');
  if (text.length > CACHE_MAX_CHARS) return sanitize(text);
  let fragment = cache.get(text);
  if (!fragment) {
    fragment = sanitize(text);
    if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value);
    cache.set(text, fragment);
  }
  return fragment.cloneNode(true);
}
