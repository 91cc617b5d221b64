//! `type = "dead_letters"`: the records of a dead-letter file (JSON lines, as the file
//! and stderr dead-letter outputs write them), as they were when they failed: key,
//! value, event time and headers. `sluice dead-letters replay` runs them through a
//! fixed plugin into the pipeline's sinks.

use super::{SourceContext, SourceError};
use crate::position::{Origin, Position};
use crate::record::{Header, Record};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLettersConfig {
    /// The dead-letter file (relative to the pipeline file).
    pub path: PathBuf,
    /// Only the dead letters of this plugin or sink (their `plugin` field); the others
    /// are skipped and counted.
    pub plugin: Option<String>,
}

impl DeadLettersConfig {
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.path.as_os_str().is_empty() {
            return Err(("path".into(), "must name the dead-letter file".into()));
        }
        Ok(())
    }
}

/// `name` as text, or `name_base64`, from a dead letter's object.
fn bytes(obj: &serde_json::Map<String, Value>, name: &str) -> Result<Option<Vec<u8>>, String> {
    if let Some(v) = obj.get(name) {
        return match v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone().into_bytes())),
            other => Err(format!("`{name}` is {other}, not text")),
        };
    }
    match obj.get(&format!("{name}_base64")) {
        None => Ok(None),
        Some(Value::String(s)) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(Some)
            .map_err(|e| format!("`{name}_base64` is not base64: {e}")),
        Some(other) => Err(format!("`{name}_base64` is {other}, not text")),
    }
}

/// The failed record in a dead letter; `Ok(None)`: it was truncated when written, so
/// it cannot be replayed as it was.
pub fn record_of(letter: &Value) -> Result<Option<Record>, String> {
    let rec = letter
        .get("record")
        .and_then(Value::as_object)
        .ok_or("no `record` object: not a dead letter of the file or stderr output")?;
    if rec.contains_key("value_truncated") {
        return Ok(None);
    }
    let value = bytes(rec, "value")?.ok_or("the record has no `value`")?;
    let headers = match rec.get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(hs)) => hs
            .iter()
            .map(|h| {
                let h = h.as_object().ok_or("a header is not an object")?;
                let name = h
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or("a header has no `name`")?;
                Ok(Header {
                    name: name.to_owned(),
                    value: bytes(h, "value")?.unwrap_or_default(),
                })
            })
            .collect::<Result<_, String>>()?,
        Some(_) => return Err("`headers` is not a list".into()),
    };
    Ok(Some(Record {
        key: bytes(rec, "key")?,
        value,
        timestamp_ms: rec
            .get("timestamp_ms")
            .and_then(Value::as_i64)
            .ok_or("the record has no `timestamp_ms`")?,
        headers,
    }))
}

pub async fn run(config: DeadLettersConfig, ctx: SourceContext) -> Result<(), SourceError> {
    let path = if config.path.is_absolute() {
        config.path.clone()
    } else {
        ctx.base_dir.join(&config.path)
    };
    let text = tokio::fs::read(&path).await.map_err(|e| {
        SourceError::fatal(&ctx.name, format!("cannot read {}: {e}", path.display()))
    })?;
    let partition = ctx.partition(Origin::File { path: path.clone() });
    ctx.metrics.set_connected();
    let (mut offset, mut replayed, mut other, mut truncated) = (0usize, 0u64, 0u64, 0u64);
    for (i, line) in text.split_inclusive(|&b| b == b'\n').enumerate() {
        let at = offset;
        offset += line.len();
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let bad = |why: String| {
            SourceError::fatal(&ctx.name, format!("{}:{}: {why}", path.display(), i + 1))
        };
        let letter: Value = serde_json::from_slice(line)
            .map_err(|e| bad(format!("not a JSON dead letter: {e}")))?;
        if let Some(want) = &config.plugin {
            if letter.get("plugin").and_then(Value::as_str) != Some(want.as_str()) {
                other += 1;
                continue;
            }
        }
        let Some(record) = record_of(&letter).map_err(bad)? else {
            truncated += 1;
            continue;
        };
        if ctx.is_stopping()
            || ctx
                .emit(record, Position::new(partition, at as u64))
                .await
                .is_err()
        {
            break;
        }
        replayed += 1;
    }
    tracing::info!(
        source = %ctx.name,
        "{replayed} dead letter(s) of {} replayed; {other} of other plugins skipped; {truncated} truncated when written, skipped",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_gives_back_its_record() {
        let letter = serde_json::json!({
            "stage": "transform", "plugin": "p",
            "record": {"key_base64": "AAE=", "value": "{\"a\":1}", "timestamp_ms": 7,
                       "headers": [{"name": "h", "value": "v"}]}
        });
        let r = record_of(&letter).unwrap().unwrap();
        assert_eq!(r.key, Some(vec![0, 1]));
        assert_eq!(r.value, br#"{"a":1}"#);
        assert_eq!(r.timestamp_ms, 7);
        assert_eq!(r.headers[0].value, b"v");
        let cut =
            serde_json::json!({"record": {"value": "x", "value_truncated": {}, "timestamp_ms": 1}});
        assert!(record_of(&cut).unwrap().is_none());
        assert!(record_of(&serde_json::json!({"x": 1}))
            .unwrap_err()
            .contains("no `record`"));
    }
}
