// Hand-drawn SVG charts: stacked bars over time, and bar cells for tables. The data sizes of a
// dashboard (a few hundred buckets, a handful of series) need no chart library, and SVG keeps
// every bar in the DOM, where tests and screen readers can find it.

import { formatBucket, formatInstant } from './format.js';

const SVG = 'http://www.w3.org/2000/svg';

/** Series colours, told apart by people with the common colour-vision deficiencies. */
export const PALETTE = [
  '#2563c9', '#e07b22', '#1b9e77', '#c2417e', '#7357c2', '#b8901a', '#4ba3d9', '#8a5a3c',
];
export const OTHER_COLOR = '#a3aab5';

function el(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Ticks at 1, 2 or 5 times a power of ten, at least 1 apart (the API's values are integers). */
function niceTicks(max, count) {
  if (max <= 0) return { ticks: [0, 1], step: 1 };
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw));
  const ticks = [];
  for (let v = 0; v < max + step; v += step) {
    ticks.push(v);
    if (v >= max) break;
  }
  return { ticks, step };
}

const HEIGHT = 230;
const MARGIN = { top: 10, right: 12, bottom: 38, left: 58 };

/**
 * Draws a stacked bar chart over time into `host`, replacing what it held.
 *
 * `spec`: `title` (for the accessible name), `buckets` (bucket starts in ms, ascending),
 * `span` (a bucket's nominal length in ms), `domain` ([from, to] in ms), `series`
 * (`{name, color, values}`, values aligned with buckets, numbers or BigInt), `axis` (a tick's
 * value and the step between ticks to short text), `exact` (value to exact text), `bucket` (its
 * size name) and `timeZone`.
 */
export function stackedBars(host, spec) {
  host.replaceChildren();
  host.classList.add('chart');
  const { buckets, series } = spec;
  const totals = buckets.map((_, i) => series.reduce((t, s) => t + Number(s.values[i] ?? 0), 0));
  if (!buckets.length || totals.every((t) => t === 0)) {
    const empty = document.createElement('p');
    empty.className = 'chart-empty';
    empty.textContent = spec.emptyText ?? 'Nothing in this range.';
    host.append(empty);
    return;
  }

  const width = Math.max(320, Math.floor(host.clientWidth || 640));
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const [from, to] = spec.domain;
  const x = (ms) => MARGIN.left + ((ms - from) / Math.max(1, to - from)) * plotW;
  const { ticks, step } = niceTicks(totals.reduce((a, b) => Math.max(a, b), 0), 4);
  const top = ticks[ticks.length - 1];
  const y = (v) => MARGIN.top + plotH - (v / top) * plotH;
  const slot = Math.max(1, x(from + spec.span) - x(from));
  const barW = Math.max(1, slot > 4 ? slot * 0.82 : slot);

  const root = el('svg', {
    viewBox: `0 0 ${width} ${HEIGHT}`,
    width,
    height: HEIGHT,
    role: 'img',
    'aria-label': spec.title,
    'data-series': series.length,
    'data-buckets': buckets.length,
  });

  const grid = el('g', { class: 'grid' });
  for (const tick of ticks) {
    const ty = y(tick);
    grid.append(el('line', { x1: MARGIN.left, x2: width - MARGIN.right, y1: ty, y2: ty }));
    const label = spec.axis(tick, step);
    grid.append(el('text', { x: MARGIN.left - 8, y: ty + 4, class: 'y-label' }, label));
  }
  root.append(grid);

  // One path per series, one rectangle per bucket inside it, stacked in series order.
  const base = buckets.map(() => 0);
  series.forEach((s) => {
    let d = '';
    buckets.forEach((start, i) => {
      const v = Number(s.values[i] ?? 0);
      if (v <= 0) return;
      const y0 = y(base[i]);
      const y1 = y(base[i] + v);
      base[i] += v;
      const h = Math.max(0.5, y0 - y1);
      d += `M${x(start).toFixed(2)} ${(y0 - h).toFixed(2)}h${barW.toFixed(2)}v${h.toFixed(2)}` +
        `h${(-barW).toFixed(2)}z`;
    });
    root.append(el('path', { d, fill: s.color, class: 'series', 'data-name': s.name }));
  });

  const axis = el('g', { class: 'x-axis' });
  axis.append(el('line', {
    x1: MARGIN.left, x2: width - MARGIN.right, y1: MARGIN.top + plotH, y2: MARGIN.top + plotH,
  }));
  let lastX = -Infinity;
  let lastDay = '';
  const fine = spec.bucket === 'minute' || spec.bucket === 'hour';
  for (const start of buckets) {
    const cx = x(start) + barW / 2;
    if (cx - lastX < 96 || cx > width - 24) continue;
    lastX = cx;
    const label = el('text', { x: cx, y: MARGIN.top + plotH + 16, class: 'x-label' });
    if (fine) {
      const full = formatInstant(start, spec.timeZone);
      const [day, time] = full.split(' ');
      label.textContent = time;
      if (day !== lastDay) {
        label.append(el('tspan', { x: cx, dy: 13 }, day));
        lastDay = day;
      }
    } else {
      label.textContent = formatBucket(start, spec.bucket, spec.timeZone).replace('week of ', '');
    }
    axis.append(el('line', { x1: cx, x2: cx, y1: MARGIN.top + plotH, y2: MARGIN.top + plotH + 4 }));
    axis.append(label);
  }
  root.append(axis);

  const hover = el('rect', {
    class: 'hover', y: MARGIN.top, height: plotH, width: Math.max(slot, 2), visibility: 'hidden',
  });
  root.insertBefore(hover, grid.nextSibling);
  host.append(root);

  const tip = document.createElement('div');
  tip.className = 'tooltip';
  tip.hidden = true;
  host.append(tip);

  const nearest = (px) => {
    let best = -1;
    let distance = Infinity;
    buckets.forEach((start, i) => {
      const dx = Math.abs(x(start) + barW / 2 - px);
      if (dx < distance) {
        distance = dx;
        best = i;
      }
    });
    return distance <= Math.max(slot, 12) ? best : -1;
  };
  root.addEventListener('pointermove', (event) => {
    const box = root.getBoundingClientRect();
    const px = ((event.clientX - box.left) / box.width) * width;
    const i = nearest(px);
    if (i < 0) {
      hover.setAttribute('visibility', 'hidden');
      tip.hidden = true;
      return;
    }
    hover.setAttribute('x', x(buckets[i]) - (slot - barW) / 2);
    hover.setAttribute('visibility', 'visible');
    showTip(tip, spec, i);
    const left = Math.min(event.clientX - box.left + 14, box.width - tip.offsetWidth - 4);
    tip.style.left = `${Math.max(4, left)}px`;
    tip.style.top = `${Math.max(0, event.clientY - box.top - tip.offsetHeight - 10)}px`;
  });
  root.addEventListener('pointerleave', () => {
    hover.setAttribute('visibility', 'hidden');
    tip.hidden = true;
  });
}

