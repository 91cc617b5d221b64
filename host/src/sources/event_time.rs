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
        /// Its search built once: the scan runs for every record.
        field: crate::json::TopLevelKey,
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
                    field: spec.field.as_str().into(),
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
        self.of_or_else(value, || default)
    }

    /// [`EventTime::of`] with a default worked out only when it is used: a source
    /// whose default is the clock reads it only for `"message"` (once a record, the
    /// read was 1% of the seeds' job's CPU).
    pub fn of_or_else(&self, value: &[u8], default: impl FnOnce() -> i64) -> Result<i64, String> {
        let EventTime::Field { field, format } = self else {
            return Ok(default());
        };
        let found = find_field(value, field).map_err(|e| {
            format!("event_time: the record is not JSON ({e}), so it has no field `{field}`")
        })?;
        let found =
            found.ok_or_else(|| format!("event_time: the record has no field `{field}`"))?;
        let parsed = match (format, &found) {
            (TimeFormat::Rfc3339, Found::Str(s)) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp_millis())
                .ok(),
            (TimeFormat::EpochMs, Found::Int(n)) => Some(*n),
            (TimeFormat::EpochMs, Found::Str(s)) => s.parse().ok(),
            _ => None,
        };
        parsed.ok_or_else(|| {
            format!("event_time: field `{field}` = {found} is not a {format:?} time")
        })
    }
}

/// A top-level field's value, as far as event times care.
enum Found<'a> {
    Str(std::borrow::Cow<'a, str>),
    Int(i64),
    /// Anything else, as JSON.
    Other(String),
}

impl fmt::Display for Found<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Str(s) => write!(f, "{}", serde_json::Value::String(s.to_string())),
            Found::Int(n) => write!(f, "{n}"),
            Found::Other(json) => f.write_str(json),
        }
    }
}

/// The integer `value` starts with, when it is the usual epoch time stamp: up to 18
/// digits (so it fits an `i64`), no leading zero, not followed by what would make it
/// a float. Anything else (a sign, whitespace first, a fraction): `None`, and
/// serde_json reads it (what this saves: a deserializer set up for every record).
fn plain_integer(value: &[u8]) -> Option<i64> {
    let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
    let next = value.get(digits);
    let plain = (1..=18).contains(&digits)
        && (value[0] != b'0' || digits == 1)
        && !matches!(next, Some(b'.' | b'e' | b'E'));
    plain.then(|| {
        value[..digits]
            .iter()
            .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'))
    })
}

