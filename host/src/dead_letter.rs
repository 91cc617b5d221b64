//! Dead letters: records a stage could not handle, kept with the reason and the
//! source position they came from, so a poison record costs one line in a file (or
//! one message on a topic) and never the pipeline. A leaf: the type and its
//! encodings; where dead letters go (`[dead_letter]`) is a sink's business
//! ([`crate::sinks::dead_letter`]).

use crate::position::{Partitions, Position};
use crate::record::{now_ms, record, Header, Record};
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::Digest as _;

/// How dead letters are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// One JSON object per dead letter (files, stderr): see [`DeadLetter::to_json`];
    /// a record value longer than `max_value` keeps only its start.
    JsonLine { max_value: usize },
    /// The original record, the facts in headers (Kafka); a value longer than
    /// `max_value` keeps only its start (a message over the topic's size limit would
    /// stop the pipeline at every restart).
    Original { max_value: usize },
}

/// A record that failed, where, and why.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub record: Record,
    /// The source position of the input record it came from.
    pub position: Position,
    /// `source`, `transform`, `window` or `sink`.
    pub stage: &'static str,
    /// The plugin's name in the pipeline (for `source`: the source's type).
    pub plugin: String,
    pub reason: String,
    /// When it failed, ms since the epoch.
    pub time_ms: i64,
}

impl DeadLetter {
    /// The kind of reason, as the `reason` label of the dead-letter metric: `late`
    /// (window closed), `plugin_failure` (trap, deadline, memory, contract: the
    /// plugin's fault), `unreadable` (the source could not use it), `refused` (a sink's
    /// store refused it), or `rejected` (the plugin's own error for the record).
    pub fn reason_class(&self) -> &'static str {
        const FAILURES: [&str; 5] = [
            "plugin exceeded",
            "plugin trapped",
            "plugin tried to",
            "plugin broke the contract",
            "plugin output exceeded",
        ];
        match self.stage {
            "source" => "unreadable",
            "sink" => "refused",
            _ if self.reason.starts_with("late record") => "late",
            _ if FAILURES.iter().any(|f| self.reason.contains(f)) => "plugin_failure",
            _ => "rejected",
        }
    }
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
        position: Position,
        reason: String,
    ) -> Self {
        DeadLetter {
            record,
            position,
            stage,
            plugin: plugin.to_owned(),
            reason,
            time_ms: now_ms(),
        }
    }

    fn time(&self) -> Option<String> {
        chrono::DateTime::from_timestamp_millis(self.time_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    }

    /// The JSON object written to a dead-letter file: time, stage, plugin, the source
    /// position (`offset` in its partition, and `position` naming the partition:
    /// topic and partition, or file), the reason and the original record.
    ///
    /// A value longer than `max_value` bytes keeps only its start, with
    /// `"value_truncated": {"bytes": <whole length>, "sha256": <of the whole>}`, so a
    /// huge poison record costs a bounded line and can still be matched to its source.
    pub fn to_json(&self, partitions: &Partitions, max_value: usize) -> Value {
        let mut rec = serde_json::Map::new();
        match &self.record.key {
            Some(key) => bytes_field(&mut rec, "key", key),
            None => {
                rec.insert("key".into(), Value::Null);
            }
        }
        let value = &self.record.value;
        let null = crate::record::is_null_value(&self.record);
        if null {
            rec.insert("value".into(), Value::Null);
        } else if value.len() > max_value {
            let mut cut = max_value;
            if let Err(e) = std::str::from_utf8(&value[..cut]) {
                if e.error_len().is_none() && std::str::from_utf8(value).is_ok() {
                    cut = e.valid_up_to(); // not through the middle of a character
                }
            }
            bytes_field(&mut rec, "value", &value[..cut]);
            rec.insert(
                "value_truncated".into(),
                json!({ "bytes": value.len(), "sha256": sha256_hex(value) }),
            );
        } else {
            bytes_field(&mut rec, "value", value);
        }
        rec.insert("timestamp_ms".into(), json!(self.record.timestamp_ms));
        let headers: Vec<Value> = self
            .record
            .headers
            .iter()
            .filter(|h| !(null && h.name == crate::record::NULL_VALUE_HEADER))
            .map(|h| {
                let mut obj = serde_json::Map::new();
                obj.insert("name".into(), Value::String(h.name.clone()));
                bytes_field(&mut obj, "value", &h.value);
                Value::Object(obj)
            })
            .collect();
        rec.insert("headers".into(), Value::Array(headers));
        json!({
            "time": self.time(),
            "stage": self.stage,
            "plugin": self.plugin,
            "offset": self.position.offset,
            "position": partitions.describe(self.position),
            "reason": self.reason,
            "record": rec,
        })
    }

    /// As a record for a sink, in the output's encoding.
    pub fn encode(self, encoding: Encoding, partitions: &Partitions) -> Record {
        match encoding {
            Encoding::JsonLine { max_value } => {
                let line = serde_json::to_vec(&self.to_json(partitions, max_value))
                    .expect("a Value always serializes");
                record(line, self.time_ms)
            }
            Encoding::Original { max_value } => {
                let header = |name: &str, value: String| Header {
                    name: format!("sluice.{name}"),
                    value: value.into_bytes(),
                };
                let mut r = self.record;
                if r.value.len() > max_value {
                    let (bytes, sha256) = (r.value.len(), sha256_hex(&r.value));
                    r.value.truncate(max_value);
                    r.headers.push(header(
                        "value_truncated",
                        json!({ "bytes": bytes, "sha256": sha256 }).to_string(),
                    ));
                }
                r.headers.push(header("reason", self.reason));
                r.headers.push(header("stage", self.stage.into()));
                r.headers.push(header("plugin", self.plugin));
                r.headers.push(header(
                    "position",
                    partitions.describe(self.position).to_string(),
                ));
                r.headers.push(header("time", self.time_ms.to_string()));
                r
            }
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
