//! Confluent Schema Registry: the client (ids looked up and cached, schemas
//! registered and checked), Confluent's wire format (`0x00`, a 4-byte schema id, the
//! encoded value) and the codecs the Kafka source and sink use: Avro ([`avro`]) and
//! JSON Schema (the value is JSON text, checked with [`crate::schema`]).
//!
//! Why not the `schema_registry_converter` crate: it hands over apache-avro's value
//! tree, whose errors do not name the field, and Sluice needs Avro as JSON text both
//! ways (plugins read JSON); its JSON Schema side is a second validator beside the
//! one Sluice already uses; and it pins its own apache-avro and reqwest. The client
//! is four REST calls on the reqwest already in the tree; apache-avro (the Apache
//! project's crate) parses the schemas.

pub mod avro;
mod client;
mod codec;

pub use avro::{AvroSchema, Misfit};
pub use client::{Client, Registered, RegistryError};
pub use codec::{Decoded, Decoder, Encoder, ValueSchema};

use crate::field_error::FieldError;
use serde::Deserialize;
use std::path::PathBuf;

/// How a Kafka topic's values are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The value as it is (JSON text from Sluice's plugins): no registry.
    #[default]
    Json,
    /// Confluent-framed Avro binary, its schema in the registry.
    Avro,
    /// Confluent-framed JSON text, checked against its JSON Schema in the registry.
    JsonSchema,
}

impl Format {
    pub fn uses_registry(self) -> bool {
        self != Format::Json
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Avro => "avro",
            Format::JsonSchema => "json_schema",
        }
    }
}

/// `registry = { url = "http://127.0.0.1:8081", auth = {...}, tls = {...} }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// The registry's base URL (several, comma-separated, are tried in turn).
    pub url: String,
    pub auth: Option<Auth>,
    pub tls: Option<TlsConfig>,
    /// How long one request may take.
    #[serde(default = "default_timeout")]
    pub timeout: crate::duration::Duration,
}

fn default_timeout() -> crate::duration::Duration {
    crate::duration::Duration::from_millis(10_000)
}

/// `auth = { type = "basic", username = "${SR_USER}", password = "${SR_PASSWORD}" }`
/// or `auth = { type = "bearer", token = "${SR_TOKEN}" }`.
#[derive(Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    Basic { username: String, password: String },
    Bearer { token: String },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Auth::Bearer { .. } => write!(f, "Bearer(***)"),
        }
    }
}

/// `tls = { ca_file = "ca.pem" }`: the certificate authorities to trust (default:
/// the WebPKI roots) for an `https://` registry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub ca_file: Option<PathBuf>,
}

impl RegistryConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        let urls: Vec<&str> = self.url.split(',').map(str::trim).collect();
        if urls.iter().any(|u| u.is_empty()) {
            return Err(FieldError::new(
                "registry.url",
                "must name the registry, like \"http://127.0.0.1:8081\"",
            ));
        }
        for u in urls {
            match reqwest::Url::parse(u) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                _ => {
                    return Err(FieldError::new(
                        "registry.url",
                        format!("`{u}` is not an http:// or https:// URL"),
                    ))
                }
            }
        }
        match &self.auth {
            Some(Auth::Basic { username, .. }) if username.is_empty() => {
                return Err(FieldError::new(
                    "registry.auth.username",
                    "must not be empty",
                ))
            }
            Some(Auth::Bearer { token }) if token.is_empty() => {
                return Err(FieldError::new("registry.auth.token", "must not be empty"))
            }
            _ => {}
        }
        if self.timeout.is_zero() || *self.timeout > std::time::Duration::from_secs(300) {
            return Err(FieldError::new(
                "registry.timeout",
                "must be more than 0 and at most 5m",
            ));
        }
        Ok(())
    }
}

/// The subject a sink's schema is registered under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SubjectStrategy {
    /// `<topic>-value` (Confluent's TopicNameStrategy).
    #[default]
    Topic,
    /// The record's full name (RecordNameStrategy): one schema across topics.
    Record,
    /// `<topic>-<record full name>` (TopicRecordNameStrategy).
    TopicRecord,
}

impl SubjectStrategy {
    /// The subject for `topic`, given the schema's record name (an Avro record's full
    /// name, a JSON Schema's `title`).
    pub fn subject(self, topic: &str, record: Option<&str>) -> Result<String, String> {
        let record = || {
            record.ok_or_else(|| {
                "the record and topic_record subject strategies need a named schema (an Avro record, or a JSON Schema with a `title`)".to_owned()
            })
        };
        Ok(match self {
            SubjectStrategy::Topic => format!("{topic}-value"),
            SubjectStrategy::Record => record()?.to_owned(),
            SubjectStrategy::TopicRecord => format!("{topic}-{}", record()?),
        })
    }
}

/// Confluent's framing: magic byte 0, then the schema id (big-endian), then the value.
pub fn frame(id: u32, out: &mut Vec<u8>) {
    out.push(0);
    out.extend_from_slice(&id.to_be_bytes());
}

/// The schema id and the value of a framed message; an error says why it is not one.
pub fn unframe(value: &[u8]) -> Result<(u32, &[u8]), String> {
    match value {
        [0, a, b, c, d, rest @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), rest)),
        [] => Err("the value is empty: not in Confluent's wire format (magic byte 0, a 4-byte schema id, the value)".into()),
        [m, ..] if *m != 0 => Err(format!(
            "the value does not start with Confluent's magic byte 0 (it starts with 0x{m:02x}): not written with a schema registry"
        )),
        _ => Err(format!(
            "the value is {} byte(s): too short for Confluent's wire format (magic byte 0 and a 4-byte schema id)",
            value.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_round_trips_and_says_why_a_value_is_not_framed() {
        let mut v = Vec::new();
        frame(258, &mut v);
        v.extend_from_slice(b"xy");
        assert_eq!(unframe(&v).unwrap(), (258, &b"xy"[..]));
        assert!(unframe(b"{\"a\":1}").unwrap_err().contains("0x7b"));
        assert!(unframe(&[0, 1]).unwrap_err().contains("too short"));
        assert!(unframe(b"").unwrap_err().contains("empty"));
    }

    #[test]
    fn subjects_by_strategy() {
        assert_eq!(
            SubjectStrategy::Topic.subject("t", None).unwrap(),
            "t-value"
        );
        assert_eq!(
            SubjectStrategy::Record.subject("t", Some("a.B")).unwrap(),
            "a.B"
        );
        assert_eq!(
            SubjectStrategy::TopicRecord
                .subject("t", Some("a.B"))
                .unwrap(),
            "t-a.B"
        );
        assert!(SubjectStrategy::Record.subject("t", None).is_err());
    }
}
