//! Kafka end to end, against a real broker (never a mock of the client): `sluice run`
//! producing to a topic and consuming from it, stopped gracefully, killed, restarted,
//! two hosts in one group, poison messages.
//!
//! The broker comes from `SLUICE_TEST_KAFKA`, else `scripts/servers.sh start kafka`.
//! Every test uses topics and groups of its own, so they share one broker.

use crate::common;

use common::host::{lines, Host};
use common::kafka::{
    broker, committed, create_topic, produce, produce_with_raw_header, producer, read_all,
    read_payloads, unique, Raw, FAST_GROUP,
};
use common::{json_lines, pipeline, wasm};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// topic -> (transforms) -> `out` file, dead letters to `dead.jsonl`.
fn consumer(
    dir: &Path,
    name: &str,
    topic: &str,
    group: &str,
    extra: &str,
    transforms: &str,
) -> PathBuf {
    pipeline(
        dir,
        &format!("{name}.toml"),
        &format!(
            r#"
[pipeline]
batch_size = 100
checkpoint_interval = "300ms"
linger = "20ms"
[source]
type = "kafka"
brokers = "{broker}"
topics = ["{topic}"]
group_id = "{group}"
{extra}
{FAST_GROUP}
{transforms}
[[sinks]]
type = "file"
path = "{name}.jsonl"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#,
            broker = broker()
        ),
    )
}

fn ids(path: &Path) -> Vec<String> {
    json_lines(path)
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect()
}

fn produce_users(dir: &Path, topic: &str, count: u64) -> BTreeSet<String> {
    let status = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--no-progress"])
        .arg(producer(dir, topic, count, None, ""))
        .env(
            "SLUICE_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .status()
        .unwrap();
    assert!(status.success());
    let produced: BTreeSet<String> = ids(&dir.join("produced.jsonl")).into_iter().collect();
    assert_eq!(produced.len() as u64, count, "distinct generated users");
    produced
}

fn counts(ids: &[String]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for id in ids {
        *counts.entry(id.as_str()).or_insert(0) += 1;
    }
    counts
}

#[test]
fn round_trip_delivers_every_id_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("roundtrip");
    let produced = produce_users(dir.path(), &topic, 10_000);
    let group = unique("g");
    let path = consumer(dir.path(), "out", &topic, &group, "stop_at_end = true", "");
    let mut host = Host::start(&path);
    let status = host.wait(180);
    assert!(status.success(), "{}", host.log());
    let got = ids(&dir.path().join("out.jsonl"));
    assert_eq!(got.len(), 10_000, "every record once");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), produced);
    // And the group's commit covers them all: 10,000 over 4 partitions.
    let total: i64 = committed(&group, &topic, 4)
        .iter()
        .map(|o| o.unwrap_or(0))
        .sum();
    assert_eq!(total, 10_000);
}

/// A consumer joins, a producer streams 10,000 users at 2,000/s, and the consumer is
/// stopped (`signal`) part-way; a second consumer in the same group finishes.
fn stop_mid_stream_and_resume(signal: &str) -> (BTreeSet<String>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("resume");
    create_topic(&topic, 4);
    let group = unique("g");
    let path = consumer(dir.path(), "out", &topic, &group, "", "");
    let out = dir.path().join("out.jsonl");
    let mut first = Host::start(&path);
    first.wait_log(90, "partition assignment", |l| Host::assigned(l) == Some(4));
    let mut producing = Host::start(&producer(dir.path(), &topic, 10_000, Some(2_000), ""));
    first.wait_lines(&out, 4_000);
    first.signal(signal);
    let status = first.wait(120);

    let at_stop = lines(&out);
    assert!(at_stop < 10_000, "stopped mid-stream ({at_stop} read)");
    if signal == "-TERM" {
        assert!(status.success(), "{status}:\n{}", first.log());
    }
    assert!(producing.wait(120).success(), "{}", producing.log());
    let produced: BTreeSet<String> = ids(&dir.path().join("produced.jsonl"))
        .into_iter()
        .collect();

    let second = Host::start(&path);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got: BTreeSet<String> = ids(&out).into_iter().collect();
        if got.is_superset(&produced) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} ids after the restart:\n{}",
            got.len(),
            produced.len(),
            second.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    second.stop();
    (produced, ids(&out))
}

