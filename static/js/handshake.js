// The handshake panel: the HTTP request that opened the WebSocket and the server's
// `101 Switching Protocols`, as the server's `hello` reports them, and the derivation of
// `Sec-WebSocket-Accept` done again here, step by step, with the browser's own SHA-1.
//
// RFC 6455 section 4.2.2: accept = base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
// The GUID is fixed by the RFC; the point is that only a server that read the key and knows
// the WebSocket protocol can answer with the right value, so a plain HTTP server (or a cache)
// cannot be mistaken for a WebSocket server.

export const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** base64(SHA-1(key + GUID)), with the intermediate steps. */
export async function deriveAccept(key) {
  const concat = key + WEBSOCKET_GUID;
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-1', new TextEncoder().encode(concat)));
  const hex = [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
  const base64 = btoa(String.fromCharCode(...digest));
  return { concat, hex, base64 };
}

function header(pairs, name) {
  const found = pairs.find(([n]) => n.toLowerCase() === name);
  return found ? found[1] : null;
}

function headText(startLine, pairs) {
  return [startLine, ...pairs.map(([n, v]) => `${n}: ${v}`)].join('\n');
}

/** Fills the panel from `hello.handshake`; `url` says which socket URL (ws: or wss:) it opened. */
export async function showHandshake(root, handshake, url) {
  const { request, response } = handshake;
  const el = (cls) => root.querySelector(`.${cls}`);
  el('hs-url').textContent = `opened ${url}`;
  el('hs-request').textContent = headText(`${request.method} ${request.path} ${request.version}`, request.headers);
  el('hs-response').textContent = headText(`HTTP/1.1 ${response.status} ${response.reason}`, response.headers);
  root.dataset.status = String(response.status);
  const key = header(request.headers, 'sec-websocket-key');
  const received = header(response.headers, 'sec-websocket-accept');
  el('hs-key').textContent = key ?? '(none)';
  el('hs-accept-received').textContent = received ?? '(none)';
  if (!key) return;
  const { concat, hex, base64 } = await deriveAccept(key);
  el('hs-concat').textContent = concat;
  el('hs-sha1').textContent = hex;
  el('hs-accept-computed').textContent = base64;
  const ok = base64 === received;
  el('hs-check').textContent = ok ? '✓ matches: the server did the handshake right' : '✗ does not match';
  root.dataset.acceptOk = String(ok);
}
