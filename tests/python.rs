//! A second language: the Python transform in plugins/examples/python_tag, built by
//! componentize-py, tested offline with `--expect` and run through a pipeline (every
//! record out, none lost, whatever its memory does); and a stateful one,
//! plugins/examples/python_dedup, keeping a state per key that the host holds.

use crate::common;

use common::host::Host;
use common::{json_lines, pipeline};
use std::path::PathBuf;
use std::process::Command;

/// The built component of the Python example `name` (plugins/examples/NAME).
fn example(name: &str) -> PathBuf {
    let p = common::repo().join(format!("plugins/examples/{name}/dist/{name}.wasm"));
    assert!(
        p.exists(),
        "{} is not built: run plugins/examples/{name}/build.sh (scripts/test.sh does)",
        p.display()
    );
    p
}

fn python_tag() -> PathBuf {
    example("python_tag")
}

#[test]
fn the_python_plugin_passes_its_expected_output() {
    let example = common::repo().join("plugins/examples/python_tag");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["plugin", "test"])
        .arg(python_tag())
        .arg("--input")
        .arg(example.join("sample.jsonl"))
        .arg("--expect")
        .arg(example.join("expected.jsonl"))
        .env(
            "SLUICE_CACHE_DIR",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("line 3: error: not a JSON object"), "{text}");
    assert!(text.contains("all 2 output(s) as in"), "{text}");
}

#[test]
fn a_python_transform_runs_a_pipeline_and_loses_nothing() {
    const N: usize = 60_000;
    let dir = tempfile::tempdir().unwrap();
    let path = pipeline(
        dir.path(),
        "p.toml",
        &format!(
            r#"
[pipeline]
name = "python"
[source]
type = "generator"
count = {N}
[[transforms]]
plugin = "{}"
[[sinks]]
type = "file"
path = "out.jsonl"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#,
            python_tag().display()
        ),
    );
    let mut host = Host::start(&path);
    assert!(host.wait(600).success(), "{}", host.log());
    let log = host.log();
    let out = json_lines(&dir.path().join("out.jsonl"));
    assert_eq!(out.len(), N, "{log}");
    assert!(out.iter().all(|r| r["tagged_by"] == "python_tag"));
    assert!(
        json_lines(&dir.path().join("dead.jsonl")).is_empty(),
        "{log}"
    );
    // How often its memory cap made the host start a fresh instance (printed, not
    // asserted: it is the guest's allocator's business).
    let summary = log
        .lines()
        .find(|l| l.contains("records in,"))
        .unwrap_or("");
    println!("python_tag over {N} records: {summary}");
}

/// `sluice plugin new --lang python`, `build` and `test --expect`, with the
/// componentize-py that plugins/examples/python_tag/build.sh installed.
#[test]
fn a_python_plugin_scaffolded_builds_and_passes_its_expected_output() {
    let componentize = std::env::var("SLUICE_COMPONENTIZE_PY").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap();
        format!("{home}/.cache/sluice/componentize-py-0.25.1/bin/componentize-py")
    });
    assert!(
        std::path::Path::new(&componentize).exists(),
        "{componentize} is missing: plugins/examples/python_tag/build.sh installs it (scripts/test.sh runs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let sluice = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .env("SLUICE_COMPONENTIZE_PY", &componentize)
            .env(
                "SLUICE_CACHE_DIR",
                std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
            )
            .output()
            .unwrap()
    };
    let said = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let dir_arg = dir.path().display().to_string();
    let made = sluice(&[
        "plugin", "new", "pytag", "--lang", "python", "--dir", &dir_arg,
    ]);
    assert!(made.status.success(), "{}", said(&made));
    let root = dir.path().join("pytag");
    let built = sluice(&["plugin", "build", &root.display().to_string()]);
    assert!(built.status.success(), "{}", said(&built));
    assert!(
        said(&built).contains("world sluice:plugin/transform"),
        "{}",
        said(&built)
    );
    let tested = sluice(&[
        "plugin",
        "test",
        &root.join("dist/pytag.wasm").display().to_string(),
        "--input",
        &root.join("sample.jsonl").display().to_string(),
        "--expect",
        &root.join("expected.jsonl").display().to_string(),
    ]);
    assert!(tested.status.success(), "{}", said(&tested));
    assert!(
        said(&tested).contains("all 2 output(s) as in"),
        "{}",
        said(&tested)
    );
    let window = sluice(&[
        "plugin", "new", "pywin", "--lang", "python", "--kind", "window", "--dir", &dir_arg,
    ]);
    assert_eq!(window.status.code(), Some(2), "{}", said(&window));
}

fn python_dedup() -> PathBuf {
    example("python_dedup")
}

#[test]
fn a_stateful_python_plugin_keeps_a_state_per_key() {
    let example = common::repo().join("plugins/examples/python_dedup");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["plugin", "test"])
        .arg(python_dedup())
        .arg("--input")
        .arg(example.join("sample.jsonl"))
        .arg("--expect")
        .arg(example.join("expected.jsonl"))
        .args(["--key-field", "id"])
        .env(
            "SLUICE_CACHE_DIR",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("line 3: ok, 0 record(s)"), "{text}");
    assert!(text.contains("all 3 output(s) as in"), "{text}");

    // Through a pipeline: 3,000 keys, each three times, in batches the host splits
    // by nothing but size: every key once.
    let dir = tempfile::tempdir().unwrap();
    let input: String = (0..9_000)
        .map(|i| format!("{{\"id\":\"u{}\",\"copy\":{}}}\n", i % 3_000, i / 3_000))
        .collect();
    std::fs::write(dir.path().join("in.jsonl"), input).unwrap();
    let path = pipeline(
        dir.path(),
        "p.toml",
        &format!(
            r#"
[source]
type = "file"
path = "in.jsonl"
[stateful]
plugin = "{}"
key_field = "id"
[[sinks]]
type = "file"
path = "out.jsonl"
"#,
            python_dedup().display()
        ),
    );
    let mut host = Host::start(&path);
    assert!(host.wait(300).success(), "{}", host.log());
    let out = json_lines(&dir.path().join("out.jsonl"));
    assert_eq!(out.len(), 3_000, "every key once");
    assert!(out.iter().all(|r| r["copy"] == 0));
}
