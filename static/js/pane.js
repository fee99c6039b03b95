// The view every pane shares: the shown quote, its age, and the counters. A pane module
// (http-pane.js, ws-pane.js, ...) decides *when* a tick arrives; this module shows it and
// keeps the arithmetic every pane must do the same way (seq gaps, age).

import * as fmt from './format.js';

/** Wall-clock now in epoch milliseconds with sub-millisecond precision, like the server's `ts`. */
export function nowMs() {
  return performance.timeOrigin + performance.now();
}

/**
 * Counts price changes missed from `seq` gaps. The server numbers every new price of a
 * symbol 1, 2, 3, ...; a client that sees 7 after 4 missed 5 and 6.
 */
export class SeqTracker {
  constructor() {
    this.lastSeq = null;
    this.missed = 0;
    this.seen = 0;
    this.repeats = 0;
  }

  /** Records a tick's seq; returns true when it is a price not shown before. */
  observe(seq) {
    if (this.lastSeq !== null && seq <= this.lastSeq) {
      this.repeats += 1; // e.g. a poll that came back with the price already shown
      return false;
    }
    if (this.lastSeq !== null) this.missed += seq - this.lastSeq - 1;
    this.lastSeq = seq;
    this.seen += 1;
    return true;
  }

  /** Forgets the last seq, e.g. when the pane switches symbol (a gap across symbols means nothing). */
  restart() {
    this.lastSeq = null;
  }
}

/** Binds a pane's DOM (see templates/index.html) to the numbers it shows. */
export class PaneView {
  constructor(root, symbols) {
    this.root = root;
    this.el = (cls) => root.querySelector(`.${cls}`);
    this.shown = null; // the tick on screen
    this.count = 0;
    this.tracker = new SeqTracker();
    const select = this.el('symbol');
    for (const s of symbols) select.add(new Option(s, s));
  }

  get symbol() {
    return this.el('symbol').value;
  }

  /** One more request (HTTP) or message (WebSocket). */
  countOne() {
    this.count += 1;
    this.el('s-count').textContent = fmt.count(this.count);
  }

  /** Shows `tick` if it is newer than what is on screen; updates seq, missed and the quote. */
  showTick(tick) {
    if (tick.symbol !== this.symbol) return;
    if (!this.tracker.observe(tick.seq)) return;
    this.shown = tick;
    const change = fmt.change(tick.change);
    this.el('q-symbol').textContent = tick.symbol;
    this.el('q-price').textContent = fmt.price(tick.price);
    const changeEl = this.el('q-change');
    changeEl.textContent = change.text;
    changeEl.dataset.direction = change.direction;
    changeEl.setAttribute('aria-label', `${change.word} ${Math.abs(tick.change).toFixed(2)}`);
    this.el('s-seq').textContent = String(tick.seq);
    this.el('s-missed').textContent = fmt.count(this.tracker.missed);
    this.root.dataset.seq = String(tick.seq);
  }

  /** Called every animation frame: how old the shown price is now. */
  refreshAge(now) {
    if (this.shown) this.el('s-age').textContent = `${fmt.ms(now - this.shown.ts)} old`;
  }

  /** Switching symbol: the next tick is the first of a new series. */
  symbolChanged() {
    this.tracker.restart();
    this.shown = null;
    for (const cls of ['q-symbol', 'q-price', 'q-change', 's-seq', 's-age']) this.el(cls).textContent = '–';
  }

  status(text) {
    this.el('status').textContent = text;
  }
}
