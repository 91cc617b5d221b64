//! The processor thread: runs plugins (synchronous wasmtime calls) over each batch,
//! routes the results to the sinks, and between batches takes checkpoints, answers
//! barriers and acts on control messages.
//!
//! A checkpoint asks every sink and the dead-letter output to make what it has
//! durable, waits for all of them, and then acknowledges to the source, per
//! partition, the newest offset it has handled, except where an open window still
//! holds older records of that partition: those must be read again after a crash, so
//! the acknowledgement stops just before the oldest of them.

use super::batcher::Demand;
use super::batcher::Work;
use super::dead_run::DeadRun;
use super::snapshot::{self, Snapshot, StateBackend};
use super::swap::{Canary, Held, NewPlugin, Probation, SwapReport, SwapRequest, WATCH_AT_MOST};
use super::window::{Added, WindowStage};
use super::workers::{Done, Job, Pool, StageRun};
use super::Metrics;
use crate::dead_letter::{DeadLetter, Encoding};
use crate::metrics::{DeadNote, StageInfo, StageMetrics, SwapEvent};
use crate::position::{Ack, AckSender, PartitionId, Partitions, Position};
use crate::record::Batch;
use crate::sinks::{Input, SinkError};
use crate::transforms::TransformStage;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

/// What the processor sends a sink task.
pub enum SinkMessage {
    /// Records with their source positions (a refused record's dead letter names it).
    Write(Arc<Batch>),
    /// Make everything written so far durable, then answer.
    Checkpoint(oneshot::Sender<Result<(), SinkError>>),
}

/// A sink's queue and the stream it takes.
pub struct Route {
    pub input: Input,
    pub name: String,
    pub tx: mpsc::Sender<SinkMessage>,
}

/// The dead-letter output's queue, for the processor and for sinks that refuse
/// records: each dead letter is encoded in the output's format and queued.
#[derive(Clone)]
pub struct DeadLetterQueue {
    pub name: String,
    pub tx: mpsc::Sender<SinkMessage>,
    pub encoding: Encoding,
    /// Names partitions in dead letters.
    pub partitions: Arc<Partitions>,
    pub metrics: Arc<Metrics>,
}

impl DeadLetterQueue {
    /// Queue `dead`, waiting while the output's queue is full.
    pub async fn send(&self, dead: Vec<DeadLetter>) -> Result<(), ProcessError> {
        if dead.is_empty() {
            return Ok(());
        }
        // Counted by stage and class of reason; the newest of each kind noted for
        // `/status`.
        let mut kinds: Vec<(&'static str, &'static str, u64, &DeadLetter)> = Vec::new();
        for d in &dead {
            let class = d.reason_class();
            match kinds.iter_mut().find(|k| k.0 == d.stage && k.1 == class) {
                Some(k) => {
                    k.2 += 1;
                    k.3 = d;
                }
                None => kinds.push((d.stage, class, 1, d)),
            }
        }
        for (stage, class, n, newest) in kinds {
            let note = DeadNote {
                time_ms: newest.time_ms,
                stage: stage.to_owned(),
                plugin: newest.plugin.clone(),
                position: self.partitions.describe(newest.position),
                reason: newest.reason.clone(),
            };
            self.metrics.add_dead(stage, class, n, Some(note));
        }
        let mut batch = Batch::with_capacity(dead.len());
        for d in dead {
            tracing::debug!(stage = d.stage, plugin = %d.plugin, position = %self.partitions.describe(d.position), "dead letter: {}", d.reason);
            let position = d.position;
            batch.push(d.encode(self.encoding, &self.partitions), position);
        }
        self.tx
            .send(SinkMessage::Write(Arc::new(batch)))
            .await
            .map_err(|_| ProcessError::SinkGone(self.name.clone()))
    }
}

/// Asked of a running pipeline; acted on between batches.
pub enum Control {
    /// Take a checkpoint now; answered once every sink is durable and the source told.
    Checkpoint(oneshot::Sender<()>),
    /// Run a new version of a plugin from the next batch on.
    Swap(Box<SwapRequest>),
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The sink task has ended (its own error is reported from its task).
    #[error("{0} stopped taking records")]
    SinkGone(String),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("the processor panicked: {0}")]
    Panicked(String),
    #[error("{0}")]
    Snapshot(String),
    /// Too many dead letters in a row ([`super::dead_run`]).
    #[error("{0}")]
    DeadLetterRun(String),
}

