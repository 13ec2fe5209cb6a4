// The admin REST API as the dashboard uses it: the admin key, exact JSON and errors.

const KEY_SLOT = 'nanu.adminKey';

/** A failed call: the HTTP status (0 when the server was not reached) and the API's code. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }

  /** One line for people: what failed and why. */
  describe() {
    if (this.status === 401) return 'The admin key was refused (401 unauthorized).';
    if (this.status === 403) {
      return `This admin key lacks the scope for this view (403 forbidden): ${this.message}`;
    }
    if (this.status === 0) return this.message;
    return `The server answered ${this.status} ${this.code}: ${this.message}`;
  }
}

/** The admin key of this browser tab, kept in sessionStorage so that it ends with the tab. */
export function adminKey() {
  return sessionStorage.getItem(KEY_SLOT);
}

export function setAdminKey(secret) {
  sessionStorage.setItem(KEY_SLOT, secret);
}

export function forgetAdminKey() {
  sessionStorage.removeItem(KEY_SLOT);
}

const listeners = new Set();

/** Calls `listener(error)` whenever a call is refused with 401, wherever it was made. */
export function onUnauthorized(listener) {
  listeners.add(listener);
}

// Whether JSON.parse hands revivers the source text of each value (Chrome 114, Firefox 135,
// Safari 18.4). Without it, an integer above 2^53 cannot be read exactly.
const SOURCE_TEXT = (() => {
  let seen = false;
  JSON.parse('1', (_key, value, context) => {
    seen = typeof context?.source === 'string';
    return value;
  });
  return seen;
})();

/**
 * Parses JSON keeping every integer exact: integers that fit a double's 53 bits stay numbers,
 * larger ones become BigInt. Money and token sums are u64 in the API, so both occur.
 */
export function parseExact(text) {
  return JSON.parse(text, (_key, value, context) => {
    if (typeof value !== 'number' || Number.isSafeInteger(value)) return value;
    if (SOURCE_TEXT && /^-?\d+$/.test(context.source)) return BigInt(context.source);
    if (Number.isInteger(value)) {
      throw new ApiError(0, 'precision', 'this browser cannot read integers above 2^53 ' +
        'exactly; use a current Chrome, Firefox or Safari');
    }
    return value;
  });
}

/**
 * Calls the API: `api('GET', '/v1/keys', {query: {owner: 'acme'}})` or
 * `api('POST', '/v1/keys/key_1/rotate', {body: {grace: '1h'}})`. Query values that are
 * undefined, null or empty are left out. Resolves to the parsed body; rejects with ApiError.
 */
export async function api(method, path, { query = {}, body, key = adminKey() } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') {
      url.searchParams.set(name, String(value));
    }
  }
  const headers = { Accept: 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';

  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (error) {
    throw new ApiError(0, 'network', `the server could not be reached (${error.message})`);
  }

  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = parseExact(text);
    } catch (error) {
      if (error instanceof ApiError) throw error;
      if (response.ok) {
        throw new ApiError(response.status, 'bad_response', 'the answer is not JSON');
      }
    }
  }
  if (!response.ok) {
    const detail = data && typeof data === 'object' ? data.error : null;
    const error = new ApiError(
      response.status,
      detail?.code ?? `http_${response.status}`,
      detail?.message ?? (response.statusText || 'no detail given'),
    );
    if (response.status === 401) for (const listener of listeners) listener(error);
    throw error;
  }
  return data;
}
