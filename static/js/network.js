// The network badge: which network this tab came through (direct, or the server's simulated
// network with its round trip, `--lab-rtt-ms`), a link to the same page on the other one, and
// the HTTP version the browser actually used for the polls (Resource Timing's
// `nextHopProtocol`: "http/1.1", or "h2" when the server speaks HTTP/2 over TLS).
//
// The server fills in the facts it knows (data-network, data-rtt-ms, data-other-port); this
// module adds what only the browser knows.

/** How often the protocol line is refreshed: polls start when the learner switches them on. */
const REFRESH_MS = 2000;

/** Mounts the badge's live parts on `root` (the `#network` paragraph); no-op when absent. */
export function mountNetworkBadge(root) {
  if (!root) return;
  const more = root.querySelector('.network-more');
  const other = otherNetworkLink(root.dataset);
  const protocol = document.createElement('span');
  protocol.className = 'network-protocol';
  more.replaceChildren(...[other, protocol].filter(Boolean));
  const refresh = () => {
    const used = requestProtocols();
    protocol.textContent = used ? ` · HTTP requests used: ${used}` : '';
    root.dataset.nextHopProtocol = used;
  };
  refresh();
  setInterval(refresh, REFRESH_MS);
}

/** A link to this page through the other network, when the server runs both. */
function otherNetworkLink({ network, otherPort }) {
  if (!otherPort) return null;
  const link = document.createElement('a');
  link.href = `${location.protocol}//${location.hostname}:${otherPort}/`;
  link.target = '_blank';
  link.rel = 'noopener';
  link.textContent = network === 'simulated'
    ? '(open the same page on the direct network)'
    : '(open the same page on the simulated network)';
  return link;
}

/**
 * The protocols the browser used for the price requests (polls, long polls, the SSE stream),
 * e.g. "http/1.1" or "h2"; empty before the first. Some browsers report "" for a response
 * that crossed a proxy or came from a cache; those are left out.
 */
function requestProtocols() {
  const seen = new Set();
  for (const entry of performance.getEntriesByType('resource')) {
    const path = new URL(entry.name).pathname;
    if ((path === '/price' || path === '/price/next' || path === '/events') && entry.nextHopProtocol) {
      seen.add(entry.nextHopProtocol);
    }
  }
  return [...seen].join(', ');
}