pub struct Processor {
    pub transforms: Vec<TransformStage>,
    pub window: Option<WindowStage>,
    /// Each transform's series, in the same order, and the window's.
    pub stage_metrics: Vec<StageMetrics>,
    pub window_metrics: Option<StageMetrics>,
    /// Each transform's swap settings, in the same order.
    pub swap_configs: Vec<crate::config::SwapConfig>,
    /// A swapped-in transform whose results are held back until it has proven itself.
    pub probation: Option<Probation>,
    /// A new version running beside the old before it is swapped in.
    pub canary: Option<Canary>,
    /// Failed calls of plugin versions swapped out (the total only grows).
    pub retired_failures: u64,
    pub sinks: Vec<Route>,
    pub dead_letter: DeadLetterQueue,
    /// Stops the pipeline after too many dead letters in a row.
    pub dead_run: DeadRun,
    pub metrics: Arc<Metrics>,
    pub checkpoint_interval: Duration,
    /// Running results of open windows this often.
    pub emit_every: Option<Duration>,
    /// Where the window state is saved at each checkpoint (a source that resumes):
    /// then acknowledgements no longer wait for windows to close.
    pub snapshots: Option<Box<dyn StateBackend>>,
    /// The partitions the source owns, as last told (for a store whose state follows
    /// the assignment).
    pub owned: std::collections::BTreeSet<PartitionId>,
    /// Back to the source, after each checkpoint.
    pub acks: AckSender,
    /// Whether to close and emit open windows when the input ends. Not for a source
    /// that resumes after a stop: its open windows are rebuilt from the records it
    /// reads again, rather than emitted half-full.
    pub close_windows_at_end: bool,
    /// Worker threads that run the transforms and add window records up, batches
    /// side by side (none: this thread runs them). Not used while a new version is
    /// watched (canary, probation): that runs here, one batch at a time.
    pub pool: Option<Pool>,
    /// The failed calls each worker's plugins reported last: every transform's, the
    /// window's.
    pub worker_failures: Vec<(Vec<u64>, u64)>,
    /// Tells the batcher when this thread (or a worker) waits for work, so a partial
    /// batch goes at once instead of after its linger.
    pub demand: Arc<Demand>,
}

enum Event {
    Control(Option<Control>),
    Work(Option<Work>),
    /// A worker's result came back (an error: a worker panicked).
    Result(Option<Result<(), String>>),
    Tick,
}

/// The next result from the pool (never, without one).
async fn receive(pool: &mut Option<Pool>) -> Option<Result<(), String>> {
    match pool {
        Some(pool) => pool.receive().await,
        None => std::future::pending().await,
    }
}

impl Processor {
    pub fn run(
        mut self,
        mut input: mpsc::Receiver<Work>,
        mut control: mpsc::Receiver<Control>,
        rt: Handle,
    ) -> Result<(), ProcessError> {
        // Per partition, the newest offset handled; records of a partition arrive in
        // order, so every one before it is handled too.
        let mut progress: BTreeMap<PartitionId, u64> = BTreeMap::new();
        let mut last_checkpoint = Instant::now();
        let mut last_early = Instant::now();
        let mut control_open = true;
        loop {
            // What the workers finished, in order, goes on first.
            self.take_ready(&mut progress, &rt)?;
            let parallel = self.parallel();
            let pool = self.pool.as_ref();
            let take_work = !parallel || pool.is_some_and(Pool::has_room);
            let out = pool.map_or(0, Pool::out);
            let idle = !parallel || pool.is_some_and(Pool::has_idle_worker);
            self.demand.set_idle(take_work && idle);
            let mut wait = self
                .checkpoint_interval
                .saturating_sub(last_checkpoint.elapsed());
            if let Some(every) = self.emit_every {
                wait = wait.min(every.saturating_sub(last_early.elapsed()));
            }
            let pool = &mut self.pool;
            let event = rt.block_on(async {
                tokio::select! {
                    biased;
                    c = control.recv(), if control_open => Event::Control(c),
                    r = receive(pool), if out > 0 => Event::Result(r),
                    w = input.recv(), if take_work => Event::Work(w),
                    _ = tokio::time::sleep(wait) => Event::Tick,
                }
            });
            self.demand.set_idle(false);
            match event {
                Event::Result(Some(Err(panic))) => return Err(ProcessError::Panicked(panic)),
                Event::Result(_) => {}
                Event::Control(Some(Control::Checkpoint(done))) => {
                    self.drain(&mut progress, &rt)?;
                    self.checkpoint(&progress, None, &rt)?;
                    last_checkpoint = Instant::now();
                    let _ = done.send(());
                }
                Event::Control(Some(Control::Swap(request))) => {
                    self.drain(&mut progress, &rt)?;
                    self.swap(*request, &progress)
                }
                Event::Control(None) => control_open = false,
                Event::Work(Some(work))
                    if parallel && work.barrier.is_none() && work.assignment.is_none() =>
                {
                    self.dispatch(work)?;
                }
                Event::Work(Some(mut work)) => {
                    // A barrier or a rebalance sees every batch before it finished.
                    self.drain(&mut progress, &rt)?;
                    let barrier = work.barrier;
                    let assignment = work.assignment.take();
                    if self.probation.is_some() && barrier.is_none() && assignment.is_none() {
                        self.hold(work, &mut progress, &rt)?;
                    } else {
                        // A barrier or a rebalance cannot wait: what is held goes on
                        // now (or is re-processed), the probation goes on after.
                        self.end_probation(&mut progress, &rt, false)?;
                        handled(&mut progress, &work);
                        self.process(work, &rt)?;
                    }
                    if self.canary.as_ref().is_some_and(|c| c.seen >= c.target) {
                        self.finish_canary(&progress);
                    }
                    if let Some(partitions) = assignment {
                        // Partitions gone are no longer this host's to acknowledge.
                        progress.retain(|p, _| partitions.contains(p));
                        self.follow_assignment(&partitions)?;
                        if let Some(w) = &mut self.window {
                            w.set_assignment(partitions);
                        }
                    }
                    if let Some((id, end_of_input)) = barrier {
                        if end_of_input {
                            self.close_windows(&rt)?;
                        }
                        self.checkpoint(&progress, Some(id), &rt)?;
                        last_checkpoint = Instant::now();
                    }
                }
                Event::Work(None) => {
                    self.drain(&mut progress, &rt)?;
                    self.end_probation(&mut progress, &rt, true)?;
                    if let Some(c) = self.canary.take() {
                        let _ = c.reply.send(Err(format!(
                            "the input ended after {} of the canary's {} records; nothing swapped",
                            c.seen, c.target
                        )));
                    }
                    break;
                }
                // With no records coming, windows still close when their partitions
                // go idle.
                // (Not while records are held back: their partitions are not idle.)
                Event::Tick if self.probation.is_none() => self.emit_closed(&rt)?,
                Event::Tick => {}
            }
            // A probation or canary that cannot finish (its stage sees too few
            // records) ends at its deadline.
            if self
                .probation
                .as_ref()
                .is_some_and(|p| p.started.elapsed() >= WATCH_AT_MOST)
            {
                self.end_probation(&mut progress, &rt, true)?;
            }
            if self
                .canary
                .as_ref()
                .is_some_and(|c| c.started.elapsed() >= WATCH_AT_MOST)
            {
                if let Some(c) = self.canary.take() {
                    let _ = c.reply.send(Err(format!(
                        "the canary saw {} of its {} records in {WATCH_AT_MOST:?}; nothing swapped",
                        c.seen, c.target
                    )));
                }
            }
            if self.probation.is_none()
                && self
                    .emit_every
                    .is_some_and(|every| last_early.elapsed() >= every)
            {
                self.emit_early(&rt)?;
                last_early = Instant::now();
            }
            if last_checkpoint.elapsed() >= self.checkpoint_interval {
                self.checkpoint(&progress, None, &rt)?;
                last_checkpoint = Instant::now();
            }
        }
        // End of input (source finished, or shutdown): close every open window so
        // nothing accepted is left unreported (unless the source will read those
        // records again), then make it all durable.
        if self.close_windows_at_end {
            self.close_windows(&rt)?;
        } else if let Some(w) = self.window.as_ref().filter(|w| w.open_windows() > 0) {
            tracing::info!(
                "{} open window(s) not emitted: they are saved with the window state and taken up again on restart",
                w.open_windows()
            );
        }
        self.checkpoint(&progress, None, &rt)
    }

