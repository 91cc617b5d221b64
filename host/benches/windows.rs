//! Window state figures, printed (never asserted):
//!
//! - checkpoint: the time to take and save a snapshot of 10,000 open windows
//!   (gender_window accumulators, one partition), and the snapshot's size;
//! - recovery: a pipeline started on that saved state (10,000 windows taken up, each
//!   accumulator read by the plugin first), from start to its first new output;
//! - throughput: file (2,000,000 small records) -> gender_window -> null, with a
//!   checkpoint (and so a snapshot) every second vs none during the run.
//!
//! `cargo bench -p sluice --bench windows` (after `scripts/build-plugins.sh`).

use sluice::config::PipelineConfig;
use sluice::engine::snapshot::{Snapshot, SnapshotStore, FORMAT};
use sluice::engine::{Pipeline, WindowStage};
use sluice::plugin::{ComponentCache, Runtime, Sandbox, WindowPlugin};
use sluice::position::{Origin, Partitions};
use sluice::record::{record, Batch, Position};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const WINDOWS: i64 = 10_000;

fn plugin(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/dist")
        .join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run scripts/build-plugins.sh",
        p.display()
    );
    p
}

fn pipeline(dir: &Path, toml: &str) -> PipelineConfig {
    let path = dir.join("bench.toml");
    std::fs::write(&path, toml).unwrap();
    sluice::config::load(&path).unwrap()
}

/// Run a pipeline to its end; how long it took.
fn run(runtime: &Runtime, config: PipelineConfig) -> Duration {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pipeline = Pipeline::build(config, runtime).unwrap();
    let started = Instant::now();
    rt.block_on(pipeline.run(CancellationToken::new())).unwrap();
    started.elapsed()
}

/// A pipeline running on a thread of its own.
struct Running {
    shutdown: CancellationToken,
    thread: std::thread::JoinHandle<()>,
}

impl Running {
    fn stop(self) {
        self.shutdown.cancel();
        self.thread.join().unwrap();
    }
}

