// A small, safe Markdown renderer for markdown cells.
//
// Safety rule: every piece of the user's text is HTML-escaped before any
// markup is added, and the only markup added is a fixed set of tags; the one
// attribute that carries user text (a link's href) is escaped and limited to
// http(s), mailto and relative URLs. Code spans and links are cut out first
// (as placeholders) so emphasis rules never reach into them.
//
// Supported: ATX headings, paragraphs, **bold**, *italic* / _italic_,
// `code`, fenced code blocks, [links](url), - / * / + lists, 1. lists,
// > quotes and --- rules. Pure functions: this module also runs under Node.

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes the five HTML-special characters. */
export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

function unescapeHtml(text) {
  return text.replace(/&(amp|lt|gt|quot|#39);/g, (_, e) =>
    ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" })[e]);
}

/** Whether an (unescaped) URL may become an href. */
export function isSafeUrl(url) {
  if (/[\u0000-\u0020\u007f]/.test(url)) return false;
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url);
  if (!scheme) return true; // relative, #fragment, /path
  return ['http', 'https', 'mailto'].includes(scheme[1].toLowerCase());
}

const PH = '\u0000';

/** Inline markup of one block's text (not yet escaped). */
export function renderInline(raw) {
  const kept = [];
  const keep = (html) => `${PH}${kept.push(html) - 1}${PH}`;
  let text = String(raw).replaceAll(PH, '');
  // 1. code spans, verbatim
  text = text.replace(/`([^`\n]+)`/g, (_, code) => keep(`<code>${escapeHtml(code)}</code>`));
  // 2. everything else is escaped from here on
  text = escapeHtml(text);
  // 3. links: [label](url), label gets emphasis, url is checked and stays escaped
  text = text.replace(/\[([^\]\n]+)\]\(([^()\s]+)\)/g, (whole, label, url) => {
    if (!isSafeUrl(unescapeHtml(url))) return whole;
    return keep(`<a href="${url}" rel="noopener noreferrer" target="_blank">${emphasis(label)}</a>`);
  });
  text = emphasis(text);
  return text.replace(new RegExp(`${PH}(\\d+)${PH}`, 'g'), (_, i) => kept[Number(i)]);
}

function emphasis(text) {
  return text
    .replace(/\*\*(?=\S)([^*]*?\S)\*\*/g, '<strong>$1</strong>')
    .replace(/(^|[^\w])__(?=\S)([^_]*?\S)__(?!\w)/g, '$1<strong>$2</strong>')
    .replace(/\*(?=\S)([^*]*?\S)\*/g, '<em>$1</em>')
    .replace(/(^|[^\w])_(?=\S)([^_]*?\S)_(?!\w)/g, '$1<em>$2</em>');
}

const FENCE = /^\s{0,3}(`{3,}|~{3,})\s*([\w+#.-]*)\s*$/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$/;
const RULE = /^\s{0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE = /^\s{0,3}>\s?/;
const BULLET = /^\s{0,3}[-*+]\s+/;
const ORDERED = /^\s{0,3}(\d{1,9})[.)]\s+/;
const BLANK = /^\s*$/;

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) ||
    BULLET.test(line) || ORDERED.test(line);
}

/** Renders Markdown to an HTML string that is safe to assign to innerHTML. */
export function renderMarkdown(source, depth = 0) {
  const lines = String(source).replace(/\r\n?/g, '\n').split('\n');
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if ((m = FENCE.exec(line))) {
      const fence = m[1];
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence)) body.push(lines[i++]);
      i++;
      out.push(`<pre><code>${escapeHtml(body.join('\n'))}</code></pre>`);
    } else if (BLANK.test(line)) {
      i++;
    } else if ((m = HEADING.exec(line))) {
      const n = m[1].length;
      out.push(`<h${n}>${renderInline(m[2])}</h${n}>`);
      i++;
    } else if (RULE.test(line)) {
      out.push('<hr>');
      i++;
    } else if (QUOTE.test(line) && depth < 8) {
      const body = [];
      while (i < lines.length && QUOTE.test(lines[i])) body.push(lines[i++].replace(QUOTE, ''));
      out.push(`<blockquote>${renderMarkdown(body.join('\n'), depth + 1)}</blockquote>`);
    } else if (BULLET.test(line) || ORDERED.test(line)) {
      const ordered = !BULLET.test(line);
      const marker = ordered ? ORDERED : BULLET;
      const first = ordered ? Number(ORDERED.exec(line)[1]) : 1;
      const items = [];
      while (i < lines.length && marker.test(lines[i])) {
        let item = lines[i++].replace(marker, '');
        // lazy continuation lines belong to the item
        while (i < lines.length && !BLANK.test(lines[i]) && !startsBlock(lines[i])) item += `\n${lines[i++].trim()}`;
        items.push(`<li>${renderInline(item)}</li>`);
      }
      const tag = ordered ? 'ol' : 'ul';
      const start = ordered && first !== 1 ? ` start="${first}"` : '';
      out.push(`<${tag}${start}>${items.join('')}</${tag}>`);
    } else {
      const para = [];
      while (i < lines.length && !BLANK.test(lines[i]) && !(para.length && startsBlock(lines[i]))) {
        para.push(lines[i++]);
      }
      out.push(`<p>${renderInline(para.join('\n'))}</p>`);
    }
  }
  return out.join('\n');
}
