// Building DOM nodes from data. Text always goes in through textContent, never as HTML, because
// owners, names and metadata are whatever the vault's users typed.

/**
 * `h('td', {className: 'num', title: 'exact'}, 'text', otherNode)`: an element with
 * properties (or `data-*` and `aria-*` attributes) and children; null children are skipped.
 */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('data-') || name.startsWith('aria-') || name === 'role') {
      node.setAttribute(name, String(value));
    } else if (name.startsWith('on') && typeof value === 'function') {
      node.addEventListener(name.slice(2), value);
    } else {
      node[name] = value;
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Shows `error` (an ApiError or any Error) in `region`, replacing what it held. */
export function showError(region, error, prefix) {
  const text = typeof error?.describe === 'function' ? error.describe() : String(error?.message);
  region.replaceChildren(h('p', { className: 'error', role: 'alert' }, prefix ? `${prefix}: ` : '',
    text));
  region.hidden = false;
}

let toastTimer = null;

/** A short message at the bottom of the page, read out by screen readers, gone after a while. */
export function toast(text) {
  const region = document.getElementById('toast');
  region.textContent = text;
  region.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    region.hidden = true;
  }, 6000);
}

/** A `<table>` with a caption, a header row and body rows (arrays of cells or strings). */
export function table({ caption, columns, rows, className = '', empty = 'Nothing to show.' }) {
  const head = h('tr', {}, columns.map((c) => h('th', {
    scope: 'col',
    className: c.numeric ? 'num' : '',
  }, c.label)));
  const body = rows.length
    ? rows.map((cells) => h('tr', {}, cells.map((cell, i) => {
      if (cell instanceof HTMLTableCellElement) return cell;
      return h('td', { className: columns[i]?.numeric ? 'num' : '' }, cell);
    })))
    : [h('tr', {}, h('td', { colSpan: columns.length, className: 'empty' }, empty))];
  return h('table', { className },
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, head),
    h('tbody', {}, body));
}
