//! The admin listener of a running `sluice run`, spoken to over real HTTP: health and
//! readiness, Prometheus metrics that move, `/status` and `sluice status`, the token
//! beyond loopback, JSON logs with tagged and rate-limited plugin lines, and the
//! status page rendered in headless Chromium (its numbers against `/status`, and a
//! screenshot kept as a test artifact).

use crate::common;

use common::host::Host;
use common::pipeline;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The quickstart's pipeline, slower and longer so that there is time to look at it
/// while it runs (about 20 s).
const RUNNING: &str = r#"
[pipeline]
name = "watched"
batch_size = 256
linger = "100ms"
checkpoint_interval = "500ms"
[source]
type = "generator"
seed = 42
count = 40000
rate = 2000
event_interval = "50ms"
start_time = "2026-01-01T00:00:00Z"
poison_every = 1000
[[transforms]]
plugin = "{FORMAT_USER}"
[window]
plugin = "{GENDER_WINDOW}"
size = "1m"
allowed_lateness = "5s"
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
"#;

/// A plain HTTP/1.1 GET: (status, body).
fn get(addr: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned());
    (status, body)
}

/// Start `toml` with an admin listener on a free loopback port: the host and the
/// address it logged.
fn start(dir: &Path, toml: &str, args: &[&str]) -> (Host, String) {
    Host::start_listening(&pipeline(dir, "p.toml", toml), args)
}

/// A series' value in the exposition, e.g. `sluice_records_in_total{pipeline="watched"}`.
fn series(metrics: &str, name_and_labels: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name_and_labels} in\n{metrics}"))
}

