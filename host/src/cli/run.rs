use super::progress::Progress;
use super::Failure;
use anyhow::Context;
use sluice::admin::{Admin, AdminConfig, PipelineHandle};
use sluice::engine::{Families, Metrics};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

pub fn run(
    paths: &[PathBuf],
    no_progress: bool,
    admin: Option<String>,
    admin_token: Option<String>,
) -> Result<(), Failure> {
    let runtime = Arc::new(super::runtime()?);
    let mut pipelines = super::build_all_with(paths, &runtime)?;
    let admin = admin_config(&pipelines, admin, admin_token)?;
    // One registry for the process, served by the admin listener; without one, the
    // histograms (and the clock reads behind them) are skipped.
    let families = Arc::new(Families::new());
    for p in &mut pipelines {
        p.use_families(families.clone());
        p.metrics().set_detailed(admin.is_some());
    }
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
        // Plugin files watched for new versions (`watch = true`).
        for p in &pipelines {
            let config = p.config();
            for t in config.transforms.iter().filter(|t| t.watch) {
                tokio::spawn(sluice::engine::watch_plugin(
                    runtime.clone(),
                    config.clone(),
                    t.name(),
                    config.resolve(&t.plugin),
                    p.control(),
                    shutdown.child_token(),
                ));
            }
        }
        let _admin = match &admin {
            None => None,
            Some(config) => {
                let all = pipelines
                    .iter()
                    .map(|p| PipelineHandle {
                        metrics: p.metrics(),
                        config: p.config().clone(),
                        control: p.control(),
                    })
                    .collect();
                let listening = Admin::start(
                    config,
                    families.clone(),
                    all,
                    runtime.clone(),
                    shutdown.child_token(),
                )
                    .await
                    .map_err(|e| Failure::config(anyhow::anyhow!("admin listener: {e}")))?;
                Some(listening)
            }
        };
        let shown: Vec<(String, Arc<Metrics>)> = pipelines
            .iter()
            .map(|p| (p.config().name(), p.metrics()))
            .collect();
        let dead_letters_go_to: Vec<String> = pipelines
            .iter()
            .map(|p| p.config().dead_letter.describe(&p.config().base_dir()))
            .collect();
        // Logged once the signal handlers are in place: from here on, Ctrl-C and
        // SIGTERM mean a clean stop (of every pipeline).
        for (name, _) in &shown {
            tracing::info!("running pipeline `{name}` (Ctrl-C or SIGTERM stops it cleanly)");
        }
        let progress = (!no_progress && std::io::stderr().is_terminal())
            .then(|| Progress::start(shown.clone()));
        let started = std::time::Instant::now();
        // One task each; a pipeline that fails stops the others too.
        let tasks: Vec<_> = pipelines
            .into_iter()
            .map(|p| {
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let result = p.run(shutdown.clone()).await;
                    if result.is_err() {
                        shutdown.cancel();
                    }
                    result
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap_or_else(|e| {
                Err(sluice::engine::RunError::Internal(format!("panicked: {e}")))
            }));
        }
        if let Some(p) = progress {
            p.stop().await;
        }
        let mut first_error = None;
        for (((name, metrics), result), dead_to) in shown.iter().zip(results).zip(&dead_letters_go_to) {
            let s = metrics.snapshot();
            eprintln!(
                "{name}: {} in {:.1?}: {} records in, {} records out, {} window results, {} dead letters, {} windows closed, {} plugin errors",
                if result.is_ok() { "finished" } else { "stopped" },
                started.elapsed(),
                s.records_in,
                s.records_out - s.window_results_out,
                s.window_results_out,
                s.dead_letters,
                s.windows_closed,
                s.plugin_failures,
            );
            if s.dead_letters > 0 {
                eprintln!("{name}: dead letters (with reasons) are in {dead_to}");
            }
            if s.late_dropped > 0 {
                eprintln!("{name}: {} late records dropped ([window] late = \"drop\")", s.late_dropped);
            }
            if let Err(e) = result {
                first_error.get_or_insert(anyhow::Error::new(e).context(format!("pipeline {name}")));
            }
        }
        match first_error {
            None => Ok(()),
            Some(e) => Err(Failure::runtime(e)),
        }
    })
}

