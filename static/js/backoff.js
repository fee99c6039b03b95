// When to try again after a socket drops: exponential backoff with jitter.
//
// Doubling the wait after each failed try keeps a struggling server from being hammered; the
// random part ("jitter") keeps a classroom of browsers that lost the server at the same moment
// from all coming back at the same moment too.

export const BACKOFF = { baseMs: 500, capMs: 15_000 };

/** The wait before try number `attempt` (0 for the first retry): half fixed, half random. */
export function backoffDelay(attempt, random = Math.random) {
  const ceiling = Math.min(BACKOFF.capMs, BACKOFF.baseMs * 2 ** attempt);
  return ceiling / 2 + random() * (ceiling / 2);
}
