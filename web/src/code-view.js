// Code cells shown through CodeMirror 6: syntax highlighting for the
// notebook's language (Python, JavaScript, or plain text), bracket matching,
// read-only. Tokens get `tok-*` classes (@lezer/highlight's classHighlighter)
// coloured by app.css, so highlighting needs no injected theme. CodeMirror
// still injects its base <style> elements: they carry the page's CSP nonce
// (the server puts a fresh one in <meta name="csp-nonce"> of every page).
//
// A cell first shows its code highlighted by the same parser and highlighter
// without an editor (a <pre>; cheap), and becomes a CodeMirror view when it
// comes near the screen: a 500-cell notebook opens without building 250
// editors at once. The view's code (code-editor.js) loads on the first
// upgrade, after the first cells painted.
//
// Editing still happens in the cell's textarea (the whole-source cell.update
// flow); this view is what a cell shows when nobody is typing in it, and all
// a viewer gets. Co-editing will make CodeMirror the editor itself.

import { classHighlighter, highlightCode } from '@lezer/highlight';
import { parser as pythonParser } from '@lezer/python';
import { parser as javascriptParser } from '@lezer/javascript';
import { diffRange } from './merge.js';

/** The grammars (with their highlighting tags) static highlighting parses with. */
const PARSERS = { python: pythonParser, javascript: javascriptParser };

/** code-editor.js, loaded once. */
let editorModule = null;
function loadEditor() {
  editorModule ??= import('./code-editor.js');
  return editorModule;
}

/** The nonce of this page response (empty outside a served page). */
export function cspNonce() {
  return document.querySelector('meta[name="csp-nonce"]')?.getAttribute('content') || '';
}

/** Code as highlighted lines in a <pre>, the way the editor will show it. */
function staticHighlight(pre, text, language) {
  pre.replaceChildren();
  const parser = PARSERS[language];
  if (!parser) {
    pre.textContent = text;
    return;
  }
  highlightCode(text, parser.parse(text), classHighlighter,
    (chunk, classes) => pre.append(classes ? Object.assign(document.createElement('span'), { className: classes, textContent: chunk }) : chunk),
    () => pre.append('\n'));
}

/** One observer for every code view: each upgrades once it nears the screen. */
let observer = null;
function watch(view) {
  if (typeof IntersectionObserver === 'undefined') {
    view.upgrade();
    return;
  }
  observer ??= new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      observer.unobserve(entry.target);
      entry.target.codeView?.upgrade();
    }
  }, { rootMargin: '600px 0px' });
  view.dom.codeView = view;
  observer.observe(view.dom);
}

export class CodeView {
  /**
   * @param {object} o
   * @param {string} o.language   'python' | 'javascript' | 'text'
   * @param {string} o.text
   */
  constructor({ language, text }) {
    this.language = language;
    this.text = text;
    this.editor = null;
    this.dom = document.createElement('div');
    this.dom.className = 'code-view-body';
    this.pre = document.createElement('pre');
    this.pre.className = 'code-static';
    staticHighlight(this.pre, text, language);
    this.dom.append(this.pre);
    watch(this);
  }

  /** Replaces the static rendering with a read-only CodeMirror view (once its code has loaded). */
  async upgrade() {
    if (this.editor || this.upgrading || !this.dom.isConnected) return;
    this.upgrading = true;
    const { createEditor } = await loadEditor();
    this.upgrading = false;
    if (this.editor || this.destroyed) return;
    this.editor = createEditor({ language: this.language, text: this.text, nonce: cspNonce() });
    this.pre.replaceWith(this.editor.dom);
  }

  /** Shows `text`, replacing only what changed. */
  setText(text) {
    if (text === this.text) return;
    const before = this.text;
    this.text = text;
    if (!this.editor) {
      staticHighlight(this.pre, text, this.language);
      return;
    }
    const d = diffRange(before, text);
    this.editor.dispatch({ changes: { from: d.start, to: d.end, insert: d.insert } });
  }

  destroy() {
    this.destroyed = true;
    observer?.unobserve(this.dom);
    this.editor?.destroy();
  }
}
