use sluice::engine::{Counters, Metrics};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The live lines on a terminal, one per pipeline: totals and per-second rates.
pub struct Progress {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Progress {
    pub fn start(pipelines: Vec<(String, Arc<Metrics>)>) -> Self {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let snapshot = |m: &Arc<Metrics>| (Instant::now(), m.snapshot());
            let mut last: Vec<_> = pipelines.iter().map(|(_, m)| snapshot(m)).collect();
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            let mut drawn = false;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = token.cancelled() => break,
                }
                let mut block = String::new();
                if drawn && pipelines.len() > 1 {
                    // Back to the first line of the block.
                    block.push_str(&format!("\x1b[{}A", pipelines.len() - 1));
                }
                for (i, (name, metrics)) in pipelines.iter().enumerate() {
                    let (now, s) = snapshot(metrics);
                    let secs = now.duration_since(last[i].0).as_secs_f64().max(1e-3);
                    let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
                    if i > 0 {
                        block.push('\n');
                    }
                    block.push_str(&format!(
                        "\r\x1b[2K{name}: in {} ({:.0}/s)  out {} ({:.0}/s)  dead letters {}  plugin errors {}  windows {}{}",
                        s.records_in,
                        rate(s.records_in, last[i].1.records_in),
                        s.records_out,
                        rate(s.records_out, last[i].1.records_out),
                        s.dead_letters,
                        s.plugin_failures,
                        s.windows_closed,
                        lag(&s),
                    ));
                    last[i] = (now, s);
                }
                eprint!("{block}");
                let _ = std::io::stderr().flush();
                drawn = true;
            }
            // Wipe the block.
            if drawn {
                let mut wipe = String::from("\r\x1b[2K");
                for _ in 1..pipelines.len() {
                    wipe.push_str("\x1b[1A\r\x1b[2K");
                }
                eprint!("{wipe}");
            }
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
fn lag(s: &Counters) -> String {
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
