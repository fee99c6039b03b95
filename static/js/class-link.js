// The page's part in the class (the instructor's view at /class): it reports which panes are
// switched on and, on the blind test, sends the student's answer, and it reveals the blind
// test when the instructor does (pushed by the server).
//
// It talks over the socket the page already holds: the WebSocket pane's. A page with that
// pane off (hidden by the chooser, or disconnected by hand) would not be counted, so it then
// opens a socket of its own subscribed to no symbol, `/ws?symbols=`: a control socket that
// carries no prices, closed again once the pane's socket is back. Either way a page holds one
// socket for the class, never two.
//
// What it sends is counts and a letter: `{"type":"report","panes":{...},"ws_letter":"B"}` and
// `{"type":"vote","answer":"A"}`. Its messages stay out of the pane's log and counters: on
// the blind test, a `voted` line in one pane's log would say which pane the socket is.

import { socketUrl } from './ws-pane.js';

/** How often the page looks whether a pane was switched on or off. */
const LOOK_EVERY_MS = 1000;

/** The server's answers that belong to the class, not to the WebSocket pane. */
const CLASS_ERRORS = new Set(['bad_report', 'not_blind', 'revealed', 'not_allowed']);

/**
 * Mounts the class link for the mounted `views` (call it before the blind test takes the
 * named elements out: it keeps its own references). `shared.control` is the WebSocket pane's
 * side of it (see ws-pane.js).
 */
export function mountClassLink(views, shared, { blind }) {
  const probes = views.map(probeFor).filter(Boolean);
  const wsView = views.find((view) => view.kind === 'ws');
  const answerBox = document.querySelector('.answer-box');
  let own = null; // the control socket, while the pane's socket is off
  let lastReport = '';
  let answer = null;
  let revealed = false;

  function report() {
    const panes = { poll_ms: null, longpoll: false, sse: false, ws: false };
    for (const probe of probes) probe(panes);
    const message = { type: 'report', panes };
    if (blind && wsView) message.ws_letter = wsView.root.dataset.letter;
    return message;
  }

  function channel() {
    if (shared.control && shared.control.ready()) return shared.control.send;
    if (own && own.readyState === WebSocket.OPEN && own.greeted) return (message) => own.send(JSON.stringify(message));
    return null;
  }

  /** Sends the report if it changed (or `force`), and the answer after a new socket. */
  function sync(force) {
    const send = channel();
    if (!send) return;
    const message = report();
    const text = JSON.stringify(message);
    if (!force && text === lastReport) return;
    lastReport = text;
    send(message);
    if (force && answer && !revealed) send({ type: 'vote', answer });
  }

  /** The pane's socket is off (not merely retrying): hold a control socket of our own. */
  function ownSocketIfNeeded() {
    const paneOff = !wsView || wsView.root.hidden || (shared.control && shared.control.off());
    if (paneOff && !own) {
      own = new WebSocket(socketUrl('/ws?symbols='));
      own.addEventListener('message', (event) => {
        const message = JSON.parse(event.data);
        if (message.type === 'hello') {
          own.greeted = true;
          sync(true);
        } else {
          received(message);
        }
      });
      own.addEventListener('close', () => {
        own = null;
      });
    } else if (!paneOff && own && shared.control && shared.control.ready()) {
      own.close(1000, 'the pane socket is back');
      own = null;
      sync(true);
    }
  }

  /** A class message from the server; true when it was one (then the pane ignores it). */
  function received(message) {
    switch (message.type) {
      case 'voted':
        if (answerBox) answerBox.querySelector('.answer-state').textContent = `The server has your answer: ${message.answer}. You may change it until the instructor reveals.`;
        return true;
      case 'reveal':
        revealFromClass(message.at);
        return true;
      case 'error':
        return CLASS_ERRORS.has(message.code);
      default:
        return false;
    }
  }

  function revealFromClass(at) {
    if (!blind || revealed) return;
    // How long the push took, on this page's clock against the server's (one machine in a
    // test; across a classroom, the clocks' offset is in it too).
    document.body.dataset.revealDelayMs = String(Math.max(0, Date.now() - at));
    document.body.dataset.revealedBy = 'class';
    const button = document.querySelector('.reveal');
    if (button && !button.disabled) button.click();
  }

  function choose(letter) {
    if (revealed) return;
    answer = letter;
    for (const b of answerBox.querySelectorAll('.answer')) b.setAttribute('aria-pressed', String(b.dataset.answer === letter));
    answerBox.querySelector('.answer-state').textContent = `You said ${letter}; sending…`;
    const send = channel();
    if (send) send({ type: 'vote', answer: letter });
  }

  if (answerBox) {
    for (const b of answerBox.querySelectorAll('.answer')) b.addEventListener('click', () => choose(b.dataset.answer));
  }
  // Revealed on this page (its own button, or the class's): the vote is over here.
  document.querySelector('.reveal')?.addEventListener('click', () => {
    revealed = true;
    for (const b of answerBox?.querySelectorAll('.answer') ?? []) b.disabled = true;
  });

  shared.classMessage = received;
  shared.onControlReady = () => sync(true);
  setInterval(() => {
    ownSocketIfNeeded();
    sync(false);
  }, LOOK_EVERY_MS);
  ownSocketIfNeeded();
}

/** What one pane contributes to the report, read from the elements its module keeps. */
function probeFor(view) {
  const q = (cls) => view.root.querySelector(`.${cls}`);
  const shown = () => !view.root.hidden;
  switch (view.kind) {
    case 'http': {
      const auto = q('auto-poll');
      const ms = q('poll-ms');
      return (panes) => {
        if (shown() && auto.checked) panes.poll_ms = Math.min(60000, Math.max(50, Math.round(Number(ms.value) || 1000)));
      };
    }
    case 'longpoll': {
      const state = q('lp-state');
      return (panes) => { panes.longpoll = shown() && state.dataset.state !== 'stopped'; };
    }
    case 'sse': {
      const state = q('sse-state');
      return (panes) => { panes.sse = shown() && state.dataset.state !== 'closed'; };
    }
    case 'ws': {
      const state = q('ws-state');
      return (panes) => { panes.ws = shown() && !['closed', 'closing-by-user'].includes(state.dataset.state); };
    }
    default:
      return null;
  }
}
