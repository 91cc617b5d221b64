//! `type = "http"`: poll a URL (e.g. `https://randomuser.me/api/?results=5`) at an
//! interval, or on a wall-clock `schedule` ([`schedule`]); each successful response
//! body becomes one record.
//!
//! Network errors, 408, 429 and 5xx are retried with exponential backoff and full
//! jitter, waiting at least as long as a `Retry-After` says (up to an hour, and never
//! past `duration`). Any other status means the request itself is wrong and stops the
//! source with that status; a poll that outlasts its retries is logged and skipped,
//! and the next poll goes ahead.

pub mod schedule;
mod scheduled;

use super::{SourceContext, SourceError};
use crate::duration::Duration;
use crate::field_error::FieldError;
use crate::position::{Origin, Position};
use crate::record::{now_ms, Header, Record};
use crate::retry::RetryPolicy;
use reqwest::StatusCode;
use serde::Deserialize;
use std::collections::BTreeMap;
use tokio::time::Instant;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub url: String,
    /// Time between the starts of two polls.
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// Stop after this many records (successful responses).
    pub count: Option<u64>,
    /// Stop after polling for this long.
    pub duration: Option<Duration>,
    /// Per request, connect to last byte.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Retries of one poll after its first attempt fails.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// First backoff; doubles each retry up to `max_backoff`.
    #[serde(default = "default_backoff")]
    pub backoff: Duration,
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Duration,
    /// Extra request headers (values may use `${VAR}` for secrets).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The largest response body taken, in MiB; a larger one fails that poll (it is
    /// logged and skipped) instead of filling memory.
    #[serde(default = "default_max_body_mb")]
    pub max_body_mb: u64,
    /// Poll on the wall clock instead of every `interval` from the start: 5-field cron
    /// (`* * * * *`), `@hourly`, `@daily`..., or 6 fields with seconds first.
    pub schedule: Option<String>,
    /// The IANA time zone the schedule is read in (default UTC).
    pub timezone: Option<String>,
    /// After each tick, poll every `interval` for this long (seed 000: the first 30 s
    /// of each minute); without it, one poll per tick.
    pub active_for: Option<Duration>,
    /// No tick before this RFC 3339 time.
    pub start: Option<String>,
    /// No tick after this RFC 3339 time: the source ends.
    pub end: Option<String>,
    /// Ticks missed while the host was down: polled for at start (true), or skipped
    /// (false, the default, as Airflow's `catchup=False`).
    #[serde(default)]
    pub catch_up: bool,
}

fn default_max_body_mb() -> u64 {
    16
}

/// Redirects followed before the request is given up as a loop.
const MAX_REDIRECTS: usize = 10;

/// The longest a `Retry-After` is obeyed for.
const MAX_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

fn default_interval() -> Duration {
    Duration::from_millis(5_000)
}
fn default_timeout() -> Duration {
    Duration::from_millis(10_000)
}
fn default_retries() -> u32 {
    5
}
fn default_backoff() -> Duration {
    Duration::from_millis(500)
}
fn default_max_backoff() -> Duration {
    Duration::from_millis(30_000)
}

impl HttpConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        match reqwest::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            Ok(u) => {
                return Err(FieldError::new(
                    "url",
                    format!("scheme `{}` is not http or https", u.scheme()),
                ))
            }
            Err(e) => return Err(FieldError::new("url", format!("is not a URL: {e}"))),
        }
        if self.timeout.is_zero() {
            return Err(FieldError::new("timeout", "must be more than 0"));
        }
        if self.interval.is_zero() {
            return Err(FieldError::new("interval", "must be more than 0"));
        }
        if !(1..=1024).contains(&self.max_body_mb) {
            return Err(FieldError::new("max_body_mb", "must be between 1 and 1024"));
        }
        if self.retries > 100 {
            return Err(FieldError::new("retries", "must be at most 100"));
        }
        if let Some(text) = &self.schedule {
            self.schedule_of(text)?;
        } else {
            for (field, set) in [
                ("timezone", self.timezone.is_some()),
                ("active_for", self.active_for.is_some()),
                ("start", self.start.is_some()),
                ("end", self.end.is_some()),
                ("catch_up", self.catch_up),
            ] {
                if set {
                    return Err(FieldError::new(field, "needs a `schedule`"));
                }
            }
        }
        if self.active_for.is_some_and(|d| d.is_zero()) {
            return Err(FieldError::new("active_for", "must be more than 0"));
        }
        for (name, value) in &self.headers {
            if reqwest::header::HeaderValue::from_str(value).is_err() {
                let message = "has characters a header value cannot hold";
                return Err(FieldError::new(format!("headers.{name}"), message));
            }
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(FieldError::new(
                    format!("headers.{name}"),
                    "is not a valid header name",
                ));
            }
        }
        Ok(())
    }
}

