// Boots the page: one pane module per transport (chosen by the pane's data-kind), one shared
// chart scale, one scoreboard, the price strip, and one animation-frame loop that keeps every
// pane's numbers current. A new transport registers its mount function in `MOUNTS`. At
// `/?blind` the blind test (blind.js) letters the two panes once they are mounted, before the
// scoreboard and the strip are built on them, and starts once everything has its elements.
// The class link (class-link.js) reports the panes to the instructor's class view.

import { mountHttpPane } from './http-pane.js';
import { mountWsPane } from './ws-pane.js';
import { mountLongPollPane } from './longpoll-pane.js';
import { mountSsePane } from './sse-pane.js';
import { mountChooser } from './chooser.js';
import { nowMs } from './pane.js';
import { SharedScale } from './chart.js';
import { Scoreboard } from './scoreboard.js';
import { PriceStrip } from './strip.js';
import { blindRequested, drawLetters, startBlindTest } from './blind.js';
import { mountNetworkBadge } from './network.js';
import { mountClassLink } from './class-link.js';

const MOUNTS = { http: mountHttpPane, longpoll: mountLongPollPane, sse: mountSsePane, ws: mountWsPane };

/** How often counters, charts and the scoreboard are redrawn (ages update every frame). */
const RENDER_EVERY_MS = 250;

const symbols = document.body.dataset.symbols.split(',');
const scale = new SharedScale();
const shared = { browserHeaders: null }; // what one pane learns that another can use
const blind = blindRequested();
const mounted = [];
for (const root of document.querySelectorAll('.pane')) {
  const mount = MOUNTS[root.dataset.kind];
  if (mount) mounted.push(mount(root, { symbols, scale, shared }));
}
const views = blind ? drawLetters(mounted) : mounted;
const scoreboard = new Scoreboard(document.getElementById('scoreboard'), views);
mountChooser(document.getElementById('pane-chooser'), views); // not at /?blind
const strip = new PriceStrip(document.getElementById('strip'), views);
mountNetworkBadge(document.getElementById('network'));
mountClassLink(views, shared, { blind }); // before the blind test takes the named elements out
if (blind) startBlindTest(views, () => scoreboard.update(nowMs()));

let lastRender = 0;
function frame() {
  const now = nowMs();
  for (const view of views) view.frame(now);
  if (now - lastRender >= RENDER_EVERY_MS) {
    lastRender = now;
    scale.update(now);
    for (const view of views) {
      view.render();
      view.chart.draw();
    }
    scoreboard.update(now);
    strip.update(now);
    // Ready once the figures have been drawn the first time: the layout has its final shape.
    document.body.dataset.ready = 'true';
  }
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);
