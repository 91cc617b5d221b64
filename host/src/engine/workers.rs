//! Processing workers: threads that each own an instance of every transform and of
//! the window plugin, and run batches through them side by side. Batches are
//! numbered as they are handed out and their results taken back in that order, so
//! what follows (the window's merge, the sinks, positions and acknowledgements, dead
//! letters) sees them exactly as if one thread had run them.
//!
//! The processor hands work out only while nothing needs one thread's view: a swap,
//! a canary or a probation, a barrier, a rebalance or the end of the input first waits
//! for every batch out (`drain`), and a new plugin version reaches every worker as a
//! fork of the processor's own.

use super::checkpoint::Progress;
use super::window::{accumulate, Added, Replayed, Windowing};
use crate::dead_letter::DeadLetter;
use crate::plugin::{PluginError, TransformPlugin, WindowPlugin};
use crate::record::Batch;
use crate::transforms::TransformStage;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Batches out per worker at most: one running, one waiting, so a worker never
/// waits for the processor between two.
const PER_WORKER: usize = 2;

/// What one stage did to one batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageRun {
    pub taken: usize,
    pub out: usize,
    pub failed: usize,
    /// How long it took, when timed.
    pub took: Option<Duration>,
}

/// A batch to run.
pub struct Job {
    pub batch: Batch,
    pub dead: Vec<DeadLetter>,
    /// Per partition, the newest input position in the batch (what it covers once its
    /// results are taken).
    pub covers: Progress,
    /// With a window: which windows records go in, and which are replays.
    pub window: Option<(Windowing, Arc<Replayed>)>,
    /// Time each stage.
    pub timed: bool,
}

/// A batch run.
pub struct Done {
    pub seq: u64,
    pub batch: Batch,
    pub dead: Vec<DeadLetter>,
    pub covers: Progress,
    /// The window's partials of the transformed batch.
    pub partials: Option<Added>,
    pub stages: Vec<StageRun>,
    pub window_run: Option<StageRun>,
    pub worker: usize,
    /// The worker's plugins' failed calls so far: each transform's, the window's.
    pub failures: (Vec<u64>, u64),
}

enum Order {
    Job(u64, Job),
    /// From the next job on, this version of transform `stage`.
    Replace(usize, TransformPlugin),
    ReplaceWindow(WindowPlugin),
}

struct Worker {
    orders: std::sync::mpsc::Sender<Order>,
    out: usize,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The workers, and the results that came back out of order.
pub struct Pool {
    workers: Vec<Worker>,
    results: mpsc::UnboundedReceiver<Result<Done, String>>,
    next_seq: u64,
    next_out: u64,
    waiting: BTreeMap<u64, Done>,
}

impl Pool {
    /// `n` workers, each with forks of `transforms` and `window`.
    pub fn start(
        n: usize,
        transforms: &[TransformStage],
        window: Option<&WindowPlugin>,
    ) -> Result<Pool, PluginError> {
        let (tx, results) = mpsc::unbounded_channel();
        let mut workers = Vec::with_capacity(n);
        for index in 0..n {
            let stages: Vec<TransformStage> = transforms
                .iter()
                .map(|t| {
                    let fork = t.plugin().fork()?;
                    Ok(TransformStage::new(fork).with_schema(t.schema()))
                })
                .collect::<Result<_, _>>()?;
            let window = window.map(WindowPlugin::fork).transpose()?;
            let (orders, inbox) = std::sync::mpsc::channel();
            let tx = tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("sluice-worker-{index}"))
                .spawn(move || work(index, stages, window, inbox, tx))
                .map_err(|e| PluginError::Runtime(format!("starting a worker thread: {e}")))?;
            workers.push(Worker {
                orders,
                out: 0,
                thread: Some(thread),
            });
        }
        Ok(Pool {
            workers,
            results,
            next_seq: 0,
            next_out: 0,
            waiting: BTreeMap::new(),
        })
    }

    pub fn size(&self) -> usize {
        self.workers.len()
    }

    /// Batches handed out and not yet taken back.
    pub fn out(&self) -> usize {
        (self.next_seq - self.next_out) as usize
    }

    /// Whether another batch may go out now.
    pub fn has_room(&self) -> bool {
        self.out() < PER_WORKER * self.workers.len()
    }

    /// Whether some worker has nothing to do.
    pub fn has_idle_worker(&self) -> bool {
        self.workers.iter().any(|w| w.out == 0)
    }

