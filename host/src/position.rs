//! Where records come from, and how the engine tells a source which of them are safe.
//! A leaf: imports nothing of the crate.
//!
//! A source numbers its records itself: a [`Position`] is a partition of the source (a
//! Kafka topic-partition, a file, or the one sequence of a generator) and an offset in
//! it. The engine keeps records of a partition in order, and after each checkpoint
//! sends the source an [`Ack`]: per partition, the highest offset up to which every
//! record has been handled and everything it led to is durable. The source then
//! commits (Kafka), saves (file) or ignores (generator) it.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::RwLock;

/// A partition of the source, numbered by the [`Partitions`] registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PartitionId(pub u32);

/// A record's place in its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Position {
    pub partition: PartitionId,
    pub offset: u64,
}

impl Position {
    pub fn new(partition: PartitionId, offset: u64) -> Self {
        Position { partition, offset }
    }
}

/// What a partition is, in the source's own terms (saved in window snapshots).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Records numbered from 0 by a source that cannot replay (generator, http).
    Sequence { source: String },
    /// A Kafka topic-partition; offsets are Kafka offsets.
    Kafka { topic: String, partition: i32 },
    /// A file; offsets are the byte offsets where lines start.
    File { path: PathBuf },
    /// A database table (`schema.table`); offsets are its read-order column's values.
    Table { table: String },
}

impl Origin {
    /// A short name for metric labels and status pages: `users_created[3]`, the
    /// file's path, or the source's type.
    pub fn label(&self) -> String {
        match self {
            Origin::Sequence { source } => source.clone(),
            Origin::Kafka { topic, partition } => format!("{topic}[{partition}]"),
            Origin::File { path } => path.display().to_string(),
            Origin::Table { table } => table.clone(),
        }
    }

    /// A position in this partition as JSON, for dead letters and logs:
    /// `{"topic": "t", "partition": 3, "offset": 17}`, `{"file": "a.jsonl", "offset":
    /// 1024}` or `{"source": "generator", "sequence": 5}`.
    pub fn describe(&self, offset: u64) -> Value {
        match self {
            Origin::Sequence { source } => json!({ "source": source, "sequence": offset }),
            Origin::Kafka { topic, partition } => {
                json!({ "topic": topic, "partition": partition, "offset": offset })
            }
            Origin::File { path } => {
                json!({ "file": path.display().to_string(), "offset": offset })
            }
            Origin::Table { table } => json!({ "table": table, "position": offset }),
        }
    }
}

/// The partitions a source has met, numbered in the order they were registered.
/// Shared by the source (which registers them) and the engine (which names them in
/// dead letters); a partition keeps its number for the life of the process, so a
/// Kafka partition that is revoked and assigned again is the same partition.
#[derive(Debug, Default)]
pub struct Partitions {
    origins: RwLock<Vec<Origin>>,
}

impl Partitions {
    /// The id of `origin`, registering it on first sight.
    pub fn register(&self, origin: Origin) -> PartitionId {
        if let Some(i) = self.read().iter().position(|o| *o == origin) {
            return PartitionId(i as u32);
        }
        let mut origins = self.origins.write().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = origins.iter().position(|o| *o == origin) {
            return PartitionId(i as u32);
        }
        origins.push(origin);
        PartitionId((origins.len() - 1) as u32)
    }

    /// What partition `id` is (window snapshots name partitions by it).
    pub fn origin(&self, id: PartitionId) -> Option<Origin> {
        self.read().get(id.0 as usize).cloned()
    }

    /// A position as JSON (see [`Origin::describe`]).
    pub fn describe(&self, position: Position) -> Value {
        match self.read().get(position.partition.0 as usize) {
            Some(origin) => origin.describe(position.offset),
            None => json!({ "partition": position.partition.0, "offset": position.offset }),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Origin>> {
        self.origins.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sent by the engine to the source after a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ack {
    /// The barrier this checkpoint answers, when the source asked for one.
    pub barrier: Option<u64>,
    /// Per partition: every record at or before this offset has been handled, and
    /// what it led to is durable in every sink and the dead letters. A partition whose
    /// first records are still held in an open window is left out.
    pub durable: BTreeMap<PartitionId, u64>,
}

/// Bounded: see the processor's checkpoint for what happens when it is full.
pub type AckSender = std::sync::mpsc::SyncSender<Ack>;
pub type AckReceiver = std::sync::mpsc::Receiver<Ack>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_keep_their_numbers_and_name_positions() {
        let p = Partitions::default();
        let a = p.register(Origin::Kafka {
            topic: "t".into(),
            partition: 0,
        });
        let b = p.register(Origin::Kafka {
            topic: "t".into(),
            partition: 1,
        });
        let again = p.register(Origin::Kafka {
            topic: "t".into(),
            partition: 0,
        });
        assert_eq!(
            (a, b, again),
            (PartitionId(0), PartitionId(1), PartitionId(0))
        );
        assert_eq!(
            p.describe(Position::new(b, 17)),
            json!({"topic": "t", "partition": 1, "offset": 17})
        );
    }
}
