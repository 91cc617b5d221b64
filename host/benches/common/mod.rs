//! What the benchmarks share: finding the servers they need, the users they write,
//! and writing them through a sink.

use sluice::engine::Metrics;
use sluice::record::{Batch, Record};
use sluice::sinks::{Delivery, SinkConfig, SinkContext};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The address in `var` (an external server), else that of the local `name` server,
/// started by `scripts/servers.sh` if it is not running.
pub fn server(var: &str, name: &str) -> String {
    if let Ok(v) = std::env::var(var) {
        return v;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new(repo.join("scripts/servers.sh"))
        .args(["start", name])
        .output()
        .expect("scripts/servers.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_owned()
}

/// `n` formatted users (format_user's output) as JSON records, ids of their own per
/// `seed`: what the store benchmarks write.
#[allow(dead_code)] // not every benchmark writes users
pub fn users(n: usize, seed: u64) -> Vec<sluice::record::Record> {
    use sluice::sources::generator::{self, GeneratorConfig};
    let config: GeneratorConfig = toml::from_str(&format!("seed = {seed}")).unwrap();
    let mut rng = sluice::sources::SplitMix64::new(seed);
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while out.len() < n {
        let raw = generator::value(&config, &mut rng, i);
        i += 1;
        for row in format_user::format(&raw).unwrap() {
            out.push(sluice::record::record(row.json, 0));
        }
    }
    out.truncate(n);
    out
}

/// Write `records` through a sink opened from `toml`, `batch` at a time, one batch
/// after another as the sink task does: how long the writes took (opening the sink
/// and building the batches not counted).
#[allow(dead_code)] // not every benchmark writes to a sink
pub async fn through_sink(toml: &str, records: &[Record], batch: usize) -> Duration {
    let config: SinkConfig = toml::from_str(toml).unwrap();
    config.validate().unwrap();
    let ctx = SinkContext {
        name: "bench".into(),
        input: config.input,
        base_dir: ".".into(),
        metrics: Arc::new(Metrics::default()),
        state_dir: None,
        partitions: Default::default(),
    };
    let mut sink = config.open(&ctx).await.unwrap();
    let batches: Vec<Batch> = records
        .chunks(batch)
        .map(|chunk| {
            let mut b = Batch::with_capacity(chunk.len());
            chunk
                .iter()
                .for_each(|r| b.push(r.clone(), Default::default()));
            b
        })
        .collect();
    let started = Instant::now();
    for b in &batches {
        let mut delivery = Delivery::new(b.len());
        sink.write(b, &mut delivery).await.unwrap();
        assert!(delivery.take_rejected().is_empty());
    }
    started.elapsed()
}
