// The scoreboard: one row per pane, the same measurements side by side, the better value in
// each column marked with a star and the words "best", not by colour alone.

import * as fmt from './format.js';

/** The columns: what is shown, how, and which way is better (null: no "better"). */
const COLUMNS = [
  { label: 'requests or messages', value: (v) => v.stats.count, format: fmt.count, better: null },
  { label: 'bytes received', value: (v) => v.stats.down.total, format: fmt.bytes, better: 'low', detail: (v) => v.stats.down },
  { label: 'bytes sent', value: (v) => v.stats.up.total, format: fmt.bytes, better: 'low', detail: (v) => v.stats.up },
  { label: 'bytes per price shown', value: (v) => v.stats.bytesPerPrice, format: fmt.bytes, better: 'low' },
  { label: 'shown price age', value: (v, now) => v.age(now), format: fmt.ms, better: 'low' },
  { label: 'changes missed', value: (v) => v.stats.seq.missed, format: fmt.count, better: 'low' },
  { label: 'changes seen', value: (v) => v.stats.seq.seenShare, format: fmt.percent, better: 'high' },
  { label: 'delay p50', value: (v) => v.stats.delays.percentile(50), format: fmt.ms, better: 'low' },
  { label: 'delay p95', value: (v) => v.stats.delays.percentile(95), format: fmt.ms, better: 'low' },
  { label: 'delay max', value: (v) => v.stats.delays.max, format: fmt.ms, better: 'low' },
];

export class Scoreboard {
  constructor(root, views) {
    this.views = views;
    const head = root.querySelector('thead tr');
    head.append(cell('th', 'pane'));
    for (const column of COLUMNS) head.append(cell('th', column.label));
    const body = root.querySelector('tbody');
    this.rows = views.map((view) => {
      const row = document.createElement('tr');
      row.dataset.pane = view.kind;
      const name = cell('th', view.name);
      name.scope = 'row';
      row.append(name);
      const cells = COLUMNS.map((column) => {
        const td = cell('td', '–');
        td.dataset.label = column.label; // shown before the value when the table is stacked
        return td;
      });
      row.append(...cells);
      body.append(row);
      return cells;
    });
  }

  update(now) {
    // A hidden pane (see chooser.js) leaves the comparison.
    this.rows.forEach((cells, r) => { cells[0].parentElement.hidden = this.views[r].root.hidden; });
    COLUMNS.forEach((column, c) => {
      // A pane that has not sent or received anything yet has no figures to compare.
      const values = this.views.map((view) =>
        (view.root.hidden || (view.stats.count === 0 && column.better) ? NaN : column.value(view, now)));
      const best = bestIndex(values, column.better);
      this.rows.forEach((cells, r) => {
        const td = cells[c];
        td.textContent = column.format(values[r]);
        td.dataset.value = Number.isFinite(values[r]) ? String(values[r]) : '';
        if (r === best) {
          td.dataset.best = 'true';
          td.append(span('best', '★ best'));
        } else {
          delete td.dataset.best;
        }
        if (column.detail && Number.isFinite(values[r])) {
          const { headers, payload } = column.detail(this.views[r]);
          td.append(span('detail', `headers ${fmt.bytes(headers)} + payload ${fmt.bytes(payload)}`));
        }
      });
    });
  }
}

/** The index of the better value, or -1 when there is no better (a tie, or not comparable). */
function bestIndex(values, better) {
  if (!better) return -1;
  const finite = values.map((v, i) => [v, i]).filter(([v]) => Number.isFinite(v));
  if (finite.length < 2) return -1;
  finite.sort((a, b) => (better === 'low' ? a[0] - b[0] : b[0] - a[0]));
  return finite[0][0] === finite[1][0] ? -1 : finite[0][1];
}

function span(className, text) {
  const el = document.createElement('span');
  el.className = className;
  el.textContent = text;
  return el;
}

function cell(tag, text) {
  const el = document.createElement(tag);
  el.textContent = text;
  return el;
}
