use super::progress::Progress;
use super::Failure;
use anyhow::Context;
use std::io::IsTerminal;
use std::path::Path;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

pub fn run(path: &Path, no_progress: bool) -> Result<(), Failure> {
    let pipeline = super::build(path)?;
    let name = pipeline.config().name();
    let config = pipeline.config();
    let dead_letters_go_to = config.dead_letter.describe(&config.base_dir());
    let metrics = pipeline.metrics();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .map_err(Failure::runtime)?;
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        let signals = Signals::register()
            .context("listening for signals")
            .map_err(Failure::runtime)?;
        tokio::spawn(signals.stop_on_signal(shutdown.clone()));
        // Logged once the signal handlers are in place: from here on, Ctrl-C and
        // SIGTERM mean a clean stop.
        tracing::info!("running pipeline `{name}` (Ctrl-C or SIGTERM stops it cleanly)");
        let progress = (!no_progress && std::io::stderr().is_terminal())
            .then(|| Progress::start(name.clone(), metrics.clone()));
        let started = std::time::Instant::now();
        let result = pipeline.run(shutdown).await;
        if let Some(p) = progress {
            p.stop().await;
        }
        let s = metrics.snapshot();
        eprintln!(
            "{name}: {} in {:.1?}: {} records in, {} out, {} dead letters, {} windows closed, {} plugin errors",
            if result.is_ok() {
                "finished"
            } else {
                "stopped"
            },
            started.elapsed(),
            s.records_in,
            s.records_out,
            s.dead_letters,
            s.windows_closed,
            s.plugin_failures,
        );
        if s.dead_letters > 0 {
            eprintln!("{name}: dead letters (with reasons) are in {dead_letters_go_to}");
        }
        result
            .map(|_| ())
            .with_context(|| format!("pipeline {name}"))
            .map_err(Failure::runtime)
    })
}

/// SIGINT and SIGTERM, registered up front so that no signal between start-up and
/// the first poll falls through to the default action (dying without a flush).
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn register() -> std::io::Result<Self> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }

    /// First signal: stop reading, finish and flush. Second: quit now.
    async fn stop_on_signal(mut self, shutdown: CancellationToken) {
        self.next().await;
        tracing::warn!(
            "stopping: finishing in-flight batches and flushing sinks (Ctrl-C again to quit now)"
        );
        shutdown.cancel();
        self.next().await;
        eprintln!("quitting without flushing");
        std::process::exit(130);
    }
}
