// The view every pane shares, whatever its transport: the shown quote, its age, the counters,
// the chart and the log. A transport module (http-pane.js, ws-pane.js, ...) decides *when*
// something is sent or arrives and reports it here:
//
//   view.countOne()                         one more request (HTTP) or message (WebSocket)
//   view.sent({headers, payload}, label)    bytes the browser sent
//   view.arrived({headers, payload}, label, tick?, {answer?})   bytes received, the tick they
//                                           carried, and whether they answered a request for a price
//
// Everything else (seq gaps, share seen, ages, tick-to-screen delay, chart, scoreboard) follows
// from those calls, computed the same way for every pane. A new transport is one small
// module that makes them.

import * as fmt from './format.js';
import { PaneStats, DELAY_WINDOW } from './stats.js';
import { AgeAverage, ChangeWait } from './freshness.js';
import { PriceChart } from './chart.js';
import { WireLog, LOG_MAX } from './log.js';
import { isBlind } from './blind.js';

/** Wall-clock now in epoch milliseconds with sub-millisecond precision, like the server's `ts`. */
export function nowMs() {
  return performance.timeOrigin + performance.now();
}

/** Binds one pane's DOM (templates/index.html) to its measurements. */
export class PaneView {
  /**
   * `countLabel`: what one count is ("requests", "messages received").
   * `scale`: the chart scale every pane shares.
   */
  constructor(root, { symbols, scale, countLabel }) {
    this.root = root;
    this.kind = root.dataset.kind;
    this.name = root.dataset.name;
    const body = root.querySelector('.pane-body');
    body.append(document.getElementById('pane-body-template').content.cloneNode(true));
    this.el = (cls) => root.querySelector(`.${cls}`);
    this.countLabel = countLabel;
    // One request, message or event: what the verdict counts per price ("1 message").
    this.unit = countLabel.split(' ')[0].replace(/s$/, '');
    // Blind mode (blind.js) names neither the transport nor what it counts until Reveal.
    this.el('s-count-label').textContent = isBlind() ? 'requests or messages' : countLabel;
    this.el('s-window').textContent = String(DELAY_WINDOW);
    this.el('log-max').textContent = String(LOG_MAX);
    this.stats = new PaneStats();
    this.ageAverage = new AgeAverage();
    this.changeWait = new ChangeWait();
    this.freshAtLastPaint = { ageAvg: NaN, changeWait: NaN, delayMean: NaN }; // as published in data-*
    this.shown = null; // the tick on screen
    this.onFrame = null; // a transport's own per-frame work (e.g. a retry countdown)
    this.pending = []; // ticks put on screen, waiting for the next frame to be painted
    this.marks = {}; // the transport's own facts, as published by mark()
    this.statusText = ''; // the status line, as last set by status()
    this.chart = new PriceChart(this.el('chart'), scale);
    this.log = new WireLog(this.el('log'));
    const select = this.el('symbol');
    for (const s of symbols) select.add(new Option(s, s));
    select.addEventListener('change', () => this.symbolChanged());
    this.publish();
  }

  /** The name on headings, scoreboard and strip: the transport's, or "A"/"B" while blind. */
  get displayName() {
    const letter = this.root.dataset.letter;
    if (!letter) return this.name;
    return isBlind() ? letter : `${letter}: ${this.name}`;
  }

  /**
   * What names this pane in the page's other parts (`data-pane` on its scoreboard row and
   * strip item): its kind, or in the blind test its letter, in lower case.
   */
  get key() {
    return this.root.dataset.letter?.toLowerCase() ?? this.kind;
  }

  /** The name in the verdict: a pane may say more about how it runs (e.g. the poll interval). */
  describe() {
    return this.name;
  }

  get symbol() {
    return this.el('symbol').value;
  }

  countOne() {
    this.stats.count += 1;
    this.publish();
  }

  sent(bytes, label) {
    this.stats.up.add(bytes);
    this.log.add('→', label, bytes.headers + bytes.payload);
  }

  /**
   * Bytes received; `tick` when they carried one. `answer`: they answered a request for a
   * price (every tick does; so does an HTTP answer without one, e.g. a 204 or a 404), so
   * bringing no new price counts as a repeat. A socket's hello, pong or subscribed does not.
   * Returns true when the tick was a new price.
   */
  arrived(bytes, label, tick = null, { answer = tick !== null } = {}) {
    this.stats.down.add(bytes);
    this.log.add('←', label, bytes.headers + bytes.payload);
    const fresh = tick !== null && this.showTick(tick);
    if (!fresh && answer) this.stats.repeats += 1;
    this.publish();
    return fresh;
  }

  /** Shows `tick` if it is the selected symbol and newer than what is on screen. */
  showTick(tick) {
    if (tick.symbol !== this.symbol) return false;
    if (!this.stats.seq.observe(tick.seq, tick.run)) return false;
    this.shown = tick;
    const change = fmt.change(tick.change);
    this.el('q-symbol').textContent = tick.symbol;
    this.el('q-price').textContent = fmt.price(tick.price);
    const changeEl = this.el('q-change');
    changeEl.textContent = change.text;
    changeEl.dataset.direction = change.direction;
    this.el('s-seq').textContent = String(tick.seq);
    this.pending.push(tick);
    return true;
  }

