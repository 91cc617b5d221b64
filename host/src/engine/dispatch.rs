//! The processor's side of the worker pool: batches handed to the workers, their
//! results taken up in source order, and a new plugin version copied to every worker
//! (or the pool given up when one cannot take it).

use super::batcher::Work;
use super::checkpoint::Progress;
use super::processor::{ProcessError, Processor};
use super::window::WindowStage;
use super::workers::{Done, Job, Pool};
use tokio::runtime::Handle;

impl Processor {
    /// Whether batches go to the workers now.
    pub(super) fn parallel(&self) -> bool {
        self.pool.is_some() && self.probation.is_none() && self.canary.is_none()
    }

    /// Hand a batch to the workers; its results are taken up in order
    /// ([`Self::take_ready`]).
    pub(super) fn dispatch(&mut self, work: Work) -> Result<(), ProcessError> {
        let Work { batch, dead, .. } = work;
        self.metrics.add_batch(batch.len());
        let mut covers = Progress::default();
        covers.note_handled(&batch, &dead);
        let job = Job {
            batch,
            dead,
            covers,
            // With a keyed stage, the window adds up what it makes, here.
            window: self
                .window
                .as_ref()
                .filter(|_| self.keyed.is_none())
                .map(WindowStage::windowing),
            timed: self.metrics.detailed(),
        };
        let pool = self.pool.as_mut().expect("dispatched only with a pool");
        pool.submit(job).map_err(ProcessError::Panicked)
    }

    /// Take up the results that are back, in order.
    pub(super) fn take_ready(
        &mut self,
        progress: &mut Progress,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        while let Some(done) = self.pool.as_mut().and_then(Pool::next_ready) {
            self.finish(done, progress, rt)?;
        }
        Ok(())
    }

    /// Wait for every batch out, and take its results up.
    pub(super) fn drain(
        &mut self,
        progress: &mut Progress,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        loop {
            self.take_ready(progress, rt)?;
            let Some(pool) = self.pool.as_mut().filter(|p| p.out() > 0) else {
                return Ok(());
            };
            if let Some(Err(panic)) = rt.block_on(pool.receive()) {
                return Err(ProcessError::Panicked(panic));
            }
        }
    }

    /// A worker's batch, in its turn: what it covers is handled, its stages counted,
    /// and its records on to the window and the sinks.
    pub(super) fn finish(
        &mut self,
        done: Done,
        progress: &mut Progress,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        progress.take(&done.covers);
        for (run, m) in done.stages.iter().zip(&self.stage_metrics) {
            if let Some(took) = run.took {
                self.metrics.observe_stage(m, took);
            }
            m.batch(run.taken, run.out, run.failed);
        }
        if let Some(slot) = self.worker_failures.get_mut(done.worker) {
            *slot = done.failures;
        }
        let window = done.partials.map(|p| (p, done.window_run));
        let result = self.downstream_added(done.batch, done.dead, window, rt);
        self.publish_stage_counts();
        result
    }

    /// Every worker takes up transform `stage`'s running version (after a swap).
    /// If a worker cannot, the pool is given up and this thread runs every batch.
    pub(super) fn replicate_transform(&mut self, stage: usize) {
        let Some(pool) = self.pool.as_mut() else {
            return;
        };
        for w in &mut self.worker_failures {
            if let Some(f) = w.0.get_mut(stage) {
                self.retired_failures += std::mem::take(f);
            }
        }
        if let Err(e) = pool.replace(stage, self.transforms[stage].plugin()) {
            tracing::warn!("the workers cannot run the new version ({e}); batches run one at a time from now on");
            self.give_up_pool();
        }
    }

    /// As [`Self::replicate_transform`], for the window plugin.
    pub(super) fn replicate_window(&mut self) {
        let (Some(pool), Some(window)) = (self.pool.as_mut(), &self.window) else {
            return;
        };
        for w in &mut self.worker_failures {
            self.retired_failures += std::mem::take(&mut w.1);
        }
        if let Err(e) = pool.replace_window(window.plugin()) {
            tracing::warn!("the workers cannot run the new window version ({e}); batches run one at a time from now on");
            self.give_up_pool();
        }
    }

    pub(super) fn give_up_pool(&mut self) {
        self.pool = None;
        for (transforms, window) in std::mem::take(&mut self.worker_failures) {
            self.retired_failures += transforms.iter().sum::<u64>() + window;
        }
    }
}
