//! A Confluent-compatible Schema Registry for Sluice's tests, on loopback: the REST
//! API's subjects, versions, schema ids, `/compatibility` and `/config` (BACKWARD by
//! default), for Avro and JSON Schema, kept in one file. No Confluent-compatible
//! registry installs from the registries these machines reach (Karapace is not on
//! PyPI; Confluent's and Apicurio's come as Maven artifacts or images), so this stands
//! in for one, and Confluent's own Python client checks its answers (tests).
//!
//!   sluice-registry-test-server --host 127.0.0.1 --port 8081 --data registry.json

mod compat;
mod store;

use clap::Parser;
use compat::{Kind, Level};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use store::{Refusal, Store};

#[derive(Parser)]
#[command(about = "A Confluent-compatible Schema Registry for tests (Avro, JSON Schema)")]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 8081)]
    port: u16,
    /// Where subjects and schemas are kept (none: in memory).
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// The `Authorization` header every request must carry, as it is
    /// (`"Basic dXNlcjpwdw=="`, `"Bearer t0ken"`); others are answered 401.
    #[arg(long)]
    authorization: Option<String>,
}

/// Most bytes a request body may have.
const MAX_BODY: usize = 16 << 20;

type Answer = Result<Value, Refusal>;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let store = match Store::open(args.data.clone()) {
        Ok(s) => Arc::new(Mutex::new(s)),
        Err(e) => {
            eprintln!("sluice-registry-test-server: {e}");
            std::process::exit(1);
        }
    };
    let listener = match tokio::net::TcpListener::bind((args.host.as_str(), args.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "sluice-registry-test-server: cannot listen on {}:{}: {e}",
                args.host, args.port
            );
            std::process::exit(1);
        }
    };
    eprintln!(
        "sluice-registry-test-server: listening on {}",
        listener.local_addr().unwrap()
    );
    let serve = async {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            let store = store.clone();
            let authorization = args.authorization.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    handle(store.clone(), authorization.clone(), req)
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    };
    tokio::select! {
        () = serve => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn handle(
    store: Arc<Mutex<Store>>,
    authorization: Option<String>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    if let Some(want) = authorization {
        let given = req.headers().get(hyper::header::AUTHORIZATION);
        if given.map(|v| v.as_bytes()) != Some(want.as_bytes()) {
            return Ok(reply(Err(Refusal(401, 40101, "Unauthorized".into()))));
        }
    }
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(reply(Err(Refusal(
                413,
                41301,
                "request body too large".into(),
            ))))
        }
    };
    let parts: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
    Ok(reply(route(&mut store, &method, &parts, &body)))
}

