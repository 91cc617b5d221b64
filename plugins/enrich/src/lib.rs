//! `enrich`: adds to each record (a JSON object) a field looked up in one of the
//! pipeline's tables (`[[tables]]`) by the value of another of its fields:
//!
//! ```toml
//! [[tables]]
//! name = "regions"
//! type = "file"
//! path = "../tables/regions.csv"
//! key = "country"
//! value = "region"
//!
//! [[transforms]]
//! plugin = "../plugins/dist/enrich.wasm"
//! config = { table = "regions", field = "nat", into = "region" }
//! ```
//!
//! The table's value goes in as JSON when it is JSON (a whole row: an object), else
//! as a string. A record whose field has no row in the table passes without the new
//! field, or, with `required = true`, is refused (a dead letter naming the value).
//! The host holds the table: the plugin reads it through the `lookup` import, and a
//! reload of the file shows in the next batch.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub table: String,
    /// The field whose value is the key (a top-level name).
    pub field: String,
    /// The field the looked-up value goes into.
    pub into: String,
    #[serde(default)]
    pub required: bool,
}

impl Config {
    pub fn parse(json: &str) -> Result<Config, String> {
        let c: Config = serde_json::from_str(json).map_err(|e| {
            format!("enrich: config {e} (expected {{ table = \"regions\", field = \"nat\", into = \"region\" }})")
        })?;
        if c.table.is_empty() || c.field.is_empty() || c.into.is_empty() {
            return Err("enrich: config `table`, `field` and `into` must not be empty".into());
        }
        Ok(c)
    }

    /// The record's value with the looked-up field added, given how to look up.
    pub fn enrich(
        &self,
        value: &[u8],
        lookup: impl Fn(&str, &[u8]) -> Option<Vec<u8>>,
    ) -> Result<Vec<u8>, String> {
        match self.spliced(value, &lookup) {
            Some(done) => done,
            None => self.parsed(value, &lookup),
        }
    }

    /// The usual case without parsing the record: its field a plain string (or
    /// missing), `into` not there yet; the new field written in before the closing
    /// brace. `None`: anything else, for [`Self::parsed`] (which also says what is
    /// wrong with a broken record).
    fn spliced(
        &self,
        value: &[u8],
        lookup: &impl Fn(&str, &[u8]) -> Option<Vec<u8>>,
    ) -> Option<Result<Vec<u8>, String>> {
        use sluice_plugin_sdk::json::{plain_string, top_level_value};
        // The scans below trust the structure: a broken record goes the parsed way,
        // which refuses it (a check without building anything).
        serde_json::from_slice::<serde::de::IgnoredAny>(value).ok()?;
        if top_level_value(value, self.into.as_bytes())?.is_some() {
            return None;
        }
        let key: &[u8] = match top_level_value(value, self.field.as_bytes())? {
            None => b"",
            Some(at) => plain_string(value, at)?,
        };
        let found = (!key.is_empty())
            .then(|| lookup(&self.table, key))
            .flatten();
        let Some(bytes) = found else {
            return Some(match self.required {
                true => Err(self.no_row(&String::from_utf8_lossy(key))),
                false => Ok(value.to_vec()),
            });
        };
        let is_json = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok();
        let field_value = match is_json {
            true => bytes,
            false => {
                serde_json::to_vec(&String::from_utf8_lossy(&bytes)).expect("a string serializes")
            }
        };
        let close = value.iter().rposition(|&b| b == b'}')?;
        let before = value[..close]
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())?;
        let empty = value[before] == b'{';
        let name = serde_json::to_vec(&self.into).expect("a string serializes");
        let mut out = Vec::with_capacity(value.len() + name.len() + field_value.len() + 2);
        out.extend_from_slice(&value[..=before]);
        if !empty {
            out.push(b',');
        }
        out.extend_from_slice(&name);
        out.push(b':');
        out.extend_from_slice(&field_value);
        out.extend_from_slice(&value[before + 1..]);
        Some(Ok(out))
    }

    fn no_row(&self, key: &str) -> String {
        format!(
            "enrich: no row for `{}` = {key:?} in table `{}`",
            self.field, self.table
        )
    }

    /// The general case: the record parsed, the field put in, written out again.
    fn parsed(
        &self,
        value: &[u8],
        lookup: &impl Fn(&str, &[u8]) -> Option<Vec<u8>>,
    ) -> Result<Vec<u8>, String> {
        let mut object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(value)
            .map_err(|e| format!("enrich: the record is not a JSON object ({e})"))?;
        let key = match object.get(&self.field) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let found = (!key.is_empty())
            .then(|| lookup(&self.table, key.as_bytes()))
            .flatten();
        match found {
            Some(bytes) => {
                let v = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                    serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
                });
                object.insert(self.into.clone(), v);
            }
            None if self.required => return Err(self.no_row(&key)),
            None => {}
        }
        Ok(serde_json::to_vec(&object).expect("a JSON object always serializes"))
    }
}