fn start(runtime: &Runtime, config: PipelineConfig) -> Running {
    let pipeline = Pipeline::build(config, runtime).unwrap();
    let shutdown = CancellationToken::new();
    let s = shutdown.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(pipeline.run(s)).unwrap();
    });
    Running { shutdown, thread }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(ComponentCache::from_env()).unwrap();
    let loaded = runtime.load(&plugin("gender_window")).unwrap();

    // 1. A snapshot of 10,000 open windows.
    let window_plugin = WindowPlugin::start(
        &runtime,
        &loaded,
        "gender_window",
        "{}".into(),
        Sandbox::default(),
    )
    .unwrap();
    // A lateness of a year: nothing closes.
    let mut stage = WindowStage::new(window_plugin, 1_000, 365 * 24 * 3600 * 1000);
    let partitions = Partitions::default();
    let input = dir.path().join("in.jsonl");
    let p = partitions.register(Origin::File {
        path: input.clone(),
    });
    let mut dead = Vec::new();
    let mut offset = 0u64;
    for chunk in (0..WINDOWS).collect::<Vec<_>>().chunks(500) {
        let mut b = Batch::default();
        for &w in chunk {
            let g = if w % 3 == 0 { "female" } else { "male" };
            b.push(
                record(format!(r#"{{"gender":"{g}"}}"#), w * 1_000 + 10),
                Position::new(p, offset),
            );
            offset += 1;
        }
        stage.push(&b, &mut dead);
    }
    assert_eq!(stage.open_windows() as i64, WINDOWS);
    let store = SnapshotStore::in_dir(&dir.path().join("state"));
    let progress = BTreeMap::from([(p, offset - 1)]);
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let snapshot = Snapshot {
            format: FORMAT,
            window_size_ms: 1_000,
            window_slide_ms: None,
            plugin: "gender_window".into(),
            partitions: stage.snapshot(&progress, &partitions),
        };
        store.save(&snapshot).unwrap();
        best = best.min(started.elapsed());
    }
    let size = std::fs::metadata(store.path()).unwrap().len();
    println!(
        "checkpoint of {WINDOWS} open windows: {:.1} ms (taken, serialized, written, fsynced; best of 5), snapshot {:.0} KiB",
        best.as_secs_f64() * 1e3,
        size as f64 / 1024.0
    );

    // 2. Recovery: a pipeline that saved 10,000 open windows when it stopped, started
    // again: from its start to its first new output.
    let mut lines = String::new();
    for w in 0..WINDOWS {
        lines.push_str(&format!(
            "{{\"gender\":\"male\",\"at\":{}}}\n",
            w * 1_000 + 10
        ));
    }
    std::fs::write(&input, &lines).unwrap();
    let recovery = pipeline(
        dir.path(),
        &format!(
            r#"
[pipeline]
state_dir = "recovery-state"
checkpoint_interval = "500ms"
[source]
type = "file"
path = "in.jsonl"
follow = true
poll_interval = "10ms"
event_time = {{ field = "at", format = "epoch_ms" }}
[window]
plugin = "{}"
size = "1s"
allowed_lateness = "300d"
[[sinks]]
type = "file"
path = "out.jsonl"
"#,
            plugin("gender_window").display()
        ),
    );
    let out = dir.path().join("out.jsonl");
    let count =
        |p: &Path| std::fs::read(p).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count());
    let until = |n: usize| {
        while count(&out) < n {
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let first = start(&runtime, recovery.clone());
    until(WINDOWS as usize);
    first.stop();
    let size = std::fs::metadata(dir.path().join("recovery-state/windows.json"))
        .unwrap()
        .len();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"gender\":\"female\",\"at\":10}\n"))
        .unwrap();
    let started = Instant::now();
    let second = start(&runtime, recovery);
    until(WINDOWS as usize + 1);
    let took = started.elapsed();
    second.stop();
    println!(
        "recovery with {WINDOWS} saved windows ({:.0} KiB): {:.0} ms from start to the first new output (every window taken up, and read by the plugin, first)",
        size as f64 / 1024.0,
        took.as_secs_f64() * 1e3
    );

    // 3. Throughput with checkpoints every second vs none: 2,000,000 small records
    // (a few seconds of work, so several checkpoints fall in it).
    let n = 2_000_000u64;
    let mut users = String::with_capacity(n as usize * 40);
    for i in 0..n {
        let g = ["male", "female", "other"][(i % 3) as usize];
        users.push_str(&format!("{{\"gender\":\"{g}\",\"n\":{i}}}\n"));
    }
    std::fs::write(dir.path().join("users.jsonl"), &users).unwrap();
    let mut best: BTreeMap<&str, Duration> = BTreeMap::new();
    for round in 0..3 {
        // Alternating which goes first.
        let order = if round % 2 == 0 {
            [("every 1s", "1s"), ("none", "300d")]
        } else {
            [("none", "300d"), ("every 1s", "1s")]
        };
        for (label, interval) in order {
            let state = format!("throughput-{}-{round}", interval);
            let config = pipeline(
                dir.path(),
                &format!(
                    r#"
[pipeline]
state_dir = "{state}"
checkpoint_interval = "{interval}"
batch_size = 1024
[source]
type = "file"
path = "users.jsonl"
[window]
plugin = "{}"
size = "1m"
[[sinks]]
type = "null"
"#,
                    plugin("gender_window").display()
                ),
            );
            let took = run(&runtime, config);
            let b = best.entry(label).or_insert(took);
            *b = (*b).min(took);
        }
    }
    for (label, took) in best {
        println!(
            "file -> gender_window -> null, checkpoints {label}: {:.0} records/s (best of 3, {n} records)",
            n as f64 / took.as_secs_f64()
        );
    }
}
