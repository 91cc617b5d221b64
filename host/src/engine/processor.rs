//! The processor thread: runs plugins (synchronous wasmtime calls) over each batch,
//! routes the results to the sinks, and between batches takes checkpoints, answers
//! barriers and acts on control messages. One loop, one hook per event kind; the
//! concerns with state of their own are in rooms of their own: checkpoints
//! ([`super::checkpoint`]), swaps, canaries and probations ([`super::rollout`]), the
//! window hooks no batch brings ([`super::window_hooks`]), the dead-letter queue
//! ([`super::dead_letter_queue`]).

use super::batcher::Demand;
use super::batcher::Work;
use super::checkpoint::Progress;
pub use super::dead_letter_queue::DeadLetterQueue;
use super::dead_run::DeadRun;
use super::keyed::KeyedStage;
use super::snapshot::{StateBackend, StateError};
pub(super) use super::stage_info::version_info;
use super::swap::{Canary, Probation, SwapRequest};
use super::window::{Added, WindowStage};
use super::workers::{Pool, StageRun};
use super::Metrics;
use crate::dead_letter::DeadLetter;
use crate::metrics::StageMetrics;
use crate::position::{AckSender, PartitionId};
use crate::record::Batch;
use crate::sinks::{Input, SinkError};
use crate::transforms::TransformStage;
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
/// A sink as the processor sees it: the stream and routes it takes, its queue.
pub struct SinkHandle {
    pub input: Input,
    pub name: String,
    /// The routes it takes ([`crate::sinks::DEFAULT_ROUTE`]: records with none).
    pub routes: Vec<String>,
    /// What it writes values with, when that is a registry's schema (a swap's canary
    /// output is held to it).
    pub value_schema: Option<crate::registry::ValueSchema>,
    pub tx: mpsc::Sender<SinkMessage>,
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
    Snapshot(#[from] StateError),
    /// Too many dead letters in a row ([`super::dead_run`]).
    #[error("{0}")]
    DeadLetterRun(String),
    /// The keyed stage's state went past its cap.
    #[error("{0}")]
    StateFull(String),
}

pub struct Processor {
    pub(super) transforms: Vec<TransformStage>,
    /// `[stateful]`: after the transforms, before the window; runs here, in order.
    pub(super) keyed: Option<KeyedStage>,
    pub(super) keyed_metrics: Option<StageMetrics>,
    pub(super) window: Option<WindowStage>,
    /// Each transform's series, in the same order, and the window's.
    pub(super) stage_metrics: Vec<StageMetrics>,
    pub(super) window_metrics: Option<StageMetrics>,
    /// Each transform's swap settings, in the same order.
    pub(super) swap_configs: Vec<crate::config::SwapConfig>,
    /// A swapped-in transform whose results are held back until it has proven itself.
    pub(super) probation: Option<Probation>,
    /// A new version running beside the old before it is swapped in.
    pub(super) canary: Option<Canary>,
    /// Failed calls of plugin versions swapped out (the total only grows).
    pub(super) retired_failures: u64,
    pub(super) sinks: Vec<SinkHandle>,
    pub(super) dead_letter: DeadLetterQueue,
    /// Stops the pipeline after too many dead letters in a row.
    pub(super) dead_run: DeadRun,
    pub(super) metrics: Arc<Metrics>,
    pub(super) checkpoint_interval: Duration,
    /// Running results of open windows this often.
    pub(super) emit_every: Option<Duration>,
    /// Where the window state is saved at each checkpoint (a source that resumes):
    /// then acknowledgements no longer wait for windows to close.
    pub(super) snapshots: Option<Box<dyn StateBackend>>,
    /// The partitions the source owns, as last told (for a store whose state follows
    /// the assignment).
    pub(super) owned: std::collections::BTreeSet<PartitionId>,
    /// Back to the source, after each checkpoint.
    pub(super) acks: AckSender,
    /// Whether to close and emit open windows when the input ends. Not for a source
    /// that resumes after a stop: its open windows are rebuilt from the records it
    /// reads again, rather than emitted half-full.
    pub(super) close_windows_at_end: bool,
    /// Worker threads that run the transforms and add window records up, batches
    /// side by side (none: this thread runs them). Not used while a new version is
    /// watched (canary, probation): that runs here, one batch at a time.
    pub(super) pool: Option<Pool>,
    /// The failed calls each worker's plugins reported last: every transform's, the
    /// window's.
    pub(super) worker_failures: Vec<(Vec<u64>, u64)>,
    /// Tells the batcher when this thread (or a worker) waits for work, so a partial
    /// batch goes at once instead of after its linger.
    pub(super) demand: Arc<Demand>,
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

/// What the loop keeps between events: what is handled, and when the last checkpoint
/// and the last running results were.
struct Clocks {
    progress: Progress,
    last_checkpoint: Instant,
    last_early: Instant,
}

impl Processor {
    /// The loop: each event goes to its hook ([`Self::on_control`], [`Self::on_work`],
    /// [`Self::on_end`], [`Self::on_tick`]); after each, the deadlines and the timers.
    pub fn run(
        mut self,
        mut input: mpsc::Receiver<Work>,
        mut control: mpsc::Receiver<Control>,
        rt: Handle,
    ) -> Result<(), ProcessError> {
        let mut clocks = Clocks {
            progress: Progress::default(),
            last_checkpoint: Instant::now(),
            last_early: Instant::now(),
        };
        let mut control_open = true;
        loop {
            // What the workers finished, in order, goes on first.
            self.take_ready(&mut clocks.progress, &rt)?;
            let parallel = self.parallel();
            let pool = self.pool.as_ref();
            let take_work = !parallel || pool.is_some_and(Pool::has_room);
            let out = pool.map_or(0, Pool::out);
            let idle = !parallel || pool.is_some_and(Pool::has_idle_worker);
            self.demand.set_idle(take_work && idle);
            let wait = self.next_timer(&clocks);
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
                Event::Control(Some(c)) => self.on_control(c, &mut clocks, &rt)?,
                Event::Control(None) => control_open = false,
                Event::Work(Some(work)) => self.on_work(work, parallel, &mut clocks, &rt)?,
                Event::Work(None) => {
                    self.on_end(&mut clocks, &rt)?;
                    break;
                }
                Event::Tick => self.on_tick(&rt)?,
            }
            self.on_deadlines(&mut clocks.progress, &rt)?;
            self.on_timers(&mut clocks, &rt)?;
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
        self.checkpoint(&clocks.progress, None, &rt)
    }

