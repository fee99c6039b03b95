// A per-pane log of the last requests or frames, newest first. Bounded: a page left open all
// day keeps LOG_MAX entries, not all of them. In the blind test (blind.js) an entry shows only
// time, direction and size, since "GET /price" or "tick" would name the transport; Reveal
// writes every entry out in full.

import * as fmt from './format.js';
import { isBlind } from './blind.js';

/** How many entries a log keeps. */
export const LOG_MAX = 30;

export class WireLog {
  constructor(list) {
    this.list = list;
    this.full = new WeakMap(); // entry -> its full text, for Reveal
  }

  /** `direction` is "→" (browser to server) or "←"; `bytes` is header + payload. */
  add(direction, what, bytes) {
    const item = document.createElement('li');
    const time = new Date().toISOString().slice(11, 23);
    const full = `${time} ${direction} ${what} · ${fmt.bytes(bytes)}`;
    this.full.set(item, full);
    item.textContent = isBlind() ? `${time} ${direction} ${fmt.bytes(bytes)}` : full;
    item.dataset.direction = direction === '→' ? 'up' : 'down';
    this.list.prepend(item);
    while (this.list.children.length > LOG_MAX) this.list.lastElementChild.remove();
  }

  /** The blind test is over: every entry in full. */
  reveal() {
    for (const item of this.list.children) item.textContent = this.full.get(item) ?? item.textContent;
  }
}
