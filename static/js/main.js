// Boots the page: one pane module per transport, one shared animation-frame loop that keeps
// every pane's "shown price is N ms old" current.

import { mountHttpPane } from './http-pane.js';
import { mountWsPane } from './ws-pane.js';
import { nowMs } from './pane.js';

const symbols = document.body.dataset.symbols.split(',');
const mounts = { http: mountHttpPane, ws: mountWsPane };
const views = [];
for (const root of document.querySelectorAll('.pane')) {
  const mount = mounts[root.dataset.kind];
  if (mount) views.push(mount(root, { symbols }));
}

function frame() {
  const now = nowMs();
  for (const view of views) view.refreshAge(now);
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);
