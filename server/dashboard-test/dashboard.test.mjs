// Drives the dashboard in headless Chromium against a real `nanu serve` (started by run.sh over
// a vault filled by replaying the Azure trace) and checks what it shows against the API.
// Any console error, uncaught exception, failed request or HTTP error that a step did not ask
// for fails the run.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

import { chromium } from 'playwright-core';

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this test through run.sh`);
  return value;
}

const base = env('NANU_TEST_URL');
const admin = JSON.parse(env('NANU_TEST_ADMIN'));
const reader = JSON.parse(env('NANU_TEST_READER'));
const toRevoke = JSON.parse(env('NANU_TEST_REVOKE'));
const toRotate = JSON.parse(env('NANU_TEST_ROTATE'));
const screenshots = env('NANU_TEST_SCREENSHOTS');

// The API's integers are u64: refuse to compare a rounded one.
function parseExact(text) {
  return JSON.parse(text, (_key, value, context) => {
    if (typeof value === 'number' && Number.isInteger(value) && !Number.isSafeInteger(value)) {
      if (typeof context?.source === 'string') return BigInt(context.source);
      throw new Error(`an integer above 2^53 in ${text.slice(0, 80)}`);
    }
    return value;
  });
}

/**
 * Calls the API; `raw` is a body already written as JSON text (for integers above 2^53), and
 * `parse: false` leaves the answer as text only.
 */
async function call(method, route, { body, raw, key = admin.secret, parse = true } = {}) {
  const text = raw ?? (body === undefined ? undefined : JSON.stringify(body));
  const response = await fetch(base + route, {
    method,
    headers: {
      Authorization: `Bearer ${key}`,
      ...(text === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    body: text,
  });
  const answer = await response.text();
  return {
    status: response.status,
    text: answer,
    body: parse && answer ? parseExact(answer) : null,
  };
}

async function get(route) {
  const answer = await call('GET', route);
  assert.equal(answer.status, 200, `GET ${route}: ${JSON.stringify(answer.body)}`);
  return answer.body;
}

async function verify(secret) {
  const answer = await call('POST', '/v1/verify', { body: { secret } });
  assert.equal(answer.status, 200, `POST /v1/verify: ${JSON.stringify(answer.body)}`);
  return answer.body;
}

/** Micro-units as the dashboard writes them, computed independently of its code. */
function money(micros, currency) {
  const n = BigInt(micros);
  const whole = (n / 1_000_000n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const fraction = (n % 1_000_000n).toString().padStart(6, '0').replace(/0+$/, '').padEnd(2, '0');
  return currency ? `${whole}.${fraction} ${currency.toUpperCase()}` : `${whole}.${fraction}`;
}

function count(n) {
  return BigInt(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

async function allEvents() {
  const events = [];
  for (;;) {
    const after = events.length ? events[events.length - 1].seq : 0;
    const page = await get(`/v1/events?after=${after}&limit=1000`);
    events.push(...page.events);
    if (page.events.length < 1000) return events;
  }
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'),
  'utf8');

/**
 * Runs axe-core's WCAG 2.1 A and AA rules and its best practices over the page as it is now,
 * and fails on any violation. Evaluated through the DevTools protocol, which the page's
 * Content-Security-Policy does not govern, so the policy stays as strict as users get it.
 */
async function assertAccessible(where) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(axeSource);
  const { violations } = await page.evaluate(() => window.axe.run(document, {
    runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'],
  }));
  const found = violations.map((v) => `${v.id} (${v.impact}): ${v.help}: ` +
    v.nodes.slice(0, 3).map((node) => node.target.join(' ')).join(', '));
  assert.deepEqual(found, [], `accessibility violations in ${where}`);
}

const browser = await chromium.launch({
  executablePath: env('NANU_TEST_CHROMIUM'),
  // Chromium's sandbox needs user namespaces, which a root CI container does not give.
  args: ['--no-sandbox'],
});
const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
const page = await context.newPage();
// Generous: a debug build of nanu sums a usage report of the whole trace in seconds, and the
// usage view asks for five of them at once.
page.setDefaultTimeout(120_000);

// Everything that goes wrong in the page, unless the step under way expects that status.
const problems = [];
const requests = [];
let expected = null;
page.on('console', (message) => {
  if (message.type() !== 'error') return;
  const status = /status of (\d{3})/.exec(message.text());
  if (expected && status && expected.statuses.has(Number(status[1]))) return;
  problems.push(`console error: ${message.text()}`);
});
page.on('pageerror', (error) => problems.push(`uncaught exception: ${error.stack ?? error}`));
page.on('request', (request) => requests.push(request.url()));
page.on('requestfailed', (request) => {
  problems.push(`request failed: ${request.method()} ${request.url()}: ` +
    `${request.failure()?.errorText}`);
});
page.on('response', (response) => {
  if (response.status() < 400) return;
  if (expected?.statuses.has(response.status())) {
    expected.seen.push(response.status());
    return;
  }
  problems.push(`HTTP ${response.status()} for ${response.request().method()} ${response.url()}`);
});

/** Runs `step` with the given HTTP error statuses allowed, and requires one of them. */
async function expectRefusals(statuses, step) {
  expected = { statuses: new Set(statuses), seen: [] };
  try {
    await step();
    assert.ok(expected.seen.length > 0, `expected an HTTP ${statuses.join(' or ')} answer`);
  } finally {
    expected = null;
  }
}

const idle = (view) => page.waitForFunction(
  (id) => !document.getElementById(id).hasAttribute('aria-busy')
    && !document.querySelector(`#${id} [aria-busy]`),
  `view-${view}`,
);

