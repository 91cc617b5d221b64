//! Whole pipelines, in process: generator -> WASM transforms -> window -> sinks.

use crate::common;

use common::{json_lines, pipeline, runtime};
use sluice::engine::{Pipeline, WindowStage};
use sluice::plugin::{Sandbox, WindowPlugin};
use sluice::record::{record, Batch, PartitionId, Position};
use tokio_util::sync::CancellationToken;

fn run(path: &std::path::Path) -> sluice::engine::Counters {
    let config = sluice::config::load(path).unwrap();
    let p = Pipeline::build(config, &runtime()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(p.run(CancellationToken::new())).unwrap()
}

#[test]
fn quickstart_chain_accounts_for_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = pipeline(
        dir.path(),
        "q.toml",
        r#"
[pipeline]
batch_size = 64
[source]
type = "generator"
seed = 9
count = 2000
event_interval = "100ms"
start_time = "2026-03-01T10:00:00Z"
poison_every = 150
[[transforms]]
plugin = "{FORMAT_USER}"
[window]
plugin = "{GENDER_WINDOW}"
size = "1m"
[[sinks]]
type = "file"
path = "out/users.jsonl"
[[sinks]]
type = "file"
input = "windows"
path = "out/windows.jsonl"
[dead_letter]
type = "file"
path = "out/dead.jsonl"
"#,
    );
    let stats = run(&path);
    let users = json_lines(&dir.path().join("out/users.jsonl"));
    let windows = json_lines(&dir.path().join("out/windows.jsonl"));
    let dead = json_lines(&dir.path().join("out/dead.jsonl"));

    assert_eq!(stats.records_in, 2000);
    assert_eq!(
        dead.len(),
        2000 / 150,
        "every poisoned record, and only those"
    );
    assert_eq!(users.len() + dead.len(), 2000, "nothing lost");
    for d in &dead {
        assert_eq!(d["stage"], "transform");
        assert_eq!(d["plugin"], "format_user");
        assert_eq!((d["offset"].as_u64().unwrap() + 1) % 150, 0, "{d}");
        assert!(d["reason"].as_str().unwrap().len() > 10);
        assert!(d["record"]["value"].is_string());
    }
    // 2000 records 100 ms apart: 200 s of event time from 10:00:00 -> 4 windows.
    assert_eq!(windows.len(), 4, "{windows:?}");
    assert_eq!(windows[0]["window_start"], "2026-03-01T10:00:00Z");
    assert_eq!(windows[3]["window_end"], "2026-03-01T10:04:00Z");
    let total: u64 = windows
        .iter()
        .map(|w| w["total_count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        total as usize,
        users.len(),
        "windows count every formatted user"
    );
    let male = users.iter().filter(|u| u["gender"] == "male").count() as u64;
    assert_eq!(
        windows
            .iter()
            .map(|w| w["male_count"].as_u64().unwrap())
            .sum::<u64>(),
        male
    );
    assert_eq!(stats.windows_closed, 4);

    // Ids are deterministic: running again appends the very same rows.
    run(&path);
    let again = json_lines(&dir.path().join("out/users.jsonl"));
    assert_eq!(again.len(), 2 * users.len());
    assert_eq!(again[users.len()..], users[..]);
}

/// 1-minute gender_window windows with this allowed lateness.
fn gender_windows(lateness_ms: i64) -> WindowStage {
    let rt = runtime();
    let plugin = WindowPlugin::start(
        &rt,
        &common::load(&rt, "gender_window"),
        "gw",
        "{}".into(),
        Sandbox::default(),
    )
    .unwrap();
    WindowStage::new(plugin, 60_000, lateness_ms)
}

fn users_at(seconds: &[i64]) -> Batch {
    let mut b = Batch::default();
    for (i, s) in seconds.iter().enumerate() {
        let gender = if i % 2 == 0 { "male" } else { "female" };
        b.push(
            record(format!(r#"{{"gender":"{gender}"}}"#), s * 1000),
            Position::new(PartitionId(0), i as u64),
        );
    }
    b
}

#[test]
fn windows_close_at_the_watermark_and_late_records_become_dead_letters() {
    let mut stage = gender_windows(5_000);
    let mut dead = Vec::new();

    assert!(stage.push(&users_at(&[0, 30]), &mut dead).is_empty());
    assert_eq!(
        stage.held().get(&PartitionId(0)),
        Some(&0),
        "an open window holds its records back from acknowledgement"
    );
    assert!(
        stage.push(&users_at(&[64]), &mut dead).is_empty(),
        "64 s - 5 s lateness < 60 s"
    );
    let closed = stage.push(&users_at(&[66]), &mut dead);
    assert_eq!(
        closed.len(),
        1,
        "the watermark (61 s) passed the first window's end"
    );
    let first: serde_json::Value = serde_json::from_slice(&closed.records[0].value).unwrap();
    assert_eq!(first["total_count"], 2);

    // 10 s belongs to the closed window: late. 62 s is behind the newest event but its
    // window is still open: counted.
    assert!(stage.push(&users_at(&[10, 62]), &mut dead).is_empty());
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.starts_with("late record"),
        "{}",
        dead[0].reason
    );
    assert_eq!(dead[0].stage, "window");

    let rest = stage.close(true, &mut dead);
    let second: serde_json::Value = serde_json::from_slice(&rest.records[0].value).unwrap();
    assert_eq!(second["total_count"], 3, "64, 66 and 62 s");
    assert_eq!(second["window_start"], "1970-01-01T00:01:00Z");
    assert_eq!(stage.open_windows(), 0);
    assert!(stage.held().is_empty(), "emitted windows hold nothing");
}

/// One record with a wrong clock (the year 2100), or an event time at either end of
/// i64, is a dead letter saying why; the windows go on as if it had never come (it
/// neither closes them nor loops nor fills memory), and a sliding window with them
/// ends at once too.
#[test]
fn hostile_event_times_are_dead_letters_and_the_windows_go_on() {
    let now_s = chrono::Utc::now().timestamp() / 60 * 60 - 3600; // an hour ago, on a minute
    let in_2100 = 4_102_444_800;
    let values =
        |b: &Batch| -> Vec<Vec<u8>> { b.records.iter().map(|r| r.value.clone()).collect() };
    for slide in [None, Some(1_000)] {
        let stage = || {
            let stage = gender_windows(0);
            match slide {
                Some(slide) => stage.sliding(slide),
                None => stage,
            }
        };
        // The same good records through a stage that never sees the hostile ones.
        let (mut control, mut hostile) = (stage(), stage());
        let (mut none, mut dead) = (Vec::new(), Vec::new());
        let first = users_at(&[now_s, now_s + 10]);
        let mut with_hostile = first.clone();
        for (i, ts) in [in_2100 * 1000, i64::MAX, i64::MIN, i64::MAX - 59_999]
            .into_iter()
            .enumerate()
        {
            with_hostile.push(
                record(r#"{"gender":"male"}"#, ts),
                Position::new(PartitionId(0), 10 + i as u64),
            );
        }
        let expected = values(&control.push(&first, &mut none));
        assert_eq!(values(&hostile.push(&with_hostile, &mut dead)), expected);
        let reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(
            reasons[0].contains("more than [window] max_future (1day) ahead"),
            "{}",
            reasons[0]
        );
        assert!(
            reasons[0].contains("2100-01-01T00:00:00.000Z"),
            "{}",
            reasons[0]
        );
        for r in &reasons[1..] {
            assert!(r.contains("outside the years 1 to 9999"), "{r}");
        }
        // A record a minute later closes windows as it does without them.
        let later = users_at(&[now_s + 70]);
        let expected = values(&control.push(&later, &mut none));
        assert!(!expected.is_empty());
        assert_eq!(values(&hostile.push(&later, &mut dead)), expected);
        let expected = values(&control.close(true, &mut none));
        assert_eq!(values(&hostile.close(true, &mut dead)), expected);
        assert!(none.is_empty(), "{none:?}");
        assert_eq!(dead.len(), 4, "nothing after them is late");
    }
    // A longer max_future takes what the default refuses.
    let mut far = gender_windows(0).max_future(200 * 365 * 86_400_000);
    let mut dead = Vec::new();
    far.push(&users_at(&[in_2100]), &mut dead);
    assert!(dead.is_empty(), "{dead:?}");
}

#[test]
fn the_file_source_resumes_from_its_byte_offset() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let line = |i: usize| format!("{{\"n\": {i}}}\n");
    std::fs::write(&input, (0..100).map(line).collect::<String>()).unwrap();
    let path = pipeline(
        dir.path(),
        "f.toml",
        r#"
[pipeline]
batch_size = 16
[source]
type = "file"
path = "in.jsonl"
[[sinks]]
type = "file"
path = "out.jsonl"
"#,
    );
    assert_eq!(run(&path).records_in, 100);
    let saved = dir.path().join(".sluice/f/file-source-positions.json");
    let offsets: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
    let size = std::fs::metadata(&input).unwrap().len();
    assert_eq!(
        offsets.as_object().unwrap().values().next().unwrap()["offset"],
        size
    );

    // Appended lines (a blank one among them, and a last one with no newline): only
    // these are read by the next run.
    let mut more: String = (100..150).map(line).collect();
    more.push_str("\n{\"n\": 150}");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .and_then(|mut f| std::io::Write::write_all(&mut f, more.as_bytes()))
        .unwrap();
    assert_eq!(run(&path).records_in, 51);
    let ns: Vec<u64> = json_lines(&dir.path().join("out.jsonl"))
        .iter()
        .map(|v| v["n"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ns,
        (0..151).collect::<Vec<u64>>(),
        "each line once, in order"
    );
    assert_eq!(run(&path).records_in, 0, "nothing new: nothing read");

    // Replaced by another file (a rotation): longer than the saved offset, but read
    // from its start.
    let replacement = dir.path().join("in.jsonl.new");
    std::fs::write(&replacement, (0..300).map(line).collect::<String>()).unwrap();
    std::fs::rename(&replacement, &input).unwrap();
    assert_eq!(run(&path).records_in, 300, "a new file is read whole");
}

#[test]
fn a_checkpoint_asked_for_on_the_control_channel_is_taken_between_batches() {
    let dir = tempfile::tempdir().unwrap();
    let path = pipeline(
        dir.path(),
        "c.toml",
        r#"
[pipeline]
batch_size = 10
linger = "10ms"
checkpoint_interval = "1h"
[source]
type = "generator"
count = 400
rate = 200
[[sinks]]
type = "file"
path = "out.jsonl"
"#,
    );
    let config = sluice::config::load(&path).unwrap();
    let p = Pipeline::build(config, &runtime()).unwrap();
    let (control, metrics) = (p.control(), p.metrics());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let running = rt.spawn(p.run(CancellationToken::new()));
    rt.block_on(async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(metrics.snapshot().checkpoints, 0, "none due for an hour");
        let (done, answered) = tokio::sync::oneshot::channel();
        control
            .send(sluice::engine::Control::Checkpoint(done))
            .await
            .unwrap();
        answered.await.unwrap();
    });
    let mid_run = metrics.snapshot();
    assert_eq!(mid_run.checkpoints, 1);
    assert!(mid_run.records_in < 400, "taken while the source ran");
    let done = rt.block_on(running).unwrap().unwrap();
    assert_eq!(done.records_in, 400);
    assert_eq!(done.checkpoints, 2, "and the last one at the end");
}

#[test]
fn the_watermark_waits_for_every_assigned_partition() {
    let mut stage = gender_windows(0);
    let (a, b) = (PartitionId(0), PartitionId(1));
    stage.set_assignment(vec![a, b]);
    let at = |p: PartitionId, seconds: &[i64]| {
        let mut batch = Batch::default();
        for (i, s) in seconds.iter().enumerate() {
            batch.push(
                record(r#"{"gender":"male"}"#, s * 1000),
                Position::new(p, i as u64),
            );
        }
        batch
    };
    let mut dead = Vec::new();
    // Partition a is read far ahead; b has not been read yet: nothing may close.
    assert!(stage.push(&at(a, &[10, 200, 300]), &mut dead).is_empty());
    assert_eq!(stage.watermark(), None);
    // b's old records are on time, and once b is read, windows close.
    let closed = stage.push(&at(b, &[20, 130]), &mut dead);
    assert!(
        dead.is_empty(),
        "nothing late: {:?}",
        dead.first().map(|d| &d.reason)
    );
    assert_eq!(stage.watermark(), Some(130_000), "the slower partition's");
    let first: serde_json::Value = serde_json::from_slice(&closed.records[0].value).unwrap();
    assert_eq!(first["total_count"], 2, "10 s from a and 20 s from b");
    assert_eq!(closed.len(), 1, "only [0, 60) ends before 130 s");
}

#[test]
fn a_file_sink_mends_a_torn_last_line_before_appending() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("out.jsonl"),
        "{\"n\": -1}\n{\"id\":\"6218\",\"dob\":\"1949-08-24",
    )
    .unwrap();
    std::fs::write(dir.path().join("in.jsonl"), "{\"n\": 0}\n{\"n\": 1}\n").unwrap();
    let path = pipeline(
        dir.path(),
        "torn.toml",
        r#"
[source]
type = "file"
path = "in.jsonl"
[[sinks]]
type = "file"
path = "out.jsonl"
"#,
    );
    run(&path);
    let ns: Vec<i64> = json_lines(&dir.path().join("out.jsonl"))
        .iter()
        .map(|v| v["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, [-1, 0, 1], "every line parses; the torn one is gone");
}

#[test]
fn a_huge_dead_letter_keeps_its_start_its_size_and_its_hash() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let huge = "é".repeat(100_000); // 200,000 bytes, not a user
    std::fs::write(dir.path().join("in.txt"), format!("{huge}\n")).unwrap();
    let path = pipeline(
        dir.path(),
        "dl.toml",
        r#"
[pipeline]
dead_letter_max_kb = 64
[source]
type = "file"
path = "in.txt"
[[transforms]]
plugin = "{FORMAT_USER}"
[[sinks]]
type = "null"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#,
    );
    run(&path);
    let dead = json_lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), 1);
    let kept = dead[0]["record"]["value"].as_str().unwrap();
    assert!(
        kept.len() <= 64 * 1024 && kept.len() > 60 * 1024,
        "{}",
        kept.len()
    );
    assert!(huge.starts_with(kept), "a prefix, cut between characters");
    let truncated = &dead[0]["record"]["value_truncated"];
    assert_eq!(truncated["bytes"], 200_000);
    let digest: String = sha2::Sha256::digest(huge.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(truncated["sha256"], digest);
}

#[test]
fn a_line_over_max_line_mb_is_skipped_with_a_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(3 << 20);
    let text = format!("{{\"n\": 0}}\n{long}\n{{\"n\": 1}}\n");
    std::fs::write(dir.path().join("in.jsonl"), &text).unwrap();
    let path = pipeline(
        dir.path(),
        "long.toml",
        r#"
[source]
type = "file"
path = "in.jsonl"
max_line_mb = 1
[[sinks]]
type = "file"
path = "out.jsonl"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#,
    );
    run(&path);
    let ns: Vec<u64> = json_lines(&dir.path().join("out.jsonl"))
        .iter()
        .map(|v| v["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, [0, 1], "the lines around it are read");
    let dead = json_lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["stage"], "source");
    assert_eq!(
        dead[0]["position"]["offset"], 9,
        "where the long line starts"
    );
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("line of {} bytes", (3 << 20) + 1)),
        "{reason}"
    );
    assert!(reason.contains("max_line_mb (1 MiB)"), "{reason}");
    assert_eq!(dead[0]["record"]["value"].as_str().unwrap().len(), 4096);
}