#[cfg(target_arch = "wasm32")]
mod component {
    use super::Config;
    use sluice_plugin_sdk::{Record, RecordTransform};
    use std::sync::OnceLock;

    static CONFIG: OnceLock<Config> = OnceLock::new();

    struct Enrich;

    impl RecordTransform for Enrich {
        fn init(config: &str) -> Result<(), String> {
            let _ = CONFIG.set(Config::parse(config)?);
            Ok(())
        }

        fn transform(record: Record) -> Result<Vec<Record>, String> {
            let config = CONFIG.get().ok_or("enrich: not initialised")?;
            let value = config.enrich(&record.value, sluice_plugin_sdk::lookup::get)?;
            Ok(vec![Record { value, ..record }])
        }
    }

    sluice_plugin_sdk::transform_plugin!(Enrich);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_found_goes_in_and_a_missing_row_passes_or_is_refused() {
        let c = Config::parse(r#"{"table": "regions", "field": "nat", "into": "region"}"#).unwrap();
        let table = |t: &str, k: &[u8]| (t == "regions" && k == b"FR").then(|| b"europe".to_vec());
        let out: serde_json::Value =
            serde_json::from_slice(&c.enrich(br#"{"nat":"FR"}"#, table).unwrap()).unwrap();
        assert_eq!(out, serde_json::json!({"nat": "FR", "region": "europe"}));
        let out: serde_json::Value =
            serde_json::from_slice(&c.enrich(br#"{"nat":"NZ"}"#, table).unwrap()).unwrap();
        assert_eq!(out, serde_json::json!({"nat": "NZ"}));
        let rows = |_: &str, _: &[u8]| Some(br#"{"region":"x","n":1}"#.to_vec());
        let out: serde_json::Value =
            serde_json::from_slice(&c.enrich(br#"{"nat":"FR"}"#, rows).unwrap()).unwrap();
        assert_eq!(out["region"]["n"], 1, "a JSON row goes in as JSON");
        let strict = Config::parse(
            r#"{"table": "regions", "field": "nat", "into": "region", "required": true}"#,
        )
        .unwrap();
        assert!(strict
            .enrich(br#"{"nat":"NZ"}"#, table)
            .unwrap_err()
            .contains("no row for `nat` = \"NZ\""));
        assert!(c.enrich(b"[1]", table).is_err());
        // The spliced and the parsed ways agree, whatever the record's shape.
        for record in [
            r#"{"nat":"FR","a":{"b":[1,"}"]}}"#,
            r#"{ "a" : 1 , "nat" : "FR" }  "#,
            r#"{}"#,
            r#"{"nat":"NZ"}"#,
            r#"{"nat":"FR","region":"was here"}"#,
            r#"{"nat":7}"#,
            r#"{"nat":null}"#,
        ] {
            assert!(
                c.enrich(br#"{"nat":"FR",}"#, table).is_err(),
                "broken stays broken"
            );
            for lookup in [&table as &dyn Fn(&str, &[u8]) -> Option<Vec<u8>>, &rows] {
                let a: serde_json::Value =
                    serde_json::from_slice(&c.enrich(record.as_bytes(), lookup).unwrap()).unwrap();
                let b: serde_json::Value =
                    serde_json::from_slice(&c.parsed(record.as_bytes(), &lookup).unwrap()).unwrap();
                assert_eq!(a, b, "{record}");
            }
        }
        assert!(Config::parse(r#"{"table": "regions"}"#).is_err());
    }
}
