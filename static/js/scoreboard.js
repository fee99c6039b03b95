// The scoreboard: one row per pane, the same measurements side by side, and under it a
// one-line verdict computed from them.
//
// It judges per price delivered, because that is the learner's question ("what does each
// way cost for what it shows?"). A pane that shows one price in five receives fewer bytes in
// total, and that is not a win: totals are context and never starred. Only columns where
// lower (or higher) is truly better are ranked, and a difference inside measurement noise is
// a tie: every pane within the tie rule of the best value gets the star, marked in words
// ("★ best") as well as in bold, never by colour alone. In the blind test (blind.js) it only
// measures: stars and verdict would answer the question, so they come at Reveal.

import * as fmt from './format.js';
import { isBlind } from './blind.js';

/**
 * How close to the best value still counts as a tie: `relative` of the best, or `absolute`
 * in the column's unit, whichever is larger. Smaller gaps than these come and go between
 * two runs of the same page, so they say nothing about the transports.
 */
export const TIES = {
  perPrice: { relative: 0.10, absolute: 0 },
  time: { relative: 0.10, absolute: 1 }, // 10 % or 1 ms
  count: { relative: 0.10, absolute: 0 }, // so 0 missed ties only 0
  share: { relative: 0, absolute: 0.01 }, // 1 percentage point
};

/** Requests (or messages, or events) per price shown. */
function requestsPerPrice(view) {
  const { count, seq } = view.stats;
  return seq.seen === 0 ? NaN : count / seq.seen;
}

/**
 * The columns: a key (the cell's `data-column`), what is shown and how, and which way is
 * better (`null`: context, never starred) with its tie rule.
 */
export const COLUMNS = [
  { key: 'count', label: 'requests or messages', value: (v) => v.stats.count, format: fmt.count, better: null },
  { key: 'bytes-received', label: 'bytes received', value: (v) => v.stats.down.total, format: fmt.bytes, better: null, detail: (v) => v.stats.down },
  { key: 'bytes-sent', label: 'bytes sent', value: (v) => v.stats.up.total, format: fmt.bytes, better: null, detail: (v) => v.stats.up },
  { key: 'requests-per-price', label: 'requests or messages per price shown', value: requestsPerPrice, format: perPrice, better: 'low', tie: TIES.perPrice },
  { key: 'bytes-per-price', label: 'bytes per price shown (both ways)', value: (v) => v.stats.bytesPerPrice, format: fmt.bytes, better: 'low', tie: TIES.perPrice },
  { key: 'age-avg', label: 'shown price age, time-averaged', value: (v, now) => v.ageAverage.mean(now), format: fmt.ms, better: 'low', tie: TIES.time },
  { key: 'change-wait', label: 'time to see a change, mean over every price made', value: (v) => v.changeWait.mean, format: fmt.ms, better: 'low', tie: TIES.time },
  { key: 'missed', label: 'changes missed', value: (v) => v.stats.seq.missed, format: fmt.count, better: 'low', tie: TIES.count },
  { key: 'seen', label: 'changes seen', value: (v) => v.stats.seq.seenShare, format: fmt.percent, better: 'high', tie: TIES.share },
  { key: 'delay', label: 'tick → screen of the prices it showed, p50 / p95', value: (v) => v.stats.delays.percentile(50), format: fmt.ms, better: null, text: delayText },
];

/** The rule the stars follow, in words, shown above the table. */
export const RULES = '★ marks the best value in a ranked column, and every value that ties with it: '
  + 'within 10 % of the best (for times, 10 % or 1 ms; for the share seen, 1 percentage point), '
  + 'since smaller gaps are measurement noise. Lower is better, except "changes seen". '
  + 'Totals and the delay of the prices a pane showed are context, never starred: a pane that '
  + 'shows fewer prices receives fewer bytes, and its delay leaves out every price it missed.';

export class Scoreboard {
  constructor(root, views) {
    this.views = views;
    root.querySelector('.rules').textContent = RULES;
    this.lead = root.querySelector('.verdict-lead');
    const lines = root.querySelector('.verdict-panes');
    const head = root.querySelector('thead tr');
    head.append(cell('th', 'pane'));
    for (const column of COLUMNS) {
      const th = cell('th', column.label);
      if (column.better) th.append(span('ranked', column.better === 'low' ? '(lower is better)' : '(higher is better)'));
      head.append(th);
    }
    const body = root.querySelector('tbody');
    this.rows = views.map((view) => {
      const row = document.createElement('tr');
      row.dataset.pane = view.key;
      const name = cell('th', view.displayName);
      name.scope = 'row';
      row.append(name);
      const cells = COLUMNS.map((column) => {
        const td = cell('td', '–');
        td.dataset.column = column.key;
        td.dataset.label = column.label; // shown before the value when the table is stacked
        return td;
      });
      row.append(...cells);
      body.append(row);
      // One verdict line per shown pane, there from the start ("not started yet"): the
      // verdict changes its words, not its height, when a pane starts.
      const line = document.createElement('li');
      line.dataset.pane = view.key;
      lines.append(line);
      return { row, name, cells, line };
    });
  }

