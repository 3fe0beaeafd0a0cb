// Markdown of markdown cells and text/markdown outputs, as Jupyter renders it:
// CommonMark + GFM tables and strikethrough (markdown-it), task lists
// (markdown-it-task-lists), `$...$` / `$$...$$` math (KaTeX through
// @vscode/markdown-it-katex), headings with ids, and `attachment:name` images
// from the cell's attachments. Pure (a string in, an HTML string out; runs
// under Node): the HTML may hold raw HTML from the source, so the view puts it
// through sanitize.js before it reaches the page.

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

const md = new MarkdownIt({ html: true, linkify: true })
  .enable(['table', 'strikethrough'])
  .use(taskLists, { enabled: false })
  .use(anchor, { slugify, tabIndex: false })
  .use(katexPlugin, { throwOnError: false, output: 'htmlAndMathml' });

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
