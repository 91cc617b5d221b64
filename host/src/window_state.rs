//! Window state on disk: what the window stage holds (each partition's open
//! accumulators and newest event time) and the source position it covers, written at
//! every checkpoint before the source is acknowledged, so offsets are committed
//! without waiting for windows to close and a restarted host takes its windows up
//! where the snapshot left them.
//!
//! One file per pipeline (`<state_dir>/windows.json`), replaced atomically, so every
//! partition in it is from the same checkpoint: a window's merged result never mixes a
//! partition's newer state with another's older one. The format is versioned
//! ([`FORMAT`]); each accumulator keeps the plugin's own state version, which the
//! plugin is asked to read before any data moves.

use crate::position::Origin;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The snapshot format this build writes and reads.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub format: u32,
    /// The window size it was taken with: a snapshot of another size is refused (0:
    /// the pipeline had no window, only a `[stateful]` stage).
    pub window_size_ms: i64,
    /// And the slide (none: tumbling, the size).
    #[serde(default)]
    pub window_slide_ms: Option<i64>,
    /// The window plugin's name, for messages.
    pub plugin: String,
    pub partitions: Vec<PartitionState>,
}

impl Snapshot {
    /// The slide the windows were cut with.
    pub fn slide_ms(&self) -> i64 {
        self.window_slide_ms.unwrap_or(self.window_size_ms)
    }
}

/// One source partition's share of the window state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionState {
    pub origin: Origin,
    /// Every record of the partition at or before this offset is in `windows` below,
    /// in a window already emitted, or in the dead letters; replayed ones are skipped.
    pub covered: u64,
    /// The newest event time seen in the partition (its share of the watermark).
    pub max_event_ms: Option<i64>,
    /// The end of the newest window emitted for it: records for windows ending at or
    /// before it are late, after a restart or a move too.
    #[serde(default)]
    pub closed_through_ms: Option<i64>,
    pub windows: Vec<SavedWindow>,
    /// The keyed stage's state of the partition (`[stateful]`): each key's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<SavedKey>,
    /// The newest event time the keyed stage took from the partition (its `ttl`
    /// clock; the window's is `max_event_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_newest_ms: Option<i64>,
}

/// One key's state in a partition's share (`[stateful]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedKey {
    #[serde(with = "base64_bytes")]
    pub key: Vec<u8>,
    /// The plugin's own state format version.
    pub version: u32,
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
    /// The newest event time of the records that last changed it (its `ttl` runs
    /// from here).
    pub updated_ms: i64,
}

/// One open window's accumulator for one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedWindow {
    pub start_ms: i64,
    /// The plugin's own state format version.
    pub version: u32,
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
    /// The oldest and newest offsets of the partition added to it.
    pub first_offset: u64,
    pub last_offset: u64,
    /// Already emitted, kept for late updates (`late = "update"`).
    #[serde(default)]
    pub closed: bool,
}

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

/// Where a pipeline's window snapshot lives.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    path: PathBuf,
}

impl SnapshotStore {
    pub fn in_dir(state_dir: &Path) -> Self {
        SnapshotStore {
            path: state_dir.join("windows.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved snapshot, if any; a damaged or newer one is an error naming the file.
    pub fn load(&self) -> Result<Option<Snapshot>, StateError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(StateError::Store(format!(
                    "cannot read {}: {e}",
                    self.path.display()
                )))
            }
        };
        #[derive(Deserialize)]
        struct Version {
            format: u32,
        }
        let version: Version = serde_json::from_slice(&bytes).map_err(|e| {
            StateError::Unreadable(format!(
                "{} is not a window snapshot ({e}); move it away to start the windows afresh",
                self.path.display()
            ))
        })?;
        if version.format != FORMAT {
            return Err(StateError::Unreadable(format!(
                "{} is in snapshot format {}, which this sluice (format {FORMAT}) cannot read",
                self.path.display(),
                version.format
            )));
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StateError::Unreadable(format!("{} is damaged: {e}", self.path.display())))
    }

    /// Replace the snapshot (atomically and durably); returns its size in bytes.
    pub fn save(&self, snapshot: &Snapshot) -> Result<u64, StateError> {
        let bytes = serde_json::to_vec(snapshot).expect("a snapshot always serializes");
        crate::durable::write_atomically(&self.path, &bytes).map_err(|e| {
            StateError::Store(format!(
                "cannot save the window snapshot to {}: {e}",
                self.path.display()
            ))
        })?;
        Ok(bytes.len() as u64)
    }
}

