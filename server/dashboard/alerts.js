// The alerts view: recent events (thresholds crossed, limits exhausted, keys expiring or
// expired, unpriced models, rotations and revocations), newest first.

import { api } from './api.js';
import { h, showError, table } from './dom.js';
import { formatInstant, formatLimit, formatMoney, formatCount } from './format.js';
import { keyById, keyLabel, vault } from './vault.js';

export const ALERT_KINDS = new Set(['threshold', 'exhausted', 'expiring', 'expired', 'unpriced']);
export const LIFECYCLE_KINDS = new Set(['rotated', 'revoked']);

const PAGE = 1000;
const KEEP = 500;
// /v1/events reads forward from a sequence number. Event numbers have no gaps, so the newest
// KEEP start after /v1/stats' last_event_seq - KEEP; without that number (a key lacking
// usage:read) every page is read, a walk this bounds for a vault with a very long history.
const MAX_PAGES = 200;

/**
 * The newest events, newest first: at most KEEP of them, and whether older ones were left out
 * or the walk stopped before the end.
 */
export async function recentEvents() {
  const newest = Number(vault.stats?.last_event_seq ?? 0);
  let after = newest > KEEP ? newest - KEEP : 0;
  let kept = [];
  let total = after;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const answer = await api('GET', '/v1/events', { query: { after, limit: PAGE } });
    const events = answer?.events ?? [];
    total += events.length;
    kept = kept.concat(events).slice(-KEEP);
    if (events.length < PAGE) return { events: kept.reverse(), total, complete: true };
    after = events[events.length - 1].seq;
  }
  return { events: kept.reverse(), total, complete: false };
}

/** The most keys looked up by id to name the keys of a table of events. */
const MAX_LOOKUPS = 100;

/** Looks up the keys the events name, so that tables can show names rather than ids. */
export async function nameKeys(events) {
  const ids = [...new Set(events.map((event) => event.key_id).filter(Boolean))];
  await Promise.all(ids.slice(0, MAX_LOOKUPS).map((id) => keyById(id)));
}

function limitAmount(limit, value) {
  return limit.unit === 'cost' ? formatMoney(value, vault.currency) : formatCount(value);
}

/** What an event says, in one line. */
export function describeEvent(event) {
  const status = event.limit;
  const where = status ? `${status.level} limit ${formatLimit(status.limit, vault.currency)}` : '';
  switch (event.kind) {
    case 'threshold':
      return `${event.percent}% of the ${where} used (${limitAmount(status.limit, status.used)} ` +
        `used, ${limitAmount(status.limit, status.remaining)} left)`;
    case 'exhausted':
      return `the ${where} is used up`;
    case 'expiring':
      return 'the key expires soon';
    case 'expired':
      return 'the key expired';
    case 'unpriced':
      return `model ${event.model ?? '(none)'} has no price; its cost was recorded as zero`;
    case 'rotated':
      return 'a new secret was issued';
    case 'revoked':
      return 'the key was revoked';
    default:
      return event.kind;
  }
}

/** The events as a table. */
export function eventTable(events, timeZone) {
  return table({
    columns: [
      { label: '#', numeric: true }, { label: `When (${timeZone})` }, { label: 'Kind' },
      { label: 'Key' }, { label: 'Owner' }, { label: 'What happened' },
    ],
    rows: events.map((event) => [
      String(event.seq),
      h('time', { dateTime: event.at }, formatInstant(event.at, timeZone, 'second')),
      h('span', { className: `badge kind-${event.kind}` }, event.kind),
      event.key_id ? h('span', { title: event.key_id }, keyLabel(event.key_id)) : '',
      event.owner ?? '',
      describeEvent(event),
    ]),
    empty: 'No events of this kind.',
    className: 'events',
  });
}

export function kindFilter(choice) {
  if (choice === 'alerts') return (event) => ALERT_KINDS.has(event.kind);
  if (choice === 'lifecycle') return (event) => LIFECYCLE_KINDS.has(event.kind);
  return () => true;
}

/** The alerts view, bound to its elements in index.html. */
export function alertsView({ timeZone }) {
  const form = document.getElementById('alert-filters');
  const errorRegion = document.getElementById('alerts-error');
  const host = document.getElementById('alert-table');
  const note = document.getElementById('alerts-note');
  let generation = 0;

  async function load() {
    const mine = ++generation;
    errorRegion.hidden = true;
    host.setAttribute('aria-busy', 'true');
    try {
      const { events, total, complete } = await recentEvents();
      if (mine !== generation) return;
      const shown = events.filter(kindFilter(form.elements.kind.value));
      await nameKeys(shown);
      if (mine !== generation) return;
      host.replaceChildren(eventTable(shown, timeZone()));
      note.textContent = `${formatCount(shown.length)} shown of the newest ` +
        `${formatCount(events.length)} events (${formatCount(total)} read` +
        `${complete ? '' : ', stopped before the end'}).`;
    } catch (error) {
      if (mine !== generation) return;
      host.replaceChildren();
      showError(errorRegion, error, 'Events could not be read');
    } finally {
      if (mine === generation) host.removeAttribute('aria-busy');
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    load();
  });
  form.elements.kind.addEventListener('change', () => load());
  return { load };
}
