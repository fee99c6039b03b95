// How fresh a pane kept what it showed, measured over time rather than per price caught.
//
// The tick → screen delay (stats.js) is taken only over the prices a pane happened to show,
// which flatters polling: a poll that lands just after a tick shows a price a few ms old,
// and the four prices it never showed are not in the figure at all. Two figures here count
// everything:
//
// - the *time-averaged age* of the shown price: the age `now - ts` integrated over the time
//   the pane has shown prices, divided by that time. For polling every T against a tick τ the
//   theory is about τ/2 + T/2 (plus the request's own delay); for push, τ/2 plus the delay.
// - the *time to see a change*: for every price the feed made since the pane's first, how long
//   after it was made the pane showed it or a newer one. A price a poll skipped counts too: it
//   was "seen" when the next newer price reached the screen.
//
// Plain data, no DOM: pane.js feeds them at each painted frame, scoreboard.js compares them.

/** The age of the shown price, averaged over time (the area under the age curve / time). */
export class AgeAverage {
  constructor() {
    this.area = 0; // ms × ms: the integral of the age over the time counted
    this.time = 0; // ms counted
    this.shownTs = null; // `ts` of the price on screen, null while nothing is counted
    this.since = 0; // when the counting of the current price began
  }

  /** A price made at `ts` reached the screen at `now`. */
  show(ts, now) {
    this.stop(now);
    this.shownTs = ts;
    this.since = now;
  }

  /**
   * Stops counting at `now` (nothing shown, or the pane hidden); the next `show` resumes.
   * The age grows linearly while one price is shown, so its integral over [a, b] is the
   * mean of the two ends times the length.
   */
  stop(now) {
    if (this.shownTs === null) return;
    this.addSpan(this.since, now);
    this.shownTs = null;
  }

  addSpan(from, to) {
    if (to <= from) return;
    this.area += ((from - this.shownTs) + (to - this.shownTs)) / 2 * (to - from);
    this.time += to - from;
  }

  /** The average age up to `now` (NaN before any time was counted). */
  mean(now) {
    let { area, time } = this;
    if (this.shownTs !== null && now > this.since) {
      area += ((this.since - this.shownTs) + (now - this.shownTs)) / 2 * (now - this.since);
      time += now - this.since;
    }
    return time > 0 ? area / time : NaN;
  }
}

/**
 * The mean time from a price being made to the pane showing it or a newer one, over every
 * price the feed made. A skipped price's `ts` is not known to the page: it is placed between
 * the `ts` of the two shown prices around it, in proportion to its `seq` (the feed ticks at a
 * steady interval, so this is close to exact).
 */
export class ChangeWait {
  constructor() {
    this.total = 0; // ms, summed over the changes counted
    this.changes = 0;
    this.last = null; // { seq, ts } of the last price shown in this series
  }

  /** The price `tick` reached the screen at `now`. */
  show(tick, now) {
    const { last } = this;
    if (last === null || tick.seq <= last.seq) {
      // The first price of a series (page start, new symbol, restarted server): it alone.
      this.total += now - tick.ts;
      this.changes += 1;
    } else {
      // Changes last.seq+1 .. tick.seq, the k-th made at last.ts + k·step:
      // sum of (now - last.ts - k·step) for k = 1..n.
      const n = tick.seq - last.seq;
      const step = (tick.ts - last.ts) / n;
      this.total += n * (now - last.ts) - step * n * (n + 1) / 2;
      this.changes += n;
    }
    this.last = { seq: tick.seq, ts: tick.ts };
  }

  /** A new series begins (another symbol): a gap across two series means nothing. */
  restart() {
    this.last = null;
  }

  get mean() {
    return this.changes === 0 ? NaN : this.total / this.changes;
  }
}