fn route(store: &mut Store, method: &Method, parts: &[&str], body: &[u8]) -> Answer {
    match (method, parts) {
        (&Method::GET, ["subjects"]) => Ok(json!(store.data.subjects.keys().collect::<Vec<_>>())),
        (&Method::GET, ["schemas", "ids", id])
        | (&Method::GET, ["schemas", "ids", id, "schema"]) => {
            let id: u32 = id.parse().map_err(|_| schema_not_found())?;
            let s = store.schema(id).ok_or_else(schema_not_found)?;
            let raw = parts.len() == 4;
            Ok(match (raw, s.kind) {
                (true, _) => serde_json::from_str(&s.text).unwrap_or(Value::String(s.text.clone())),
                (false, Kind::Avro) => json!({"schema": s.text}),
                (false, kind) => json!({"schema": s.text, "schemaType": kind.name()}),
            })
        }
        (&Method::GET, ["schemas", "types"]) => Ok(json!(["JSON", "AVRO"])),
        (&Method::GET, ["subjects", subject, "versions"]) => Ok(json!(store
            .versions(subject)?
            .iter()
            .map(|v| v.version)
            .collect::<Vec<_>>())),
        (&Method::GET, ["subjects", subject, "versions", which])
        | (&Method::GET, ["subjects", subject, "versions", which, "schema"]) => {
            let v = store.version(subject, which)?;
            let s = store.schema(v.id).ok_or_else(schema_not_found)?;
            if parts.len() == 5 {
                return Ok(serde_json::from_str(&s.text).unwrap_or(Value::String(s.text.clone())));
            }
            Ok(described(subject, v.version, s))
        }
        (&Method::POST, ["subjects", subject, "versions"]) => {
            let (kind, text) = request_schema(body)?;
            let id = store.register(subject, kind, &text)?;
            Ok(json!({"id": id}))
        }
        (&Method::POST, ["subjects", subject]) => {
            let (kind, text) = request_schema(body)?;
            let v = store
                .find(subject, kind, &text)?
                .ok_or_else(schema_not_found)?;
            let s = store.schema(v.id).ok_or_else(schema_not_found)?;
            Ok(described(subject, v.version, s))
        }
        (&Method::DELETE, ["subjects", subject]) => Ok(json!(store.delete(subject)?)),
        (&Method::POST, ["compatibility", "subjects", subject, "versions", which]) => {
            let (kind, text) = request_schema(body)?;
            let against = store.version(subject, which)?;
            let found = store.compatible(subject, kind, &text, Some(against))?;
            Ok(compatibility(found))
        }
        (&Method::POST, ["compatibility", "subjects", subject, "versions"]) => {
            let (kind, text) = request_schema(body)?;
            let found = match store.versions(subject) {
                Ok(_) => store.compatible(subject, kind, &text, None)?,
                Err(_) => Ok(()),
            };
            Ok(compatibility(found))
        }
        (&Method::GET, ["config"]) => Ok(json!({"compatibilityLevel": store.level(None).name()})),
        (&Method::GET, ["config", subject]) => {
            Ok(json!({"compatibilityLevel": store.level(Some(subject)).name()}))
        }
        (&Method::PUT, ["config"]) => set_level(store, None, body),
        (&Method::PUT, ["config", subject]) => set_level(store, Some(subject), body),
        (_, []) => Ok(json!({})),
        _ => Err(Refusal(
            404,
            404,
            format!("HTTP 404 Not Found: {method} /{}", parts.join("/")),
        )),
    }
}

fn compatibility(found: Result<(), String>) -> Value {
    match found {
        Ok(()) => json!({"is_compatible": true}),
        Err(why) => json!({"is_compatible": false, "messages": [why]}),
    }
}

fn set_level(store: &mut Store, subject: Option<&str>, body: &[u8]) -> Answer {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Refusal(422, 42203, format!("Invalid request: {e}")))?;
    let name = v["compatibility"].as_str().unwrap_or_default();
    let level = Level::parse(name)
        .ok_or_else(|| Refusal(422, 42203, format!("Invalid compatibility level: {name}")))?;
    store.set_level(subject, level)?;
    Ok(json!({"compatibility": level.name()}))
}

fn described(subject: &str, version: u32, s: &store::Schema) -> Value {
    let mut v = json!({"subject": subject, "version": version, "id": s.id, "schema": s.text});
    if s.kind != Kind::Avro {
        v["schemaType"] = json!(s.kind.name());
    }
    v
}

fn schema_not_found() -> Refusal {
    Refusal(404, 40403, "Schema not found".into())
}

/// `{"schema": "...", "schemaType": "JSON", "references": []}`.
fn request_schema(body: &[u8]) -> Result<(Kind, String), Refusal> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Refusal(422, 42201, format!("Invalid request body: {e}")))?;
    let text = v["schema"].as_str().ok_or_else(|| {
        Refusal(
            422,
            42201,
            "Invalid schema: `schema` (a string) is missing".into(),
        )
    })?;
    let kind = Kind::from_request(v["schemaType"].as_str()).map_err(|e| Refusal(422, 42201, e))?;
    if v["references"].as_array().is_some_and(|r| !r.is_empty()) {
        return Err(Refusal(
            422,
            42201,
            "schema references are not supported by this test registry".into(),
        ));
    }
    Ok((kind, text.to_owned()))
}

fn reply(answer: Answer) -> Response<Full<Bytes>> {
    let (status, body) = match answer {
        Ok(v) => (200, v),
        Err(Refusal(status, code, message)) => {
            (status, json!({"error_code": code, "message": message}))
        }
    };
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

/// `%2F` and friends in a path segment (subject names may hold any character).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
