// DOM helpers. Text always goes in as text nodes (never as HTML).

const PROPS = new Set(['value', 'checked', 'disabled', 'readOnly', 'hidden', 'selected', 'title']);

/** h('button', {class: 'x', onclick: fn}, 'text', child, ...) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (PROPS.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let toastSeq = 0;

/** A short message in the corner; `kind` is info, ok or error. */
export function toast(message, kind = 'info', ms = 5000) {
  const box = document.getElementById('toasts');
  if (!box) return;
  const id = ++toastSeq;
  const item = h('div', { class: `toast toast-${kind}`, dataset: { id: String(id) } },
    h('span', {}, message),
    h('button', { class: 'toast-close', type: 'button', 'aria-label': 'Dismiss', onclick: () => item.remove() }, '×'));
  box.append(item);
  while (box.children.length > 4) box.firstElementChild.remove();
  if (ms) setTimeout(() => item.remove(), ms);
}

/** "3 min ago" style times. */
export function ago(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 45) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(t).toLocaleDateString();
}

/** Grows a textarea to fit its text. */
export function autosize(textarea) {
  textarea.style.height = 'auto';
  textarea.style.height = `${textarea.scrollHeight + 2}px`;
}

/** Saves a Blob under a file name. */
export function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** A file name made of a title. */
export function fileName(title, ext) {
  const base = String(title || 'notebook').replace(/[^\w .-]+/g, '_').trim().slice(0, 80) || 'notebook';
  return `${base}${ext}`;
}
