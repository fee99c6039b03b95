// The WebSocket pane: server push. One handshake, then the server sends every new price by
// itself. The same socket carries messages the other way too: the symbol picker sends
// `unsubscribe`/`subscribe`, the ping button a `ping` whose `pong` gives the round-trip time,
// and "Drop connection" a `drop` that makes the server close the socket, so you can watch the
// pane back off, reconnect, and count the prices the outage cost.

import * as fmt from './format.js';
import { PaneView, nowMs } from './pane.js';
import { textFrame, handshakeBytes } from './wire.js';
import { backoffDelay } from './backoff.js';
import { ClockOffset } from './clock.js';
import { showHandshake } from './handshake.js';

/** ws: for a page loaded over http:, wss: for https: (a secure page may not open ws:). */
export function socketUrl(path) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${path}`;
}

/** What a socket URL's scheme means, in words, for the pane and the handshake panel. */
export function describeSocketUrl(url) {
  return url.startsWith('wss:')
    ? `${url} · wss: WebSocket inside TLS (like https:), encrypted and authenticated`
    : `${url} · ws: plain text, readable on the way (run with --tls-self-signed for wss:)`;
}

export function mountWsPane(root, { symbols, scale, shared }) {
  const view = new PaneView(root, { symbols, scale, countLabel: 'messages received' });
  const q = (cls) => root.querySelector(`.${cls}`);
  const buttons = { connect: q('connect'), disconnect: q('disconnect'), drop: q('drop'), ping: q('ping') };
  // Held from the start, not looked up when used: at /?blind these, and the page's one
  // handshake panel, are out of the document until Reveal (blind.js).
  const stateEl = q('ws-state');
  const urlEl = q('ws-url');
  const rttEl = q('rtt');
  const clockEl = q('clock');
  const heartbeatEl = q('heartbeat');
  const handshakePanel = document.getElementById('handshake');
  const select = q('symbol');
  const clock = new ClockOffset();
  let socket = null;
  let subscribed = select.value;
  let nextId = 1;
  let attempt = 0; // failed tries since the last good hello: drives the backoff
  let retryTimer = null;
  let retryAt = 0;
  let connections = 0; // sockets that said hello: 2 after one reconnect
  let lostAt = null; // when the current outage began
  let greeted = false; // the current socket said hello: the class may use it

  function setState(state) {
    stateEl.dataset.state = state;
    view.mark('state', state);
    if (state !== 'retrying') stateEl.textContent = state;
    buttons.connect.disabled = state === 'open' || state === 'connecting';
    buttons.disconnect.disabled = state === 'closed';
    buttons.drop.disabled = state !== 'open';
    buttons.ping.disabled = state !== 'open';
  }

  function send(message, label) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    const text = JSON.stringify(message);
    socket.send(text);
    view.sent(textFrame(text, { fromClient: true }), label);
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    subscribed = select.value;
    socket = new WebSocket(socketUrl(`/ws?symbols=${encodeURIComponent(subscribed)}`));
    urlEl.textContent = `socket: ${describeSocketUrl(socket.url)}`;
    view.mark('scheme', new URL(socket.url).protocol.replace(':', ''));
    setState('connecting');
    socket.addEventListener('open', () => setState('open'));
    socket.addEventListener('message', (event) => received(event.data));
    socket.addEventListener('close', (event) => closed(event));
  }

  function received(data) {
    if (typeof data !== 'string') return; // this protocol is JSON text; never sent by the server
    const message = JSON.parse(data);
    // The class's messages (class-link.js) are not the pane's: not counted, not logged.
    if (shared.classMessage && shared.classMessage(message)) return;
    view.countOne();
    const bytes = textFrame(data, { fromClient: false });
    switch (message.type) {
      case 'tick':
        view.arrived(bytes, `tick ${message.symbol} seq ${message.seq}`, message);
        break;
      case 'hello':
        hello(message, bytes);
        break;
      case 'pong': {
        const now = nowMs();
        view.arrived(bytes, `pong id ${message.id}`);
        clock.sample(message.t, message.server_ts, now);
        rttEl.textContent = `round trip: ${fmt.ms(now - message.t)} (ping → pong on the open socket)`;
        showClock();
        if (message.heartbeat) showHeartbeat(message.heartbeat);
        break;
      }
      case 'subscribed':
        view.arrived(bytes, `subscribed ${message.symbols.join(',')}`);
        view.status(`subscribed to ${message.symbols.join(', ')}`);
        break;
      case 'error':
        view.arrived(bytes, `error ${message.code}`);
        view.status(`server: ${message.message}`);
        break;
      default: // the protocol only grows: ignore what we do not know
        view.arrived(bytes, message.type);
    }
  }

  function hello(message, bytes) {
    attempt = 0;
    connections += 1;
    view.mark('connections', String(connections));
    // The opening handshake is ordinary HTTP, paid once per connection.
    const handshake = handshakeBytes(message.handshake);
    view.stats.up.add({ headers: handshake.up });
    view.stats.down.add({ headers: handshake.down });
    view.log.add('→', `GET ${message.handshake.request.path} (handshake)`, handshake.up);
    view.log.add('←', `${message.handshake.response.status} ${message.handshake.response.reason}`, handshake.down);
    view.arrived(bytes, 'hello');
    shared.browserHeaders = message.handshake.request.headers;
    // A front-end behind Redis says when its prices may be old (see README "Scaling WebSockets").
    if (message.feed && message.feed.stale) {
      view.status(`the server says its prices are stale (feed from ${message.feed.source}, Redis ${message.feed.redis || 'n/a'})`);
    }
    showHandshake(handshakePanel, message.handshake, describeSocketUrl(socket.url)).catch((error) => {
      view.status(`could not check the handshake: ${error.message}`);
    });
    if (lostAt !== null) {
      view.status(`reconnected ${fmt.ms(nowMs() - lostAt)} after the connection was lost; the prices made meanwhile count as missed`);
      lostAt = null;
    }
    // The server may have subscribed us to a symbol other than the one now selected.
    if (select.value !== subscribed) changeSymbol();
    greeted = true;
    if (shared.onControlReady) shared.onControlReady();
  }

  // Only pings estimate the clock. The hello once did too, but its "round trip" ran from
  // before the TCP connect to after the upgrade: an uncertainty of tens of ms that read like
  // a real offset ("≈ −37 ms ± 39 ms") on a single machine.
  function showClock() {
    const sign = clock.offset >= 0 ? '+' : '−';
    clockEl.textContent = `server clock ≈ ${sign}${fmt.ms(Math.abs(clock.offset))} ± ${fmt.ms(clock.uncertainty)} vs this browser (best of your pings); ages assume one clock`;
  }

  // The server's own pings are control frames the browser answers without telling the page;
  // only the server's count, in the pong, shows them.
  function showHeartbeat({ every_secs: every, pings_sent: sent, pongs_received: answered }) {
    heartbeatEl.textContent = `heartbeat: the server has pinged this socket ${sent} time${sent === 1 ? '' : 's'} (every ${every} s) and your browser answered ${answered}, all unseen by JavaScript`;
  }

  function closed(event) {
    socket = null;
    greeted = false;
    view.mark('lastClose', String(event.code));
    const by = event.wasClean ? `code ${event.code}${event.reason ? `: ${event.reason}` : ''}` : `code ${event.code}, no close frame`;
    view.log.add('←', `close (${by})`, 0);
    if (stateEl.dataset.state === 'closing-by-user') {
      lostAt = null;
      setState('closed');
      view.status(`closed by you (${by})`);
      return;
    }
    if (lostAt === null) lostAt = nowMs();
    const delay = backoffDelay(attempt);
    attempt += 1;
    retryAt = nowMs() + delay;
    retryTimer = setTimeout(connect, delay);
    setState('retrying');
    view.status(`connection lost (${by}); retry ${attempt} in ${fmt.ms(delay)} (exponential backoff with jitter)`);
  }

  function changeSymbol() {
    send({ type: 'unsubscribe', symbols: [subscribed], id: nextId++ }, `unsubscribe ${subscribed}`);
    subscribed = select.value;
    send({ type: 'subscribe', symbols: [subscribed], id: nextId++ }, `subscribe ${subscribed}`);
  }

  view.onFrame = (now) => {
    if (retryTimer !== null) stateEl.textContent = `retrying in ${fmt.ms(Math.max(0, retryAt - now))}`;
  };

  select.addEventListener('change', changeSymbol);
  buttons.connect.addEventListener('click', () => {
    attempt = 0;
    if (!socket) connect();
  });
  function disconnect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (socket) {
      setState('closing-by-user');
      stateEl.textContent = 'closing';
      socket.close(1000, 'bye');
    } else {
      setState('closed');
    }
  }
  buttons.disconnect.addEventListener('click', disconnect);
  // The pane chooser: a hidden pane closes its socket, a shown one reconnects.
  view.deactivate = disconnect;
  view.activate = () => {
    attempt = 0;
    if (!socket) connect();
  };
  buttons.drop.addEventListener('click', () => send({ type: 'drop', id: nextId++ }, 'drop (server, please close)'));
  buttons.ping.addEventListener('click', () => send({ type: 'ping', id: nextId++, t: nowMs() }, 'ping'));
  // The page's socket is also its link to the class view (class-link.js): what it sends there
  // goes out raw, kept out of this pane's log and counters.
  shared.control = {
    ready: () => greeted && socket !== null && socket.readyState === WebSocket.OPEN,
    off: () => ['closed', 'closing-by-user'].includes(stateEl.dataset.state),
    send: (message) => {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
    },
  };
  setState('closed');
  connect(); // push needs no button: the pane is live as soon as the page loads
  return view;
}
