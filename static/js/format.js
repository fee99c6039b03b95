// Number formatting shared by every pane: units always shown, widths stable.

/** A price with two decimals, e.g. "101.23". */
export function price(value) {
  return value.toFixed(2);
}

/** A signed change with an arrow and a word, so up/down never relies on colour alone. */
export function change(value) {
  if (value > 0) return { text: `▲ +${value.toFixed(2)}`, direction: 'up', word: 'up' };
  if (value < 0) return { text: `▼ ${value.toFixed(2)}`, direction: 'down', word: 'down' };
  return { text: '■ 0.00', direction: 'flat', word: 'unchanged' };
}

/** A duration in milliseconds, switching to seconds past 10 s. */
export function ms(value) {
  if (!Number.isFinite(value)) return '–';
  if (value >= 10_000) return `${(value / 1000).toFixed(1)} s`;
  return `${Math.max(0, Math.round(value))} ms`;
}

/** A count with thousands separators. */
export function count(value) {
  return value.toLocaleString('en-US');
}
