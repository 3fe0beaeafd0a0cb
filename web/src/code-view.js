// Code cells shown through CodeMirror 6: syntax highlighting for the
// notebook's language (Python, JavaScript, or plain text), bracket matching,
// read-only. Tokens get `tok-*` classes (@lezer/highlight's classHighlighter)
// coloured by app.css, so highlighting needs no injected theme. CodeMirror
// still injects its base <style> elements: they carry the page's CSP nonce
// (the server puts a fresh one in <meta name="csp-nonce"> of every page).
//
// Editing still happens in the cell's textarea (the whole-source cell.update
// flow); this view is what a cell shows when nobody is typing in it, and all
// a viewer gets. Co-editing will make CodeMirror the editor itself.

import { EditorState, Compartment } from '@codemirror/state';
import { EditorView } from '@codemirror/view';
import { syntaxHighlighting, bracketMatching } from '@codemirror/language';
import { classHighlighter } from '@lezer/highlight';
import { python } from '@codemirror/lang-python';
import { javascript } from '@codemirror/lang-javascript';
import { diffRange } from './merge.js';

const LANGUAGES = {
  python: () => python(),
  javascript: () => javascript(),
  text: () => [],
};

/** The nonce of this page response (empty outside a served page). */
export function cspNonce() {
  return document.querySelector('meta[name="csp-nonce"]')?.getAttribute('content') || '';
}

export class CodeView {
  /**
   * @param {object} o
   * @param {string} o.language   'python' | 'javascript' | 'text'
   * @param {string} o.text
   */
  constructor({ language, text }) {
    this.language = new Compartment();
    this.view = new EditorView({
      state: EditorState.create({
        doc: text,
        extensions: [
          EditorView.cspNonce.of(cspNonce()),
          EditorState.readOnly.of(true),
          EditorView.editable.of(false),
          EditorView.contentAttributes.of({ 'aria-label': 'Cell source (highlighted)' }),
          this.language.of((LANGUAGES[language] || LANGUAGES.text)()),
          syntaxHighlighting(classHighlighter),
          bracketMatching(),
        ],
      }),
    });
    this.dom = this.view.dom;
  }

  /** Shows `text`, replacing only what changed. */
  setText(text) {
    const doc = this.view.state.doc.toString();
    if (doc === text) return;
    const d = diffRange(doc, text);
    this.view.dispatch({ changes: { from: d.start, to: d.end, insert: d.insert } });
  }

  destroy() { this.view.destroy(); }
}