fn status(addr: &str) -> Value {
    let (code, body) = get(addr, "/status", None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn counter(status: &Value, field: &str) -> u64 {
    status["pipelines"][0]["counters"][field].as_u64().unwrap()
}

/// The first 12 hex digits of a file's SHA-256, computed here.
fn version_of(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

#[test]
fn metrics_status_and_health_move_while_a_pipeline_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (host, addr) = start(dir.path(), RUNNING, &["--admin", "127.0.0.1:0"]);

    assert_eq!(get(&addr, "/healthz", None), (200, "ok\n".into()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&addr, "/readyz", None).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "never ready: {:?}",
            get(&addr, "/readyz", None)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let (code, first) = get(&addr, "/metrics", None);
    assert_eq!(code, 200);
    std::thread::sleep(Duration::from_millis(2500));
    let (_, second) = get(&addr, "/metrics", None);
    let p = "{pipeline=\"watched\"}";
    for name in [
        "sluice_records_in_total",
        "sluice_records_out_total",
        "sluice_batches_total",
    ] {
        let key = format!("{name}{p}");
        assert!(
            series(&second, &key) > series(&first, &key),
            "{key} did not move"
        );
    }
    let format_user = version_of(&common::wasm("format_user"));
    let gender_window = version_of(&common::wasm("gender_window"));
    let stage = |stage: &str, plugin: &str, version: &str| {
        format!(
            "{{pipeline=\"watched\",stage=\"{stage}\",plugin=\"{plugin}\",version=\"{version}\"}}"
        )
    };
    let t = stage("transform", "format_user", &format_user);
    let w = stage("window", "gender_window", &gender_window);
    assert_eq!(series(&second, &format!("sluice_plugin_info{t}")), 1.0);
    assert!(series(&second, &format!("sluice_stage_records_in_total{t}")) > 0.0);
    assert!(series(&second, &format!("sluice_plugin_call_seconds_count{w}")) > 0.0);
    // Poison records: format_user refuses one in a thousand.
    assert!(
        series(
            &second,
            "sluice_dead_letters_total{pipeline=\"watched\",stage=\"transform\",reason=\"rejected\"}"
        ) >= 1.0
    );
    let users = "{pipeline=\"watched\",sink=\"sinks[0] (file users.jsonl)\"}";
    assert!(
        series(
            &second,
            &format!("sluice_end_to_end_latency_seconds_count{users}")
        ) > 0.0
    );
    assert!(series(&second, &format!("sluice_sink_write_seconds_count{users}")) > 0.0);
    for name in [
        "sluice_batch_size_records_count",
        "sluice_checkpoint_duration_seconds_count",
        "sluice_checkpoints_total",
        "sluice_windows_closed_total",
        "sluice_checkpoint_age_seconds",
    ] {
        series(&second, &format!("{name}{p}"));
    }
    assert!(series(&second, &format!("sluice_open_windows{p}")) >= 1.0);
    let watermark = series(
        &second,
        "sluice_watermark_seconds{pipeline=\"watched\",partition=\"generator\"}",
    );
    assert!(watermark > 1_767_225_600.0, "{watermark}");
    assert!(second.ends_with("# EOF\n"));

    // /status: the same counters (they only grow between the two reads), the plugins'
    // versions, the last windows and dead letters.
    let s1 = status(&addr);
    let (_, metrics) = get(&addr, "/metrics", None);
    let s2 = status(&addr);
    let in_metrics = series(&metrics, &format!("sluice_records_in_total{p}")) as u64;
    assert!(counter(&s1, "records_in") <= in_metrics && in_metrics <= counter(&s2, "records_in"));
    let pipeline = &s2["pipelines"][0];
    assert_eq!(pipeline["name"], "watched");
    assert_eq!(pipeline["state"], "running");
    assert_eq!(pipeline["plugins"][0]["version"], format_user.as_str());
    assert_eq!(pipeline["plugins"][1]["version"], gender_window.as_str());
    assert!(
        pipeline["rates"]["records_in"].as_f64().unwrap() > 100.0,
        "{pipeline}"
    );
    assert!(pipeline["history"].as_array().unwrap().len() >= 2);
    let windows = pipeline["recent_windows"].as_array().unwrap();
    assert!(!windows.is_empty(), "{pipeline}");
    // The windows shown are those written: the file sink has the same results.
    let written = common::json_lines(&dir.path().join("windows.jsonl"));
    assert!(
        written.contains(&windows[0]),
        "{} not in {written:?}",
        windows[0]
    );
    let dead = &pipeline["recent_dead_letters"][0];
    assert_eq!(dead["stage"], "transform");
    assert!(dead["position"]["sequence"].as_u64().is_some(), "{dead}");

    // `sluice status` reads the same.
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["status", "--admin", &addr])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("watched  running, ready"), "{text}");
    assert!(
        text.contains(&format!("transform format_user version {format_user}")),
        "{text}"
    );
    assert!(text.contains("last windows:"), "{text}");
    assert!(text.contains("male_count="), "{text}");
    host.stop();
}

#[test]
fn readiness_waits_for_the_source_to_connect() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9 here: the http source never connects.
    let toml = r#"
[source]
type = "http"
url = "http://127.0.0.1:9/api"
interval = "1s"
retries = 100
backoff = "100ms"
[[sinks]]
type = "null"
"#;
    let (host, addr) = start(dir.path(), toml, &["--admin", "127.0.0.1:0"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(get(&addr, "/healthz", None).0, 200);
    let (code, body) = get(&addr, "/readyz", None);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("source not connected"), "{body}");
    assert_eq!(status(&addr)["pipelines"][0]["source_connected"], false);
    host.stop();
}

#[test]
fn beyond_loopback_the_token_is_required_and_every_request_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = pipeline(dir.path(), "p.toml", RUNNING);
    let refused = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--no-progress", "--admin", "0.0.0.0:0"])
        .arg(&path)
        .env_remove("SLUICE_ADMIN_TOKEN")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(err.contains("beyond loopback"), "{err}");

    let (host, addr) = start(
        dir.path(),
        RUNNING,
        &["--admin", "0.0.0.0:0", "--admin-token", "s3cret-token"],
    );
    let port = addr.rsplit(':').next().unwrap();
    let local = format!("127.0.0.1:{port}");
    for path in ["/", "/status", "/metrics", "/healthz", "/readyz"] {
        assert_eq!(get(&local, path, None).0, 401, "{path} without the token");
        assert_eq!(
            get(&local, path, Some("wrong")).0,
            401,
            "{path} with another"
        );
    }
    assert_eq!(get(&local, "/healthz", Some("s3cret-token")).0, 200);
    assert_eq!(get(&local, "/status?token=s3cret-token", None).0, 200);
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["status", "--admin", &local])
        .env_remove("SLUICE_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["status", "--admin", &local, "--token", "s3cret-token"])
        .output()
        .unwrap();
    assert!(out.status.success());
    host.stop();
}

/// A raw request (everything but the final blank line and body is `head`): the
/// status, read with a timeout.
fn raw(addr: &str, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "{head}\r\nConnection: close\r\n\r\n").unwrap();
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    (status, response)
}

