use super::progress::Progress;
use super::Failure;
use anyhow::Context;
use std::io::IsTerminal;
use std::path::Path;
use tokio_util::sync::CancellationToken;

pub fn run(path: &Path, no_progress: bool) -> Result<(), Failure> {
    let pipeline = super::build(path)?;
    let name = pipeline.config().name();
    let metrics = pipeline.metrics();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .map_err(Failure::runtime)?;
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        let progress = (!no_progress && std::io::stderr().is_terminal())
            .then(|| Progress::start(name.clone(), metrics.clone()));
        let started = std::time::Instant::now();
        let result = pipeline.run(shutdown).await;
        if let Some(p) = progress {
            p.stop().await;
        }
        let s = metrics.snapshot();
        eprintln!(
            "{name}: {} in {:.1?}: {} records in, {} out, {} dead letters, {} windows closed",
            if result.is_ok() { "finished" } else { "stopped" },
            started.elapsed(),
            s.records_in,
            s.records_out,
            s.dead_letters,
            s.windows_closed,
        );
        result.map(|_| ()).with_context(|| format!("pipeline {name}")).map_err(Failure::runtime)
    })
}

/// First Ctrl-C / SIGTERM: stop reading, finish and flush. Second: quit now.
async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    for round in 0..2 {
        match term.as_mut() {
            Some(t) => tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = t.recv() => {} },
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        if round == 0 {
            tracing::warn!("stopping: finishing in-flight batches and flushing sinks (Ctrl-C again to quit now)");
            shutdown.cancel();
        }
    }
    eprintln!("quitting without flushing");
    std::process::exit(130);
}
