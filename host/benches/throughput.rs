//! Throughput figures, printed by criterion (records/s as "thrpt"), never asserted:
//!
//! - `format_user/native/N` vs `format_user/wasm/N`: the same Rust code called directly
//!   and through the component boundary, in batches of N randomuser.me-shaped users
//!   (~1.1 KB each). The gap is the price of the sandbox per record.
//! - `quickstart_chain`: generator -> format_user -> gender_window (1-minute windows)
//!   -> null sink, end to end through the engine (batching, channels, threads).
//!
//! Run with `cargo bench -p sluice` after `scripts/build-plugins.sh`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice::config::PipelineConfig;
use sluice::engine::Pipeline;
use sluice::plugin::{ComponentCache, Runtime, Sandbox, TransformPlugin};
use sluice::record::{record, Record};
use sluice::sources::generator::{self, GeneratorConfig};
use sluice::sources::SplitMix64;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

fn users(n: usize) -> Vec<Record> {
    let config: GeneratorConfig = toml::from_str("seed = 1").unwrap();
    let mut rng = SplitMix64::new(1);
    (0..n as u64)
        .map(|i| record(generator::value(&config, &mut rng, i), 0))
        .collect()
}

fn format_user(c: &mut Criterion) {
    let runtime = Runtime::new(ComponentCache::from_env()).unwrap();
    let loaded = runtime.load(&plugin("format_user")).unwrap();
    let mut wasm = TransformPlugin::start(
        &runtime,
        &loaded,
        "format_user",
        "{}".into(),
        Sandbox::default(),
    )
    .unwrap();
    let mut group = c.benchmark_group("format_user");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for batch in [1usize, 16, 256, 4096] {
        let records = users(batch);
        let bytes: usize = records.iter().map(|r| r.value.len()).sum();
        eprintln!(
            "batch {batch}: {:.0} bytes per record",
            bytes as f64 / batch as f64
        );
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("native/{batch}"), |b| {
            b.iter(|| {
                for r in &records {
                    std::hint::black_box(::format_user::format(&r.value).unwrap());
                }
            })
        });
        group.bench_function(format!("wasm/{batch}"), |b| {
            b.iter(|| std::hint::black_box(wasm.process(&records).unwrap()))
        });
    }
    group.finish();
}

/// generator (`n` users) -> format_user -> gender_window -> null sinks.
fn chain(dir: &std::path::Path, n: u64) -> PipelineConfig {
    let text = format!(
        r#"
[source]
type = "generator"
count = {n}
event_interval = "10ms"
start_time = "2026-01-01T00:00:00Z"
[[transforms]]
plugin = "{}"
[window]
plugin = "{}"
size = "1m"
[[sinks]]
type = "null"
[[sinks]]
type = "null"
input = "windows"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#,
        plugin("format_user").display(),
        plugin("gender_window").display()
    );
    sluice::config::parse(&dir.join("chain.toml"), &text, |_| None).unwrap()
}

fn quickstart_chain(c: &mut Criterion) {
    const N: u64 = 20_000;
    let runtime = Runtime::new(ComponentCache::from_env()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = chain(dir.path(), N);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("quickstart_chain");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(N));
    group.bench_function("generator->format_user->gender_window->null", |b| {
        b.iter_batched(
            || Pipeline::build(config.clone(), &runtime).unwrap(),
            |p| rt.block_on(p.run(Default::default())).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// The quickstart chain with the admin listener's detail on (histograms, per-stage
/// timings, shared registry, one scrape a run) and off (counters only, as without
/// `--admin`), interleaved so that drift hits both; prints the median of each.
fn metrics_cost(_: &mut Criterion) {
    const N: u64 = 100_000;
    const ROUNDS: usize = 7;
    let runtime = Runtime::new(ComponentCache::from_env()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = chain(dir.path(), N);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let run = |on: bool| {
        let families = std::sync::Arc::new(sluice::engine::Families::new());
        let mut p = Pipeline::build(config.clone(), &runtime).unwrap();
        p.use_families(families.clone());
        p.metrics().set_detailed(on);
        let started = std::time::Instant::now();
        rt.block_on(p.run(Default::default())).unwrap();
        if on {
            std::hint::black_box(families.encode());
        }
        N as f64 / started.elapsed().as_secs_f64()
    };
    run(true);
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        off.push(run(false));
        on.push(run(true));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (on, off) = (median(&mut on), median(&mut off));
    eprintln!(
        "metrics_cost: quickstart chain, {N} records, median of {ROUNDS}: metrics on {:.0} records/s, off {:.0} records/s: cost {:.1}%",
        on,
        off,
        (off - on) / off * 100.0
    );
}

criterion_group!(benches, format_user, quickstart_chain, metrics_cost);
criterion_main!(benches);