    /// The stages keep their own totals (failed plugin calls, windows closed); copy
    /// them into the shared metrics.
    fn publish_stage_counts(&self) {
        // This thread's instances, and each worker's.
        let failures = |i: usize| {
            let on_workers: u64 = self
                .worker_failures
                .iter()
                .map(|w| w.0.get(i).copied().unwrap_or(0))
                .sum();
            self.transforms[i].plugin_failures() + on_workers
        };
        let transforms: u64 = (0..self.transforms.len()).map(failures).sum();
        for (i, (stage, m)) in self.transforms.iter().zip(&self.stage_metrics).enumerate() {
            m.set_totals(failures(i), stage.log_dropped());
        }
        let window = self.window.as_ref();
        let window_failures = window.map_or(0, WindowStage::plugin_failures)
            + self.worker_failures.iter().map(|w| w.1).sum::<u64>();
        self.metrics
            .set_plugin_failures(transforms + window_failures + self.retired_failures);
        if let (Some(w), Some(m)) = (window, &self.window_metrics) {
            m.set_totals(window_failures, w.log_dropped());
            self.metrics.set_open_windows(w.open_windows());
            // Labelled per partition: only worth building when someone can read it.
            if self.metrics.detailed() {
                self.metrics
                    .set_watermarks(w.watermarks(&self.dead_letter.partitions));
            }
        }
        self.metrics
            .set_windows_closed(window.map_or(0, WindowStage::windows_closed));
        self.metrics
            .set_late_dropped(window.map_or(0, WindowStage::late_dropped));
    }

    fn process(&mut self, work: Work, rt: &Handle) -> Result<(), ProcessError> {
        let result = self.process_batch(work.batch, work.dead, rt);
        self.publish_stage_counts();
        result
    }

    fn process_batch(
        &mut self,
        mut batch: Batch,
        mut dead: Vec<DeadLetter>,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        self.metrics.add_batch(batch.len());
        (batch, dead) = self.run_transforms(batch, dead, 0..self.transforms.len());
        self.downstream(batch, dead, rt)
    }

    /// Whether batches go to the workers now.
    fn parallel(&self) -> bool {
        self.pool.is_some() && self.probation.is_none() && self.canary.is_none()
    }

