// The key list: filters, paging, and the rotate and revoke actions.

import { api } from './api.js';
import { confirmChange, showSecretOnce } from './dialogs.js';
import { h, showError, table, toast } from './dom.js';
import { formatInstant, formatLimit } from './format.js';
import { rememberKeys, vault } from './vault.js';

const GRACE_CHOICES = [
  ['0s', 'none: the old secret stops working at once'],
  ['10m', '10 minutes'],
  ['1h', '1 hour'],
  ['24h', '24 hours'],
  ['7d', '7 days'],
];

/** The key list view, bound to its elements in index.html. */
export function keysView({ timeZone }) {
  const form = document.getElementById('key-filters');
  const errorRegion = document.getElementById('keys-error');
  const host = document.getElementById('key-table');
  const prev = document.getElementById('keys-prev');
  const next = document.getElementById('keys-next');
  const pageLabel = document.getElementById('keys-page');
  // The cursor each page starts after; the first page starts at the beginning.
  let cursors = [null];
  let page = 0;
  let nextCursor = null;
  let generation = 0;

  function filters() {
    const f = form.elements;
    return {
      owner: f.owner.value.trim(),
      name: f.name.value,
      env: f.env.value.trim(),
      status: f.status.value,
      limit: f.limit.value,
    };
  }

  async function load() {
    const mine = ++generation;
    errorRegion.hidden = true;
    host.setAttribute('aria-busy', 'true');
    prev.disabled = true;
    next.disabled = true;
    try {
      const answer = await api('GET', '/v1/keys', {
        query: { ...filters(), after: cursors[page] },
      });
      if (mine !== generation) return;
      const keys = answer?.keys ?? [];
      rememberKeys(keys);
      nextCursor = answer?.next ?? null;
      host.replaceChildren(keyTable(keys));
      prev.disabled = page === 0;
      next.disabled = nextCursor === null;
      pageLabel.textContent = `Page ${page + 1}, ${keys.length} keys`;
    } catch (error) {
      if (mine !== generation) return;
      host.replaceChildren();
      pageLabel.textContent = '';
      showError(errorRegion, error, 'Keys could not be listed');
    } finally {
      if (mine === generation) host.removeAttribute('aria-busy');
    }
  }

  function keyTable(keys) {
    const tz = timeZone();
    return table({
      columns: [
        { label: 'Key' }, { label: 'Owner' }, { label: 'Env' }, { label: 'Status' },
        { label: `Created (${tz})` }, { label: 'Expires' }, { label: 'Limits' },
        { label: 'Actions' },
      ],
      rows: keys.map((key) => {
        const gone = key.status === 'revoked';
        const expires = [];
        if (key.expires_at) expires.push(formatInstant(key.expires_at, tz));
        if (key.grace_until) {
          expires.push(h('span', { className: 'help' },
            `old secret until ${formatInstant(key.grace_until, tz)}`));
        }
        return [
          h('span', {}, key.name || h('span', { className: 'help' }, 'no name'), h('br'),
            h('code', { className: 'key-id' }, key.key_id)),
          key.owner,
          key.env,
          h('span', { className: `badge status-${key.status}` }, key.status),
          h('time', { dateTime: key.created_at }, formatInstant(key.created_at, tz)),
          expires.length ? h('span', {}, expires.flatMap((e, i) => (i ? [h('br'), e] : [e])))
            : h('span', { className: 'help' }, 'never'),
          key.limits.length
            ? h('ul', { className: 'limits' },
              key.limits.map((limit) => h('li', {}, formatLimit(limit, vault.currency))))
            : h('span', { className: 'help' }, 'none'),
          h('td', { className: 'actions' },
            h('button', {
              type: 'button',
              disabled: gone,
              'data-action': 'rotate',
              'data-key': key.key_id,
              'aria-label': `Rotate ${key.key_id}`,
              onclick: () => rotate(key),
            }, 'Rotate'),
            h('button', {
              type: 'button',
              className: 'danger-outline',
              disabled: gone,
              'data-action': 'revoke',
              'data-key': key.key_id,
              'aria-label': `Revoke ${key.key_id}`,
              onclick: () => revoke(key),
            }, 'Revoke')),
        ];
      }),
      empty: 'No key matches these filters.',
      className: 'keys',
    });
  }

  function who(key) {
    return h('p', {}, h('code', {}, key.key_id), ` (${key.name || 'no name'}, owner `,
      h('strong', {}, key.owner), `, ${key.env})`);
  }

  async function rotate(key) {
    const grace = h('div', { className: 'field' },
      h('label', { htmlFor: 'rotate-grace' }, 'The old secret keeps working for'),
      h('select', { id: 'rotate-grace', name: 'grace' },
        GRACE_CHOICES.map(([value, label]) => h('option', { value, selected: value === '1h' },
          label))));
    const answer = await confirmChange({
      title: 'Rotate this key?',
      body: h('div', {}, who(key), h('p', {}, 'A new secret is issued for the same key id, ' +
        'limits and usage. Clients must switch to it before the old one stops working.')),
      confirmLabel: 'Rotate key',
      fields: grace,
    });
    if (!answer) return;
    try {
      const rotated = await api('POST', `/v1/keys/${encodeURIComponent(key.key_id)}/rotate`, {
        body: { grace: answer.grace },
      });
      await showSecretOnce({
        keyId: key.key_id,
        secret: rotated.secret,
        graceUntil: rotated.grace_until ? formatInstant(rotated.grace_until, timeZone()) +
          ` (${timeZone()})` : null,
      });
      toast(`${key.key_id} rotated.`);
    } catch (error) {
      showError(errorRegion, error, `${key.key_id} could not be rotated`);
    }
    load();
  }

  async function revoke(key) {
    const answer = await confirmChange({
      title: 'Revoke this key?',
      body: h('div', {}, who(key), h('p', {}, 'Every request with its secret is refused from ' +
        'now on. A revoked key cannot be enabled again.')),
      confirmLabel: 'Revoke key',
      danger: true,
    });
    if (!answer) return;
    try {
      await api('POST', `/v1/keys/${encodeURIComponent(key.key_id)}/revoke`);
      toast(`${key.key_id} revoked.`);
    } catch (error) {
      showError(errorRegion, error, `${key.key_id} could not be revoked`);
    }
    load();
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    cursors = [null];
    page = 0;
    load();
  });
  prev.addEventListener('click', () => {
    if (page > 0) {
      page -= 1;
      load();
    }
  });
  next.addEventListener('click', () => {
    if (nextCursor !== null) {
      cursors[page + 1] = nextCursor;
      page += 1;
      load();
    }
  });

  return { load };
}
