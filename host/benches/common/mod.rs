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
