//! `sluice-cql-test-server`: a CQL (native protocol v4) server for Sluice's tests and
//! local demos, listening on loopback. The CQL engine is the `kassandra` crate (an
//! in-memory, single-node implementation); this binary only adds the TCP listener,
//! one shared database for every connection, and a state file so a restart keeps the
//! data (a test stops it mid-stream and starts it again).
//!
//! It is a test double for Apache Cassandra, not a database: no replication, no
//! authentication, every request serialised through one lock, `COUNT(*)` and schema
//! agreement unsupported (Sluice's tests turn the driver's schema-agreement wait off
//! and read tables back page by page).

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use kassandra::cql::value::CqlValue;
use kassandra::error::DbError;
use kassandra::frame::request::{Request, RequestOpcode};
use kassandra::frame::response::result::QueryResult;
use kassandra::frame::response::{error::Error, Response};
use kassandra::frame::{request_stream, response_sink};
use kassandra::KassandraSession;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// Address to listen on (loopback unless you mean otherwise).
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port to listen on.
    #[arg(long, default_value_t = 9042)]
    port: u16,
    /// Keep the data in this file: read at start if it exists, written (atomically)
    /// on SIGTERM or Ctrl-C. Without it, the data is gone when the server stops.
    #[arg(long)]
    data: Option<PathBuf>,
}

type Shared = Arc<Mutex<KassandraSession>>;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("sluice-cql-test-server: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let session = match &args.data {
        Some(path) if path.exists() => {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            KassandraSession::load_state(&bytes)
                .map_err(|e| format!("{}: not a state file: {e}", path.display()))?
        }
        _ => KassandraSession::new(),
    };
    let shared: Shared = Arc::new(Mutex::new(session));
    let addr = SocketAddr::new(args.host, args.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    eprintln!("sluice-cql-test-server: listening on {addr}");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve(stream, shared.clone()));
                }
                Err(e) => eprintln!("sluice-cql-test-server: accept: {e}"),
            },
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    if let Some(path) = &args.data {
        save(&shared, path)?;
        eprintln!("sluice-cql-test-server: state saved to {}", path.display());
    }
    Ok(())
}

/// Write the state beside the file, then rename it over: a crash mid-write leaves the
/// old state, never half of one.
fn save(shared: &Shared, path: &Path) -> Result<(), String> {
    let state = lock(shared).save_state();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, state).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, KassandraSession> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// One client connection: frames in, one response per frame, in order.
async fn serve(mut stream: TcpStream, shared: Shared) {
    let (mut read, mut write) = stream.split();
    let mut requests = request_stream(&mut read);
    let mut responses = response_sink(&mut write);
    while let Some(Ok((frame, opcode, body))) = requests.next().await {
        let response = if frame.version.is_unsupported() {
            // Drivers downgrade to v4 on this answer.
            Response::unsupported_version()
        } else if opcode == RequestOpcode::AuthResponse {
            error(DbError::ProtocolError, "authentication is not supported")
        } else {
            match Request::deserialize(opcode, &body, frame.flags) {
                Ok(request) => answer(request, &body, &shared),
                Err(e) => Response::Error(e),
            }
        };
        if responses.send((response, frame.stream)).await.is_err() {
            break;
        }
    }
}

fn error(kind: DbError, message: &str) -> Response {
    Response::Error(Error::new(kind, message))
}

fn answer(request: Request<'_>, body: &[u8], shared: &Shared) -> Response {
    // The engine panics on some statements it does not implement: answer those with a
    // server error instead of dropping the connection.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let result = match request {
            Request::StartUp(_) | Request::Register { .. } => return Response::Ready,
            Request::Options => return Response::options(),
            Request::AuthResponse => {
                return error(DbError::ProtocolError, "authentication is not supported")
            }
            Request::Query(q) => lock(shared).process(q),
            Request::Prepare(q) => {
                let text = prepared_text(body);
                let prepared = lock(shared).prepare_with_id(q, statement_id(text));
                prepared.map(|p| fix_bind_markers(p, text))
            }
            Request::Execute(e) => lock(shared).execute(e),
            Request::Batch(b) => lock(shared).process_batch(b),
        };
        match result {
            Ok(mut r) => {
                fix_boolean_types(&mut r);
                Response::Result(r)
            }
            Err(e) => Response::Error(e),
        }
    }));
    outcome.unwrap_or_else(|_| {
        error(
            DbError::ServerError,
            "the test server failed on this request",
        )
    })
}

/// The statement text of a PREPARE body (a `[long string]`).
fn prepared_text(body: &[u8]) -> &str {
    let len = body
        .get(..4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    body.get(4..4 + len)
        .and_then(|t| std::str::from_utf8(t).ok())
        .unwrap_or_default()
}

/// A prepared statement's id from its text, as Cassandra derives it (it hashes the
/// text): the same statement prepared again, after a restart or on another
/// connection, keeps its id, which drivers check when they re-prepare.
fn statement_id(text: &str) -> u128 {
    // FNV-1a, 128 bits.
    let mut hash: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in text.bytes() {
        hash ^= u128::from(b);
        hash = hash.wrapping_mul(0x0000000001000000000000000000013b);
    }
    hash
}

/// The engine reports a bind marker for a literal in a prepared `WHERE key = 'local'`
/// (drivers prepare their metadata queries): a statement with no `?` has none.
fn fix_bind_markers(mut result: QueryResult, text: &str) -> QueryResult {
    if let QueryResult::Prepared(p) = &mut result {
        if !has_bind_marker(text) {
            p.prepared_metadata.col_specs.clear();
            p.prepared_metadata.pk_indexes.clear();
        }
    }
    result
}

/// Whether `text` has a `?` outside quotes.
fn has_bind_marker(text: &str) -> bool {
    let mut quote = None;
    for c in text.chars() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '?') => return true,
            _ => {}
        }
    }
    false
}

/// The engine lists boolean columns in `system_schema.columns` as `bool`, which
/// drivers do not know (they take it for a user type and drop that keyspace's
/// metadata, warning at every refresh): answer `boolean`, as Cassandra does.
fn fix_boolean_types(result: &mut QueryResult) {
    let QueryResult::Rows(rows) = result else {
        return;
    };
    let m = &rows.metadata;
    let type_column = m.col_specs.iter().position(|c| {
        let table = c.table_spec.as_ref().or(m.global_spec.as_ref());
        c.name == "type"
            && table.is_some_and(|t| t.ks_name == "system_schema" && t.table_name == "columns")
    });
    let Some(i) = type_column else {
        return;
    };
    for row in &mut rows.rows {
        if let Some(Some(CqlValue::Text(t))) = row.columns.get_mut(i) {
            if t == "bool" {
                *t = "boolean".to_owned();
            }
        }
    }
}
