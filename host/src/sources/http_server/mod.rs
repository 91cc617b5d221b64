//! `type = "http_server"`: records clients POST (`POST http://127.0.0.1:5000/api/data`
//! with a JSON user, an array of them, or NDJSON), the seeds' API front door.
//!
//! An answer means what it says. With `ack = "durable"` (the default) a request is
//! answered `200` only once every record in it is durable in every sink, or in the
//! dead letters with its reason: its records ride the acknowledgement path Kafka
//! offsets take ([`ledger`]), and a waiting request prompts a checkpoint rather than
//! waiting out `checkpoint_interval`. A client that got `200` may forget the data; one
//! that got no answer (a timeout, the host killed) sends it again, which upserting
//! sinks make harmless. `ack = "accepted"` answers `202` as soon as the records are
//! handed to the pipeline: faster, and lost if the host dies before they are stored.
//!
//! A request is all or nothing: its body is read whole (up to `max_body_mb`), parsed,
//! and every record checked (`schema`, `event_time`) before any is handed on. One
//! refused record refuses the request (`422`, naming each refused record's index, the
//! JSON pointer and the rule), so a client fixes and sends the whole request again
//! without duplicating the part that was fine.
//!
//! Backpressure, not buffering: at most `max_requests` requests are read at once and
//! at most `max_buffer_mb` of bodies held; past either, or when the pipeline has had no
//! room for `queue_wait`, the answer is `503` with `Retry-After`. Headers must arrive
//! within 10 s and a body within `body_timeout` (slow clients are cut off). A stop
//! answers `503` to new requests, hands on and stores what is in flight, answers it,
//! then ends.

mod body;
mod ledger;
mod serve;

use super::event_time::EventTime;
use super::{SourceContext, SourceError, SourceKind};
use crate::duration::Duration;
use crate::field_error::FieldError;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `[source] type = "http_server"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// `ip:port` to listen on; beyond loopback a `token` is required.
    pub listen: String,
    /// The one path records are posted to (`/api/data`); others answer 404.
    #[serde(default = "default_path")]
    pub path: String,
    /// `durable` (200 once stored everywhere) or `accepted` (202 once handed on).
    #[serde(default)]
    pub ack: Ack,
    /// A JSON Schema file every posted record must match (`422` otherwise).
    pub schema: Option<PathBuf>,
    /// `"message"` (default): the arrival time; or `{ field, format }` from the record.
    #[serde(default)]
    pub event_time: EventTime,
    /// The record's key: a top-level field's name, or a JSON pointer (`/login/uuid`);
    /// a string value is the key's bytes, any other value its JSON. Missing: no key.
    pub key_field: Option<String>,
    /// Every request needs `Authorization: Bearer <token>` (use `${VAR}`).
    pub token: Option<String>,
    /// Serve HTTPS: `{ cert_file = "server.pem", key_file = "server.key" }` (PEM).
    pub tls: Option<ServerTls>,
    /// The largest body taken, in MiB; a larger one is answered 413 unread.
    #[serde(default = "default_max_body_mb")]
    pub max_body_mb: u64,
    /// Requests read and checked at once; one more is answered 503.
    #[serde(default = "default_max_requests")]
    pub max_requests: usize,
    /// Bodies held at once, in MiB, whatever the number of requests.
    #[serde(default = "default_max_buffer_mb")]
    pub max_buffer_mb: u64,
    /// How long a body may take to arrive (408 after).
    #[serde(default = "default_body_timeout")]
    pub body_timeout: Duration,
    /// How long a request waits for room in a full pipeline before 503.
    #[serde(default = "default_queue_wait")]
    pub queue_wait: Duration,
    /// How long a durable request waits for its records to be stored before it is
    /// answered 503 ("not confirmed: send again").
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout: Duration,
}

/// `tls = { cert_file, key_file }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// The certificate chain, PEM, the server's own first.
    pub cert_file: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// What a `2xx` answer promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ack {
    /// `200` once every record is durable in every sink (or a dead letter).
    #[default]
    Durable,
    /// `202` once the records are handed to the pipeline (lost if the host dies first).
    Accepted,
}

impl Ack {
    fn name(self) -> &'static str {
        match self {
            Ack::Durable => "durable",
            Ack::Accepted => "accepted",
        }
    }
}

