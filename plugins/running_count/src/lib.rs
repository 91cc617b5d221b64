//! `running_count`: counts records per key so far and emits, for each record, the
//! key's new count as a JSON object (`{"key": "FR", "count": 17}`, keyed by the key),
//! which a sink that upserts by key (MongoDB, Cassandra, PostgreSQL) keeps current.
//!
//! ```toml
//! [stateful]
//! plugin = "../plugins/dist/running_count.wasm"
//! key_field = "nat"     # count users per nationality: the key is taken from this field
//! config = { field = "count" }   # optional: the name of the count's field
//! ```
//!
//! The state of a key is its count, 8 bytes little-endian (state version 1). Records
//! without a key are refused (dead letters): there is nothing to count them under.

/// The state format this build writes: 1, a little-endian u64; the test build
/// `state_v2` writes 2, the count as decimal text, and migrates 1.
pub const STATE_VERSION: u32 = if cfg!(feature = "state_v2") { 2 } else { 1 };

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub field: String,
}

impl Config {
    pub fn parse(json: &str) -> Result<Config, String> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            field: Option<String>,
        }
        let raw: Raw = serde_json::from_str(json).map_err(|e| {
            format!("running_count: config {e} (expected {{ field = \"count\" }} or nothing)")
        })?;
        Ok(Config {
            field: raw.field.unwrap_or_else(|| "count".into()),
        })
    }

    /// The update emitted for `key` at `count`.
    pub fn update(&self, key: &[u8], count: u64) -> Vec<u8> {
        let mut o = serde_json::Map::new();
        o.insert(
            "key".into(),
            String::from_utf8_lossy(key).into_owned().into(),
        );
        o.insert(self.field.clone(), count.into());
        serde_json::Value::Object(o).to_string().into_bytes()
    }
}

/// The count a state holds (`None`: another format than this build's).
pub fn decode(version: u32, data: &[u8]) -> Option<u64> {
    if version != STATE_VERSION {
        return None;
    }
    match version {
        1 => data.try_into().ok().map(u64::from_le_bytes),
        _ => std::str::from_utf8(data).ok()?.parse().ok(),
    }
}

/// A count as this build's state.
pub fn encode(count: u64) -> Vec<u8> {
    match STATE_VERSION {
        1 => count.to_le_bytes().to_vec(),
        _ => count.to_string().into_bytes(),
    }
}

/// A state of format `from` (1 or this build's) as this build's.
pub fn migrate(from: u32, data: &[u8]) -> Result<Vec<u8>, String> {
    let count = match from {
        1 => data.try_into().ok().map(u64::from_le_bytes),
        v if v == STATE_VERSION => decode(v, data),
        _ => None,
    };
    count.map(encode).ok_or_else(|| {
        format!(
            "running_count cannot migrate state version {from} ({} bytes)",
            data.len()
        )
    })
}

#[cfg(target_arch = "wasm32")]
mod component {
    use super::{decode, Config, STATE_VERSION};
    use sluice_plugin_sdk::{Accumulator, KeyedTransform, Record};
    use std::sync::OnceLock;

    static CONFIG: OnceLock<Config> = OnceLock::new();

    struct RunningCount;

    impl KeyedTransform for RunningCount {
        fn init(config: &str) -> Result<(), String> {
            let _ = CONFIG.set(Config::parse(config)?);
            Ok(())
        }

        fn transform(
            record: Record,
            state: &mut Option<Accumulator>,
        ) -> Result<Vec<Record>, String> {
            let config = CONFIG.get().ok_or("running_count: not initialised")?;
            let key = record
                .key
                .clone()
                .ok_or("running_count: the record has no key to count it under")?;
            let so_far = match state {
                None => 0,
                Some(s) => decode(s.version, &s.data).ok_or_else(|| {
                    format!(
                        "running_count: cannot read state version {} ({} bytes)",
                        s.version,
                        s.data.len()
                    )
                })?,
            };
            let count = so_far + 1;
            *state = Some(Accumulator {
                version: STATE_VERSION,
                data: super::encode(count),
            });
            Ok(vec![Record {
                value: config.update(&key, count),
                key: Some(key),
                timestamp_ms: record.timestamp_ms,
                headers: Vec::new(),
            }])
        }
    }

    sluice_plugin_sdk::stateful_plugin!(RunningCount);

    #[cfg(feature = "state_v2")]
    impl sluice_plugin_sdk::migrate::exports::sluice::plugin::migrator::Guest for RunningCount {
        fn migrate(from_version: u32, data: Vec<u8>) -> Result<Accumulator, String> {
            Ok(Accumulator {
                version: STATE_VERSION,
                data: super::migrate(from_version, &data)?,
            })
        }
    }

    #[cfg(feature = "state_v2")]
    sluice_plugin_sdk::migrate::export_migrator!(RunningCount with_types_in sluice_plugin_sdk::migrate);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_update_names_the_key_and_its_count() {
        let c = Config::parse("{}").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&c.update(b"FR", 17)).unwrap();
        assert_eq!(v, serde_json::json!({"key": "FR", "count": 17}));
        let named = Config::parse(r#"{"field": "users"}"#).unwrap();
        assert!(String::from_utf8(named.update(b"US", 2))
            .unwrap()
            .contains(r#""users":2"#));
        assert_eq!(decode(STATE_VERSION, &encode(3)), Some(3));
        assert_eq!(decode(STATE_VERSION, &[1, 2]), None);
        assert_eq!(migrate(1, &7u64.to_le_bytes()).unwrap(), encode(7));
        assert!(migrate(9, b"x").is_err());
        assert!(Config::parse(r#"{"fields": "x"}"#).is_err());
    }
}
