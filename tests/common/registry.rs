//! What the Schema Registry tests share: Confluent's Python client in its venv, a
//! registry of a test's own (to stop, restart or lock with credentials), plain REST
//! calls.

use super::stores::registry;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The Python with confluent-kafka (scripts/test.sh makes the venv).
pub fn python() -> String {
    std::env::var("SLUICE_CONFLUENT_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/sluice/confluent-venv/bin/python")
    })
}

/// The registry binary (built by scripts/test.sh, or by servers.sh on first use).
fn registry_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("SLUICE_REGISTRY_SERVER_BIN") {
        return bin.into();
    }
    registry(); // servers.sh builds it
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    target.join("release/sluice-registry-test-server")
}

/// A registry of the test's own on `port` (0: a free one), keeping `data`, with more
/// `args`: the child and its URL.
pub fn own_registry(data: &Path, port: u16, args: &[&str]) -> (Child, String) {
    let mut child = Command::new(registry_bin())
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--data"])
        .arg(data)
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{line}");
    (child, format!("http://{addr}"))
}

/// One REST call: the status and the JSON answered (a string if it is not JSON).
pub fn call(method: &str, url: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new().request(method.parse().unwrap(), url);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/vnd.schemaregistry.v1+json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    })
}
