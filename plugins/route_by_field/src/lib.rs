//! `route_by_field`: sends each record down a route chosen by the value of one of its
//! top-level fields, through its config:
//!
//! ```toml
//! [[transforms]]
//! plugin = "../plugins/dist/route_by_field.wasm"
//! config = { field = "nat", routes = { US = "americas", BR = "americas", FR = "europe" }, otherwise = "elsewhere" }
//! ```
//!
//! A record whose field is a string (or number) in `routes` goes down that route; any
//! other goes down `otherwise`, or, without it, names no route (the sinks without a
//! `route` take it). A record that is not a JSON object is refused (a dead letter).
//! The record itself is passed on unchanged.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub field: String,
    #[serde(default)]
    pub routes: BTreeMap<String, String>,
    pub otherwise: Option<String>,
}

impl Config {
    pub fn parse(json: &str) -> Result<Config, String> {
        let c: Config = serde_json::from_str(json).map_err(|e| {
            format!("route_by_field: config {e} (expected {{ field = \"nat\", routes = {{ US = \"us\" }}, otherwise = \"rest\" }})")
        })?;
        if c.field.is_empty() {
            return Err("route_by_field: config `field` must name a field".into());
        }
        Ok(c)
    }

    /// The route for a record's JSON value, or why it has none.
    pub fn route(&self, value: &[u8]) -> Result<Option<&str>, String> {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(value)
            .map_err(|e| format!("route_by_field: the record is not a JSON object ({e})"))?;
        let found = match object.get(&self.field) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Ok(found
            .and_then(|v| self.routes.get(&v))
            .or(self.otherwise.as_ref())
            .map(String::as_str))
    }
}

#[cfg(target_arch = "wasm32")]
mod component {
    use super::Config;
    use sluice_plugin_sdk::{set_route, Record, RecordTransform};
    use std::sync::OnceLock;

    static CONFIG: OnceLock<Config> = OnceLock::new();

    struct RouteByField;

    impl RecordTransform for RouteByField {
        fn init(config: &str) -> Result<(), String> {
            let parsed = Config::parse(config)?;
            let _ = CONFIG.set(parsed);
            Ok(())
        }

        fn transform(mut record: Record) -> Result<Vec<Record>, String> {
            let config = CONFIG.get().ok_or("route_by_field: not initialised")?;
            if let Some(route) = config.route(&record.value)? {
                set_route(&mut record, route);
            }
            Ok(vec![record])
        }
    }

    sluice_plugin_sdk::transform_plugin!(RouteByField);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_picks_the_route_or_otherwise() {
        let c = Config::parse(r#"{"field": "nat", "routes": {"US": "americas", "FR": "europe"}, "otherwise": "rest"}"#).unwrap();
        assert_eq!(c.route(br#"{"nat": "FR"}"#).unwrap(), Some("europe"));
        assert_eq!(c.route(br#"{"nat": "NZ"}"#).unwrap(), Some("rest"));
        assert_eq!(c.route(br#"{"name": "x"}"#).unwrap(), Some("rest"));
        assert!(c.route(b"[1]").is_err());
        let plain = Config::parse(r#"{"field": "nat", "routes": {"US": "americas"}}"#).unwrap();
        assert_eq!(plain.route(br#"{"nat": "NZ"}"#).unwrap(), None);
        assert!(Config::parse(r#"{"field": ""}"#).is_err());
        assert!(Config::parse(r#"{"field": "x", "route": {}}"#).is_err());
    }
}
