// A small canvas chart of the shown price over time, one per pane. Every chart draws against
// one shared scale (the same time window, the same price range), so a polling pane's steps
// and gaps line up next to the push pane's staircase of every tick.

/** How much history a chart shows. */
export const WINDOW_MS = 60_000;

/** The time window and price range every chart shares. */
export class SharedScale {
  constructor() {
    this.charts = [];
    this.now = 0;
    this.low = NaN;
    this.high = NaN;
  }

  /** Recomputes the shared range from what every chart currently holds. */
  update(now) {
    this.now = now;
    let low = Infinity;
    let high = -Infinity;
    for (const chart of this.charts) {
      for (const p of chart.visible(now)) {
        low = Math.min(low, p.price);
        high = Math.max(high, p.price);
      }
    }
    const pad = Math.max(0.05, (high - low) * 0.1);
    this.low = low - pad;
    this.high = high + pad;
  }

  x(t, width) {
    return width - ((this.now - t) / WINDOW_MS) * width;
  }

  y(price, height) {
    return height - ((price - this.low) / (this.high - this.low)) * height;
  }
}

/** One pane's chart: points (time shown, price) drawn as a step line with a dot per new price. */
export class PriceChart {
  constructor(canvas, scale) {
    this.canvas = canvas;
    this.scale = scale;
    this.points = [];
    scale.charts.push(this);
  }

  add(t, price) {
    this.points.push({ t, price });
    // Bounded: drop what has scrolled out of the window (keep one to start the line from).
    while (this.points.length > 2 && this.points[1].t < t - WINDOW_MS) this.points.shift();
  }

  clear() {
    this.points = [];
  }

  visible(now) {
    return this.points.filter((p, i) => p.t >= now - WINDOW_MS || i === this.points.length - 1);
  }

  draw() {
    const { canvas, scale } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(100, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(50, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const ctx = canvas.getContext('2d');
    ctx.clearRect(0, 0, width, height);
    this.drawGrid(ctx, width, height, ratio);
    if (this.points.length === 0 || !Number.isFinite(scale.low)) return;
    ctx.strokeStyle = '#1a56db';
    ctx.fillStyle = '#1a56db';
    ctx.lineWidth = 2 * ratio;
    ctx.beginPath();
    let previousY = null;
    for (const p of this.points) {
      const x = scale.x(p.t, width);
      const y = scale.y(p.price, height);
      if (previousY === null) ctx.moveTo(x, y);
      else {
        ctx.lineTo(x, previousY); // the old price stays on screen until the new one arrives
        ctx.lineTo(x, y);
      }
      previousY = y;
    }
    ctx.lineTo(width, previousY);
    ctx.stroke();
    for (const p of this.points) {
      ctx.beginPath();
      ctx.arc(scale.x(p.t, width), scale.y(p.price, height), 2.5 * ratio, 0, 2 * Math.PI);
      ctx.fill();
    }
    const last = this.points[this.points.length - 1];
    canvas.setAttribute('aria-label', `price chart, last ${WINDOW_MS / 1000} s: ${this.points.length} prices, latest ${last.price.toFixed(2)}`);
  }

  drawGrid(ctx, width, height, ratio) {
    const { scale } = this;
    ctx.strokeStyle = '#e3e3e0';
    ctx.fillStyle = '#5f6368';
    ctx.lineWidth = ratio;
    ctx.font = `${11 * ratio}px system-ui, sans-serif`;
    for (let s = 0; s <= WINDOW_MS / 1000; s += 10) {
      const x = width - (s * 1000 / WINDOW_MS) * width;
      ctx.beginPath();
      ctx.moveTo(x, 0);
      ctx.lineTo(x, height);
      ctx.stroke();
      if (s > 0 && s < WINDOW_MS / 1000) ctx.fillText(`-${s} s`, x + 3 * ratio, height - 4 * ratio);
    }
    if (Number.isFinite(scale.low)) {
      ctx.fillText(scale.high.toFixed(2), 3 * ratio, 12 * ratio);
      ctx.fillText(scale.low.toFixed(2), 3 * ratio, height - 16 * ratio);
    }
  }
}
