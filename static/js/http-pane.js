// The HTTP pane: request/response. Nothing happens until someone asks. "Get price" sends one
// GET /price; the optional auto-poll repeats it on a timer, which is how people fake real
// time over plain HTTP, and the counters show what that costs: every request pays its
// headers again, most answers repeat the price already shown, and the changes in between
// are missed.

import * as fmt from './format.js';
import { PaneView } from './pane.js';
import { responseBytes, requestBytesEstimate } from './wire.js';

/** `shared.browserHeaders`: the request headers this browser sends, once the WebSocket pane learnt them. */
export function mountHttpPane(root, { symbols, scale, shared }) {
  const view = new PaneView(root, { symbols, scale, countLabel: 'requests' });
  const button = root.querySelector('.get-price');
  const autoPoll = root.querySelector('.auto-poll');
  const pollMs = root.querySelector('.poll-ms');
  let timer = null;
  let inFlight = false;

  async function getPrice() {
    if (inFlight) return; // one request at a time, as a simple poller would
    inFlight = true;
    const path = `/price?symbol=${encodeURIComponent(view.symbol)}`;
    const url = new URL(path, location.href).href;
    try {
      view.countOne();
      view.sent({ headers: requestBytesEstimate(path, shared.browserHeaders), payload: 0 }, `GET ${path} (headers ≈)`);
      const response = await fetch(url, { cache: 'no-store' });
      const text = await response.text();
      const bytes = responseBytes(url, response, text);
      const body = JSON.parse(text);
      if (!response.ok) {
        view.arrived(bytes, `${response.status} ${body.error}`, null, { answer: true });
        view.status(`HTTP ${response.status}: ${body.error}`);
        return;
      }
      const fresh = view.arrived(bytes, `200 seq ${body.seq} (${bytes.source})`, body);
      view.status(fresh ? '' : `seq ${body.seq} again: no new price since the last request`);
    } catch (error) {
      view.status(`request failed: ${error.message}`);
    } finally {
      inFlight = false;
    }
  }

  function pollInterval() {
    return Math.max(50, Number(pollMs.value) || 1000);
  }

  function schedule() {
    clearInterval(timer);
    timer = null;
    if (autoPoll.checked) {
      timer = setInterval(getPrice, pollInterval());
      getPrice();
    }
  }

  // The verdict names how this pane ran: polling every N ms, or prices fetched on click.
  view.describe = () => (autoPoll.checked
    ? `HTTP polling every ${fmt.ms(pollInterval())}`
    : 'HTTP, on click');

  button.addEventListener('click', getPrice);
  autoPoll.addEventListener('change', schedule);
  // Hidden by the pane chooser: stop auto-polling (a hidden pane makes no traffic).
  view.deactivate = () => {
    autoPoll.checked = false;
    schedule();
  };
  pollMs.addEventListener('change', schedule);
  return view;
}