    /// Hand `job` to the least busy worker.
    pub fn submit(&mut self, job: Job) -> Result<(), String> {
        let seq = self.next_seq;
        let worker = self
            .workers
            .iter_mut()
            .min_by_key(|w| w.out)
            .expect("a pool has workers");
        worker
            .orders
            .send(Order::Job(seq, job))
            .map_err(|_| "a worker thread has stopped".to_owned())?;
        worker.out += 1;
        self.next_seq += 1;
        Ok(())
    }

    /// Wait for the next result to come back (in any order). `None` when nothing is
    /// out.
    pub async fn receive(&mut self) -> Option<Result<(), String>> {
        if self.out() == 0 || self.waiting.contains_key(&self.next_out) {
            return None;
        }
        let result = self.results.recv().await?;
        Some(result.map(|done| {
            self.workers[done.worker].out -= 1;
            self.waiting.insert(done.seq, done);
        }))
    }

    /// The next result in order, if it is back.
    pub fn next_ready(&mut self) -> Option<Done> {
        let done = self.waiting.remove(&self.next_out)?;
        self.next_out += 1;
        Some(done)
    }

    /// Every worker runs `plugin` (forked once per worker) as transform `stage` from
    /// its next job on. Call with nothing out.
    pub fn replace(&mut self, stage: usize, plugin: &TransformPlugin) -> Result<(), PluginError> {
        for w in &self.workers {
            let _ = w.orders.send(Order::Replace(stage, plugin.fork()?));
        }
        Ok(())
    }

    /// Every worker adds window records up with `plugin` from its next job on.
    pub fn replace_window(&mut self, plugin: &WindowPlugin) -> Result<(), PluginError> {
        for w in &self.workers {
            let _ = w.orders.send(Order::ReplaceWindow(plugin.fork()?));
        }
        Ok(())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for w in &mut self.workers {
            // Closing its inbox ends the thread's loop.
            let (closed, _) = std::sync::mpsc::channel();
            w.orders = closed;
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// A worker's loop: jobs and plugin replacements, in the order sent, until the pool
/// is gone.
fn work(
    index: usize,
    mut stages: Vec<TransformStage>,
    mut window: Option<WindowPlugin>,
    inbox: std::sync::mpsc::Receiver<Order>,
    results: mpsc::UnboundedSender<Result<Done, String>>,
) {
    while let Ok(order) = inbox.recv() {
        match order {
            Order::Replace(stage, plugin) => {
                if let Some(s) = stages.get_mut(stage) {
                    s.replace_plugin(plugin);
                }
            }
            Order::ReplaceWindow(plugin) => window = Some(plugin),
            Order::Job(seq, job) => {
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(index, seq, job, &mut stages, &mut window)
                }));
                let result = ran.map_err(|panic| {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    format!("worker {index} panicked: {what}")
                });
                let failed = result.is_err();
                if results.send(result).is_err() || failed {
                    return;
                }
            }
        }
    }
}

/// One batch through every transform, then added up for the window.
fn run(
    worker: usize,
    seq: u64,
    job: Job,
    stages: &mut [TransformStage],
    window: &mut Option<WindowPlugin>,
) -> Done {
    let Job {
        mut batch,
        mut dead,
        covers,
        window: windowing,
        timed,
    } = job;
    let mut runs = Vec::with_capacity(stages.len());
    for stage in stages.iter_mut() {
        if batch.is_empty() {
            break;
        }
        let (taken, refused) = (batch.len(), dead.len());
        let started = timed.then(Instant::now);
        batch = stage.apply(batch, &mut dead);
        runs.push(StageRun {
            taken,
            out: batch.len(),
            failed: dead.len() - refused,
            took: started.map(|t| t.elapsed()),
        });
    }
    let (partials, window_run) = match (window.as_mut(), windowing) {
        (Some(plugin), Some((windowing, replayed))) if !batch.is_empty() => {
            let started = timed.then(Instant::now);
            let partials = accumulate(plugin, windowing, &batch, &replayed);
            let run = StageRun {
                taken: batch.len(),
                took: started.map(|t| t.elapsed()),
                ..StageRun::default()
            };
            (Some(partials), Some(run))
        }
        _ => (None, None),
    };
    Done {
        seq,
        batch,
        dead,
        covers,
        partials,
        stages: runs,
        window_run,
        worker,
        failures: (
            stages.iter().map(TransformStage::plugin_failures).collect(),
            window.as_ref().map_or(0, WindowPlugin::failures),
        ),
    }
}
