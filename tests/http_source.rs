//! The http source against a real HTTP server on loopback, and a whole pipeline fed by
//! it with records that make a plugin trap, spin and hoard memory.

use crate::common;

use common::http::{ok, serve, status, Reply};
use common::{fixture, json_lines, pipeline, runtime};
use sluice::engine::{Pipeline, RunError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

async fn run(path: &std::path::Path) -> Result<sluice::engine::Counters, RunError> {
    let config = sluice::config::load(path).unwrap();
    Pipeline::build(config, &runtime())
        .unwrap()
        .run(CancellationToken::new())
        .await
}

fn http_pipeline(
    dir: &std::path::Path,
    url: &str,
    source_extra: &str,
    transforms: &str,
) -> std::path::PathBuf {
    pipeline(
        dir,
        "http.toml",
        &format!(
            r#"
[pipeline]
linger = "10ms"
[source]
type = "http"
url = "{url}"
interval = "10ms"
backoff = "10ms"
{source_extra}
{transforms}
[[sinks]]
type = "file"
path = "out.jsonl"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_become_records_after_retrying_429_and_5xx() {
    let mut throttled = status(429);
    throttled.headers.push(("retry-after", "1".into()));
    let (addr, script) = serve(vec![
        throttled,
        status(503),
        ok(fixture("randomuser/response_results1.json")),
        ok(fixture("randomuser/response_results5.json")),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/api/?results=5");
    let path = http_pipeline(
        dir.path(),
        &url,
        "count = 2\nretries = 3",
        "[[transforms]]\nplugin = \"{FORMAT_USER}\"",
    );
    let stats = run(&path).await.unwrap();

    assert_eq!(stats.records_in, 2);
    let users = json_lines(&dir.path().join("out.jsonl"));
    assert_eq!(users.len(), 6, "1 + 5 users from the two good responses");
    assert_eq!(users[1]["first_name"], "Lívia");
    let hits = script.hits.lock().unwrap();
    assert_eq!(hits.len(), 4);
    assert_eq!(hits[0].1, "/api/?results=5");
    assert!(
        hits[1].0 - hits[0].0 >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_error_stops_the_source_and_names_the_status() {
    let (addr, _) = serve(vec![status(404)]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = http_pipeline(dir.path(), &format!("http://{addr}/nope"), "count = 1", "");
    let err = run(&path).await.unwrap_err().to_string();
    assert!(err.contains("404") && err.contains("/nope"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poll_that_outlasts_its_retries_is_skipped_and_the_next_poll_goes_ahead() {
    let replies: Vec<Reply> = vec![
        status(500),
        status(502),
        status(503),
        ok(r#"{"after":"outage"}"#),
    ];
    let (addr, script) = serve(replies).await;
    let dir = tempfile::tempdir().unwrap();
    let path = http_pipeline(
        dir.path(),
        &format!("http://{addr}/"),
        "count = 1\nretries = 1",
        "",
    );
    let path_text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("interval = \"10ms\"", "interval = \"1s\"");
    std::fs::write(&path, path_text).unwrap();
    run(&path).await.unwrap();
    assert_eq!(
        json_lines(&dir.path().join("out.jsonl")),
        [serde_json::json!({"after": "outage"})]
    );
    let hits: Vec<_> = script.hits.lock().unwrap().iter().map(|h| h.0).collect();
    assert_eq!(hits.len(), 4, "poll 1: a try and a retry; poll 2: the same");
    assert!(
        hits[1] - hits[0] < Duration::from_secs(1),
        "a retry waits for its backoff, not the interval"
    );
    // Polls start an interval apart; the first request left a little after its start.
    assert!(
        hits[2] - hits[0] >= Duration::from_millis(900),
        "the second poll waits for the interval"
    );
    assert!(hits[3] - hits[2] < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn trapping_spinning_and_hoarding_plugins_do_not_stop_the_pipeline() {
    let bodies = [
        "ok1", "trap", "ok2", "loop", "ok3", "alloc", "ok4", "sleep", "ok5",
    ];
    let (addr, _) = serve(bodies.iter().map(|b| ok(*b)).collect()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = http_pipeline(
        dir.path(),
        &format!("http://{addr}/"),
        "count = 9",
        "[[transforms]]\nplugin = \"{MISBEHAVE}\"\nsandbox = { memory_mb = 16, deadline = \"300ms\" }",
    );
    let stats = run(&path).await.unwrap();
    assert_eq!(stats.records_in, 9);
    assert!(
        stats.plugin_failures >= 4,
        "each poison record failed at least alone: {stats:?}"
    );
    let out = json_lines(&dir.path().join("out.jsonl"));
    assert_eq!(out, ["ok1", "ok2", "ok3", "ok4", "ok5"]);
    let dead = json_lines(&dir.path().join("dead.jsonl"));
    let got: Vec<(&str, &str)> = dead
        .iter()
        .map(|d| {
            (
                d["record"]["value"].as_str().unwrap(),
                d["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(
        got[3],
        (
            "sleep",
            "plugin tried to sleep or block, which the sandbox forbids"
        )
    );
    assert!(
        got[0].0 == "trap" && got[0].1.starts_with("plugin trapped"),
        "{got:?}"
    );
    assert_eq!(
        got[1],
        ("loop", "plugin exceeded its CPU deadline of 300 ms")
    );
    assert_eq!(
        got[2],
        ("alloc", "plugin exceeded its memory cap of 16 MiB")
    );
    assert_eq!(dead[0]["offset"], 1);
    assert_eq!(dead[0]["plugin"], "misbehave");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_loop_is_fatal_and_named() {
    let redirect = || Reply {
        status: 302,
        headers: vec![("location", "/loop".into())],
        body: Vec::new(),
    };
    let (addr, script) = serve((0..30).map(|_| redirect()).collect()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = http_pipeline(dir.path(), &format!("http://{addr}/loop"), "count = 1", "");
    let err = run(&path).await.unwrap_err().to_string();
    assert!(
        err.contains("too many redirects (10)") && err.contains("not retrying"),
        "{err}"
    );
    assert_eq!(
        script.hits.lock().unwrap().len(),
        11,
        "followed 10, never retried"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_max_body_skips_that_poll_only() {
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(2 << 20));
    let (addr, _) = serve(vec![ok(big), ok("{\"small\": true}")]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = http_pipeline(
        dir.path(),
        &format!("http://{addr}/"),
        "count = 1\nmax_body_mb = 1",
        "",
    );
    run(&path).await.unwrap();
    let out = json_lines(&dir.path().join("out.jsonl"));
    assert_eq!(
        out.len(),
        1,
        "the big body was skipped, the next poll taken"
    );
    assert_eq!(out[0]["small"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_is_heard_inside_a_request_that_never_ends() {
    // A server that accepts and never answers; the request's timeout is an hour.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = http_pipeline(
        dir.path(),
        &format!("http://{addr}/"),
        "timeout = \"1h\"",
        "",
    );
    let config = sluice::config::load(&path).unwrap();
    let pipeline = Pipeline::build(config, &runtime()).unwrap();
    let stop = CancellationToken::new();
    let running = tokio::spawn(pipeline.run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    let done = tokio::time::timeout(Duration::from_secs(10), running).await;
    assert!(
        done.is_ok(),
        "the source did not stop while its request hung"
    );
}

/// A seconds schedule with an active window, against a real server: polls come in
/// bursts at the start of each even second (every 400 ms while the tick's 1 s
/// window lasts: at most three a tick), never between the windows.
#[tokio::test(flavor = "multi_thread")]
async fn a_seconds_schedule_polls_within_each_ticks_active_window() {
    let replies = (0..20)
        .map(|_| ok(fixture("randomuser/response_results1.json")))
        .collect();
    let (addr, script) = serve(replies).await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        "scheduled.toml",
        &format!(
            r#"
[pipeline]
linger = "10ms"
[source]
type = "http"
url = "http://{addr}/"
schedule = "*/2 * * * * *"
active_for = "1s"
interval = "400ms"
count = 7
[[sinks]]
type = "file"
path = "out.jsonl"
"#
        ),
    );
    run(&p).await.unwrap();
    assert_eq!(json_lines(&dir.path().join("out.jsonl")).len(), 7);
    let times = script.wall_ms.lock().unwrap().clone();
    let mut per_tick = std::collections::BTreeMap::<i64, usize>::new();
    for t in &times {
        let into_tick = t.rem_euclid(2000);
        // 0, 400 and 800 ms into the tick, with room for a slow machine.
        assert!(
            into_tick < 1500,
            "a poll {into_tick} ms after its tick: {times:?}"
        );
        *per_tick.entry(t - into_tick).or_default() += 1;
    }
    assert!(per_tick.values().all(|&n| n <= 3), "{per_tick:?}");
    assert!(per_tick.len() >= 3, "{per_tick:?}");
}
