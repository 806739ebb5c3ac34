//! Logging: to the systemd journal when the daemon runs under systemd (its stderr is the
//! journal stream), with structured fields such as `CALL_ID` and `PEER_ADDR`; to stderr
//! otherwise. The level comes from `RUST_LOG`, else the config's `log_level`, else `info`.

use std::net::IpAddr;

/// Journal field naming the call a message is about.
pub const CALL_ID: &str = "CALL_ID";
/// Journal field naming the caller's address.
pub const PEER_ADDR: &str = "PEER_ADDR";

pub fn init(config_level: Option<&str>) {
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| spec.parse::<log::LevelFilter>().ok())
        .or_else(|| config_level.and_then(|l| l.parse().ok()))
        .unwrap_or(log::LevelFilter::Info);
    if systemd_journal_logger::connected_to_journal()
        && let Ok(journal) = systemd_journal_logger::JournalLog::new()
        && journal.install().is_ok()
    {
        log::set_max_level(level);
        return;
    }
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    builder.init();
}

/// Logs something about a call with its id and the caller's address as structured fields.
pub fn call_event(call: u64, peer: Option<IpAddr>, message: std::fmt::Arguments<'_>) {
    let peer = peer.map(|p| p.to_string()).unwrap_or_default();
    log::info!(CALL_ID = call, PEER_ADDR = peer.as_str(); "call {call}: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Keeps the key-value pairs of every record (the test's own logger).
    struct Capture(Mutex<Vec<Vec<(String, String)>>>);

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }

        fn log(&self, record: &log::Record<'_>) {
            struct Pairs(Vec<(String, String)>);
            impl<'kvs> log::kv::VisitSource<'kvs> for Pairs {
                fn visit_pair(
                    &mut self,
                    key: log::kv::Key<'kvs>,
                    value: log::kv::Value<'kvs>,
                ) -> Result<(), log::kv::Error> {
                    self.0.push((key.to_string(), value.to_string()));
                    Ok(())
                }
            }
            let mut pairs = Pairs(Vec::new());
            let _ = record.key_values().visit(&mut pairs);
            // Held only to push one entry; no await anywhere near it.
            if let Ok(mut records) = self.0.lock() {
                records.push(pairs.0);
            }
        }

        fn flush(&self) {}
    }

    #[test]
    fn call_events_carry_call_id_and_peer_addr_fields() {
        static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));
        let _ = log::set_logger(&CAPTURE);
        log::set_max_level(log::LevelFilter::Info);
        call_event(
            7,
            Some("10.0.0.5".parse().unwrap()),
            format_args!("started"),
        );
        let records = CAPTURE.0.lock().unwrap();
        let pairs = records.last().expect("a record");
        assert!(
            pairs.contains(&(CALL_ID.to_owned(), "7".to_owned())),
            "{pairs:?}"
        );
        assert!(
            pairs.contains(&(PEER_ADDR.to_owned(), "10.0.0.5".to_owned())),
            "{pairs:?}"
        );
    }
}
