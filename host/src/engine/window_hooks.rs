//! The processor's hooks for the window stage that no batch brings: partitions
//! assigned and revoked (their saved shares follow them), windows closed by idleness,
//! running results, and every window closed at the end of the input.

use super::processor::{ProcessError, Processor};
use super::window::WindowStage;
use crate::dead_letter::DeadLetter;
use crate::position::PartitionId;
use crate::record::Batch;
use crate::sinks::Input;
use crate::window_state::StateError;
use tokio::runtime::Handle;

impl Processor {
    /// With window state that moves with the partitions: drop the shares of the
    /// partitions gone (their last checkpoint saved them for the next owner) and take
    /// up the saved shares of the partitions that arrived.
    pub(super) fn follow_assignment(&mut self, now: &[PartitionId]) -> Result<(), ProcessError> {
        let Some(store) = &self.snapshots else {
            return Ok(());
        };
        if !store.follows_assignment() || (self.window.is_none() && self.keyed.is_none()) {
            return Ok(());
        }
        let now: std::collections::BTreeSet<PartitionId> = now.iter().copied().collect();
        for &gone in self.owned.difference(&now) {
            if let Some(w) = &mut self.window {
                w.forget(gone);
            }
            if let Some(k) = &mut self.keyed {
                k.forget(gone);
            }
        }
        let partitions = &self.dead_letter.partitions;
        let arrived: Vec<(PartitionId, crate::position::Origin)> = now
            .difference(&self.owned)
            .filter_map(|&p| Some((p, partitions.origin(p)?)))
            .collect();
        self.owned = now;
        let wanted: Vec<crate::position::Origin> = arrived.iter().map(|(_, o)| o.clone()).collect();
        let states = store.load(&wanted)?;
        let (mut shares, mut keys) = (0, 0);
        for state in states {
            let Some((id, _)) = arrived.iter().find(|(_, o)| *o == state.origin) else {
                continue;
            };
            shares += state.windows.len();
            keys += state.keys.len();
            if let Some(k) = &mut self.keyed {
                k.restore(*id, &state);
            }
            if let Some(w) = &mut self.window {
                w.restore(*id, state).map_err(StateError::Unreadable)?;
            }
            self.metrics.add_restores(1);
        }
        if !arrived.is_empty() {
            tracing::info!(
                "state of {} assigned partition(s) taken up from {}: {shares} open window share(s), {keys} key(s)",
                arrived.len(),
                store.describe()
            );
        }
        Ok(())
    }

    /// Emit the windows the watermark has passed without a new batch (partitions
    /// gone idle).
    pub(super) fn emit_closed(&mut self, rt: &Handle) -> Result<(), ProcessError> {
        if !self
            .window
            .as_ref()
            .is_some_and(WindowStage::has_idle_timeout)
        {
            return Ok(());
        }
        self.emit_windows(|w, dead| w.close(false, dead), rt)
    }

    /// Running results of the open windows.
    pub(super) fn emit_early(&mut self, rt: &Handle) -> Result<(), ProcessError> {
        self.emit_windows(WindowStage::early, rt)
    }

    /// Close and emit every open window.
    pub(super) fn close_windows(&mut self, rt: &Handle) -> Result<(), ProcessError> {
        self.emit_windows(|w, dead| w.close(true, dead), rt)
    }

    /// What `emit` gives of the window stage (if there is one) to the window sinks,
    /// and its dead letters to theirs.
    pub(super) fn emit_windows(
        &mut self,
        emit: impl FnOnce(&mut WindowStage, &mut Vec<DeadLetter>) -> Batch,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        let Some(window) = self.window.as_mut() else {
            return Ok(());
        };
        let mut dead = Vec::new();
        let results = emit(window, &mut dead);
        self.publish_stage_counts();
        self.send(Input::Windows, results, rt)?;
        self.send_dead(dead, rt)
    }
}