async function signIn(secret) {
  await page.fill('#admin-key', secret);
  await page.click('#login-form button[type=submit]');
}

const results = [];
async function check(name, step) {
  try {
    await step();
    if (problems.length) throw new Error(`the page reported:\n  ${problems.join('\n  ')}`);
    results.push(name);
    console.log(`ok    ${name}`);
  } catch (error) {
    console.log(`FAIL  ${name}\n${error.stack ?? error}`);
    await page.screenshot({ path: path.join(screenshots, 'failure.png'), fullPage: true })
      .catch(() => {});
    console.log(`dashboard: ${results.length} passed, 1 failed`);
    await browser.close();
    process.exit(1);
  }
}

await check('the page loads and asks for an admin key', async () => {
  await page.goto(`${base}/`);
  await page.waitForSelector('#login:not([hidden])');
  const label = await page.textContent('label[for=admin-key]');
  assert.equal(label.trim(), 'Admin key');
  assert.equal(await page.getAttribute('#admin-key', 'type'), 'password');
  await assertAccessible('the sign-in form');
});

await check('a wrong admin key is refused with a visible 401', async () => {
  await expectRefusals([401], async () => {
    await signIn(`nanu_admin_${'x'.repeat(49)}`);
    await page.waitForSelector('#login-error:not([hidden]) .error');
  });
  assert.match(await page.textContent('#login-error'), /401/);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('nanu.adminKey')), null);
});

await check('a key without usage:read sees the 403 explained, then signs out', async () => {
  await expectRefusals([403], async () => {
    await signIn(reader.secret);
    await page.waitForSelector('#usage-error:not([hidden]) .error');
  });
  assert.match(await page.textContent('#usage-error'), /403/);
  await page.click('#sign-out');
  await page.waitForSelector('#login:not([hidden])');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('nanu.adminKey')), null);
});

await check('signing in draws every chart from the replayed trace', async () => {
  await signIn(admin.secret);
  await page.waitForSelector('#chart-spend svg path.series');
  await idle('usage');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('nanu.adminKey')), admin.secret);
  for (const chart of ['spend', 'tokens', 'requests', 'denials']) {
    const shape = await page.$eval(`#chart-${chart} svg`, (svg) => ({
      buckets: Number(svg.dataset.buckets),
      drawn: [...svg.querySelectorAll('path.series')].filter((p) => /M[\d.]+ [\d.]+h/.test(
        p.getAttribute('d'))).length,
    }));
    assert.ok(shape.buckets > 1, `${chart}: ${shape.buckets} buckets`);
    assert.ok(shape.drawn >= 1, `${chart}: no series drawn`);
  }
  await assertAccessible('the usage view');
});

