//! `[dead_letter]`: where records that failed go (a file, stderr, a Kafka topic),
//! opened as one of the sinks. The dead letter itself is [`crate::dead_letter`].

use super::{file, file::FileSink, kafka, stdout, Sink, SinkContext, SinkError};
use crate::dead_letter::Encoding;
use crate::field_error::FieldError;
use serde::Deserialize;
use std::path::PathBuf;

/// `[dead_letter]`: where records that failed go, with the reason.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeadLetterConfig {
    /// JSON lines appended to a file (the default: `dead_letter.jsonl` beside the
    /// pipeline file).
    File { path: PathBuf },
    /// JSON lines on standard error.
    Stderr,
    /// A Kafka topic: the original record as the message (key, value, headers), with
    /// `sluice.reason`, `sluice.stage`, `sluice.plugin`, `sluice.position` and
    /// `sluice.time` headers added.
    Kafka(Box<kafka::KafkaSinkConfig>),
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig::File {
            path: PathBuf::from("dead_letter.jsonl"),
        }
    }
}

impl DeadLetterConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        match self {
            DeadLetterConfig::File { path } if path.as_os_str().is_empty() => {
                Err(FieldError::new("path", "must not be empty"))
            }
            DeadLetterConfig::Kafka(c) if !c.route_topics.is_empty() => Err(FieldError::new(
                "route_topics",
                "has no meaning for dead letters: they all go to `topic`",
            )),
            DeadLetterConfig::Kafka(c) if c.exact => Err(FieldError::new(
                "exact",
                "is for records sinks: dead letters are not sent again by the source",
            )),
            DeadLetterConfig::Kafka(c) if c.format.uses_registry() => Err(FieldError::new(
                "format",
                "is for records sinks: a dead letter is a JSON envelope around bytes that may fit no schema",
            )),
            DeadLetterConfig::Kafka(c) => c.validate(),
            _ => Ok(()),
        }
    }

    /// Whether the output could be opened, checked without writing (`sluice validate`).
    pub fn check(&self, base_dir: &std::path::Path) -> Result<(), String> {
        match self {
            DeadLetterConfig::File { path } => {
                crate::sinks::file::check_writable(&base_dir.join(path))
            }
            _ => Ok(()),
        }
    }

    /// Where dead letters go, for messages.
    pub fn describe(&self, ctx_base: &std::path::Path) -> String {
        match self {
            DeadLetterConfig::File { path } => ctx_base.join(path).display().to_string(),
            DeadLetterConfig::Stderr => "stderr".into(),
            DeadLetterConfig::Kafka(c) => format!("Kafka topic {}", c.topic),
        }
    }
}

/// Open the dead-letter output; JSON lines keep at most `max_value` bytes of a
/// record's value.
pub async fn open(
    config: &DeadLetterConfig,
    ctx: &SinkContext,
    max_value: usize,
) -> Result<(Box<dyn Sink>, Encoding), SinkError> {
    let json = Encoding::JsonLine { max_value };
    Ok(match config {
        DeadLetterConfig::File { path } => (
            Box::new(FileSink::open(&ctx.resolve(path), ctx, file::Recovery::Neither).await?),
            json,
        ),
        DeadLetterConfig::Stderr => (
            Box::new(stdout::StdoutSink::stderr(stdout::Format::Json)),
            json,
        ),
        DeadLetterConfig::Kafka(c) => (
            Box::new(kafka::KafkaSink::open(c, ctx).await?),
            Encoding::Original { max_value },
        ),
    })
}
