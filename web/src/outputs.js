// A code cell's outputs in the page, as Jupyter shows them (what to show is
// decided in output-model.js): streams (stdout and stderr styled apart),
// images as <img> with data: URLs (an SVG in an <img> cannot script),
// sanitized HTML, markdown, KaTeX for LaTeX, JSON, plain text, and tracebacks
// with their ANSI colours (ansi_up, as classes). Long text folds behind
// "Show more". Nothing an output holds can run script: HTML goes through
// sanitize.js and application/javascript is shown as text.

import { AnsiUp } from 'ansi_up';
import { h } from './ui.js';
import { displayItems, imageUrl, latexSource } from './output-model.js';
import { markdownFragment, mathFragment } from './markdown-dom.js';
import { setSafeHtml, sanitizeCached } from './sanitize.js';

const ansi = new AnsiUp();
ansi.use_classes = true;
ansi.escape_html = true;

/**
 * Text in a <pre>; with ANSI escapes, their colours (ansi_up's HTML, escaped
 * by it, then sanitized anyway). Text without an escape is just a text node.
 */
function ansiPre(cls, text) {
  if (!text.includes('\u001b')) return h('pre', { class: cls }, text);
  return setSafeHtml(h('pre', { class: cls }), ansi.ansi_to_html(text));
}

function dataBody(item) {
  const { mime, value } = item;
  switch (mime) {
    case 'image/png':
    case 'image/jpeg':
    case 'image/svg+xml':
      return h('img', { class: 'output-image', src: imageUrl(mime, value), alt: 'Output image', decoding: 'async' });
    case 'text/html':
      return h('div', { class: 'output-html' }, sanitizeCached(value));
    case 'text/markdown':
      return h('div', { class: 'output-markdown md' }, markdownFragment(value));
    case 'text/latex':
      return h('div', { class: 'output-latex' }, mathFragment(latexSource(value), true));
    case 'application/json':
      return h('pre', { class: 'output-json' }, value);
    case 'application/javascript':
      return h('pre', { class: 'output-text output-js', title: 'JavaScript output (not run)' }, value);
    default:
      return ansiPre('output-text', value);
  }
}

function itemBody(item) {
  switch (item.kind) {
    case 'stream':
      return ansiPre(`output-stream ${item.name}`, item.text);
    case 'error':
      return ansiPre('output-error', item.traceback || `${item.ename}: ${item.evalue}`);
    case 'data':
      return dataBody(item);
    default:
      return h('p', { class: 'output-unknown muted' }, `(an output of type “${item.type}” this page does not show)`);
  }
}

/** Long text behind a "Show more" toggle. */
function foldable(body, item) {
  if (!item.fold) return body;
  const box = h('div', { class: 'fold folded' }, body);
  const more = `Show all ${item.lines} lines`;
  const toggle = h('button', {
    type: 'button', class: 'link show-more', 'aria-expanded': 'false',
    onclick: () => {
      const folded = box.classList.toggle('folded');
      toggle.textContent = folded ? more : 'Show less';
      toggle.setAttribute('aria-expanded', String(!folded));
    },
  }, more);
  return h('div', {}, box, toggle);
}

/** The outputs area of a code cell (empty element when it has none). */
export function renderOutputs(outputs) {
  const items = displayItems(outputs);
  return h('div', { class: 'outputs', hidden: items.length === 0 },
    items.map((item) => h('div', { class: `output output-${item.kind}`, dataset: { mime: item.mime ?? item.kind } },
      h('div', { class: 'prompt out-prompt', 'aria-hidden': item.prompt ? null : 'true' }, item.prompt ?? ''),
      h('div', { class: 'output-body' }, foldable(itemBody(item), item)))));
}
