// quire's browser app: sign-in, the notebook list, and the notebook page.
// ES modules bundled by esbuild (web/build.mjs) into web/dist/app.js and
// app.css, which the quire binary embeds.

import 'katex/dist/katex.css';
import './app.css';
import { DevAuth, ClerkAuth } from './auth.js';
import { makeApi } from './api.js';
import { NotebookView } from './notebook-view.js';
import { h, replace, toast, ago } from './ui.js';
import { ORG_ROLES } from './member-id.js';

const main = document.getElementById('main');
const who = document.getElementById('who');
const signOutBtn = document.getElementById('signout');

let auth = null;
let api = null;
let current = null; // the view on screen: {kind, id?, destroy(), hasUnsaved?()}

boot();

async function boot() {
  let config;
  try {
    const response = await fetch('/app-config.json', { cache: 'no-store' });
    config = await response.json();
  } catch {
    fatal('The server cannot be reached. Reload to try again.');
    return;
  }
  if (config.dev) auth = new DevAuth();
  else if (config.publishable_key) auth = new ClerkAuth(config.publishable_key);
  else {
    fatal('Sign-in is not configured on this server (no Clerk publishable key).');
    return;
  }
  document.body.dataset.mode = config.dev ? 'dev' : 'clerk';
  api = makeApi(auth, () => sessionEnded());
  try {
    await auth.start();
  } catch (e) {
    fatal(`Sign-in could not start: ${e.message}`);
    return;
  }
  auth.onChange(() => route());
  window.addEventListener('hashchange', () => route());
  window.addEventListener('beforeunload', (ev) => {
    if (current?.hasUnsaved?.()) {
      ev.preventDefault();
      ev.returnValue = '';
    }
  });
  signOutBtn.addEventListener('click', () => signOut());
  route();
}

function fatal(message) {
  replace(main, h('section', { class: 'card narrow' }, h('h1', {}, 'quire'), h('p', { class: 'error' }, message)));
}

async function signOut() {
  if (current?.hasUnsaved?.() && !window.confirm('Some changes are not saved yet. Sign out anyway?')) return;
  leave();
  await auth.signOut();
}

function sessionEnded() {
  toast('Your session ended. Please sign in again.', 'error');
  signOut();
}

/** Closes the current view (and with it any socket). */
function leave() {
  current?.destroy?.();
  current = null;
}

function renderTopbar() {
  const signedIn = !!auth?.user;
  who.hidden = !signedIn;
  signOutBtn.hidden = !signedIn;
  const org = signedIn ? auth.org : null;
  replace(who, signedIn ? auth.user : '',
    org ? h('span', { id: 'who-org', class: 'who-org', dataset: { org: org.id } }, ` · ${org.name}${org.role ? ` (${org.role.replace(/^org:/, '')})` : ''}`) : null);
  who.title = signedIn ? `Signed in as ${auth.user}${org ? `, active organization ${org.name}` : ''}` : '';
}

function route() {
  renderTopbar();
  if (!auth.user) {
    leave();
    renderSignIn();
    return;
  }
  const m = /^#\/n\/([^/?#]+)$/.exec(location.hash);
  if (m) {
    const id = decodeURIComponent(m[1]);
    if (current?.kind === 'notebook' && current.id === id && current.me === auth.user) return;
    leave();
    current = new NotebookView({ id, api, auth, root: main, onSignOut: () => signOut() });
  } else {
    leave();
    current = new ListView({ api, auth, root: main });
  }
}

// ------------------------------------------------------------------ sign-in

