//! A real HTTP/1.1 server (hyper) on 127.0.0.1 that answers from a script, for the http
//! source's tests: the client under test is the real reqwest stack, end to end.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
    Reply {
        status: 200,
        headers: vec![("content-type", "application/json".into())],
        body: body.into(),
    }
}

pub fn status(code: u16) -> Reply {
    Reply {
        status: code,
        headers: vec![],
        body: b"{}".to_vec(),
    }
}

#[derive(Default)]
pub struct Script {
    replies: Mutex<VecDeque<Reply>>,
    /// When each request arrived, and its path and query.
    pub hits: Mutex<Vec<(Instant, String)>>,
    /// When each request arrived on the wall clock (ms since the epoch).
    pub wall_ms: Mutex<Vec<i64>>,
}

/// Serve `replies` in order (then 503 for anything more). Runs on the current tokio
/// runtime until it is dropped.
pub async fn serve(replies: Vec<Reply>) -> (SocketAddr, Arc<Script>) {
    let script = Arc::new(Script {
        replies: Mutex::new(replies.into()),
        ..Default::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = script.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let script = shared.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let script = script.clone();
                        async move {
                            let uri = req.uri().to_string();
                            script.hits.lock().unwrap().push((Instant::now(), uri));
                            let wall = chrono::Utc::now().timestamp_millis();
                            script.wall_ms.lock().unwrap().push(wall);
                            let reply = script
                                .replies
                                .lock()
                                .unwrap()
                                .pop_front()
                                .unwrap_or_else(|| status(503));
                            let mut response = Response::builder().status(reply.status);
                            for (k, v) in reply.headers {
                                response = response.header(k, v);
                            }
                            Ok::<_, std::convert::Infallible>(
                                response.body(Full::new(Bytes::from(reply.body))).unwrap(),
                            )
                        }
                    });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    (addr, script)
}
