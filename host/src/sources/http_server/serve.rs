//! The listener: HTTP/1.1 (hyper), one answer per request as the module's contract
//! says, connections capped, slow clients cut off, and a stop that answers what is in
//! flight before it ends.

use super::body::{Format, Reader, Rejected};
use super::ledger::{Handed, Ledger};
use super::{Ack, HttpServerConfig};
use crate::metrics::IngestMetrics;
use crate::position::Origin;
use crate::schema::Schema;
use crate::sources::{SourceContext, SourceError, FLUSH_TIMEOUT};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{RwLock, Semaphore};
use tokio_util::sync::CancellationToken;

/// Connections open at once; one more is closed as soon as it is accepted.
pub const MAX_CONNECTIONS: u32 = 1024;
/// How long a client may take to send a request's headers (an idle kept-alive
/// connection included) before it is closed.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stop waits for connections to take their last answers.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

struct Shared {
    config: HttpServerConfig,
    schema: Option<Schema>,
    ledger: Arc<Ledger>,
    metrics: IngestMetrics,
    /// Requests being read and checked.
    requests: Semaphore,
    /// Bodies held, in KiB.
    buffer: Semaphore,
    stopping: AtomicBool,
    /// Held (read) while a request hands its records over; a stop takes it (write)
    /// to know nothing more is on its way in.
    handing: RwLock<()>,
}

pub async fn run(config: HttpServerConfig, ctx: SourceContext) -> Result<(), SourceError> {
    let name = ctx.name.clone();
    let fatal = |m: String| SourceError::fatal(&name, m);
    let addr = config.addr().map_err(|e| fatal(e.to_string()))?;
    let schema = match &config.schema {
        Some(file) => Some(Schema::load(file, &ctx.base_dir).map_err(|e| fatal(e.to_string()))?),
        None => None,
    };
    let tls = match &config.tls {
        Some(t) => {
            let server = crate::tls::server_config(&t.cert_file, &t.key_file, &ctx.base_dir)
                .map_err(fatal)?;
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
        }
        None => None,
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| fatal(format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr().map_err(|e| fatal(e.to_string()))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{local}{}", config.path);
    let metrics = ctx.metrics.ingest(&url, config.ack.name());
    ctx.metrics.set_connected();
    tracing::info!(source = %name, "taking records POSTed to {url} (ack = \"{}\")", config.ack.name());

    let partition = ctx.partition(Origin::Sequence {
        source: "http_server".into(),
    });
    let shutdown = ctx.shutdown.clone();
    let ctx = Arc::new(ctx);
    let ledger = Ledger::new(ctx.clone(), partition);
    let reader = {
        let ledger = ledger.clone();
        tokio::task::spawn_blocking(move || ledger.read_acks())
    };
    let stop_asking = CancellationToken::new();
    tokio::spawn(ledger.clone().ask_for_checkpoints(stop_asking.clone()));
    let shared = Arc::new(Shared {
        requests: Semaphore::new(config.max_requests),
        buffer: Semaphore::new((config.max_buffer_mb * 1024) as usize),
        schema,
        ledger: ledger.clone(),
        metrics,
        stopping: AtomicBool::new(false),
        handing: RwLock::new(()),
        config,
    });

    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS as usize));
    // Every connection's task, so that a stop can end those still going (a body
    // still arriving) once the close wait is over: they hold the intake open.
    let mut tasks = tokio::task::JoinSet::new();
    let closing = CancellationToken::new();
    let mut check = tokio::time::interval(Duration::from_millis(200));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => break,
            _ = check.tick() => {
                if ctx.is_closed() { break; }
                continue;
            }
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, say: waiting lets some close.
                tracing::warn!(source = %name, "accept failed ({e}); trying again in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while tasks.try_join_next().is_some() {}
        let Ok(slot) = connections.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let (shared, closing) = (shared.clone(), closing.clone());
        match tls.clone() {
            None => {
                tasks.spawn(serve_connection(stream, shared, closing, slot));
            }
            Some(acceptor) => {
                tasks.spawn(async move {
                    // The handshake is held to the headers' deadline too.
                    let accepted = tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream));
                    if let Ok(Ok(stream)) = accepted.await {
                        serve_connection(stream, shared, closing, slot).await;
                    }
                });
            }
        }
    }

    // The stop: no new connections (the listener goes), new requests answered 503,
    // what is in flight handed on, stored and answered.
    drop(listener);
    shared.stopping.store(true, Ordering::SeqCst);
    closing.cancel();
    drop(shared.handing.write().await);
    stop_asking.cancel();
    if !ctx.is_closed() && !ledger.finish(FLUSH_TIMEOUT).await {
        tracing::warn!(source = %name, "the last requests' records were not confirmed stored within {FLUSH_TIMEOUT:?}; their clients were not answered 200 and will send them again");
    }
    let all = MAX_CONNECTIONS;
    let _ = tokio::time::timeout(CLOSE_WAIT, connections.acquire_many(all)).await;
    tasks.abort_all();
    ledger.stop_reading();
    let _ = reader.await;
    Ok(())
}

async fn serve_connection(
    stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    shared: Arc<Shared>,
    closing: CancellationToken,
    _slot: tokio::sync::OwnedSemaphorePermit,
) {
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(&shared, req).await) }
    });
    let io = hyper_util::rt::TokioIo::new(stream);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 * 1024)
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = closing.cancelled() => {
            // Answers what is in flight, then closes.
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let _counted = InFlight::new(&shared.metrics);
    let response = answer(shared, req).await;
    shared
        .metrics
        .answered(response.status().as_u16(), started.elapsed());
    response
}

/// A request in flight, counted until it ends: answered, or dropped when its client
/// goes away while it waits.
struct InFlight<'a>(&'a IngestMetrics);