#[test]
fn a_graceful_stop_and_restart_loses_none_and_repeats_none() {
    let (produced, got) = stop_mid_stream_and_resume("-TERM");
    let repeated: Vec<_> = counts(&got).into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(
        repeated.is_empty(),
        "{} ids twice, e.g. {:?}",
        repeated.len(),
        repeated.first()
    );
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), produced);
}

/// The consumer is at least once, the file sink makes it exact: the records read
/// again after the kill (past the group's last commit) are in the file already, or
/// were cut back with the bytes written after the last checkpoint.
#[test]
fn a_kill_and_restart_loses_none_and_repeats_none() {
    let (produced, got) = stop_mid_stream_and_resume("-KILL");
    let repeated: Vec<_> = counts(&got).into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(
        repeated.is_empty(),
        "{} ids twice, e.g. {:?}",
        repeated.len(),
        repeated.first()
    );
    assert_eq!(
        got.into_iter().collect::<BTreeSet<_>>(),
        produced,
        "every id"
    );
}

#[test]
fn the_commit_never_runs_ahead_of_what_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("durable");
    let produced = produce_users(dir.path(), &topic, 3_000);
    let group = unique("g");
    // No checkpoint for an hour: the sink writes (its buffer spills to the file), but
    // nothing is synced, so nothing may be committed.
    let slow = consumer(dir.path(), "out", &topic, &group, "", "")
        .to_string_lossy()
        .into_owned();
    let text = std::fs::read_to_string(&slow)
        .unwrap()
        .replace("\"300ms\"", "\"1h\"");
    std::fs::write(&slow, text).unwrap();
    let out = dir.path().join("out.jsonl");
    let mut host = Host::start(Path::new(&slow));
    host.wait_lines(&out, 1_000);
    std::thread::sleep(Duration::from_millis(500));
    host.signal("-KILL");
    host.wait(30);
    assert!(lines(&out) >= 1_000, "the sink wrote before the kill");
    assert_eq!(
        committed(&group, &topic, 4),
        vec![None; 4],
        "no commit without a checkpoint"
    );

    let path = consumer(
        dir.path(),
        "again",
        &topic,
        &group,
        "stop_at_end = true",
        "",
    );
    let mut again = Host::start(&path);
    assert!(again.wait(180).success(), "{}", again.log());
    let mut all: BTreeSet<String> = ids(&out).into_iter().collect();
    all.extend(ids(&dir.path().join("again.jsonl")));
    assert_eq!(all, produced, "nothing lost");
    assert_eq!(
        lines(&dir.path().join("again.jsonl")),
        3_000,
        "everything was read again: nothing had been committed"
    );
}

#[test]
fn two_hosts_in_one_group_split_the_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("split");
    create_topic(&topic, 4);
    let group = unique("g");
    let mut a = Host::start(&consumer(dir.path(), "a", &topic, &group, "", ""));
    a.wait_log(90, "first assignment", |l| Host::assigned(l) == Some(4));
    let mut b = Host::start(&consumer(dir.path(), "b", &topic, &group, "", ""));
    // The broker rebalances slowly: wait for it, whatever it takes.
    b.wait_log(180, "second host's assignment", |l| {
        Host::assigned(l).is_some_and(|n| n > 0)
    });
    a.wait_log(180, "rebalance", |l| {
        Host::assigned(l).is_some_and(|n| n < 4)
    });
    let (na, nb) = (
        Host::assigned(&a.log()).unwrap(),
        Host::assigned(&b.log()).unwrap(),
    );
    assert_eq!(na + nb, 4, "the partitions are split: {na} + {nb}");

    let produced = produce_users(dir.path(), &topic, 10_000);
    let deadline = Instant::now() + Duration::from_secs(120);
    let (out_a, out_b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    loop {
        let mut got: BTreeSet<String> = ids(&out_a).into_iter().collect();
        got.extend(ids(&out_b));
        if got == produced {
            break;
        }
        assert!(Instant::now() < deadline, "{} of 10000 ids", got.len());
        std::thread::sleep(Duration::from_millis(200));
    }
    a.stop();
    b.stop();
    let (ia, ib) = (ids(&out_a), ids(&out_b));
    assert!(
        !ia.is_empty() && !ib.is_empty(),
        "both hosts delivered: {} + {}",
        ia.len(),
        ib.len()
    );
    assert_eq!(ia.len() + ib.len(), 10_000, "none twice");
}

