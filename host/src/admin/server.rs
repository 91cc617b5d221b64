//! Serving the admin routes over HTTP/1.1 (hyper), with the bearer-token check and
//! the guards of [`super::guard`]. The listener can never starve the pipeline: at most
//! [`MAX_CONNECTIONS`] at once (one more is closed as soon as it is accepted), a
//! request's headers must arrive within [`HEADER_TIMEOUT`] (an idle kept-alive
//! connection too), and a failing `accept` (out of descriptors) backs off rather than
//! spinning.

use super::guard;
use super::history::History;
use super::{swap, AdminConfig, PipelineHandle};
use crate::metrics::Families;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The page at `/`: one file, no external assets, polling `/status`.
const PAGE: &str = include_str!("page.html");

/// Connections served at once; one more is closed as soon as it is accepted.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send a request's headers (an idle kept-alive
/// connection included) before it is closed.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A running admin listener.
pub struct Admin {
    addr: SocketAddr,
}

impl Drop for Admin {
    /// The token file made at start (if any) goes with the listener.
    fn drop(&mut self) {
        guard::remove_made_tokens();
    }
}

pub(super) struct Shared {
    /// Every request needs it (configured, for a listener beyond loopback).
    token: Option<String>,
    /// Mutating routes need it: the configured token, or one made at start (`Err`:
    /// none could be written, and why: swaps are off).
    pub(super) mutate_token: Result<String, String>,
    /// On loopback, `Host` must name this machine (no DNS rebinding).
    loopback: bool,
    /// One swap upload at a time: a component is held whole while it compiles.
    pub(super) uploads: tokio::sync::Semaphore,
    families: Arc<Families>,
    history: Mutex<History>,
    started: Instant,
    pub(super) pipelines: Vec<PipelineHandle>,
    pub(super) runtime: Arc<crate::plugin::Runtime>,
}

impl Admin {
    /// Bind and serve until `shutdown`; samples every pipeline each second for rates.
    pub async fn start(
        config: &AdminConfig,
        families: Arc<Families>,
        pipelines: Vec<PipelineHandle>,
        runtime: Arc<crate::plugin::Runtime>,
        shutdown: CancellationToken,
    ) -> Result<Admin, String> {
        let addr = config.addr().map_err(|e| e.message)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let mutate_token = match &config.token {
            Some(t) => Ok(t.clone()),
            None => match guard::make_token(addr) {
                Ok((token, file)) => {
                    tracing::info!(
                        "admin token for plugin swaps written to {} (sluice plugin swap reads it there)",
                        file.display()
                    );
                    Ok(token)
                }
                Err(why) => {
                    // Reading (metrics, status) needs no token: the listener still
                    // serves it; only swaps are off.
                    let why = format!("no admin token could be written ({why}): plugin swaps are off; set [admin] token to have them");
                    tracing::warn!("{why}");
                    Err(why)
                }
            },
        };
        let shared = Arc::new(Shared {
            token: config.token.clone(),
            mutate_token,
            loopback: addr.ip().is_loopback(),
            uploads: tokio::sync::Semaphore::new(1),
            families,
            history: Mutex::new(History::new(
                pipelines.iter().map(|p| p.metrics.clone()).collect(),
            )),
            started: Instant::now(),
            pipelines,
            runtime,
        });
        let sampler = shared.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => sampler.history.lock().unwrap_or_else(|e| e.into_inner()).sample(),
                    _ = stop.cancelled() => return,
                }
            }
        });
        tokio::spawn(async move {
            let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = shutdown.cancelled() => return,
                };
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of descriptors, say: waiting lets some close, where
                        // trying again at once would spin.
                        tracing::warn!(
                            "admin listener: accept failed ({e}); trying again in 100 ms"
                        );
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                // Full: closed at once, so that the queue behind it keeps moving (a
                // client tries again once the idle ones have timed out).
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    drop(stream);
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(&shared, req).await) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .max_buf_size(64 * 1024)
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        tracing::info!("admin listener on http://{addr} (/, /status, /metrics, /healthz, /readyz)");
        Ok(Admin { addr })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

pub(super) fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub(super) const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

