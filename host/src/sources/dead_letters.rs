//! `type = "dead_letters"`: the records of a dead-letter file (JSON lines, as the file
//! and stderr dead-letter outputs write them), as they were when they failed: key,
//! value, event time and headers. `sluice dead-letters replay` runs them through a
//! fixed plugin into the pipeline's sinks.

use super::{SourceContext, SourceError};
use crate::field_error::FieldError;
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
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.path.as_os_str().is_empty() {
            return Err(FieldError::new("path", "must name the dead-letter file"));
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
    // `"value": null`: the record's value was null (a tombstone), kept so.
    let null = matches!(rec.get("value"), Some(Value::Null));
    let value = match null {
        true => Vec::new(),
        false => bytes(rec, "value")?.ok_or("the record has no `value`")?,
    };
    let mut headers: Vec<Header> = match rec.get("headers") {
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
    if null {
        headers.push(Header {
            name: crate::record::NULL_VALUE_HEADER.into(),
            value: Vec::new(),
        });
    }
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

/// The file's lines, one at a time (never the whole file in memory): `(line number,
/// byte offset, line)`, blank lines left out.
struct Lines {
    reader: tokio::io::BufReader<tokio::fs::File>,
    line: Vec<u8>,
    number: usize,
    offset: u64,
}

impl Lines {
    async fn open(path: &std::path::Path) -> std::io::Result<Lines> {
        Ok(Lines {
            reader: tokio::io::BufReader::with_capacity(
                256 * 1024,
                tokio::fs::File::open(path).await?,
            ),
            line: Vec::new(),
            number: 0,
            offset: 0,
        })
    }

    async fn next(&mut self) -> std::io::Result<Option<(usize, u64, &[u8])>> {
        use tokio::io::AsyncBufReadExt;
        loop {
            self.line.clear();
            let n = self.reader.read_until(b'\n', &mut self.line).await?;
            if n == 0 {
                return Ok(None);
            }
            self.number += 1;
            let at = self.offset;
            self.offset += n as u64;
            if !self.line.iter().all(u8::is_ascii_whitespace) {
                return Ok(Some((self.number, at, &self.line)));
            }
        }
    }
}

/// A dead letter's line: `Ok(None)` when it is another plugin's (skipped); `Ok(Some(None))`
/// when its record was truncated when written (cannot be replayed as it was).
fn letter_of(line: &[u8], plugin: Option<&str>) -> Result<Option<Option<Record>>, String> {
    let letter: Value =
        serde_json::from_slice(line).map_err(|e| format!("not a JSON dead letter: {e}"))?;
    if let Some(want) = plugin {
        if letter.get("plugin").and_then(Value::as_str) != Some(want) {
            return Ok(None);
        }
    }
    record_of(&letter).map(Some)
}

/// The most bad lines an error lists (all are counted).
const BAD_LINES_NAMED: usize = 20;

/// Every line is checked before the first record goes: a file with a bad line (a torn
/// last line, invalid JSON, a missing field) replays nothing, and its error names each
/// bad line, so that fixing them and replaying again gives every record once.
pub async fn run(config: DeadLettersConfig, ctx: SourceContext) -> Result<(), SourceError> {
    let path = if config.path.is_absolute() {
        config.path.clone()
    } else {
        ctx.base_dir.join(&config.path)
    };
    let unreadable = |e: std::io::Error| {
        SourceError::fatal(&ctx.name, format!("cannot read {}: {e}", path.display()))
    };
    let want = config.plugin.as_deref();
    let mut lines = Lines::open(&path).await.map_err(unreadable)?;
    let (mut bad, mut bad_count) = (Vec::new(), 0usize);
    while let Some((number, _, line)) = lines.next().await.map_err(unreadable)? {
        if let Err(why) = letter_of(line, want) {
            bad_count += 1;
            if bad.len() < BAD_LINES_NAMED {
                bad.push(format!("{}:{number}: {why}", path.display()));
            }
        }
    }
    // Lines written after this check (a live dead-letter file grows) are not replayed:
    // they were not checked.
    let checked_to = lines.offset;
    if bad_count > 0 {
        let more = bad_count - bad.len();
        return Err(SourceError::fatal(
            &ctx.name,
            format!(
                "{bad_count} line(s) of {} are not dead letters that can be replayed, so nothing was replayed (fix or remove them, then replay again):\n  {}{}",
                path.display(),
                bad.join("\n  "),
                if more > 0 { format!("\n  ... and {more} more") } else { String::new() }
            ),
        ));
    }

    let partition = ctx.partition(Origin::File { path: path.clone() });
    ctx.metrics.set_connected();
    let (mut replayed, mut other, mut truncated) = (0u64, 0u64, 0u64);
    let mut lines = Lines::open(&path).await.map_err(unreadable)?;
    while let Some((number, at, line)) = lines.next().await.map_err(unreadable)? {
        if at + line.len() as u64 > checked_to {
            break;
        }
        let record = match letter_of(line, want) {
            Ok(Some(Some(record))) => record,
            Ok(Some(None)) => {
                truncated += 1;
                continue;
            }
            Ok(None) => {
                other += 1;
                continue;
            }
            Err(why) => {
                // Changed since it was checked: stop here, nothing after it goes.
                return Err(SourceError::fatal(
                    &ctx.name,
                    format!(
                        "{}:{number}: {why} (the file changed during the replay)",
                        path.display()
                    ),
                ));
            }
        };
        if ctx.is_stopping()
            || ctx
                .emit(record, Position::new(partition, at))
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

impl super::SourceConnector for DeadLettersConfig {
    fn type_name(&self) -> &'static str {
        "dead_letters"
    }

    fn kind(&self) -> super::SourceKind {
        super::SourceKind::Fresh
    }

    fn validate(&self) -> Result<(), FieldError> {
        DeadLettersConfig::validate(self)
    }

    async fn run(self, ctx: SourceContext) -> Result<(), SourceError> {
        run(self, ctx).await
    }
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
        let tombstone = serde_json::json!({"record": {"value": null, "timestamp_ms": 1}});
        let t = record_of(&tombstone).unwrap().unwrap();
        assert!(crate::record::is_null_value(&t), "{t:?}");
        let empty = serde_json::json!({"record": {"value": "", "timestamp_ms": 1}});
        assert!(!crate::record::is_null_value(
            &record_of(&empty).unwrap().unwrap()
        ));
        assert!(record_of(&serde_json::json!({"x": 1}))
            .unwrap_err()
            .contains("no `record`"));
    }
}