    /// Hand a batch to the workers; its results are taken up in order
    /// ([`Self::take_ready`]).
    fn dispatch(&mut self, work: Work) -> Result<(), ProcessError> {
        let Work { batch, dead, .. } = work;
        self.metrics.add_batch(batch.len());
        let mut covers = BTreeMap::new();
        note_handled(&mut covers, &batch, &dead);
        let job = Job {
            batch,
            dead,
            covers,
            window: self.window.as_ref().map(WindowStage::windowing),
            timed: self.metrics.detailed(),
        };
        let pool = self.pool.as_mut().expect("dispatched only with a pool");
        pool.submit(job).map_err(ProcessError::Panicked)
    }

    /// Take up the results that are back, in order.
    fn take_ready(
        &mut self,
        progress: &mut BTreeMap<PartitionId, u64>,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        while let Some(done) = self.pool.as_mut().and_then(Pool::next_ready) {
            self.finish(done, progress, rt)?;
        }
        Ok(())
    }

    /// Wait for every batch out, and take its results up.
    fn drain(
        &mut self,
        progress: &mut BTreeMap<PartitionId, u64>,
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
    fn finish(
        &mut self,
        done: Done,
        progress: &mut BTreeMap<PartitionId, u64>,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        for (&p, &offset) in &done.covers {
            let at = progress.entry(p).or_insert(offset);
            *at = (*at).max(offset);
        }
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
    fn replicate_transform(&mut self, stage: usize) {
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
    fn replicate_window(&mut self) {
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

    fn give_up_pool(&mut self) {
        self.pool = None;
        for (transforms, window) in std::mem::take(&mut self.worker_failures) {
            self.retired_failures += transforms.iter().sum::<u64>() + window;
        }
    }

    /// The batch through every transform; a canary sees a copy of its stage's input,
    /// and a probation counts its stage's failures.
    fn run_transforms(
        &mut self,
        mut batch: Batch,
        mut dead: Vec<DeadLetter>,
        stages: std::ops::Range<usize>,
    ) -> (Batch, Vec<DeadLetter>) {
        for i in stages {
            if batch.is_empty() {
                break;
            }
            let (taken, refused) = (batch.len(), dead.len());
            let copy = self
                .canary
                .as_ref()
                .filter(|c| c.stage == i)
                .map(|_| batch.clone());
            let m = &self.stage_metrics[i];
            let started = self.metrics.clock();
            batch = self.transforms[i].apply(batch, &mut dead);
            if let Some(t) = started {
                self.metrics.observe_stage(m, t.elapsed());
            }
            let failed = dead.len() - refused;
            m.batch(taken, batch.len(), failed);
            if let Some(p) = self.probation.as_mut().filter(|p| p.stage == i) {
                p.seen += taken as u64;
                p.errors += failed as u64;
            }
            if let (Some(c), Some(copy)) = (self.canary.as_mut(), copy) {
                let mut discarded = Vec::new();
                drop(c.plugin.apply(copy, &mut discarded));
                c.seen += taken as u64;
                c.old_errors += failed as u64;
                c.new_errors += discarded.len() as u64;
            }
        }
        (batch, dead)
    }

    /// Transformed records on to the window and the sinks.
    fn downstream(
        &mut self,
        batch: Batch,
        dead: Vec<DeadLetter>,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        self.downstream_added(batch, dead, None, rt)
    }

    /// As [`Self::downstream`], the window's partials already added up (by a worker,
    /// which took `run` to).
    fn downstream_added(
        &mut self,
        batch: Batch,
        mut dead: Vec<DeadLetter>,
        added: Option<(Added, Option<StageRun>)>,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        let windows = match &mut self.window {
            Some(w) if !batch.is_empty() => {
                let (taken, refused) = (batch.len(), dead.len());
                let started = self.metrics.clock();
                let (results, on_worker) = match added {
                    Some((partials, run)) => {
                        let took = run.and_then(|r| r.took);
                        (w.take(&batch, partials, &mut dead), took)
                    }
                    None => (w.push(&batch, &mut dead), None),
                };
                if let (Some(m), Some(t)) = (&self.window_metrics, started) {
                    self.metrics
                        .observe_stage(m, t.elapsed() + on_worker.unwrap_or_default());
                }
                if let Some(m) = &self.window_metrics {
                    m.batch(taken, results.len(), dead.len() - refused);
                }
                Some(results)
            }
            _ => None,
        };
        // Records of this batch got through: its dead letters end no run, whatever
        // their order among them.
        let passed = !batch.is_empty();
        self.send(Input::Records, batch, rt)?;
        if let Some(results) = windows {
            self.send(Input::Windows, results, rt)?;
        }
        if passed {
            self.dead_run.passed();
            return self.write_dead(dead, rt);
        }
        self.send_dead(dead, rt)
    }

    /// Per partition, the first position not yet processed.
    fn switch_points(&self, progress: &BTreeMap<PartitionId, u64>) -> BTreeMap<String, u64> {
        self.label_positions(progress.iter().map(|(&p, &o)| (p, o + 1)))
    }

    fn label_positions(
        &self,
        positions: impl Iterator<Item = (PartitionId, u64)>,
    ) -> BTreeMap<String, u64> {
        let partitions = &self.dead_letter.partitions;
        positions
            .map(|(p, o)| {
                let label = partitions
                    .origin(p)
                    .map_or_else(|| p.0.to_string(), |o| o.label());
                (label, o)
            })
            .collect()
    }

    fn event(&self, report: &SwapReport, outcome: &str, detail: String) {
        self.metrics.swap_event(SwapEvent {
            time_ms: crate::record::now_ms(),
            stage: report.stage.clone(),
            plugin: report.plugin.clone(),
            from: report.from.clone(),
            to: report.to.clone(),
            outcome: outcome.into(),
            switch: report.switch.clone(),
            detail,
        });
    }

    /// A swap asked for: done now (between batches), or after a canary; refused with
    /// the reason if it cannot be done, the old version running on.
    fn swap(&mut self, request: SwapRequest, progress: &BTreeMap<PartitionId, u64>) {
        let started = Instant::now();
        let SwapRequest {
            stage,
            plugin,
            canary,
            reply,
        } = request;
        let refuse = |reply: oneshot::Sender<Result<SwapReport, String>>, why: String| {
            tracing::warn!("swap of `{stage}` refused: {why}");
            let _ = reply.send(Err(why));
        };
        if self.probation.is_some() || self.canary.is_some() {
            return refuse(
                reply,
                "the last swap's new version is still being watched (canary or probation); try again shortly".into(),
            );
        }
        match plugin {
            NewPlugin::Transform(new) => {
                let Some(i) = self
                    .transforms
                    .iter()
                    .position(|t| t.plugin().name() == stage)
                else {
                    let names: Vec<&str> =
                        self.transforms.iter().map(|t| t.plugin().name()).collect();
                    return refuse(
                        reply,
                        format!(
                            "no transform named `{stage}` here (transforms: {})",
                            names.join(", ")
                        ),
                    );
                };
                match canary {
                    Some(n) if n > 0 => {
                        tracing::info!("canary for transform `{stage}`: the new version runs beside the old on the next {n} records");
                        self.canary = Some(Canary {
                            started: Instant::now(),
                            stage: i,
                            // Judged by the stage's schema too: output that breaks
                            // it counts as the new version's failures.
                            plugin: TransformStage::new(new)
                                .with_schema(self.transforms[i].schema()),
                            target: n,
                            seen: 0,
                            old_errors: 0,
                            new_errors: 0,
                            reply,
                        });
                    }
                    _ => {
                        let report = self.install(i, new, started, progress, None);
                        let _ = reply.send(Ok(report));
                    }
                }
            }
            NewPlugin::Window(new) => {
                let Some(window) = self.window.as_mut().filter(|w| w.plugin().name() == stage)
                else {
                    return refuse(reply, format!("no window named `{stage}` here"));
                };
                let to = version_info("window", &new);
                let from = window.plugin().version().0.to_owned();
                match window.replace_plugin(new) {
                    Err(why) => refuse(reply, why),
                    Ok(old) => {
                        self.retired_failures += old.failures();
                        let version = to.version.clone();
                        self.window_metrics = Some(self.metrics.replace_stage(to));
                        let report = SwapReport {
                            stage: "window".into(),
                            plugin: stage.clone(),
                            from,
                            to: version,
                            switch: self.switch_points(progress),
                            pause_us: started.elapsed().as_micros() as u64,
                            probation_records: 0,
                            canary: None,
                        };
                        tracing::info!(
                            "window `{stage}` swapped: {} -> {} at {:?} (open windows handed over; {} µs)",
                            report.from, report.to, report.switch, report.pause_us
                        );
                        self.event(&report, "swapped", String::new());
                        self.replicate_window();
                        let _ = reply.send(Ok(report));
                    }
                }
            }
        }
    }

    /// Put a transform's new version in place; it goes on probation if its stage has
    /// one.
    fn install(
        &mut self,
        i: usize,
        new: crate::plugin::TransformPlugin,
        started: Instant,
        progress: &BTreeMap<PartitionId, u64>,
        canary: Option<super::swap::CanaryReport>,
    ) -> SwapReport {
        let info = version_info("transform", &new);
        let to = info.version.clone();
        let old = self.transforms[i].replace_plugin(new);
        self.retired_failures += old.failures();
        let new_metrics = self.metrics.replace_stage(info);
        let old_metrics = std::mem::replace(&mut self.stage_metrics[i], new_metrics);
        let config = self.swap_configs[i];
        let report = SwapReport {
            stage: "transform".into(),
            plugin: old.name().to_owned(),
            from: old.version().0.to_owned(),
            to,
            switch: self.switch_points(progress),
            pause_us: started.elapsed().as_micros() as u64,
            probation_records: config.rollback_window,
            canary,
        };
        tracing::info!(
            "transform `{}` swapped: {} -> {} at {:?} ({} µs){}",
            report.plugin,
            report.from,
            report.to,
            report.switch,
            report.pause_us,
            if config.rollback_window > 0 {
                format!("; on probation for {} records", config.rollback_window)
            } else {
                String::new()
            }
        );
        self.event(&report, "swapped", String::new());
        if config.rollback_window > 0 {
            self.probation = Some(Probation {
                started: Instant::now(),
                stage: i,
                old,
                old_metrics,
                window: config.rollback_window,
                max_rate: config.rollback_error_rate,
                seen: 0,
                errors: 0,
                held: Vec::new(),
                report: report.clone(),
            });
        } else {
            self.replicate_transform(i);
        }
        report
    }

    /// The canary has seen its records: swap, or refuse if the new version failed
    /// more of them than the old.
    fn finish_canary(&mut self, progress: &BTreeMap<PartitionId, u64>) {
        let Some(canary) = self.canary.take() else {
            return;
        };
        let report = canary.report();
        if canary.new_errors > canary.old_errors {
            let why = format!(
                "canary: the new version failed {} of {} records, the running one {}; not swapped",
                canary.new_errors, canary.seen, canary.old_errors
            );
            tracing::warn!("{why}");
            let (name, from) = {
                let p = self.transforms[canary.stage].plugin();
                (p.name().to_owned(), p.version().0.to_owned())
            };
            let to = canary.plugin.plugin().version().0.to_owned();
            self.metrics.swap_event(SwapEvent {
                time_ms: crate::record::now_ms(),
                stage: "transform".into(),
                plugin: name,
                from,
                to,
                outcome: "refused".into(),
                switch: BTreeMap::new(),
                detail: why.clone(),
            });
            let _ = canary.reply.send(Err(why));
            return;
        }
        let started = Instant::now();
        let report = self.install(
            canary.stage,
            canary.plugin.into_plugin(),
            started,
            progress,
            Some(report),
        );
        let _ = canary.reply.send(Ok(report));
    }

    /// A batch while a new version is on probation: through the transforms, then
    /// held back; once the probation's records are seen, it ends.
    fn hold(
        &mut self,
        work: Work,
        progress: &mut BTreeMap<PartitionId, u64>,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        let Some(stage) = self.probation.as_ref().map(|p| p.stage) else {
            return Ok(());
        };
        self.metrics.add_batch(work.batch.len());
        let positions: Vec<Position> = work
            .batch
            .positions
            .iter()
            .chain(work.dead.iter().map(|d| &d.position))
            .copied()
            .collect();
        // The stages before the new version run once; its input is kept for a
        // rollback, its output for the stages after it, run when it is released.
        let (input, input_dead) = self.run_transforms(work.batch, work.dead, 0..stage);
        let (output, output_dead) =
            self.run_transforms(input.clone(), input_dead.clone(), stage..stage + 1);
        self.publish_stage_counts();
        let Some(p) = self.probation.as_mut() else {
            return Ok(());
        };
        p.held.push(Held {
            positions,
            input,
            input_dead,
            output,
            output_dead,
        });
        if p.seen >= p.window {
            self.end_probation(progress, rt, true)?;
        }
        Ok(())
    }

    /// Keep the new version (its held results go on), or, if too many of its records
    /// failed, put the old one back and run the held records through it instead. With
    /// `finished` false (a barrier or a rebalance is waiting) and too few records seen
    /// to judge, the held results go on and the probation goes on after.
    fn end_probation(
        &mut self,
        progress: &mut BTreeMap<PartitionId, u64>,
        rt: &Handle,
        finished: bool,
    ) -> Result<(), ProcessError> {
        let Some(mut p) = self.probation.take() else {
            return Ok(());
        };
        let stage = p.stage;
        let after = stage + 1..self.transforms.len();
        let rate = p.error_rate();
        if rate > p.max_rate {
            let back = self.label_positions(p.first_held().into_iter());
            let detail = format!(
                "{} of {} records failed on the new version ({:.0}%, more than {:.0}%); rolled back to {} at {:?}, and they were processed again on it",
                p.errors,
                p.seen,
                rate * 100.0,
                p.max_rate * 100.0,
                p.report.from,
                back
            );
            tracing::warn!("transform `{}` {}", p.report.plugin, detail);
            let rolled = SwapReport {
                from: p.report.to.clone(),
                to: p.report.from.clone(),
                switch: back,
                ..p.report.clone()
            };
            let info = version_info("transform", &p.old);
            // Counted as retired when it was swapped out; live again now.
            self.retired_failures = self.retired_failures.saturating_sub(p.old.failures());
            let gone = self.transforms[stage].replace_plugin(p.old);
            self.retired_failures += gone.failures();
            self.metrics.replace_stage(info);
            self.stage_metrics[stage] = p.old_metrics;
            self.event(&rolled, "rolled_back", detail);
            for h in p.held {
                note_positions(progress, &h.positions);
                let (batch, dead) =
                    self.run_transforms(h.input, h.input_dead, stage..self.transforms.len());
                self.downstream(batch, dead, rt)?;
            }
        } else {
            let judged = finished || p.seen >= p.window;
            for h in std::mem::take(&mut p.held) {
                note_positions(progress, &h.positions);
                let (batch, dead) = self.run_transforms(h.output, h.output_dead, after.clone());
                self.downstream(batch, dead, rt)?;
            }
            if judged {
                tracing::info!(
                    "transform `{}` version {} kept: {} of {} records failed on probation",
                    p.report.plugin,
                    p.report.to,
                    p.errors,
                    p.seen
                );
                self.event(
                    &p.report,
                    "kept",
                    format!("{} of {} records failed", p.errors, p.seen),
                );
                drop(p);
                self.replicate_transform(stage);
            } else {
                self.probation = Some(p);
            }
        }
        self.publish_stage_counts();
        Ok(())
    }

    /// With window state that moves with the partitions: drop the shares of the
    /// partitions gone (their last checkpoint saved them for the next owner) and take
    /// up the saved shares of the partitions that arrived.
    fn follow_assignment(&mut self, now: &[PartitionId]) -> Result<(), ProcessError> {
        let (Some(window), Some(store)) = (&mut self.window, &self.snapshots) else {
            return Ok(());
        };
        if !store.follows_assignment() {
            return Ok(());
        }
        let now: std::collections::BTreeSet<PartitionId> = now.iter().copied().collect();
        for &gone in self.owned.difference(&now) {
            window.forget(gone);
        }
        let partitions = &self.dead_letter.partitions;
        let arrived: Vec<(PartitionId, crate::position::Origin)> = now
            .difference(&self.owned)
            .filter_map(|&p| Some((p, partitions.origin(p)?)))
            .collect();
        self.owned = now;
        let wanted: Vec<crate::position::Origin> = arrived.iter().map(|(_, o)| o.clone()).collect();
        let states = store.load(&wanted).map_err(ProcessError::Snapshot)?;
        let mut shares = 0;
        for state in states {
            let Some((id, _)) = arrived.iter().find(|(_, o)| *o == state.origin) else {
                continue;
            };
            shares += state.windows.len();
            window.restore(*id, state).map_err(ProcessError::Snapshot)?;
            self.metrics.add_restores(1);
        }
        if !arrived.is_empty() {
            tracing::info!(
                "window state of {} assigned partition(s) taken up from {}: {shares} open window share(s)",
                arrived.len(),
                store.describe()
            );
        }
        Ok(())
    }

    /// Emit the windows the watermark has passed without a new batch (partitions
    /// gone idle).
    fn emit_closed(&mut self, rt: &Handle) -> Result<(), ProcessError> {
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
    fn emit_early(&mut self, rt: &Handle) -> Result<(), ProcessError> {
        self.emit_windows(WindowStage::early, rt)
    }

    /// Close and emit every open window.
    fn close_windows(&mut self, rt: &Handle) -> Result<(), ProcessError> {
        self.emit_windows(|w, dead| w.close(true, dead), rt)
    }

    /// What `emit` gives of the window stage (if there is one) to the window sinks,
    /// and its dead letters to theirs.
    fn emit_windows(
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

    /// Hand records to every sink on `input`, waiting while a sink's queue is full.
    fn send(&self, input: Input, batch: Batch, rt: &Handle) -> Result<(), ProcessError> {
        if batch.is_empty() {
            return Ok(());
        }
        let routes: Vec<&Route> = self.sinks.iter().filter(|r| r.input == input).collect();
        if !routes.is_empty() {
            self.metrics.add_out(batch.len() as u64);
        }
        if input == Input::Windows {
            for r in &batch.records {
                self.metrics.window_result(window_result_json(r));
            }
        }
        let batch = Arc::new(batch);
        for route in routes {
            rt.block_on(route.tx.send(SinkMessage::Write(batch.clone())))
                .map_err(|_| ProcessError::SinkGone(route.name.clone()))?;
        }
        Ok(())
    }

    /// Dead letters to the output, counted towards a run of them ([`DeadRun`]).
    fn send_dead(&mut self, dead: Vec<DeadLetter>, rt: &Handle) -> Result<(), ProcessError> {
        let run = self.dead_run.failed(dead.len());
        self.write_dead(dead, rt)?;
        run.map_err(ProcessError::DeadLetterRun)
    }

    fn write_dead(&self, dead: Vec<DeadLetter>, rt: &Handle) -> Result<(), ProcessError> {
        rt.block_on(self.dead_letter.send(dead))
    }

    /// Every sink (dead letters included) makes what it has durable; then the source
    /// hears which positions that covers.
    fn checkpoint(
        &self,
        progress: &BTreeMap<PartitionId, u64>,
        barrier: Option<u64>,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        // The sinks first, all at once: a sink queues the records it refuses as dead
        // letters before it answers, so the dead-letter output's checkpoint, asked
        // after, covers them too.
        let started = Instant::now();
        let sinks = self.sinks.iter().map(|r| (&r.name, &r.tx));
        checkpoint_all(sinks, rt)?;
        let dead_letters = (&self.dead_letter.name, &self.dead_letter.tx);
        checkpoint_all(std::iter::once(dead_letters), rt)?;
        let mut snapshot_bytes = None;
        // With the window state saved, what it holds is safe too; without, the
        // acknowledgement stops before the oldest record an open window holds.
        let held = match (&self.window, &self.snapshots) {
            (Some(w), Some(store)) => {
                let partitions = w.snapshot(progress, &self.dead_letter.partitions);
                let saved = store.save(&Snapshot {
                    format: snapshot::FORMAT,
                    window_size_ms: w.size_ms(),
                    window_slide_ms: Some(w.slide_ms()),
                    plugin: w.plugin_name().to_owned(),
                    partitions,
                });
                snapshot_bytes = Some(saved.map_err(ProcessError::Snapshot)?);
                BTreeMap::new()
            }
            (Some(w), None) => w.held(),
            (None, _) => BTreeMap::new(),
        };
        self.metrics
            .add_checkpoint(started.elapsed(), snapshot_bytes);
        let ack = Ack {
            barrier,
            durable: durable(progress, &held),
        };
        // Acks are cumulative: when a source does not read them (generator, http) the
        // queue fills and a plain one is dropped, since the next says as much. A
        // barrier's is awaited, so it waits for room. A source that is gone (it
        // finished) needs to hear nothing.
        match self.acks.try_send(ack) {
            Err(std::sync::mpsc::TrySendError::Full(ack)) if ack.barrier.is_some() => {
                let _ = self.acks.send(ack);
            }
            _ => {}
        }
        Ok(())
    }
}

/// A plugin's stage entry for metrics and `/status`.
pub(super) fn version_info<P: HasVersion>(stage: &str, plugin: &P) -> StageInfo {
    let (version, file) = plugin.version_and_file();
    StageInfo {
        stage: stage.to_owned(),
        plugin: plugin.plugin_name().to_owned(),
        version: version.to_owned(),
        file: file.display().to_string(),
    }
}

pub(super) trait HasVersion {
    fn version_and_file(&self) -> (&str, &std::path::Path);
    fn plugin_name(&self) -> &str;
}

impl HasVersion for crate::plugin::TransformPlugin {
    fn version_and_file(&self) -> (&str, &std::path::Path) {
        self.version()
    }
    fn plugin_name(&self) -> &str {
        self.name()
    }
}

impl HasVersion for crate::plugin::WindowPlugin {
    fn version_and_file(&self) -> (&str, &std::path::Path) {
        self.version()
    }
    fn plugin_name(&self) -> &str {
        self.name()
    }
}

/// A window result as `/status` shows it: its JSON (or its text), and the partition
/// of a partial result.
fn window_result_json(r: &crate::record::Record) -> serde_json::Value {
    let mut v = serde_json::from_slice(&r.value)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&r.value).into()));
    let partition = r.headers.iter().find(|h| h.name == super::PARTITION_HEADER);
    if let (serde_json::Value::Object(o), Some(h)) = (&mut v, partition) {
        o.insert(
            "_partition".into(),
            String::from_utf8_lossy(&h.value).into_owned().into(),
        );
    }
    v
}

/// Ask each sink to make what it has durable, then wait for every answer.
fn checkpoint_all<'a>(
    sinks: impl Iterator<Item = (&'a String, &'a mpsc::Sender<SinkMessage>)>,
    rt: &Handle,
) -> Result<(), ProcessError> {
    let mut answers = Vec::new();
    for (name, tx) in sinks {
        let (answer, rx) = oneshot::channel();
        rt.block_on(tx.send(SinkMessage::Checkpoint(answer)))
            .map_err(|_| ProcessError::SinkGone(name.clone()))?;
        answers.push((name, rx));
    }
    for (name, rx) in answers {
        rt.block_on(rx)
            .map_err(|_| ProcessError::SinkGone(name.clone()))??;
    }
    Ok(())
}

/// Note the newest position of each partition in `work` as handled.
fn handled(progress: &mut BTreeMap<PartitionId, u64>, work: &Work) {
    note_handled(progress, &work.batch, &work.dead);
}

/// Raise each partition's handled offset to the newest of `positions`.
fn note_positions<'a>(
    progress: &mut BTreeMap<PartitionId, u64>,
    positions: impl IntoIterator<Item = &'a Position>,
) {
    for &Position { partition, offset } in positions {
        let p = progress.entry(partition).or_insert(offset);
        *p = (*p).max(offset);
    }
}

/// A batch's records and its dead letters are handled.
fn note_handled(progress: &mut BTreeMap<PartitionId, u64>, batch: &Batch, dead: &[DeadLetter]) {
    let dead = dead.iter().map(|d| &d.position);
    note_positions(progress, batch.positions.iter().chain(dead));
}

/// What a checkpoint makes safe: per partition, the newest handled offset, but never
/// at or past the oldest one an open window holds.
fn durable(
    progress: &BTreeMap<PartitionId, u64>,
    held: &BTreeMap<PartitionId, u64>,
) -> BTreeMap<PartitionId, u64> {
    progress
        .iter()
        .filter_map(|(&p, &done)| match held.get(&p) {
            None => Some((p, done)),
            Some(&h) => h.checked_sub(1).map(|before| (p, done.min(before))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_hold_back_what_is_durable() {
        let (a, b, c) = (PartitionId(0), PartitionId(1), PartitionId(2));
        let progress = BTreeMap::from([(a, 100), (b, 50), (c, 7)]);
        let held = BTreeMap::from([(a, 40), (c, 0)]);
        assert_eq!(
            durable(&progress, &held),
            BTreeMap::from([(a, 39), (b, 50)]),
            "a stops before its held record, b is free, c has nothing safe yet"
        );
    }
}
