//! Plugins swapped into a running `sluice run`, through its admin listener, as a user
//! does it (`sluice plugin swap`): back and forth while 100,000 records stream, each
//! record processed once by exactly one version at the returned switch points; a
//! version that traps on everything rolled back with its records processed again on
//! the old one; a canary; and new versions refused before any swap (wrong world, a
//! config their `init` refuses, no such stage).

use crate::common;

use common::host::Host;
use common::{json_lines, pipeline, wasm};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn test_build(feature: &str) -> PathBuf {
    let p = common::repo()
        .join("tests/plugins/dist")
        .join(format!("format_user_{feature}.wasm"));
    assert!(
        p.exists(),
        "{} is not built: run scripts/build-plugins.sh",
        p.display()
    );
    p
}

/// Generated users at `rate` a second -> format_user -> users.jsonl (+ 1-minute gender
/// counts -> windows.jsonl).
fn streaming(count: u64, rate: u64, rollback_window: u64) -> String {
    format!(
        r#"
[pipeline]
name = "swapped"
batch_size = 100
linger = "20ms"
# Swaps, canaries, rollbacks and migrations with batches on two workers.
workers = 2
[source]
type = "generator"
seed = 7
count = {count}
rate = {rate}
event_interval = "10ms"
start_time = "2026-01-01T00:00:00Z"
[[transforms]]
plugin = "{{FORMAT_USER}}"
swap = {{ rollback_window = {rollback_window}, rollback_error_rate = 0.2 }}
[window]
plugin = "{{GENDER_WINDOW}}"
size = "1m"
[[sinks]]
type = "file"
input = "records"
path = "users.jsonl"
[[sinks]]
type = "file"
input = "windows"
path = "windows.jsonl"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#
    )
}

/// The ids the generator makes, in its order (the same pipeline, unhurried, no swap).
fn sequence(dir: &Path, count: u64) -> HashMap<String, u64> {
    let base = dir.join("baseline");
    std::fs::create_dir_all(&base).unwrap();
    let path = pipeline(&base, "p.toml", &streaming(count, 1_000_000, 0));
    let mut host = Host::start(&path);
    assert!(host.wait(120).success(), "{}", host.log());
    let ids: HashMap<String, u64> = json_lines(&base.join("users.jsonl"))
        .iter()
        .enumerate()
        .map(|(i, u)| (u["id"].as_str().unwrap().to_owned(), i as u64))
        .collect();
    assert_eq!(ids.len() as u64, count, "the generator's ids are distinct");
    ids
}

fn start(dir: &Path, toml: &str) -> (Host, String) {
    let path = pipeline(dir, "p.toml", toml);
    let (host, addr) = Host::start_listening(&path, &["--admin", "127.0.0.1:0"]);
    // Records flowing before the first swap.
    host.wait_lines(&dir.join("users.jsonl"), 500);
    (host, addr)
}

/// `sluice plugin swap`: Ok(the host's JSON answer) or Err(what it printed).
fn swap(addr: &str, stage: &str, wasm: &Path, extra: &[&str]) -> Result<Value, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["plugin", "swap", stage])
        .arg(wasm)
        .args(["--admin", addr, "--json"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    match out.status.code() {
        Some(0) => Ok(serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))),
        Some(1) => Err(stderr),
        other => panic!("sluice plugin swap exited {other:?}: {stderr}"),
    }
}

/// Swap, retrying while the previous swap's new version is still on probation.
fn swap_when_free(addr: &str, stage: &str, wasm: &Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match swap(addr, stage, wasm, &[]) {
            Ok(v) => return v,
            Err(e) if e.contains("still being watched") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("swap refused: {e}"),
        }
    }
}

fn is_v2(user: &Value) -> bool {
    user.get("format_version") == Some(&Value::from(2))
}

