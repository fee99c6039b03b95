// The arithmetic every pane does the same way, whatever its transport: counting requests or
// messages, bytes on the wire, price changes missed (seq gaps), and how long a price took from
// the server to the screen. Plain data, no DOM: pane.js shows it, scoreboard.js compares it.

/**
 * Counts price changes missed from `seq` gaps. The server numbers every new price of a
 * symbol 1, 2, 3, ...; a client that sees 7 after 4 missed 5 and 6.
 *
 * A seq counts within one *run* of the feed (`tick.run`): a restarted server starts a new
 * run and counts from 1 again. So a different run starts a new series, and a lower seq in
 * the *same* run is not a restart but an older price (from an instance that lags behind the
 * one that answered before): not shown.
 */
export class SeqTracker {
  constructor() {
    this.lastSeq = null;
    this.run = null;
    this.missed = 0;
    this.seen = 0;
    this.restarts = 0;
  }

  /** Records a tick's seq (and run); returns true when it is a price not shown before. */
  observe(seq, run) {
    if (run !== undefined && this.run !== null && run !== this.run) {
      this.restarts += 1; // a new run: the server restarted, its numbering starts afresh
      this.lastSeq = null;
    } else if (run === undefined && this.lastSeq !== null && seq < this.lastSeq) {
      // A server from before run ids: a lower seq is the best sign of a restart it gives.
      this.restarts += 1;
      this.lastSeq = null;
    }
    if (run !== undefined) this.run = run;
    if (this.lastSeq !== null && seq <= this.lastSeq) return false; // already shown, or older
    if (this.lastSeq !== null) this.missed += seq - this.lastSeq - 1;
    this.lastSeq = seq;
    this.seen += 1;
    return true;
  }

  /** The share of price changes this pane showed, of all it could have shown. */
  get seenShare() {
    const total = this.seen + this.missed;
    return total === 0 ? NaN : this.seen / total;
  }

  /**
   * Forgets the last seq when the pane switches symbol: a gap across two symbols means
   * nothing. (A reconnect does NOT restart: the gap it leaves is exactly what the outage cost.)
   */
  restart() {
    this.lastSeq = null;
  }
}

/** The last `size` samples, oldest dropped first: memory stays bounded however long the page runs. */
export class SlidingWindow {
  constructor(size) {
    this.size = size;
    this.samples = [];
  }

  add(value) {
    this.samples.push(value);
    if (this.samples.length > this.size) this.samples.shift();
  }

  /** The p-th percentile (0..100) by nearest rank; NaN when empty. */
  percentile(p) {
    if (this.samples.length === 0) return NaN;
    const sorted = [...this.samples].sort((a, b) => a - b);
    const rank = Math.ceil((p / 100) * sorted.length);
    return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
  }

  get max() {
    return this.samples.length === 0 ? NaN : Math.max(...this.samples);
  }
}

/** Bytes one way, headers and payload apart. */
export class ByteCount {
  constructor() {
    this.headers = 0;
    this.payload = 0;
  }

  add({ headers = 0, payload = 0 }) {
    this.headers += headers;
    this.payload += payload;
  }

  get total() {
    return this.headers + this.payload;
  }
}

/** How many tick-to-screen delays the percentiles are taken over. */
export const DELAY_WINDOW = 100;

/** Everything measured about one pane. */
export class PaneStats {
  constructor() {
    this.count = 0; // requests (HTTP) or messages received (WebSocket)
    this.repeats = 0; // of those, how many brought no new price
    this.down = new ByteCount(); // server -> browser
    this.up = new ByteCount(); // browser -> server
    this.seq = new SeqTracker();
    this.delays = new SlidingWindow(DELAY_WINDOW);
    // Every tick-to-screen delay since the pane started, for the mean.
    this.delayTotal = 0;
    this.delayCount = 0;
  }

  /** Bytes on the wire (both ways) per price shown: what one useful update costs. */
  get bytesPerPrice() {
    return this.seq.seen === 0 ? NaN : (this.down.total + this.up.total) / this.seq.seen;
  }
}