impl<'a> InFlight<'a> {
    fn new(metrics: &'a IngestMetrics) -> Self {
        metrics.in_flight(true);
        InFlight(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight(false);
    }
}

async fn answer(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let c = &shared.config;
    if req.uri().path() != c.path {
        let why = format!("no such path: records are POSTed to {}", c.path);
        return error(StatusCode::NOT_FOUND, &why);
    }
    if req.method() != Method::POST {
        let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "records are sent with POST");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    if !crate::bearer::authorized(c.token.as_deref(), &req) {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "this source needs its token (Authorization: Bearer <token>)",
        );
        r.headers_mut()
            .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        return r;
    }
    if shared.stopping.load(Ordering::SeqCst) {
        return busy("the pipeline is stopping", 5);
    }
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let Some(format) = content_type.and_then(Format::of) else {
        let why = format!(
            "Content-Type {} is not taken: send application/json (an object, or an array of objects) or application/x-ndjson (an object per line)",
            content_type.map_or("(none)".to_owned(), |t| format!("`{t}`"))
        );
        return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, &why);
    };
    let max = (c.max_body_mb as usize) << 20;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return too_large(c.max_body_mb);
    }
    let Ok(_reading) = shared.requests.try_acquire() else {
        let why = format!("{} requests are being read already", c.max_requests);
        return busy(&why, 1);
    };
    // Room for the body, before a byte of it is read: what is held stays under
    // max_buffer_mb however many clients push.
    let kib = (declared.map_or(max, |n| n as usize).div_ceil(1024)).max(1) as u32;
    let Ok(_room) = shared.buffer.try_acquire_many(kib) else {
        let why = format!(
            "the bodies being read fill max_buffer_mb = {}",
            c.max_buffer_mb
        );
        return busy(&why, 1);
    };
    let read = tokio::time::timeout(
        *c.body_timeout,
        Limited::new(req.into_body(), max).collect(),
    );
    let body = match read.await {
        Err(_) => {
            let why = format!("the body did not arrive within {}", c.body_timeout);
            return error(StatusCode::REQUEST_TIMEOUT, &why);
        }
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return too_large(c.max_body_mb);
        }
        Ok(Err(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the body could not be read: {e}"),
            );
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let reader = Reader {
        schema: shared.schema.as_ref(),
        event_time: &c.event_time,
        key_field: c.key_field.as_deref(),
    };
    let records = match reader.read(&body, format, crate::record::now_ms()) {
        Ok(records) => records,
        Err(rejected) => return refused(shared, rejected),
    };
    drop(body);
    let n = records.len();
    if n == 0 {
        return answered(c.ack, 0);
    }
    let handed = {
        let _gate = shared.handing.read().await;
        if shared.stopping.load(Ordering::SeqCst) {
            return busy("the pipeline is stopping", 5);
        }
        shared.ledger.hand_over(records, *c.queue_wait).await
    };
    let end = match handed {
        Handed::In { end } => end,
        Handed::Full => {
            let why = format!("the pipeline has had no room for {}", c.queue_wait);
            return busy(&why, 1);
        }
        Handed::Closed => return busy("the pipeline has stopped", 5),
    };
    shared.metrics.accepted(n as u64);
    drop((_reading, _room));
    if c.ack == Ack::Accepted || shared.ledger.stored(end, *c.ack_timeout).await {
        return answered(c.ack, n);
    }
    let why = format!(
        "the {n} record(s) were taken but not confirmed stored within {}: send them again (a repeat is harmless to upserting sinks)",
        c.ack_timeout
    );
    busy(&why, 1)
}

/// 200 (stored) or 202 (handed on).
fn answered(ack: Ack, n: usize) -> Response<Full<Bytes>> {
    let (status, body) = match ack {
        Ack::Durable => (StatusCode::OK, json!({ "accepted": n, "stored": true })),
        Ack::Accepted => (
            StatusCode::ACCEPTED,
            json!({ "accepted": n, "stored": false }),
        ),
    };
    respond(status, body)
}

/// 400 or 422: nothing of the request is taken.
fn refused(shared: &Shared, rejected: Rejected) -> Response<Full<Bytes>> {
    match rejected {
        Rejected::Malformed {
            line,
            column,
            message,
        } => respond(
            StatusCode::BAD_REQUEST,
            json!({
                "error": format!("the body is not JSON at line {line}, column {column}: {message}; nothing was taken"),
                "line": line,
                "column": column,
            }),
        ),
        Rejected::Shape(why) => error(
            StatusCode::BAD_REQUEST,
            &format!("{why}; nothing was taken"),
        ),
        Rejected::Refused {
            listed,
            count,
            total,
        } => {
            shared.metrics.refused(total as u64);
            respond(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({
                    "error": format!("{count} of the {total} record(s) were refused; nothing was taken: fix them and send the request again"),
                    "accepted": 0,
                    "refused": count,
                    "records": listed,
                }),
            )
        }
    }
}

fn too_large(max_mb: u64) -> Response<Full<Bytes>> {
    let why =
        format!("the body is over max_body_mb = {max_mb} MiB: send fewer records per request");
    let mut r = error(StatusCode::PAYLOAD_TOO_LARGE, &why);
    // The rest of the body is not read: the connection cannot carry another request.
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

/// 503 with `Retry-After`: nothing of the request is taken; send it again later.
fn busy(why: &str, retry_after_s: u32) -> Response<Full<Bytes>> {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, why);
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after_s));
    r
}

fn error(status: StatusCode, why: &str) -> Response<Full<Bytes>> {
    respond(status, json!({ "error": why }))
}

fn respond(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut text = body.to_string();
    text.push('\n');
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
