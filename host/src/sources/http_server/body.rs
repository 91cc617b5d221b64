//! A request's body as records: a JSON object is one record, a JSON array one per
//! element, NDJSON one per non-blank line. Every record is checked (an object, the
//! schema, the event time) before any is taken: a request is all or nothing.

use crate::record::Record;
use crate::schema::{Mismatch, Schema};
use crate::sources::event_time::EventTime;
use serde::Serialize;
use serde_json::Value;

/// At most this many refused records are listed in an answer (the count is whole).
pub const LISTED: usize = 100;

/// How the body is framed, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json`: an object, or an array of them.
    Json,
    /// `application/x-ndjson`: one object per line.
    Ndjson,
}

impl Format {
    /// The format a `Content-Type` names (parameters such as `charset` ignored).
    pub fn of(content_type: &str) -> Option<Format> {
        let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Some(Format::Json),
            "application/x-ndjson" | "application/ndjson" | "application/jsonl" => {
                Some(Format::Ndjson)
            }
            _ => None,
        }
    }
}

/// One record the request cannot have, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refusal {
    /// Its place among the request's records, from 0.
    pub index: usize,
    /// Its line in an NDJSON body, from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Where in the record: a JSON pointer (`/email`; `` for the whole record).
    pub pointer: String,
    /// The schema rule it breaks, as a pointer into the schema, when a schema refused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub message: String,
}

/// Why a body gave no records.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejected {
    /// Not JSON (400): where it stops being JSON.
    Malformed {
        line: usize,
        column: usize,
        message: String,
    },
    /// JSON, but not an object, an array or lines of them (400).
    Shape(String),
    /// Records the request cannot have (422): the first [`LISTED`], how many, and
    /// how many records the request had.
    Refused {
        listed: Vec<Refusal>,
        count: usize,
        total: usize,
    },
}

/// What a record is checked against and takes its key and event time from.
pub struct Reader<'a> {
    pub schema: Option<&'a Schema>,
    pub event_time: &'a EventTime,
    pub key_field: Option<&'a str>,
}

impl Reader<'_> {
    /// The records of `body`, each stamped `arrival_ms` unless its event time is a
    /// field; or why there are none.
    pub fn read(
        &self,
        body: &[u8],
        format: Format,
        arrival_ms: i64,
    ) -> Result<Vec<Record>, Rejected> {
        let values = match format {
            Format::Json => json_values(body)?,
            Format::Ndjson => ndjson_values(body)?,
        };
        let total = values.len();
        let mut records = Vec::with_capacity(total);
        let mut listed = Vec::new();
        let mut count = 0;
        for (index, (line, raw)) in values.into_iter().enumerate() {
            match self.record(raw, arrival_ms) {
                Ok(r) => records.push(r),
                Err((pointer, rule, message)) => {
                    count += 1;
                    if listed.len() < LISTED {
                        listed.push(Refusal {
                            index,
                            line,
                            pointer,
                            rule,
                            message,
                        });
                    }
                }
            }
        }
        if count > 0 {
            return Err(Rejected::Refused {
                listed,
                count,
                total,
            });
        }
        Ok(records)
    }

    /// One value (its bytes as sent, already known to be JSON) as a record, or where
    /// and why it is refused. The record keeps the bytes as sent: key order, number
    /// precision and all.
    #[allow(clippy::type_complexity)]
    fn record(
        &self,
        raw: &[u8],
        arrival_ms: i64,
    ) -> Result<Record, (String, Option<String>, String)> {
        let value: Value =
            serde_json::from_slice(raw).map_err(|e| (String::new(), None, e.to_string()))?;
        if !value.is_object() {
            return Err((String::new(), None, "is not a JSON object".into()));
        }
        if let Some(schema) = self.schema {
            match schema.check_value(&value) {
                Ok(()) => {}
                Err(Mismatch::Rule {
                    pointer,
                    rule,
                    message,
                    ..
                }) => return Err((pointer, Some(rule), message)),
                Err(other) => return Err((String::new(), None, other.to_string())),
            }
        }
        let key = self
            .key_field
            .and_then(|k| crate::record::key_from_json(&value, k));
        let timestamp_ms = self.event_time.of(raw, arrival_ms).map_err(|m| {
            let pointer = match self.event_time {
                EventTime::Field { field, .. } => {
                    format!("/{}", field.replace('~', "~0").replace('/', "~1"))
                }
                EventTime::Message => String::new(),
            };
            (pointer, None, m)
        })?;
        Ok(Record {
            key,
            value: raw.to_vec(),
            timestamp_ms,
            headers: Vec::new(),
        })
    }
}

/// A value as sent, with its line in an NDJSON body.
type Sent<'a> = (Option<usize>, &'a [u8]);

/// An object, or an array's elements, as the bytes sent (no line numbers: a JSON
/// body is one value).
fn json_values(body: &[u8]) -> Result<Vec<Sent<'_>>, Rejected> {
    let trimmed = body.trim_ascii();
    if trimmed.first() == Some(&b'[') {
        let items: Vec<&serde_json::value::RawValue> =
            serde_json::from_slice(body).map_err(|e| malformed(&e, None))?;
        return Ok(items
            .into_iter()
            .map(|r| (None, r.get().as_bytes()))
            .collect());
    }
    let _: &serde_json::value::RawValue =
        serde_json::from_slice(body).map_err(|e| malformed(&e, None))?;
    if trimmed.first() == Some(&b'{') {
        return Ok(vec![(None, trimmed)]);
    }
    Err(Rejected::Shape(
        "the body is JSON but not an object or an array of objects".into(),
    ))
}

