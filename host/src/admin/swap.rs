//! `POST /plugins/swap?stage=NAME[&pipeline=P][&canary=N][&file=new.wasm]`, the
//! component's bytes as the body: compiled, checked against the stage's world and
//! `init`ed with the stage's config here, off the processor's path; then handed to
//! the processor, which swaps it in between two batches and answers with the switch
//! points. Any failure leaves the running version in place: 422 (the new plugin is
//! unusable) or 409 (the pipeline refused the swap), with the reason.
//!
//! The stage is checked and the declared length taken before the body is read, and
//! one upload is taken at a time (429 for another), so uploads cannot fill memory.

use super::server::{respond, Shared, JSON};
use crate::engine::{Control, NewPlugin, SwapRequest};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

/// The largest component taken.
const MAX_WASM: usize = 256 << 20;
/// How long a component's upload may take.
const UPLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

fn error(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    respond(status, JSON, json!({ "error": message }).to_string())
}

pub async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), percent_decode(v)))
        .collect();
    let Some(stage) = query.get("stage").cloned() else {
        return error(
            StatusCode::BAD_REQUEST,
            "name the transform or window: ?stage=NAME".into(),
        );
    };
    let canary = match query.get("canary").map(|c| c.parse::<u64>()) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "canary must be a number of records".into(),
            )
        }
    };
    let file = PathBuf::from(
        query
            .get("file")
            .cloned()
            .unwrap_or_else(|| "uploaded.wasm".into()),
    );
    let pipeline = match (query.get("pipeline"), shared.pipelines.as_slice()) {
        (None, [only]) => only,
        (None, _) => {
            let names: Vec<String> = shared.pipelines.iter().map(|p| p.config.name()).collect();
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "this host runs several pipelines ({}): say which with --pipeline",
                    names.join(", ")
                ),
            );
        }
        (Some(name), all) => match all.iter().find(|p| &p.config.name() == name) {
            Some(p) => p,
            None => {
                return error(
                    StatusCode::NOT_FOUND,
                    format!("no pipeline named `{name}` here"),
                )
            }
        },
    };
    // Everything that can be refused is, before the body is read.
    let config = &pipeline.config;
    let known = config.transforms.iter().any(|t| t.name() == stage)
        || config
            .stateful
            .as_ref()
            .is_some_and(|st| st.name() == stage)
        || config.window.as_ref().is_some_and(|w| w.name() == stage);
    if !known {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "pipeline `{}` has no transform, stateful stage or window named `{stage}`",
                config.name()
            ),
        );
    }
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_WASM as u64) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the component is larger than {} MiB", MAX_WASM >> 20),
        );
    }
    let Ok(upload) = shared.uploads.try_acquire() else {
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "another swap is being uploaded or compiled; try again when it is done".into(),
        );
        r.headers_mut()
            .insert("retry-after", hyper::header::HeaderValue::from_static("5"));
        return r;
    };
    // A client that sends slowly would hold the one upload slot: it has a minute.
    let body = Limited::new(req.into_body(), MAX_WASM).collect();
    let wasm = match tokio::time::timeout(UPLOAD_TIMEOUT, body).await {
        Ok(Ok(body)) => body.to_bytes().to_vec(),
        Ok(Err(e)) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("reading the component: {e}"),
            )
        }
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                format!("the component did not arrive within {UPLOAD_TIMEOUT:?}"),
            )
        }
    };

    // Compile and start it off the hot path (a thread of the blocking pool).
    let config = pipeline.config.clone();
    let runtime = shared.runtime.clone();
    let name = stage.clone();
    let started = Instant::now();
    let built = tokio::task::spawn_blocking(move || {
        NewPlugin::build(&runtime, &config, &name, &file, wasm)
    })
    .await
    .unwrap_or_else(|e| Err(format!("compiling panicked: {e}")));
    let compile_ms = started.elapsed().as_secs_f64() * 1000.0;
    drop(upload); // the bytes are compiled (or dropped): the next upload may come
    let plugin = match built {
        Ok(p) => p,
        Err(why) => {
            tracing::warn!("swap of `{stage}` refused: {why}");
            return error(StatusCode::UNPROCESSABLE_ENTITY, why);
        }
    };

    let (reply, answer) = tokio::sync::oneshot::channel();
    let request = SwapRequest {
        stage,
        plugin,
        canary,
        reply,
    };
    if pipeline
        .control
        .send(Control::Swap(Box::new(request)))
        .await
        .is_err()
    {
        return error(StatusCode::CONFLICT, "the pipeline has stopped".into());
    }
    match answer.await {
        Ok(Ok(report)) => {
            let mut body = serde_json::to_value(&report).unwrap_or_default();
            body["compile_ms"] = json!(compile_ms);
            body["pipeline"] = json!(pipeline.config.name());
            respond(StatusCode::OK, JSON, body.to_string())
        }
        Ok(Err(why)) => error(StatusCode::CONFLICT, why),
        Err(_) => error(
            StatusCode::CONFLICT,
            "the pipeline stopped before it could swap".into(),
        ),
    }
}

/// `%2F` and `+` as the browser and curl send them (on bytes, so any UTF-8 is safe).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|&b| hex(b));
                let lo = bytes.get(i + 2).and_then(|&b| hex(b));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi * 16 + lo);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn decoding_is_safe_on_any_text() {
        assert_eq!(percent_decode("format%5Fuser+x"), "format_user x");
        assert_eq!(percent_decode("%a\u{e9}"), "%a\u{e9}");
        assert_eq!(percent_decode("50%"), "50%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