function showTip(tip, spec, i) {
  tip.replaceChildren();
  const head = document.createElement('strong');
  head.textContent = formatBucket(spec.buckets[i], spec.bucket, spec.timeZone);
  tip.append(head);
  const list = document.createElement('dl');
  let total = 0n;
  for (const s of [...spec.series].reverse()) {
    const value = s.values[i] ?? 0;
    if (BigInt(value) === 0n) continue;
    total += BigInt(value);
    const name = document.createElement('dt');
    name.append(swatch(s.color), s.label ?? s.name);
    const amount = document.createElement('dd');
    amount.textContent = spec.exact(value);
    list.append(name, amount);
  }
  const name = document.createElement('dt');
  name.textContent = 'total';
  const amount = document.createElement('dd');
  amount.textContent = spec.exact(total);
  list.append(name, amount);
  tip.append(list);
  tip.hidden = false;
}

/** A small square of `color`, beside a series' name. */
export function swatch(color) {
  const node = document.createElement('span');
  node.className = 'swatch';
  node.setAttribute('aria-hidden', 'true');
  node.style.background = color;
  return node;
}

/** A legend for `series`: colour swatches with names. */
export function legend(series) {
  const list = document.createElement('ul');
  list.className = 'legend';
  for (const s of series) {
    const item = document.createElement('li');
    item.append(swatch(s.color), s.label ?? s.name);
    if (s.title) item.title = s.title;
    list.append(item);
  }
  return list;
}

/** A table cell holding a bar whose length is `part / whole`, with `text` beside it. */
export function barCell(part, whole, text, color) {
  const cell = document.createElement('td');
  cell.className = 'bar-cell';
  const track = document.createElement('span');
  track.className = 'bar-track';
  const bar = document.createElement('span');
  bar.className = 'bar';
  const w = BigInt(whole);
  const permille = w === 0n ? 0 : Number((BigInt(part) * 1000n) / w);
  bar.style.width = `${permille / 10}%`;
  if (color) bar.style.background = color;
  track.append(bar);
  const label = document.createElement('span');
  label.className = 'bar-label';
  label.textContent = text;
  cell.append(track, label);
  return cell;
}
