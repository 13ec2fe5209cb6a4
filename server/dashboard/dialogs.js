// Modal dialogs: a confirmation before a change, and the one showing of a new secret.

import { h } from './dom.js';

/**
 * Asks before a change. `body` is a node or text; `fields` optional extra form controls whose
 * values are returned. Resolves to the form's values when confirmed, null when cancelled.
 */
export function confirmChange({ title, body, confirmLabel, danger = false, fields = null }) {
  const dialog = document.getElementById('confirm-dialog');
  const form = document.getElementById('confirm-form');
  const ok = document.getElementById('confirm-ok');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-body').replaceChildren(
    typeof body === 'string' ? h('p', {}, body) : body,
    fields ?? '',
  );
  ok.textContent = confirmLabel;
  ok.className = danger ? 'danger' : 'primary';
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      const values = dialog.returnValue === 'confirm'
        ? Object.fromEntries(new FormData(form))
        : null;
      document.getElementById('confirm-body').replaceChildren();
      resolve(values);
    }, { once: true });
  });
}

/**
 * Shows a new secret once, with a copy button. When the dialog closes, the secret is removed
 * from the page; nothing else keeps it.
 */
export function showSecretOnce({ keyId, secret, graceUntil }) {
  const dialog = document.getElementById('secret-dialog');
  const input = document.getElementById('secret-value');
  const status = document.getElementById('secret-status');
  const copy = document.getElementById('secret-copy');
  document.getElementById('secret-intro').textContent = `The new secret of ${keyId}. Copy it ` +
    'now: nanu keeps only a digest, and this dialog is the only time it is shown.';
  document.getElementById('secret-grace').textContent = graceUntil
    ? `The previous secret keeps working until ${graceUntil}.`
    : 'The previous secret stopped working at once.';
  input.value = secret;
  status.textContent = '';

  const onCopy = async () => {
    try {
      await navigator.clipboard.writeText(input.value);
      status.textContent = 'Copied to the clipboard.';
    } catch {
      input.select();
      status.textContent = 'The browser refused the clipboard: the secret is selected, ' +
        'press Ctrl+C (or ⌘C) to copy it.';
    }
  };
  copy.addEventListener('click', onCopy);
  dialog.showModal();
  input.select();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      copy.removeEventListener('click', onCopy);
      input.value = '';
      status.textContent = '';
      resolve();
    }, { once: true });
  });
}