    /// How long until a timer (checkpoint, running results) is due.
    fn next_timer(&self, clocks: &Clocks) -> Duration {
        let mut wait = self
            .checkpoint_interval
            .saturating_sub(clocks.last_checkpoint.elapsed());
        if let Some(every) = self.emit_every {
            wait = wait.min(every.saturating_sub(clocks.last_early.elapsed()));
        }
        wait
    }

    /// A control message: a checkpoint asked for, or a swap.
    fn on_control(
        &mut self,
        control: Control,
        clocks: &mut Clocks,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        self.drain(&mut clocks.progress, rt)?;
        match control {
            Control::Checkpoint(done) => {
                self.checkpoint(&clocks.progress, None, rt)?;
                clocks.last_checkpoint = Instant::now();
                let _ = done.send(());
            }
            Control::Swap(request) => self.swap(*request, &clocks.progress),
        }
        Ok(())
    }

    /// A batch from the source: to the workers, or, with a barrier or a rebalance
    /// (or a new version watched), here once every batch before it is finished.
    fn on_work(
        &mut self,
        mut work: Work,
        parallel: bool,
        clocks: &mut Clocks,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        if parallel && work.barrier.is_none() && work.assignment.is_none() {
            return self.dispatch(work);
        }
        let progress = &mut clocks.progress;
        self.drain(progress, rt)?;
        let barrier = work.barrier;
        let assignment = work.assignment.take();
        if self.probation.is_some() && barrier.is_none() && assignment.is_none() {
            self.hold(work, progress, rt)?;
        } else {
            // A barrier or a rebalance cannot wait: what is held goes on now (or is
            // re-processed), the probation goes on after.
            self.end_probation(progress, rt, false)?;
            progress.handled(&work);
            self.process(work, rt)?;
        }
        if self.canary.as_ref().is_some_and(|c| c.seen >= c.target) {
            self.finish_canary(progress);
        }
        if let Some(partitions) = assignment {
            // Partitions gone are no longer this host's to acknowledge.
            progress.keep(&partitions);
            self.follow_assignment(&partitions)?;
            if let Some(w) = &mut self.window {
                w.set_assignment(partitions);
            }
        }
        if let Some((id, end_of_input)) = barrier {
            if end_of_input {
                self.close_windows(rt)?;
            }
            self.checkpoint(&clocks.progress, Some(id), rt)?;
            clocks.last_checkpoint = Instant::now();
        }
        Ok(())
    }

