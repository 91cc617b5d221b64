//! What makes a file sink exact across a crash: at every checkpoint, after the data
//! is synced, a small record of how long the file was and, per source partition, the
//! newest position written into it, kept in the pipeline's state folder.
//!
//! At the next start the file is cut back to that length (what came after was never
//! acknowledged, so the source sends it again) and, for records, a record the source
//! sends again at or before the recorded position is not written twice: it is in the
//! file already. The source's own commit may lag the checkpoint (Kafka commits after
//! it), which is why the positions are needed as well as the length.
//!
//! Positions are only a test of "already written" for streams whose positions grow
//! within each partition as they are written: records and what transforms make of
//! them. Window results carry their window's newest position, which does not grow
//! from one window to the next, so a window output is only cut back (see the README
//! for what that leaves).

use crate::position::{Origin, PartitionId, Partitions, Position};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const FORMAT: u32 = 1;

/// The record kept beside the pipeline's other state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Saved {
    format: u32,
    /// The file it describes (a file moved or replaced is not cut).
    path: PathBuf,
    device: u64,
    inode: u64,
    /// Bytes synced at the checkpoint.
    length: u64,
    /// Per source partition, the newest offset of a record in those bytes.
    written_through: Vec<(Origin, u64)>,
}

/// A file sink's checkpoints.
pub struct Checkpoints {
    /// Where the record is kept.
    state: PathBuf,
    file: PathBuf,
    identity: (u64, u64),
    partitions: Arc<Partitions>,
    /// Whether records sent again are recognised by their positions.
    skip_replays: bool,
    /// By partition id: the newest offset written (restored ones included).
    through: Vec<Option<u64>>,
    /// By partition id: records at or before this were written before the restart.
    replayed_through: Vec<Option<u64>>,
    /// Records not written again, since the start.
    skipped: u64,
}

/// What opening found.
pub struct Resumed {
    pub checkpoints: Checkpoints,
    /// The length to cut the file back to, if the record is of this file.
    pub cut_to: Option<u64>,
}

