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
