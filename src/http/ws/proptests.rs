//! Property tests (fuzzing) for everything a WebSocket client or a URL controls: the client
//! message parser and its answers, and the query-string parsers. Each property holds for any
//! input: no panic, and every refusal says what was wrong and what is allowed.
//!
//! A normal `cargo test` runs 256 cases per property. A longer campaign:
//! `PROPTEST_CASES=100000 cargo test --lib proptests` (the README records the last one).

use std::time::Duration;

use proptest::prelude::*;

use super::handshake::parse_symbols_param;
use super::messages::{Reply, handle_text};
use crate::feed::Feed;
use crate::http::origin::Origin;
use crate::http::price::PriceQuery;
use crate::http::query::MAX_QUERY_BYTES;
use crate::market::{Market, SymbolSpec};
use crate::subscription::{MAX_SYMBOLS_PER_REQUEST, Subscription};
use crate::tick::ServerMessage;

/// A feed with four symbols. Its task is never driven: the properties only need its symbols
/// and its first snapshot.
fn feed() -> Feed {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let specs = ["ACME", "GLOBX", "INITECH", "UMBRL"]
        .map(SymbolSpec::for_name)
        .to_vec();
    runtime.block_on(async { Feed::start(Market::new(specs, 1), Duration::from_millis(100)).0 })
}

/// What a bad message's error must say: the accepted shapes, or the rule it broke.
fn explains(message: &ServerMessage) -> bool {
    match message {
        ServerMessage::Error { message, code, .. } => match code.as_str() {
            "bad_json" | "bad_message" => {
                message.contains("{\"type\":\"subscribe\"") || message.contains("at most 64")
            }
            "unknown_symbol" => message.contains("use one of ACME, GLOBX, INITECH, UMBRL"),
            _ => false,
        },
        _ => true,
    }
}

/// JSON values that look like client messages: the right keys with any kind of value.
fn message_like() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
        prop::collection::vec(
            prop_oneof![Just("ACME".to_owned()), Just("globx".to_owned()), ".{0,10}"],
            0..80
        )
        .prop_map(serde_json::Value::from),
    ];
    let kind = prop_oneof![
        Just("subscribe".to_owned()),
        Just("unsubscribe".to_owned()),
        Just("ping".to_owned()),
        ".{0,10}"
    ];
    (
        kind,
        prop::collection::vec(
            (
                prop_oneof![Just("symbols"), Just("id"), Just("t"), Just("x")],
                value,
            ),
            0..4,
        ),
    )
        .prop_map(|(kind, fields)| {
            let mut object = serde_json::Map::new();
            object.insert("type".into(), kind.into());
            for (key, value) in fields {
                object.insert(key.into(), value);
            }
            serde_json::Value::Object(object).to_string()
        })
}

fn check_answers(text: &str, feed: &Feed) -> Result<(), TestCaseError> {
    let mut subscription = Subscription::only(0);
    let answers = match handle_text(text, feed, &mut subscription, Default::default()) {
        Reply::Answers(answers) => answers,
        // Class messages are answered by the session's seat (`class_answer`).
        Reply::Class(_) => return Ok(()),
        Reply::Close(reason) => {
            // Only a drop request closes, and its reason says so.
            let description = reason.description.unwrap_or_default();
            prop_assert!(description.contains("reconnect"), "{description}");
            return Ok(());
        }
    };
    prop_assert!(!answers.is_empty(), "every message gets an answer");
    for answer in &answers {
        prop_assert!(explains(answer), "unhelpful answer {answer:?} to {text:?}");
        // Every answer serialises, however odd the id it echoes.
        serde_json::from_str::<serde_json::Value>(&answer.to_json()).expect("valid JSON");
    }
    prop_assert!(
        (feed.symbols().len()..crate::config::MAX_SYMBOLS).all(|i| !subscription.contains(i)),
        "only real symbols are ever subscribed"
    );
    Ok(())
}

proptest! {
    #[test]
    fn any_text_gets_an_explanatory_answer_and_never_a_panic(text in ".{0,200}") {
        let feed = feed();
        check_answers(&text, &feed)?;
    }

    #[test]
    fn message_shaped_json_gets_an_explanatory_answer(text in message_like()) {
        let feed = feed();
        check_answers(&text, &feed)?;
    }

    #[test]
    fn ws_query_strings_parse_or_explain(query in ".{0,300}") {
        match parse_symbols_param(&query) {
            Ok(Some(names)) => {
                prop_assert!(names.len() <= MAX_SYMBOLS_PER_REQUEST);
                prop_assert!(names.iter().all(|n| !n.is_empty() && !n.contains(',')));
            }
            Ok(None) => {}
            Err(e) => prop_assert!(e.error.contains("expected nothing or ?symbols=NAME,NAME"), "{}", e.error),
        }
    }

    #[test]
    fn long_ws_query_strings_are_refused_by_length(extra in 1usize..5000) {
        let query = format!("symbols={}", "A".repeat(MAX_QUERY_BYTES + extra));
        let e = parse_symbols_param(&query).unwrap_err();
        prop_assert!(e.error.contains("at most 1024"), "{}", e.error);
    }

    #[test]
    fn price_query_strings_parse_or_explain(query in ".{0,300}|symbol=.{0,40}") {
        match PriceQuery::parse(&query) {
            Ok(_) => {}
            Err(e) => prop_assert!(e.error.contains("?symbol=NAME"), "{}", e.error),
        }
    }

    #[test]
    fn origins_parse_or_are_refused_without_panic(text in ".{0,80}") {
        if let Some(origin) = Origin::parse(&text) {
            prop_assert!(!origin.host.is_empty());
            prop_assert_eq!(origin.host.to_ascii_lowercase(), origin.host.clone());
        }
    }

    #[test]
    fn well_formed_origins_round_trip(
        scheme in "https?",
        host in "[a-z][a-z0-9-]{0,20}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
        port in proptest::option::of(1u16..),
    ) {
        let text = match port {
            Some(p) => format!("{scheme}://{host}:{p}"),
            None => format!("{scheme}://{host}"),
        };
        let origin = Origin::parse(&text).expect("a well-formed origin parses");
        let default = if scheme == "https" { 443 } else { 80 };
        prop_assert_eq!(origin, Origin { scheme, host, port: port.unwrap_or(default) });
    }
}