  /**
   * Called on every animation frame, i.e. right before the browser paints: the ticks put on
   * screen since the last frame are now visible, so their tick-to-screen delay is known.
   */
  frame(now) {
    // A hidden pane is out of the comparison: its shown price stops ageing on the record.
    if (this.root.hidden) this.ageAverage.stop(now);
    for (const tick of this.pending) {
      this.stats.delays.add(now - tick.ts);
      this.stats.delayTotal += now - tick.ts;
      this.stats.delayCount += 1;
      this.chart.add(now, tick.price);
      this.ageAverage.show(tick.ts, now);
      this.changeWait.show(tick, now);
    }
    if (this.pending.length > 0) {
      this.pending.length = 0;
      // Published as of a price reaching the screen: whole teeth of the age's saw.
      // The mean delay of every price shown is published with it: the time-averaged age is
      // τ/2 (or T/2) plus exactly that mean, whatever the shape of the delays.
      this.freshAtLastPaint = {
        ageAvg: this.ageAverage.mean(now),
        changeWait: this.changeWait.mean,
        delayMean: this.stats.delayTotal / this.stats.delayCount,
      };
      this.publish();
    }
    if (this.shown) this.el('s-age').textContent = `${fmt.ms(this.age(now))} old`;
    if (this.onFrame) this.onFrame(now);
  }

  /** How old the shown price is: `now - ts` (same clock assumed: see clock.js). */
  age(now) {
    return this.shown ? now - this.shown.ts : NaN;
  }

  /** Writes the counters (a few times a second is enough for people to read). */
  render() {
    const s = this.stats;
    const text = {
      's-count': fmt.count(s.count),
      's-repeats': fmt.count(s.repeats),
      's-missed': fmt.count(s.seq.missed),
      's-seen': fmt.percent(s.seq.seenShare),
      's-age-avg': fmt.ms(this.ageAverage.mean(nowMs())),
      's-change-wait': fmt.ms(this.changeWait.mean),
      's-down-headers': fmt.bytes(s.down.headers),
      's-down-payload': fmt.bytes(s.down.payload),
      's-up-headers': fmt.bytes(s.up.headers),
      's-up-payload': fmt.bytes(s.up.payload),
      's-delay': s.delays.samples.length === 0 ? '–'
        : [50, 95].map((p) => fmt.ms(s.delays.percentile(p))).concat(fmt.ms(s.delays.max)).join(' / '),
    };
    for (const [cls, value] of Object.entries(text)) this.el(cls).textContent = value;
  }

  /**
   * Publishes the pane's state as `data-*` attributes on its root, all in one step, right when
   * it changes: a reader (a test, or a learner in DevTools) never sees a new `seq` beside an
   * old `missed`. The text on screen is redrawn by `render()`, a few times a second; these
   * attributes are the exact figures, current after every request, message and answer.
   */
  publish() {
    const s = this.stats;
    const data = this.root.dataset;
    if (this.shown) {
      data.seq = String(this.shown.seq);
      data.symbol = this.shown.symbol;
    } else {
      delete data.seq;
    }
    data.count = String(s.count);
    data.repeats = String(s.repeats);
    data.missed = String(s.seq.missed);
    data.seen = String(s.seq.seen);
    const fresh = this.freshAtLastPaint;
    data.ageAvg = Number.isFinite(fresh.ageAvg) ? String(fresh.ageAvg) : '';
    data.changeWait = Number.isFinite(fresh.changeWait) ? String(fresh.changeWait) : '';
    data.delayMean = Number.isFinite(fresh.delayMean) ? String(fresh.delayMean) : '';
  }

  /** Switching symbol: the next tick is the first of a new series. */
  symbolChanged() {
    this.stats.seq.restart();
    this.changeWait.restart();
    this.ageAverage.stop(nowMs());
    this.shown = null;
    this.chart.clear();
    for (const cls of ['q-symbol', 'q-price', 'q-change', 's-seq', 's-age']) this.el(cls).textContent = '–';
    this.publish();
  }

  /**
   * Publishes a fact only this pane's transport has (a socket's state, its scheme, its
   * number of connections) as `data-<key>` on its root, like `publish()` does the figures.
   * While blind it would name the transport, so it waits for `reveal()`.
   */
  mark(key, value) {
    this.marks[key] = value;
    if (!isBlind()) this.root.dataset[key] = value;
  }

  /**
   * The pane's status line. While blind it stays empty: most lines belong to one transport
   * ("subscribed to GLOBX", "no new price since the last request"); `reveal()` shows the last.
   */
  status(text) {
    this.statusText = text;
    if (!isBlind()) this.el('status').textContent = text;
  }

  /** The blind test is over: what this pane held back while blind is shown. */
  reveal() {
    this.el('s-count-label').textContent = this.countLabel;
    this.log.reveal();
    Object.assign(this.root.dataset, this.marks);
    this.el('status').textContent = this.statusText;
  }
}
