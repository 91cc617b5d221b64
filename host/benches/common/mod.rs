//! What the benchmarks share: finding the servers they need.

use std::path::Path;

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