/// On loopback without a token, nothing reachable from a web page or another local
/// user swaps a plugin: the swap route needs the token the host wrote to a file only
/// its user reads, a plugin's content type, and no foreign `Origin`; a `Host` that is
/// not this machine's (DNS rebinding) is refused everywhere. The stage and the size
/// are checked before a body is read, and idle connections can neither starve the
/// listener nor hold descriptors past the header timeout.
#[test]
fn the_swap_route_needs_the_token_and_the_listener_cannot_be_starved() {
    let dir = tempfile::tempdir().unwrap();
    let (host, addr) = start(dir.path(), RUNNING, &["--admin", "127.0.0.1:0"]);
    let file = host
        .log()
        .split("admin token for plugin swaps written to ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(PathBuf::from)
        .expect("the token file is named");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", file.display());
    let token = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert_eq!(token.len(), 64);

    let swap = |query: &str, headers: &str| {
        let head = format!(
            "POST /plugins/swap?{query} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 4{headers}"
        );
        raw(&addr, &head, b"\0asm")
    };
    let auth = format!("\r\nAuthorization: Bearer {token}");
    let wasm = "\r\nContent-Type: application/wasm";
    // A browser's no-preflight POST: text/plain, no token.
    let (code, _) = swap("stage=format_user", "\r\nContent-Type: text/plain");
    assert_eq!(code, 401, "no token");
    assert_eq!(
        swap(
            "stage=format_user",
            &format!("{wasm}\r\nAuthorization: Bearer nope")
        )
        .0,
        401
    );
    assert_eq!(
        swap(
            "stage=format_user",
            &format!("{auth}\r\nContent-Type: text/plain")
        )
        .0,
        415
    );
    let (code, body) = swap(
        "stage=format_user",
        &format!("{auth}{wasm}\r\nOrigin: https://evil.example"),
    );
    assert_eq!(code, 403, "{body}");
    // The token and the type are there: now the stage and the body count (4 bytes
    // are no component: refused as such, 422).
    assert_eq!(swap("stage=format_user", &format!("{auth}{wasm}")).0, 422);
    // DNS rebinding: a name that is not this machine's, on any route.
    let (code, body) = raw(&addr, "GET /status HTTP/1.1\r\nHost: evil.example", b"");
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("does not name this machine"), "{body}");
    assert_eq!(
        raw(&addr, "GET /healthz HTTP/1.1\r\nHost: localhost", b"").0,
        200
    );

    // Refused before the body is read: a missing stage, and a declared size over the
    // cap, answered at once though no body byte is sent.
    let started = Instant::now();
    let early = |query: &str| {
        let head = format!(
            "POST /plugins/swap?{query} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 250000000{auth}{wasm}"
        );
        raw(&addr, &head, b"")
    };
    let (code, body) = early("stage=nope");
    assert_eq!(code, 404, "{body}");
    assert!(
        body.contains("no transform, stateful stage or window named `nope`"),
        "{body}"
    );
    let head = format!("POST /plugins/swap?stage=format_user HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 300000000{auth}{wasm}");
    assert_eq!(raw(&addr, &head, b"").0, 413);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // 200 idle connections (more than the listener serves at once) never send a
    // byte: /healthz still answers, within the header timeout, and the idle ones are
    // closed by then.
    let idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    let asked = Instant::now();
    let mut health = None;
    while asked.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
        if let Ok(mut s) = TcpStream::connect(&addr) {
            s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
            let _ = write!(
                s,
                "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            );
            let mut r = String::new();
            if s.read_to_string(&mut r).is_ok() && r.starts_with("HTTP/1.1 200") {
                health = Some(asked.elapsed());
                break;
            }
        }
    }
    let waited = health.expect("/healthz answered despite 200 idle connections");
    assert!(waited < Duration::from_secs(15), "{waited:?}");
    let mut closed = 0;
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = [0u8; 64];
        // Closed by the server (at once, or at its header timeout): an end, or a
        // reset; a read that times out is a connection still held.
        match s.read(&mut buf) {
            Ok(_) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            Err(e) => panic!("an idle connection still open after 15 s: {e}"),
        }
    }
    assert_eq!(
        closed, 200,
        "every idle connection was closed by the listener"
    );
    host.stop();
    assert!(!file.exists(), "the token file goes with the host");
}

#[test]
fn json_logs_tag_plugin_lines_and_a_chatty_plugin_is_held_back() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.jsonl"), "chatty\nchatty\nfine\n").unwrap();
    let toml = r#"
[pipeline]
name = "talkative"
[source]
type = "file"
path = "in.jsonl"
[[transforms]]
plugin = "{MISBEHAVE}"
[[sinks]]
type = "null"
"#;
    let path = pipeline(dir.path(), "p.toml", toml);
    let mut host = Host::start_with(&path, &["--log-format", "json"]);
    assert!(host.wait(60).success(), "{}", host.log());
    let log = host.log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!lines.is_empty(), "{log}");
    let version = version_of(&common::wasm("misbehave"));
    let chatty: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("misbehave: chatty line"))
        })
        .collect();
    assert!(!chatty.is_empty(), "{log}");
    for l in &chatty {
        let f = &l["fields"];
        assert_eq!(
            (&f["pipeline"], &f["stage"], &f["plugin"], &f["version"]),
            (
                &Value::from("talkative"),
                &Value::from("transform"),
                &Value::from("misbehave"),
                &Value::from(version.as_str())
            ),
            "{l}"
        );
    }
    // 20,000 lines asked for; the burst and what the rate allows get through.
    let limit = sluice::plugin::LOG_BURST + sluice::plugin::LOG_RATE * 60.0;
    assert!(
        (chatty.len() as f64) < limit,
        "{} lines let through",
        chatty.len()
    );
    assert!(
        lines.iter().any(|l| l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("log line(s) of the plugin dropped"))),
        "{log}"
    );
}

