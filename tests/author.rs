//! The plugin author's workflow end to end, as the README tells it: `sluice plugin new`
//! in a folder outside this repository, `sluice plugin build`, `sluice plugin test
//! --expect` (passing, then failing line by line), and `sluice plugin swap` into a
//! running pipeline.

use crate::common;

use common::host::Host;
use common::{json_lines, pipeline};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env(
            "SLUICE_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `new` then `build`: the component's path.
fn scaffold_and_build(dir: &Path, name: &str, kind: &str) -> PathBuf {
    let dir_arg = dir.display().to_string();
    let made = sluice(&["plugin", "new", name, "--kind", kind, "--dir", &dir_arg]);
    assert!(made.status.success(), "{}", text(&made));
    let root = dir.join(name);
    for file in [
        "Cargo.toml",
        ".cargo/config.toml",
        "src/lib.rs",
        "sample.jsonl",
        "expected.jsonl",
        "sdk/wit/sluice-plugin.wit",
    ] {
        assert!(root.join(file).exists(), "{file} scaffolded");
    }
    let built = sluice(&["plugin", "build", &root.display().to_string()]);
    assert!(built.status.success(), "{}", text(&built));
    let stdout = String::from_utf8_lossy(&built.stdout);
    let wasm = PathBuf::from(stdout.lines().next().unwrap());
    // Where the README and --help say, whatever cargo's target folder (the tests run
    // with CARGO_TARGET_DIR set, as a user who sourced scripts/env.sh does).
    let promised = root
        .join("dist")
        .join(format!("{}.wasm", name.replace('-', "_")));
    assert_eq!(wasm, promised, "{stdout}");
    assert!(wasm.exists(), "{stdout}");
    assert!(
        stdout.contains(&format!("world sluice:plugin/{kind}")),
        "{stdout}"
    );
    wasm
}

#[test]
fn scaffold_build_test_and_swap_a_new_plugin() {
    // Outside the repository: the crate must carry what it builds against.
    let dir = tempfile::tempdir().unwrap();
    let tagger = scaffold_and_build(dir.path(), "tagger", "transform");
    let root = dir.path().join("tagger");
    let input = root.join("sample.jsonl").display().to_string();
    let expected = root.join("expected.jsonl");
    let wasm = tagger.display().to_string();

    let ok = sluice(&[
        "plugin",
        "test",
        &wasm,
        "--input",
        &input,
        "--expect",
        &expected.display().to_string(),
    ]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("all 2 output(s) as in"), "{}", text(&ok));

    let wrong = dir.path().join("wrong.jsonl");
    std::fs::write(
        &wrong,
        std::fs::read_to_string(&expected)
            .unwrap()
            .replace("Ada", "Bob")
            + "{\"one\":\"more\"}\n",
    )
    .unwrap();
    let bad = sluice(&[
        "plugin",
        "test",
        &wasm,
        "--input",
        &input,
        "--expect",
        &wrong.display().to_string(),
    ]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    let report = text(&bad);
    assert!(report.contains("mismatch at output 1:"), "{report}");
    assert!(
        report.contains("missing output 3: expected {\"one\":\"more\"}"),
        "{report}"
    );
    assert!(!report.contains("mismatch at output 2"), "{report}");

    let counter = scaffold_and_build(dir.path(), "counter", "window");
    let croot = dir.path().join("counter");
    let counted = sluice(&[
        "plugin",
        "test",
        &counter.display().to_string(),
        "--input",
        &croot.join("sample.jsonl").display().to_string(),
        "--expect",
        &croot.join("expected.jsonl").display().to_string(),
        "--timestamp-ms",
        "0",
    ]);
    assert!(counted.status.success(), "{}", text(&counted));

    // A stateful plugin: each key's count carried from line to line.
    let seen = scaffold_and_build(dir.path(), "seen", "stateful");
    let sroot = dir.path().join("seen");
    let tested = sluice(&[
        "plugin",
        "test",
        &seen.display().to_string(),
        "--input",
        &sroot.join("sample.jsonl").display().to_string(),
        "--expect",
        &sroot.join("expected.jsonl").display().to_string(),
        "--key-field",
        "id",
    ]);
    assert!(tested.status.success(), "{}", text(&tested));
    assert!(
        text(&tested).contains("ada: version 1"),
        "{}",
        text(&tested)
    );

    // Into a running pipeline, in place of format_user.
    const N: u64 = 30_000;
    let run = tempfile::tempdir().unwrap();
    let path = pipeline(
        run.path(),
        "p.toml",
        &format!(
            r#"
[source]
type = "generator"
count = {N}
rate = 5000
[[transforms]]
plugin = "{{FORMAT_USER}}"
[[sinks]]
type = "file"
path = "out.jsonl"
"#
        ),
    );
    let (mut host, addr) = Host::start_listening(&path, &["--admin", "127.0.0.1:0"]);
    host.wait_lines(&run.path().join("out.jsonl"), 1000);
    let swapped = sluice(&["plugin", "swap", "format_user", &wasm, "--admin", &addr]);
    assert!(swapped.status.success(), "{}", text(&swapped));
    let said = text(&swapped);
    assert!(said.contains("swapped transform `format_user`"), "{said}");
    let at: u64 = said
        .split("generator at ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("no switch point in {said}"));
    assert!(host.wait(120).success(), "{}", host.log());
    let out = json_lines(&run.path().join("out.jsonl"));
    assert_eq!(out.len() as u64, N);
    let tagged = out.iter().filter(|r| r["tagged_by"] == "tagger").count() as u64;
    assert_eq!(tagged, N - at, "the new plugin from the switch point on");
    assert!(out[..at as usize]
        .iter()
        .all(|r| r.get("tagged_by").is_none()));
}
