// The read-only CodeMirror 6 view a code cell becomes near the screen (see
// code-view.js): highlighting for the notebook's language, bracket matching.
// A module of its own, loaded on first use, so CodeMirror's view and state
// (the bigger half of the editor code) are not parsed before the notebook's
// first cells paint.

import { EditorState } from '@codemirror/state';
import { EditorView } from '@codemirror/view';
import { syntaxHighlighting, bracketMatching } from '@codemirror/language';
import { classHighlighter } from '@lezer/highlight';
import { python } from '@codemirror/lang-python';
import { javascript } from '@codemirror/lang-javascript';

const SUPPORT = { python, javascript };

/** A read-only view of `text`; its injected <style>s carry the page's CSP `nonce`. */
export function createEditor({ language, text, nonce }) {
  const support = SUPPORT[language];
  return new EditorView({
    state: EditorState.create({
      doc: text,
      extensions: [
        EditorView.cspNonce.of(nonce),
        EditorState.readOnly.of(true),
        EditorView.editable.of(false),
        EditorView.contentAttributes.of({ 'aria-label': 'Cell source (highlighted)' }),
        support ? support() : [],
        syntaxHighlighting(classHighlighter),
        bracketMatching(),
      ],
    }),
  });
}