function renderSignIn() {
  document.title = 'Sign in · quire';
  if (auth.kind === 'clerk') {
    const box = h('div', { id: 'clerk-signin' });
    replace(main, h('section', { class: 'signin' }, box));
    auth.mountSignIn(box);
    return;
  }
  const input = h('input', {
    id: 'dev-user', name: 'user', required: true, pattern: '[A-Za-z0-9_\\-]{1,64}', maxlength: 64,
    placeholder: 'user_alice', autocomplete: 'username', autocapitalize: 'off', spellcheck: 'false',
    'aria-describedby': 'dev-help',
  });
  const orgInput = h('input', {
    id: 'dev-org', name: 'org', pattern: 'org_[A-Za-z0-9_\\-]{1,60}', maxlength: 64,
    placeholder: 'org_team (optional)', autocomplete: 'off', autocapitalize: 'off', spellcheck: 'false',
  });
  const orgRole = h('select', { id: 'dev-org-role', 'aria-label': 'Organization role' },
    ORG_ROLES.map((r) => h('option', { value: r }, r)));
  const error = h('p', { class: 'error', hidden: true, role: 'alert' });
  const signIn = async (user) => {
    error.hidden = true;
    try {
      await auth.signIn(user, { orgId: orgInput.value, orgRole: orgRole.value });
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    }
  };
  const form = h('form', {
    id: 'dev-signin-form',
    onsubmit: (ev) => {
      ev.preventDefault();
      if (input.value.trim()) signIn(input.value);
    },
  },
  h('label', { for: 'dev-user' }, 'Sign in as'),
  h('div', { class: 'row' }, input, h('button', { id: 'dev-signin', type: 'submit' }, 'Sign in')),
  h('label', { for: 'dev-org' }, 'Active organization id'),
  h('div', { class: 'row' }, orgInput, orgRole),
  error);
  const quick = ['user_alice', 'user_bob', 'user_carol'].map((u) =>
    h('button', { type: 'button', class: 'link', onclick: () => signIn(u) }, u));
  replace(main, h('section', { class: 'card narrow signin' },
    h('h1', {}, 'Sign in'),
    h('p', { id: 'dev-help', class: 'muted' },
      'Development mode: no Clerk account needed. Pick any user id; the local stand-in issues real session tokens ',
      'that last 60 seconds and are refreshed automatically. Optionally name an active organization and your role in it; ',
      'notebooks shared with that organization then open for you.'),
    form,
    h('p', { class: 'quick muted' }, 'Quick: ', quick)));
  input.focus();
}

// ------------------------------------------------------------ notebook list

class ListView {
  constructor({ api, auth, root }) {
    this.kind = 'list';
    this.api = api;
    this.auth = auth;
    this.root = root;
    this.cursor = null;
    this.destroyed = false;
    document.title = 'Notebooks · quire';
    this.build();
    this.load();
  }

  destroy() { this.destroyed = true; }