/// One value per non-blank line, with its line number, as the bytes sent.
fn ndjson_values(body: &[u8]) -> Result<Vec<Sent<'_>>, Rejected> {
    let mut values = Vec::new();
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let _: &serde_json::value::RawValue =
            serde_json::from_slice(line).map_err(|e| malformed(&e, Some(i + 1)))?;
        values.push((Some(i + 1), line));
    }
    Ok(values)
}

/// serde_json's error, at the body's line (NDJSON: the line's number; its own line
/// within a line is always 1) and column (in bytes, from 1; 0 for an empty body).
fn malformed(e: &serde_json::Error, line: Option<usize>) -> Rejected {
    let message = e.to_string();
    // serde_json ends its message with " at line L column C": said apart instead.
    let message = match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    };
    Rejected::Malformed {
        line: line.unwrap_or(e.line()),
        column: e.column(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(schema: Option<&Schema>) -> Reader<'_> {
        Reader {
            schema,
            event_time: &EventTime::Message,
            key_field: Some("id"),
        }
    }

    #[test]
    fn an_object_an_array_and_lines_are_records() {
        let r = reader(None);
        let one = r.read(br#"{"id": "a"}"#, Format::Json, 7).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].key.as_deref(), Some(&b"a"[..]));
        assert_eq!(one[0].timestamp_ms, 7);
        let many = r
            .read(br#"[{"id": 1}, {"id": 2}, {}]"#, Format::Json, 7)
            .unwrap();
        assert_eq!(many.len(), 3);
        assert_eq!(many[0].key.as_deref(), Some(&b"1"[..]));
        assert_eq!(many[2].key, None);
        let lines = r
            .read(b"{\"id\": 1}\n\n  \n{\"id\": 2}\n", Format::Ndjson, 7)
            .unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(r.read(b"[]", Format::Json, 7).unwrap().len(), 0);
    }

    #[test]
    fn a_record_keeps_the_bytes_sent() {
        let r = reader(None);
        let sent = br#"{"z": 1, "id": "k", "big": 123456789012345678901234567890}"#;
        let got = r.read(sent, Format::Json, 0).unwrap();
        assert_eq!(got[0].value, sent.to_vec());
        let got = r
            .read(b"[ {\"b\": 1.50, \"a\": null} ]", Format::Json, 0)
            .unwrap();
        assert_eq!(got[0].value, b"{\"b\": 1.50, \"a\": null}".to_vec());
        let null_key = r.read(br#"{"id": null}"#, Format::Json, 0).unwrap();
        assert_eq!(null_key[0].key, None);
    }

    #[test]
    fn broken_json_is_located() {
        let r = reader(None);
        match r.read(b"{\"id\": 1}\n{\"id\": }\n", Format::Ndjson, 0) {
            Err(Rejected::Malformed { line, column, .. }) => assert_eq!((line, column), (2, 8)),
            other => panic!("{other:?}"),
        }
        match r.read(b"[\n {\"id\": 1},\n {\"id\" 2}]", Format::Json, 0) {
            Err(Rejected::Malformed { line, .. }) => assert_eq!(line, 3),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            r.read(b"\"text\"", Format::Json, 0),
            Err(Rejected::Shape(_))
        ));
    }

    #[test]
    fn one_refused_record_refuses_the_request_and_each_is_named() {
        let schema = serde_json::json!({
            "type": "object",
            "required": ["email"],
            "properties": { "email": { "type": "string", "format": "email" } }
        });
        let schema = Schema::compile("user.json".into(), &schema).unwrap();
        let r = reader(Some(&schema));
        let body = br#"[{"email": "a@b.co"}, {"email": "x"}, 5, {}]"#;
        match r.read(body, Format::Json, 0) {
            Err(Rejected::Refused {
                listed,
                count,
                total,
            }) => {
                assert_eq!((count, total), (3, 4));
                let at: Vec<(usize, &str)> = listed
                    .iter()
                    .map(|f| (f.index, f.pointer.as_str()))
                    .collect();
                assert_eq!(at, [(1, "/email"), (2, ""), (3, "")]);
                assert_eq!(listed[0].rule.as_deref(), Some("/properties/email/format"));
                assert!(listed[2].rule.as_deref().unwrap().contains("required"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_event_time_field_is_taken_or_the_record_refused() {
        let et = EventTime::Field {
            field: "at".into(),
            format: crate::sources::event_time::TimeFormat::EpochMs,
        };
        let r = Reader {
            schema: None,
            event_time: &et,
            key_field: Some("/user/id"),
        };
        let ok = r
            .read(br#"{"at": 5, "user": {"id": "u"}}"#, Format::Json, 0)
            .unwrap();
        assert_eq!(
            (ok[0].timestamp_ms, ok[0].key.as_deref()),
            (5, Some(&b"u"[..]))
        );
        match r.read(br#"{"user": {}}"#, Format::Json, 0) {
            Err(Rejected::Refused { listed, .. }) => assert_eq!(listed[0].pointer, "/at"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Format::of("application/json; charset=utf-8"),
            Some(Format::Json)
        );
        assert_eq!(Format::of("Application/X-NDJSON"), Some(Format::Ndjson));
        assert_eq!(Format::of("text/plain"), None);
    }
}
