// Number formatting shared by every pane: units always shown, widths stable.

/** A price with two decimals, e.g. "101.23". */
export function price(value) {
  return value.toFixed(2);
}

/** A signed change with an arrow and a word, so up/down never relies on colour alone. */
export function change(value) {
  if (value > 0) return { text: `▲ up +${value.toFixed(2)}`, direction: 'up' };
  if (value < 0) return { text: `▼ down ${value.toFixed(2)}`, direction: 'down' };
  return { text: '■ unchanged 0.00', direction: 'flat' };
}

/** A duration in milliseconds, switching to seconds past 10 s. */
export function ms(value) {
  if (!Number.isFinite(value)) return '–';
  if (value >= 10_000) return `${(value / 1000).toFixed(1)} s`;
  if (value < 10) return `${Math.max(0, value).toFixed(1)} ms`;
  return `${Math.round(value)} ms`;
}

/** A count with thousands separators. */
export function count(value) {
  if (!Number.isFinite(value)) return '–';
  return value.toLocaleString('en-US');
}

/** A byte count: "812 B", "14.2 kB", "3.10 MB" (SI units, as network tools show them). */
export function bytes(value) {
  if (!Number.isFinite(value)) return '–';
  if (value < 1000) return `${Math.round(value)} B`;
  if (value < 1_000_000) return `${(value / 1000).toFixed(1)} kB`;
  return `${(value / 1_000_000).toFixed(2)} MB`;
}

/** A share in [0, 1] as a percentage, "–" when there is nothing to divide. */
export function percent(value) {
  if (!Number.isFinite(value)) return '–';
  return `${(value * 100).toFixed(1)} %`;
}
