//! Keyed state (`[stateful]`, the `stateful` plugin world) through `sluice run`, as a
//! user runs it: running counts exact through three `kill -9`s (every key's updates
//! 1, 2, ... n, each once), dedup across three kills of a Kafka-source pipeline (every
//! distinct key once, in a file and in a Kafka topic), the state's cap refused with a clear error, a swap that keeps
//! the state, and `sluice plugin test` carrying a key's state from line to line.

use crate::common;

use common::host::{lines, Host};
use common::kafka::{broker, create_topic, read_topic_to_quiet, unique, FAST_GROUP};
use common::{json_lines, pipeline, wasm};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Run `path` three times, each killed (SIGKILL) once `out` has grown past a fifth,
/// two fifths, three fifths of `full_bytes` (or left to end if it gets there first),
/// then once to its end. Returns how many runs were killed mid-stream.
fn kill_three_times(path: &Path, out: &Path, full_bytes: u64) -> usize {
    let mut kills = 0;
    for round in 1..=3u64 {
        let mut host = Host::start(path);
        let target = round * full_bytes / 5;
        let deadline = Instant::now() + Duration::from_secs(180);
        while std::fs::metadata(out).map_or(0, |m| m.len()) < target {
            assert!(
                Instant::now() < deadline,
                "round {round}: too slow:\n{}",
                host.log()
            );
            if host.try_exit().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if host.try_exit().is_none() {
            host.signal("-KILL");
            kills += 1;
        }
        host.wait(60);
    }
    let mut last = Host::start(path);
    let status = last.wait(300);
    assert!(status.success(), "{status}:\n{}", last.log());
    kills
}

#[test]
fn running_counts_are_exact_through_three_kills() {
    let dir = tempfile::tempdir().unwrap();
    let (total, keys) = (200_000usize, 50usize);
    let input: String = (0..total)
        .map(|i| format!("{{\"k\":\"k{}\",\"i\":{i}}}\n", i % keys))
        .collect();
    std::fs::write(dir.path().join("in.jsonl"), input).unwrap();
    let path = pipeline(
        dir.path(),
        "counts.toml",
        r#"
[pipeline]
batch_size = 128
checkpoint_interval = "30ms"
workers = 2
[source]
type = "file"
path = "in.jsonl"
[stateful]
plugin = "{RUNNING_COUNT}"
key_field = "k"
[[sinks]]
type = "file"
path = "out.jsonl"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#,
    );
    let out = dir.path().join("out.jsonl");
    // `{"count":1234,"key":"k12"}` and a newline: ~28 bytes a record.
    let kills = kill_three_times(&path, &out, total as u64 * 28);
    assert!(kills >= 2, "killed mid-stream ({kills} times)");
    // Every key's updates, in the order written: exactly 1, 2, ... n, so no record
    // counted twice (a replay run again on a restored state) or lost.
    let mut per_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for update in json_lines(&out) {
        per_key
            .entry(update["key"].as_str().unwrap().to_owned())
            .or_default()
            .push(update["count"].as_u64().unwrap());
    }
    assert_eq!(per_key.len(), keys);
    let n = (total / keys) as u64;
    for (key, counts) in &per_key {
        let expected: Vec<u64> = (1..=n).collect();
        if counts != &expected {
            let first_off = counts
                .iter()
                .zip(&expected)
                .position(|(a, b)| a != b)
                .unwrap_or(counts.len().min(expected.len()));
            panic!(
                "{key}: {} updates, first wrong at #{first_off}: {:?}",
                counts.len(),
                &counts[first_off.saturating_sub(2)..(first_off + 3).min(counts.len())]
            );
        }
    }
    assert!(
        !dir.path().join("dead.jsonl").exists()
            || json_lines(&dir.path().join("dead.jsonl")).is_empty()
    );
}

/// Messages keyed `key-<n>` (so each key's copies land in one partition), each key
/// `copies` times, all keys once before any is repeated; produced at about `rate` a
/// second on a thread while the pipeline runs.
fn produce_copies(
    topic: &str,
    keys: usize,
    copies: usize,
    rate: u64,
) -> std::thread::JoinHandle<()> {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let topic = topic.to_owned();
    std::thread::spawn(move || {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", broker())
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .unwrap();
        let started = Instant::now();
        for n in 0..keys * copies {
            let key = format!("key-{}", n % keys);
            let value = format!("{{\"id\":\"{key}\",\"copy\":{}}}", n / keys);
            loop {
                let record = BaseRecord::to(&topic).key(&key).payload(&value);
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, _)) => {
                        producer.poll(Duration::from_millis(10));
                    }
                }
            }
            producer.poll(Duration::ZERO);
            let due = Duration::from_secs_f64(n as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        producer.flush(Duration::from_secs(60)).unwrap();
    })
}

