// Markdown of markdown cells and text/markdown outputs, as Jupyter renders it:
// CommonMark + GFM tables and strikethrough (markdown-it), task lists
// (markdown-it-task-lists), `$...$` / `$$...$$` math (KaTeX through
// @vscode/markdown-it-katex), headings with ids, and `attachment:name` images
// from the cell's attachments. Pure (a string in, an HTML string out; runs
// under Node): the HTML may hold raw HTML from the source, so the view puts it
// through sanitize.js before it reaches the page.
//
// For the page, `renderMarkdownSlots` leaves each formula as an empty
// `<span data-quire-tex>` slot and says whether the text holds raw HTML: the
// page sanitizes the (small) markdown HTML when it does, then fills every slot
// with that formula's KaTeX rendering, rendered and parsed once per distinct
// formula (markdown-dom.js). KaTeX's markup is most of a math-heavy cell.

import katex from 'katex';
import MarkdownIt from 'markdown-it';
import taskLists from 'markdown-it-task-lists';
import anchor from 'markdown-it-anchor';
import katexPluginModule from '@vscode/markdown-it-katex';

// A CommonJS module with `exports.default`: Node hands over the exports
// object, esbuild the function.
const katexPlugin = katexPluginModule.default || katexPluginModule;

/** Image types an attachment may be shown as (all as <img>, which cannot script). */
const ATTACHMENT_IMAGES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/svg+xml'];

function slugify(text) {
  const slug = String(text).trim().toLowerCase().replace(/[^\p{L}\p{N}]+/gu, '-').replace(/^-+|-+$/g, '');
  return slug || 'section';
}

/** KaTeX options of every formula (markdown, text/latex outputs); `trust: false` matters: see markdown-dom.js. */
const KATEX_OPTIONS = { throwOnError: false, output: 'htmlAndMathml', trust: false };

/** Distinct formulas kept rendered (a notebook has a few hundred; this bounds a pathological one). */
const MATH_CACHE_SIZE = 2000;
const mathCache = new Map();

/**
 * KaTeX's HTML of `tex` (display or inline), rendered once per distinct
 * formula. Unsanitized, like renderMarkdown's result.
 */
export function renderMath(tex, displayMode) {
  const key = `${displayMode ? 'D' : 'I'}${tex}`;
  let html = mathCache.get(key);
  if (html === undefined) {
    html = katex.renderToString(tex, { ...KATEX_OPTIONS, displayMode });
    if (mathCache.size >= MATH_CACHE_SIZE) mathCache.delete(mathCache.keys().next().value);
    mathCache.set(key, html);
  }
  return html;
}

/** What the KaTeX plugin calls: the cached renderer, or one leaving a slot per formula. */
const cachedKatex = { renderToString: (tex, opts) => renderMath(tex, !!opts?.displayMode) };
const slotKatex = {
  renderToString: (tex, opts) =>
    `<span data-quire-tex="${escapeAttr(tex)}"${opts?.displayMode ? ' data-quire-display=""' : ''}></span>`,
};

function escapeAttr(text) {
  return text.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function markdownIt(katexImpl) {
  const md = new MarkdownIt({ html: true, linkify: true })
    .enable(['table', 'strikethrough'])
    .use(taskLists, { enabled: false })
    .use(anchor, { slugify, tabIndex: false })
    .use(katexPlugin, { ...KATEX_OPTIONS, katex: katexImpl });
  withAttachmentsAndLinks(md);
  return md;
}

function withAttachmentsAndLinks(md) {
  const defaultImage = md.renderer.rules.image;
  md.renderer.rules.image = (tokens, idx, options, env, self) => {
    const token = tokens[idx];
    const src = token.attrGet('src') || '';
    if (src.startsWith('attachment:')) token.attrSet('src', attachmentUrl(env.attachments, src.slice('attachment:'.length)));
    return defaultImage(tokens, idx, options, env, self);
  };

  const defaultLinkOpen = md.renderer.rules.link_open || ((tokens, idx, options, env, self) => self.renderToken(tokens, idx, options));
  md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
    tokens[idx].attrSet('target', '_blank');
    tokens[idx].attrSet('rel', 'noopener noreferrer');
    return defaultLinkOpen(tokens, idx, options, env, self);
  };
}

const md = markdownIt(cachedKatex);
const mdSlots = markdownIt(slotKatex);

/**
 * A data: URL for attachment `name` (URL-decoded) of a cell's `attachments`
 * (`{name: {mime: base64}}`); an empty string when there is no such image.
 */
export function attachmentUrl(attachments, name) {
  let key = name;
  try { key = decodeURIComponent(name); } catch { /* keep it as written */ }
  const bundle = attachments?.[key] ?? attachments?.[name];
  if (!bundle || typeof bundle !== 'object') return '';
  const mime = ATTACHMENT_IMAGES.find((m) => typeof bundle[m] === 'string' || Array.isArray(bundle[m]));
  if (!mime) return '';
  const value = Array.isArray(bundle[mime]) ? bundle[mime].join('') : bundle[mime];
  if (mime === 'image/svg+xml') return `data:image/svg+xml;charset=utf-8,${encodeURIComponent(value)}`;
  return `data:${mime};base64,${value.replace(/\s+/g, '')}`;
}

/** HTML of a markdown text (unsanitized: see sanitize.js). */
export function renderMarkdown(text, attachments = null) {
  return md.render(String(text ?? ''), { attachments });
}

/**
 * HTML of a markdown text with every formula left as an empty
 * `<span data-quire-tex="TeX" [data-quire-display]>` (unsanitized), and
 * whether the text holds raw HTML. Without raw HTML the result is markdown-it's
 * own markup, safe by construction: text and attributes escaped, link and
 * image URLs through markdown-it's validateLink (no javascript:, vbscript:,
 * file:, or data: but images), heading ids slugs, attachments data: URLs of
 * image types, formulas empty slots.
 */
export function renderMarkdownSlots(text, attachments = null) {
  const env = { attachments };
  const tokens = mdSlots.parse(String(text ?? ''), env);
  const rawHtml = tokens.some((t) => t.type === 'html_block' || t.children?.some((c) => c.type === 'html_inline'));
  return { html: mdSlots.renderer.render(tokens, mdSlots.options, env), rawHtml };
}
