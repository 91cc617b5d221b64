//! The `sluice` binary as a user meets it: exit codes, messages, help, signals.

use crate::common;

use common::{json_lines, pipeline, repo, wasm};
use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env_remove("SLUICE_LOG")
        .env(
            "SLUICE_CACHE_DIR",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const SMALL: &str = r#"
[source]
type = "generator"
count = 300
event_interval = "1s"
start_time = "2026-01-01T00:00:00Z"
poison_every = 100

[[transforms]]
plugin = "{FORMAT_USER}"

[window]
plugin = "{GENDER_WINDOW}"
size = "1m"

[[sinks]]
type = "file"
path = "users.jsonl"

[[sinks]]
type = "stdout"
input = "windows"

[dead_letter]
type = "file"
path = "dead.jsonl"
"#;

#[test]
fn validate_accepts_every_shipped_pipeline() {
    for name in [
        "quickstart",
        "randomuser",
        "local_demo",
        "ingest_users",
        "users_to_stores",
        "api_ingest",
        "route_users",
        "dedup_users",
        "users_per_country",
        "enrich_users",
    ] {
        let path = repo().join(format!("pipelines/{name}.toml"));
        let out = sluice(&["validate", path.to_str().unwrap()]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains(&format!(": ok (pipeline `{name}`")),
            "{stdout}"
        );
    }
}

/// `sluice validate` on SMALL with one replacement; returns the exit code, stderr and
/// the pipeline's path.
fn validate_variant(
    from: &str,
    to: &str,
) -> (Option<i32>, String, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = pipeline(dir.path(), "p.toml", &SMALL.replace(from, to));
    let out = sluice(&["validate", path.to_str().unwrap()]);
    (out.status.code(), text(&out.stderr), path, dir)
}

#[test]
fn validate_checks_schema_files_and_names_the_key_the_file_and_the_fault() {
    let (code, err, path, _dir) = validate_variant(
        "plugin = \"{FORMAT_USER}\"\n",
        "plugin = \"{FORMAT_USER}\"\nschema = \"missing.json\"\n",
    );
    assert_eq!(code, Some(2), "{err}");
    let key = format!("{}:11: `transforms[0].schema` cannot read ", path.display());
    assert!(err.contains(&key) && err.contains("missing.json"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.json"),
        "{\n  \"type\": \"object\",\n}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("wrong.json"), r#"{"type": 5}"#).unwrap();
    for (file, fault) in [
        ("broken.json", "broken.json:3:1: is not JSON"),
        ("wrong.json", "not a valid JSON Schema"),
    ] {
        let text_ = SMALL.replace(
            "path = \"users.jsonl\"\n",
            &format!("path = \"users.jsonl\"\nschema = \"{file}\"\n"),
        );
        let path = pipeline(dir.path(), "p.toml", &text_);
        let out = sluice(&["validate", path.to_str().unwrap()]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("sinks[0].schema") && err.contains(fault),
            "{file}: {err}"
        );
    }
    // The shipped schema validates, on a stage and on a sink.
    let shipped = repo().join("schemas/user.json");
    let good = SMALL
        .replace(
            "plugin = \"{FORMAT_USER}\"\n",
            &format!(
                "plugin = \"{{FORMAT_USER}}\"\nschema = \"{}\"\n",
                shipped.display()
            ),
        )
        .replace(
            "path = \"users.jsonl\"\n",
            &format!(
                "path = \"users.jsonl\"\nschema = \"{}\"\n",
                shipped.display()
            ),
        );
    let path = pipeline(dir.path(), "good.toml", &good);
    let out = sluice(&["validate", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn validate_reports_a_misspelt_key_with_file_line_column_and_exits_2() {
    let (code, err, path, _dir) =
        validate_variant("size = \"1m\"", "size = \"1m\"\nalowed_lateness = \"5s\"");
    assert_eq!(code, Some(2));
    let located = format!("{}:15:1: unknown field `alowed_lateness`", path.display());
    assert!(err.contains(&located), "{err}");
    assert!(
        err.contains("expected one of") && err.contains("`allowed_lateness`"),
        "{err}"
    );
}

#[test]
fn validate_names_a_missing_plugin_and_a_refused_config() {
    let (code, err, _, _dir) = validate_variant("{FORMAT_USER}", "nowhere/fu.wasm");
    assert_eq!(code, Some(2));
    assert!(err.contains("nowhere/fu.wasm"), "{err}");

    let plugin = "plugin = \"{FORMAT_USER}\"";
    let with_config = format!("{plugin}\nconfig = {{ shout = true }}");
    let (code, err, _, _dir) = validate_variant(plugin, &with_config);
    assert_eq!(code, Some(2));
    assert!(err.contains("refused its configuration"), "{err}");
}

#[test]
fn run_processes_everything_and_prints_windows() {
    let dir = tempfile::tempdir().unwrap();
    let path = pipeline(dir.path(), "small.toml", SMALL);
    let out = sluice(&["run", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let windows: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(windows.len(), 5, "300 s of event time in 1-minute windows");
    let users = json_lines(&dir.path().join("users.jsonl"));
    let dead = json_lines(&dir.path().join("dead.jsonl"));
    assert_eq!((users.len(), dead.len()), (297, 3));
    let counted: u64 = windows
        .iter()
        .map(|w| w["total_count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 297);
    assert!(
        text(&out.stderr).contains("300 records in"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_missing_pipeline_file_or_bad_arguments_exit_2() {
    let out = sluice(&["run", "/nonexistent/p.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/p.toml"));
    assert_eq!(sluice(&["run"]).status.code(), Some(2));
    assert_eq!(sluice(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn every_subcommand_explains_itself_with_an_example() {
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["validate", "--help"],
        &["plugin", "--help"],
        &["plugin", "inspect", "--help"],
        &["plugin", "test", "--help"],
    ] {
        let out = sluice(args);
        assert!(out.status.success());
        assert!(
            text(&out.stdout).contains("Example"),
            "{args:?}: {}",
            text(&out.stdout)
        );
    }
}

#[test]
fn plugin_inspect_names_the_world() {
    let out = sluice(&["plugin", "inspect", wasm("format_user").to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("world:   sluice:plugin/transform@0.1.0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("sluice:plugin/transformer@0.1.0 (instance)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("size:    ") && stdout.contains("imports:"),
        "{stdout}"
    );
    let out = sluice(&["plugin", "inspect", wasm("gender_window").to_str().unwrap()]);
    assert!(text(&out.stdout).contains("world:   sluice:plugin/window@0.1.0"));
}

#[test]
fn plugin_test_prints_outputs_and_errors_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let one = common::fixture("randomuser/response_results1.json");
    std::fs::write(&input, format!("{}\n\n{{\"broken\n", one.trim())).unwrap();
    let out = plugin_test("format_user", &input, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("line 1: ok, 1 record(s)"), "{stdout}");
    assert!(stdout.contains("\"first_name\":\"Liam\""), "{stdout}");
    assert!(
        stdout.contains("line 3: error: value is not valid JSON"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 record(s) in: 1 ok (1 out), 1 error(s)"),
        "{stdout}"
    );

    let genders = dir.path().join("g.jsonl");
    std::fs::write(
        &genders,
        "{\"gender\":\"male\"}\n{\"gender\":\"female\"}\nnope\n",
    )
    .unwrap();
    let out = plugin_test("gender_window", &genders, &["--timestamp-ms", "0"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("line 3: rejected"), "{stdout}");
    assert!(
        stdout.contains("\"male_count\":1,\"female_count\":1,\"other_count\":0,\"total_count\":2"),
        "{stdout}"
    );
}

/// `sluice plugin test` on a built plugin.
fn plugin_test(plugin: &str, input: &std::path::Path, extra: &[&str]) -> Output {
    let wasm = wasm(plugin);
    let mut args = vec![
        "plugin",
        "test",
        wasm.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    sluice(&args)
}

fn records_in(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.contains(" records in"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let before = line.split(" records in").next().unwrap();
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Start `sluice run` with piped output and wait until it says it is running (its
/// signal handlers are in place). Returns the child and a handle that yields all of
/// its stderr once it exits.
fn start(path: &std::path::Path) -> (std::process::Child, std::thread::JoinHandle<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", path.to_str().unwrap()])
        .env_remove("SLUICE_LOG")
        .env(
            "SLUICE_CACHE_DIR",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let collector = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let line = line.unwrap();
            if line.contains("running pipeline") {
                let _ = ready_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    ready_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("sluice never said it was running");
    (child, collector)
}

fn sigterm(child: &std::process::Child) {
    signal(child, "-TERM");
}

fn signal(child: &std::process::Child, which: &str) {
    let status = Command::new("kill")
        .args([which, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn sigterm_finishes_in_flight_work_and_flushes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let endless = SMALL.replace("count = 300\n", "rate = 3000.0\n");
    let path = pipeline(dir.path(), "endless.toml", &endless);
    let (child, stderr) = start(&path);
    std::thread::sleep(Duration::from_millis(1500));
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    let stderr = stderr.join().unwrap();
    assert!(out.status.success(), "{stderr}");
    let n = records_in(&stderr);
    assert!(n > 0);
    let users = json_lines(&dir.path().join("users.jsonl")).len() as u64;
    let dead = json_lines(&dir.path().join("dead.jsonl")).len() as u64;
    assert_eq!(users + dead, n, "every record read was written somewhere");
    let counted: u64 = text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["total_count"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(
        counted, users,
        "open windows were closed and printed at shutdown"
    );
}

#[test]
fn a_sink_that_stops_reading_holds_the_source_back() {
    let dir = tempfile::tempdir().unwrap();
    // Unthrottled source, users to stdout, which this test does not read for a while.
    let toml = r#"
[pipeline]
batch_size = 64
queue_batches = 2
[source]
type = "generator"
[[transforms]]
plugin = "{FORMAT_USER}"
[[sinks]]
type = "stdout"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#;
    let path = pipeline(dir.path(), "slow.toml", toml);
    let (mut child, stderr) = start(&path);
    std::thread::sleep(Duration::from_millis(2000));
    sigterm(&child);
    // Now drain stdout so the shutdown flush can finish.
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = stderr.join().unwrap();
    assert!(out.status.success(), "{stderr}");
    let n = records_in(&stderr);
    // Unblocked, the generator makes tens of thousands of users a second. Held back
    // by a full pipe, it can only have filled the queues: a few batches per stage
    // plus what the pipe buffer holds (~64 KiB, ~150 rows).
    assert!(n < 2_000, "source was not held back: {n} records read");
    assert_eq!(
        stdout.lines().count() as u64,
        n,
        "and none of them was lost"
    );
}

#[test]
fn plugin_test_names_the_line_that_traps() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a\ntrap\nb\n").unwrap();
    let out = plugin_test("misbehave", &input, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("line 1: ok, 1 record(s)"), "{stdout}");
    assert!(
        stdout.contains("line 2: failed: plugin trapped"),
        "{stdout}"
    );
    assert!(stdout.contains("line 3: ok, 1 record(s)"), "{stdout}");
}

#[test]
fn the_shipped_sample_records_work_with_plugin_test() {
    let input = repo().join("tests/fixtures/randomuser/users.jsonl");
    let out = plugin_test("format_user", &input, &[]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("7 record(s) in: 5 ok (5 out), 2 error(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 4: error: missing required field `login.username`"),
        "{stdout}"
    );
}

#[test]
fn a_failing_sink_stops_the_pipeline_with_exit_1_and_says_which() {
    let dir = tempfile::tempdir().unwrap();
    // /dev/full accepts the open and fails every write with ENOSPC.
    let path = pipeline(
        dir.path(),
        "full.toml",
        &SMALL
            .replace("count = 300\n", "")
            .replace("path = \"users.jsonl\"", "path = \"/dev/full\""),
    );
    let out = sluice(&["run", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("/dev/full") && err.contains("No space left"),
        "{err}"
    );
}

#[test]
fn ctrl_c_stops_cleanly_too() {
    let dir = tempfile::tempdir().unwrap();
    let endless = SMALL.replace("count = 300\n", "rate = 1000.0\n");
    let path = pipeline(dir.path(), "int.toml", &endless);
    let (child, stderr) = start(&path);
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    let stderr = stderr.join().unwrap();
    assert!(out.status.success(), "{stderr}");
    let users = json_lines(&dir.path().join("users.jsonl")).len() as u64;
    let dead = json_lines(&dir.path().join("dead.jsonl")).len() as u64;
    assert_eq!(users + dead, records_in(&stderr));
}

#[test]
fn an_absurd_duration_is_a_config_error_not_a_panic() {
    let (code, err, path, _dir) = validate_variant(
        "[source]",
        "[pipeline]\nlinger = \"400000000000y\"\n[source]",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:3:", path.display()))
            && err.contains("`pipeline.linger`")
            && err.contains("365 days"),
        "{err}"
    );
}

/// Killed three times mid-stream and restarted, a pipeline from a file source into a
/// file sink ends with every record in the output once: each restart cuts the output
/// back to its last checkpoint and does not write again what the source sends again.
#[test]
fn three_kills_leave_every_record_in_the_output_once() {
    let dir = tempfile::tempdir().unwrap();
    let total = 300_000u64;
    let input: String = (0..total).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    std::fs::write(dir.path().join("in.jsonl"), &input).unwrap();
    let path = pipeline(
        dir.path(),
        "kills.toml",
        r#"
[pipeline]
batch_size = 128
checkpoint_interval = "30ms"
workers = 2
[source]
type = "file"
path = "in.jsonl"
[[transforms]]
plugin = "{MISBEHAVE}"
[[sinks]]
type = "file"
path = "out.jsonl"
"#,
    );
    let out = dir.path().join("out.jsonl");
    let mut kills = 0;
    for round in 1..=3u64 {
        let (mut child, _stderr) = start(&path);
        // Killed once it is part-way through, between checkpoints or not.
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let target = round * total / 5;
        while std::fs::metadata(&out).map_or(0, |m| m.len()) < target * 9 {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: too slow"
            );
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if child.try_wait().unwrap().is_none() {
            signal(&child, "-KILL");
            kills += 1;
        }
        let _ = child.wait();
    }
    assert!(kills >= 2, "killed mid-stream ({kills} times)");
    let (mut child, stderr) = start(&path);
    assert!(child.wait().unwrap().success());
    let log = stderr.join().unwrap();
    let lines = std::fs::read_to_string(&out).unwrap();
    let mut seen = vec![0u32; total as usize];
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("whole lines");
        seen[v["n"].as_u64().unwrap() as usize] += 1;
    }
    let twice = seen.iter().filter(|&&n| n > 1).count();
    let missing = seen.iter().filter(|&&n| n == 0).count();
    assert_eq!((missing, twice), (0, 0), "every record once:\n{log}");
}

#[test]
fn two_quick_sigterms_as_timeout_sends_them_still_flush_everything() {
    let dir = tempfile::tempdir().unwrap();
    let endless = SMALL.replace("count = 300\n", "rate = 3000.0\n");
    let path = pipeline(dir.path(), "twice.toml", &endless);
    let (child, stderr) = start(&path);
    std::thread::sleep(Duration::from_millis(800));
    // coreutils `timeout` signals the child, then its whole process group.
    sigterm(&child);
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    let stderr = stderr.join().unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("quitting without flushing"), "{stderr}");
    let users = json_lines(&dir.path().join("users.jsonl")).len() as u64;
    let dead = json_lines(&dir.path().join("dead.jsonl")).len() as u64;
    assert!(users > 0);
    assert_eq!(
        users + dead,
        records_in(&stderr),
        "everything read was written"
    );
}

#[test]
fn validate_refuses_sink_paths_that_cannot_be_written() {
    // A folder where the users file should be.
    let (code, err, path, dir) = validate_variant("path = \"users.jsonl\"", "path = \"out\"");
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let out = sluice(&["validate", path.to_str().unwrap()]);
    assert_eq!(code, Some(0), "no folder yet: fine ({err})");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("sinks[0]") && err.contains("is a folder"),
        "{err}"
    );

    // A dead-letter file under a file, not a folder.
    let (code, err, _, _dir) =
        validate_variant("path = \"dead.jsonl\"", "path = \"/dev/null/dead.jsonl\"");
    assert_eq!(code, Some(2));
    assert!(
        err.contains("dead_letter") && err.contains("not a folder"),
        "{err}"
    );
}

#[test]
fn numbers_that_cannot_work_are_refused_by_validate() {
    for (from, to, field) in [
        (
            "count = 300",
            "count = 300\nusers_per_record = 100000000",
            "source.users_per_record",
        ),
        (
            "[source]",
            "[pipeline]\nqueue_batches = 1000000000\n[source]",
            "pipeline.queue_batches",
        ),
        ("count = 300", "count = 300\nrate = 1e12", "source.rate"),
    ] {
        let (code, err, _, _dir) = validate_variant(from, to);
        assert_eq!(code, Some(2), "{field}: {err}");
        assert!(err.contains(&format!("`{field}`")), "{err}");
    }
}

/// `count` records that each say `word` to the misbehave plugin, in one batch; the
/// run must succeed with the host under 400 MiB. Its dead letters and peak memory
/// (KiB).
fn misbehave_in_one_batch(word: &str, count: usize) -> (Vec<serde_json::Value>, u64) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), format!("{word}\n").repeat(count)).unwrap();
    let toml = r#"
[pipeline]
batch_size = COUNT
linger = "500ms"
[source]
type = "file"
path = "in.txt"
[[transforms]]
plugin = "{MISBEHAVE}"
[[sinks]]
type = "null"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#;
    let path = pipeline(
        dir.path(),
        "p.toml",
        &toml.replace("COUNT", &count.to_string()),
    );
    let (out, peak) = run_watching_memory(&path);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(peak < 400 * 1024, "host peaked at {} MiB", peak / 1024);
    (json_lines(&dir.path().join("dead.jsonl")), peak)
}

/// `sluice run` the pipeline; its output and its peak resident memory, in KiB.
fn run_watching_memory(path: &std::path::Path) -> (Output, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--no-progress", path.to_str().unwrap()])
        .env(
            "SLUICE_CACHE_DIR",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(peak_kib(child.id()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(5));
    }
    (child.wait_with_output().unwrap(), peak)
}

/// Peak resident memory (VmHWM) of a running process, in KiB.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_plugin_returning_huge_outputs_cannot_swell_the_host() {
    // 100 records, each of which the plugin answers with 8 MiB of output: 800 MiB a
    // batch if the host kept it all.
    let (dead, peak) = misbehave_in_one_batch("huge", 100);
    println!(
        "peak RSS with a plugin returning 8 MiB per record: {} MiB",
        peak / 1024
    );
    let through = 100 - dead.len();
    assert!(
        (1..=8).contains(&through),
        "what fits in the 64 MiB cap got through: {through}"
    );
    assert!(
        dead.iter()
            .any(|d| d["reason"] == "plugin output exceeded its cap of 64 MiB"),
        "{:?}",
        dead.first()
    );
}

#[test]
fn after_a_kill_every_acknowledged_position_is_in_the_output_or_the_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    // Every 7th line makes the plugin fail that record: it becomes a dead letter.
    let mut input = String::new();
    let mut starts = Vec::new();
    for i in 0..200_000u64 {
        starts.push((input.len() as u64, i));
        if i % 7 == 3 {
            input.push_str("error\n");
        } else {
            input.push_str(&format!("{{\"n\":{i}}}\n"));
        }
    }
    std::fs::write(dir.path().join("in.jsonl"), &input).unwrap();
    let path = pipeline(
        dir.path(),
        "kill.toml",
        r#"
[pipeline]
batch_size = 128
checkpoint_interval = "20ms"
[source]
type = "file"
path = "in.jsonl"
[[transforms]]
plugin = "{MISBEHAVE}"
[[sinks]]
type = "file"
path = "out.jsonl"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#,
    );
    let saved = dir.path().join(".sluice/kill/file-source-positions.json");
    let (mut child, _stderr) = start(&path);
    // Killed once over a thousand lines are acknowledged (a wait on the saved
    // position, not a sleep: a busy machine may take longer to get there).
    let offset_of = |saved: &std::path::Path| -> Option<u64> {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(saved).ok()?).ok()?;
        v.as_object()?.values().next()?["offset"].as_u64()
    };
    let enough = starts[1_100].0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while offset_of(&saved).is_none_or(|o| o < enough) {
        assert!(
            std::time::Instant::now() < deadline,
            "no position past line 1,100 saved"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    signal(&child, "-KILL");
    let _ = child.wait();

    let positions: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
    let acknowledged = positions.as_object().unwrap().values().next().unwrap()["offset"]
        .as_u64()
        .unwrap();
    assert!(acknowledged < input.len() as u64, "killed before the end");
    // Lines past the last sync may be torn; everything acknowledged was synced.
    let parse = |file: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.path().join(file))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let written: std::collections::HashSet<u64> = parse("out.jsonl")
        .iter()
        .map(|v| v["n"].as_u64().unwrap())
        .collect();
    let dead: std::collections::HashSet<u64> = parse("dead.jsonl")
        .iter()
        .map(|d| d["position"]["offset"].as_u64().unwrap())
        .collect();
    let mut checked = 0;
    for &(start, i) in starts.iter().take_while(|(s, _)| *s < acknowledged) {
        if i % 7 == 3 {
            assert!(
                dead.contains(&start),
                "line {i} (byte {start}) is not in the dead letters"
            );
        } else {
            assert!(written.contains(&i), "line {i} is not in the output");
        }
        checked += 1;
    }
    assert!(
        checked > 1000,
        "only {checked} lines acknowledged before the kill"
    );
}

#[test]
fn a_refused_value_in_a_tagged_table_is_located_at_its_line() {
    let (code, err, path, _dir) = validate_variant("count = 300", "count = -1");
    assert_eq!(code, Some(2));
    // SMALL's `count` is on line 4, under `[source]` on line 2.
    assert!(err.contains(&format!("{}:4:1:", path.display())), "{err}");
}

#[test]
fn a_plugin_pointing_many_records_at_the_same_bytes_is_stopped_before_the_copy() {
    // Each record is answered with 256 MiB of output made of the same 1 MiB: 5 GiB
    // for the batch if the host copied before counting.
    let (dead, peak) = misbehave_in_one_batch("alias", 20);
    println!(
        "peak RSS with a plugin aliasing 256 MiB of output: {} MiB",
        peak / 1024
    );
    assert_eq!(dead.len(), 20, "every record refused");
    assert!(
        dead[0]["reason"] == "plugin output exceeded its cap of 64 MiB",
        "{}",
        dead[0]["reason"]
    );
}

#[test]
fn a_sink_path_that_is_a_folder_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = pipeline(
        dir.path(),
        "folder.toml",
        &SMALL.replace("path = \"users.jsonl\"", "path = \"out\""),
    );
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let out = sluice(&["run", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.matches("Is a directory").count(), 1, "{err}");
    assert!(err.contains("sinks[0] (file out)"), "{err}");
}

#[test]
fn several_pipelines_run_in_one_process_and_stop_together() {
    let dir = tempfile::tempdir().unwrap();
    let one = |name: &str| {
        format!(
            "[pipeline]\nname = \"{name}\"\n[source]\ntype = \"generator\"\nrate = 500.0\n\
             [[sinks]]\ntype = \"file\"\npath = \"{name}.jsonl\"\n[dead_letter]\ntype = \"stderr\"\n"
        )
    };
    let a = pipeline(dir.path(), "a.toml", &one("first"));
    let b = pipeline(dir.path(), "b.toml", &one("second"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", a.to_str().unwrap(), b.to_str().unwrap()])
        .env_remove("SLUICE_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    sigterm(&child);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{stderr}");
    for name in ["first", "second"] {
        let written = json_lines(&dir.path().join(format!("{name}.jsonl"))).len();
        assert!(written > 0, "{name} ran");
        assert!(
            stderr.contains(&format!("{name}: finished"))
                && stderr.contains(&format!("{written} records in")),
            "{name}: {stderr}"
        );
    }

    // Two pipelines of one name would share state and logs: refused.
    let c = pipeline(dir.path(), "c.toml", &one("first"));
    let out = sluice(&["validate", a.to_str().unwrap(), c.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("are both named `first`"),
        "{}",
        text(&out.stderr)
    );
}

/// A file source -> gender_window -> a file of window results; its window state is
/// kept in `state/` beside it.
fn windowed_file_pipeline(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::write(
        dir.join("in.jsonl"),
        "{\"gender\":\"male\"}\n{\"gender\":\"female\"}\n",
    )
    .unwrap();
    pipeline(
        dir,
        "w.toml",
        r#"
[pipeline]
state_dir = "state"
[source]
type = "file"
path = "in.jsonl"
[window]
plugin = "{GENDER_WINDOW}"
size = "1m"
[[sinks]]
type = "file"
input = "windows"
path = "windows.jsonl"
"#,
    )
}

#[test]
fn window_state_the_plugin_refuses_stops_the_run_before_any_data_moves() {
    let dir = tempfile::tempdir().unwrap();
    let path = windowed_file_pipeline(dir.path());
    let input = dir.path().join("in.jsonl");
    // Saved by "another build": the window's accumulator is in state version 99.
    let snapshot = serde_json::json!({
        "format": 1,
        "window_size_ms": 60000,
        "plugin": "gender_window",
        "partitions": [{
            "origin": {"file": {"path": input}},
            "covered": 0,
            "max_event_ms": 0,
            "windows": [{"start_ms": 0, "version": 99, "data": "AQID", "first_offset": 0, "last_offset": 0}],
        }],
    });
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("state/windows.json"), snapshot.to_string()).unwrap();

    let out = sluice(&["run", "--no-progress", path.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("refuses the saved state of window 0 of")
            && err.contains("state version 99")
            && err.contains("gender_window state version 99 is not supported"),
        "{err}"
    );
    assert!(
        !dir.path().join("windows.jsonl").exists(),
        "nothing was read or written: {err}"
    );

    // A snapshot of another window size is refused as clearly.
    let resized = snapshot.to_string().replace("60000", "30000");
    std::fs::write(dir.path().join("state/windows.json"), resized).unwrap();
    let out = sluice(&["run", "--no-progress", path.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("was saved with windows of 30000 ms sliding by 30000 ms, but [window] is now 60000 ms sliding by 60000 ms"),
        "{err}"
    );
}

#[test]
fn an_idle_stream_still_emits_its_last_window_and_later_records_for_it_are_late() {
    use common::host::{lines, Host};
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let user = |g: &str, at: &str| format!("{{\"gender\":\"{g}\",\"at\":\"{at}\"}}\n");
    std::fs::write(
        &input,
        user("male", "2026-01-01T00:00:05Z") + &user("female", "2026-01-01T00:00:30Z"),
    )
    .unwrap();
    let path = pipeline(
        dir.path(),
        "idle.toml",
        r#"
[pipeline]
checkpoint_interval = "200ms"
[source]
type = "file"
path = "in.jsonl"
follow = true
poll_interval = "100ms"
event_time = { field = "at", format = "rfc3339" }
[window]
plugin = "{GENDER_WINDOW}"
size = "1m"
idle_timeout = "1s"
[[sinks]]
type = "file"
input = "windows"
path = "windows.jsonl"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#,
    );
    let host = Host::start(&path);
    let windows = dir.path().join("windows.jsonl");
    // No record passes the window's end: only idleness can close it.
    host.wait_lines(&windows, 1);
    let got = common::json_lines(&windows);
    assert_eq!(got[0]["window_start"], "2026-01-01T00:00:00Z");
    assert_eq!(
        (
            got[0]["male_count"].as_u64(),
            got[0]["female_count"].as_u64()
        ),
        (Some(1), Some(1))
    );
    // A record for the emitted window, arriving after it: late, not a second result.
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    f.write_all(user("male", "2026-01-01T00:00:50Z").as_bytes())
        .unwrap();
    drop(f);
    host.wait_lines(&dir.path().join("dead.jsonl"), 1);
    let dead = common::json_lines(&dir.path().join("dead.jsonl"));
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("late record"),
        "{dead:?}"
    );
    host.stop();
    assert_eq!(lines(&windows), 1, "the window was emitted once");
}

#[test]
fn two_processes_cannot_share_a_state_folder() {
    use common::host::Host;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.jsonl"), "{\"n\":1}\n").unwrap();
    let path = pipeline(
        dir.path(),
        "shared.toml",
        r#"
[source]
type = "file"
path = "in.jsonl"
follow = true
[[sinks]]
type = "file"
path = "out.jsonl"
"#,
    );
    let first = Host::start(&path);
    first.wait_lines(&dir.path().join("out.jsonl"), 1);
    let out = sluice(&["run", "--no-progress", path.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is in use by another sluice process"), "{err}");
    first.stop();
    // Free again once the first has stopped.
    let mut again = Host::start(&path);
    again.wait_log(30, "a start", |l| l.contains("running pipeline"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    again.stop();
}

/// `bytes` with a custom section appended: another build of the same plugin, as far
/// as anything can tell (another hash, another cache entry), with the same code.
fn rebuilt(bytes: &[u8]) -> Vec<u8> {
    let name = b"sluice-test-rebuild";
    let payload = b"built again";
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(payload);
    let mut out = bytes.to_vec();
    out.push(0); // custom section
    out.push(section.len() as u8); // LEB128, < 128
    out.extend(section);
    out
}

#[test]
fn saved_window_state_survives_a_rebuilt_plugin_with_the_same_state_version() {
    use common::host::{lines, Host};
    let dir = tempfile::tempdir().unwrap();
    let rebuilt_path = dir.path().join("gender_window_rebuilt.wasm");
    let original = std::fs::read(common::wasm("gender_window")).unwrap();
    std::fs::write(&rebuilt_path, rebuilt(&original)).unwrap();
    let input = dir.path().join("in.jsonl");
    let user =
        |g: &str, s: u32| format!("{{\"gender\":\"{g}\",\"at\":\"2026-01-01T00:00:{s:02}Z\"}}\n");
    std::fs::write(
        &input,
        user("male", 1) + &user("female", 2) + &user("male", 3),
    )
    .unwrap();
    let toml = |plugin: &str| {
        format!(
            r#"
[pipeline]
name = "rebuild"
checkpoint_interval = "200ms"
[source]
type = "file"
path = "in.jsonl"
follow = true
poll_interval = "100ms"
event_time = {{ field = "at", format = "rfc3339" }}
[window]
plugin = "{plugin}"
size = "1m"
idle_timeout = "2s"
[[sinks]]
type = "file"
path = "users.jsonl"
[[sinks]]
type = "file"
input = "windows"
path = "windows.jsonl"
"#
        )
    };
    let first = Host::start(&pipeline(
        dir.path(),
        "rebuild.toml",
        &toml("{GENDER_WINDOW}"),
    ));
    first.wait_lines(&dir.path().join("users.jsonl"), 3);
    // Stopped before the window closes: its 3 users are saved as window state.
    first.stop();
    assert_eq!(lines(&dir.path().join("windows.jsonl")), 0);

    let second = Host::start(&pipeline(
        dir.path(),
        "rebuild.toml",
        &toml(&rebuilt_path.display().to_string()),
    ));
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    f.write_all(user("female", 4).as_bytes()).unwrap();
    drop(f);
    second.wait_lines(&dir.path().join("windows.jsonl"), 1);
    let log = second.log();
    second.stop();
    let w = &common::json_lines(&dir.path().join("windows.jsonl"))[0];
    assert_eq!(
        (w["male_count"].as_u64(), w["female_count"].as_u64()),
        (Some(2), Some(2)),
        "the 3 users saved by the first build and the 1 seen by the second: {w}\n{log}"
    );
    assert!(log.contains("state restored from"), "{log}");
}

/// `{"n":i}` lines for `range`.
fn numbered(range: std::ops::Range<usize>) -> String {
    range.map(|i| format!("{{\"n\":{i}}}\n")).collect()
}

/// The `n` of every line of a file.
fn numbers(path: &std::path::Path) -> Vec<u64> {
    json_lines(path)
        .iter()
        .map(|v| v["n"].as_u64().unwrap())
        .collect()
}

/// A followed `input` (polled every `poll`) into `out.jsonl`, checkpointed every
/// `checkpoint`.
fn followed(
    dir: &std::path::Path,
    input: &str,
    checkpoint: &str,
    poll: &str,
) -> std::path::PathBuf {
    let toml = format!(
        "[pipeline]\ncheckpoint_interval = \"{checkpoint}\"\nlinger = \"10ms\"\n[source]\ntype = \"file\"\npath = \"{input}\"\nfollow = true\npoll_interval = \"{poll}\"\n[[sinks]]\ntype = \"file\"\npath = \"out.jsonl\"\n"
    );
    pipeline(dir, "followed.toml", &toml)
}

/// `cp app.log app.log.1 && : > app.log`, then more lines than before written at once:
/// by the next poll the file has grown past the old offset, and only its first bytes
/// tell that it is other content. Every line is read, once, and the log says why.
#[test]
fn a_followed_file_rotated_by_copytruncate_loses_no_line() {
    use common::host::Host;
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, numbered(0..50)).unwrap();
    let path = followed(dir.path(), "app.log", "100ms", "300ms");
    let out = dir.path().join("out.jsonl");
    let host = Host::start(&path);
    host.wait_lines(&out, 50);
    std::fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    f.write_all(numbered(50..200).as_bytes()).unwrap();
    drop(f);
    host.wait_lines(&out, 200);
    // Then a plain truncation to nothing, and a few lines.
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&log, "").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    std::fs::write(&log, numbered(200..203)).unwrap();
    host.wait_lines(&out, 203);
    let said = host.log();
    host.stop();
    assert_eq!(numbers(&out), (0..203).collect::<Vec<u64>>(), "{said}");
    assert!(said.contains("truncated or rewritten in place"), "{said}");
    // A restart reads nothing again.
    let mut again = Host::start(&path);
    again.wait_log(30, "a start", |l| l.contains("running pipeline"));
    std::thread::sleep(Duration::from_millis(1000));
    again.stop();
    assert_eq!(common::host::lines(&out), 203);
}

#[test]
fn a_byte_order_mark_is_not_part_of_the_first_line_and_a_fifo_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bom.jsonl"),
        format!("\u{feff}{}", numbered(0..3)),
    )
    .unwrap();
    let toml = |input: &str| {
        format!("[source]\ntype = \"file\"\npath = \"{input}\"\n[[sinks]]\ntype = \"file\"\npath = \"out.jsonl\"\n[dead_letter]\ntype = \"file\"\npath = \"dead.jsonl\"\n")
    };
    let path = pipeline(dir.path(), "bom.toml", &toml("bom.jsonl"));
    let out = sluice(&["run", "--no-progress", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(numbers(&dir.path().join("out.jsonl")), [0, 1, 2]);
    assert_eq!(common::host::lines(&dir.path().join("dead.jsonl")), 0);

    // A FIFO would block the open until a writer came (and a SIGTERM with it).
    let fifo = dir.path().join("pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let path = pipeline(dir.path(), "fifo.toml", &toml("pipe"));
    let started = std::time::Instant::now();
    let out = sluice(&["run", "--no-progress", path.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is not a regular file or a folder"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// With no checkpoint yet (a long interval), a kill leaves the sink with lines the
/// source will send again: the length at the sink's first open is its first
/// checkpoint, so the restart cuts back to it and every line is there once.
#[test]
fn a_kill_before_the_first_checkpoint_does_not_double_the_file_sink() {
    use common::host::Host;
    let dir = tempfile::tempdir().unwrap();
    // Enough that the sink has written much of it (past its 256 KiB buffer) before
    // the kill.
    let pad = "x".repeat(100);
    let input: String = (0..20_000)
        .map(|i| format!("{{\"n\":{i},\"pad\":\"{pad}\"}}\n"))
        .collect();
    std::fs::write(dir.path().join("in.jsonl"), input).unwrap();
    let path = followed(dir.path(), "in.jsonl", "1h", "100ms");
    let out = dir.path().join("out.jsonl");
    let host = Host::start(&path);
    host.wait_lines(&out, 5_000);
    host.signal("-KILL");
    drop(host);
    let written = common::host::lines(&out);
    assert!(written >= 5_000, "{written}");
    let mut again = Host::start(&path);
    again.wait_log(30, "a start", |l| l.contains("running pipeline"));
    std::thread::sleep(Duration::from_millis(3000));
    let said = again.log();
    again.stop();
    let got = numbers(&out);
    assert_eq!(got.len(), 20_000, "each line once: {said}");
    assert!(got.iter().copied().eq(0..20_000), "in order");
    assert!(
        said.contains("cut back to its last checkpoint (0 bytes)"),
        "{said}"
    );
}

/// A dead-letter line for `value`, as the file output writes them.
fn dead_letter_line(value: &str) -> String {
    serde_json::json!({
        "stage": "transform", "plugin": "format_user", "offset": 0, "reason": "x",
        "record": {"key": null, "value": value, "timestamp_ms": 1, "headers": []}
    })
    .to_string()
        + "\n"
}

/// A bad line anywhere in a dead-letter file replays nothing (each bad line named);
/// fixed, the file replays every record once.
#[test]
fn a_dead_letter_file_with_a_bad_line_replays_nothing_and_once_fixed_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let user = |seed: u64| {
        let config: sluice::sources::generator::GeneratorConfig =
            toml::from_str(&format!("seed = {seed}")).unwrap();
        let mut rng = sluice::sources::SplitMix64::new(seed);
        String::from_utf8(sluice::sources::generator::value(&config, &mut rng, 0)).unwrap()
    };
    let good: Vec<String> = (1..=5).map(|s| dead_letter_line(&user(s))).collect();
    let broken = format!(
        "{}{}{{\"stage\": \"transform\", \"plugin\": \"format_user\"}}\n{}{}{}",
        good[0],
        good[1],
        good[2],
        good[3],
        &good[4][..good[4].len() / 2] // torn
    );
    let file = dir.path().join("dead.jsonl");
    std::fs::write(&file, &broken).unwrap();
    let path = pipeline(
        dir.path(),
        "p.toml",
        "[source]\ntype = \"generator\"\ncount = 1\n[[transforms]]\nplugin = \"{FORMAT_USER}\"\n[[sinks]]\ntype = \"file\"\npath = \"users.jsonl\"\n",
    );
    let replay = || {
        sluice(&[
            "dead-letters",
            "replay",
            file.to_str().unwrap(),
            "--pipeline",
            path.to_str().unwrap(),
            "--plugin",
            &format!("format_user={}", wasm("format_user").display()),
        ])
    };
    let out = replay();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{}:3: ", file.display())), "{err}");
    assert!(err.contains(&format!("{}:6: ", file.display())), "{err}");
    assert!(err.contains("nothing was replayed"), "{err}");
    let users = dir.path().join("users.jsonl");
    assert_eq!(common::host::lines(&users), 0, "nothing written");
    std::fs::write(&file, good.concat()).unwrap();
    let out = replay();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(common::host::lines(&users), 5, "each record once");
}

/// An input that is all garbage stops after max_dead_letter_run dead letters in a row;
/// poison among good records never does.
#[test]
fn a_run_of_dead_letters_stops_the_pipeline_and_poison_among_good_records_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let garbage: String = (0..100).map(|i| format!("garbage {i}\n")).collect();
    std::fs::write(dir.path().join("garbage.txt"), garbage).unwrap();
    let mixed: String = (0..100)
        .map(|i| {
            if i % 5 == 4 {
                format!("{{\"n\":{i}}}\n")
            } else {
                format!("garbage {i}\n")
            }
        })
        .collect();
    std::fs::write(dir.path().join("mixed.txt"), mixed).unwrap();
    let toml = |input: &str, run: u32, batch: u32| {
        format!(
            "[pipeline]\nmax_dead_letter_run = {run}\nbatch_size = {batch}\n[source]\ntype = \"file\"\npath = \"{input}\"\nevent_time = {{ field = \"n\", format = \"epoch_ms\" }}\n[[sinks]]\ntype = \"file\"\npath = \"{input}.out\"\n[dead_letter]\ntype = \"file\"\npath = \"{input}.dead\"\n"
        )
    };
    let path = pipeline(dir.path(), "garbage.toml", &toml("garbage.txt", 10, 4));
    let out = sluice(&["run", "--no-progress", path.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("dead letters in a row"), "{err}");
    let dead = common::host::lines(&dir.path().join("garbage.txt.dead"));
    assert!((10..=20).contains(&dead), "stopped near the limit: {dead}");
    // Batches of 8 with 6 or 7 dead letters each, over a limit of 3: a good record
    // in each batch breaks the run, wherever it stands.
    let path = pipeline(dir.path(), "mixed.toml", &toml("mixed.txt", 3, 8));
    let out = sluice(&["run", "--no-progress", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(common::host::lines(&dir.path().join("mixed.txt.dead")), 80);
}

/// A file replaced while the host is stopped is read from its start at positions past
/// every one handed on before (a mark saved ahead of the reading), not from the
/// acknowledged offset, which may lag what a sink or the window state already holds.
#[test]
fn a_file_replaced_while_stopped_is_read_at_positions_past_all_before() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "not json\n{\"n\":1}\n").unwrap();
    let path = pipeline(
        dir.path(),
        "replaced.toml",
        "[source]\ntype = \"file\"\npath = \"in.jsonl\"\nevent_time = { field = \"n\", format = \"epoch_ms\" }\n[[sinks]]\ntype = \"file\"\npath = \"out.jsonl\"\n[dead_letter]\ntype = \"file\"\npath = \"dead.jsonl\"\n",
    );
    let run = || {
        let out = sluice(&["run", "--no-progress", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stderr)
    };
    run();
    // Another file under the name (another inode), its first line bad too.
    std::fs::remove_file(&input).unwrap();
    std::fs::write(&input, "still not json\n{\"n\":2}\n").unwrap();
    let said = run();
    assert!(said.contains("is not the file read before"), "{said}");
    assert_eq!(numbers(&dir.path().join("out.jsonl")), [1, 2]);
    let offsets: Vec<u64> = json_lines(&dir.path().join("dead.jsonl"))
        .iter()
        .map(|d| d["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets[0], 0);
    assert!(offsets[1] >= 64 << 20, "past the saved mark: {offsets:?}");
}

#[test]
fn validate_checks_avro_value_schemas_and_names_the_file_and_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.avsc"),
        "{\n  \"type\": \"record\",\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("wrong.avsc"),
        r#"{"type": "record", "name": "U", "fields": [{"name": "a", "type": "strin"}]}"#,
    )
    .unwrap();
    for (file, fault) in [
        ("broken.avsc", "not JSON (line 3, column 1)"),
        ("wrong.avsc", "not an Avro schema"),
        ("missing.avsc", "cannot read"),
    ] {
        let kafka = format!(
            "type = \"kafka\"\nbrokers = \"127.0.0.1:9\"\ntopic = \"t\"\nformat = \"avro\"\nregistry = {{ url = \"http://127.0.0.1:9\" }}\nvalue_schema = \"{file}\"\n"
        );
        let text_ = SMALL.replace("type = \"file\"\npath = \"users.jsonl\"\n", &kafka);
        let path = pipeline(dir.path(), "p.toml", &text_);
        let out = sluice(&["validate", path.to_str().unwrap()]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("sinks[0]") && err.contains(file) && err.contains(fault),
            "{file}: {err}"
        );
    }
    // A .json schema with format = "avro" is named as the wrong kind.
    let kafka = "type = \"kafka\"\nbrokers = \"127.0.0.1:9\"\ntopic = \"t\"\nformat = \"avro\"\nregistry = { url = \"http://127.0.0.1:9\" }\nvalue_schema = \"user.json\"\n";
    let path = pipeline(
        dir.path(),
        "p.toml",
        &SMALL.replace("type = \"file\"\npath = \"users.jsonl\"\n", kafka),
    );
    let err = text(&sluice(&["validate", path.to_str().unwrap()]).stderr);
    assert!(
        err.contains("`sinks[0].value_schema` must be a .avsc file"),
        "{err}"
    );
    // The shipped schema validates.
    let kafka = kafka.replace(
        "user.json",
        &repo().join("schemas/user.avsc").display().to_string(),
    );
    let path = pipeline(
        dir.path(),
        "p.toml",
        &SMALL.replace("type = \"file\"\npath = \"users.jsonl\"\n", &kafka),
    );
    let out = sluice(&["validate", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
