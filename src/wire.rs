//! The bytes a tick is sent as: its JSON text, its Server-Sent Events event and its
//! WebSocket frame, each built once per tick whatever the number of clients.
//!
//! [`crate::tick`] says what a tick *is* (the protocol's serde types); this module says what
//! it looks like on the wire. Nothing in those bytes depends on who receives them: a server's
//! WebSocket frames are not masked, an SSE `data:` line is the same for every stream, and
//! the JSON is the JSON. So the feed wraps each new tick in a [`Published`], which holds
//! the tick with its forms, and every client of every transport is sent the *same* buffers:
//! a `clone()` of one is a reference-count bump, not a copy.
//!
//! The JSON is made at once, by the feed ([`Published::serialise`]): every transport needs
//! it (`GET /price` answers with it, and it is the payload of the other forms). The SSE and
//! WebSocket forms are made by the first client of that transport that asks for them
//! (a [`OnceLock`] each), then shared: a transport nobody listens to costs nothing. The
//! feed counts the serialisations and the WebSocket frames it builds
//! ([`crate::Feed::serialisations`], [`crate::Feed::ws_frames`]) so that tests can prove
//! the work is per tick, never per client.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::web::Bytes;
use bytestring::ByteString;

use crate::tick::Tick;

/// One symbol's newest tick, both as data and as the bytes every client is sent.
#[derive(Debug, Clone)]
pub struct Published {
    /// The tick as data, for code that needs a field (e.g. `seq`).
    pub tick: Tick,
    /// The tick serialised once; clone it to send it (a reference-count bump, no copy).
    pub json: ByteString,
    /// The same tick as a Server-Sent Events frame, made by the first SSE client that needs
    /// it and then shared by all of them (nothing is formatted when no one listens).
    sse: OnceLock<Bytes>,
    /// The whole event for a stream that holds this symbol only: built at most once.
    sse_alone: OnceLock<Bytes>,
    /// The same tick as a complete WebSocket frame (header and payload), made by the first
    /// WebSocket connection that needs it and then written by all of them.
    ws: OnceLock<Bytes>,
}

impl Published {
    /// Wraps a tick and its one serialisation. Private: the only way to make a `Published`
    /// is [`Published::serialise`], so its bytes are always this server's own JSON (a
    /// front-end too serialises what it adopts, rather than pass on the text Redis
    /// delivered).
    fn new(tick: Tick, json: ByteString) -> Published {
        Published {
            tick,
            json,
            sse: OnceLock::new(),
            sse_alone: OnceLock::new(),
            ws: OnceLock::new(),
        }
    }

    /// Serialises `tick` to JSON and wraps the two: the one serialisation a tick gets. The
    /// feed calls this once per symbol per tick and counts it
    /// ([`crate::Feed::serialisations`]).
    pub fn serialise(tick: Tick) -> Published {
        // A struct of strings and numbers cannot fail to serialise.
        let json = serde_json::to_string(&tick).expect("a tick always serialises");
        Published::new(tick, json.into())
    }

    /// This tick as one complete WebSocket text frame, ready for the socket: built the
    /// first time a connection asks (counted in `built`), then shared by every connection (a
    /// reference-count bump each, no copy). Use [`crate::Feed::ws_frame`], which counts the
    /// builds.
    ///
    /// A server's frames are not masked (RFC 6455 section 5.1), so the frame is the same
    /// bytes for every client: a 2-byte header (`FIN` + opcode 1 = text, then the length)
    /// before the JSON, or 4 bytes for 126 to 65 535 bytes of JSON:
    ///
    /// ```text
    /// 0x81 0x76 {"type":"tick","symbol":"ACME",...}     (0x76 = 118 bytes of JSON)
    /// ```
    pub(crate) fn ws_frame(&self, built: &AtomicU64) -> Bytes {
        self.ws
            .get_or_init(|| {
                built.fetch_add(1, Ordering::Relaxed);
                text_frame(self.json.as_bytes())
            })
            .clone()
    }

    /// This tick's `data:` line and the blank line that ends a Server-Sent Events frame.
    /// Formatted once per tick, whatever the number of SSE clients; a stream that holds
    /// several symbols sends its own `id:` line before it (see `http/sse.rs`); one that holds
    /// one symbol sends [`Published::sse_event_alone`].
    pub fn sse_frame(&self) -> Bytes {
        self.sse
            .get_or_init(|| Bytes::from(format!("data: {}\n\n", self.json)))
            .clone()
    }

    /// The whole SSE event (`id: SYMBOL:SEQ@RUN`, then [`Published::sse_frame`]) for a stream
    /// whose only position is this symbol's: the common case (one symbol per stream), where
    /// every stream's event is the same bytes. Built once per tick, shared by all of them.
    pub fn sse_event_alone(&self) -> Bytes {
        self.sse_alone
            .get_or_init(|| {
                let t = &self.tick;
                Bytes::from(format!(
                    "id: {}:{}@{}\ndata: {}\n\n",
                    t.symbol, t.seq, t.run, self.json
                ))
            })
            .clone()
    }
}

/// `payload` as an unmasked, unfragmented WebSocket text frame (RFC 6455 section 5.2).
pub fn text_frame(payload: &[u8]) -> Bytes {
    let len = payload.len();
    let mut frame = Vec::with_capacity(len + 10);
    frame.push(0x81); // FIN, opcode 1 (text)
    match len {
        0..=125 => frame.push(len as u8),
        126..=0xFFFF => {
            frame.push(126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            frame.push(127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    Bytes::from(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tick::RunId;

    fn published() -> Published {
        Published::serialise(Tick {
            symbol: "ACME".into(),
            price: 101.23,
            change: 0.12,
            seq: 42,
            ts: 1.5,
            run: RunId(0x019ac2f1e3a74c1d),
        })
    }

    /// The length goes in 7 bits, or 16 after the marker 126, or 64 after 127.
    #[test]
    fn a_text_frame_has_the_shortest_length_header_that_fits() {
        for (len, header) in [
            (0, vec![0x81, 0]),
            (125, vec![0x81, 125]),
            (126, vec![0x81, 126, 0, 126]),
            (0xFFFF, vec![0x81, 126, 0xFF, 0xFF]),
            (0x1_0000, vec![0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ] {
            let payload = vec![b'x'; len];
            let frame = text_frame(&payload);
            assert_eq!(&frame[..header.len()], header, "{len} bytes");
            assert_eq!(&frame[header.len()..], payload, "{len} bytes");
        }
    }

    #[test]
    fn the_forms_of_a_tick_are_built_once_and_then_shared() {
        let published = published();
        let built = AtomicU64::new(0);
        let first = published.ws_frame(&built);
        assert_eq!(first, text_frame(published.json.as_bytes()));
        let again = published.ws_frame(&built);
        assert_eq!(
            first.as_ptr(),
            again.as_ptr(),
            "the same buffer, not a copy"
        );
        assert_eq!(built.load(Ordering::Relaxed), 1);

        let json = &published.json;
        assert_eq!(published.sse_frame(), format!("data: {json}\n\n"));
        assert_eq!(
            published.sse_event_alone(),
            format!("id: ACME:42@019ac2f1e3a74c1d\ndata: {json}\n\n")
        );
        assert_eq!(
            published.sse_frame().as_ptr(),
            published.sse_frame().as_ptr()
        );
    }
}
