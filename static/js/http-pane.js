// The HTTP pane: request/response. Nothing happens until someone asks. "Get price" sends one
// GET /price; the optional auto-poll repeats it on a timer, which is how people fake real
// time over plain HTTP, and the missed counter shows what that costs.

import { PaneView } from './pane.js';

export function mountHttpPane(root, { symbols }) {
  const view = new PaneView(root, symbols);
  const button = root.querySelector('.get-price');
  const autoPoll = root.querySelector('.auto-poll');
  const pollMs = root.querySelector('.poll-ms');
  let timer = null;
  let inFlight = false;

  async function getPrice() {
    if (inFlight) return; // one request at a time, as a simple poller would
    inFlight = true;
    try {
      view.countOne();
      const response = await fetch(`/price?symbol=${encodeURIComponent(view.symbol)}`, { cache: 'no-store' });
      const body = await response.json();
      if (!response.ok) {
        view.status(`HTTP ${response.status}: ${body.error}`);
        return;
      }
      view.status('');
      view.showTick(body);
    } catch (error) {
      view.status(`request failed: ${error.message}`);
    } finally {
      inFlight = false;
    }
  }

  function schedule() {
    clearInterval(timer);
    timer = null;
    if (autoPoll.checked) {
      const interval = Math.max(50, Number(pollMs.value) || 1000);
      timer = setInterval(getPrice, interval);
    }
  }

  button.addEventListener('click', getPrice);
  autoPoll.addEventListener('change', schedule);
  pollMs.addEventListener('change', schedule);
  root.querySelector('.symbol').addEventListener('change', () => view.symbolChanged());
  return view;
}
