//! The unit of data: a record as the WIT contract defines it, plus host-only metadata.

pub use crate::plugin::bindings::types::{Header, Record};

/// A batch of records on its way through the engine.
///
/// `offsets[i]` is the source position of `records[i]` (a sequence number for the
/// generator and HTTP sources, a partition offset for Kafka later). Records produced
/// by a transform inherit the offset of the record they came from, so a dead letter
/// always names the input it belongs to, and the engine can tell which source
/// positions are fully handled when a batch's sinks have acknowledged it.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub records: Vec<Record>,
    pub offsets: Vec<u64>,
}

impl Batch {
    pub fn with_capacity(n: usize) -> Self {
        Batch {
            records: Vec::with_capacity(n),
            offsets: Vec::with_capacity(n),
        }
    }

    pub fn push(&mut self, record: Record, offset: u64) {
        self.records.push(record);
        self.offsets.push(offset);
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
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
