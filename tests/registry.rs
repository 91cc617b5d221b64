//! The test Schema Registry (tests/servers/registry), held to Confluent's own Python
//! client: Avro values serialized and read back through it, a schema evolved with a
//! default (old and new readers both work), an incompatible one refused (409), the
//! compatibility level set, JSON Schema through JSONSerializer; and what it keeps
//! across a restart, and what it refuses, over plain HTTP.

use crate::common;

use common::kafka::unique;
use common::registry::{call, own_registry, python};
use common::stores::registry;
use std::process::Command;

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

#[test]
fn the_registry_keeps_its_subjects_across_a_restart_and_refuses_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("registry.json");
    let schema = r#"{"type":"record","name":"U","fields":[{"name":"id","type":"string"}]}"#;
    let (mut first, url) = own_registry(&data, 0, &[]);
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

    let (mut second, url) = own_registry(&data, 0, &[]);
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
