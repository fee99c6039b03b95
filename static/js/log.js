// A per-pane log of the last requests or frames, newest first. Bounded: a page left open all
// day keeps LOG_MAX entries, not all of them.

import * as fmt from './format.js';

/** How many entries a log keeps. */
export const LOG_MAX = 30;

export class WireLog {
  constructor(list) {
    this.list = list;
  }

  /** `direction` is "→" (browser to server) or "←"; `bytes` is header + payload. */
  add(direction, what, bytes) {
    const item = document.createElement('li');
    const time = new Date().toISOString().slice(11, 23);
    item.textContent = `${time} ${direction} ${what} · ${fmt.bytes(bytes)}`;
    item.dataset.direction = direction === '→' ? 'up' : 'down';
    this.list.prepend(item);
    while (this.list.children.length > LOG_MAX) this.list.lastElementChild.remove();
  }
}