fn unauthorized(message: &'static str) -> Response<Full<Bytes>> {
    let mut r = respond(StatusCode::UNAUTHORIZED, TEXT, message);
    r.headers_mut()
        .insert("www-authenticate", HeaderValue::from_static("Bearer"));
    r
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if !crate::bearer::authorized(shared.token.as_deref(), &req) {
        return unauthorized(
            "401: this admin listener needs its token (Authorization: Bearer <token>, or ?token=<token>)\n",
        );
    }
    if let Some(why) = shared.loopback.then(|| guard::host_refused(&req)).flatten() {
        return respond(StatusCode::FORBIDDEN, TEXT, format!("403: {why}\n"));
    }
    if req.uri().path() == "/plugins/swap" {
        if req.method() != Method::POST {
            return respond(
                StatusCode::METHOD_NOT_ALLOWED,
                TEXT,
                "405: POST the .wasm\n",
            );
        }
        if let Some(why) = guard::origin_refused(&req) {
            return respond(StatusCode::FORBIDDEN, TEXT, format!("403: {why}\n"));
        }
        let token = match &shared.mutate_token {
            Ok(token) => token,
            Err(why) => {
                return respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    TEXT,
                    format!("503: {why}\n"),
                )
            }
        };
        if !crate::bearer::authorized(Some(token), &req) {
            return unauthorized(
                "401: a swap needs the admin token (Authorization: Bearer <token>): the configured [admin] token, or the one the host wrote at start (its log names the file; sluice plugin swap reads it)\n",
            );
        }
        if let Some(why) = guard::content_type_refused(&req) {
            return respond(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                TEXT,
                format!("415: {why}\n"),
            );
        }
        return swap::handle(shared, req).await;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return respond(StatusCode::METHOD_NOT_ALLOWED, TEXT, "405: only GET\n");
    }
    let history = || shared.history.lock().unwrap_or_else(|e| e.into_inner());
    match req.uri().path() {
        "/" | "/index.html" => respond(StatusCode::OK, "text/html; charset=utf-8", PAGE),
        "/healthz" => respond(StatusCode::OK, TEXT, "ok\n"),
        "/readyz" => {
            let waiting: Vec<String> = history()
                .metrics()
                .filter(|m| !m.ready())
                .map(|m| {
                    format!(
                        "{}: {}{}",
                        m.pipeline(),
                        serde_json::to_value(m.state())
                            .unwrap_or_default()
                            .as_str()
                            .unwrap_or(""),
                        if m.connected() {
                            ""
                        } else {
                            ", source not connected"
                        }
                    )
                })
                .collect();
            if waiting.is_empty() {
                respond(StatusCode::OK, TEXT, "ready\n")
            } else {
                respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    TEXT,
                    format!("not ready: {}\n", waiting.join("; ")),
                )
            }
        }
        "/metrics" => {
            for m in history().metrics() {
                m.refresh();
            }
            respond(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                shared.families.encode(),
            )
        }
        "/status" => {
            let body = status_json(shared, &history());
            respond(StatusCode::OK, JSON, body.to_string())
        }
        _ => respond(
            StatusCode::NOT_FOUND,
            TEXT,
            "404: the admin listener serves /, /status, /metrics, /healthz, /readyz and POST /plugins/swap\n",
        ),
    }
}

/// `/status`: the host, and per pipeline its counters, rates, samples, plugins,
/// windows and dead letters.
fn status_json(shared: &Shared, history: &History) -> serde_json::Value {
    let pipelines: Vec<serde_json::Value> = history
        .metrics()
        .enumerate()
        .map(|(i, m)| {
            let (samples, rates) = history.of(i);
            let mut v = serde_json::to_value(m.status()).unwrap_or_default();
            if let serde_json::Value::Object(o) = &mut v {
                o.insert(
                    "rates".into(),
                    serde_json::to_value(rates).unwrap_or_default(),
                );
                o.insert(
                    "history".into(),
                    serde_json::to_value(samples).unwrap_or_default(),
                );
            }
            v
        })
        .collect();
    json!({
        "host": {
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "uptime_ms": shared.started.elapsed().as_millis() as u64,
            "time_ms": crate::record::now_ms(),
        },
        "pipelines": pipelines,
    })
}
