//! Bearer tokens, as the admin listener and the HTTP ingest source check them: in
//! `Authorization: Bearer <token>` or `?token=<token>`, compared in constant time. A
//! leaf.

use hyper::header::AUTHORIZATION;
use hyper::Request;

/// With a token configured, the request must carry it (header or query).
pub fn authorized<B>(token: Option<&str>, req: &Request<B>) -> bool {
    let Some(token) = token else {
        return true;
    };
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let query = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
    [header, query]
        .into_iter()
        .flatten()
        .any(|given| same(given.trim().as_bytes(), token.as_bytes()))
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
