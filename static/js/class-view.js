// The class view (/class?key=...): one WebSocket, opened with the page's own key, that the
// server pushes a snapshot of the whole class down whenever it changes (and once a second for
// the cost), and that carries the instructor's Reveal up. Everything shown is a number or a
// fixed label: nothing a student sent is rendered as text.

import * as fmt from './format.js';
import { backoffDelay } from './backoff.js';
import { socketUrl } from './ws-pane.js';

const key = new URLSearchParams(location.search).get('key') || '';
const $ = (id) => document.getElementById(id);
const button = $('reveal');
let socket = null;
let attempt = 0;

function connect() {
  socket = new WebSocket(socketUrl(`/class/ws?key=${encodeURIComponent(key)}`));
  socket.addEventListener('open', () => {
    attempt = 0;
    $('link').textContent = 'live';
  });
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(event.data);
    if (message.type === 'class') show(message);
  });
  socket.addEventListener('close', (event) => {
    socket = null;
    button.disabled = true;
    const delay = backoffDelay(attempt++);
    $('link').textContent = `connection lost (code ${event.code}); retrying in ${fmt.ms(delay)}`;
    setTimeout(connect, delay);
  });
}

/** Puts one snapshot on the screen, and publishes its figures on <body> for tests. */
function show(view) {
  const n = (value) => String(Number(value) || 0);
  $('pages').textContent = n(view.pages);
  $('count-http').textContent = n(view.http);
  $('intervals').textContent = (view.intervals || []).map(([ms, pages]) => `${n(ms)} ms: ${n(pages)}`).join(' · ') || '–';
  $('count-longpoll').textContent = n(view.longpoll);
  $('count-sse').textContent = n(view.sse);
  $('count-ws').textContent = n(view.ws);
  $('said-a').textContent = n(view.said_a);
  $('said-b').textContent = n(view.said_b);
  $('unanswered').textContent = n(view.unanswered);
  const revealed = view.revealed_at !== null && view.revealed_at !== undefined;
  const right = $('right');
  if (revealed) {
    right.dataset.revealed = '';
    right.textContent = `Revealed: ${n(view.right_after_reveal)} of ${n(view.said_a + view.said_b)} answers were right`;
  }
  button.disabled = revealed || !socket;
  button.textContent = revealed ? 'Revealed' : 'Reveal to everyone';
  showCost(view);
  const instances = Number(view.instances) || 1;
  $('link').textContent = instances > 1 ? `live · ${instances} instances (through Redis)` : 'live';
  Object.assign(document.body.dataset, {
    pages: n(view.pages), http: n(view.http), longpoll: n(view.longpoll), sse: n(view.sse), ws: n(view.ws),
    saidA: n(view.said_a), saidB: n(view.said_b), unanswered: n(view.unanswered), blind: n(view.blind),
    instances: String(instances), revealed: String(revealed), right: revealed ? n(view.right_after_reveal) : '',
  });
  document.body.dataset.ready = 'true'; // the first snapshot is on screen
}

function showCost(view) {
  const rows = $('cost');
  rows.replaceChildren();
  view.transports.forEach((name, i) => {
    const rates = view.cost.transports[i];
    const row = document.createElement('tr');
    for (const text of [name, rate(rates.per_sec), `${fmt.bytes(rates.out_bytes)}`, `${fmt.bytes(rates.in_bytes)}`]) {
      const cell = document.createElement(row.children.length ? 'td' : 'th');
      cell.textContent = text;
      row.append(cell);
    }
    rows.append(row);
  });
  const instances = Number(view.instances) || 1;
  const who = instances > 1 ? `${instances} server processes together` : 'the whole server process';
  $('cpu').textContent = `CPU: ${(view.cost.cpu * 100).toFixed(1)} % of one core, ${who} (not split by transport: the same threads serve them all)`;
}

function rate(perSec) {
  return perSec >= 100 ? perSec.toFixed(0) : perSec.toFixed(1);
}

button.addEventListener('click', () => {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: 'reveal' }));
});
connect();
