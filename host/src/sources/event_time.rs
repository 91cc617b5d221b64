//! `event_time`: where a replayable source finds a record's event time, which is what
//! windows group by.
//!
//! - `event_time = "message"` (default): the Kafka message timestamp; for a file, the
//!   time the line is read.
//! - `event_time = { field = "registered_date", format = "rfc3339" }` (or `"epoch_ms"`):
//!   a top-level field of the record's JSON value. A record without it, or with a
//!   value that does not parse, goes to the dead letters naming the field.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Default)]
pub enum EventTime {
    #[default]
    Message,
    Field {
        field: String,
        format: TimeFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// `"2026-01-01T00:00:00Z"`, with any offset.
    Rfc3339,
    /// Milliseconds since the epoch, as a number or a string of digits.
    EpochMs,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldSpec {
    field: String,
    format: TimeFormat,
}

impl<'de> Deserialize<'de> for EventTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EventTime;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "\"message\" or a table like { field = \"registered_date\", format = \"rfc3339\" }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EventTime, E> {
                match v {
                    "message" => Ok(EventTime::Message),
                    other => Err(E::custom(format!(
                        "unknown event_time {other:?}: write \"message\" or {{ field = \"...\", format = \"rfc3339\" | \"epoch_ms\" }}"
                    ))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EventTime, A::Error> {
                let spec = FieldSpec::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(EventTime::Field {
                    field: spec.field,
                    format: spec.format,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl EventTime {
    /// The event time of `value` (ms since the epoch), or why there is none. `default`
    /// is used for `"message"`.
    pub fn of(&self, value: &[u8], default: i64) -> Result<i64, String> {
        let EventTime::Field { field, format } = self else {
            return Ok(default);
        };
        let json: serde_json::Value = serde_json::from_slice(value).map_err(|e| {
            format!("event_time: the record is not JSON ({e}), so it has no field `{field}`")
        })?;
        let found = json
            .get(field)
            .ok_or_else(|| format!("event_time: the record has no field `{field}`"))?;
        let parsed = match (format, found) {
            (TimeFormat::Rfc3339, serde_json::Value::String(s)) => {
                chrono::DateTime::parse_from_rfc3339(s)
                    .map(|t| t.timestamp_millis())
                    .ok()
            }
            (TimeFormat::EpochMs, serde_json::Value::Number(n)) => n.as_i64(),
            (TimeFormat::EpochMs, serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        parsed.ok_or_else(|| {
            format!("event_time: field `{field}` = {found} is not a {format:?} time")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        e: EventTime,
    }

    #[test]
    fn keyword_or_field() {
        let t: T = toml::from_str("e = \"message\"").unwrap();
        assert_eq!(t.e, EventTime::Message);
        let t: T = toml::from_str("e = { field = \"at\", format = \"epoch_ms\" }").unwrap();
        assert_eq!(t.e.of(br#"{"at": 1234}"#, 0), Ok(1234));
        assert!(t
            .e
            .of(br#"{"other": 1}"#, 0)
            .unwrap_err()
            .contains("no field `at`"));
        assert!(toml::from_str::<T>("e = \"wallclock\"").is_err());
        assert!(
            toml::from_str::<T>("e = { field = \"at\", format = \"epoch_ms\", x = 1 }").is_err()
        );
        let t: T = toml::from_str("e = { field = \"d\", format = \"rfc3339\" }").unwrap();
        assert_eq!(t.e.of(br#"{"d": "1970-01-01T00:00:01Z"}"#, 0), Ok(1000));
    }
}
