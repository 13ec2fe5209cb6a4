// What the dashboard knows about the vault behind the server: its currency, its counters and
// the keys it has looked up, shared by the views.

import { api } from './api.js';

export const vault = {
  /** The currency of money amounts, from /v1/stats; null until known. */
  currency: null,
  /** The last /v1/stats answer. */
  stats: null,
};

const keyInfo = new Map();

/** Reads /v1/stats and remembers the currency it names. */
export async function loadStats() {
  const stats = await api('GET', '/v1/stats');
  vault.stats = stats;
  if (typeof stats?.currency === 'string' && stats.currency) vault.currency = stats.currency;
  return stats;
}

/** Remembers keys seen in a list, so that charts and tables can name them. */
export function rememberKeys(keys) {
  for (const key of keys) keyInfo.set(key.key_id, key);
}

/** The key's KeyInfo, asked of the server once; null when it cannot be read. */
export async function keyById(keyId) {
  if (keyInfo.has(keyId)) return keyInfo.get(keyId);
  try {
    const key = await api('GET', `/v1/keys/${encodeURIComponent(keyId)}`);
    keyInfo.set(keyId, key);
    return key;
  } catch (error) {
    if (error.status === 401) throw error;
    keyInfo.set(keyId, null);
    return null;
  }
}

/** A key's name for people: `name (owner)`, or the id alone when nothing better is known. */
export function keyLabel(keyId) {
  const key = keyInfo.get(keyId);
  if (!key) return keyId;
  const name = key.name || keyId;
  return `${name} (${key.owner})`;
}
