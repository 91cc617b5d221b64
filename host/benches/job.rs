//! The seeds' job, measured (printed, never asserted): `scripts/bench.sh` runs this.
//!
//! - the job: 500,000 randomuser.me-shaped users in one JSON-lines file (event time
//!   `ts_ms`, epoch ms) -> format_user -> 1-minute gender_window -> null sink for the
//!   records, file sink for the windows, through the `sluice` binary, as a user runs
//!   it: wall time, CPU, peak RSS, at workers = 1 and 2; the same for file ->
//!   format_user -> null and file -> null;
//! - format_user per core: the transform stage as the pipeline runs it (the WASM call
//!   and the host's work around it) against the same Rust code called natively, on
//!   the same batches, interleaved in one run;
//! - latency: source read to sink write, per record (each counted with its batch's
//!   latency, an upper bound), at 1,000 records/s and at full load.
//!
//! Each timing is the median of `SLUICE_BENCH_RUNS` runs (default 3): the machines
//! this is developed on are shared, and single runs vary by ±20%.
//! `SLUICE_BENCH_USERS` sets the file's size (default 500000).

use sluice::config::PipelineConfig;
use sluice::engine::Pipeline;
use sluice::plugin::{ComponentCache, Runtime, Sandbox, TransformPlugin};
use sluice::record::{record, Batch, PartitionId, Position};
use sluice::sources::generator::{self, GeneratorConfig};
use sluice::sources::SplitMix64;
use sluice::transforms::TransformStage;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

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

/// The users file: generated once (seed 11, one user a line, `ts_ms` first, 120 ms
/// apart from 2026-01-01), kept beside the build.
fn users_file(n: u64) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-job");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("users-{n}.jsonl"));
    if !path.exists() {
        let config: GeneratorConfig = toml::from_str("seed = 11").unwrap();
        let mut rng = SplitMix64::new(11);
        let tmp = path.with_extension("tmp");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).unwrap());
        for i in 0..n {
            let user = generator::value(&config, &mut rng, i);
            let ts = 1_767_225_600_000u64 + i * 120;
            use std::io::Write;
            write!(out, "{{\"ts_ms\":{ts},").unwrap();
            out.write_all(&user[1..]).unwrap();
            out.write_all(b"\n").unwrap();
        }
        drop(out);
        std::fs::rename(&tmp, &path).unwrap();
    }
    path
}

/// What one run of the `sluice` binary took.
#[derive(Clone, Copy)]
struct Run {
    wall: f64,
    cpu: f64,
    rss_mb: f64,
    /// Window results written (the job's windows.jsonl), for the anchors' check.
    windows: usize,
}

/// Run `sluice run` on `toml` (written in a fresh folder), `runs` times; the median
/// by wall time.
// The child is reaped by wait4 (for its rusage), not by `Child::wait`.
#[allow(clippy::zombie_processes)]
fn sluice_run(toml: &str, runs: u64) -> Run {
    let mut all = Vec::new();
    for _ in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, toml).unwrap();
        let started = Instant::now();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", "--no-progress"])
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
        let wall = started.elapsed().as_secs_f64();
        assert!(pid > 0 && status == 0, "sluice run failed: {toml}");
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let windows = std::fs::read(dir.path().join("windows.jsonl"))
            .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count());
        all.push(Run {
            wall,
            cpu: secs(usage.ru_utime) + secs(usage.ru_stime),
            rss_mb: usage.ru_maxrss as f64 / 1024.0,
            windows,
        });
    }
    all.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    all[all.len() / 2]
}

fn pipeline(file: &Path, workers: usize, transform: bool, window: bool) -> String {
    let mut text = format!(
        "[pipeline]\nworkers = {workers}\n[source]\ntype = \"file\"\npath = \"{}\"\n",
        file.display()
    );
    if window {
        text.push_str("event_time = { field = \"ts_ms\", format = \"epoch_ms\" }\n");
    }
    if transform {
        let p = plugin("format_user");
        text.push_str(&format!("[[transforms]]\nplugin = \"{}\"\n", p.display()));
    }
    if window {
        let p = plugin("gender_window");
        text.push_str(&format!(
            "[window]\nplugin = \"{}\"\nsize = \"1m\"\n",
            p.display()
        ));
        text.push_str(
            "[[sinks]]\ntype = \"file\"\ninput = \"windows\"\npath = \"windows.jsonl\"\n",
        );
    }
    text.push_str("[[sinks]]\ntype = \"null\"\n");
    text
}

/// Seconds per record of the format_user stage as the pipeline runs it, and of the
/// same code called natively, over the same batches, interleaved; medians of rounds.
fn format_user_per_core(file: &Path) -> (f64, f64) {
    let runtime = Runtime::new(ComponentCache::from_env()).unwrap();
    let loaded = runtime.load(&plugin("format_user")).unwrap();
    let wasm = TransformPlugin::start(
        &runtime,
        &loaded,
        "format_user",
        "{}".into(),
        Sandbox::default(),
    )
    .unwrap();
    let mut stage = TransformStage::new(wasm);
    let text = std::fs::read_to_string(file).unwrap();
    let batches: Vec<Batch> = text
        .lines()
        .take(64 * 256)
        .collect::<Vec<_>>()
        .chunks(256)
        .map(|lines| {
            let mut b = Batch::with_capacity(lines.len());
            for (i, l) in lines.iter().enumerate() {
                b.push(
                    record(l.as_bytes().to_vec(), 0),
                    Position::new(PartitionId(0), i as u64),
                );
            }
            b
        })
        .collect();
    let records: usize = batches.iter().map(Batch::len).sum();
    let (mut native, mut in_wasm) = (Vec::new(), Vec::new());
    for _ in 0..9 {
        let copies: Vec<Batch> = batches.clone();
        let started = Instant::now();
        for b in &batches {
            for r in &b.records {
                std::hint::black_box(::format_user::format(&r.value).unwrap());
            }
        }
        native.push(started.elapsed().as_secs_f64() / records as f64);
        let started = Instant::now();
        let mut dead = Vec::new();
        for b in copies {
            std::hint::black_box(stage.apply(b, &mut dead));
        }
        in_wasm.push(started.elapsed().as_secs_f64() / records as f64);
        assert!(dead.is_empty());
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(in_wasm), median(native))
}

