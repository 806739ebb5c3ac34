//! Fuzzes the signaling parser: any text frame a browser (or anyone) sends must parse or be
//! refused with an error reply, never panic; a refusal is a well-formed `error` message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam::signaling::ClientMessage;

/// The daemon's default `signaling.max_message_bytes`.
const LIMIT: usize = 64 * 1024;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    if let Err(e) = ClientMessage::parse(text, LIMIT) {
        let reply = e.to_message().to_json();
        let value: serde_json::Value = serde_json::from_str(&reply).expect("the reply is JSON");
        assert_eq!(value["type"], "error", "{reply}");
        assert!(reply.len() < 1024, "a short reply, not an echo: {} bytes", reply.len());
    }
});
