// The strip: every shown pane's price and key figures in one compact row near the top, so on
// a phone, where the panes stack one under another, the prices being compared are on screen
// together (style.css shows it only on narrow screens, and keeps it in view while scrolling).

import * as fmt from './format.js';

export class PriceStrip {
  constructor(root, views) {
    this.items = views.map((view) => {
      const item = document.createElement('div');
      item.className = 'strip-item';
      item.dataset.pane = view.key;
      const name = span('strip-name');
      const price = span('strip-price');
      const figures = span('strip-figures');
      item.append(name, price, figures);
      root.append(item);
      return { view, item, name, price, figures };
    });
  }

  update(now) {
    for (const { view, item, name, price, figures } of this.items) {
      item.hidden = view.root.hidden;
      name.textContent = view.displayName;
      price.textContent = view.shown ? fmt.price(view.shown.price) : '–';
      const s = view.stats;
      figures.textContent = `seen ${fmt.percent(s.seq.seenShare)} · age ${fmt.ms(view.ageAverage.mean(now))} avg`;
    }
  }
}

function span(className) {
  const el = document.createElement('span');
  el.className = className;
  el.textContent = '–';
  return el;
}
