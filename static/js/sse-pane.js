// The Server-Sent Events pane: push over one ordinary HTTP response that never ends
// (GET /events). The browser's EventSource parses the `text/event-stream` and reconnects by
// itself, sending the last event id. It is true push with tiny framing, but one-way: to
// change the symbol the page must close the stream and open a new one, because the client
// cannot send anything on it (compare the WebSocket pane's subscribe).

import { PaneView } from './pane.js';
import { utf8Length, httpHeadBytes, requestBytesEstimate } from './wire.js';

/**
 * What one event costs on the wire beyond its JSON: `id: ACME:42@RUN\n`, `data: `, the blank
 * line, and the HTTP/1.1 chunk it travels in (hex length + CRLF, then CRLF).
 */
export function eventOverhead(id, dataLength) {
  const framing = utf8Length(`id: ${id}\ndata: `) + 2;
  const chunkBody = framing + dataLength;
  return framing + chunkBody.toString(16).length + 4;
}

/** The stream's response head, as tickerlab sends it (EventSource does not expose headers). */
const RESPONSE_HEAD = httpHeadBytes('HTTP/1.1 200 OK', [
  ['transfer-encoding', 'chunked'],
  ['content-type', 'text/event-stream'],
  ['cache-control', 'no-store'],
  ['x-accel-buffering', 'no'],
  ['x-content-type-options', 'nosniff'],
  ['date', new Date().toUTCString()],
]);

export function mountSsePane(root, { symbols, scale, shared }) {
  const view = new PaneView(root, { symbols, scale, countLabel: 'events received' });
  const connectButton = root.querySelector('.connect');
  const disconnectButton = root.querySelector('.disconnect');
  const stateEl = root.querySelector('.sse-state');
  let source = null;

  function setState(state) {
    stateEl.textContent = state;
    stateEl.dataset.state = state;
    view.mark('state', state);
    connectButton.disabled = source !== null;
    disconnectButton.disabled = source === null;
  }

  function connect() {
    if (source) return;
    const path = `/events?symbols=${encodeURIComponent(view.symbol)}`;
    source = new EventSource(path);
    setState('connecting');
    view.sent({ headers: requestBytesEstimate(path, shared.browserHeaders), payload: 0 }, `GET ${path} (headers ≈)`);
    source.addEventListener('open', () => {
      setState('open');
      view.arrived({ headers: RESPONSE_HEAD, payload: 0 }, '200 text/event-stream (headers ≈)');
    });
    source.addEventListener('message', (event) => {
      view.countOne();
      const payload = utf8Length(event.data);
      const tick = JSON.parse(event.data);
      view.arrived({ headers: eventOverhead(event.lastEventId, payload), payload }, `event ${event.lastEventId}`, tick);
    });
    source.addEventListener('error', () => {
      // EventSource retries by itself (after the server's `retry: 1000`) unless it gave up.
      if (source && source.readyState === EventSource.CLOSED) disconnect();
      else setState('reconnecting');
    });
  }

  function disconnect() {
    if (source) source.close();
    source = null;
    setState('closed');
  }

  root.querySelector('.symbol').addEventListener('change', () => {
    if (!source) return;
    view.status('new symbol: SSE cannot send on its stream, so the page opens a new one');
    disconnect();
    connect();
  });
  connectButton.addEventListener('click', connect);
  disconnectButton.addEventListener('click', disconnect);
  view.deactivate = disconnect;
  setState('closed');
  return view;
}
