// The share dialog of a notebook: who has access, and (for the owner) adding,
// changing and removing editors and viewers through the members REST API.
// A member is a user (`user_...`), an organization (`org_...`: whoever has it
// active gets the role) or a machine (`mch_...`); each row says which. In
// Clerk mode the owner can also pick one of their own organizations, as
// Clerk's browser SDK lists them.

import { h, replace } from './ui.js';
import { kindLabel, memberKind, orgsFromMemberships } from './member-id.js';

/**
 * Opens the dialog; returns it (it removes itself when closed).
 * @param {object} o
 * @param {object} o.api         see api.js
 * @param {string} o.notebookId
 * @param {string} o.me          the signed-in user
 * @param {boolean} o.owner      whether `me` owns the notebook
 * @param {object} [o.auth]      see auth.js; in Clerk mode its organizations are offered
 */
export function openShareDialog({ api, notebookId, me, owner, auth }) {
  const orgNames = new Map(); // org id -> name, from Clerk
  const list = h('ul', { id: 'member-list', class: 'member-list' }, h('li', { class: 'muted' }, 'Loading…'));
  const error = h('p', { class: 'error', hidden: true, role: 'alert' });
  const showError = (msg) => { error.textContent = msg; error.hidden = !msg; };
  /** Runs a change, then reloads the list; a failure is shown in the dialog. */
  const change = async (fn) => {
    try { await fn(); await load(); } catch (e) { showError(e.message); }
  };
  let loads = 0; // only the latest load renders (the Clerk names may arrive mid-way)
  const load = async () => {
    const seq = ++loads;
    try {
      const { items } = await api.members(notebookId);
      if (seq !== loads) return;
      replace(list, items.map((m) => memberRow({ m, me, owner, api, notebookId, change, orgNames })));
      showError('');
    } catch (e) {
      showError(e.message);
    }
  };
  const userInput = h('input', {
    id: 'member-user', required: true, maxlength: 128, placeholder: 'user_…, org_… or mch_… id', autocomplete: 'off',
    'aria-label': 'Member id (user, organization or machine)',
  });
  const roleSelect = h('select', { id: 'member-role', 'aria-label': 'Role' }, roleOptions());
  const form = h('form', {
    id: 'member-form', class: 'member-form',
    onsubmit: (ev) => {
      ev.preventDefault();
      const id = userInput.value.trim();
      if (!id) return;
      change(async () => {
        await api.putMember(notebookId, id, roleSelect.value);
        userInput.value = '';
      });
    },
  }, userInput, roleSelect, h('button', { id: 'member-add', type: 'submit' }, 'Add'));
  const orgForm = h('form', { id: 'member-org-form', class: 'member-form', hidden: true });
  const dialog = h('dialog', { id: 'share-dialog', class: 'dialog', 'aria-labelledby': 'share-title' },
    h('div', { class: 'dialog-head' },
      h('h2', { id: 'share-title' }, 'Share'),
      h('button', { type: 'button', class: 'icon', 'aria-label': 'Close', onclick: () => dialog.close() }, '✕')),
    h('p', { class: 'muted' }, owner
      ? 'Editors can change cells; viewers can only read. Removing someone closes their open tabs.'
      : 'Only the owner can change who has access.'),
    list,
    owner ? form : null,
    owner ? orgForm : null,
    error);
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  if (owner && auth?.kind === 'clerk') offerClerkOrgs({ auth, orgForm, orgNames, showError, load, add: (id, role) => change(() => api.putMember(notebookId, id, role)) });
  load();
  return dialog;
}

function roleOptions(current) {
  return [h('option', { value: 'editor', selected: current === 'editor' }, 'Editor'),
    h('option', { value: 'viewer', selected: current === 'viewer' }, 'Viewer')];
}

/** Fills the "add an organization" form with the user's Clerk organizations (hidden when they have none). */
async function offerClerkOrgs({ auth, orgForm, orgNames, showError, load, add }) {
  let orgs;
  try {
    orgs = orgsFromMemberships(await auth.organizationMemberships());
  } catch (e) {
    showError(`Could not list your organizations: ${e.message}`);
    return;
  }
  if (!orgs.length || !orgForm.isConnected) return;
  for (const o of orgs) orgNames.set(o.id, o.name);
  const orgSelect = h('select', { id: 'member-org', 'aria-label': 'Organization' }, orgs.map((o) => h('option', { value: o.id }, o.name)));
  const orgRole = h('select', { id: 'member-org-role', 'aria-label': 'Role for the organization' }, roleOptions('viewer'));
  orgForm.onsubmit = (ev) => {
    ev.preventDefault();
    add(orgSelect.value, orgRole.value);
  };
  replace(orgForm, orgSelect, orgRole, h('button', { id: 'member-org-add', type: 'submit' }, 'Add organization'));
  orgForm.hidden = false;
  load(); // the names are known now
}

function memberRow({ m, me, owner, api, notebookId, change, orgNames }) {
  const you = m.user_id === me;
  const kind = memberKind(m.user_id);
  const label = kindLabel(m.user_id);
  const shown = orgNames.get(m.user_id);
  const name = h('span', { class: 'member-name', title: m.user_id },
    label ? h('span', { class: `badge kind kind-${kind}` }, label) : null, ' ',
    shown ? `${shown} (${m.user_id})` : m.user_id, you ? ' (you)' : '');
  const data = { user: m.user_id, role: m.role, kind: kind ?? 'unknown' };
  if (m.role === 'owner' || !owner) {
    return h('li', { class: 'member-row', dataset: data }, name, h('span', { class: 'badge' }, m.role));
  }
  const role = h('select', {
    class: 'member-role', 'aria-label': `Role of ${m.user_id}`,
    onchange: (ev) => change(() => api.putMember(notebookId, m.user_id, ev.target.value)),
  }, roleOptions(m.role));
  const remove = h('button', {
    type: 'button', class: 'secondary member-remove', 'aria-label': `Remove ${m.user_id}`,
    onclick: () => change(() => api.removeMember(notebookId, m.user_id)),
  }, 'Remove');
  return h('li', { class: 'member-row', dataset: data }, name, role, remove);
}