/// The per-core comparison, printed.
fn print_per_core(file: &Path) {
    let (wasm, native) = format_user_per_core(file);
    println!(
        "format_user per core, same batches (256 users), one run: in the pipeline's stage {:.2} µs/record, native {:.2} µs/record: {:.2}x native",
        wasm * 1e6,
        native * 1e6,
        native / wasm
    );
}

/// Latency per record (its batch's, an upper bound), p50 and p99, in milliseconds:
/// generated users at `rate` a second (none: as fast as it goes) -> format_user ->
/// null, in process.
fn latency(rate: Option<u64>, count: u64) -> (f64, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let rate = rate.map_or(String::new(), |r| format!("rate = {r}\n"));
    let text = format!(
        "[source]\ntype = \"generator\"\ncount = {count}\n{rate}[[transforms]]\nplugin = \"{}\"\n[[sinks]]\ntype = \"null\"\n",
        plugin("format_user").display()
    );
    let config: PipelineConfig =
        sluice::config::parse(&dir.path().join("l.toml"), &text, |_| None).unwrap();
    let runtime = Runtime::new(ComponentCache::from_env()).unwrap();
    let p = Pipeline::build(config, &runtime).unwrap();
    let metrics = p.metrics();
    metrics.keep_latencies();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    rt.block_on(p.run(CancellationToken::new())).unwrap();
    let took = started.elapsed().as_secs_f64();
    let mut per: Vec<(Duration, u32)> = metrics
        .latencies()
        .into_iter()
        .map(|(n, d)| (d, n))
        .collect();
    per.sort();
    let total: u64 = per.iter().map(|&(_, n)| u64::from(n)).sum();
    let at = |q: f64| {
        let want = (q * total as f64).ceil() as u64;
        let mut seen = 0;
        for &(d, n) in &per {
            seen += u64::from(n);
            if seen >= want {
                return d.as_secs_f64() * 1000.0;
            }
        }
        0.0
    };
    (at(0.5), at(0.99), count as f64 / took)
}

fn main() {
    let n = env_or("SLUICE_BENCH_USERS", 500_000);
    let runs = env_or("SLUICE_BENCH_RUNS", 3);
    let file = users_file(n);
    // `SLUICE_BENCH_ONLY=per-core`: that comparison alone (seconds, not minutes).
    if std::env::var("SLUICE_BENCH_ONLY").as_deref() == Ok("per-core") {
        print_per_core(&file);
        return;
    }
    let mb = std::fs::metadata(&file).unwrap().len() as f64 / 1e6;
    println!("job: {n} users, {mb:.0} MB, in {}", file.display());
    println!(
        "(medians of {runs} runs; {} cores here)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!();
    println!("| pipeline | workers | wall s | records/s | CPU % | peak RSS MB |");
    println!("|---|---|---|---|---|---|");
    let mut walls = std::collections::BTreeMap::new();
    let mut windows = 0;
    for (name, transform, window) in [
        ("file -> null", false, false),
        ("file -> format_user -> null", true, false),
        ("the job (format_user, gender_window)", true, true),
    ] {
        for workers in [1, 2] {
            let r = sluice_run(&pipeline(&file, workers, transform, window), runs);
            walls.insert((name, workers), r.wall);
            windows = windows.max(r.windows);
            println!(
                "| {name} | {workers} | {:.2} | {:.0} | {:.0} | {:.0} |",
                r.wall,
                n as f64 / r.wall,
                100.0 * r.cpu / r.wall,
                r.rss_mb
            );
        }
    }
    // scripts/bench.sh holds the other engines' window counts to this one.
    println!("the job's windows: {windows}");
    println!();
    for name in [
        "file -> format_user -> null",
        "the job (format_user, gender_window)",
    ] {
        println!(
            "scaling, {name}: workers 2 vs 1: {:.2}x",
            walls[&(name, 1)] / walls[&(name, 2)]
        );
    }
    let job = walls[&("the job (format_user, gender_window)", 2)];
    println!(
        "the job vs the PySpark figure in issue 17 (33.5 s): {:.1}x",
        33.5 / job
    );

    println!();
    print_per_core(&file);

    println!();
    println!("| latency (source read -> sink write, per record) | p50 ms | p99 ms | records/s |");
    println!("|---|---|---|---|");
    let (p50, p99, rate) = latency(Some(1000), 5_000);
    println!("| 1,000 records/s | {p50:.2} | {p99:.2} | {rate:.0} |");
    let (p50, p99, rate) = latency(None, 200_000);
    println!("| full load | {p50:.2} | {p99:.2} | {rate:.0} |");
}
