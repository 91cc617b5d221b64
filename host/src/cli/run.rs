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