    /// The input ended: everything in flight finishes, a probation ends, a canary
    /// that could not see its records is refused.
    fn on_end(&mut self, clocks: &mut Clocks, rt: &Handle) -> Result<(), ProcessError> {
        self.drain(&mut clocks.progress, rt)?;
        self.end_probation(&mut clocks.progress, rt, true)?;
        if let Some(c) = self.canary.take() {
            let _ = c.reply.send(Err(format!(
                "the input ended after {} of the canary's {} records; nothing swapped",
                c.seen, c.target
            )));
        }
        Ok(())
    }

    /// No event for a while: windows still close when their partitions go idle (not
    /// while records are held back: their partitions are not idle).
    fn on_tick(&mut self, rt: &Handle) -> Result<(), ProcessError> {
        if self.probation.is_none() {
            self.emit_closed(rt)?;
        }
        Ok(())
    }

    /// Running results and checkpoints, when due.
    fn on_timers(&mut self, clocks: &mut Clocks, rt: &Handle) -> Result<(), ProcessError> {
        if self.probation.is_none()
            && self
                .emit_every
                .is_some_and(|every| clocks.last_early.elapsed() >= every)
        {
            self.emit_early(rt)?;
            clocks.last_early = Instant::now();
        }
        if clocks.last_checkpoint.elapsed() >= self.checkpoint_interval {
            self.checkpoint(&clocks.progress, None, rt)?;
            clocks.last_checkpoint = Instant::now();
        }
        Ok(())
    }

    /// The stages keep their own totals (failed plugin calls, windows closed); copy
    /// them into the shared metrics.
    pub(super) fn publish_stage_counts(&self) {
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
        if let (Some(k), Some(m)) = (&self.keyed, &self.keyed_metrics) {
            m.set_totals(k.plugin_failures(), k.log_dropped());
            let (keys, bytes) = k.state_size();
            self.metrics.set_keyed_state(keys, bytes);
        }
        let keyed_failures = self.keyed.as_ref().map_or(0, KeyedStage::plugin_failures);
        let window = self.window.as_ref();
        let window_failures = window.map_or(0, WindowStage::plugin_failures)
            + self.worker_failures.iter().map(|w| w.1).sum::<u64>();
        self.metrics.set_plugin_failures(
            transforms + keyed_failures + window_failures + self.retired_failures,
        );
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

    pub(super) fn process(&mut self, work: Work, rt: &Handle) -> Result<(), ProcessError> {
        let result = self.process_batch(work.batch, work.dead, rt);
        self.publish_stage_counts();
        result
    }

    pub(super) fn process_batch(
        &mut self,
        mut batch: Batch,
        mut dead: Vec<DeadLetter>,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        self.metrics.add_batch(batch.len());
        (batch, dead) = self.run_transforms(batch, dead, 0..self.transforms.len());
        self.downstream(batch, dead, rt)
    }

    /// The batch through every transform; a canary sees a copy of its stage's input,
    /// and a probation counts its stage's failures.
    pub(super) fn run_transforms(
        &mut self,
        mut batch: Batch,
        mut dead: Vec<DeadLetter>,
        stages: std::ops::Range<usize>,
    ) -> (Batch, Vec<DeadLetter>) {
        let check_fit = self.canary.is_some() && self.checks_sink_fit();
        for i in stages.clone() {
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
                let mut out = c.plugin.apply(copy, &mut discarded);
                c.seen += taken as u64;
                c.old_errors += failed as u64;
                c.new_errors += discarded.len() as u64;
                if check_fit {
                    // The rest of the transforms, as the records would go to the sinks.
                    for later in &mut self.transforms[i + 1..] {
                        out = later.apply(out, &mut Vec::new());
                    }
                    let (misfits, first) = super::sink_fit::misfits(&self.sinks, &out);
                    c.new_misfits += misfits;
                    if c.misfit.is_none() {
                        c.misfit = first;
                    }
                }
            }
        }
        // The running version's output, held to the same schemas.
        if let Some(c) = self.canary.as_mut().filter(|c| stages.contains(&c.stage)) {
            if check_fit {
                c.old_misfits += super::sink_fit::misfits(&self.sinks, &batch).0;
            }
        }
        (batch, dead)
    }

