// The dashboard's entry point: signing in with an admin key, switching views, the vault facts
// in the top bar.

import { adminKey, api, ApiError, forgetAdminKey, onUnauthorized, setAdminKey } from './api.js';
import { alertsView } from './alerts.js';
import { h, showError } from './dom.js';
import { formatCount } from './format.js';
import { keysView } from './keys.js';
import { usageView } from './usage.js';
import { loadStats } from './vault.js';

const VIEWS = ['usage', 'keys', 'alerts'];

const loginSection = document.getElementById('login');
const loginForm = document.getElementById('login-form');
const loginError = document.getElementById('login-error');
const tabs = document.getElementById('tabs');
const signOut = document.getElementById('sign-out');
const facts = document.getElementById('vault-facts');

const usage = usageView();
const keys = keysView({ timeZone: usage.timeZone });
const alerts = alertsView({ timeZone: usage.timeZone });
const loaders = { usage: usage.load, keys: keys.load, alerts: alerts.load };
const loaded = new Set();

function showLogin(error) {
  for (const view of VIEWS) document.getElementById(`view-${view}`).hidden = true;
  tabs.hidden = true;
  signOut.hidden = true;
  facts.replaceChildren();
  loginSection.hidden = false;
  loaded.clear();
  if (error) showError(loginError, error);
  else loginError.hidden = true;
  document.getElementById('admin-key').focus();
}

function currentView() {
  const name = window.location.hash.replace(/^#/, '');
  return VIEWS.includes(name) ? name : 'usage';
}

function showView() {
  const name = currentView();
  for (const view of VIEWS) document.getElementById(`view-${view}`).hidden = view !== name;
  for (const link of tabs.querySelectorAll('a')) {
    if (link.dataset.view === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (!loaded.has(name)) {
    loaded.add(name);
    loaders[name]();
  } else if (name === 'usage') {
    usage.redraw();
  }
}

async function showFacts() {
  try {
    const stats = await loadStats();
    const parts = [
      `${formatCount(stats.keys)} keys`,
      `${formatCount(stats.owners)} owners`,
      `${formatCount(stats.holds)} open holds`,
    ];
    if (stats.currency) parts.push(`amounts in ${String(stats.currency).toUpperCase()}`);
    facts.replaceChildren(h('span', {}, parts.join(' · ')));
    if (BigInt(stats.corrupt_keys ?? 0) > 0n) {
      facts.append(h('span', { className: 'badge status-revoked', role: 'alert' },
        `${formatCount(stats.corrupt_keys)} corrupt key records`));
    }
  } catch (error) {
    if (error.status !== 401) {
      facts.replaceChildren(h('span', { className: 'error' }, error.describe?.() ?? error.message));
    }
  }
}

function enter() {
  loginSection.hidden = true;
  tabs.hidden = false;
  signOut.hidden = false;
  showFacts().then(showView);
}

loginForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = document.getElementById('admin-key');
  const secret = input.value.trim();
  if (!secret) return;
  const button = loginForm.querySelector('button[type=submit]');
  button.disabled = true;
  loginError.hidden = true;
  try {
    // Any scope will do to check the key: /v1/stats needs usage:read, and a key without it is
    // still a valid admin key (403), so only a 401 refuses the sign-in.
    await api('GET', '/v1/stats', { key: secret }).catch((error) => {
      if (error instanceof ApiError && error.status === 403) return null;
      throw error;
    });
    setAdminKey(secret);
    input.value = '';
    enter();
  } catch (error) {
    showError(loginError, error, 'Sign-in failed');
  } finally {
    button.disabled = false;
  }
});

signOut.addEventListener('click', () => {
  forgetAdminKey();
  showLogin();
});

onUnauthorized((error) => {
  forgetAdminKey();
  showLogin(error);
});

addEventListener('hashchange', () => {
  if (adminKey()) showView();
});

if (adminKey()) enter();
else showLogin();
