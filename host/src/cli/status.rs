//! `sluice status`: a terminal view of a running host, from its admin listener's
//! `/status`.

use super::Failure;
use anyhow::{anyhow, Context};
use serde_json::Value;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::Duration;

pub fn run(admin: &str, token: Option<&str>, watch: bool, json: bool) -> Result<(), Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .map_err(Failure::runtime)?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .context("building an HTTP client")
            .map_err(Failure::runtime)?;
        let base = base(admin);
        loop {
            let status = fetch(&client, &base, token)
                .await
                .map_err(Failure::runtime)?;
            let text = if json {
                format!("{status}\n")
            } else {
                render(&status)
            };
            if watch && std::io::stdout().is_terminal() {
                // Clear the screen and go home, then draw.
                print!("\x1b[2J\x1b[H{text}");
            } else {
                print!("{text}");
            }
            if !watch {
                return Ok(());
            }
            if !json {
                println!();
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
    })
}

/// `--ready`: /readyz's answer, as the exit code.
pub fn ready(admin: &str, token: Option<&str>) -> Result<(), Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .map_err(Failure::runtime)?;
    rt.block_on(async {
        let url = format!("{}/readyz", base(admin));
        let mut request = reqwest::Client::new()
            .get(&url)
            .timeout(Duration::from_secs(5));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))
            .map_err(Failure::runtime)?;
        let code = response.status();
        let body = response.text().await.unwrap_or_default();
        if code.is_success() {
            print!("{body}");
            Ok(())
        } else {
            Err(Failure::runtime(anyhow!("{url}: {code}: {}", body.trim())))
        }
    })
}

/// The admin listener's base URL from `ip:port` or a URL.
pub(super) fn base(admin: &str) -> String {
    if admin.contains("://") {
        admin.trim_end_matches('/').to_owned()
    } else {
        format!("http://{admin}")
    }
}

async fn fetch(client: &reqwest::Client, base: &str, token: Option<&str>) -> anyhow::Result<Value> {
    let url = format!("{base}/status");
    let mut request = client.get(&url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.with_context(|| {
        format!("cannot reach the admin listener at {url} (is the host running with --admin or [admin] listen?)")
    })?;
    match response.status() {
        s if s.is_success() => {
            let body = response
                .bytes()
                .await
                .with_context(|| format!("reading {url}"))?;
            serde_json::from_slice(&body).with_context(|| format!("{url} did not answer with JSON"))
        }
        reqwest::StatusCode::UNAUTHORIZED => Err(anyhow!(
            "{url}: 401, the listener needs its token (--token or SLUICE_ADMIN_TOKEN)"
        )),
        s => Err(anyhow!("{url} answered {s}")),
    }
}

fn n(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 => group(f as i64),
        Some(f) => format!("{f:.1}"),
        None => v.as_str().map_or_else(|| v.to_string(), str::to_owned),
    }
}