const stats = await get('/v1/stats');
const currency = typeof stats.currency === 'string' ? stats.currency : null;

await check('the totals are the API\'s, to the micro-unit', async () => {
  const { rows } = await get('/v1/usage');
  assert.equal(rows.length, 1);
  const [all] = rows;
  assert.ok(BigInt(all.cost) > 0n && BigInt(all.denied) > 0n, 'the replay recorded usage');
  for (const field of ['cost', 'tokens', 'requests', 'denied']) {
    const shown = await page.getAttribute(`[data-total=${field}]`, 'data-exact');
    assert.equal(shown, BigInt(all[field]).toString(), field);
  }
  assert.equal((await page.textContent('[data-total=cost]')).trim(), money(all.cost, currency));
  assert.equal((await page.textContent('[data-total=tokens]')).trim(), count(all.tokens));
});

await check('the breakdown by model lists every model with its exact spend', async () => {
  const { rows } = await get('/v1/usage?group_by=model');
  const cells = await page.$$eval('#breakdown tbody tr', (trs) => trs.map((tr) => {
    const td = [...tr.querySelectorAll('td')].map((cell) => cell.textContent.trim());
    return { model: td[0], spend: td[5] };
  }));
  assert.equal(cells.length, rows.length);
  const want = new Map(rows.map((row) => [row.group.model || '(none)', money(row.cost, currency)]));
  for (const { model, spend } of cells) assert.equal(spend, want.get(model), model);
});

await check('top keys by spend and denials by reason match the API', async () => {
  const byKey = (await get('/v1/usage?group_by=key')).rows
    .sort((a, b) => (BigInt(b.cost) > BigInt(a.cost) ? 1 : BigInt(b.cost) < BigInt(a.cost) ? -1
      : 0));
  const shownKeys = await page.$$eval('#top-keys tbody code.key-id', (codes) =>
    codes.map((code) => code.textContent));
  assert.deepEqual(shownKeys, byKey.slice(0, 10).map((row) => row.group.key));

  const byOutcome = (await get('/v1/usage?group_by=outcome')).rows
    .filter((row) => row.group.outcome !== 'charged');
  const shownReasons = await page.$$eval('#denials table.denials:not(.unknown) tbody tr', (trs) =>
    trs.map((tr) => [tr.querySelector('code').textContent,
      tr.querySelector('.bar-label').textContent]));
  assert.equal(shownReasons.length, byOutcome.length);
  const want = new Map(byOutcome.map((row) => [row.group.outcome, count(row.denied)]));
  for (const [reason, text] of shownReasons) {
    assert.ok(text.startsWith(`${want.get(reason)} (`), `${reason}: ${text}`);
  }
});

await check('the bucket and time zone choices reach the API and the axis', async () => {
  const asked = requests.length;
  await page.selectOption('#bucket', 'hour');
  await idle('usage');
  await page.fill('#tz', 'Asia/Kolkata');
  await page.click('#usage-controls button[type=submit]');
  await page.waitForFunction(() => document.getElementById('range-note').textContent
    .includes('Asia/Kolkata'));
  await idle('usage');
  const sent = requests.slice(asked).filter((url) => url.includes('/v1/usage'));
  assert.ok(sent.some((url) => url.includes('tz=Asia%2FKolkata') && url.includes('bucket=hour')),
    `requests sent: ${sent.join(', ')}`);
  const { rows } = await get('/v1/usage?bucket=hour&tz=Asia/Kolkata');
  const first = new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Asia/Kolkata', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
  }).format(new Date(rows[0].bucket));
  const label = await page.$eval('#chart-spend .x-label', (text) => text.firstChild.textContent);
  assert.equal(label, first);
  assert.equal(await page.getAttribute('#chart-spend svg', 'data-buckets'), String(rows.length));

  await page.selectOption('#bucket', 'auto');
  await idle('usage');
  await page.fill('#tz', 'UTC');
  await page.click('#usage-controls button[type=submit]');
  await page.waitForFunction(() => document.getElementById('range-note').textContent
    .includes('(UTC)'));
  await idle('usage');
  await page.mouse.move(0, 0);
  await page.screenshot({ path: path.join(screenshots, 'dashboard.png'), fullPage: true });
});

