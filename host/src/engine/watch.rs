//! `watch = true` on a transform: its plugin file is watched, and a new version written
//! there is swapped in, as `sluice plugin swap` would. A file still being written is
//! waited out (its size and modification time must hold still for a while), and one
//! that does not load (half a file, the wrong world, a refused config) is reported and
//! ignored: the running version stays.

use super::processor::Control;
use super::swap::{NewPlugin, SwapRequest};
use crate::config::PipelineConfig;
use crate::plugin::Runtime;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// How often the file is looked at.
const POLL: Duration = Duration::from_millis(250);
/// How long it must stay unchanged before it is taken (partial writes).
const SETTLE: Duration = Duration::from_millis(750);

/// What a file looks like from outside: its size and modification time.
fn look(path: &std::path::Path) -> Option<(u64, SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// Watch `stage`'s plugin file until `shutdown`.
pub async fn watch_plugin(
    runtime: Arc<Runtime>,
    config: PipelineConfig,
    stage: String,
    path: PathBuf,
    control: mpsc::Sender<Control>,
    shutdown: CancellationToken,
) {
    let mut taken = look(&path);
    let mut changed: Option<((u64, SystemTime), tokio::time::Instant)> = None;
    tracing::info!("watching {} for new versions of `{stage}`", path.display());
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.cancelled() => return,
        }
        let now = look(&path);
        if now.is_none() || now == taken {
            changed = None;
            continue;
        }
        let now = now.expect("checked");
        match changed {
            Some((seen, since)) if seen == now => {
                if since.elapsed() < SETTLE {
                    continue;
                }
            }
            _ => {
                changed = Some((now, tokio::time::Instant::now()));
                continue;
            }
        }
        // Settled: try it once; whatever happens, this version of the file is done.
        changed = None;
        taken = Some(now);
        let wasm = match tokio::fs::read(&path).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(
                    "{}: cannot read the new version: {e}; ignored",
                    path.display()
                );
                continue;
            }
        };
        let (rt, cfg, name, file) = (runtime.clone(), config.clone(), stage.clone(), path.clone());
        let built =
            tokio::task::spawn_blocking(move || NewPlugin::build(&rt, &cfg, &name, &file, wasm))
                .await
                .unwrap_or_else(|e| Err(format!("compiling panicked: {e}")));
        let plugin = match built {
            Ok(p) => p,
            Err(why) => {
                tracing::warn!(
                    "{}: the new version of `{stage}` is ignored: {why}",
                    path.display()
                );
                continue;
            }
        };
        let (reply, answer) = oneshot::channel();
        let request = SwapRequest {
            stage: stage.clone(),
            plugin,
            canary: None,
            reply,
        };
        if control
            .send(Control::Swap(Box::new(request)))
            .await
            .is_err()
        {
            return;
        }
        match answer.await {
            Ok(Ok(_)) => {} // the processor logged the swap and its switch point
            Ok(Err(why)) => tracing::warn!(
                "{}: the new version of `{stage}` was not swapped in: {why}",
                path.display()
            ),
            Err(_) => return,
        }
    }
}