impl HttpConfig {
    fn schedule_of(&self, text: &str) -> Result<schedule::Schedule, FieldError> {
        schedule::Schedule::parse(
            text,
            self.timezone.as_deref(),
            self.start.as_deref(),
            self.end.as_deref(),
        )
    }
}

/// What one attempt came to.
enum Attempt {
    Body(Vec<u8>, Option<String>),
    /// Worth another try, after at least this long (from `Retry-After`) if given.
    Retry(String, Option<std::time::Duration>),
    /// Not worth another try, but the next poll may fare better.
    Skip(String),
    Fatal(String),
}

/// A failed request, said plainly: timeouts and redirect loops by name.
fn request_failed(e: &reqwest::Error, config: &HttpConfig) -> Attempt {
    if e.is_redirect() {
        return Attempt::Fatal(format!(
            "{}: too many redirects ({MAX_REDIRECTS}): a redirect loop; not retrying",
            config.url
        ));
    }
    if e.is_timeout() {
        return Attempt::Retry(
            format!(
                "{}: timed out after {} (no complete response)",
                config.url, config.timeout
            ),
            None,
        );
    }
    Attempt::Retry(format!("request failed: {e}"), None)
}

async fn attempt(client: &reqwest::Client, config: &HttpConfig) -> Attempt {
    let mut request = client.get(&config.url);
    for (k, v) in &config.headers {
        request = request.header(k, v);
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) if e.is_builder() => {
            return Attempt::Fatal(format!("cannot build the request: {e}"))
        }
        Err(e) => return request_failed(&e, config),
    };
    let status = response.status();
    if status.is_success() {
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        return read_body(response, config)
            .await
            .map_or_else(|failed| failed, |body| Attempt::Body(body, content_type));
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let what = format!("{} answered {status}", config.url);
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Attempt::Retry(what, retry_after)
    } else {
        Attempt::Fatal(what)
    }
}

/// The body, streamed, refusing one longer than `max_body_mb` before it is all read.
async fn read_body(
    mut response: reqwest::Response,
    config: &HttpConfig,
) -> Result<Vec<u8>, Attempt> {
    let max = config.max_body_mb * 1024 * 1024;
    let too_big = || {
        Attempt::Skip(format!(
            "{}: the response body is larger than max_body_mb ({} MiB); skipping this poll",
            config.url, config.max_body_mb
        ))
    };
    if response.content_length().is_some_and(|n| n > max) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if (body.len() + chunk.len()) as u64 > max {
                    return Err(too_big());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(match request_failed(&e, config) {
                    Attempt::Retry(why, _) => {
                        Attempt::Retry(format!("reading the body: {why}"), None)
                    }
                    other => other,
                })
            }
        }
    }
}

/// `Retry-After` as delay-seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<std::time::Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(std::time::Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
    let ms = when.timestamp_millis() - now_ms();
    Some(std::time::Duration::from_millis(ms.max(0) as u64))
}

pub async fn run(config: HttpConfig, ctx: SourceContext) -> Result<(), SourceError> {
    let client = reqwest::Client::builder()
        .timeout(*config.timeout)
        .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
        .build()
        .map_err(|e| SourceError::fatal(&ctx.name, format!("cannot build an HTTP client: {e}")))?;
    let partition = ctx.partition(Origin::Sequence {
        source: "http".into(),
    });
    let started = Instant::now();
    let mut poller = Poller {
        retry: RetryPolicy {
            backoff: config.backoff,
            max_backoff: config.max_backoff,
            max_retries: config.retries,
        },
        deadline: config.duration.map(|d| started + *d),
        client,
        partition,
        emitted: 0,
        config: &config,
        ctx: &ctx,
    };
    match &config.schedule {
        None => every_interval(&mut poller).await,
        Some(text) => {
            let schedule = config
                .schedule_of(text)
                .map_err(|e| SourceError::fatal(&ctx.name, e))?;
            scheduled::on_schedule(&mut poller, &schedule).await
        }
    }
}

/// What a poll came to.
#[derive(Debug, PartialEq, Eq)]
enum Polled {
    /// A body, handed on as a record.
    Record,
    /// Nothing this time (logged): the next poll goes ahead.
    Nothing,
    /// The source is done: stopped, its count or duration reached, or the engine gone.
    Done,
}

/// One poll after another, each retried as the source's policy says.
struct Poller<'a> {
    config: &'a HttpConfig,
    ctx: &'a SourceContext,
    client: reqwest::Client,
    partition: crate::position::PartitionId,
    retry: RetryPolicy,
    deadline: Option<Instant>,
    /// Records handed on.
    emitted: u64,
}

