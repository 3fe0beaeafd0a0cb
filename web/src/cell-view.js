// One cell on the notebook page: its toolbar, the conflict box, the editor
// (a textarea), and what the cell shows when nobody types in it: rendered
// markdown, or highlighted code (code-view.js) with its `In [n]` prompt and
// outputs (outputs.js). The cell knows nothing of sockets or edits; the
// notebook view tells it what to show and hears back what the user did.

import { h, replace, autosize } from './ui.js';
import { CELL_TYPES } from './notebook.js';
import { inPrompt } from './output-model.js';
import { mapCaret } from './merge.js';
import { markdownFragment } from './markdown-dom.js';
import { renderOutputs } from './outputs.js';
import { CodeView } from './code-view.js';

export class CellView {
  /**
   * @param {object} o
   * @param {string} o.id
   * @param {string} o.text       the text to start with
   * @param {string} o.language   of code cells (see code-view.js)
   * @param {object} o.on         handlers: input(text), key(ev), focus(), blur(), edit(),
   *                              type(t), move(delta), addBelow(), remove(), keepMine(), takeTheirs()
   */
  constructor({ id, text, language, on }) {
    this.id = id;
    this.language = language;
    this.on = on;
    this.codeView = null;
    this.shownOutputs = undefined;
    this.shownMarkdown = null;
    this.textarea = h('textarea', {
      class: 'cell-source', spellcheck: 'false', rows: 1, 'aria-label': 'Cell source',
      autocapitalize: 'off', autocomplete: 'off',
    });
    this.textarea.value = text;
    this.textarea.hidden = true; // until the first renderMode
    this.textarea.addEventListener('input', () => {
      autosize(this.textarea);
      on.input(this.textarea.value);
    });
    this.textarea.addEventListener('keydown', (ev) => on.key(ev));
    this.textarea.addEventListener('focus', () => { this.root.classList.add('focused'); on.focus(); });
    this.textarea.addEventListener('blur', () => on.blur());
    const enterOnClick = (ev) => { if (!ev.target.closest('a')) on.edit(); };
    const enterOnKey = (ev) => { if (ev.key === 'Enter') { ev.preventDefault(); on.edit(); } };
    this.preview = h('div', {
      class: 'md-preview md', tabindex: '0', hidden: true, role: 'button', 'aria-label': 'Markdown cell; press Enter to edit',
      onclick: enterOnClick, onkeydown: enterOnKey,
    });
    this.codeBox = h('div', {
      class: 'code-view', tabindex: '0', hidden: true, role: 'button', 'aria-label': 'Code cell; press Enter to edit',
      onclick: enterOnClick, onkeydown: enterOnKey,
    });
    this.inPrompt = h('div', { class: 'prompt in-prompt', 'aria-hidden': 'true' });
    this.outputs = h('div', { class: 'outputs-slot' });
    this.type = h('select', { class: 'cell-type', 'aria-label': 'Cell type', onchange: (ev) => on.type(ev.target.value) },
      CELL_TYPES.map((t) => h('option', { value: t }, t)));
    const btn = (label, glyph, onclick, cls) => h('button', { type: 'button', class: `icon ${cls}`, title: label, 'aria-label': label, onclick }, glyph);
    this.up = btn('Move up', '↑', () => on.move(-1), 'move-up');
    this.down = btn('Move down', '↓', () => on.move(1), 'move-down');
    this.buttons = [this.up, this.down, btn('Add a cell below', '+', () => on.addBelow(), 'add-below'), btn('Delete cell', '✕', () => on.remove(), 'delete')];
    this.status = h('span', { class: 'cell-status', 'aria-live': 'polite' });
    this.typeLabel = h('span', { class: 'cell-type-label' });
    this.position = h('span', { class: 'cell-pos', 'aria-hidden': 'true' });
    this.conflict = h('div', { class: 'conflict', hidden: true, role: 'alert' });
    this.root = h('article', { class: 'cell', dataset: { cellId: id }, tabindex: '-1' },
      h('div', { class: 'cell-bar' }, this.position, this.type, this.typeLabel, this.status, h('span', { class: 'spacer' }), this.buttons),
      this.conflict,
      h('div', { class: 'cell-main' }, this.inPrompt,
        h('div', { class: 'cell-input' }, this.textarea, this.preview, this.codeBox)),
      this.outputs);
  }

  destroy() {
    this.root.remove();
    this.codeView?.destroy();
  }