    /// Whether a canary's output is held to the sinks' value schemas: some sink has
    /// one, and no keyed stage stands between the transforms and the sinks (its output
    /// is not the transforms').
    pub(super) fn checks_sink_fit(&self) -> bool {
        self.keyed.is_none() && super::sink_fit::any(&self.sinks)
    }

    /// Transformed records on to the window and the sinks.
    pub(super) fn downstream(
        &mut self,
        batch: Batch,
        dead: Vec<DeadLetter>,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        self.downstream_added(batch, dead, None, rt)
    }

    /// As [`Self::downstream`], the window's partials already added up (by a worker,
    /// which took `run` to).
    pub(super) fn downstream_added(
        &mut self,
        batch: Batch,
        mut dead: Vec<DeadLetter>,
        added: Option<(Added, Option<StageRun>)>,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        let batch = match &mut self.keyed {
            Some(k) if !batch.is_empty() => {
                let (taken, refused) = (batch.len(), dead.len());
                let started = self.metrics.clock();
                let out = k.apply(batch, &mut dead).map_err(ProcessError::StateFull)?;
                if let Some(m) = &self.keyed_metrics {
                    if let Some(t) = started {
                        self.metrics.observe_stage(m, t.elapsed());
                    }
                    m.batch(taken, out.len(), dead.len() - refused);
                }
                out
            }
            _ => batch,
        };
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
        // Records of this batch got through (to a sink, or into the window): its dead
        // letters end no run, whatever their order among them.
        let had_records = !batch.is_empty();
        let mut delivered = false;
        // Records sinks: none means records go nowhere by design (a window's pipeline).
        let records_sinks = self.sinks.iter().any(|s| s.input == Input::Records);
        for (route, records) in super::routing::split(batch) {
            let name = route.as_deref().unwrap_or(crate::sinks::DEFAULT_ROUTE);
            let taken = self
                .sinks
                .iter()
                .any(|s| s.input == Input::Records && s.takes(name));
            if records_sinks && !taken {
                let windowed = windows.is_some();
                dead.extend(super::routing::untaken(
                    name,
                    records,
                    &self.sinks,
                    windowed,
                ));
                continue;
            }
            delivered |= !records.is_empty();
            self.send_route(route.as_deref(), records, rt)?;
        }
        let passed = had_records && (delivered || windows.is_some());
        if let Some(results) = windows {
            self.send(Input::Windows, results, rt)?;
        }
        if passed {
            self.dead_run.passed();
            return self.write_dead(dead, rt);
        }
        self.send_dead(dead, rt)
    }

    /// Hand records to every sink taking `route` (`None`: records with no route).
    fn send_route(
        &self,
        route: Option<&str>,
        batch: Batch,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        let route = route.unwrap_or(crate::sinks::DEFAULT_ROUTE);
        self.metrics.add_routed(route, batch.len() as u64);
        let sinks = self
            .sinks
            .iter()
            .filter(|s| s.input == Input::Records && s.takes(route));
        self.send_to(sinks.collect(), Input::Records, batch, rt)
    }

    /// Hand records to every sink on `input`, waiting while a sink's queue is full.
    pub(super) fn send(&self, input: Input, batch: Batch, rt: &Handle) -> Result<(), ProcessError> {
        let sinks = self.sinks.iter().filter(|r| r.input == input).collect();
        self.send_to(sinks, input, batch, rt)
    }

    fn send_to(
        &self,
        routes: Vec<&SinkHandle>,
        input: Input,
        batch: Batch,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        if batch.is_empty() {
            return Ok(());
        }
        if !routes.is_empty() {
            self.metrics.add_out(batch.len() as u64);
            if input == Input::Windows {
                self.metrics.add_window_results(batch.len() as u64);
            }
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
    pub(super) fn send_dead(
        &mut self,
        dead: Vec<DeadLetter>,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        let run = self.dead_run.failed(dead.len());
        self.write_dead(dead, rt)?;
        run.map_err(ProcessError::DeadLetterRun)
    }

    pub(super) fn write_dead(
        &self,
        dead: Vec<DeadLetter>,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        rt.block_on(self.dead_letter.send(dead))
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
