use sluice::engine::{Metrics, Snapshot};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The live line on a terminal: totals and per-second rates.
pub struct Progress {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Progress {
    pub fn start(name: String, metrics: Arc<Metrics>) -> Self {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut last = (Instant::now(), metrics.snapshot());
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = token.cancelled() => break,
                }
                let (now, s) = (Instant::now(), metrics.snapshot());
                let secs = now.duration_since(last.0).as_secs_f64().max(1e-3);
                let rate = |a: u64, b: u64| (a - b) as f64 / secs;
                eprint!(
                    "\r\x1b[2K{name}: in {} ({:.0}/s)  out {} ({:.0}/s)  dead letters {}  plugin errors {}  windows {}{}",
                    s.records_in,
                    rate(s.records_in, last.1.records_in),
                    s.records_out,
                    rate(s.records_out, last.1.records_out),
                    s.dead_letters,
                    s.plugin_failures,
                    s.windows_closed,
                    lag(&s),
                );
                let _ = std::io::stderr().flush();
                last = (now, s);
            }
            eprint!("\r\x1b[2K");
        });
        Progress { stop, task }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// `  lag 120 (t[0] 30, t[1] 90)`: consumer lag, total and per partition (the first
/// few), when the source reports it.
fn lag(s: &Snapshot) -> String {
    if s.lag.is_empty() {
        return String::new();
    }
    let mut parts: Vec<String> = s
        .lag
        .iter()
        .take(4)
        .map(|(p, n)| format!("{p} {n}"))
        .collect();
    if s.lag.len() > 4 {
        parts.push(format!("+{} more", s.lag.len() - 4));
    }
    format!("  lag {} ({})", s.total_lag(), parts.join(", "))
}