impl Checkpoints {
    /// The record of the file sink writing `file` (identified by `identity`: device and
    /// inode), kept in `state_dir`; `skip_replays` for record streams.
    pub fn open(
        state_dir: &Path,
        file: &Path,
        identity: (u64, u64),
        length: u64,
        partitions: Arc<Partitions>,
        skip_replays: bool,
    ) -> Result<Resumed, String> {
        // One record per output file, named by its path's digest.
        let digest = {
            use sha2::{Digest, Sha256};
            let d = Sha256::digest(file.as_os_str().as_encoded_bytes());
            d.iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let state = state_dir.join("file_sinks").join(format!("{digest}.json"));
        let mut me = Checkpoints {
            state,
            file: file.to_owned(),
            identity,
            partitions,
            skip_replays,
            through: Vec::new(),
            replayed_through: Vec::new(),
            skipped: 0,
        };
        let saved = match std::fs::read(&me.state) {
            Ok(bytes) => serde_json::from_slice::<Saved>(&bytes)
                .map_err(|e| format!("{}: {e}", me.state.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Resumed {
                    checkpoints: me,
                    cut_to: None,
                });
            }
            Err(e) => return Err(format!("{}: {e}", me.state.display())),
        };
        if saved.format != FORMAT || saved.path != file {
            return Err(format!(
                "{} is not a checkpoint of {} (format {}, file {}); move it away to start afresh",
                me.state.display(),
                file.display(),
                saved.format,
                saved.path.display()
            ));
        }
        for (origin, offset) in saved.written_through {
            if skip_replays {
                let id = me.partitions.register(origin);
                set(&mut me.through, id, offset);
                set(&mut me.replayed_through, id, offset);
            }
        }
        let same_file = (saved.device, saved.inode) == identity && length >= saved.length;
        if !same_file {
            tracing::warn!(
                "{} was replaced or shortened since its last checkpoint (it had {} bytes then, {length} now): it is not cut back, so records written after that checkpoint may appear twice",
                file.display(),
                saved.length
            );
        }
        Ok(Resumed {
            checkpoints: me,
            cut_to: same_file.then_some(saved.length),
        })
    }

    /// Whether the record at `position` is in the file from before the restart.
    pub fn written_before(&mut self, position: Position) -> bool {
        let before = self
            .replayed_through
            .get(position.partition.0 as usize)
            .copied()
            .flatten()
            .is_some_and(|through| position.offset <= through);
        self.skipped += u64::from(before);
        before
    }

    /// The record at `position` is written.
    pub fn wrote(&mut self, position: Position) {
        if !self.skip_replays {
            return;
        }
        let slot = slot(&mut self.through, position.partition);
        *slot = Some(slot.map_or(position.offset, |o| o.max(position.offset)));
    }

    /// Records sent again and not written, since the start.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Save the file's length at the start as its first checkpoint (the sink does, when
    /// there was no record of this file): a crash or a full disk before the first
    /// real checkpoint then cuts back to it while the source sends everything again,
    /// rather than leaving those records in the file twice.
    pub fn starting(&self, length: u64) -> Result<(), String> {
        let (state, bytes) = self.record(length);
        crate::durable::write_atomically(&state, &bytes)
            .map_err(|e| format!("cannot save {}: {e}", state.display()))
    }

    /// The record of a checkpoint at which the file's first `length` bytes are synced:
    /// where it goes and what it says (written with [`crate::durable::write_atomically`]).
    pub fn record(&self, length: u64) -> (PathBuf, Vec<u8>) {
        let written_through = self
            .through
            .iter()
            .enumerate()
            .filter_map(|(i, o)| {
                let origin = self.partitions.origin(PartitionId(i as u32))?;
                Some((origin, (*o)?))
            })
            .collect();
        let saved = Saved {
            format: FORMAT,
            path: self.file.clone(),
            device: self.identity.0,
            inode: self.identity.1,
            length,
            written_through,
        };
        let bytes = serde_json::to_vec(&saved).expect("plain data serializes");
        (self.state.clone(), bytes)
    }
}

fn slot(v: &mut Vec<Option<u64>>, id: PartitionId) -> &mut Option<u64> {
    let i = id.0 as usize;
    if v.len() <= i {
        v.resize(i + 1, None);
    }
    &mut v[i]
}

fn set(v: &mut Vec<Option<u64>>, id: PartitionId, offset: u64) {
    *slot(v, id) = Some(offset);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka(partition: i32) -> Origin {
        Origin::Kafka {
            topic: "t".into(),
            partition,
        }
    }

    #[test]
    fn a_checkpoint_says_where_to_cut_and_what_not_to_write_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out.jsonl");
        let partitions = Arc::new(Partitions::default());
        let p1 = partitions.register(kafka(1));
        let open = |length, identity| {
            Checkpoints::open(
                dir.path(),
                &file,
                identity,
                length,
                partitions.clone(),
                true,
            )
            .unwrap()
        };
        let mut first = open(120, (1, 2));
        assert_eq!(first.cut_to, None, "nothing saved yet");
        first.checkpoints.starting(120).unwrap();
        let crashed = open(900, (1, 2));
        assert_eq!(
            crashed.cut_to,
            Some(120),
            "a crash before the first checkpoint"
        );
        first.checkpoints.wrote(Position::new(p1, 10));
        first.checkpoints.wrote(Position::new(p1, 7));
        let (state, bytes) = first.checkpoints.record(500);
        crate::durable::write_atomically(&state, &bytes).unwrap();

        // A fresh registry numbers partitions anew: the record names them by origin.
        let fresh = Arc::new(Partitions::default());
        let p0 = fresh.register(kafka(0));
        let mut again =
            Checkpoints::open(dir.path(), &file, (1, 2), 800, fresh.clone(), true).unwrap();
        assert_eq!(again.cut_to, Some(500));
        let p1 = fresh.register(kafka(1));
        let c = &mut again.checkpoints;
        assert!(c.written_before(Position::new(p1, 10)));
        assert!(!c.written_before(Position::new(p1, 11)));
        assert!(!c.written_before(Position::new(p0, 0)), "another partition");
        assert_eq!(c.skipped(), 1);

        let moved = Checkpoints::open(dir.path(), &file, (1, 3), 800, fresh, true).unwrap();
        assert_eq!(
            moved.cut_to, None,
            "another file by that name is left whole"
        );
    }
}