/// The value of `value`'s top-level field `field` (the last, if it repeats), read in
/// one pass that builds nothing for the other fields: the source does this for every
/// record.
fn find_field<'a>(
    value: &'a [u8],
    field: &crate::json::TopLevelKey,
) -> serde_json::Result<Option<Found<'a>>> {
    struct Top<'f>(&'f str);
    impl<'de> de::DeserializeSeed<'de> for Top<'_> {
        type Value = Option<Found<'de>>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for Top<'_> {
        type Value = Option<Found<'de>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == self.0 {
                    found = Some(map.next_value::<FoundValue<'de>>()?.0);
                } else {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    struct FoundValue<'a>(Found<'a>);
    impl<'de> Deserialize<'de> for FoundValue<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Found<'de>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Found<'de>, E> {
                    Ok(Found::Str(std::borrow::Cow::Borrowed(s)))
                }
                fn visit_str<E: de::Error>(self, s: &str) -> Result<Found<'de>, E> {
                    Ok(Found::Str(std::borrow::Cow::Owned(s.to_owned())))
                }
                fn visit_i64<E: de::Error>(self, n: i64) -> Result<Found<'de>, E> {
                    Ok(Found::Int(n))
                }
                fn visit_u64<E: de::Error>(self, n: u64) -> Result<Found<'de>, E> {
                    // `map_or_else`: `map_or`'s default is built whether used or not,
                    // and formatting every time stamp was 0.5% of the seeds' job.
                    Ok(i64::try_from(n).map_or_else(|_| Found::Other(n.to_string()), Found::Int))
                }
                fn visit_f64<E: de::Error>(self, n: f64) -> Result<Found<'de>, E> {
                    Ok(Found::Other(serde_json::Value::from(n).to_string()))
                }
                fn visit_bool<E: de::Error>(self, b: bool) -> Result<Found<'de>, E> {
                    Ok(Found::Other(b.to_string()))
                }
                fn visit_unit<E: de::Error>(self) -> Result<Found<'de>, E> {
                    Ok(Found::Other("null".into()))
                }
                fn visit_seq<A: de::SeqAccess<'de>>(self, s: A) -> Result<Found<'de>, A::Error> {
                    let v =
                        serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(s))?;
                    Ok(Found::Other(v.to_string()))
                }
                fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Found<'de>, A::Error> {
                    let v =
                        serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(m))?;
                    Ok(Found::Other(v.to_string()))
                }
            }
            Ok(FoundValue(d.deserialize_any(V)?))
        }
    }
    // The common case, found by a scan for the key that skips the rest without
    // parsing it, and stops at the key when nothing after it can be a second copy.
    // Anything the scan is unsure of is parsed in full.
    if let Some(Some(at)) = field.find(value) {
        if let Some(n) = plain_integer(&value[at..]) {
            return Ok(Some(Found::Int(n)));
        }
        let mut d = serde_json::Deserializer::from_slice(&value[at..]);
        if let Ok(found) = FoundValue::deserialize(&mut d) {
            return Ok(Some(found.0));
        }
    }
    let mut d = serde_json::Deserializer::from_slice(value);
    let found = de::DeserializeSeed::deserialize(Top(field), &mut d)?;
    d.end()?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_integer_is_read_as_serde_json_reads_it() {
        for text in [
            "1767225600000,",
            "1767225600000}",
            "1767225600000 ",
            "1767225600000",
            "0,",
            "0",
            "7}",
            "123456789012345678,",
            "1234567890123456789,",
            "01,",
            "00",
            "1.5,",
            "1e3,",
            "1E3",
            "-5,",
            " 5,",
            "\"5\",",
            "5x",
            "",
        ] {
            let mut d = serde_json::Deserializer::from_slice(text.as_bytes());
            let serde = <i64 as serde::Deserialize>::deserialize(&mut d).ok();
            // Whatever it reads is what serde_json reads; the rest goes to serde_json.
            if let Some(n) = plain_integer(text.as_bytes()) {
                assert_eq!(Some(n), serde, "{text:?}");
            }
        }
        assert_eq!(plain_integer(b"1767225600000,"), Some(1_767_225_600_000));
        assert_eq!(plain_integer(b"01,"), None);
        assert_eq!(plain_integer(b"1.5,"), None);
        assert_eq!(plain_integer(b"0}"), Some(0));
    }

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
        assert_eq!(
            t.e.of(
                br#"{"a": {"d": 5}, "d": "1970-01-01T00:00:02Z", "z": [1]}"#,
                0
            ),
            Ok(2000),
            "the top-level field, among others"
        );
        let not_time = t.e.of(br#"{"d": [1, 2]}"#, 0).unwrap_err();
        assert!(
            not_time.contains("`d` = [1,2] is not a Rfc3339 time"),
            "{not_time}"
        );
        assert!(t.e.of(b"{\"d\": 1", 0).unwrap_err().contains("not JSON"));
        assert!(t.e.of(b"[1]", 0).unwrap_err().contains("not JSON"));
        // Strings with braces and escaped quotes are skipped whole; an escaped key
        // is found by the full parse.
        let tricky = br#"{"x": "}\"{", "d2": {"d": 1}, "d": "1970-01-01T00:00:03Z"}"#;
        assert_eq!(t.e.of(tricky, 0), Ok(3000));
        let escaped = br#"{"\u0064": "1970-01-01T00:00:04Z"}"#;
        assert_eq!(t.e.of(escaped, 0), Ok(4000));
    }

    #[test]
    fn a_repeated_field_is_read_as_a_full_parse_keeps_it_whether_or_not_the_scan_stops_early() {
        let t: T = toml::from_str("e = { field = \"at\", format = \"epoch_ms\" }").unwrap();
        // Once: the scan stops at it.
        assert_eq!(t.e.of(br#"{"at": 5, "x": {"y": [1, "z"]}}"#, 0), Ok(5));
        // Again later, plainly or escaped: the last one, as serde_json keeps it.
        assert_eq!(t.e.of(br#"{"at": 5, "x": 1, "at": 6}"#, 0), Ok(6));
        assert_eq!(t.e.of(br#"{"at": 5, "x": 1, "\u0061t": 7}"#, 0), Ok(7));
        // The name inside a later value only sends it the long way: still the first.
        assert_eq!(t.e.of(br#"{"at": 5, "x": "at"}"#, 0), Ok(5));
        // Cut short: read in full, and refused as not JSON.
        assert!(t
            .e
            .of(br#"{"at": 5, "x": "#, 0)
            .unwrap_err()
            .contains("not JSON"));
    }
}