#[test]
fn dedup_across_three_kills_of_a_kafka_pipeline_keeps_every_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("dedup");
    create_topic(&topic, 4);
    let output = unique("dedup-out");
    create_topic(&output, 4);
    let group = unique("g");
    let (keys, copies) = (20_000usize, 3usize);
    let producing = produce_copies(&topic, keys, copies, 6_000);
    let path = pipeline(
        dir.path(),
        "dedup.toml",
        &format!(
            r#"
[pipeline]
batch_size = 100
checkpoint_interval = "100ms"
linger = "20ms"
[source]
type = "kafka"
brokers = "{broker}"
topics = ["{topic}"]
group_id = "{group}"
start = "earliest"
{FAST_GROUP}
[stateful]
plugin = "{{DEDUP}}"
config = {{ within = "1h" }}
[[sinks]]
type = "file"
path = "out.jsonl"
[[sinks]]
type = "kafka"
brokers = "{broker}"
topic = "{output}"
exact = true
[dead_letter]
type = "file"
path = "dead.jsonl"
"#,
            broker = broker()
        ),
    );
    let out = dir.path().join("out.jsonl");
    // `{"id":"key-12345","copy":0}` and a newline: ~28 bytes a record.
    let full = keys as u64 * 28;
    let mut mid_stream = 0;
    for round in 1..=3u64 {
        let mut host = Host::start(&path);
        let deadline = Instant::now() + Duration::from_secs(180);
        while std::fs::metadata(&out).map_or(0, |m| m.len()) < round * full / 4 {
            assert!(
                Instant::now() < deadline,
                "round {round}: too slow:\n{}",
                host.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        host.signal("-KILL");
        host.wait(60);
        if lines(&out) < keys {
            mid_stream += 1;
        }
    }
    producing.join().unwrap();
    // The last run reads to the end of what was produced, and stops there.
    let last_path = dir.path().join("dedup.toml");
    let text = std::fs::read_to_string(&last_path).unwrap().replace(
        "start = \"earliest\"",
        "start = \"earliest\"\nstop_at_end = true",
    );
    std::fs::write(&last_path, text).unwrap();
    let mut last = Host::start(&last_path);
    assert!(last.wait(300).success(), "{}", last.log());
    assert!(
        mid_stream >= 2,
        "killed before every key was written ({mid_stream} times)"
    );
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in json_lines(&out) {
        *seen
            .entry(r["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).take(3).collect();
    assert!(
        twice.is_empty(),
        "keys written more than once, e.g. {twice:?}:\n{}",
        last.log()
    );
    assert_eq!(seen.len(), keys, "every distinct key:\n{}", last.log());
    // Only the first copy of each key passes (the copies come after every key once).
    assert!(json_lines(&out).iter().all(|r| r["copy"] == 0));
    // And the Kafka sink (exact = true): what it wrote after its last checkpoint
    // before each kill is read back at the start, so nothing is produced twice.
    let produced = read_topic_to_quiet(&output, 4, keys, Duration::from_secs(3));
    let mut in_topic: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, _, value) in &produced {
        let r: serde_json::Value = serde_json::from_slice(value).unwrap();
        *in_topic
            .entry(r["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let twice: Vec<_> = in_topic.iter().filter(|(_, &n)| n > 1).take(3).collect();
    if let Some((key, _)) = twice.first() {
        for (p, o, _, v) in &produced {
            if String::from_utf8_lossy(v).contains(&format!("\"{key}\"")) {
                eprintln!(
                    "{key}: output partition {p} offset {o}: {}",
                    String::from_utf8_lossy(v)
                );
            }
        }
    }
    assert!(
        twice.is_empty(),
        "keys in the output topic more than once, e.g. {twice:?}:\n{}",
        last.log()
    );
    assert_eq!(
        in_topic.len(),
        keys,
        "every distinct key in the output topic"
    );
}

#[test]
fn state_past_its_cap_stops_the_pipeline_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let input: String = (0..40_000)
        .map(|i| format!("{{\"k\":\"user-{i}\"}}\n"))
        .collect();
    std::fs::write(dir.path().join("in.jsonl"), input).unwrap();
    let path = pipeline(
        dir.path(),
        "capped.toml",
        r#"
[source]
type = "file"
path = "in.jsonl"
[stateful]
plugin = "{RUNNING_COUNT}"
key_field = "k"
state_max_mb = 1
[[sinks]]
type = "file"
path = "out.jsonl"
"#,
    );
    let mut host = Host::start(&path);
    let status = host.wait(120);
    assert!(
        !status.success(),
        "40,000 keys of ~110 bytes are past 1 MiB"
    );
    let log = host.log();
    assert!(
        log.contains("the stateful stage `running_count` holds")
            && log.contains("past its state_max_mb = 1: raise state_max_mb, or set ttl"),
        "{log}"
    );
    // What was not acknowledged is read again on the next run (with a larger cap).
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("state_max_mb = 1", "state_max_mb = 64");
    std::fs::write(&path, text).unwrap();
    let mut again = Host::start(&path);
    assert!(again.wait(120).success(), "{}", again.log());
    let out = json_lines(&dir.path().join("out.jsonl"));
    assert_eq!(out.len(), 40_000, "every key's first update, once");
    assert!(out.iter().all(|u| u["count"] == 1));
}

/// 1,000 records of ten keys counted, `new` swapped in for running_count, ten more:
/// the updates after the swap, the host's log, and the state saved at its stop.
fn swap_mid_count(new: &Path) -> (Vec<u64>, String, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let write = |from: usize, to: usize| {
        let lines: String = (from..to)
            .map(|i| format!("{{\"k\":\"k{}\"}}\n", i % 10))
            .collect();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&input)
            .unwrap();
        std::io::Write::write_all(&mut f, lines.as_bytes()).unwrap();
    };
    write(0, 1_000);
    let path = pipeline(
        dir.path(),
        "swapped.toml",
        r#"
[pipeline]
linger = "10ms"
[source]
type = "file"
path = "in.jsonl"
follow = true
poll_interval = "20ms"
[stateful]
plugin = "{RUNNING_COUNT}"
key_field = "k"
[[sinks]]
type = "file"
path = "out.jsonl"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#,
    );
    let out = dir.path().join("out.jsonl");
    let (host, addr) = Host::start_listening(&path, &["--admin", "127.0.0.1:0"]);
    host.wait_lines(&out, 1_000);
    let swapped = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["plugin", "swap", "running_count"])
        .arg(new)
        .args(["--admin", &addr, "--json"])
        .output()
        .unwrap();
    assert!(
        swapped.status.success(),
        "{}",
        String::from_utf8_lossy(&swapped.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&swapped.stdout).unwrap();
    assert_eq!(report["stage"], "stateful", "{report}");
    write(1_000, 1_010);
    host.wait_lines(&out, 1_010);
    let updates = json_lines(&out);
    let after: Vec<u64> = updates[1_000..]
        .iter()
        .map(|u| u["count"].as_u64().unwrap())
        .collect();
    let log = host.log();
    host.stop();
    assert!(
        !dir.path().join("dead.jsonl").exists()
            || json_lines(&dir.path().join("dead.jsonl")).is_empty(),
        "no dead letters:\n{log}"
    );
    let saved = std::fs::read(dir.path().join(".sluice/swapped/windows.json")).unwrap();
    (after, log, serde_json::from_slice(&saved).unwrap())
}

#[test]
fn a_swap_hands_the_state_to_the_new_version() {
    let (after, _, _) = swap_mid_count(&wasm("running_count"));
    // Each of the ten keys had 100 records before the swap: the new version goes on
    // from the state it was handed, 101, not 1.
    assert_eq!(after, vec![101; 10]);
}

#[test]
fn a_swap_to_a_new_state_format_migrates_every_key() {
    let v2 = common::repo().join("tests/plugins/dist/running_count_state_v2.wasm");
    assert!(v2.exists(), "run scripts/build-plugins.sh");
    let (after, log, saved) = swap_mid_count(&v2);
    // Format 1 (a u64) read by the new build's `migrate` into format 2 (text): the
    // counts go on, and what the stop saved is in format 2.
    assert_eq!(after, vec![101; 10], "{log}");
    assert!(
        log.contains("10 key(s) migrated to the new plugin's state format"),
        "{log}"
    );
    let keys = saved["partitions"][0]["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 10);
    assert!(keys.iter().all(|k| k["version"] == 2), "{keys:?}");
}

#[test]
fn plugin_test_carries_a_keys_state_from_line_to_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":\"a\"}\n{\"id\":\"a\"}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["plugin", "test"])
        .arg(wasm("dedup"))
        .arg("--input")
        .arg(&input)
        .args(["--key-field", "id", "--config", "within = \"1h\""])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "line 1: ok, 1 record(s)",
        "line 2: ok, 1 record(s)",
        "line 3: ok, 0 record(s)",
        "line 4: ok, 0 record(s)",
        "state of 2 key(s) at the end",
    ] {
        assert!(stdout.contains(expected), "{expected}:\n{stdout}");
    }

    // A state given before the first line (what --state-out wrote, `a` seen at 1 s):
    // `a` repeats it, and the states after the lines come back out.
    let states = dir.path().join("states.jsonl");
    std::fs::write(
        &states,
        "{\"key\":\"a\",\"version\":1,\"data\":\"6AMAAAAAAAA=\"}\n",
    )
    .unwrap();
    let after = dir.path().join("after.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["plugin", "test"])
        .arg(wasm("dedup"))
        .arg("--input")
        .arg(&input)
        .args([
            "--key-field",
            "id",
            "--config",
            "within = \"1h\"",
            "--timestamp-ms",
            "2000",
        ])
        .arg("--state")
        .arg(&states)
        .arg("--state-out")
        .arg(&after)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("line 1: ok, 0 record(s)"), "{stdout}");
    assert!(stdout.contains("line 2: ok, 1 record(s)"), "{stdout}");
    let written = json_lines(&after);
    assert_eq!(written.len(), 2, "{written:?}");
    assert_eq!(
        written[0],
        serde_json::json!({"key": "a", "version": 1, "data": "6AMAAAAAAAA="})
    );
    assert_eq!(written[1]["key"], "b");
}

/// The newest count of each key in `files` (updates `{"key", "count"}`), and how
/// many updates each file holds per key.
fn newest_counts(files: &[&Path]) -> BTreeMap<String, u64> {
    let mut newest: BTreeMap<String, u64> = BTreeMap::new();
    for file in files.iter().filter(|f| f.exists()) {
        for u in json_lines(file) {
            let n = newest
                .entry(u["key"].as_str().unwrap().to_owned())
                .or_default();
            *n = (*n).max(u["count"].as_u64().unwrap());
        }
    }
    newest
}

#[test]
fn two_hosts_one_killed_the_state_follows_its_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("keyed-hosts");
    create_topic(&topic, 4);
    let group = unique("g");
    let host = |name: &str| {
        pipeline(
            dir.path(),
            &format!("{name}.toml"),
            &format!(
                r#"
[pipeline]
name = "{name}"
batch_size = 100
checkpoint_interval = "200ms"
linger = "20ms"
[source]
type = "kafka"
brokers = "{broker}"
topics = ["{topic}"]
group_id = "{group}"
start = "earliest"
{FAST_GROUP}
[stateful]
plugin = "{{RUNNING_COUNT}}"
state = "kafka"
[[sinks]]
type = "file"
path = "{name}.jsonl"
[dead_letter]
type = "file"
path = "{name}-dead.jsonl"
"#,
                broker = broker()
            ),
        )
    };
    let mut a = Host::start(&host("a"));
    let b = Host::start(&host("b"));
    a.wait_log(120, "an even split", |l| Host::assigned(l) == Some(2));
    let (out_a, out_b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    // 40 keys (by message key, so each stays in its partition), 500 records each.
    let (keys, each) = (40usize, 500usize);
    let producing = produce_copies(&topic, keys, each, 4_000);
    a.wait_lines(&out_a, 3_000);
    a.signal("-KILL");
    a.wait(30);
    let before_kill: BTreeMap<String, u64> = newest_counts(&[&out_a]);
    producing.join().unwrap();
    // B takes A's partitions over (once A's session has timed out) with their state.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let newest = newest_counts(&[&out_a, &out_b]);
        if newest.len() == keys && newest.values().all(|&n| n >= each as u64) {
            break;
        }
        assert!(Instant::now() < deadline, "counts {newest:?}:\n{}", b.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    // Exact: no key's count past its records (none counted twice, though B ran again
    // what A had done after its last checkpoint) and none short.
    let newest = newest_counts(&[&out_a, &out_b]);
    assert!(newest.values().all(|&n| n == each as u64), "{newest:?}");
    // And B went on from A's state: the keys of A's partitions go on in B's output
    // from A's saved count, not from 1.
    let b_first: BTreeMap<String, u64> =
        json_lines(&out_b).iter().fold(BTreeMap::new(), |mut m, u| {
            m.entry(u["key"].as_str().unwrap().to_owned())
                .or_insert(u["count"].as_u64().unwrap());
            m
        });
    let moved: Vec<&String> = before_kill.keys().filter(|k| before_kill[*k] > 1).collect();
    assert!(!moved.is_empty());
    for key in moved {
        assert!(
            b_first.get(key).is_some_and(|&first| first > 1),
            "{key}: A had counted {} before the kill, B started at {:?}:\n{}",
            before_kill[key],
            b_first.get(key),
            b.log()
        );
    }
    b.stop();
}