impl Poller<'_> {
    /// Whether `count` or `duration` says the source is done.
    fn finished(&self) -> bool {
        self.config.count.is_some_and(|c| self.emitted >= c)
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Wait until `at` (or a stop: false).
    async fn sleep_until(&self, at: Instant) -> bool {
        tokio::select! {
            _ = tokio::time::sleep_until(at) => true,
            _ = self.ctx.shutdown.cancelled() => false,
        }
    }

    /// One poll, retried; its body handed on as a record.
    async fn poll(&mut self) -> Result<Polled, SourceError> {
        let (config, ctx) = (self.config, self.ctx);
        let mut retries = self.retry.start();
        let (body, content_type) = loop {
            // A stop is heard inside a slow request too (a drip-fed body, a server that
            // never answers), not only between polls.
            let attempted = tokio::select! {
                a = attempt(&self.client, config) => a,
                _ = ctx.shutdown.cancelled() => return Ok(Polled::Done),
            };
            match attempted {
                Attempt::Body(body, content_type) => {
                    ctx.metrics.set_connected();
                    break (body, content_type);
                }
                Attempt::Skip(why) => {
                    tracing::error!(url = %config.url, "{why}");
                    return Ok(Polled::Nothing);
                }
                Attempt::Fatal(what) => {
                    return Err(SourceError::fatal(
                        &ctx.name,
                        format!("{what}; not retrying a client error (check the url and headers)"),
                    ))
                }
                Attempt::Retry(what, retry_after) => {
                    let Some(backoff) = retries.next_wait() else {
                        let attempts = retries.retries() + 1;
                        tracing::error!(url = %config.url, "giving up on this poll after {attempts} attempts: {what}");
                        return Ok(Polled::Nothing);
                    };
                    let wait = retry_after
                        .map_or(backoff, |r| r.max(backoff))
                        .min(MAX_RETRY_AFTER);
                    if self.deadline.is_some_and(|d| Instant::now() + wait >= d) {
                        tracing::warn!(url = %config.url, "{what}; the source's duration ends before a retry could be made");
                        return Ok(Polled::Done);
                    }
                    tracing::warn!(url = %config.url, "{what}; retry {}/{} in {wait:?}", retries.retries(), retries.max_retries());
                    if !self.sleep_until(Instant::now() + wait).await {
                        return Ok(Polled::Done);
                    }
                }
            }
        };
        let headers = content_type
            .map(|ct| {
                vec![Header {
                    name: "content-type".into(),
                    value: ct.into_bytes(),
                }]
            })
            .unwrap_or_default();
        let rec = Record {
            key: None,
            value: body,
            timestamp_ms: now_ms(),
            headers,
        };
        let position = Position::new(self.partition, self.emitted);
        if ctx.emit(rec, position).await.is_err() {
            return Ok(Polled::Done);
        }
        self.emitted += 1;
        Ok(Polled::Record)
    }
}

/// A poll every `interval` from the start.
async fn every_interval(p: &mut Poller<'_>) -> Result<(), SourceError> {
    let mut next_poll = Instant::now();
    loop {
        if p.finished() || p.deadline.is_some_and(|d| next_poll >= d) {
            return Ok(());
        }
        if !p.sleep_until(next_poll).await {
            return Ok(());
        }
        next_poll += *p.config.interval;
        if p.poll().await? == Polled::Done {
            return Ok(());
        }
        // A slow or retried poll must not cause a burst of catch-up polls.
        next_poll = next_poll.max(Instant::now());
    }
}

impl super::SourceConnector for HttpConfig {
    fn type_name(&self) -> &'static str {
        "http"
    }

    fn kind(&self) -> super::SourceKind {
        super::SourceKind::Fresh
    }

    fn validate(&self) -> Result<(), FieldError> {
        HttpConfig::validate(self)
    }

    async fn run(self, ctx: SourceContext) -> Result<(), SourceError> {
        run(self, ctx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_server_that_never_answers_is_said_to_have_timed_out() {
        // Accepts, then says nothing.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream);
            }
        });
        let config: HttpConfig =
            toml::from_str(&format!("url = \"http://{addr}/\"\ntimeout = \"200ms\"")).unwrap();
        let client = reqwest::Client::builder()
            .timeout(*config.timeout)
            .build()
            .unwrap();
        match attempt(&client, &config).await {
            Attempt::Retry(why, None) => assert!(why.contains("timed out after 200ms"), "{why}"),
            _ => panic!("a timeout is worth a retry"),
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(
            parse_retry_after("3"),
            Some(std::time::Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(std::time::Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
