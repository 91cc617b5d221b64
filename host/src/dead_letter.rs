//! Dead letters: records a stage could not handle, kept with the reason, so a poison
//! record costs one line in a file and never the pipeline.

use crate::config::{DeadLetterConfig, PipelineConfig};
use crate::record::{now_ms, record, Record};
use crate::sinks::{file::FileSink, stdout, Sink, SinkError};
use base64::Engine as _;
use serde_json::{json, Value};

/// A record that failed, where, and why.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub record: Record,
    /// The source offset of the input record it came from.
    pub offset: u64,
    /// `transform` or `window`.
    pub stage: &'static str,
    /// The plugin's name in the pipeline.
    pub plugin: String,
    pub reason: String,
    /// When it failed, ms since the epoch.
    pub time_ms: i64,
}

/// Bytes as text when they are UTF-8, else base64 under a `_base64` key.
fn bytes_field(obj: &mut serde_json::Map<String, Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => obj.insert(name.into(), Value::String(text.into())),
        Err(_) => obj.insert(
            format!("{name}_base64"),
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        ),
    };
}

impl DeadLetter {
    /// A dead letter failing now.
    pub fn now(
        stage: &'static str,
        plugin: &str,
        record: Record,
        offset: u64,
        reason: String,
    ) -> Self {
        DeadLetter {
            record,
            offset,
            stage,
            plugin: plugin.to_owned(),
            reason,
            time_ms: now_ms(),
        }
    }

    /// The JSON line written to the dead-letter output.
    pub fn to_json(&self) -> Value {
        let mut rec = serde_json::Map::new();
        match &self.record.key {
            Some(key) => bytes_field(&mut rec, "key", key),
            None => {
                rec.insert("key".into(), Value::Null);
            }
        }
        bytes_field(&mut rec, "value", &self.record.value);
        rec.insert("timestamp_ms".into(), json!(self.record.timestamp_ms));
        let headers: Vec<Value> = self
            .record
            .headers
            .iter()
            .map(|h| {
                let mut obj = serde_json::Map::new();
                obj.insert("name".into(), Value::String(h.name.clone()));
                bytes_field(&mut obj, "value", &h.value);
                Value::Object(obj)
            })
            .collect();
        rec.insert("headers".into(), Value::Array(headers));
        let time = chrono::DateTime::from_timestamp_millis(self.time_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        json!({
            "time": time,
            "stage": self.stage,
            "plugin": self.plugin,
            "offset": self.offset,
            "reason": self.reason,
            "record": rec,
        })
    }

    /// As a record for a sink.
    pub fn into_record(self) -> Record {
        let line = serde_json::to_vec(&self.to_json()).expect("a Value always serializes");
        record(line, self.time_ms)
    }
}

/// Open the dead-letter output.
pub async fn open(pipeline: &PipelineConfig) -> Result<Sink, SinkError> {
    Ok(match &pipeline.dead_letter {
        DeadLetterConfig::File { path } => {
            Sink::File(FileSink::open(&pipeline.resolve(path)).await?)
        }
        DeadLetterConfig::Stderr => Sink::Stdout(stdout::StdoutSink::stderr(stdout::Format::Json)),
    })
}