#[test]
fn swapped_back_and_forth_every_record_is_processed_once_by_one_version() {
    const N: u64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let order = sequence(dir.path(), N);
    let (mut host, addr) = start(dir.path(), &streaming(N, 10_000, 200));

    let v1 = wasm("format_user");
    let v2 = test_build("v2");
    let mut switches: Vec<(u64, bool)> = Vec::new(); // (first sequence, is v2)
    let (mut pauses, mut compiles) = (Vec::new(), Vec::new());
    for k in 0..6 {
        std::thread::sleep(Duration::from_millis(900));
        let to_v2 = k % 2 == 0;
        let answer = swap_when_free(&addr, "format_user", if to_v2 { &v2 } else { &v1 });
        assert_eq!(answer["stage"], "transform");
        assert_ne!(answer["from"], answer["to"], "{answer}");
        let at = answer["switch"]["generator"]
            .as_u64()
            .unwrap_or_else(|| panic!("{answer}"));
        switches.push((at, to_v2));
        pauses.push(answer["pause_us"].as_u64().unwrap());
        compiles.push(answer["compile_ms"].as_f64().unwrap());
    }
    assert!(host.wait(120).success(), "{}", host.log());
    println!("swap pauses (µs): {pauses:?}; compile + init off the hot path (ms): {compiles:.1?}");

    assert!(
        switches.windows(2).all(|w| w[0].0 < w[1].0) && switches.last().unwrap().0 < N,
        "switch points in order, all mid-stream: {switches:?}"
    );
    let users = json_lines(&dir.path().join("users.jsonl"));
    assert_eq!(users.len() as u64, N, "every record once");
    let mut seen = vec![false; N as usize];
    let mut on_v2 = 0;
    for user in &users {
        let id = user["id"].as_str().unwrap();
        let i = *order
            .get(id)
            .unwrap_or_else(|| panic!("{id} was never generated"));
        assert!(!seen[i as usize], "{id} written twice");
        seen[i as usize] = true;
        // The version in force at record i: the last switch at or before it.
        let expected_v2 = switches
            .iter()
            .rev()
            .find(|(at, _)| *at <= i)
            .is_some_and(|s| s.1);
        assert_eq!(
            is_v2(user),
            expected_v2,
            "record {i} was processed by the wrong version (switches {switches:?})"
        );
        on_v2 += usize::from(is_v2(user));
    }
    assert!(
        on_v2 > 0 && on_v2 < users.len(),
        "both versions processed records"
    );
    assert!(json_lines(&dir.path().join("dead.jsonl")).is_empty());
    // The window counted every record once, whichever version formatted it.
    let total: u64 = json_lines(&dir.path().join("windows.jsonl"))
        .iter()
        .map(|w| w["total_count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, N);
}

#[test]
fn a_version_that_traps_on_everything_is_rolled_back_and_nothing_is_lost() {
    const N: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let (mut host, addr) = start(dir.path(), &streaming(N, 10_000, 500));
    let answer = swap(&addr, "format_user", &test_build("trap_all"), &[]).unwrap();
    let at = answer["switch"]["generator"].as_u64().unwrap();
    assert_eq!(answer["probation_records"], 500);
    host.wait_log(60, "the rollback", |l| l.contains("rolled back"));
    let status = get_status(&addr);
    let swaps = status["pipelines"][0]["swaps"].as_array().unwrap().clone();
    let outcomes: Vec<&str> = swaps
        .iter()
        .map(|s| s["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["swapped", "rolled_back"], "{swaps:?}");
    assert_eq!(
        swaps[1]["switch"]["generator"].as_u64(),
        Some(at),
        "back where it switched"
    );
    assert_eq!(
        status["pipelines"][0]["plugins"][0]["version"], answer["from"],
        "the old version runs again"
    );
    assert!(host.wait(120).success(), "{}", host.log());

    let users = json_lines(&dir.path().join("users.jsonl"));
    assert_eq!(users.len() as u64, N, "every record once: {}", host.log());
    let ids: std::collections::BTreeSet<&str> =
        users.iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len() as u64, N, "none twice");
    assert!(
        json_lines(&dir.path().join("dead.jsonl")).is_empty(),
        "the trapping version's failures were taken back with it"
    );
}

/// A stage with `schema = "schemas/user.json"`: v2's output (one field more) breaks
/// it. With a canary the swap is refused; without, the probation rolls it back and
/// the old version processes its records again: every user once, none on v2, no
/// dead letters kept.
#[test]
fn a_version_whose_output_breaks_the_schema_is_refused_or_rolled_back() {
    const N: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let schema = common::repo().join("schemas/user.json");
    let toml = streaming(N, 8_000, 500).replace(
        "swap = {",
        &format!("schema = \"{}\"\nswap = {{", schema.display()),
    );
    assert!(toml.contains("schema = "));
    let (mut host, addr) = start(dir.path(), &toml);
    let canary = swap(
        &addr,
        "format_user",
        &test_build("v2"),
        &["--canary", "300"],
    )
    .unwrap_err();
    assert!(
        canary.contains("canary") && canary.contains("not swapped"),
        "{canary}"
    );
    let answer = swap(&addr, "format_user", &test_build("v2"), &[]).unwrap();
    assert_eq!(answer["probation_records"], 500);
    host.wait_log(60, "the rollback", |l| l.contains("rolled back"));
    let status = get_status(&addr);
    let swaps = status["pipelines"][0]["swaps"].as_array().unwrap().clone();
    let last = swaps.last().unwrap();
    assert_eq!(last["outcome"], "rolled_back", "{swaps:?}");
    assert!(host.wait(120).success(), "{}", host.log());
    let users = json_lines(&dir.path().join("users.jsonl"));
    assert_eq!(users.len() as u64, N, "every record once: {}", host.log());
    assert!(users.iter().all(|u| !is_v2(u)), "no v2 output kept");
    assert!(
        json_lines(&dir.path().join("dead.jsonl")).is_empty(),
        "the rolled-back version's failures were taken back with it"
    );
}

fn get_status(addr: &str) -> Value {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    serde_json::from_str(r.split_once("\r\n\r\n").unwrap().1).unwrap()
}

#[test]
fn broken_versions_are_refused_before_the_swap_and_a_canary_guards_the_rest() {
    // Long enough (15 s) for every attempt below to land while it streams.
    const N: u64 = 60_000;
    let dir = tempfile::tempdir().unwrap();
    let (mut host, addr) = start(dir.path(), &streaming(N, 4_000, 0));

    let wrong_world = swap(&addr, "format_user", &wasm("gender_window"), &[]).unwrap_err();
    assert!(wrong_world.contains("transform"), "{wrong_world}");
    let refused = swap(&addr, "format_user", &test_build("refuse_init"), &[]).unwrap_err();
    assert!(refused.contains("refuses every config"), "{refused}");
    let nowhere = swap(&addr, "no_such_stage", &wasm("format_user"), &[]).unwrap_err();
    assert!(
        nowhere.contains("no transform, stateful stage or window named `no_such_stage`"),
        "{nowhere}"
    );
    let canary = swap(
        &addr,
        "format_user",
        &test_build("trap_all"),
        &["--canary", "300"],
    )
    .unwrap_err();
    assert!(canary.contains("canary"), "{canary}");
    // A canary that does as well as the running version: swapped, with its numbers.
    let v2 = swap(
        &addr,
        "format_user",
        &test_build("v2"),
        &["--canary", "300"],
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", host.log()));
    assert!(v2["canary"]["records"].as_u64().unwrap() >= 300, "{v2}");
    assert_eq!(v2["canary"]["new_errors"], 0);
    let at = v2["switch"]["generator"].as_u64().unwrap();
    // The window takes the open windows' state over (the same plugin, rebuilt or not).
    let window = swap(&addr, "gender_window", &wasm("gender_window"), &[]).unwrap();
    assert_eq!(window["stage"], "window");
    assert!(host.wait(120).success(), "{}", host.log());

    let users = json_lines(&dir.path().join("users.jsonl"));
    assert_eq!(users.len() as u64, N);
    let on_v2 = users.iter().filter(|u| is_v2(u)).count() as u64;
    assert_eq!(
        on_v2,
        N - at,
        "v2 from the canary's switch point on, v1 before"
    );
    assert!(users[..at as usize].iter().all(|u| !is_v2(u)));
    assert!(json_lines(&dir.path().join("dead.jsonl")).is_empty());
    let total: u64 = json_lines(&dir.path().join("windows.jsonl"))
        .iter()
        .map(|w| w["total_count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        total, N,
        "the window counted every record once across its swap"
    );
}

/// gender_window swapped mid-stream for a build with another state format: without a
/// `migrate` export it is refused (nothing changes); with one, the open windows'
/// state is converted and every window's counts equal those of a run without a swap.
#[test]
fn a_window_with_a_new_state_format_takes_over_through_migrate() {
    const N: u64 = 60_000;
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("baseline");
    std::fs::create_dir_all(&base).unwrap();
    let path = pipeline(&base, "p.toml", &streaming(N, 1_000_000, 0));
    let mut baseline = Host::start(&path);
    assert!(baseline.wait(120).success(), "{}", baseline.log());
    let expected = json_lines(&base.join("windows.jsonl"));
    assert_eq!(
        expected.len(),
        10,
        "60,000 records 10 ms apart: ten 1-minute windows"
    );

    let (mut host, addr) = start(dir.path(), &streaming(N, 6_000, 0));
    let refused = swap(
        &addr,
        "gender_window",
        &common::repo().join("tests/plugins/dist/gender_window_state_v2_no_migrate.wasm"),
        &[],
    )
    .unwrap_err();
    assert!(refused.contains("no `migrate` export"), "{refused}");
    std::thread::sleep(Duration::from_millis(1500));
    let answer = swap(
        &addr,
        "gender_window",
        &common::repo().join("tests/plugins/dist/gender_window_state_v2.wasm"),
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", host.log()));
    assert_eq!(answer["stage"], "window");
    let at = answer["switch"]["generator"].as_u64().unwrap();
    assert!(at > 0 && at < N, "mid-stream: {at}");
    assert!(host.wait(120).success(), "{}", host.log());
    assert!(
        host.log()
            .contains("migrated to the new plugin's state format"),
        "{}",
        host.log()
    );
    assert_eq!(
        json_lines(&dir.path().join("windows.jsonl")),
        expected,
        "every window exact"
    );
}

/// Every record fails on a broken plugin; `sluice dead-letters replay` runs the dead
/// letters through the fixed one into the same sinks: every user written once, and
/// the windows count them at their own event times.
#[test]
fn dead_letters_replayed_through_a_fixed_plugin_reach_the_sinks() {
    const N: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    // The streaming pipeline, one second between event times, on the trapping build
    // (named format_user, as the shipped plugin's stage is).
    let toml = streaming(N as u64, 1_000_000, 0)
        .replace("event_interval = \"10ms\"", "event_interval = \"1s\"")
        .replace(
            "plugin = \"{FORMAT_USER}\"",
            &format!(
                "name = \"format_user\"\nplugin = \"{}\"",
                test_build("trap_all").display()
            ),
        );
    let path = pipeline(dir.path(), "p.toml", &toml);
    let mut host = Host::start(&path);
    assert!(host.wait(120).success(), "{}", host.log());
    assert_eq!(json_lines(&dir.path().join("dead.jsonl")).len(), N);
    assert!(json_lines(&dir.path().join("users.jsonl")).is_empty());

    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["dead-letters", "replay"])
        .arg(dir.path().join("dead.jsonl"))
        .arg("--pipeline")
        .arg(&path)
        .arg("--plugin")
        .arg(format!("format_user={}", wasm("format_user").display()))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!("replayed {N} dead letter(s)")),
        "{said}"
    );
    let users = json_lines(&dir.path().join("users.jsonl"));
    assert_eq!(users.len(), N);
    let ids: std::collections::BTreeSet<&str> =
        users.iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), N);
    // 500 records one second apart from 00:00: nine windows, at their event times.
    let windows = json_lines(&dir.path().join("windows.jsonl"));
    assert_eq!(windows.len(), 9, "{windows:?}");
    assert_eq!(windows[0]["window_start"], "2026-01-01T00:00:00Z");
    let total: u64 = windows
        .iter()
        .map(|w| w["total_count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, N as u64);
    assert!(json_lines(&dir.path().join("dead.replayed.jsonl")).is_empty());
}

/// `watch = true`: a version written over the plugin file is swapped in once the file
/// holds still (a write in two halves is not taken half-way); garbage written there is
/// reported and ignored, the running version staying.
#[test]
fn a_watched_plugin_file_is_swapped_when_a_new_version_is_written() {
    const N: u64 = 40_000;
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("format_user.wasm");
    std::fs::copy(wasm("format_user"), &plugin).unwrap();
    let toml = streaming(N, 4_000, 0).replace(
        "plugin = \"{FORMAT_USER}\"",
        "plugin = \"format_user.wasm\"\nwatch = true",
    );
    let (mut host, _addr) = start(dir.path(), &toml);
    host.wait_log(30, "the watcher", |l| l.contains("watching"));

    std::fs::write(&plugin, b"not a component at all").unwrap();
    host.wait_log(30, "the garbage ignored", |l| l.contains("is ignored"));

    let v2 = std::fs::read(test_build("v2")).unwrap();
    let (first, rest) = v2.split_at(v2.len() / 2);
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&plugin).unwrap();
        f.write_all(first).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        f.write_all(rest).unwrap();
    }
    host.wait_log(30, "the swap", |l| {
        l.contains("transform `format_user` swapped")
    });
    assert!(host.wait(120).success(), "{}", host.log());
    let log = host.log();
    assert_eq!(
        log.matches("is ignored").count(),
        1,
        "only the garbage:\n{log}"
    );
    let at: u64 = log
        .split("transform `format_user` swapped")
        .nth(1)
        .and_then(|r| r.split("\"generator\": ").nth(1))
        .and_then(|r| r.split('}').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no switch point in\n{log}"));
    let users = json_lines(&dir.path().join("users.jsonl"));
    assert_eq!(users.len() as u64, N);
    assert!(users[..at as usize].iter().all(|u| !is_v2(u)));
    assert!(users[at as usize..].iter().all(is_v2), "v2 from {at} on");
}

#[test]
fn a_swap_whose_canary_output_breaks_a_registry_topics_schema_is_refused() {
    use common::kafka::{broker, read_payloads, unique};
    use common::stores::registry;
    const N: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("swap-avro");
    let avsc = common::repo().join("schemas/user.avsc");
    // The seeds' stream, written as Avro of the user row beside a file.
    let toml = streaming(N, 2_000, 0).replace(
        "[[sinks]]\ntype = \"file\"\ninput = \"windows\"",
        &format!(
            r#"[[sinks]]
type = "kafka"
brokers = "{broker}"
topic = "{topic}"
create_topic = {{ partitions = 1 }}
format = "avro"
registry = {{ url = "{registry}" }}
value_schema = "{avsc}"
[[sinks]]
type = "file"
input = "windows""#,
            broker = broker(),
            registry = registry(),
            avsc = avsc.display()
        ),
    );
    assert!(toml.contains("format = \"avro\""));
    let (mut host, addr) = start(dir.path(), &toml);
    // v2 adds `format_version`, which the Avro schema has no field for. No canary is
    // asked for: a swap feeding a registry-backed sink gets one.
    let refused = swap(&addr, "format_user", &test_build("v2"), &[]).unwrap_err();
    assert!(
        refused.contains("would not fit the schema") && refused.contains("/format_version"),
        "{refused}"
    );
    // The same version again fits, and is swapped in after its canary.
    let answer = swap(&addr, "format_user", &wasm("format_user"), &[]).unwrap();
    assert_eq!(answer["canary"]["new_misfits"], 0, "{answer}");
    assert!(host.wait(120).success(), "{}", host.log());
    assert!(json_lines(&dir.path().join("dead.jsonl")).is_empty());
    let written = read_payloads(&topic, N as usize);
    assert_eq!(written.len() as u64, N);
    assert!(
        written
            .iter()
            .all(|v| v.as_ref().is_some_and(|v| v[0] == 0)),
        "framed"
    );
}
