// How many bytes a message really takes on the wire, beyond the JSON the page sees.
//
// WebSocket (RFC 6455 section 5.2): every frame has a 2-byte header; a payload of 126 to
// 65535 bytes adds a 2-byte extended length, a longer one an 8-byte length; frames from the
// client are masked, which adds a 4-byte key. The opening handshake is ordinary HTTP, paid once.
//
// HTTP: every request and every response carries its headers again. The Resource Timing API
// measures a response's body (`encodedBodySize`), but not its headers: the Fetch standard sets
// `transferSize` to the body size plus a fixed 300 bytes, so a page cannot learn header sizes
// from it. We count the response's headers ourselves from what fetch() exposes (same-origin:
// all of them), and the request's from the headers this browser sent on the WebSocket
// handshake, since a page cannot see its own request headers.

const encoder = new TextEncoder();

/** UTF-8 length of a string: what a text frame or an HTTP body of it weighs. */
export function utf8Length(text) {
  return encoder.encode(text).length;
}

/** Bytes of a WebSocket frame header for a payload of `length` bytes. */
export function frameHeaderBytes(length, masked) {
  const base = length < 126 ? 2 : length < 65536 ? 4 : 10;
  return base + (masked ? 4 : 0);
}

/** One text frame: payload and header bytes. */
export function textFrame(text, { fromClient }) {
  const payload = utf8Length(text);
  return { payload, headers: frameHeaderBytes(payload, fromClient) };
}

/**
 * Bytes a header value took on the wire. The server's `hello` shows credentials (cookies,
 * authorization, API keys) as `(redacted, N bytes)`: what was sent was N bytes, not the
 * placeholder, so the count stays exact without the page ever seeing the secret.
 */
export function headerValueBytes(value) {
  const redacted = /^\(redacted, (\d+) bytes\)$/.exec(value);
  return redacted ? Number(redacted[1]) : utf8Length(value);
}

/** Bytes of an HTTP/1.1 head: the start line, `name: value` lines, and the blank line. */
export function httpHeadBytes(startLine, headerPairs) {
  let total = utf8Length(startLine) + 2;
  for (const [name, value] of headerPairs) total += utf8Length(`${name}: `) + headerValueBytes(value) + 2;
  return total + 2;
}

/** The opening handshake, both ways, from the server's `hello.handshake`. */
export function handshakeBytes(handshake) {
  const { request, response } = handshake;
  return {
    up: httpHeadBytes(`${request.method} ${request.path} ${request.version}`, request.headers),
    down: httpHeadBytes(`HTTP/1.1 ${response.status} ${response.reason}`, response.headers),
  };
}

/**
 * Response bytes of a finished fetch: the status line and headers counted from the response,
 * the body from Resource Timing's `encodedBodySize` (or the body text where there is no entry).
 */
export function responseBytes(url, response, bodyText) {
  const entries = performance.getEntriesByName(url, 'resource');
  const entry = entries[entries.length - 1];
  // Entries would pile up (and the buffer fills at 250): we read ours and clear them.
  performance.clearResourceTimings();
  const headers = httpHeadBytes(`HTTP/1.1 ${response.status} ${response.statusText}`, [...response.headers]);
  if (entry && entry.encodedBodySize > 0) {
    return { headers, payload: entry.encodedBodySize, source: 'body from Resource Timing' };
  }
  return { headers, payload: utf8Length(bodyText), source: 'body counted' };
}

/** Headers a WebSocket handshake has that a plain GET would not. */
const UPGRADE_ONLY = /^(upgrade|connection|sec-websocket-.*|origin)$/;

/**
 * An estimate of the request a browser sends for `GET path`: the request line plus the headers
 * this browser sent on the WebSocket handshake (as the server reported them), minus the
 * upgrade-only ones. A page cannot see its own request headers, so this is marked "≈".
 */
export function requestBytesEstimate(path, browserHeaders) {
  const headers = (browserHeaders || [['host', location.host]]).filter(([name]) => !UPGRADE_ONLY.test(name));
  return httpHeadBytes(`GET ${path} HTTP/1.1`, [...headers, ['connection', 'keep-alive']]);
}