  /** The panes in the comparison: shown, and having sent or received something. */
  compared() {
    return this.views.map((view) => !view.root.hidden && view.stats.count > 0);
  }

  update(now) {
    const compared = this.compared();
    const judging = !isBlind();
    const starred = {};
    this.rows.forEach(({ row, name }, r) => {
      row.hidden = this.views[r].root.hidden; // a hidden pane (chooser.js) leaves the table
      name.textContent = this.views[r].displayName;
    });
    COLUMNS.forEach((column, c) => {
      const values = this.views.map((view, r) => (compared[r] ? column.value(view, now) : NaN));
      const stars = judging ? starsFor(values, column) : values.map(() => false);
      starred[column.key] = stars;
      this.rows.forEach(({ cells }, r) => {
        const td = cells[c];
        td.textContent = column.text && compared[r] ? column.text(this.views[r]) : column.format(values[r]);
        td.dataset.value = Number.isFinite(values[r]) ? String(values[r]) : '';
        if (stars[r]) td.dataset.best = 'true';
        else delete td.dataset.best;
        // The star's and the detail's lines are there, empty, even when they say nothing
        // (style.css keeps their height): a row that grew when a figure arrived would move
        // every button below it under a visitor's pointer.
        if (column.better) td.append(span('best', stars[r] ? '★ best' : ''));
        if (column.detail) {
          const { headers, payload } = column.detail(this.views[r]);
          td.append(span('detail', Number.isFinite(values[r]) ? `headers ${fmt.bytes(headers)} + payload ${fmt.bytes(payload)}` : ''));
        }
      });
    });
    if (!judging) return;
    const winners = this.views.filter((_, r) => compared[r] && starred['age-avg'][r] && starred['bytes-per-price'][r]);
    this.lead.textContent = verdictLead(this.views.filter((_, r) => compared[r]), winners);
    this.rows.forEach(({ line }, r) => {
      line.hidden = this.views[r].root.hidden;
      line.textContent = verdictLine(this.views[r], compared[r], now);
    });
  }
}

/**
 * For each value, whether it earns a star: it is (or ties with) the best. No stars when the
 * column ranks nothing, or fewer than two panes have a value to compare.
 */
export function starsFor(values, { better, tie }) {
  const none = values.map(() => false);
  if (!better) return none;
  const finite = values.filter(Number.isFinite);
  if (finite.length < 2) return none;
  const best = better === 'low' ? Math.min(...finite) : Math.max(...finite);
  const slack = Math.max(tie.relative * Math.abs(best), tie.absolute);
  return values.map((v) => Number.isFinite(v) && Math.abs(v - best) <= slack);
}

/**
 * The verdict's first line, what a learner who only glances reads: which pane did best on
 * both freshness and cost per price (the panes starred in both columns), if any did.
 */
export function verdictLead(compared, winners) {
  if (compared.length === 0) return 'Verdict: nothing measured yet.';
  if (compared.length === 1) return 'Verdict: one pane measured so far; start another to compare.';
  const names = winners.map(verdictName).join(' and ');
  if (winners.length === 0) return 'Verdict: no pane was both the freshest and the cheapest per price.';
  if (winners.length === compared.length) return `Verdict: a tie: ${names} were as fresh and as cheap per price.`;
  return `Verdict: ${names} showed fresher prices for fewer bytes each.`;
}

/**
 * One pane's line: what share of the prices it showed, what each cost, how old its price
 * was on average. E.g. "WebSocket: every price, 1 message and 95 B each, shown price
 * 105 ms old on average."
 */
export function verdictLine(view, compared, now) {
  if (!compared) return `${verdictName(view)}: not started yet.`;
  const s = view.stats;
  const perPrice = requestsPerPrice(view);
  const each = Number.isFinite(perPrice)
    ? `${perPriceWords(perPrice, view.unit)} and ${fmt.bytes(s.bytesPerPrice)} each`
    : 'no price yet';
  return `${verdictName(view)}: ${seenWords(s.seq.seenShare)}, ${each}, shown price ${fmt.ms(view.ageAverage.mean(now))} old on average.`;
}

/** How the verdict names a pane: how it ran, after its blind-mode letter if it had one. */
function verdictName(view) {
  const letter = view.root.dataset.letter;
  return letter ? `${letter} (${view.describe()})` : view.describe();
}

/** "every price", "80 % of the prices", "1 price in 5". */
function seenWords(share) {
  if (!Number.isFinite(share)) return 'no price yet';
  if (share >= 0.995) return 'every price';
  if (share >= 0.5) return `${Math.round(share * 100)} % of the prices`;
  return `1 price in ${Math.round(1 / share)}`;
}

/** "1 message", "1.3 requests". */
function perPriceWords(value, unit) {
  const rounded = Math.round(value * 10) / 10;
  return rounded === 1 ? `1 ${unit}` : `${rounded.toFixed(1)} ${unit}s`;
}

function perPrice(value) {
  return Number.isFinite(value) ? value.toFixed(2) : '–';
}

function delayText(view) {
  const { delays } = view.stats;
  if (delays.samples.length === 0) return '–';
  return `${fmt.ms(delays.percentile(50))} / ${fmt.ms(delays.percentile(95))}`;
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
