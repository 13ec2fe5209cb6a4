// The usage view: spend, tokens and requests over time broken down by model, owner or key;
// top keys by spend; denials by reason; the latest alerts.

import { api } from './api.js';
import { ALERT_KINDS, eventTable, nameKeys, recentEvents } from './alerts.js';
import { OTHER_COLOR, PALETTE, barCell, legend, stackedBars, swatch } from './charts.js';
import { h, showError, table } from './dom.js';
import {
  big, formatBucket, formatCompact, formatCount, formatMoney, formatMoneyCompact, formatShare,
  sum, wallTimeToInstant,
} from './format.js';
import { keyById, keyLabel, loadStats, vault } from './vault.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** Nominal bucket lengths, for bar widths and for choosing a bucket. */
const BUCKET_SPAN = { minute: MINUTE, hour: HOUR, day: DAY, week: 7 * DAY, month: 30.44 * DAY };
const RANGE_SPAN = { '1h': HOUR, '24h': DAY, '7d': 7 * DAY, '30d': 30 * DAY, '365d': 365 * DAY };

/** Charts read well up to about this many bars. */
const MAX_BARS = 240;
/** Series drawn one by one; the rest are summed as "other". */
const TOP_SERIES = 7;
/** Rows of the breakdown table. */
const MAX_TABLE_ROWS = 100;
const TOP_KEYS = 10;
const LATEST_ALERTS = 8;

const PREFS_SLOT = 'nanu.usagePrefs';

/** Why a verify was denied, in a few words, by its stable code. */
const REASONS = {
  rate_limited: ['a rolling rate limit was used up for now', '#d97706'],
  usage_exceeded: ['a request or token limit was used up', '#c2417e'],
  budget_exceeded: ['a cost limit was used up', '#b91c1c'],
  expired: ['the key was past its expiry', '#7357c2'],
  revoked: ['the key was revoked', '#374151'],
  disabled: ['the key was disabled', '#6b7280'],
  env_mismatch: ['the key belongs to another environment', '#0e7490'],
  ip_denied: ['the client address is outside the allowlist', '#4d7c0f'],
  scope_denied: ['the key lacks the scope asked for', '#2563c9'],
  model_denied: ['the key may not use the model', '#1b9e77'],
  model_unpriced: ['the model has no price and the key has a cost limit', '#8a5a3c'],
  malformed: ['not shaped like a key, or a wrong checksum', '#9ca3af'],
  not_found: ['no key has this secret', '#4b5563'],
};

function pickBucket(spanMs) {
  for (const bucket of ['minute', 'hour', 'day', 'week']) {
    if (spanMs / BUCKET_SPAN[bucket] <= MAX_BARS) return bucket;
  }
  return 'month';
}

function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

function readPrefs() {
  try {
    return JSON.parse(sessionStorage.getItem(PREFS_SLOT)) ?? {};
  } catch {
    return {};
  }
}

/** The group's label for people: models and endpoints may be missing (the empty string). */
function groupLabel(dim, value) {
  if (dim === 'key') return keyLabel(value);
  return value === '' ? '(none)' : value;
}

function addRow(into, row) {
  into.requests += big(row.requests);
  into.denied += big(row.denied);
  into.input_tokens += big(row.input_tokens);
  into.output_tokens += big(row.output_tokens);
  into.tokens += big(row.tokens);
  into.cost += big(row.cost);
}

function zeroTotals() {
  return { requests: 0n, denied: 0n, input_tokens: 0n, output_tokens: 0n, tokens: 0n, cost: 0n };
}

function byRank(a, b) {
  for (const field of ['cost', 'tokens', 'requests', 'denied']) {
    if (a[1][field] !== b[1][field]) return a[1][field] > b[1][field] ? -1 : 1;
  }
  return a[0] < b[0] ? -1 : 1;
}

