// Markdown as Jupyter renders it (web/src/markdown.js): GFM tables,
// strikethrough, task lists, KaTeX math, heading ids, attachment images.
// Sanitizing happens in the browser (sanitize.js, checked by the e2e test);
// here: what markdown-it makes, and that unsafe links never become links.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderMarkdown, renderMarkdownSlots, renderMath, attachmentUrl } from '../src/markdown.js';

test('GFM tables, strikethrough and task lists', () => {
  const html = renderMarkdown('| a | b |\n|---|---|\n| 1 | 2 |\n\n~~old~~\n\n- [x] done\n- [ ] todo');
  assert.match(html, /<table>[\s\S]*<th>a<\/th>[\s\S]*<td>2<\/td>/);
  assert.match(html, /<s>old<\/s>/);
  assert.match(html, /<li class="task-list-item"><input class="task-list-item-checkbox" checked="" disabled="" type="checkbox"> done/);
});

test('inline and display math render with KaTeX', () => {
  const html = renderMarkdown('Euler: $e^{i\\pi}+1=0$\n\n$$\\int_0^1 x\\,dx$$');
  assert.match(html, /class="katex"/);
  assert.match(html, /class="katex-display"/);
  assert.match(html, /<math/);
  assert.doesNotMatch(html, /\$e\^/);
});

test('for the page, each formula is left as a slot holding its TeX, the rest rendered the same', () => {
  const text = 'Euler: $e^{i\\pi}<1$ and **bold**\n\n$$\\int_0^1 x\\,dx$$';
  const { html, rawHtml } = renderMarkdownSlots(text);
  assert.equal(rawHtml, false);
  assert.match(html, /<span data-quire-tex="e\^\{i\\pi\}&lt;1"><\/span>/);
  assert.match(html, /<span data-quire-tex="\\int_0\^1 x\\,dx\n?" data-quire-display=""><\/span>/);
  assert.match(html, /<strong>bold<\/strong>/);
  assert.doesNotMatch(html, /katex"/);
  // The full rendering has KaTeX's markup where the slots are, and the formula renders the same alone.
  assert.ok(renderMarkdown(text).includes(renderMath('e^{i\\pi}<1', false)));
});

test('raw HTML in markdown is noticed (the page sanitizes those cells), markdown-it\'s own markup is not raw HTML', () => {
  for (const text of ['<img src=x onerror=alert(1)>', 'text <b onclick="x()">b</b>', '<div>\n\n*x*\n\n</div>', '- item <span>x</span>']) {
    assert.equal(renderMarkdownSlots(text).rawHtml, true, text);
  }
  for (const text of ['# Title\n\n**b** `<b>` [a](https://x.org) ![i](attachment:a.png)', '```html\n<script>x</script>\n```', '\\<b>', '[a](javascript:alert(1))']) {
    const { html, rawHtml } = renderMarkdownSlots(text);
    assert.equal(rawHtml, false, text);
    assert.doesNotMatch(html, /<(script|b)[ >]|href="javascript:/i, text);
  }
});

test('a formula renders once: the same TeX gives the very same markup, inline and display apart', () => {
  assert.equal(renderMath('x^2', false), renderMath('x^2', false));
  assert.notEqual(renderMath('x^2', false), renderMath('x^2', true));
  assert.match(renderMath('x^2', true), /katex-display/);
});

test('headings get ids to link to', () => {
  assert.match(renderMarkdown('# Plan (bob)'), /<h1 id="plan-bob">Plan \(bob\)<\/h1>/);
});

test('attachment: images become data: URLs of the cell\'s attachments', () => {
  const attachments = { 'dot.png': { 'image/png': 'iVBORw0KGgo=' } };
  const html = renderMarkdown('![a dot](attachment:dot.png)', attachments);
  assert.match(html, /<img src="data:image\/png;base64,iVBORw0KGgo=" alt="a dot">/);
  assert.equal(attachmentUrl(attachments, 'missing.png'), '');
  assert.equal(attachmentUrl({ 'x.html': { 'text/html': '<script>' } }, 'x.html'), '', 'only images');
});

test('javascript: and data:text/html links are not links', () => {
  const html = renderMarkdown('[a](javascript:alert(1)) [b](data:text/html,<script>alert(1)</script>) [ok](https://example.com/)');
  assert.doesNotMatch(html, /href="(javascript|data):/i);
  assert.match(html, /<a href="https:\/\/example.com\/" target="_blank" rel="noopener noreferrer">ok<\/a>/);
});

test('fenced code stays verbatim', () => {
  assert.equal(renderMarkdown('```\n<x> **no**\n```'), '<pre><code>&lt;x&gt; **no**\n</code></pre>\n');
});