/// The admin listener's settings: `--admin` (with `--admin-token`), else the one
/// pipeline file's `[admin]`.
fn admin_config(
    pipelines: &[sluice::engine::Pipeline],
    listen: Option<String>,
    token: Option<String>,
) -> Result<Option<AdminConfig>, Failure> {
    let mut in_files = pipelines.iter().filter_map(|p| {
        p.config()
            .admin
            .as_ref()
            .map(|a| (p.config().file.display().to_string(), a))
    });
    let from_file = in_files.next();
    if let (Some((a, _)), Some((b, _))) = (&from_file, in_files.next()) {
        return Err(Failure::config(anyhow::anyhow!(
            "{a} and {b} both have an [admin] section: one host has one admin listener, so keep it in one file (or use --admin)"
        )));
    }
    let config = match (listen, from_file) {
        (Some(listen), file) => AdminConfig {
            listen,
            token: token.or_else(|| file.and_then(|(_, a)| a.token.clone())),
        },
        (None, Some((_, a))) => AdminConfig {
            listen: a.listen.clone(),
            token: token.or_else(|| a.token.clone()),
        },
        (None, None) => return Ok(None),
    };
    config
        .validate()
        .map_err(|e| Failure::config(anyhow::anyhow!("--admin: {e}")))?;
    Ok(Some(config))
}

/// SIGINT and SIGTERM, registered up front so that no signal between start-up and
/// the first poll falls through to the default action (dying without a flush).
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

/// A second signal within this long of the first does not force an exit: coreutils
/// `timeout` (and some supervisors) send SIGTERM to the child and then to its whole
/// process group, which would otherwise look like an impatient user.
const GRACE: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Interrupt,
    Terminate,
}

impl Signals {
    fn register() -> std::io::Result<Self> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) -> Kind {
        tokio::select! {
            _ = self.interrupt.recv() => Kind::Interrupt,
            _ = self.terminate.recv() => Kind::Terminate,
        }
    }

    /// First signal: stop reading, finish and flush. A second one quits at once if it
    /// is Ctrl-C on a terminal, or comes more than [`GRACE`] after the first.
    async fn stop_on_signal(mut self, shutdown: CancellationToken) {
        self.next().await;
        let first = tokio::time::Instant::now();
        tracing::warn!(
            "stopping: finishing in-flight batches and flushing sinks (Ctrl-C again to quit now)"
        );
        shutdown.cancel();
        let terminal = std::io::stdin().is_terminal() || std::io::stderr().is_terminal();
        loop {
            let kind = self.next().await;
            if must_quit(kind, terminal, first.elapsed()) {
                break;
            }
            tracing::warn!(
                "a second signal within {GRACE:?} of the first (as `timeout` sends): still finishing; send it again to quit at once"
            );
        }
        eprintln!("quitting without flushing");
        sluice::admin::guard::remove_made_tokens();
        std::process::exit(130);
    }
}

/// Whether a signal after the first one means "quit now".
fn must_quit(kind: Kind, terminal: bool, since_first: std::time::Duration) -> bool {
    (kind == Kind::Interrupt && terminal) || since_first >= GRACE
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_quick_second_sigterm_does_not_quit_but_ctrl_c_on_a_terminal_does() {
        let soon = Duration::from_millis(10);
        assert!(!must_quit(Kind::Terminate, false, soon));
        assert!(!must_quit(Kind::Terminate, true, soon));
        assert!(
            !must_quit(Kind::Interrupt, false, soon),
            "SIGINT from a script"
        );
        assert!(must_quit(Kind::Interrupt, true, soon));
        assert!(must_quit(Kind::Terminate, false, GRACE));
    }
}
