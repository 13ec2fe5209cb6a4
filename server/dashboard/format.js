// Numbers, money and instants as the dashboard shows them. Amounts arrive as numbers or BigInt
// (see api.js); every exact figure is computed and printed through BigInt.

const MICROS_PER_UNIT = 1_000_000n;

/** The value as a BigInt; the API's integers are numbers up to 2^53 and BigInt above. */
export function big(value) {
  if (typeof value === 'bigint') return value;
  if (value === null || value === undefined) return 0n;
  return BigInt(value);
}

/** Adds integers exactly. */
export function sum(values) {
  let total = 0n;
  for (const value of values) total += big(value);
  return total;
}

function group(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** An exact count with thousands separators: `30,000,000,000`. */
export function formatCount(value) {
  const n = big(value);
  return n < 0n ? `-${group((-n).toString())}` : group(n.toString());
}

/**
 * Micro-units as an exact decimal of the vault's currency, fraction trimmed down to two digits
 * as the CLI does: `12.345678 USD`, `10.00 USD`. Without a currency only the amount is shown.
 */
export function formatMoney(micros, currency) {
  const n = big(micros);
  const sign = n < 0n ? '-' : '';
  const abs = n < 0n ? -n : n;
  const whole = group((abs / MICROS_PER_UNIT).toString());
  let fraction = (abs % MICROS_PER_UNIT).toString().padStart(6, '0').replace(/0+$/, '');
  fraction = fraction.padEnd(2, '0');
  const amount = `${sign}${whole}.${fraction}`;
  return currency ? `${amount} ${currency.toUpperCase()}` : amount;
}

const compact = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 });

/** A short, rounded count for chart axes only: `1.2M`. */
export function formatCompact(value) {
  return compact.format(Number(value));
}

/**
 * A short amount of money for chart axes only: micro-units to `0.25`, `1.50`, `12K`, with as
 * many fraction digits as the step between ticks needs.
 */
export function formatMoneyCompact(micros, step = micros) {
  const units = Number(micros) / 1e6;
  if (Math.abs(units) >= 10_000) return compact.format(units);
  const digits = Math.min(6, Math.max(0, Math.ceil(-Math.log10(Number(step) / 1e6 || 1))));
  return units.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** A share as a percent with one decimal, computed exactly: `49.8%`. */
export function formatShare(part, whole) {
  const w = big(whole);
  if (w === 0n) return '0.0%';
  const tenths = (big(part) * 1000n + w / 2n) / w;
  return `${tenths / 10n}.${tenths % 10n}%`;
}

const partsCache = new Map();

function parts(instant, timeZone) {
  let formatter = partsCache.get(timeZone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      timeZoneName: 'shortOffset',
    });
    partsCache.set(timeZone, formatter);
  }
  const out = {};
  for (const part of formatter.formatToParts(instant)) out[part.type] = part.value;
  return out;
}

function toDate(instant) {
  return instant instanceof Date ? instant : new Date(instant);
}

/**
 * An instant as wall time in `timeZone`, ISO-like so that it reads the same in every locale:
 * `2023-11-16 18:15`. `precision` is `minute` (default), `second`, `day` or `month`.
 */
export function formatInstant(instant, timeZone, precision = 'minute') {
  if (instant === null || instant === undefined) return '';
  const p = parts(toDate(instant), timeZone);
  const date = `${p.year}-${p.month}-${p.day}`;
  if (precision === 'month') return `${p.year}-${p.month}`;
  if (precision === 'day') return date;
  if (precision === 'second') return `${date} ${p.hour}:${p.minute}:${p.second}`;
  return `${date} ${p.hour}:${p.minute}`;
}

/** The zone's offset at `instant`, as `GMT+1`. */
export function offsetName(instant, timeZone) {
  return parts(toDate(instant), timeZone).timeZoneName;
}

/** How a bucket's start is labelled, by bucket size. */
export function formatBucket(instant, bucket, timeZone) {
  switch (bucket) {
    case 'month':
      return formatInstant(instant, timeZone, 'month');
    case 'week':
      return `week of ${formatInstant(instant, timeZone, 'day')}`;
    case 'day':
      return formatInstant(instant, timeZone, 'day');
    default:
      return formatInstant(instant, timeZone, 'minute');
  }
}

/**
 * The instant at which the wall time `local` (`2026-05-01T09:30`, as a datetime-local input
 * gives it) happens in `timeZone`. A wall time that occurs twice (clocks set back) is its
 * first occurrence; one that never occurs (clocks set forward) is read with the offset before
 * the change, so 02:30 on a night that skips from 02:00 to 03:00 becomes 03:30.
 */
export function wallTimeToInstant(local, timeZone) {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(local);
  if (!match) throw new RangeError(`not a date and time: ${local}`);
  const [, y, mo, d, h, mi, s = '0'] = match;
  const wall = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s);
  const offsetAt = (ms) => {
    const p = parts(new Date(ms), timeZone);
    const seen = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
    return seen - Math.floor(ms / 1000) * 1000;
  };
  // The offsets a day before and a day after cover both sides of any one change.
  const DAY = 86_400_000;
  const before = wall - offsetAt(wall - DAY);
  const after = wall - offsetAt(wall + DAY);
  const real = [before, after].filter((ms) => wall - offsetAt(ms) === ms);
  return new Date(real.length ? Math.min(...real) : before);
}

/** Text for a limit: `cost 10.00 USD / month (Europe/Paris)`, `requests 600 / 1m rolling`. */
export function formatLimit(limit, currency) {
  const amount = limit.unit === 'cost'
    ? formatMoney(limit.amount, currency)
    : formatCount(limit.amount);
  let window = limit.window;
  if (limit.window === 'rolling') window = `${limit.every} rolling`;
  if (limit.tz && limit.tz !== 'UTC') window += ` (${limit.tz})`;
  if (limit.anchor) window += `, from day ${limit.anchor}`;
  return `${limit.unit.replace('_', ' ')} ${amount} / ${window}`;
}