/** The usage view, bound to its elements in index.html. */
export function usageView() {
  const form = document.getElementById('usage-controls');
  const fields = form.elements;
  const errorRegion = document.getElementById('usage-error');
  const note = document.getElementById('range-note');
  const charts = [];
  let generation = 0;

  const zones = document.getElementById('zones');
  const names = typeof Intl.supportedValuesOf === 'function'
    ? Intl.supportedValuesOf('timeZone') : [];
  zones.replaceChildren(...['UTC', ...names].map((zone) => h('option', { value: zone })));

  const prefs = readPrefs();
  fields.range.value = prefs.range ?? 'all';
  fields.bucket.value = prefs.bucket ?? 'auto';
  fields.tz.value = prefs.tz ?? browserZone();
  fields.by.value = prefs.by ?? 'model';
  fields.from.value = prefs.from ?? '';
  fields.to.value = prefs.to ?? '';
  const showCustom = () => {
    const custom = fields.range.value === 'custom';
    for (const field of form.querySelectorAll('[data-custom]')) field.hidden = !custom;
    fields.from.required = custom;
    fields.to.required = custom;
    if (custom) note.textContent = 'From and To are wall times in the chosen time zone.';
  };
  showCustom();
  fields.range.addEventListener('change', showCustom);

  const timeZone = () => fields.tz.value.trim() || 'UTC';

  function savePrefs() {
    const keep = {};
    for (const name of ['range', 'bucket', 'tz', 'by', 'from', 'to']) {
      keep[name] = fields[name].value;
    }
    sessionStorage.setItem(PREFS_SLOT, JSON.stringify(keep));
  }

  /** The range asked for, as instants; null ends are open. Throws on a bad custom range. */
  function chosenRange() {
    const range = fields.range.value;
    if (range === 'all') return { from: null, to: null };
    if (range === 'custom') {
      const from = wallTimeToInstant(fields.from.value, timeZone());
      const to = wallTimeToInstant(fields.to.value, timeZone());
      if (!(from < to)) throw new RangeError('the range must end after it starts');
      return { from, to };
    }
    const to = new Date();
    return { from: new Date(to.getTime() - RANGE_SPAN[range]), to };
  }

  async function load() {
    const mine = ++generation;
    const current = () => mine === generation;
    errorRegion.hidden = true;
    note.textContent = 'Loading…';
    document.getElementById('view-usage').setAttribute('aria-busy', 'true');
    try {
      await loadInto(current);
    } catch (error) {
      if (!current()) return;
      clear();
      showError(errorRegion, error, 'Usage could not be shown');
    } finally {
      if (current()) document.getElementById('view-usage').removeAttribute('aria-busy');
    }
  }

  async function loadInto(current) {
    const tz = timeZone();
    try {
      new Intl.DateTimeFormat('en', { timeZone: tz });
    } catch {
      throw new RangeError(`unknown time zone ${JSON.stringify(tz)}: pick an IANA name such ` +
        'as Europe/Paris');
    }
    const { from, to } = chosenRange();
    savePrefs();
    const base = { from: from?.toISOString(), to: to?.toISOString(), tz };
    const dim = fields.by.value;

    let bucket = fields.bucket.value;
    if (bucket === 'auto') {
      if (from && to) {
        bucket = pickBucket(to - from);
      } else {
        // All time: the data's own span decides, read at hour resolution.
        const probe = await api('GET', '/v1/usage', { query: { ...base, bucket: 'hour' } });
        const starts = (probe?.rows ?? []).map((row) => Date.parse(row.bucket));
        const first = starts.reduce((a, b) => Math.min(a, b), Infinity);
        const last = starts.reduce((a, b) => Math.max(a, b), -Infinity);
        bucket = starts.length ? pickBucket(last + HOUR - first) : 'day';
      }
    }

    const [main, outcomes, keys, stats, events] = await Promise.allSettled([
      api('GET', '/v1/usage', { query: { ...base, group_by: dim, bucket } }),
      api('GET', '/v1/usage', { query: { ...base, group_by: 'outcome', bucket } }),
      dim === 'key' ? null : api('GET', '/v1/usage', { query: { ...base, group_by: 'key' } }),
      loadStats(),
      recentEvents(),
    ]);
    if (!current()) return;
    if (main.status === 'rejected') throw main.reason;

    const rows = main.value?.rows ?? [];
    const keyRows = dim === 'key' ? rows : keys.value?.rows;
    const starts = [...new Set(rows.map((row) => Date.parse(row.bucket)))].sort((a, b) => a - b);
    const span = BUCKET_SPAN[bucket];
    const domain = [
      Math.min(from ? from.getTime() : Infinity, starts[0] ?? Date.now()),
      Math.max(to ? to.getTime() : -Infinity, (starts[starts.length - 1] ?? Date.now()) + span),
    ];
    note.textContent = starts.length
      ? `${starts.length} ${bucket} buckets from ${formatBucket(domain[0], 'minute', tz)} to ` +
        `${formatBucket(domain[1], 'minute', tz)} (${tz}).`
      : `No usage recorded in this range (${tz}).`;

    // Name the keys that will be drawn or listed before drawing them.
    const keyIds = new Set();
    if (keyRows) {
      const perKey = new Map();
      for (const row of keyRows) {
        const id = row.group.key;
        if (!perKey.has(id)) perKey.set(id, zeroTotals());
        addRow(perKey.get(id), row);
      }
      [...perKey].sort(byRank).slice(0, Math.max(TOP_KEYS, TOP_SERIES))
        .forEach(([id]) => keyIds.add(id));
    }
    const latest = events.status === 'fulfilled'
      ? events.value.events.filter((event) => ALERT_KINDS.has(event.kind)).slice(0, LATEST_ALERTS)
      : [];
    await Promise.all([...keyIds].map((id) => keyById(id)).concat(nameKeys(latest)));
    if (!current()) return;

    renderTotals(rows);
    renderSeries({ rows, dim, bucket, starts, span, domain, tz });
    renderTopKeys(keyRows, keys.status === 'rejected' ? keys.reason : null);
    renderDenials({ outcomes, stats, bucket, starts, span, domain, tz });
    drawCharts();
    renderLatestAlerts(events, latest, tz);
  }

  function renderTotals(rows) {
    const totals = zeroTotals();
    for (const row of rows) addRow(totals, row);
    const answered = totals.requests + totals.denied;
    const card = (label, name, value, text, detail) => h('div', { className: 'total card' },
      h('span', { className: 'total-label' }, label),
      h('strong', { className: 'total-value', 'data-total': name, 'data-exact': value.toString() },
        text),
      detail ? h('span', { className: 'total-detail' }, detail) : null);
    document.getElementById('totals').replaceChildren(
      card('Spend', 'cost', totals.cost, formatMoney(totals.cost, vault.currency),
        vault.currency ? null : 'currency unknown: /v1/stats could not be read'),
      card('Tokens', 'tokens', totals.tokens, formatCount(totals.tokens),
        `${formatCount(totals.input_tokens)} in, ${formatCount(totals.output_tokens)} out`),
      card('Requests charged', 'requests', totals.requests, formatCount(totals.requests),
        `of ${formatCount(answered)} verdicts for known keys`),
      card('Denied', 'denied', totals.denied, formatCount(totals.denied),
        `${formatShare(totals.denied, answered)} of verdicts for known keys`),
    );
  }

  function renderSeries({ rows, dim, bucket, starts, span, domain, tz }) {
    const perGroup = new Map();
    for (const row of rows) {
      const name = row.group[dim];
      if (!perGroup.has(name)) perGroup.set(name, zeroTotals());
      addRow(perGroup.get(name), row);
    }
    const ranked = [...perGroup].sort(byRank);
    const drawn = ranked.slice(0, TOP_SERIES).map(([name], i) => ({
      name,
      label: groupLabel(dim, name),
      title: dim === 'key' ? name : undefined,
      color: PALETTE[i % PALETTE.length],
    }));
    const rest = ranked.length > TOP_SERIES;
    if (rest) drawn.push({ name: '\u0000other', label: `${ranked.length - TOP_SERIES} others`,
      color: OTHER_COLOR });
    const slot = new Map(drawn.map((s, i) => [s.name, i]));
    const index = new Map(starts.map((start, i) => [start, i]));
    const grids = {};
    for (const metric of ['cost', 'tokens', 'requests']) {
      grids[metric] = drawn.map(() => starts.map(() => 0n));
    }
    for (const row of rows) {
      const s = slot.get(row.group[dim]) ?? (rest ? drawn.length - 1 : null);
      const i = index.get(Date.parse(row.bucket));
      if (s === null || i === undefined) continue;
      for (const metric of ['cost', 'tokens', 'requests']) grids[metric][s][i] += big(row[metric]);
    }

    const dimName = { model: 'model', owner: 'owner', key: 'key' }[dim];
    const common = { buckets: starts, span, domain, bucket, timeZone: tz };
    const specs = [
      ['chart-spend', {
        title: `Spend per ${bucket} by ${dimName}`,
        axis: formatMoneyCompact,
        exact: (v) => formatMoney(v, vault.currency),
        metric: 'cost',
      }],
      ['chart-tokens', {
        title: `Tokens per ${bucket} by ${dimName}`, axis: formatCompact, exact: formatCount,
        metric: 'tokens',
      }],
      ['chart-requests', {
        title: `Requests charged per ${bucket} by ${dimName}`, axis: formatCompact,
        exact: formatCount, metric: 'requests',
      }],
    ];
    charts.length = 0;
    for (const [id, spec] of specs) {
      const full = {
        ...common,
        ...spec,
        series: drawn.map((s, i) => ({ ...s, values: grids[spec.metric][i] })),
      };
      charts.push([document.getElementById(id), full]);
    }
    document.getElementById('usage-legend').replaceChildren(legend(drawn));

    const totalCost = sum(ranked.map(([, t]) => t.cost));
    const label = { model: 'Model', owner: 'Owner', key: 'Key' }[dim];
    const tableRows = ranked.slice(0, MAX_TABLE_ROWS).map(([name, t], i) => [
      h('span', { className: 'series-name', title: dim === 'key' ? name : null },
        swatch(i < TOP_SERIES ? PALETTE[i % PALETTE.length] : OTHER_COLOR),
        groupLabel(dim, name)),
      formatCount(t.requests),
      formatCount(t.denied),
      formatCount(t.input_tokens),
      formatCount(t.output_tokens),
      formatMoney(t.cost, vault.currency),
      barCell(t.cost, totalCost, formatShare(t.cost, totalCost),
        i < TOP_SERIES ? PALETTE[i % PALETTE.length] : OTHER_COLOR),
    ]);
    const breakdown = table({
      columns: [
        { label }, { label: 'Requests', numeric: true }, { label: 'Denied', numeric: true },
        { label: 'Input tokens', numeric: true }, { label: 'Output tokens', numeric: true },
        { label: 'Spend', numeric: true }, { label: 'Share of spend' },
      ],
      rows: tableRows,
      empty: 'No usage in this range.',
    });
    const more = ranked.length > MAX_TABLE_ROWS
      ? h('p', { className: 'help' },
        `The ${MAX_TABLE_ROWS} largest of ${ranked.length} are shown.`)
      : null;
    document.getElementById('breakdown').replaceChildren(breakdown, more ?? '');
  }

  function renderTopKeys(keyRows, error) {
    const host = document.getElementById('top-keys');
    if (error) {
      showError(host, error);
      return;
    }
    const perKey = new Map();
    for (const row of keyRows ?? []) {
      const id = row.group.key;
      if (!perKey.has(id)) perKey.set(id, zeroTotals());
      addRow(perKey.get(id), row);
    }
    const ranked = [...perKey].sort(byRank).slice(0, TOP_KEYS);
    const top = ranked[0]?.[1].cost ?? 0n;
    host.replaceChildren(table({
      columns: [
        { label: 'Key' }, { label: 'Requests', numeric: true }, { label: 'Tokens', numeric: true },
        { label: 'Spend' },
      ],
      rows: ranked.map(([id, t]) => [
        h('span', { title: id }, keyLabel(id), h('br'), h('code', { className: 'key-id' }, id)),
        formatCount(t.requests),
        formatCount(t.tokens),
        barCell(t.cost, top, formatMoney(t.cost, vault.currency)),
      ]),
      empty: 'No usage in this range.',
      className: 'top-keys',
    }));
  }

  function renderDenials({ outcomes, stats, bucket, starts, span, domain, tz }) {
    const host = document.getElementById('denials');
    const chartHost = document.getElementById('chart-denials');
    if (outcomes.status === 'rejected') {
      showError(host, outcomes.reason);
      chartHost.replaceChildren();
      return;
    }
    const rows = (outcomes.value?.rows ?? []).filter((row) => row.group.outcome !== 'charged');
    const perReason = new Map();
    for (const row of rows) {
      const reason = row.group.outcome;
      perReason.set(reason, (perReason.get(reason) ?? 0n) + big(row.denied));
    }
    const ranked = [...perReason].sort((a, b) => (a[1] === b[1] ? 0 : a[1] > b[1] ? -1 : 1));
    const total = sum(ranked.map(([, n]) => n));
    const color = (reason) => REASONS[reason]?.[1] ?? OTHER_COLOR;
    const reasonRows = ranked.map(([reason, n]) => [
      h('span', {}, h('code', {}, reason), h('br'),
        h('span', { className: 'help' }, REASONS[reason]?.[0] ?? '')),
      barCell(n, total, `${formatCount(n)} (${formatShare(n, total)})`, color(reason)),
    ]);
    const parts = [table({
      caption: 'Denied verifies of known keys in this range (from the usage log)',
      columns: [{ label: 'Reason' }, { label: 'Denied' }],
      rows: reasonRows,
      empty: 'No denials in this range.',
      className: 'denials',
    })];
    if (stats.status === 'fulfilled' && stats.value) {
      const s = stats.value;
      parts.push(table({
        caption: 'Refused secrets that name no key (counted since the vault was created)',
        columns: [{ label: 'Reason' }, { label: 'Count', numeric: true }],
        rows: ['malformed', 'not_found'].filter((code) => code in s).map((code) => [
          h('span', {}, h('code', {}, code), h('br'),
            h('span', { className: 'help' }, REASONS[code][0])),
          formatCount(s[code]),
        ]),
        className: 'denials unknown',
      }));
    }
    host.replaceChildren(...parts);

    const index = new Map(starts.map((start, i) => [start, i]));
    const series = ranked.map(([reason]) => ({
      name: reason, color: color(reason), values: starts.map(() => 0n),
    }));
    const slot = new Map(series.map((s, i) => [s.name, i]));
    for (const row of rows) {
      const i = index.get(Date.parse(row.bucket));
      const s = slot.get(row.group.outcome);
      if (i !== undefined && s !== undefined) series[s].values[i] += big(row.denied);
    }
    charts.push([chartHost, {
      title: `Denied verifies per ${bucket} by reason`,
      buckets: starts,
      span,
      domain,
      bucket,
      timeZone: tz,
      series,
      axis: formatCompact,
      exact: formatCount,
      emptyText: 'No denials in this range.',
    }]);
    document.getElementById('denials-legend').replaceChildren(legend(series));
  }

  function renderLatestAlerts(events, latest, tz) {
    const host = document.getElementById('latest-alerts');
    if (events.status === 'rejected') {
      showError(host, events.reason);
      return;
    }
    host.replaceChildren(eventTable(latest, tz), h('p', { className: 'help' },
      h('a', { href: '#alerts' }, 'All alerts and events')));
  }

  /** Empties every panel, so that figures of an earlier range are never shown as this one's. */
  function clear() {
    charts.length = 0;
    note.textContent = '';
    for (const id of ['totals', 'chart-spend', 'chart-tokens', 'chart-requests', 'usage-legend',
      'breakdown', 'top-keys', 'denials', 'chart-denials', 'denials-legend', 'latest-alerts']) {
      document.getElementById(id).replaceChildren();
    }
  }

  function drawCharts() {
    for (const [host, spec] of charts) stackedBars(host, spec);
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    load();
  });
  for (const name of ['bucket', 'by']) fields[name].addEventListener('change', () => load());
  fields.range.addEventListener('change', () => {
    if (fields.range.value !== 'custom') load();
  });

  let lastWidth = 0;
  let pending = null;
  const redraw = () => {
    const width = document.getElementById('chart-spend').clientWidth;
    if (width && width !== lastWidth) {
      lastWidth = width;
      drawCharts();
    }
  };
  addEventListener('resize', () => {
    clearTimeout(pending);
    pending = setTimeout(redraw, 120);
  });

  return { load, redraw, timeZone };
}
