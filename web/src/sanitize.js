// The one door for HTML that comes from a notebook (HTML outputs, markdown
// with raw HTML, KaTeX's markup) into the page: DOMPurify, returning a
// fragment. Scripts, event-handler attributes, `javascript:` URLs, iframes,
// objects and forms are dropped; tables, inline styles, SVG and MathML stay
// (a pandas DataFrame still renders as a table). `<style>` elements are
// dropped too: the page's CSP only lets nonce-carrying style elements apply,
// and a notebook's stylesheet would restyle the whole page.

import DOMPurify from 'dompurify';

const CONFIG = {
  RETURN_DOM_FRAGMENT: true,
  FORBID_TAGS: ['style', 'iframe', 'frame', 'object', 'embed', 'form', 'base', 'link', 'meta'],
  FORBID_ATTR: ['srcdoc', 'formaction', 'action', 'ping'],
  ADD_ATTR: ['target'],
};

// Links open in a new tab and hand the notebook page nothing.
DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A' && node.hasAttribute('href')) {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer');
  }
});

/** A fragment holding `html` with everything that could script removed. */
export function sanitize(html) {
  return DOMPurify.sanitize(String(html ?? ''), CONFIG);
}

/** Puts sanitized `html` into `el` (replacing its children). */
export function setSafeHtml(el, html) {
  el.replaceChildren(sanitize(html));
  return el;
}
