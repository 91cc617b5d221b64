//! The unit of data: a record as the WIT contract defines it, plus host-only metadata.
//! A leaf: imports nothing of the crate above the generated WIT types.

pub use crate::plugin::bindings::types::{Header, Record};
pub use crate::position::{PartitionId, Position};

/// A batch of records on its way through the engine.
///
/// `positions[i]` is where `records[i]` came from in its source. Records produced by a
/// transform inherit the position of the record they came from, so a dead letter
/// always names the input it belongs to, and the engine can tell which source
/// positions are fully handled when a batch's sinks have acknowledged it.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub records: Vec<Record>,
    pub positions: Vec<Position>,
    /// When its first record was taken from the source (end-to-end latency).
    pub read_at: Option<std::time::Instant>,
}

impl Batch {
    pub fn with_capacity(n: usize) -> Self {
        Batch {
            records: Vec::with_capacity(n),
            positions: Vec::with_capacity(n),
            read_at: None,
        }
    }

    pub fn push(&mut self, record: Record, position: Position) {
        self.records.push(record);
        self.positions.push(position);
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// The header naming a partial result's source partition (`users_created-3`).
pub const PARTITION_HEADER: &str = "sluice.partition";

/// Marks a record whose value was null, not empty (a Kafka tombstone): a record's
/// value is bytes, so the difference rides in this header. A dead letter writes such
/// a value as `null` (and replays it as null), and a Kafka sink sends a tombstone.
pub const NULL_VALUE_HEADER: &str = "sluice.null-value";

/// Names the route a transform sends a record down (`[[sinks]] route = "..."` takes
/// it): a header, so that every plugin built against the WIT can set it (no new
/// interface), and so a record keeps it through later transforms. Sinks never write
/// it, and sources drop one that arrives from outside.
pub const ROUTE_HEADER: &str = "sluice.route";

/// The route a record names, if any (not UTF-8: the bytes, lossily).
pub fn route_of(record: &Record) -> Option<std::borrow::Cow<'_, str>> {
    record
        .headers
        .iter()
        .rev()
        .find(|h| h.name == ROUTE_HEADER)
        .map(|h| String::from_utf8_lossy(&h.value))
}

/// Whether the record's value was null (see [`NULL_VALUE_HEADER`]).
pub fn is_null_value(record: &Record) -> bool {
    record.value.is_empty() && record.headers.iter().any(|h| h.name == NULL_VALUE_HEADER)
}

/// A record with no key and no headers.
pub fn record(value: impl Into<Vec<u8>>, timestamp_ms: i64) -> Record {
    Record {
        key: None,
        value: value.into(),
        timestamp_ms,
        headers: Vec::new(),
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A record key taken from a field of its JSON value (`field`: a top-level name, or a
/// JSON pointer starting with `/`): a string's text, any other value's JSON; `None`
/// when the field is missing or null.
pub fn key_from_json(value: &serde_json::Value, field: &str) -> Option<Vec<u8>> {
    let found = if field.starts_with('/') {
        value.pointer(field)
    } else {
        value.get(field)
    };
    match found? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.as_bytes().to_vec()),
        other => Some(other.to_string().into_bytes()),
    }
}

/// As [`key_from_json`], read straight from the JSON text, skipping every value not on
/// the way to the field instead of building the whole document (a user object is
/// ~1 KB; its id is a few bytes). An error: the text is not JSON.
pub fn key_from_json_text(value: &[u8], field: &str) -> Result<Option<Vec<u8>>, serde_json::Error> {
    let path: Vec<String> = match field.strip_prefix('/') {
        Some(pointer) => pointer
            .split('/')
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect(),
        None => vec![field.to_owned()],
    };
    let mut de = serde_json::Deserializer::from_slice(value);
    let pointer = field.starts_with('/');
    let key = serde::de::DeserializeSeed::deserialize(pick::Pick(&path, pointer), &mut de)?;
    de.end()?;
    Ok(key)
}

mod pick {
    use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    /// The value at the end of a path (its segments still to go), and whether it is
    /// a JSON pointer (only a pointer indexes arrays).
    pub struct Pick<'a>(pub &'a [String], pub bool);

    impl<'de> DeserializeSeed<'de> for Pick<'_> {
        type Value = Option<Vec<u8>>;

        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            if self.0.is_empty() {
                let leaf: serde_json::Value = serde::Deserialize::deserialize(d)?;
                return Ok(match leaf {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(s.into_bytes()),
                    other => Some(other.to_string().into_bytes()),
                });
            }
            d.deserialize_any(Walk(self.0, self.1))
        }
    }

    struct Walk<'a>(&'a [String], bool);

    /// Whether a map key is the one sought, without copying it.
    struct KeyIs<'a>(&'a str);

    impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
        type Value = bool;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<'de> Visitor<'de> for KeyIs<'_> {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a key")
        }
        fn visit_str<E>(self, v: &str) -> Result<bool, E> {
            Ok(v == self.0)
        }
    }

    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = Option<Vec<u8>>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("JSON")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let (first, rest) = self.0.split_first().expect("a segment to go");
            let mut found = None;
            while let Some(is) = map.next_key_seed(KeyIs(first))? {
                if is {
                    // The last of a repeated key, as a full parse keeps it.
                    found = map.next_value_seed(Pick(rest, self.1))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let (first, rest) = self.0.split_first().expect("a segment to go");
            // As a JSON pointer reads an index: digits, no sign, no leading zero.
            let digits = !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit());
            let plain = first == "0" || !first.starts_with('0');
            let index: Option<usize> = (self.1 && digits && plain)
                .then(|| first.parse().ok())
                .flatten();
            let (mut i, mut found) = (0, None);
            loop {
                if Some(i) == index {
                    match seq.next_element_seed(Pick(rest, self.1))? {
                        Some(v) => found = v,
                        None => break,
                    }
                } else if seq.next_element::<IgnoredAny>()?.is_none() {
                    break;
                }
                i += 1;
            }
            Ok(found)
        }

        // A scalar where the path goes on: nothing there.
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod key_tests {
    use super::*;

    #[test]
    fn a_key_read_from_the_text_is_the_key_read_from_the_document() {
        let docs = [
            r#"{"id":"a","login":{"uuid":"u-1","n":[1,{"x":true}]},"id":"b"}"#,
            r#"{"nat":"FR","n":7,"f":1.5,"o":{"a/b":{"c~d":null}},"arr":[10,20,{"k":"v"}]}"#,
            r#"{"weird\"key":1,"e\u0073c":"escaped name"}"#,
            r#"[1,2,3]"#,
            r#""text""#,
        ];
        let fields = [
            "id",
            "/login/uuid",
            "/login/n/1/x",
            "/login/n/5",
            "nat",
            "n",
            "f",
            "/o/a~1b/c~0d",
            "/arr/2/k",
            "/arr/1",
            "missing",
            "/login/uuid/deeper",
            "esc",
            "/1",
        ];
        for doc in docs {
            let value: serde_json::Value = serde_json::from_str(doc).unwrap();
            for field in fields {
                assert_eq!(
                    key_from_json_text(doc.as_bytes(), field).unwrap(),
                    key_from_json(&value, field),
                    "{field} in {doc}"
                );
            }
        }
        assert!(key_from_json_text(b"{\"id\":", "id").is_err());
        assert!(key_from_json_text(b"{} x", "id").is_err());
    }
}