#[test]
fn poison_messages_go_to_the_dead_letters_with_their_positions() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("poison");
    create_topic(&topic, 1);
    let user = |seed: u64| {
        let config: sluice::sources::generator::GeneratorConfig =
            toml::from_str(&format!("seed = {seed}")).unwrap();
        let mut rng = sluice::sources::SplitMix64::new(seed);
        sluice::sources::generator::value(&config, &mut rng, 0)
    };
    let big = format!(
        r#"{{"gender": "female", "pad": "{}"}}"#,
        "x".repeat(1 << 20)
    );
    let big_len = big.len();
    let messages: Vec<Raw> = vec![
        (None, Some(user(1))),
        (None, Some(b"not json at all".to_vec())),
        (
            None,
            Some(br#"{"gender": "male", "name": {"first": "Tru"#.to_vec()),
        ),
        (None, Some(br#"{"gender": "male"}"#.to_vec())),
        (None, Some(Vec::new())),
        (Some(b"k".to_vec()), None),
        (None, Some(big.into_bytes())),
        (None, Some(user(2))),
    ];
    produce(&topic, &messages);
    // A header name that is not UTF-8 (rdkafka's own reader panics on it), then a
    // good user after it: the source goes on.
    produce_with_raw_header(&topic, b"\xff\xfebad", b"v", &user(3));
    produce(&topic, &[(None, Some(user(4)))]);
    let group = unique("g");
    let transform = format!(
        "[[transforms]]\nplugin = \"{}\"",
        wasm("format_user").display()
    );
    let path = consumer(
        dir.path(),
        "out",
        &topic,
        &group,
        "stop_at_end = true",
        &transform,
    );
    let mut host = Host::start(&path);
    let status = host.wait(180);
    assert!(status.success(), "the pipeline goes on: {}", host.log());

    assert_eq!(
        ids(&dir.path().join("out.jsonl")).len(),
        3,
        "the good users, the one after the bad header included"
    );
    let mut dead = json_lines(&dir.path().join("dead.jsonl"));
    // The source's own dead letters go out before the transform's of the same batch.
    dead.sort_by_key(|d| d["offset"].as_u64());
    let offsets: Vec<u64> = dead.iter().map(|d| d["offset"].as_u64().unwrap()).collect();
    assert_eq!(offsets, [1, 2, 3, 4, 5, 6, 8], "{dead:#?}");
    for d in &dead {
        assert_eq!(d["position"]["topic"], topic.as_str());
        assert_eq!(d["position"]["partition"], 0);
        assert_eq!(d["position"]["offset"], d["offset"]);
        let stage = if d["offset"] == 8 {
            "source"
        } else {
            "transform"
        };
        assert_eq!(d["stage"], stage, "{d}");
        assert!(d["reason"].as_str().unwrap().len() > 5, "{d}");
    }
    // An empty value and a tombstone stay apart, so a replay keeps the null.
    assert_eq!(dead[3]["record"]["value"], "", "{}", dead[3]);
    assert_eq!(
        dead[4]["record"]["value"],
        serde_json::Value::Null,
        "{}",
        dead[4]
    );
    let bad_header = &dead[6];
    assert!(
        bad_header["reason"]
            .as_str()
            .unwrap()
            .contains("header 0's name is not UTF-8 (bytes fffe626164)"),
        "{bad_header}"
    );
    assert_eq!(
        dead[5]["record"]["value"].as_str().unwrap().len(),
        big_len,
        "the 1 MiB value is kept whole"
    );
    assert_eq!(
        committed(&group, &topic, 1),
        [Some(10)],
        "offsets still advance"
    );
}

/// A tombstone read from one topic and written to another stays a tombstone (not an
/// empty value), and an empty value stays empty.
#[test]
fn a_tombstone_stays_null_through_a_kafka_sink() {
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = (unique("nulls-in"), unique("nulls-out"));
    create_topic(&from, 1);
    let messages: Vec<Raw> = vec![
        (Some(b"a".to_vec()), None),
        (Some(b"b".to_vec()), Some(Vec::new())),
        (Some(b"c".to_vec()), Some(b"{}".to_vec())),
    ];
    produce(&from, &messages);
    // A producer's own header of the name the host marks nulls with changes nothing.
    produce_with_raw_header(&from, b"sluice.null-value", b"", b"");
    let path = pipeline(
        dir.path(),
        "nulls.toml",
        &format!(
            r#"
[source]
type = "kafka"
brokers = "{broker}"
topics = ["{from}"]
group_id = "{group}"
stop_at_end = true
{FAST_GROUP}
[[sinks]]
type = "kafka"
brokers = "{broker}"
topic = "{to}"
create_topic = {{ partitions = 1 }}
"#,
            broker = broker(),
            group = unique("g"),
        ),
    );
    let mut host = Host::start(&path);
    assert!(host.wait(120).success(), "{}", host.log());
    assert_eq!(
        read_payloads(&to, 4),
        [
            None,
            Some(Vec::new()),
            Some(b"{}".to_vec()),
            Some(Vec::new())
        ]
    );
}

#[test]
fn dead_letters_can_go_to_a_kafka_topic() {
    let dir = tempfile::tempdir().unwrap();
    let dlq = unique("dlq");
    let path = pipeline(
        dir.path(),
        "p.toml",
        &format!(
            r#"
[source]
type = "generator"
count = 10
poison_every = 2
[[transforms]]
plugin = "{{FORMAT_USER}}"
[[sinks]]
type = "null"
[dead_letter]
type = "kafka"
brokers = "{broker}"
topic = "{dlq}"
create_topic = {{ partitions = 1 }}
"#,
            broker = broker()
        ),
    );
    let mut host = Host::start(&path);
    assert!(host.wait(120).success(), "{}", host.log());
    let got = read_all(&dlq, 5);
    assert_eq!(got.len(), 5, "every second record is poisoned");
    for (value, headers) in &got {
        let h: BTreeMap<&str, &str> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(h["sluice.stage"], "transform");
        assert_eq!(h["sluice.plugin"], "format_user");
        assert!(!h["sluice.reason"].is_empty());
        let position: serde_json::Value = serde_json::from_str(h["sluice.position"]).unwrap();
        assert_eq!(position["source"], "generator");
        assert_eq!((position["sequence"].as_u64().unwrap() + 1) % 2, 0);
        assert!(!value.is_empty(), "the original bytes");
    }
}

#[test]
fn after_a_kill_the_saved_window_state_is_taken_up_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("windows");
    create_topic(&topic, 1);
    let group = unique("g");
    let consume = |stop_at_end: bool| {
        pipeline(
            dir.path(),
            &format!("windows-{stop_at_end}.toml"),
            &format!(
                r#"
[pipeline]
# One pipeline, run twice: its window state (state_dir) is the same.
name = "windows"
batch_size = 50
checkpoint_interval = "200ms"
linger = "20ms"
[source]
type = "kafka"
brokers = "{broker}"
topics = ["{topic}"]
group_id = "{group}"
stop_at_end = {stop_at_end}
{FAST_GROUP}
[window]
plugin = "{{GENDER_WINDOW}}"
size = "1m"
[[sinks]]
type = "file"
input = "windows"
path = "windows.jsonl"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#,
                broker = broker()
            ),
        )
    };
    let produce = pipeline(
        dir.path(),
        "produce.toml",
        &format!(
            r#"
[source]
type = "generator"
seed = 5
count = 4000
rate = 1000
event_interval = "100ms"
start_time = "2026-01-01T00:00:00Z"
[[transforms]]
plugin = "{{FORMAT_USER}}"
[[sinks]]
type = "kafka"
brokers = "{broker}"
topic = "{topic}"
[[sinks]]
type = "file"
path = "produced.jsonl"
"#,
            broker = broker()
        ),
    );
    let windows = dir.path().join("windows.jsonl");
    let mut first = Host::start(&consume(false));
    first.wait_log(90, "partition assignment", |l| Host::assigned(l) == Some(1));
    let mut producing = Host::start(&produce);
    first.wait_lines(&windows, 2);
    first.signal("-KILL");
    first.wait(30);
    assert!(lines(&windows) < 6, "killed mid-stream");
    assert!(producing.wait(120).success(), "{}", producing.log());
    let mut second = Host::start(&consume(true));
    assert!(second.wait(180).success(), "{}", second.log());

    // Independent counts: user i has event time i * 100 ms, so it is in window i / 600.
    let mut expected: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (i, u) in json_lines(&dir.path().join("produced.jsonl"))
        .iter()
        .enumerate()
    {
        let start = chrono::DateTime::from_timestamp(1_767_225_600 + (i as i64 / 600) * 60, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let e = expected.entry(start).or_default();
        e.0 += 1;
        e.1 += u64::from(u["gender"] == "male");
    }
    let got = json_lines(&windows);
    let mut seen = BTreeSet::new();
    for w in &got {
        let start = w["window_start"].as_str().unwrap().to_owned();
        let (total, male) = expected[&start];
        assert_eq!(w["total_count"], total, "{w}");
        assert_eq!(w["male_count"], male, "{w}");
        seen.insert(start);
    }
    // 400 s of events: six whole minutes closed by the watermark, and the seventh at
    // the end of the input (`stop_at_end`), all exact.
    assert_eq!(seen.len(), 7, "{got:?}");
    assert!(
        json_lines(&dir.path().join("dead.jsonl")).is_empty(),
        "no record was late"
    );
    assert!(
        second.log().contains("state restored from"),
        "{}",
        second.log()
    );
    println!(
        "{} window results for 7 windows after a kill ({} emitted twice, each exact)",
        got.len(),
        got.len() - 7
    );
}

#[test]
fn a_rebalance_does_not_make_an_open_window_count_records_twice() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("rebalance");
    create_topic(&topic, 2);
    let group = unique("g");
    let host = |name: &str| {
        pipeline(
            dir.path(),
            &format!("{name}.toml"),
            &format!(
                r#"
[pipeline]
name = "{name}"
batch_size = 50
checkpoint_interval = "200ms"
linger = "20ms"
[source]
type = "kafka"
brokers = "{broker}"
topics = ["{topic}"]
group_id = "{group}"
{FAST_GROUP}
[window]
plugin = "{{GENDER_WINDOW}}"
size = "1m"
[[sinks]]
type = "file"
path = "{name}-users.jsonl"
[[sinks]]
type = "file"
input = "windows"
path = "{name}-windows.jsonl"
"#,
                broker = broker()
            ),
        )
    };
    let users = |start: &str, seed: u64| {
        pipeline(
            dir.path(),
            &format!("produce-{seed}.toml"),
            &format!(
                r#"
[source]
type = "generator"
seed = {seed}
count = 200
event_interval = "10ms"
start_time = "{start}"
[[transforms]]
plugin = "{{FORMAT_USER}}"
[[sinks]]
type = "kafka"
brokers = "{broker}"
topic = "{topic}"
"#,
                broker = broker()
            ),
        )
    };
    let mut a = Host::start(&host("a"));
    a.wait_log(90, "assignment", |l| Host::assigned(l) == Some(2));
    // 200 users in the first minute: A's window for it stays open, holding them.
    assert!(Host::start(&users("2026-01-01T00:00:00Z", 1))
        .wait(60)
        .success());
    a.wait_lines(&dir.path().join("a-users.jsonl"), 200);
    // B joins: every partition is revoked from A and one comes back to it. What A
    // read of that one is still in its open window and must not be read into it again.
    let mut b = Host::start(&host("b"));
    b.wait_log(120, "B's assignment", |l| {
        Host::assigned(l).is_some_and(|n| n > 0)
    });
    a.wait_log(120, "A's new assignment", |l| Host::assigned(l) == Some(1));
    // Users five minutes later move both hosts' watermarks past the first window.
    assert!(Host::start(&users("2026-01-01T00:05:00Z", 2))
        .wait(60)
        .success());
    a.wait_lines(&dir.path().join("a-windows.jsonl"), 1);
    let first = &json_lines(&dir.path().join("a-windows.jsonl"))[0];
    assert_eq!(first["window_start"], "2026-01-01T00:00:00Z");
    assert_eq!(
        first["total_count"], 200,
        "each of the 200 users once in A's window"
    );
    a.stop();
    b.stop();
}