/// 1234567 as "1,234,567".
fn group(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// The view: a block per pipeline.
pub fn render(status: &Value) -> String {
    let mut out = String::new();
    let host = &status["host"];
    let _ = writeln!(
        out,
        "sluice {} · pid {} · up {} s",
        n(&host["version"]),
        host["pid"],
        host["uptime_ms"].as_u64().unwrap_or(0) / 1000
    );
    for p in status["pipelines"].as_array().into_iter().flatten() {
        let c = &p["counters"];
        let r = &p["rates"];
        let lag: i64 = c["lag"]
            .as_object()
            .map_or(0, |l| l.values().filter_map(Value::as_i64).sum());
        let _ = writeln!(
            out,
            "\n{}  {}{}",
            n(&p["name"]),
            n(&p["state"]),
            if p["ready"].as_bool() == Some(true) {
                ", ready"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "  records in {} ({}/s) · out {} ({}/s) · dead letters {} ({}/s) · plugin errors {} · lag {}",
            n(&c["records_in"]),
            n(&r["records_in"]),
            n(&c["records_out"]),
            n(&r["records_out"]),
            n(&c["dead_letters"]),
            n(&r["dead_letters"]),
            n(&c["plugin_failures"]),
            group(lag)
        );
        if let Some(l) = c["lag"].as_object().filter(|l| !l.is_empty()) {
            let parts: Vec<String> = l.iter().map(|(k, v)| format!("{k} {}", n(v))).collect();
            let _ = writeln!(out, "  lag per partition: {}", parts.join(", "));
        }
        let sched = &p["schedule"];
        if sched.is_object() {
            let _ = writeln!(
                out,
                "  schedule {} ({}) · next tick {} · last tick {}: {}",
                n(&sched["schedule"]),
                n(&sched["timezone"]),
                sched["next_tick"].as_str().unwrap_or("none (ended)"),
                sched["last_tick"].as_str().unwrap_or("none yet"),
                sched["last_outcome"].as_str().unwrap_or("-")
            );
        }
        let ingest = &p["ingest"];
        if ingest.is_object() {
            let answers: Vec<String> = ingest["requests"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(code, count)| format!("{code}: {}", n(count)))
                .collect();
            let _ = writeln!(
                out,
                "  ingest {} (ack {}) · records accepted {} · refused {} · in flight {} · answers {}",
                n(&ingest["url"]),
                n(&ingest["ack"]),
                n(&ingest["records_accepted"]),
                n(&ingest["records_refused"]),
                n(&ingest["in_flight"]),
                if answers.is_empty() { "none yet".to_owned() } else { answers.join(", ") }
            );
        }
        for s in p["plugins"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "  {} {} version {}",
                n(&s["stage"]),
                n(&s["plugin"]),
                n(&s["version"])
            );
        }
        let swaps = p["swaps"].as_array().cloned().unwrap_or_default();
        if !swaps.is_empty() {
            let _ = writeln!(out, "  swaps:");
            for s in swaps.iter().rev().take(5) {
                let switch: Vec<String> = s["switch"]
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| format!("{k} at {v}")).collect())
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "    {} {} {} -> {}: {}{}",
                    n(&s["stage"]),
                    n(&s["plugin"]),
                    n(&s["from"]),
                    n(&s["to"]),
                    n(&s["outcome"]),
                    if switch.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", switch.join(", "))
                    }
                );
            }
        }
        let checkpoint = match p["checkpoint"].as_object() {
            Some(cp) => format!(
                "{} (last {:.1} s ago, {:.1} ms{})",
                n(&c["checkpoints"]),
                cp["age_ms"].as_f64().unwrap_or(0.0) / 1000.0,
                cp["duration_ms"].as_f64().unwrap_or(0.0),
                cp["snapshot_bytes"]
                    .as_u64()
                    .map_or(String::new(), |b| format!(
                        ", snapshot {} B",
                        group(b as i64)
                    ))
            ),
            None => "none yet".into(),
        };
        let _ = writeln!(
            out,
            "  checkpoints {checkpoint} · windows open {} closed {}",
            n(&p["open_windows"]),
            n(&c["windows_closed"])
        );
        if p["plugins"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|s| s["stage"] == "stateful"))
        {
            let _ = writeln!(
                out,
                "  keyed state {} keys, {} B",
                n(&p["state_keys"]),
                n(&p["state_bytes"])
            );
        }
        for t in p["tables"].as_array().into_iter().flatten() {
            let now = sluice::record::now_ms();
            let age = now.saturating_sub(t["loaded_ms"].as_i64().unwrap_or(now)) / 1000;
            let _ = writeln!(
                out,
                "  table {} ({}): {} rows, {} B, loaded {age} s ago, {} reloads, {} failed",
                n(&t["name"]),
                n(&t["source"]),
                n(&t["rows"]),
                n(&t["bytes"]),
                n(&t["reloads"]),
                n(&t["reload_failures"])
            );
        }
        let windows = p["recent_windows"].as_array().cloned().unwrap_or_default();
        if !windows.is_empty() {
            let _ = writeln!(out, "  last windows:");
            for w in windows.iter().rev().take(5) {
                let _ = writeln!(out, "    {}", one_line(w));
            }
        }
        let dead = p["recent_dead_letters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !dead.is_empty() {
            let _ = writeln!(out, "  latest dead letters:");
            for d in dead.iter().rev().take(5) {
                let _ = writeln!(
                    out,
                    "    {} {}: {}",
                    n(&d["stage"]),
                    d["position"],
                    n(&d["reason"])
                );
            }
        }
    }
    out
}

/// A window result as `key=value ...`, its start first.
fn one_line(w: &Value) -> String {
    let Some(o) = w.as_object() else {
        return w.to_string();
    };
    let mut parts = Vec::new();
    if let Some(start) = o.get("window_start") {
        parts.push(n(start));
    }
    for (k, v) in o {
        if k != "window_start" && k != "window_end" {
            parts.push(format!("{k}={}", n(v)));
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_names_each_pipeline_with_its_numbers() {
        let status = serde_json::json!({
            "host": {"version": "0.1.0", "pid": 7, "uptime_ms": 5000},
            "pipelines": [{
                "name": "quickstart", "state": "running", "ready": true,
                "counters": {"records_in": 12345, "records_out": 12000, "dead_letters": 6,
                             "plugin_failures": 0, "windows_closed": 2, "checkpoints": 3,
                             "lag": {"t[0]": 4, "t[1]": 6}},
                "rates": {"records_in": 2000.0, "records_out": 1999.5, "dead_letters": 0.0},
                "plugins": [{"stage": "transform", "plugin": "format_user", "version": "0123456789ab"},
                            {"stage": "stateful", "plugin": "dedup", "version": "ba9876543210"}],
                "state_keys": 4200, "state_bytes": 512000,
                "tables": [{"name": "regions", "source": "file tables/regions.csv", "rows": 21,
                            "bytes": 2100, "loaded_ms": 0, "reloads": 2, "reload_failures": 1}],
                "checkpoint": {"age_ms": 400, "duration_ms": 2.5, "snapshot_bytes": 837},
                "open_windows": 1,
                "recent_windows": [{"window_start": "2026-01-01T00:00:00Z", "male_count": 3}],
                "recent_dead_letters": [{"stage": "transform", "position": {"sequence": 5}, "reason": "bad"}]
            }]
        });
        let text = render(&status);
        for expected in [
            "quickstart  running, ready",
            "records in 12,345 (2,000/s)",
            "out 12,000 (1999.5/s)",
            "lag 10",
            "t[1] 6",
            "transform format_user version 0123456789ab",
            "snapshot 837 B",
            "2026-01-01T00:00:00Z male_count=3",
            "transform {\"sequence\":5}: bad",
            "keyed state 4,200 keys, 512,000 B",
            "table regions (file tables/regions.csv): 21 rows, 2,100 B, loaded",
            "2 reloads, 1 failed",
        ] {
            assert!(text.contains(expected), "{expected:?} in\n{text}");
        }
    }
}
