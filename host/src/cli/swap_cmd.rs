//! `sluice plugin swap`: send a new component to a running host's admin listener.

use super::Failure;
use anyhow::{anyhow, Context};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// A query value, percent-encoded.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The token a host of this user's wrote for its listener at `admin` (when it was
/// given none): `localhost` is looked up as 127.0.0.1 and ::1.
fn made_token(admin: &str) -> Option<String> {
    let base = super::status::base(admin);
    let authority = base.split("://").nth(1)?.split('/').next()?;
    let port = authority.rsplit_once(':')?.1;
    let host = authority.rsplit_once(':')?.0;
    let candidates: Vec<String> = if host.eq_ignore_ascii_case("localhost") {
        vec![format!("127.0.0.1:{port}"), format!("[::1]:{port}")]
    } else {
        vec![authority.to_owned()]
    };
    candidates
        .iter()
        .filter_map(|a| a.parse::<std::net::SocketAddr>().ok())
        .find_map(sluice::admin::guard::read_token)
}

pub fn swap(
    stage: &str,
    wasm: &Path,
    pipeline: Option<&str>,
    admin: &str,
    token: Option<&str>,
    canary: Option<u64>,
    json: bool,
) -> Result<(), Failure> {
    let bytes = std::fs::read(wasm)
        .with_context(|| format!("reading {}", wasm.display()))
        .map_err(Failure::config)?;
    let base = super::status::base(admin);
    let file = wasm
        .file_name()
        .map_or("new.wasm".into(), |f| f.to_string_lossy().into_owned());
    let mut url = format!(
        "{base}/plugins/swap?stage={}&file={}",
        encode(stage),
        encode(&file)
    );
    if let Some(p) = pipeline {
        url.push_str(&format!("&pipeline={}", encode(p)));
    }
    if let Some(n) = canary {
        url.push_str(&format!("&canary={n}"));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .map_err(Failure::runtime)?;
    let (code, body) = rt
        .block_on(async {
            let mut request = reqwest::Client::new()
                .post(&url)
                .timeout(Duration::from_secs(600))
                .header("content-type", sluice::admin::guard::WASM_CONTENT_TYPE)
                .body(bytes);
            let made = || made_token(admin);
            if let Some(t) = token.map(str::to_owned).or_else(made) {
                request = request.bearer_auth(t);
            }
            let response = request.send().await.with_context(|| {
                format!(
                    "cannot reach the admin listener at {base} (is the host running with --admin?)"
                )
            })?;
            let code = response.status();
            let body = response.text().await.context("reading the answer")?;
            anyhow::Ok((code, body))
        })
        .map_err(Failure::runtime)?;
    let answer: Value = serde_json::from_str(&body).unwrap_or(Value::String(body.clone()));
    if !code.is_success() {
        let why = answer["error"]
            .as_str()
            .map_or(body.trim().to_owned(), str::to_owned);
        return Err(Failure::runtime(anyhow!("not swapped ({code}): {why}")));
    }
    if json {
        println!("{answer}");
        return Ok(());
    }
    let switch: Vec<String> = answer["switch"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k} at {v}")).collect())
        .unwrap_or_default();
    println!(
        "swapped {} `{}` in pipeline `{}`: {} -> {}",
        answer["stage"].as_str().unwrap_or("?"),
        answer["plugin"].as_str().unwrap_or(stage),
        answer["pipeline"].as_str().unwrap_or("?"),
        answer["from"].as_str().unwrap_or("?"),
        answer["to"].as_str().unwrap_or("?"),
    );
    println!(
        "  switch point (first position on the new version): {}",
        if switch.is_empty() {
            "before the first record".into()
        } else {
            switch.join(", ")
        }
    );
    println!(
        "  compiled and started in {:.0} ms; processing paused {} µs",
        answer["compile_ms"].as_f64().unwrap_or(0.0),
        answer["pause_us"]
    );
    if let Some(c) = answer["canary"].as_object() {
        println!(
            "  canary: {} records, {} failed on the new version, {} on the old",
            c["records"], c["new_errors"], c["old_errors"]
        );
    }
    if let Some(n) = answer["probation_records"].as_u64().filter(|&n| n > 0) {
        println!("  on probation for the next {n} records (rolled back if too many fail)");
    }
    Ok(())
}
