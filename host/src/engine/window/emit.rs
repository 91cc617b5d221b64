//! A closing window's result: the plugin's `finish` over the partitions' shares merged
//! (or over each share, for partial results), and a dead letter carrying the state
//! when that fails, so the counts can still be recovered.

use super::{label, OpenWindow, Share, WindowStage};
use crate::dead_letter::DeadLetter;
use crate::plugin::bindings::types::{Accumulator, WindowBounds};
use crate::position::PartitionId;
use crate::record::{record, Batch, Header, Position, PARTITION_HEADER};
use base64::Engine as _;

impl WindowStage {
    /// `finish` a window (each share, for partials; else the shares merged) into `out`.
    pub(super) fn emit(
        &mut self,
        start: i64,
        window: &OpenWindow,
        out: &mut Batch,
        dead: &mut Vec<DeadLetter>,
    ) {
        let bounds = WindowBounds {
            start_ms: start,
            end_ms: start.saturating_add(self.size_ms()),
        };
        if self.partials {
            for (&p, share) in window {
                let label = self
                    .partitions
                    .origin(p)
                    .map_or_else(|| p.0.to_string(), |o| label(&o));
                let at = Position::new(p, share.last);
                match self.plugin.finish(&share.acc, bounds) {
                    Ok(Ok(records)) => {
                        for mut r in records {
                            r.headers.push(Header {
                                name: PARTITION_HEADER.into(),
                                value: label.clone().into_bytes(),
                            });
                            out.push(r, at);
                        }
                    }
                    Ok(Err(message)) => dead.push(self.unfinished(p, share, bounds, message)),
                    Err(failure) => {
                        dead.push(self.unfinished(p, share, bounds, failure.to_string()))
                    }
                }
            }
            return;
        }
        let last = window
            .iter()
            .map(|(&p, s)| Position::new(p, s.last))
            .max()
            .unwrap_or_default();
        let acc = match self.merged(window) {
            Ok(acc) => acc,
            Err(reason) => {
                for (&p, share) in window {
                    let why = format!("merging the window's partitions: {reason}");
                    dead.push(self.unfinished(p, share, bounds, why));
                }
                return;
            }
        };
        let failed = match self.plugin.finish(&acc, bounds) {
            Ok(Ok(records)) => {
                records.into_iter().for_each(|r| out.push(r, last));
                return;
            }
            Ok(Err(message)) => message,
            Err(failure) => failure.to_string(),
        };
        // The merged state, under the newest position, so the counts can be recovered
        // from the dead letter.
        let merged = Share {
            acc,
            first: 0,
            last: last.offset,
        };
        dead.push(self.unfinished(last.partition, &merged, bounds, failed));
    }

    /// The window's shares merged into one accumulator.
    pub(super) fn merged(&mut self, window: &OpenWindow) -> Result<Accumulator, String> {
        let mut shares = window.values();
        let mut acc = shares.next().expect("a window has a share").acc.clone();
        for share in shares {
            acc = match self.plugin.merge(&acc, &share.acc) {
                Ok(Ok(merged)) => merged,
                Ok(Err(message)) => return Err(message),
                Err(failure) => return Err(failure.to_string()),
            };
        }
        Ok(acc)
    }

    /// A window whose `finish` failed, as a dead letter carrying its state, so the
    /// counts can still be recovered.
    pub(super) fn unfinished(
        &self,
        partition: PartitionId,
        share: &Share,
        bounds: WindowBounds,
        reason: String,
    ) -> DeadLetter {
        let value = serde_json::json!({
            "window_start_ms": bounds.start_ms,
            "window_end_ms": bounds.end_ms,
            "accumulator_version": share.acc.version,
            "accumulator_base64": base64::engine::general_purpose::STANDARD.encode(&share.acc.data),
        });
        let rec = record(value.to_string(), bounds.start_ms);
        let position = Position::new(partition, share.last);
        self.dead(rec, position, format!("finishing the window: {reason}"))
    }
}