await check('the breakdowns by owner and by key are the API\'s', async () => {
  for (const [by, dim] of [['owner', 'owner'], ['key', 'key']]) {
    await page.selectOption('#by', by);
    await idle('usage');
    const { rows } = await get(`/v1/usage?group_by=${dim}`);
    const shown = await page.$$eval('#breakdown tbody tr', (trs) => trs.map((tr) => {
      const first = tr.querySelector('td .series-name');
      return [first.title || first.textContent.trim(), tr.querySelectorAll('td')[5].textContent];
    }));
    assert.equal(shown.length, rows.length, by);
    const want = new Map(rows.map((row) => [row.group[dim], money(row.cost, currency)]));
    for (const [name, spend] of shown) assert.equal(spend, want.get(name), `${by} ${name}`);
    const series = await page.$$eval('#chart-spend path.series', (paths) => paths.length);
    assert.equal(series, Math.min(rows.length, 8), `${by}: series drawn`);
  }
  await page.selectOption('#by', 'model');
  await idle('usage');
});

await check('a custom range is read as wall time in the chosen zone', async () => {
  await page.selectOption('#range', 'custom');
  await page.fill('#from', '2023-11-17T00:00');
  await page.fill('#to', '2023-11-17T00:15');
  await page.fill('#tz', 'Asia/Kolkata');
  await page.click('#usage-controls button[type=submit]');
  await page.waitForFunction(() => document.getElementById('range-note').textContent
    .includes('Asia/Kolkata'));
  await idle('usage');
  // Midnight in India (UTC+05:30) is 18:30 UTC the day before.
  const { rows } = await get('/v1/usage?from=2023-11-16T18:30:00Z&to=2023-11-16T18:45:00Z');
  assert.ok(BigInt(rows[0].requests) > 0n, 'the quarter hour has usage');
  for (const field of ['cost', 'tokens', 'requests', 'denied']) {
    const shown = await page.getAttribute(`[data-total=${field}]`, 'data-exact');
    assert.equal(shown, BigInt(rows[0][field]).toString(), field);
  }
  await page.fill('#tz', 'UTC');
  await page.selectOption('#range', 'all');
  await idle('usage');
});

await check('money, counts and wall times are converted exactly', async () => {
  const got = await page.evaluate(async () => {
    const f = await import('/dashboard/format.js');
    const { parseExact } = await import('/dashboard/api.js');
    const instant = (local, zone) => f.wallTimeToInstant(local, zone).toISOString();
    return {
      money: [0, 1, 1_000_000, 12_345_678, 10n ** 18n].map((m) => f.formatMoney(m, 'usd')),
      max: f.formatMoney(parseExact('{"c": 18446744073709551615}').c),
      count: f.formatCount(parseExact('30000000000000000001')),
      share: f.formatShare(1, 3),
      gap: instant('2024-03-31T02:30', 'Europe/Paris'),
      twice: instant('2024-10-27T02:30', 'Europe/Paris'),
      half: instant('2024-01-01T00:00', 'Asia/Kolkata'),
    };
  });
  assert.deepEqual(got, {
    money: ['0.00 USD', '0.000001 USD', '1.00 USD', '12.345678 USD',
      '1,000,000,000,000.00 USD'],
    max: '18,446,744,073,709.551615',
    count: '30,000,000,000,000,000,001',
    share: '33.3%',
    // Skipped by the spring change: read with the winter offset, as 03:30 summer time.
    gap: '2024-03-31T01:30:00.000Z',
    // Repeated by the autumn change: the first of the two.
    twice: '2024-10-27T00:30:00.000Z',
    half: '2023-12-31T18:30:00.000Z',
  });
});

