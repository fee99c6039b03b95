// The network badge: which network this tab came through (direct, or the server's simulated
// network with its round trip, `--lab-rtt-ms`), a link to the same page on the other one, and
// the HTTP version the browser actually used for the price requests (Resource Timing's
// `nextHopProtocol`: "http/1.1", or "h2" when a server speaks HTTP/2 over TLS).
//
// The server fills in the facts it knows (data-network, data-rtt-ms, data-other-port); this
// module adds what only the browser knows.

/** The requests whose protocol is reported: the price transports, not the page's assets. */
const PRICE_PATHS = new Set(['/price', '/price/next', '/events']);

/** Mounts the badge's live parts on `root` (the `#network` paragraph); no-op when absent. */
export function mountNetworkBadge(root) {
  if (!root) return;
  const more = root.querySelector('.network-more');
  const other = otherNetworkLink(root.dataset);
  const protocol = document.createElement('span');
  protocol.className = 'network-protocol';
  more.replaceChildren(...[other, protocol].filter(Boolean));
  const seen = new Set();
  // An observer, not getEntriesByType: the panes clear the Resource Timing buffer after
  // reading their own entries (see wire.js), and an observer still hears of each one first.
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const path = new URL(entry.name).pathname;
      // Some browsers report "" for a response that crossed a proxy or came from a cache.
      if (PRICE_PATHS.has(path) && entry.nextHopProtocol && !seen.has(entry.nextHopProtocol)) {
        seen.add(entry.nextHopProtocol);
        const used = [...seen].join(', ');
        // The panes count header bytes as HTTP/1.1 heads; HTTP/2 compresses them (HPACK).
        const estimate = seen.has('h2') ? ' (the panes\' header bytes are HTTP/1.1 estimates)' : '';
        protocol.textContent = ` · HTTP requests used: ${used}${estimate}`;
        root.dataset.nextHopProtocol = used;
      }
    }
  });
  observer.observe({ type: 'resource', buffered: true });
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
