//! Keyed state figures (`[stateful]`), printed (never asserted):
//!
//! - throughput on the same file of generated users (each twice, 500,000 records):
//!   file -> null; file -> format_user -> null; file -> dedup (keyed by the raw
//!   user's `/login/uuid`) -> null; file -> format_user -> dedup (keyed by the id
//!   format_user sets) -> null; file -> enrich (a lookup in a CSV table by `nat`) ->
//!   null. Wall time and records/s, best of `SLUICE_BENCH_RUNS`;
//! - state at 1,000,000 keys (running_count): the checkpoint that saves it (time and
//!   size), the state's bytes against the cap, and a restart that takes it up.
//!
//! `cargo bench -p sluice --bench keyed` (after `scripts/build-plugins.sh`).

use sluice::config::PipelineConfig;
use sluice::engine::Pipeline;
use sluice::plugin::{ComponentCache, Runtime};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

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

fn config(dir: &Path, name: &str, toml: &str) -> PipelineConfig {
    let path = dir.join(format!("{name}.toml"));
    let text = toml
        .replace(
            "{FORMAT_USER}",
            &plugin("format_user").display().to_string(),
        )
        .replace("{DEDUP}", &plugin("dedup").display().to_string())
        .replace("{ENRICH}", &plugin("enrich").display().to_string())
        .replace(
            "{REGIONS}",
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tables/regions.csv")
                .display()
                .to_string(),
        )
        .replace(
            "{RUNNING_COUNT}",
            &plugin("running_count").display().to_string(),
        );
    std::fs::write(&path, text).unwrap();
    sluice::config::load(&path).unwrap()
}

/// Run a pipeline to its end: how long, and its metrics' status after.
fn run(runtime: &Runtime, config: PipelineConfig) -> (Duration, sluice::engine::PipelineStatus) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pipeline = Pipeline::build(config, runtime).unwrap();
    let metrics = pipeline.metrics();
    let started = Instant::now();
    rt.block_on(pipeline.run(CancellationToken::new())).unwrap();
    (started.elapsed(), metrics.status())
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let runs: usize = std::env::var("SLUICE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(ComponentCache::from_env()).unwrap();

    // The input: 250,000 generated users, each twice (a redelivery of the lot).
    let users = 250_000u64;
    run(
        &runtime,
        config(
            dir.path(),
            "generate",
            &format!(
                r#"
[source]
type = "generator"
seed = 5
count = {users}
[[sinks]]
type = "file"
path = "once.jsonl"
"#
            ),
        ),
    );
    let once = std::fs::read(dir.path().join("once.jsonl")).unwrap();
    let mut twice = once.clone();
    twice.extend_from_slice(&once);
    std::fs::write(dir.path().join("users.jsonl"), &twice).unwrap();
    let records = users * 2;
    let size = twice.len();
    drop((once, twice));
    println!(
        "input: {users} generated users, each twice: {records} records, {:.0} MB",
        size as f64 / 1e6
    );

    let chains = [
        ("file -> null", ""),
        ("file -> format_user -> null", "[[transforms]]\nplugin = \"{FORMAT_USER}\"\n"),
        (
            "file -> dedup (key_field /login/uuid) -> null",
            "[stateful]\nplugin = \"{DEDUP}\"\nconfig = { within = \"1h\" }\nkey_field = \"/login/uuid\"\n",
        ),
        (
            "file -> format_user -> dedup (record key) -> null",
            "[[transforms]]\nplugin = \"{FORMAT_USER}\"\n[stateful]\nplugin = \"{DEDUP}\"\nconfig = { within = \"1h\" }\n",
        ),
        (
            "file -> enrich (nat -> region, a CSV table) -> null",
            "[[tables]]\nname = \"regions\"\ntype = \"file\"\npath = \"{REGIONS}\"\nkey = \"country\"\nvalue = \"region\"\n[[transforms]]\nplugin = \"{ENRICH}\"\nconfig = { table = \"regions\", field = \"nat\", into = \"region\" }\n",
        ),
    ];
    println!();
    println!("| chain (workers: every core; the keyed stage on the processor thread) | best wall | records/s | out |");
    println!("|---|---:|---:|---:|");
    for (i, (name, stages)) in chains.iter().enumerate() {
        let mut best = Duration::MAX;
        let mut out = 0;
        for r in 0..runs {
            let toml = format!(
                r#"
[pipeline]
batch_size = 512
state_dir = "state-{i}-{r}"
[source]
type = "file"
path = "users.jsonl"
{stages}
[[sinks]]
type = "null"
"#
            );
            let (took, status) = run(&runtime, config(dir.path(), &format!("chain{i}"), &toml));
            best = best.min(took);
            out = status.counters.records_out;
        }
        println!(
            "| {name} | {:.2} s | {:.0} | {out} |",
            best.as_secs_f64(),
            records as f64 / best.as_secs_f64()
        );
    }

    // 1,000,000 keys: the checkpoint that saves them, and a restart taking them up.
    let keys = 1_000_000u64;
    let lines: String = (0..keys)
        .map(|i| format!("{{\"k\":\"user-{i:07}\"}}\n"))
        .collect();
    std::fs::write(dir.path().join("keys.jsonl"), lines).unwrap();
    let counted = || {
        config(
            dir.path(),
            "million",
            r#"
[pipeline]
batch_size = 1024
checkpoint_interval = "1h"
state_dir = "million-state"
[source]
type = "file"
path = "keys.jsonl"
[stateful]
plugin = "{RUNNING_COUNT}"
key_field = "k"
state_max_mb = 1024
[[sinks]]
type = "null"
"#,
        )
    };
    let (took, status) = run(&runtime, counted());
    let checkpoint = status.checkpoint.expect("the stop's checkpoint");
    println!();
    println!(
        "{keys} keys (running_count): run {:.2} s ({:.0} records/s); state {:.0} MiB against the cap; the stop's checkpoint {:.0} ms, snapshot {:.0} MB; process peak RSS {:.0} MiB",
        took.as_secs_f64(),
        keys as f64 / took.as_secs_f64(),
        status.state_bytes as f64 / (1024.0 * 1024.0),
        checkpoint.duration_ms,
        checkpoint.snapshot_bytes.unwrap_or(0) as f64 / 1e6,
        peak_rss_mib()
    );
    let (took, status) = run(&runtime, counted());
    println!(
        "restart on that state (nothing new to read): {:.2} s from start to end, {} keys taken up",
        took.as_secs_f64(),
        status.state_keys
    );
}