await check('the key list pages through keys with its filters', async () => {
  const made = [];
  for (let i = 0; i < 30; i += 1) {
    const answer = await call('POST', '/v1/keys', {
      body: { owner: 'paged', name: `paging test ${i}`, env: 'test' },
    });
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    made.push(answer.body.key_id);
  }
  await page.click('#tabs a[data-view=keys]');
  await idle('keys');
  await page.fill('#key-owner', 'paged');
  await page.selectOption('#key-page-size', '25');
  await page.click('#key-filters button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#key-table tbody tr').length === 25);
  const ids = () => page.$$eval('#key-table tbody code.key-id', (c) => c.map((e) => e.textContent));
  const first = await ids();
  assert.equal(await page.isDisabled('#keys-prev'), true);
  await page.click('#keys-next');
  await page.waitForFunction(() => document.querySelectorAll('#key-table tbody tr').length === 5);
  const second = await ids();
  assert.equal(await page.isDisabled('#keys-next'), true);
  assert.deepEqual([...first, ...second].sort(), [...made].sort());
  await page.click('#keys-prev');
  await page.waitForFunction(() => document.querySelectorAll('#key-table tbody tr').length === 25);
  assert.deepEqual(await ids(), first);
  await assertAccessible('the key list');
});

async function showTestKeys() {
  await page.fill('#key-owner', 'dashboard-test');
  await page.click('#key-filters button[type=submit]');
  await page.waitForSelector(`#key-table [data-key="${toRevoke.key_id}"]`);
  await idle('keys');
}

await check('cancelling a revoke changes nothing', async () => {
  await showTestKeys();
  await page.click(`[data-action=revoke][data-key="${toRotate.key_id}"]`);
  await page.waitForSelector('#confirm-dialog[open]');
  await page.click('#confirm-dialog button[value=cancel]');
  await page.waitForSelector('#confirm-dialog', { state: 'hidden' });
  assert.equal((await get(`/v1/keys/${toRotate.key_id}`)).status, 'active');
});

await check('revoking through the dashboard revokes the key and denies its secret', async () => {
  assert.equal((await verify(toRevoke.secret)).allowed, true, 'the key works before');
  await page.click(`[data-action=revoke][data-key="${toRevoke.key_id}"]`);
  await page.waitForSelector('#confirm-dialog[open]');
  assert.match(await page.textContent('#confirm-dialog'), new RegExp(toRevoke.key_id));
  await page.click('#confirm-ok');
  await page.waitForSelector(`[data-action=revoke][data-key="${toRevoke.key_id}"][disabled]`);
  assert.equal((await get(`/v1/keys/${toRevoke.key_id}`)).status, 'revoked');
  const verdict = await verify(toRevoke.secret);
  assert.equal(verdict.allowed, false);
  assert.equal(verdict.code, 'revoked');
});

await check('rotating shows the new secret once, and only the new one works', async () => {
  await page.click(`[data-action=rotate][data-key="${toRotate.key_id}"]`);
  await page.waitForSelector('#confirm-dialog[open]');
  await assertAccessible('the rotate dialog');
  await page.selectOption('#rotate-grace', '0s');
  await page.click('#confirm-ok');
  await page.waitForSelector('#secret-dialog[open]');
  const secret = await page.inputValue('#secret-value');
  assert.match(secret, /^nanu_live_[0-9A-Za-z]{49}$/);
  assert.notEqual(secret, toRotate.secret);
  await assertAccessible('the new secret dialog');
  await page.click('#secret-copy');
  await page.waitForFunction(() => document.getElementById('secret-status').textContent !== '');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
  await page.screenshot({ path: path.join(screenshots, 'dashboard-rotate.png') });
  await page.click('#secret-dialog button[value=done]');
  await page.waitForSelector('#secret-dialog', { state: 'hidden' });
  assert.equal(await page.inputValue('#secret-value'), '');
  assert.ok(!(await page.content()).includes(secret), 'the secret is still in the page');

  const fresh = await verify(secret);
  assert.equal(fresh.allowed, true, JSON.stringify(fresh));
  assert.equal(fresh.key_id, toRotate.key_id);
  const stale = await verify(toRotate.secret);
  assert.equal(stale.allowed, false, 'the old secret still works after a rotation without grace');
});

