// The share dialog of a notebook: who has access, and (for the owner) adding,
// changing and removing editors and viewers through the members REST API.

import { h, replace } from './ui.js';

/**
 * Opens the dialog; returns it (it removes itself when closed).
 * @param {object} o
 * @param {object} o.api         see api.js
 * @param {string} o.notebookId
 * @param {string} o.me          the signed-in user
 * @param {boolean} o.owner      whether `me` owns the notebook
 */
export function openShareDialog({ api, notebookId, me, owner }) {
  const list = h('ul', { id: 'member-list', class: 'member-list' }, h('li', { class: 'muted' }, 'Loading…'));
  const error = h('p', { class: 'error', hidden: true, role: 'alert' });
  const showError = (msg) => { error.textContent = msg; error.hidden = !msg; };
  /** Runs a change, then reloads the list; a failure is shown in the dialog. */
  const change = async (fn) => {
    try { await fn(); await load(); } catch (e) { showError(e.message); }
  };
  const load = async () => {
    try {
      const { items } = await api.members(notebookId);
      replace(list, items.map((m) => memberRow({ m, me, owner, api, notebookId, change })));
      showError('');
    } catch (e) {
      showError(e.message);
    }
  };
  const userInput = h('input', { id: 'member-user', required: true, maxlength: 128, placeholder: 'Clerk user id, e.g. user_2abc…', autocomplete: 'off', 'aria-label': 'User id' });
  const roleSelect = h('select', { id: 'member-role', 'aria-label': 'Role' },
    h('option', { value: 'editor' }, 'Editor'), h('option', { value: 'viewer' }, 'Viewer'));
  const form = h('form', {
    id: 'member-form', class: 'member-form',
    onsubmit: (ev) => {
      ev.preventDefault();
      const user = userInput.value.trim();
      if (!user) return;
      change(async () => {
        await api.putMember(notebookId, user, roleSelect.value);
        userInput.value = '';
      });
    },
  }, userInput, roleSelect, h('button', { id: 'member-add', type: 'submit' }, 'Add'));
  const dialog = h('dialog', { id: 'share-dialog', class: 'dialog', 'aria-labelledby': 'share-title' },
    h('div', { class: 'dialog-head' },
      h('h2', { id: 'share-title' }, 'Share'),
      h('button', { type: 'button', class: 'icon', 'aria-label': 'Close', onclick: () => dialog.close() }, '✕')),
    h('p', { class: 'muted' }, owner
      ? 'Editors can change cells; viewers can only read. Removing someone closes their open tabs.'
      : 'Only the owner can change who has access.'),
    list,
    owner ? form : null,
    error);
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  load();
  return dialog;
}

function memberRow({ m, me, owner, api, notebookId, change }) {
  const you = m.user_id === me;
  const name = h('span', { class: 'member-name' }, m.user_id, you ? ' (you)' : '');
  if (m.role === 'owner' || !owner) {
    return h('li', { class: 'member-row', dataset: { user: m.user_id, role: m.role } }, name, h('span', { class: 'badge' }, m.role));
  }
  const role = h('select', {
    class: 'member-role', 'aria-label': `Role of ${m.user_id}`,
    onchange: (ev) => change(() => api.putMember(notebookId, m.user_id, ev.target.value)),
  }, h('option', { value: 'editor', selected: m.role === 'editor' }, 'Editor'), h('option', { value: 'viewer', selected: m.role === 'viewer' }, 'Viewer'));
  const remove = h('button', {
    type: 'button', class: 'secondary member-remove', 'aria-label': `Remove ${m.user_id}`,
    onclick: () => change(() => api.removeMember(notebookId, m.user_id)),
  }, 'Remove');
  return h('li', { class: 'member-row', dataset: { user: m.user_id, role: m.role } }, name, role, remove);
}
