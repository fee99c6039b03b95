// The long-polling pane: an earlier attempt at push over plain HTTP. The browser asks
// GET /price/next?after=SEQ&run=RUN (the seq and run of the last price it got); the server holds the request until a newer price exists (or
// answers 204 after a timeout), and the browser asks again at once. It sees nearly every
// change, but every update still costs a whole HTTP request and response, headers included,
// and there is a blind moment between one answer and the next request.

import { PaneView } from './pane.js';
import { responseBytes, requestBytesEstimate } from './wire.js';
import { backoffDelay } from './backoff.js';

export function mountLongPollPane(root, { symbols, scale, shared }) {
  const view = new PaneView(root, { symbols, scale, countLabel: 'requests' });
  const startButton = root.querySelector('.start');
  const stopButton = root.querySelector('.stop');
  const stateEl = root.querySelector('.lp-state');
  let running = false;
  let generation = 0; // bumps on stop or symbol change, so an old loop ends by itself
  let controller = null;

  function setState(state) {
    stateEl.textContent = state;
    stateEl.dataset.state = state;
    view.mark('state', state);
    startButton.disabled = running;
    stopButton.disabled = !running;
  }

  async function loop(mine) {
    let after = 0;
    let run = null; // the run `after` counts in: a different one is a server restart
    let failures = 0;
    while (running && mine === generation) {
      const since = (after === 0 ? '' : `&after=${after}`) + (run === null ? '' : `&run=${run}`);
      const path = `/price/next?symbol=${encodeURIComponent(view.symbol)}${since}`;
      const url = new URL(path, location.href).href;
      controller = new AbortController();
      try {
        view.countOne();
        view.sent({ headers: requestBytesEstimate(path, shared.browserHeaders), payload: 0 }, `GET ${path} (headers ≈)`);
        setState('waiting for the next price');
        const response = await fetch(url, { cache: 'no-store', signal: controller.signal });
        const text = await response.text();
        if (mine !== generation) return;
        const bytes = responseBytes(url, response, text);
        if (response.status === 204) {
          view.arrived(bytes, '204 no new price before the timeout: ask again', null, { answer: true });
        } else if (response.ok) {
          const tick = JSON.parse(text);
          view.arrived(bytes, `200 seq ${tick.seq}`, tick);
          // The server decides "restarted" by the run we send, never by a lower seq: a new
          // run's seq 1 replaces our `after`, and within a run seq never goes down.
          after = tick.seq;
          run = tick.run ?? null;
        } else {
          view.arrived(bytes, `${response.status}`);
          throw new Error(`HTTP ${response.status}`);
        }
        failures = 0;
        view.status('');
      } catch (error) {
        if (mine !== generation) return;
        const wait = backoffDelay(failures++);
        view.status(`request failed (${error.message}): retrying in ${Math.round(wait)} ms`);
        setState('retrying');
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  function start() {
    if (running) return;
    running = true;
    generation += 1;
    setState('starting');
    loop(generation);
  }

  function stop() {
    running = false;
    generation += 1;
    if (controller) controller.abort();
    setState('stopped');
  }

  root.querySelector('.symbol').addEventListener('change', () => {
    if (!running) return;
    stop();
    start();
  });
  startButton.addEventListener('click', start);
  stopButton.addEventListener('click', stop);
  view.deactivate = stop;
  setState('stopped');
  return view;
}
