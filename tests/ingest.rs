//! The HTTP ingest source (`type = "http_server"`) driven by real clients over real
//! sockets: the seed's Python snippet, bad bodies of every class, clients pushing
//! while the host is killed and restarted, a full pipeline, and a stop.

use crate::common;

use common::host::Host;
use common::{free_port, json_lines, pipeline, repo};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A pipeline taking POSTs at `port` into `out.jsonl`; `source` adds source keys.
fn ingest_pipeline(dir: &Path, port: u16, source: &str, rest: &str) -> std::path::PathBuf {
    pipeline(
        dir,
        "ingest.toml",
        &format!(
            r#"
[pipeline]
linger = "5ms"
checkpoint_interval = "30s"
[source]
type = "http_server"
listen = "127.0.0.1:{port}"
path = "/api/data"
{source}
{rest}
[dead_letter]
type = "file"
path = "dead.jsonl"
"#
        ),
    )
}

const FILE_SINK: &str = r#"
[[sinks]]
type = "file"
path = "out.jsonl"
"#;

/// Wait until the host takes POSTs.
fn wait_listening(host: &mut Host) {
    host.wait_log(60, "the ingest listener", |l| {
        l.contains("taking records POSTed to")
    });
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn post(url: &str, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let r = client()
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A request written by hand on a socket (`head`, then `chunks`, stopping at the
/// first write the server refuses): the answer's text.
fn raw(port: u16, head: &str, chunks: &[&str]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    for c in chunks {
        if s.write_all(c.as_bytes()).is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Seed 001's client, as its script has it (`requests.post(api_endpoint, json=user)`
/// for each user of a randomuser.me response), with the response read from a file
/// rather than the network.
const SEED_SNIPPET: &str = r#"
import json, sys
import requests

api_endpoint = sys.argv[1]
res = json.load(open(sys.argv[2]))
for user in res['results']:
    r = requests.post(api_endpoint, json=user)
    print(r.status_code)
"#;

#[test]
fn the_seeds_python_client_posts_users_and_every_200_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let schema = repo().join("schemas/randomuser_user.json");
    let p = ingest_pipeline(
        dir.path(),
        port,
        &format!("schema = \"{}\"", schema.display()),
        &format!("[[transforms]]\nplugin = \"{{FORMAT_USER}}\"\n{FILE_SINK}"),
    );
    let mut host = Host::start(&p);
    wait_listening(&mut host);
    let response = repo().join("tests/fixtures/randomuser/response_results5.json");
    let out = Command::new("python3")
        .args(["-c", SEED_SNIPPET])
        .arg(format!("http://127.0.0.1:{port}/api/data"))
        .arg(&response)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let statuses: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(statuses, ["200"; 5], "{}", host.log());
    // A 200 means stored: the rows are in the file before the host stops.
    let rows = json_lines(&dir.path().join("out.jsonl"));
    let sent: Value = serde_json::from_str(&std::fs::read_to_string(response).unwrap()).unwrap();
    let emails: Vec<&Value> = sent["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| &u["email"])
        .collect();
    let stored: Vec<&Value> = rows.iter().map(|r| &r["email"]).collect();
    assert_eq!(stored, emails);
    host.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies_are_answered_as_documented_and_nothing_of_them_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let schema = repo().join("schemas/randomuser_user.json");
    let p = ingest_pipeline(
        dir.path(),
        port,
        &format!(
            "schema = \"{}\"\nmax_body_mb = 1\nkey_field = \"/login/uuid\"",
            schema.display()
        ),
        FILE_SINK,
    );
    let (mut host, admin) = Host::start_listening(&p, &["--admin", "127.0.0.1:0"]);
    wait_listening(&mut host);
    let url = format!("http://127.0.0.1:{port}/api/data");
    let user: Value = serde_json::from_str(&common::fixture("randomuser/one_user.json")).unwrap();
    let json = "application/json";

    // Malformed JSON: 400 naming line and column.
    let (code, body) = post(&url, json, "[\n  {\"gender\": }\n]").await;
    assert_eq!(
        (code, &body["line"], &body["column"]),
        (400, &json!(2), &json!(14)),
        "{body}"
    );
    let (code, body) = post(
        &url,
        "application/x-ndjson",
        format!("{user}\n{{\"a\" 1}}\n"),
    )
    .await;
    assert_eq!((code, &body["line"]), (400, &json!(2)), "{body}");
    // JSON, but not records.
    assert_eq!(post(&url, json, "\"a user\"").await.0, 400);
    // One bad record refuses the request: each refused record named, nothing taken.
    let mut bad_email = user.clone();
    bad_email["email"] = json!("not-an-email");
    let mut no_name = user.clone();
    no_name.as_object_mut().unwrap().remove("name");
    let batch = json!([user, bad_email, user, no_name, 7]);
    let (code, body) = post(&url, json, batch.to_string()).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["refused"].as_u64()),
        (Some(0), Some(3))
    );
    let refused: Vec<(u64, &str, &str)> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["pointer"].as_str().unwrap(),
                r["rule"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        refused,
        [
            (1, "/email", "/properties/email/format"),
            (3, "", "/required"),
            (4, "", ""),
        ]
    );
    // Too large: 413, declared (and not read), or streamed without a length.
    let declared = raw(
        port,
        "POST /api/data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1048577\r\n\r\n",
        &[],
    );
    assert!(declared.starts_with("HTTP/1.1 413"), "{declared}");
    let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
    let chunks: Vec<&str> = std::iter::repeat_n(chunk.as_str(), 17).collect();
    let streamed = raw(
        port,
        "POST /api/data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        &chunks,
    );
    assert!(streamed.starts_with("HTTP/1.1 413"), "{streamed}");
    // The wrong type, method and path.
    assert_eq!(post(&url, "text/plain", user.to_string()).await.0, 415);
    let get = client().get(&url).send().await.unwrap();
    assert_eq!(get.status().as_u16(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    let other = format!("http://127.0.0.1:{port}/api/other");
    assert_eq!(post(&other, json, user.to_string()).await.0, 404);

    // None of that was taken; a good request is, whole, keyed by its field.
    let (code, body) = post(&url, json, json!([user, user]).to_string()).await;
    assert_eq!((code, &body["accepted"]), (200, &json!(2)), "{body}");
    let rows = json_lines(&dir.path().join("out.jsonl"));
    assert_eq!(rows, [user.clone(), user.clone()]);

    // The answers are counted by status; /status shows the source.
    let status = reqwest::get(format!("http://{admin}/status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let status: Value = serde_json::from_str(&status).unwrap();
    let ingest = &status["pipelines"][0]["ingest"];
    assert_eq!(ingest["requests"]["422"], 1, "{ingest}");
    assert_eq!(ingest["requests"]["413"], 2, "{ingest}");
    assert_eq!(ingest["records_accepted"], 2, "{ingest}");
    assert_eq!(ingest["records_refused"], 5, "{ingest}");
    let metrics = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sluice_ingest_requests_total{pipeline=\"ingest\",status=\"200\"} 1"),
        "{metrics}"
    );
    host.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_is_asked_for_and_accepted_answers_202() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let p = ingest_pipeline(
        dir.path(),
        port,
        "token = \"s3cret\"\nack = \"accepted\"",
        FILE_SINK,
    );
    let mut host = Host::start(&p);
    wait_listening(&mut host);
    let url = format!("http://127.0.0.1:{port}/api/data");
    let (code, _) = post(&url, "application/json", "{\"a\": 1}").await;
    assert_eq!(code, 401);
    let r = client()
        .post(&url)
        .bearer_auth("s3cret")
        .header("content-type", "application/x-ndjson")
        .body("{\"a\": 1}\n{\"a\": 2}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    host.stop();
    assert_eq!(json_lines(&dir.path().join("out.jsonl")).len(), 2);
}

/// Clients push while the host is killed (`kill -9`) and restarted, sending again
/// whatever got no 200. Every record that got a 200 is in the file afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn nothing_that_got_a_200_is_lost_through_kill_9_and_restarts() {
    const CLIENTS: usize = 8;
    const EACH: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let p = ingest_pipeline(dir.path(), port, "key_field = \"id\"", FILE_SINK);
    let mut host = Host::start(&p);
    wait_listening(&mut host);
    let url = format!("http://127.0.0.1:{port}/api/data");
    let stored: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (url, stored) = (url.clone(), stored.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            for i in 0..EACH {
                let id = format!("c{c}-{i}");
                // Two records a request, sent until a 200 says they are stored.
                let body = format!("[{{\"id\": \"{id}-a\"}}, {{\"id\": \"{id}-b\"}}]");
                loop {
                    let sent = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    match sent.map(|r| r.status().as_u16()) {
                        Ok(200) => break,
                        Ok(code @ (400..=499)) => panic!("{code} for {body}"),
                        // No answer (the host died), or 503: again, a little later.
                        _ => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
                let mut s = stored.lock().unwrap();
                s.insert(format!("{id}-a"));
                s.insert(format!("{id}-b"));
            }
        }));
    }
    for _ in 0..3 {
        // Let some requests through, then kill the host mid-stream.
        let before = stored.lock().unwrap().len();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while stored.lock().unwrap().len() < before + 60 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        host.signal("-KILL");
        host.wait(30);
        host = Host::start(&p);
        wait_listening(&mut host);
    }
    for c in clients {
        c.await.unwrap();
    }
    host.stop();
    let in_file: BTreeSet<String> = json_lines(&dir.path().join("out.jsonl"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let stored = stored.lock().unwrap();
    assert_eq!(stored.len(), CLIENTS * EACH * 2);
    let lost: Vec<&String> = stored.difference(&in_file).collect();
    assert!(
        lost.is_empty(),
        "{} answered 200 but not stored: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024
}

/// A stdout sink nobody reads fills its pipe and stalls the pipeline: new requests
/// are answered 503 with Retry-After, and however much clients push, the host's
/// memory stays bounded. Once stdout is read again, requests go through.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_pipeline_answers_503_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let p = ingest_pipeline(
        dir.path(),
        port,
        "ack = \"accepted\"\nmax_buffer_mb = 16\nqueue_wait = \"100ms\"",
        "[[sinks]]\ntype = \"stdout\"\n",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--no-progress"])
        .arg(&p)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/api/data");
    // ~256 KiB a request: 64 clients, 40 requests each, 640 MiB pushed in all.
    let record = json!({ "pad": "x".repeat(1 << 10) }).to_string();
    let body: Arc<String> = Arc::new(format!("[{}]", vec![record; 250].join(",")));
    let mut up = false;
    for _ in 0..200 {
        if client().post(&url).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the host did not listen");
    let codes: Arc<Mutex<Vec<(u16, bool)>>> = Arc::default();
    let mut clients = Vec::new();
    for _ in 0..64 {
        let (url, body, codes) = (url.clone(), body.clone(), codes.clone());
        clients.push(tokio::spawn(async move {
            let http = client();
            for _ in 0..40 {
                let r = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.as_str().to_owned())
                    .send()
                    .await;
                if let Ok(r) = r {
                    let retry_after = r.headers().contains_key("retry-after");
                    codes
                        .lock()
                        .unwrap()
                        .push((r.status().as_u16(), retry_after));
                }
            }
        }));
    }
    let pid = child.id();
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut most = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(rss_mib(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            most
        })
    };
    for c in clients {
        c.await.unwrap();
    }
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let most = sampler.join().unwrap();
    let codes = codes.lock().unwrap().clone();
    let busy = codes.iter().filter(|(c, _)| *c == 503).count();
    assert!(busy > 0, "no 503 among {} answers", codes.len());
    assert!(
        codes
            .iter()
            .all(|(c, retry)| *c == 202 || (*c == 503 && *retry)),
        "{codes:?}"
    );
    println!(
        "full pipeline: {} answers, {busy} of them 503; most RSS {most} MiB",
        codes.len()
    );
    assert!(most < 400, "RSS reached {most} MiB");
    // Read stdout again: the pipeline drains and takes requests once more.
    let mut stdout = child.stdout.take().unwrap();
    let drain = std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let mut taken = false;
    for _ in 0..100 {
        let (code, _) = post(&url, "application/json", "{\"after\": 1}").await;
        if code == 202 {
            taken = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(taken, "the pipeline did not take requests again");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
    drain.join().unwrap().unwrap();
}

/// A stop answers what is in flight: every request that got a 200 before or during
/// the stop is stored, and the host exits cleanly.
#[tokio::test(flavor = "multi_thread")]
async fn a_stop_answers_what_is_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let p = ingest_pipeline(dir.path(), port, "", FILE_SINK);
    let mut host = Host::start(&p);
    wait_listening(&mut host);
    let url = format!("http://127.0.0.1:{port}/api/data");
    let stored: Arc<Mutex<Vec<u64>>> = Arc::default();
    let mut clients = Vec::new();
    for c in 0..8u64 {
        let (url, stored) = (url.clone(), stored.clone());
        clients.push(tokio::spawn(async move {
            let http = client();
            for i in 0.. {
                let n = c * 1_000_000 + i;
                let sent = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(format!("{{\"n\": {n}}}"))
                    .send()
                    .await;
                match sent.map(|r| r.status().as_u16()) {
                    Ok(200) => stored.lock().unwrap().push(n),
                    Ok(503) => {}
                    Ok(other) => panic!("{other}"),
                    Err(_) => return, // the listener is gone
                }
            }
        }));
    }
    while stored.lock().unwrap().len() < 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    host.stop();
    for c in clients {
        c.await.unwrap();
    }
    let in_file: BTreeSet<u64> = json_lines(&dir.path().join("out.jsonl"))
        .iter()
        .map(|r| r["n"].as_u64().unwrap())
        .collect();
    let stored = stored.lock().unwrap();
    assert!(
        stored.iter().all(|n| in_file.contains(n)),
        "a 200 not stored"
    );
}

/// `tls = { cert_file, key_file }`: HTTPS with a certificate the client trusts; a
/// plain-HTTP request to it gets no answer, and the records of the HTTPS one are stored.
#[tokio::test(flavor = "multi_thread")]
async fn tls_serves_https_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    std::fs::write(dir.path().join("server.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("server.key"), cert.key_pair.serialize_pem()).unwrap();
    let port = free_port();
    let p = ingest_pipeline(
        dir.path(),
        port,
        "tls = { cert_file = \"server.pem\", key_file = \"server.key\" }",
        FILE_SINK,
    );
    let mut host = Host::start(&p);
    wait_listening(&mut host);
    assert!(host
        .log()
        .contains(&format!("https://127.0.0.1:{port}/api/data")));
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let r = trusting
        .post(format!("https://127.0.0.1:{port}/api/data"))
        .header("content-type", "application/json")
        .body("{\"over\": \"tls\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let plain = client()
        .post(format!("http://127.0.0.1:{port}/api/data"))
        .header("content-type", "application/json")
        .body("{\"over\": \"plain\"}")
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    host.stop();
    let rows = json_lines(&dir.path().join("out.jsonl"));
    assert_eq!(rows, [json!({"over": "tls"})]);
}