/// Window state that cannot be saved or taken up. The pipeline stops either way; the
/// kind says what a person should do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StateError {
    /// The store cannot be reached, read or written (a file, the brokers): once it
    /// is back, a restart goes on from the last checkpoint.
    #[error("{0}")]
    Store(String),
    /// What is stored cannot be taken up as it is (damaged, a format this build
    /// cannot read, windows of another size): moving it away starts the windows
    /// afresh.
    #[error("{0}")]
    Unreadable(String),
}

/// Where a pipeline's window state goes at each checkpoint, and comes back from: the
/// engine's one seam for state, so that it names no connector. [`SnapshotStore`] (one
/// file in the state folder, one host) is the engine's own; a source's config may
/// build another (the Kafka source: a compacted topic whose shares move with the
/// partitions between hosts, `crate::kafka::changelog`).
pub trait StateBackend: Send {
    /// Save the window state of a checkpoint, durably, before the source is told;
    /// returns its size in bytes. Called on the processor's thread (a blocking-pool
    /// thread inside the runtime), which a backend may block on its async writes.
    fn save(&self, snapshot: &Snapshot) -> Result<u64, StateError>;

    /// Whether partitions' shares leave with revoked partitions and arrive with
    /// assigned ones ([`Self::load`]), rather than all being taken up once at start
    /// ([`Self::load_all`]).
    fn follows_assignment(&self) -> bool;

    /// Everything saved, taken up at start (`None`: nothing, or a backend whose
    /// shares are taken up as partitions are assigned).
    fn load_all(&self) -> Result<Option<Snapshot>, StateError>;

    /// The saved shares of these source partitions, as they are assigned to this host.
    fn load(&self, partitions: &[Origin]) -> Result<Vec<PartitionState>, StateError>;

    /// Where the state is, for messages (`.sluice/p/windows.json`, `topic g-windows`).
    fn describe(&self) -> String;
}

impl StateBackend for SnapshotStore {
    fn save(&self, snapshot: &Snapshot) -> Result<u64, StateError> {
        SnapshotStore::save(self, snapshot)
    }

    fn follows_assignment(&self) -> bool {
        false
    }

    fn load_all(&self) -> Result<Option<Snapshot>, StateError> {
        self.load()
    }

    fn load(&self, _: &[Origin]) -> Result<Vec<PartitionState>, StateError> {
        Ok(Vec::new()) // all of it was taken up at start
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// Bytes for messages: the first few, base64.
pub fn preview(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(&data[..data.len().min(24)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_round_trips_and_a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::in_dir(dir.path());
        assert_eq!(store.load().unwrap(), None);
        let snapshot = Snapshot {
            format: FORMAT,
            window_size_ms: 60_000,
            window_slide_ms: None,
            plugin: "gender_window".into(),
            partitions: vec![PartitionState {
                origin: Origin::Kafka {
                    topic: "users".into(),
                    partition: 3,
                },
                covered: 41,
                max_event_ms: Some(123_456),
                closed_through_ms: Some(60_000),
                windows: vec![SavedWindow {
                    start_ms: 120_000,
                    version: 1,
                    data: vec![0, 1, 2, 255],
                    first_offset: 7,
                    last_offset: 41,
                    closed: false,
                }],
                keys: vec![SavedKey {
                    key: b"user-1".to_vec(),
                    version: 1,
                    data: vec![9, 8],
                    updated_ms: 123_000,
                }],
                keys_newest_ms: Some(124_000),
            }],
        };
        store.save(&snapshot).unwrap();
        assert_eq!(store.load().unwrap(), Some(snapshot.clone()));

        let newer = String::from_utf8(std::fs::read(store.path()).unwrap())
            .unwrap()
            .replace("\"format\":1", "\"format\":2");
        std::fs::write(store.path(), newer).unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(
            err.contains("snapshot format 2, which this sluice (format 1) cannot read"),
            "{err}"
        );
        std::fs::write(store.path(), "{").unwrap();
        assert!(store
            .load()
            .unwrap_err()
            .to_string()
            .contains("is not a window snapshot"));
    }
}