fn default_path() -> String {
    "/".into()
}
fn default_max_body_mb() -> u64 {
    8
}
fn default_max_requests() -> usize {
    64
}
fn default_max_buffer_mb() -> u64 {
    64
}
fn default_body_timeout() -> Duration {
    Duration::from_millis(30_000)
}
fn default_queue_wait() -> Duration {
    Duration::from_millis(2_000)
}
fn default_ack_timeout() -> Duration {
    Duration::from_millis(30_000)
}

impl HttpServerConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        let addr = self.addr()?;
        match self.token.as_deref() {
            Some(t) if t.trim().is_empty() => {
                return Err(FieldError::new("token", "is empty: give a secret"));
            }
            None if !addr.ip().is_loopback() => {
                return Err(FieldError::new(
                    "token",
                    format!("is required to listen on {addr}, beyond loopback: set token = \"${{SLUICE_INGEST_TOKEN}}\" (every request then needs it)"),
                ));
            }
            _ => {}
        }
        if !self.path.starts_with('/') || self.path.contains(['?', '#', ' ']) {
            return Err(FieldError::new(
                "path",
                "must start with / and hold no ?, # or space, like \"/api/data\"",
            ));
        }
        if !(1..=1024).contains(&self.max_body_mb) {
            return Err(FieldError::new("max_body_mb", "must be between 1 and 1024"));
        }
        if !(1..=65_536).contains(&self.max_buffer_mb) || self.max_buffer_mb < self.max_body_mb {
            return Err(FieldError::new(
                "max_buffer_mb",
                "must be between max_body_mb and 65536 (one largest body must fit)",
            ));
        }
        if !(1..=10_000).contains(&self.max_requests) {
            return Err(FieldError::new(
                "max_requests",
                "must be between 1 and 10000",
            ));
        }
        for (field, d) in [
            ("body_timeout", self.body_timeout),
            ("ack_timeout", self.ack_timeout),
        ] {
            if d.is_zero() {
                return Err(FieldError::new(field, "must be more than 0"));
            }
        }
        if matches!(&self.key_field, Some(k) if k.is_empty()) {
            return Err(FieldError::new("key_field", "must name a field"));
        }
        Ok(())
    }

    fn addr(&self) -> Result<SocketAddr, FieldError> {
        self.listen.parse().map_err(|_| {
            FieldError::new(
                "listen",
                format!(
                    "`{}` is not an ip:port like \"127.0.0.1:5000\"",
                    self.listen
                ),
            )
        })
    }
}

impl super::SourceConnector for HttpServerConfig {
    fn type_name(&self) -> &'static str {
        "http_server"
    }

    /// Nothing is read again after a restart: a client whose request was not
    /// answered sends it again.
    fn kind(&self) -> SourceKind {
        SourceKind::Fresh
    }

    fn validate(&self) -> Result<(), FieldError> {
        HttpServerConfig::validate(self)
    }

    /// A request is one event: a few at once, so that what waits at the intake is
    /// bounded by bodies, not by records.
    fn intake_capacity(&self, _records: usize) -> usize {
        8
    }

    async fn run(self, ctx: SourceContext) -> Result<(), SourceError> {
        serve::run(self, ctx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> HttpServerConfig {
        toml::from_str(&format!("listen = \"127.0.0.1:5000\"\n{extra}")).unwrap()
    }

    #[test]
    fn beyond_loopback_a_token_is_required_and_limits_are_checked() {
        assert!(parse("").validate().is_ok());
        let field = |extra: &str| parse(extra).validate().unwrap_err().field;
        let open: HttpServerConfig = toml::from_str("listen = \"0.0.0.0:5000\"").unwrap();
        assert_eq!(open.validate().unwrap_err().field, "token");
        let mut with_token = open.clone();
        with_token.token = Some("s3cret".into());
        assert!(with_token.validate().is_ok());
        assert_eq!(field("path = \"api\""), "path");
        assert_eq!(field("max_body_mb = 0"), "max_body_mb");
        assert_eq!(
            field("max_body_mb = 100\nmax_buffer_mb = 64"),
            "max_buffer_mb"
        );
        assert_eq!(field("ack_timeout = \"0s\""), "ack_timeout");
        let bad_listen: HttpServerConfig = toml::from_str("listen = \"localhost\"").unwrap();
        assert_eq!(bad_listen.validate().unwrap_err().field, "listen");
    }
}