/// Deterministic users on 3 partitions, each partition's event times out of order by
/// up to 3 s (within the 5 s lateness), interleaved into batches: what the windows
/// emit equals counts computed here from the input, for tumbling and sliding windows.
#[test]
fn windows_over_out_of_order_partitions_equal_independent_counts() {
    // (partition, offset, event ms, male?)
    let mut input = Vec::new();
    let mut rng = 7u64;
    let mut next = || {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        rng >> 33
    };
    for i in 0..900u64 {
        for p in 0..3u32 {
            let ts = (i * 1000 + next() % 3000) as i64;
            input.push((p, i, ts, next() % 2 == 0));
        }
    }
    for (size, slide) in [(60_000i64, 60_000i64), (60_000, 20_000)] {
        let rt = runtime();
        let plugin = WindowPlugin::start(
            &rt,
            &common::load(&rt, "gender_window"),
            "gw",
            "{}".into(),
            Sandbox::default(),
        )
        .unwrap();
        let mut stage = WindowStage::new(plugin, size, 5_000).sliding(slide);
        let mut dead = Vec::new();
        let mut out = Vec::new();
        for chunk in input.chunks(50) {
            let mut b = Batch::default();
            for &(p, offset, ts, male) in chunk {
                let g = if male { "male" } else { "female" };
                b.push(
                    record(format!(r#"{{"gender":"{g}"}}"#), ts),
                    Position::new(PartitionId(p), offset),
                );
            }
            out.extend(stage.push(&b, &mut dead).records);
        }
        out.extend(stage.close(true, &mut dead).records);
        assert!(
            dead.is_empty(),
            "nothing is late: {:?}",
            dead.first().map(|d| &d.reason)
        );

        // Independently: every window [k * slide, + size) with a record in it.
        let mut expected: std::collections::BTreeMap<i64, (u64, u64)> = Default::default();
        for &(_, _, ts, male) in &input {
            let mut start = ts.div_euclid(slide) * slide;
            while start + size > ts {
                let e = expected.entry(start).or_default();
                e.0 += 1;
                e.1 += u64::from(male);
                start -= slide;
            }
        }
        let mut got: std::collections::BTreeMap<i64, (u64, u64)> = Default::default();
        for r in &out {
            let w: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
            let start = chrono::DateTime::parse_from_rfc3339(w["window_start"].as_str().unwrap())
                .unwrap()
                .timestamp_millis();
            let total = w["total_count"].as_u64().unwrap();
            let male = w["male_count"].as_u64().unwrap();
            assert!(
                got.insert(start, (total, male)).is_none(),
                "one result per window"
            );
        }
        assert!(expected.len() >= 15, "{} windows", expected.len());
        assert_eq!(got, expected, "size {size} slide {slide}");
    }
}

#[test]
fn late_records_can_be_dropped_and_counted_instead_of_dead_lettered() {
    let rt = runtime();
    let plugin = WindowPlugin::start(
        &rt,
        &common::load(&rt, "gender_window"),
        "gw",
        "{}".into(),
        Sandbox::default(),
    )
    .unwrap();
    let mut stage = WindowStage::new(plugin, 60_000, 0).late(sluice::engine::Late::Drop);
    let mut dead = Vec::new();
    stage.push(&users_at(&[0, 61]), &mut dead);
    assert_eq!(stage.windows_closed(), 1);
    stage.push(&users_at(&[5, 62]), &mut dead);
    assert!(dead.is_empty());
    assert_eq!(
        stage.late_dropped(),
        1,
        "5 s is late once 61 s closed the first window"
    );
}

fn gender_stage() -> WindowStage {
    let rt = runtime();
    let plugin = WindowPlugin::start(
        &rt,
        &common::load(&rt, "gender_window"),
        "gw",
        "{}".into(),
        Sandbox::default(),
    )
    .unwrap();
    WindowStage::new(plugin, 60_000, 0)
}

fn totals(batch: &Batch) -> Vec<(String, u64)> {
    batch
        .records
        .iter()
        .map(|r| {
            let w: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
            (
                w["window_start"].as_str().unwrap().to_owned(),
                w["total_count"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn late_updates_correct_a_closed_window_until_it_is_too_old() {
    use sluice::engine::Late;
    let mut stage = gender_stage().late(Late::Update { keep_ms: 60_000 });
    let mut dead = Vec::new();
    let first = stage.push(&users_at(&[0, 61]), &mut dead);
    assert_eq!(totals(&first), [("1970-01-01T00:00:00Z".to_owned(), 1)]);
    // 5 s is late: the closed window takes it and is emitted again, corrected.
    let again = stage.push(&users_at(&[5]), &mut dead);
    assert_eq!(totals(&again), [("1970-01-01T00:00:00Z".to_owned(), 2)]);
    assert!(dead.is_empty());
    // Once event time is past its end by more than 60 s, it is no longer kept.
    stage.push(&users_at(&[125]), &mut dead);
    assert!(stage.push(&users_at(&[6]), &mut dead).is_empty());
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]
            .reason
            .contains("longer ago than late updates are kept"),
        "{}",
        dead[0].reason
    );
}

#[test]
fn early_results_show_open_windows_without_closing_them() {
    let mut stage = gender_stage();
    let mut dead = Vec::new();
    assert!(stage.push(&users_at(&[0, 10]), &mut dead).is_empty());
    assert_eq!(
        totals(&stage.early(&mut dead)),
        [("1970-01-01T00:00:00Z".to_owned(), 2)]
    );
    assert_eq!(stage.open_windows(), 1, "still open");
    stage.push(&users_at(&[20]), &mut dead);
    let fin = stage.close(true, &mut dead);
    assert_eq!(
        totals(&fin),
        [("1970-01-01T00:00:00Z".to_owned(), 3)],
        "the final result counts all"
    );
}

/// Every 37th user after the first thousand is five minutes older: late, whatever the
/// batching (once the first batches have set a watermark).
fn is_late(i: u64) -> bool {
    i % 37 == 36 && i >= 1000
}

/// Users as JSON lines with an event time `ts_ms` 50 ms apart, except the late ones
/// ([`is_late`]), and every 101st line is not JSON (the source's dead letter: it has
/// no event time).
fn timed_users(dir: &std::path::Path, n: u64) {
    use sluice::sources::generator::{self, GeneratorConfig};
    let config: GeneratorConfig = toml::from_str("seed = 3").unwrap();
    let mut rng = sluice::sources::SplitMix64::new(3);
    let start = 1_767_225_600_000i64;
    let mut text = String::new();
    for i in 0..n {
        if i % 101 == 100 {
            text.push_str("not json\n");
            continue;
        }
        let late = if is_late(i) { 300_000 } else { 0 };
        let ts = start + i as i64 * 50 - late;
        let user = String::from_utf8(generator::value(&config, &mut rng, i)).unwrap();
        text.push_str(&format!("{{\"ts_ms\":{ts},{}\n", &user[1..]));
    }
    std::fs::write(dir.join("users.jsonl"), text).unwrap();
}

/// The same input through `workers` workers: records, window results and dead letters.
fn with_workers(
    dir: &std::path::Path,
    workers: usize,
    window: &str,
) -> (String, String, Vec<(String, u64, String)>) {
    let out = dir.join(format!("w{workers}"));
    std::fs::create_dir_all(&out).unwrap();
    let path = pipeline(
        &out,
        "p.toml",
        &format!(
            r#"
[pipeline]
batch_size = 64
workers = {workers}
[source]
type = "file"
path = "../users.jsonl"
event_time = {{ field = "ts_ms", format = "epoch_ms" }}
[[transforms]]
plugin = "{{FORMAT_USER}}"
[window]
plugin = "{{GENDER_WINDOW}}"
size = "1m"
allowed_lateness = "10s"
{window}
[[sinks]]
type = "file"
path = "users.jsonl"
[[sinks]]
type = "file"
input = "windows"
path = "windows.jsonl"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#
        ),
    );
    run(&path);
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    let mut dead: Vec<(String, u64, String)> = json_lines(&out.join("dead.jsonl"))
        .iter()
        .map(|d| {
            (
                d["stage"].as_str().unwrap().to_owned(),
                d["offset"].as_u64().unwrap(),
                d["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    dead.sort();
    (read("users.jsonl"), read("windows.jsonl"), dead)
}

/// Two workers run batches side by side; what comes out is what one gives: records
/// in source order, the same windows (sliding, late records to the dead letters), the
/// same dead letters; and with late updates, the same final result per window.
#[test]
fn two_workers_give_what_one_gives() {
    let dir = tempfile::tempdir().unwrap();
    timed_users(dir.path(), 30_000);
    let sliding = "slide = \"20s\"";
    let (users1, windows1, dead1) = with_workers(dir.path(), 1, sliding);
    let (users2, windows2, dead2) = with_workers(dir.path(), 2, sliding);
    assert_eq!(
        users1.lines().count(),
        30_000 - 297,
        "every user but the poison"
    );
    assert!(users1 == users2, "records in the same order");
    assert!(!windows1.is_empty());
    assert_eq!(windows1, windows2, "the same windows");
    let late = dead1
        .iter()
        .filter(|d| d.2.starts_with("late record"))
        .count();
    let poison = dead1.iter().filter(|d| d.0 == "source").count();
    let expected_late = (0..30_000u64)
        .filter(|&i| is_late(i) && i % 101 != 100)
        .count();
    assert_eq!(
        (late, poison),
        (expected_late, 297),
        "late records and poison"
    );
    assert_eq!(dead1, dead2, "the same dead letters");

    // Late updates: a window is emitted again per batch with late records for it, so
    // how often depends on the batching; the last result of each must not.
    let finals = |windows: &str| {
        let mut last = std::collections::BTreeMap::new();
        for w in windows.lines() {
            let v: serde_json::Value = serde_json::from_str(w).unwrap();
            last.insert(v["window_start"].as_str().unwrap().to_owned(), v);
        }
        last
    };
    let update = "late = \"update\"\nupdate_within = \"10m\"";
    let again = dir.path().join("u");
    std::fs::create_dir_all(&again).unwrap();
    std::fs::copy(dir.path().join("users.jsonl"), again.join("users.jsonl")).unwrap();
    let (_, updated1, dead1) = with_workers(&again, 1, update);
    let (_, updated2, dead2) = with_workers(&again, 2, update);
    assert_eq!(finals(&updated1), finals(&updated2));
    assert_eq!(dead1, dead2);
    let counted: u64 = finals(&updated1)
        .values()
        .map(|w| w["total_count"].as_u64().unwrap())
        .sum();
    // Those late for a window that never opened (before the first record) are dead.
    let before_any = (0..30_000u64)
        .filter(|&i| is_late(i) && i % 101 != 100 && i * 50 < 300_000)
        .count() as u64;
    assert_eq!(
        counted,
        30_000 - 297 - before_any,
        "late records counted in their windows"
    );
}

/// `schema = ...` on a transform and on a sink: output that breaks the transform's
/// schema sends its input record to the dead letters (with the path and rule), and
/// records a sink's schema refuses are that sink's dead letters; the rest go on.
#[test]
fn records_off_schema_are_dead_letters_naming_the_path_and_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    // The fixture's whole users (its last line is cut short on purpose).
    let mut users: Vec<serde_json::Value> = common::fixture("randomuser/users.jsonl")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(users.len(), 6);
    users[1]["email"] = "nobody".into();
    users[4]["dob"]["date"] = "yesterday".into();
    let input: Vec<String> = users.iter().map(|u| u.to_string()).collect();
    std::fs::write(dir.path().join("in.jsonl"), input.join("\n") + "\n").unwrap();
    std::fs::write(
        dir.path().join("female.json"),
        r#"{"type": "object", "properties": {"gender": {"const": "female"}}}"#,
    )
    .unwrap();
    let schema = common::repo().join("schemas/user.json");
    let path = pipeline(
        dir.path(),
        "schema.toml",
        &format!(
            r#"
[pipeline]
workers = 2
[source]
type = "file"
path = "in.jsonl"
[[transforms]]
plugin = "{{FORMAT_USER}}"
schema = "{}"
[[sinks]]
type = "file"
path = "users.jsonl"
[[sinks]]
type = "file"
path = "female.jsonl"
schema = "female.json"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#,
            schema.display()
        ),
    );
    run(&path);
    let written = json_lines(&dir.path().join("users.jsonl"));
    // Two off the schema, and the fixture's user without login.username (which
    // format_user itself refuses).
    assert_eq!(written.len(), users.len() - 3);
    let dead = json_lines(&dir.path().join("dead.jsonl"));
    let transform: Vec<_> = dead
        .iter()
        .filter(|d| {
            d["stage"] == "transform" && d["reason"] != "missing required field `login.username`"
        })
        .collect();
    assert_eq!(transform.len(), 2, "{dead:?}");
    for (d, (line, at, rule)) in transform.iter().zip([
        (1, "at /email", "rule /properties/email/pattern"),
        (4, "at /dob", "rule /properties/dob/format"),
    ]) {
        let reason = d["reason"].as_str().unwrap();
        assert!(reason.starts_with("its output does not match "), "{reason}");
        assert!(reason.contains(at) && reason.contains(rule), "{reason}");
        assert_eq!(
            d["record"]["value"].as_str().unwrap(),
            input[line],
            "the input record"
        );
    }
    let female = json_lines(&dir.path().join("female.jsonl"));
    let males: Vec<_> = written.iter().filter(|u| u["gender"] != "female").collect();
    assert!(
        !males.is_empty() && !female.is_empty(),
        "the fixture has both"
    );
    assert_eq!(female.len() + males.len(), written.len());
    let sink: Vec<_> = dead.iter().filter(|d| d["stage"] == "sink").collect();
    assert_eq!(sink.len(), males.len(), "{dead:?}");
    for (d, male) in sink.iter().zip(&males) {
        let reason = d["reason"].as_str().unwrap();
        assert!(
            reason.contains("female.json at /gender")
                && reason.contains("rule /properties/gender/const"),
            "{reason}"
        );
        let record: serde_json::Value =
            serde_json::from_str(d["record"]["value"].as_str().unwrap()).unwrap();
        assert_eq!(&record, *male);
    }
}

/// A window plugin with a `projection` is handed only the fields it names. What it
/// counts, and what it refuses with the reason, are what the same plugin without one
/// makes of the whole records, on values that try the projection's edges.
#[test]
fn a_window_in_projection_counts_and_refuses_as_on_whole_records() {
    let values = [
        r#"{"gender":"male"}"#,
        r#"{"id":1,"gender":"female","x":[1,{"gender":"male"}]}"#,
        r#"{"gender":"FEMALE"}"#,
        r#"{}"#,
        r#"{"name":"x"}"#,
        r#"{"gender":null}"#,
        r#"{"gender":7}"#,
        r#"{"gender":{"a":"male"}}"#,
        r#"{"gender":"male","gender":"female"}"#,
        r#"{"\u0067ender":"male"}"#,
        r#"{"gender":"fe\u006dale"}"#,
        "not json",
        "[1,2]",
        r#"{"gender":"male""#,
        r#"  {"gender" : "male" }  "#,
        r#""male""#,
    ];
    let mut batch = Batch::default();
    for (i, value) in values.iter().enumerate() {
        let mut r = record(*value, 1_000 + i as i64);
        r.key = Some(b"a key".to_vec());
        batch.push(r, Position::new(PartitionId(0), i as u64));
    }
    let run = |name: &str| {
        let rt = runtime();
        let plugin = WindowPlugin::start(
            &rt,
            &common::load(&rt, name),
            "gw",
            "{}".into(),
            Sandbox::default(),
        )
        .unwrap();
        let mut stage = WindowStage::new(plugin, 60_000, 0);
        let mut dead = Vec::new();
        assert!(stage.push(&batch, &mut dead).is_empty());
        let closed = stage.close(true, &mut dead);
        let windows: Vec<serde_json::Value> = closed
            .records
            .iter()
            .map(|r| serde_json::from_slice(&r.value).unwrap())
            .collect();
        let dead: Vec<(u64, String)> = dead
            .iter()
            .map(|d| (d.position.offset, d.reason.clone()))
            .collect();
        (windows, dead)
    };
    let (windows, dead) = run("gender_window");
    assert_eq!(
        (windows.clone(), dead.clone()),
        run("gender_window_no_projection")
    );
    assert_eq!(windows.len(), 1);
    let counts = ["male_count", "female_count", "other_count"].map(|k| windows[0][k].clone());
    assert_eq!(counts, [3, 4, 5].map(serde_json::Value::from));
    let offsets: Vec<u64> = dead.iter().map(|d| d.0).collect();
    assert_eq!(offsets, [11, 12, 13, 15]);
    assert!(
        dead.iter().all(|d| d.1.contains("gender_window")),
        "{dead:?}"
    );
}

/// A projection the host cannot use (a field named twice) stops the plugin at start,
/// saying so.
#[test]
fn a_window_naming_a_field_twice_is_refused_at_start() {
    let rt = runtime();
    let started = WindowPlugin::start(
        &rt,
        &common::load(&rt, "gender_window_projection_twice"),
        "gw",
        "{}".into(),
        Sandbox::default(),
    );
    let err = match started {
        Ok(_) => panic!("a plugin naming `gender` twice started"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("plugin `gw` failed to start")
            && err.contains("value-fields")
            && err.contains(r#""gender" is named twice"#),
        "{err}"
    );
}
