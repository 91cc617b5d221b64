//! `dedup`: passes a record on unchanged unless a record with the same key was seen
//! within an event-time span before (or after) it; a repeat is dropped.
//!
//! ```toml
//! [stateful]
//! plugin = "../plugins/dist/dedup.wasm"
//! config = { within = "10m" }
//! ttl = "10m"           # the host forgets keys not seen for this long (event time)
//! ```
//!
//! The state of a key is the event time of the record that passed, 8 bytes (state
//! version 1). A record whose event time is within `within` of it is a repeat (a
//! redelivery, a producer's retry, a client that posted twice). Records without a key
//! pass unchanged: there is nothing to compare them by. Because the host checkpoints
//! the state with the source's positions, a record read again after a crash is
//! recognised too, which makes a pipeline writing to a file exact across kills.

/// The state format this build writes.
pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub within_ms: i64,
}

impl Config {
    pub fn parse(json: &str) -> Result<Config, String> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            within: String,
        }
        let raw: Raw = serde_json::from_str(json)
            .map_err(|e| format!("dedup: config {e} (expected {{ within = \"10m\" }})"))?;
        let within_ms = span_ms(&raw.within)
            .ok_or_else(|| format!("dedup: config `within` = {:?} is not a span such as \"500ms\", \"30s\", \"10m\", \"2h\" or \"7d\"", raw.within))?;
        if within_ms <= 0 {
            return Err("dedup: config `within` must be more than 0".into());
        }
        Ok(Config { within_ms })
    }

    /// Whether a record at `at_ms` repeats the one the state remembers; the state to
    /// keep either way.
    pub fn check(&self, seen_ms: Option<i64>, at_ms: i64) -> (bool, i64) {
        match seen_ms {
            Some(seen) if at_ms.abs_diff(seen) < self.within_ms as u64 => (true, seen),
            _ => (false, at_ms),
        }
    }
}

/// "500ms", "30s", "10m", "2h", "7d" as milliseconds.
pub fn span_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(digits);
    let n: i64 = n.parse().ok()?;
    let unit_ms = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

/// The event time a state remembers (`None`: unreadable, another format).
pub fn decode(version: u32, data: &[u8]) -> Option<i64> {
    (version == STATE_VERSION)
        .then(|| data.try_into().ok().map(i64::from_le_bytes))
        .flatten()
}

#[cfg(target_arch = "wasm32")]
mod component {
    use super::{decode, Config, STATE_VERSION};
    use sluice_plugin_sdk::{Accumulator, KeyedTransform, Record};
    use std::sync::OnceLock;

    static CONFIG: OnceLock<Config> = OnceLock::new();

    struct Dedup;

    impl KeyedTransform for Dedup {
        fn init(config: &str) -> Result<(), String> {
            let _ = CONFIG.set(Config::parse(config)?);
            Ok(())
        }

        fn transform(
            record: Record,
            state: &mut Option<Accumulator>,
        ) -> Result<Vec<Record>, String> {
            let config = CONFIG.get().ok_or("dedup: not initialised")?;
            if record.key.is_none() {
                return Ok(vec![record]);
            }
            let seen = match state {
                None => None,
                Some(s) => Some(decode(s.version, &s.data).ok_or_else(|| {
                    format!(
                        "dedup: cannot read state version {} ({} bytes)",
                        s.version,
                        s.data.len()
                    )
                })?),
            };
            let (repeat, keep) = config.check(seen, record.timestamp_ms);
            *state = Some(Accumulator {
                version: STATE_VERSION,
                data: keep.to_le_bytes().to_vec(),
            });
            Ok(if repeat { Vec::new() } else { vec![record] })
        }
    }

    sluice_plugin_sdk::stateful_plugin!(Dedup);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_within_the_span_is_dropped_and_one_after_it_passes() {
        let c = Config::parse(r#"{"within": "10m"}"#).unwrap();
        assert_eq!(c.within_ms, 600_000);
        assert_eq!(c.check(None, 1_000), (false, 1_000));
        assert_eq!(c.check(Some(1_000), 1_000), (true, 1_000));
        assert_eq!(c.check(Some(1_000), 600_999), (true, 1_000));
        assert_eq!(c.check(Some(1_000), 601_000), (false, 601_000));
        assert_eq!(
            c.check(Some(700_000), 100_001),
            (true, 700_000),
            "an older copy is a repeat too"
        );
        assert_eq!(decode(1, &5i64.to_le_bytes()), Some(5));
        assert_eq!(decode(2, &5i64.to_le_bytes()), None);
        assert!(Config::parse(r#"{"within": "10 minutes"}"#).is_err());
        assert!(Config::parse(r#"{"within": "0s"}"#).is_err());
        assert!(Config::parse(r#"{}"#).is_err());
    }
}
