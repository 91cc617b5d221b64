//! The HTTP ingest source under load, printed (never asserted): requests/s, records/s
//! and answer latency p50/p99 for 1, 16 and 64 concurrent clients sending 1 or 100
//! records a request, with `ack = "durable"` and `"accepted"`, beside a bare hyper
//! server that only reads and counts bodies (the limit on this machine). Everything
//! runs in one process on the same runtime: the clients (hyper's, through reqwest),
//! the source, the pipeline (-> null sink) or the bare server.
//!
//! `cargo bench -p sluice --bench ingest`; SLUICE_BENCH_SECONDS (default 2) per line.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use sluice::engine::Pipeline;
use sluice::plugin::{ComponentCache, Runtime};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A randomuser.me-sized record (~1 KB).
fn record(i: usize) -> String {
    format!(
        r#"{{"id": "{i}", "gender": "female", "name": {{"first": "Ana", "last": "Silva"}}, "email": "ana.silva{i}@example.com", "pad": "{}"}}"#,
        "x".repeat(900)
    )
}

fn body(records: usize) -> String {
    if records == 1 {
        return record(0);
    }
    format!(
        "[{}]",
        (0..records).map(record).collect::<Vec<_>>().join(",")
    )
}

struct Line {
    requests: u64,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// `clients` clients posting `body` to `url` for `seconds`, each waiting for its
/// answer before the next request.
async fn load(url: &str, clients: usize, body: Arc<String>, seconds: f64) -> Line {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let stop = Instant::now() + Duration::from_secs_f64(seconds);
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for _ in 0..clients {
        let (http, url, body, failed) =
            (http.clone(), url.to_owned(), body.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut took = Vec::new();
            while Instant::now() < stop {
                let t = Instant::now();
                let r = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.as_str().to_owned())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        took.push(t.elapsed());
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            took
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let seconds = started.elapsed().as_secs_f64();
    all.sort();
    let at = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        eprintln!("    ({failed} request(s) not answered 2xx)");
    }
    Line {
        requests: all.len() as u64,
        seconds,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
    }
}

/// A hyper server that reads each body, counts its bytes and answers 200.
async fn bare_server() -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bytes = Arc::new(AtomicU64::new(0));
    let counted = bytes.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let counted = counted.clone();
                    async move {
                        let body = req.into_body().collect().await.map(|b| b.to_bytes());
                        let n = body.map_or(0, |b| b.len());
                        counted.fetch_add(n as u64, Ordering::Relaxed);
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                            Bytes::from_static(b"{}"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}/"), bytes)
}

fn print(what: &str, clients: usize, records: usize, line: &Line) {
    let rps = line.requests as f64 / line.seconds;
    println!(
        "| {what:<9} | {clients:>3} | {records:>3} | {:>8.0} | {:>9.0} | {:>7.2} | {:>7.2} |",
        rps,
        rps * records as f64,
        line.p50_ms,
        line.p99_ms
    );
}

fn main() {
    let seconds: f64 = std::env::var("SLUICE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let runtime = Runtime::new(ComponentCache::from_env()).unwrap();
    println!("HTTP ingest: one process, 2 cores shared by clients and server; {seconds} s a line");
    println!(
        "| server    | clients | records/request | requests/s | records/s | p50 ms | p99 ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let (bare, _) = rt.block_on(bare_server());
    for records in [1, 100] {
        let body = Arc::new(body(records));
        for clients in [1, 16, 64] {
            let line = rt.block_on(load(&bare, clients, body.clone(), seconds));
            print("bare", clients, records, &line);
            for ack in ["durable", "accepted"] {
                let dir = tempfile::tempdir().unwrap();
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                let text = format!(
                    "[pipeline]\nlinger = \"5ms\"\n[source]\ntype = \"http_server\"\nlisten = \"127.0.0.1:{port}\"\nack = \"{ack}\"\n[[sinks]]\ntype = \"null\"\n"
                );
                let config =
                    sluice::config::parse(&dir.path().join("i.toml"), &text, |_| None).unwrap();
                let pipeline = Pipeline::build(config, &runtime).unwrap();
                let stop = CancellationToken::new();
                let running = rt.spawn(pipeline.run(stop.clone()));
                let url = format!("http://127.0.0.1:{port}/");
                rt.block_on(async {
                    // Until it listens.
                    while reqwest::get(&url).await.is_err() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                });
                let line = rt.block_on(load(&url, clients, body.clone(), seconds));
                print(ack, clients, records, &line);
                stop.cancel();
                rt.block_on(running).unwrap().unwrap();
            }
        }
    }
}
