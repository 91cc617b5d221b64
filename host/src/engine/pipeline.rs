//! A pipeline built from its config: plugins loaded and started up front (so every
//! configuration problem shows before data flows), then run until the source is done
//! or shutdown is asked for.

use super::keyed::KeyedStage;
use super::processor::{
    version_info, Control, DeadLetterQueue, ProcessError, Processor, SinkHandle,
};
use super::sink_task;
use super::snapshot::StateBackend;
use super::window::{Late, WindowStage, DEFAULT_MAX_FUTURE_MS};
use super::workers::Pool;
use super::{batcher, Metrics};
use crate::config::PipelineConfig;
use crate::config::{LatePolicy, WindowState};
use crate::metrics::{Families, RunState};
use crate::plugin::{PluginError, Runtime};
use crate::position::Partitions;
use crate::schema::Schema;
use crate::sinks::dead_letter;
use crate::sinks::{Input, SinkContext, SinkError};
use crate::sources::{SourceContext, SourceError};
use crate::transforms::TransformStage;
use crate::window_state::StateError;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub struct Pipeline {
    config: PipelineConfig,
    transforms: Vec<TransformStage>,
    keyed: Option<KeyedStage>,
    window: Option<WindowStage>,
    metrics: Arc<Metrics>,
    /// Where the pipeline's lookup tables are registered while it runs.
    lookup: Arc<crate::plugin::lookup::Lookup>,
    control: (mpsc::Sender<Control>, mpsc::Receiver<Control>),
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Source(SourceError),
    #[error(transparent)]
    Sink(SinkError),
    /// The window snapshot cannot be read, or the window plugin refuses its state.
    #[error("window state: {0}")]
    State(#[from] StateError),
    /// A lookup table could not be loaded at start.
    #[error("{0}")]
    Tables(String),
    /// A limit stopped it: the keyed state's cap, a run of dead letters.
    #[error("{0}")]
    Stopped(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Pipeline {
    /// Load, type-check and `init` every plugin.
    pub fn build(config: PipelineConfig, runtime: &Runtime) -> Result<Self, PluginError> {
        let mut transforms = Vec::new();
        for t in &config.transforms {
            let loaded = runtime.load(&config.resolve(&t.plugin))?;
            let plugin = t.start(runtime, &loaded, &config.name())?;
            let schema = match &t.schema {
                None => None,
                Some(file) => Some(Arc::new(Schema::load(file, &config.base_dir()).map_err(
                    |e| PluginError::Schema {
                        stage: t.name(),
                        message: e.to_string(),
                    },
                )?)),
            };
            transforms.push(TransformStage::new(plugin).with_schema(schema));
        }
        let keyed = match &config.stateful {
            None => None,
            Some(st) => {
                let loaded = runtime.load(&config.resolve(&st.plugin))?;
                let plugin = st.start(runtime, &loaded, &config.name())?;
                let max_bytes = (st.state_max_mb as usize).saturating_mul(1024 * 1024);
                let ttl_ms = st.ttl.map(|t| t.as_millis_i64());
                Some(KeyedStage::new(
                    plugin,
                    st.key_field.clone(),
                    max_bytes,
                    ttl_ms,
                ))
            }
        };
        let window = match &config.window {
            None => None,
            Some(w) => {
                let loaded = runtime.load(&config.resolve(&w.plugin))?;
                let plugin = w.start(runtime, &loaded, &config.name())?;
                let stage = WindowStage::new(
                    plugin,
                    w.size.as_millis_i64(),
                    w.allowed_lateness.as_millis_i64(),
                );
                let slide = w
                    .slide
                    .map_or(w.size.as_millis_i64(), |d| d.as_millis_i64());
                Some(
                    stage
                        .sliding(slide)
                        .late(match w.late {
                            LatePolicy::DeadLetter => Late::DeadLetter,
                            LatePolicy::Drop => Late::Drop,
                            LatePolicy::Update => Late::Update {
                                keep_ms: w.update_within.unwrap_or(w.size).as_millis_i64(),
                            },
                        })
                        .idle_after(w.idle_timeout.map(|d| *d))
                        .max_future(
                            w.max_future
                                .map_or(DEFAULT_MAX_FUTURE_MS, |d| d.as_millis_i64()),
                        )
                        .partials(w.output == crate::config::WindowOutput::Partials),
                )
            }
        };
        let metrics = Arc::new(Metrics::new(&config.name(), Arc::new(Families::new())));
        Ok(Pipeline {
            config,
            transforms,
            keyed,
            window,
            metrics,
            lookup: runtime.lookup(),
            control: mpsc::channel(16),
        })
    }

    /// Asks things of the running pipeline, between batches.
    pub fn control(&self) -> mpsc::Sender<Control> {
        self.control.0.clone()
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Live counters, for a progress display.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Count into these (the process's, shared by every pipeline and served at
    /// `/metrics`) rather than a registry of its own. Before [`Self::metrics`] is
    /// handed out.
    pub fn use_families(&mut self, families: Arc<Families>) {
        let detailed = self.metrics.detailed();
        self.metrics = Arc::new(Metrics::new(&self.config.name(), families));
        self.metrics.set_detailed(detailed);
    }

    /// Run to the end of the source, or until `shutdown` is cancelled; either way,
    /// every batch already taken is processed and every sink flushed before this
    /// returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<super::Counters, RunError> {
        let Pipeline {
            config,
            transforms,
            keyed,
            window,
            metrics,
            lookup,
            control: (_, control_rx),
        } = self;
        let stages = Stages {
            transforms,
            keyed,
            window,
        };
        // The lookup tables first: a record's plugin call may read them.
        let stop_tables = CancellationToken::new();
        let base_dir = config.base_dir();
        let loading =
            crate::tables::start(&config.tables, &base_dir, &metrics, stop_tables.clone());
        let tables = tokio::select! {
            loaded = loading => loaded,
            _ = shutdown.cancelled() => Err("stopped while loading the lookup tables".into()),
        };
        let result = match tables {
            Err(why) => {
                // The tables loaded before the one that failed stop following.
                stop_tables.cancel();
                Err(RunError::Tables(why))
            }
            Ok((tables, loaders)) => {
                let name = config.name();
                lookup.register(&name, tables);
                let result = run(config, stages, &metrics, control_rx, shutdown).await;
                lookup.unregister(&name);
                stop_tables.cancel();
                for loader in loaders {
                    let _ = loader.await;
                }
                result
            }
        };
        metrics.set_state(match result {
            Ok(()) => RunState::Finished,
            Err(_) => RunState::Failed,
        });
        result.map(|()| metrics.snapshot())
    }
}

/// The processing stages, in the order a record meets them.
struct Stages {
    transforms: Vec<TransformStage>,
    keyed: Option<KeyedStage>,
    window: Option<WindowStage>,
}

async fn run(
    config: PipelineConfig,
    stages: Stages,
    metrics: &Arc<Metrics>,
    control_rx: mpsc::Receiver<Control>,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let Stages {
        transforms,
        mut keyed,
        mut window,
    } = stages;
    let p = &config.pipeline;
    let partitions = Arc::new(Partitions::default());
    // What outlives the process (read positions, window state) is one host's: a
    // second process on the same state folder is refused.
    let _state_lock = match config.source.resumes() {
        false => None,
        true => {
            let dir = config.state_dir();
            let lock = crate::durable::FolderLock::take(&dir)
                .map_err(|e| StateError::Store(format!("cannot lock {}: {e}", dir.display())))?;
            Some(lock.ok_or_else(|| {
                    StateError::Store(format!(
                        "{} is in use by another sluice process (each host needs a state folder of its own: [pipeline] state_dir)",
                        dir.display()
                    ))
                })?)
        }
    };
    // Window state outlives the process when the source can resume from where the
    // state leaves off; it is taken up first, before any data moves.
    if let Some(w) = &mut window {
        w.set_partitions(partitions.clone());
    }
    // Window and keyed state outlive the process when the source can resume from
    // where the state leaves off; they are taken up first, before any data moves.
    let snapshots = if window.is_some() || keyed.is_some() {
        let windowing = window
            .as_ref()
            .map_or((0, 0), |w| (w.size_ms(), w.slide_ms()));
        let (state, topic) = match (&config.window, &config.stateful) {
            (Some(wc), _) => (wc.state, wc.state_topic.as_deref()),
            (None, Some(st)) => (st.state, st.state_topic.as_deref()),
            (None, None) => (WindowState::Local, None),
        };
        let moving = (state == WindowState::Kafka).then_some(topic);
        let store = config
            .source
            .window_state(moving, &config.state_dir(), windowing)
            .await?;
        if let Some(store) = &store {
            let stages = (window.as_mut(), keyed.as_mut());
            restore(stages, store.as_ref(), &partitions, metrics)?;
        }
        store
    } else {
        None
    };
    let queue = p.queue_batches;
    let base_dir = config.base_dir();
    let sink_state = config.source.resumes().then(|| config.state_dir());
    let context = |name: String, input: Input| SinkContext {
        name,
        input,
        base_dir: base_dir.clone(),
        metrics: metrics.clone(),
        state_dir: sink_state.clone(),
        partitions: partitions.clone(),
        retry: p.retry,
    };

    // The dead-letter output first (sinks send it the records they refuse), then
    // the sinks: one that cannot open (bad path) fails before any reading.
    let ctx = context(
        format!("dead letters ({})", config.dead_letter.describe(&base_dir)),
        Input::Records,
    );
    let max_value = p.dead_letter_max_kb * 1024;
    let (dlq, encoding) = dead_letter::open(&config.dead_letter, &ctx, max_value)
        .await
        .map_err(RunError::Sink)?;
    let (dlq_tx, dlq_rx) = mpsc::channel(queue);
    let dead_letter = DeadLetterQueue {
        name: ctx.name.clone(),
        tx: dlq_tx,
        encoding,
        partitions: partitions.clone(),
        metrics: metrics.clone(),
    };
    let dlq_metrics = metrics.sink(&ctx.name);
    let mut sink_tasks = vec![tokio::spawn(sink_task::run_sink(
        dlq,
        dlq_rx,
        ctx,
        dlq_metrics,
        p.retry,
        None,
        None,
    ))];
    let mut routes = Vec::new();
    for (i, sc) in config.sinks.iter().enumerate() {
        let ctx = context(format!("sinks[{i}] ({})", sc.describe()), sc.input);
        let sink = sc.open(&ctx).await.map_err(RunError::Sink)?;
        let (tx, rx) = mpsc::channel(queue);
        routes.push(SinkHandle {
            input: sc.input(),
            routes: sc.routes(),
            value_schema: sc
                .value_schema(&base_dir)
                .map_err(|e| RunError::Sink(crate::sinks::SinkError::fatal(&ctx.name, e)))?,
            name: ctx.name.clone(),
            tx,
        });
        let refused = Some(dead_letter.clone());
        let m = metrics.sink(&ctx.name);
        let schema = match sc.schema() {
            None => None,
            Some(file) => Some(Arc::new(
                Schema::load(file, &config.base_dir())
                    .map_err(|e| RunError::Sink(SinkError::fatal(&ctx.name, e)))?,
            )),
        };
        let task = sink_task::run_sink(sink, rx, ctx, m, p.retry, refused, schema);
        sink_tasks.push(tokio::spawn(task));
    }

    // About a batch of records waits at the intake, whether sent one by one or in
    // chunks, so memory stays bounded by the batch and queue sizes.
    let (event_tx, event_rx) = mpsc::channel(config.source.intake_capacity(p.batch_size));
    let (work_tx, work_rx) = mpsc::channel(queue);
    let (ack_tx, ack_rx) = std::sync::mpsc::sync_channel(64);
    let mut source_ctx = SourceContext::new(
        format!("source ({})", config.source.type_name()),
        event_tx,
        ack_rx,
        partitions.clone(),
        shutdown.clone(),
        metrics.clone(),
        config.state_dir(),
        base_dir.clone(),
    );
    source_ctx.shared_group_note = config.window.as_ref().and_then(|w| {
        let partials = w.output == crate::config::WindowOutput::Partials;
        let moves = w.state == WindowState::Kafka;
        (!(partials && moves)).then(|| {
            format!(
                "window results are exact only when one host reads every partition: with the group shared, set [window] output = \"partials\" and state = \"kafka\" (now {} and {}), and partials = true on a MongoDB window sink (or partition_column on a Cassandra one)",
                if partials { "\"partials\"" } else { "\"merged\"" },
                if moves { "\"kafka\"" } else { "\"local\"" },
            )
        })
    });
    let source = tokio::spawn(config.source.clone().run(source_ctx));
    let demand = Arc::new(batcher::Demand::default());
    let batcher = tokio::spawn(batcher::run(
        event_rx,
        work_tx,
        p.batch_size,
        *p.linger,
        demand.clone(),
    ));
    // More than one worker: threads of their own, each with its own instances.
    let workers = config.pipeline.workers();
    let pool = match workers {
        1 => None,
        n => Some(
            Pool::start(n, &transforms, window.as_ref().map(WindowStage::plugin))
                .map_err(|e| RunError::Internal(format!("starting {n} workers: {e}")))?,
        ),
    };

    let stage_metrics = transforms
        .iter()
        .map(|t| metrics.stage(version_info("transform", t.plugin())))
        .collect();
    let window_metrics = window
        .as_ref()
        .map(|w| metrics.stage(version_info("window", w.plugin())));
    let keyed_metrics = keyed
        .as_ref()
        .map(|k| metrics.stage(version_info("stateful", k.plugin())));
    let processor = Processor {
        transforms,
        keyed,
        keyed_metrics,
        window,
        stage_metrics,
        window_metrics,
        swap_configs: config.transforms.iter().map(|t| t.swap).collect(),
        probation: None,
        canary: None,
        retired_failures: 0,
        sinks: routes,
        dead_letter,
        dead_run: super::dead_run::DeadRun::new(p.max_dead_letter_run),
        metrics: metrics.clone(),
        checkpoint_interval: *p.checkpoint_interval,
        emit_every: config
            .window
            .as_ref()
            .and_then(|w| w.emit_every)
            .map(|d| *d),
        snapshots,
        owned: Default::default(),
        acks: ack_tx,
        close_windows_at_end: !config.source.resumes(),
        worker_failures: vec![Default::default(); pool.as_ref().map_or(0, Pool::size)],
        pool,
        demand,
    };
    metrics.set_state(RunState::Running);
    let rt = tokio::runtime::Handle::current();
    // A panic in the processor is treated like its errors: stop the source and let
    // the sinks flush what they already have before reporting it.
    let processed = tokio::task::spawn_blocking(move || processor.run(work_rx, control_rx, rt))
        .await
        .unwrap_or_else(|e| Err(ProcessError::Panicked(e.to_string())));
    if processed.is_err() {
        // Unblock the source if it is waiting on a full queue.
        shutdown.cancel();
    }
    let sourced = source
        .await
        .map_err(|e| RunError::Internal(format!("source: {e}")))?;
    let _ = batcher.await;

    // A sink's own error explains a processor that found the sink gone.
    let mut sink_error = None;
    for task in sink_tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => sink_error = sink_error.or(Some(e)),
            Err(e) => return Err(RunError::Internal(format!("sink: {e}"))),
        }
    }
    if let Some(e) = sink_error {
        return Err(RunError::Sink(e));
    }
    match processed {
        Ok(()) => {}
        Err(ProcessError::Sink(e)) => return Err(RunError::Sink(e)),
        Err(ProcessError::Snapshot(e)) => return Err(RunError::State(e)),
        Err(e @ (ProcessError::StateFull(_) | ProcessError::DeadLetterRun(_))) => {
            return Err(RunError::Stopped(e.to_string()))
        }
        Err(e) => return Err(RunError::Internal(e.to_string())),
    }
    sourced.map_err(RunError::Source)?;
    Ok(())
}

/// Take up the saved window and keyed state, if there is any.
fn restore(
    (mut window, mut keyed): (Option<&mut WindowStage>, Option<&mut KeyedStage>),
    store: &dyn StateBackend,
    partitions: &Partitions,
    metrics: &Metrics,
) -> Result<(), StateError> {
    let Some(snapshot) = store.load_all()? else {
        return Ok(());
    };
    let saved = (snapshot.window_size_ms, snapshot.slide_ms());
    // Size 0: saved by a pipeline without a window (its keyed state alone).
    let windowed = window.as_deref().filter(|_| saved.0 != 0);
    if let Some(window) = windowed.filter(|w| saved != (w.size_ms(), w.slide_ms())) {
        return Err(StateError::Unreadable(format!(
            "{} was saved with windows of {} ms sliding by {} ms, but [window] is now {} ms sliding by {} ms; move it away to start the windows afresh",
            store.describe(),
            saved.0,
            saved.1,
            window.size_ms(),
            window.slide_ms()
        )));
    }
    let (mut parts, mut open, mut keys) = (0, 0, 0);
    for state in snapshot.partitions {
        let id = partitions.register(state.origin.clone());
        open += state.windows.len();
        keys += state.keys.len();
        parts += 1;
        if let Some(k) = keyed.as_deref_mut() {
            k.restore(id, &state);
        }
        if let Some(w) = window.as_deref_mut() {
            w.restore(id, state).map_err(StateError::Unreadable)?;
        }
    }
    metrics.add_restores(parts as u64);
    tracing::info!(
        "state restored from {}: {open} open window share(s) and {keys} key(s) over {parts} partition(s)",
        store.describe()
    );
    Ok(())
}
