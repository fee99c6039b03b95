// The WebSocket pane: server push. One handshake, then the server sends every new price by
// itself. Changing the symbol sends `unsubscribe` and `subscribe` over the same socket:
// the connection carries messages both ways.

import { PaneView } from './pane.js';

/** ws: for a page loaded over http:, wss: for https: (a secure page may not open ws:). */
export function socketUrl(path) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${path}`;
}

export function mountWsPane(root, { symbols }) {
  const view = new PaneView(root, symbols);
  const connectButton = root.querySelector('.connect');
  const disconnectButton = root.querySelector('.disconnect');
  const stateEl = root.querySelector('.ws-state');
  const select = root.querySelector('.symbol');
  let socket = null;
  let subscribed = select.value;
  let nextId = 1;

  function setState(state) {
    stateEl.textContent = state;
    stateEl.dataset.state = state;
    root.dataset.state = state;
    connectButton.disabled = state !== 'closed';
    disconnectButton.disabled = state === 'closed';
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  function connect() {
    subscribed = select.value;
    socket = new WebSocket(socketUrl(`/ws?symbols=${encodeURIComponent(subscribed)}`));
    setState('connecting');
    socket.addEventListener('open', () => setState('open'));
    socket.addEventListener('message', (event) => {
      view.countOne();
      const message = JSON.parse(event.data);
      if (message.type === 'tick') view.showTick(message);
      else if (message.type === 'error') view.status(`server: ${message.message}`);
    });
    socket.addEventListener('close', (event) => {
      setState('closed');
      view.status(`closed (code ${event.code}${event.reason ? `: ${event.reason}` : ''})`);
      socket = null;
    });
  }

  select.addEventListener('change', () => {
    view.symbolChanged();
    send({ type: 'unsubscribe', symbols: [subscribed], id: nextId++ });
    subscribed = select.value;
    send({ type: 'subscribe', symbols: [subscribed], id: nextId++ });
  });
  connectButton.addEventListener('click', connect);
  disconnectButton.addEventListener('click', () => socket && socket.close(1000, 'bye'));
  setState('closed');
  connect(); // push needs no button: the pane is live as soon as the page loads
  return view;
}