await check('the alerts view lists the newest alerts and the changes just made', async () => {
  const events = await allEvents();
  const alertKinds = new Set(['threshold', 'exhausted', 'expiring', 'expired', 'unpriced']);
  // The view keeps the newest 500 events, then filters them.
  const alerts = events.slice(-500).filter((event) => alertKinds.has(event.kind)).reverse();
  assert.ok(alerts.length > 0, 'the replay raised alerts');
  await page.click('#tabs a[data-view=alerts]');
  await idle('alerts');
  await page.waitForSelector('#alert-table tbody tr');
  const seqs = await page.$$eval('#alert-table tbody tr', (trs) =>
    trs.map((tr) => Number(tr.querySelector('td').textContent)));
  assert.deepEqual(seqs, alerts.map((event) => event.seq));
  await assertAccessible('the alerts view');

  await page.selectOption('#alert-kind', 'lifecycle');
  await idle('alerts');
  await page.waitForFunction(() => document.querySelector('#alert-table .kind-revoked'));
  const lifecycle = await page.$$eval('#alert-table tbody tr', (trs) => trs.map((tr) => {
    const cells = tr.querySelectorAll('td');
    return `${cells[2].textContent} ${cells[3].firstChild?.title}`;
  }));
  assert.ok(lifecycle.includes(`revoked ${toRevoke.key_id}`), lifecycle.join('\n'));
  assert.ok(lifecycle.includes(`rotated ${toRotate.key_id}`), lifecycle.join('\n'));
});

await check('an amount above 2^53 micro-units is shown to the last digit', async () => {
  const minted = await call('POST', '/v1/keys', {
    body: { owner: 'precision', name: 'charged beyond 2^53' },
  });
  assert.equal(minted.status, 201, minted.text);
  // 2^53 + 1: a double cannot hold it, so any rounding shows as ...992.
  const cost = '9007199254740993';
  const charged = await call('POST', '/v1/charge', {
    raw: `{"key_id": ${JSON.stringify(minted.body.key_id)}, "request_id": "precision-1", ` +
      `"cost": ${cost}}`,
    parse: false,
  });
  assert.equal(charged.status, 200, charged.text);

  const asked = requests.length;
  await page.click('#tabs a[data-view=usage]');
  await page.selectOption('#range', '1h');
  await page.waitForFunction(() => document.getElementById('range-note').textContent
    .includes('buckets'));
  await idle('usage');
  const sent = requests.slice(asked).map((url) => new URL(url))
    .filter((url) => url.pathname === '/v1/usage' && url.searchParams.get('group_by') === 'model');
  assert.equal(sent.length, 1, sent.join(', '));
  const from = sent[0].searchParams.get('from');
  const to = sent[0].searchParams.get('to');
  // Read as text: Node's JSON.parse may not keep integers above 2^53 either.
  const { text } = await call('GET', `/v1/usage?from=${from}&to=${to}`, { parse: false });
  const total = /"cost":\s*(\d+)/.exec(text)?.[1];
  assert.ok(total && BigInt(total) >= BigInt(cost), text);
  assert.equal(await page.getAttribute('[data-total=cost]', 'data-exact'), total);
  assert.equal((await page.textContent('[data-total=cost]')).trim(), money(total, currency));
});

await check('every request stayed on the server\'s own origin', async () => {
  const foreign = requests.filter((url) => !url.startsWith(`${base}/`) && !url.startsWith('data:'));
  assert.deepEqual(foreign, []);
});

await browser.close();
console.log(`dashboard: ${results.length} passed, 0 failed`);
