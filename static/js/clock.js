// How far the server's clock is from this browser's. "The shown price is N ms old" is
// `now - ts`: exact on one machine, off by the clock difference across machines. A ping
// gives one estimate (Cristian's algorithm): the server stamped `server_ts` somewhere between
// our send and our receipt, so offset ≈ server_ts - (sent + received) / 2, give or take half
// the round trip. The sample with the shortest round trip is the most precise one we keep.

export class ClockOffset {
  constructor() {
    this.offset = NaN;
    this.uncertainty = Infinity;
  }

  sample(sentMs, serverTs, receivedMs) {
    const half = (receivedMs - sentMs) / 2;
    if (half < this.uncertainty) {
      this.uncertainty = half;
      this.offset = serverTs - (sentMs + half);
    }
  }
}