  build() {
    this.titleInput = h('input', { id: 'new-title', maxlength: 200, placeholder: 'New notebook title', 'aria-label': 'New notebook title' });
    this.createForm = h('form', { id: 'create-form', class: 'create', onsubmit: (ev) => { ev.preventDefault(); this.create(); } },
      this.titleInput, h('button', { id: 'create-nb', type: 'submit' }, 'Create'));
    const file = h('input', {
      id: 'import-file', type: 'file', accept: '.ipynb,application/x-ipynb+json,application/json', class: 'visually-hidden',
      onchange: (ev) => this.importFile(ev.target),
    });
    this.list = h('ul', { id: 'nb-list', class: 'nb-list', 'aria-label': 'Notebooks' });
    this.empty = h('p', { class: 'empty muted', hidden: true }, 'No notebooks yet. Create one above, or import an .ipynb file.');
    this.more = h('button', { id: 'load-more', type: 'button', class: 'secondary', hidden: true, onclick: () => this.load(this.cursor) }, 'Load more');
    this.status = h('p', { class: 'muted loading' }, 'Loading…');
    replace(this.root, h('section', { class: 'list-view' },
      h('div', { class: 'list-head' },
        h('h1', {}, 'Notebooks'),
        h('div', { class: 'list-tools' },
          this.createForm,
          h('label', { for: 'import-file', class: 'button secondary', tabindex: '0', role: 'button',
            onkeydown: (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); file.click(); } } }, 'Import .ipynb'),
          file)),
      this.status, this.list, this.empty, this.more));
  }

  async load(cursor) {
    try {
      const page = await this.api.listNotebooks(cursor);
      if (this.destroyed) return;
      this.status.remove();
      for (const item of page.items) this.list.append(this.row(item));
      this.cursor = page.next_cursor;
      this.more.hidden = !this.cursor;
      this.empty.hidden = this.list.children.length > 0;
    } catch (e) {
      if (this.destroyed) return;
      this.status.textContent = `Could not load notebooks: ${e.message}`;
      this.status.className = 'error';
    }
  }

  row(item) {
    const shared = item.role !== 'owner';
    const link = h('a', { class: 'nb-open', href: `#/n/${encodeURIComponent(item.id)}` }, item.title);
    const titleBox = h('div', { class: 'nb-title-box' }, link);
    const li = h('li', { class: `nb-item${shared ? ' shared' : ''}`, dataset: { id: item.id, role: item.role, ...(item.via_org ? { viaOrg: item.via_org } : {}) } },
      titleBox,
      h('div', { class: 'nb-meta' },
        shared ? h('span', { class: 'badge shared', title: `Shared with you by ${item.owner_id}` }, `Shared with you · ${item.role}`) : null,
        item.via_org ? h('span', { class: 'badge via-org', title: `You have access through the organization ${item.via_org}` }, `via ${item.via_org}`) : null,
        h('span', { class: 'muted' }, shared ? `by ${item.owner_id} · ` : '', `updated ${ago(item.updated_at)}`)),
      h('div', { class: 'nb-row-actions' },
        item.role === 'owner' || item.role === 'editor'
          ? h('button', { type: 'button', class: 'secondary nb-rename', onclick: () => this.startRename(item, titleBox, link) }, 'Rename') : null,
        item.role === 'owner'
          ? h('button', { type: 'button', class: 'danger nb-delete', onclick: () => this.remove(item, li) }, 'Delete') : null));
    return li;
  }

  startRename(item, box, link) {
    const input = h('input', { class: 'nb-rename-input', value: item.title, maxlength: 200, 'aria-label': 'New title' });
    const cancel = () => replace(box, link);
    const form = h('form', {
      class: 'rename-form',
      onsubmit: async (ev) => {
        ev.preventDefault();
        const title = input.value.trim();
        if (!title || title === item.title) { cancel(); return; }
        try {
          const updated = await this.api.renameNotebook(item.id, title);
          item.title = updated.title;
          link.textContent = updated.title;
          cancel();
        } catch (e) {
          toast(`Rename failed: ${e.message}`, 'error');
        }
      },
    }, input, h('button', { type: 'submit' }, 'Save'), h('button', { type: 'button', class: 'secondary', onclick: cancel }, 'Cancel'));
    input.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') cancel(); });
    replace(box, form);
    input.focus();
    input.select();
  }

  async remove(item, li) {
    if (!window.confirm(`Delete “${item.title}” for everyone? This cannot be undone.`)) return;
    try {
      await this.api.deleteNotebook(item.id);
      li.remove();
      this.empty.hidden = this.list.children.length > 0;
      toast('Notebook deleted.', 'ok');
    } catch (e) {
      toast(`Delete failed: ${e.message}`, 'error');
    }
  }

  async create() {
    const title = this.titleInput.value.trim() || 'Untitled';
    try {
      const nb = await this.api.createNotebook(title);
      location.hash = `#/n/${encodeURIComponent(nb.id)}`;
    } catch (e) {
      toast(`Could not create the notebook: ${e.message}`, 'error');
    }
  }

  async importFile(input) {
    const file = input.files?.[0];
    input.value = '';
    if (!file) return;
    try {
      const nb = await this.api.importIpynb(file, file.name.replace(/\.ipynb$/i, ''));
      toast(`Imported “${nb.title}”.`, 'ok');
      location.hash = `#/n/${encodeURIComponent(nb.id)}`;
    } catch (e) {
      toast(`Import failed: ${e.message}`, 'error');
    }
  }
}
