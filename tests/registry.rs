//! The test Schema Registry (tests/servers/registry), held to Confluent's own Python
//! client: Avro values serialized and read back through it, a schema evolved with a
//! default (old and new readers both work), an incompatible one refused (409), the
//! compatibility level set, JSON Schema through JSONSerializer; and what it keeps
//! across a restart, and what it refuses, over plain HTTP.

use crate::common;

use common::kafka::unique;
use common::stores::registry;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn python() -> String {
    std::env::var("SLUICE_CONFLUENT_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/sluice/confluent-venv/bin/python")
    })
}

#[test]
fn confluents_python_client_reads_and_writes_through_the_registry() {
    let script = common::repo().join("tests/servers/registry/fidelity.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(registry())
        .arg(unique("fidelity"))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (scripts/test.sh makes the venv with confluent-kafka; or set SLUICE_CONFLUENT_PYTHON)",
                python()
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim() == "ok",
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The registry binary (built by scripts/test.sh, or by servers.sh on first use).
fn registry_bin() -> std::path::PathBuf {
    if let Ok(bin) = std::env::var("SLUICE_REGISTRY_SERVER_BIN") {
        return bin.into();
    }
    registry(); // servers.sh builds it
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap();
    target.join("release/sluice-registry-test-server")
}

/// A registry of this test's own, on a free port, keeping `data`: the child, its URL.
fn own_registry(data: &std::path::Path) -> (std::process::Child, String) {
    let mut child = Command::new(registry_bin())
        .args(["--host", "127.0.0.1", "--port", "0", "--data"])
        .arg(data)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit(' ').next().unwrap().to_owned();
    (child, format!("http://{addr}"))
}

fn call(method: &str, url: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut req = client.request(method.parse().unwrap(), url);
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

#[test]
fn the_registry_keeps_its_subjects_across_a_restart_and_refuses_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("registry.json");
    let schema = r#"{"type":"record","name":"U","fields":[{"name":"id","type":"string"}]}"#;
    let (mut first, url) = own_registry(&data);
    let (status, body) = call(
        "POST",
        &format!("{url}/subjects/users-value/versions"),
        Some(serde_json::json!({ "schema": schema })),
    );
    assert_eq!((status, body["id"].as_u64()), (200, Some(1)), "{body}");
    let (status, body) = call(
        "POST",
        &format!("{url}/subjects/users-value/versions"),
        Some(serde_json::json!({ "schema": "{\"type\": \"record\"" })),
    );
    assert_eq!(
        (status, body["error_code"].as_u64()),
        (422, Some(42201)),
        "{body}"
    );
    let (status, body) = call(
        "GET",
        &format!("{url}/subjects/nobody/versions/latest"),
        None,
    );
    assert_eq!(
        (status, body["error_code"].as_u64()),
        (404, Some(40401)),
        "{body}"
    );
    first.kill().unwrap();
    first.wait().unwrap();

    let (mut second, url) = own_registry(&data);
    let (status, body) = call(
        "GET",
        &format!("{url}/subjects/users-value/versions/latest"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["version"].as_u64(), body["id"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(body["schema"], schema);
    let (_, body) = call("GET", &format!("{url}/config"), None);
    assert_eq!(body["compatibilityLevel"], "BACKWARD");
    second.kill().unwrap();
    second.wait().unwrap();
}