/// The status page, rendered by headless Chromium while the pipeline runs: the
/// numbers it shows lie between two `/status` reads taken around it, they move from
/// one rendering to the next, and a screenshot is kept.
#[test]
fn the_status_page_renders_in_chromium_and_matches_status() {
    let chromium = std::env::var("SLUICE_TEST_CHROMIUM").unwrap_or("/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: scripts/test.sh installs Debian's chromium (or set SLUICE_TEST_CHROMIUM)"
    );
    let dir = tempfile::tempdir().unwrap();
    let (host, addr) = start(dir.path(), RUNNING, &["--admin", "127.0.0.1:0"]);
    let browse = |extra: &[&str]| {
        let profile = tempfile::tempdir().unwrap();
        let out = Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1280,1100",
                "--virtual-time-budget=2000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(format!("http://{addr}/"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown = |dom: &str, field: &str| -> u64 {
        let marker = format!("data-pipeline=\"watched\" data-field=\"{field}\">");
        let rest = dom
            .split(&marker)
            .nth(1)
            .unwrap_or_else(|| panic!("no {field} on the page:\n{dom}"));
        rest.split('<')
            .next()
            .unwrap()
            .replace(',', "")
            .parse()
            .unwrap()
    };
    let before = status(&addr);
    let first = browse(&["--dump-dom"]);
    let after = status(&addr);
    for field in [
        "records_in",
        "records_out",
        "dead_letters",
        "windows_closed",
    ] {
        let n = shown(&first, field);
        assert!(
            counter(&before, field) <= n && n <= counter(&after, field),
            "{field}: the page shows {n}, /status had {} then {}",
            counter(&before, field),
            counter(&after, field)
        );
    }
    for version in [
        version_of(&common::wasm("format_user")),
        version_of(&common::wasm("gender_window")),
    ] {
        assert!(
            first.contains(&version),
            "plugin version {version} not shown"
        );
    }
    assert!(first.contains("class=\"window\""), "no window shown");
    assert!(first.contains("class=\"dead\""), "no dead letter shown");
    std::thread::sleep(Duration::from_secs(1));
    let second = browse(&["--dump-dom"]);
    assert!(
        shown(&second, "records_in") > shown(&first, "records_in"),
        "the numbers do not move"
    );

    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&png);
    browse(&[&format!("--screenshot={}", png.display())]);
    let bytes = std::fs::read(&png).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "{}",
        bytes.len()
    );
    println!("status page screenshot: {}", png.display());
    host.stop();
}

/// A Kafka source: not ready until the group is joined, then lag per partition and
/// commits appear among the series.
#[test]
fn a_kafka_pipeline_is_ready_once_in_its_group_and_reports_lag_per_partition() {
    use common::kafka::{broker, create_topic, produce, unique, FAST_GROUP};
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("admin");
    create_topic(&topic, 1);
    let messages: Vec<_> = (0..500)
        .map(|i| (None, Some(format!("{{\"n\":{i}}}").into_bytes())))
        .collect();
    produce(&topic, &messages);
    let toml = format!(
        r#"
[pipeline]
name = "from_kafka"
checkpoint_interval = "200ms"
[source]
type = "kafka"
brokers = "{}"
topics = ["{topic}"]
group_id = "{}"
{FAST_GROUP}
[[sinks]]
type = "file"
path = "out.jsonl"
"#,
        broker(),
        unique("g")
    );
    let (host, addr) = start(dir.path(), &toml, &["--admin", "127.0.0.1:0"]);
    let (code, body) = get(&addr, "/readyz", None);
    assert_eq!(code, 503, "ready before the group join: {body}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while get(&addr, "/readyz", None).0 != 200 {
        assert!(Instant::now() < deadline, "never ready:\n{}", host.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let lag =
        format!("sluice_consumer_lag_records{{pipeline=\"from_kafka\",partition=\"{topic}[0]\"}}");
    let commits = "sluice_commits_total{pipeline=\"from_kafka\"}";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, metrics) = get(&addr, "/metrics", None);
        let has_lag = metrics.lines().any(|l| l.starts_with(&lag));
        if has_lag
            && series(&metrics, commits) > 0.0
            && series(&metrics, "sluice_records_in_total{pipeline=\"from_kafka\"}") == 500.0
        {
            assert!(series(&metrics, &lag) >= 0.0);
            break;
        }
        assert!(Instant::now() < deadline, "no lag or commits:\n{metrics}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let s = status(&addr);
    assert!(
        s["pipelines"][0]["counters"]["lag"][format!("{topic}[0]")].is_i64(),
        "{s}"
    );
    host.stop();
}