  setPosition(index, count) {
    this.position.textContent = `[${index + 1}]`;
    this.up.dataset.edge = index === 0 ? 'true' : 'false';
    this.down.dataset.edge = index === count - 1 ? 'true' : 'false';
  }

  /** `writer`: may type; `change`: may change structure (needs a live socket too). */
  setAccess({ writer, change }) {
    this.textarea.readOnly = !writer;
    this.type.disabled = !change;
    for (const b of this.buttons) b.disabled = !change;
    this.root.classList.toggle('readonly', !writer);
  }

  /** Type selector, version and status line. */
  renderMeta({ type, version, status }) {
    this.type.value = type;
    this.typeLabel.textContent = type;
    this.root.dataset.type = type;
    this.root.dataset.version = String(version);
    this.status.textContent = status.text;
    this.status.dataset.state = status.state;
    this.root.dataset.state = status.state;
  }

  /**
   * Editor or rendered view. `editing`: the textarea is shown; otherwise
   * markdown cells show their rendering and code cells their highlighted
   * source, prompt and outputs.
   */
  renderMode({ type, editing, text, cell, writer }) {
    this.root.dataset.type = type;
    const code = type === 'code';
    const showEditor = editing || type === 'raw';
    this.textarea.hidden = !showEditor;
    this.textarea.classList.toggle('code', code);
    this.preview.hidden = showEditor || type !== 'markdown';
    this.codeBox.hidden = showEditor || !code;
    this.inPrompt.hidden = !code;
    this.inPrompt.textContent = code ? inPrompt(cell.execution_count) : '';
    this.renderOutputs(code ? cell.outputs : null);
    if (showEditor) {
      this.fit();
      return;
    }
    if (code) this.renderCode(text);
    else this.renderMarkdown(text, cell.attachments, writer);
  }

  /** The rendered markdown (redone only when the text, attachments or placeholder changed). */
  renderMarkdown(text, attachments, writer) {
    const key = [text, attachments, writer];
    if (this.shownMarkdown?.every((v, i) => v === key[i])) return;
    this.shownMarkdown = key;
    if (text.trim()) this.preview.replaceChildren(markdownFragment(text, attachments));
    else replace(this.preview, h('p', { class: 'muted' }, writer ? 'Empty markdown cell — click to write.' : 'Empty markdown cell.'));
  }

  renderCode(text) {
    if (!this.codeView) {
      this.codeView = new CodeView({ language: this.language, text });
      this.codeBox.append(this.codeView.dom);
    } else {
      this.codeView.setText(text);
    }
  }

  renderOutputs(outputs) {
    if (outputs === this.shownOutputs) return;
    this.shownOutputs = outputs;
    replace(this.outputs, outputs?.length ? renderOutputs(outputs) : null);
  }

  /** The conflict box: their version and the two ways out. */
  renderConflict(conflict, writer) {
    this.root.classList.toggle('has-conflict', !!conflict);
    if (!conflict) {
      this.conflict.hidden = true;
      this.conflict.replaceChildren();
      return;
    }
    replace(this.conflict,
      h('p', {}, h('strong', {}, 'Someone else changed this cell while you were editing.'),
        ' Your text is kept in the editor below; theirs is shown here. Nothing is saved until you choose.'),
      h('details', { open: true }, h('summary', {}, 'Their version'), h('pre', { class: 'theirs' }, conflict.theirs)),
      h('div', { class: 'banner-actions' },
        h('button', { type: 'button', class: 'keep-mine', disabled: !writer, onclick: () => this.on.keepMine() }, 'Save mine over theirs'),
        h('button', { type: 'button', class: 'secondary take-theirs', onclick: () => this.on.takeTheirs() }, 'Use theirs')));
    this.conflict.hidden = false;
  }

  /** Puts text in the editor, keeping the caret where it was. */
  setText(text) {
    const ta = this.textarea;
    if (ta.value === text) return;
    if (document.activeElement === ta) {
      const start = mapCaret(ta.value, text, ta.selectionStart);
      const end = mapCaret(ta.value, text, ta.selectionEnd);
      ta.value = text;
      ta.setSelectionRange(start, end);
    } else {
      ta.value = text;
    }
    autosize(ta);
  }

  focusEditor() {
    this.textarea.focus();
    autosize(this.textarea);
  }

  /** Grows the editor to its text (needs layout: call once in the document). */
  fit() { if (!this.textarea.hidden) autosize(this.textarea); }
}
