//! Schema types, compatibility levels, and the check between two schemas.
//!
//! Avro: apache-avro's `SchemaCompatibility::can_read` (the specification's schema
//! resolution). JSON Schema: a structural check of object schemas, enough for a
//! record's evolution (a field added or dropped, made required, retyped); the genuine
//! registry's rules are richer.

use apache_avro::schema_compatibility::SchemaCompatibility;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Kind {
    Avro,
    Json,
}

impl Kind {
    /// `schemaType` as a request gives it (absent: AVRO).
    pub fn from_request(t: Option<&str>) -> Result<Kind, String> {
        match t.unwrap_or("AVRO") {
            "AVRO" => Ok(Kind::Avro),
            "JSON" => Ok(Kind::Json),
            other => Err(format!(
                "schemaType {other} is not supported by this test registry (AVRO, JSON)"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Avro => "AVRO",
            Kind::Json => "JSON",
        }
    }

    /// The schema's canonical form, or why it is not a schema.
    pub fn canonical(self, text: &str) -> Result<String, String> {
        match self {
            Kind::Avro => apache_avro::Schema::parse_str(text)
                .map(|s| s.canonical_form())
                .map_err(|e| format!("Invalid schema: {e}")),
            Kind::Json => {
                let v: serde_json::Value = serde_json::from_str(text)
                    .map_err(|e| format!("Invalid schema: not JSON ({e})"))?;
                if !(v.is_object() || v.is_boolean()) {
                    return Err("Invalid schema: a JSON Schema is an object or a boolean".into());
                }
                Ok(v.to_string())
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Level {
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive
        )
    }

    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    pub fn parse(text: &str) -> Option<Level> {
        serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
    }
}

/// Whether `new` may follow `old` under `level`, or why not.
pub fn check(kind: Kind, level: Level, old: &str, new: &str) -> Result<(), String> {
    let backward = matches!(
        level,
        Level::Backward | Level::BackwardTransitive | Level::Full | Level::FullTransitive
    );
    let forward = matches!(
        level,
        Level::Forward | Level::ForwardTransitive | Level::Full | Level::FullTransitive
    );
    if backward {
        reads(kind, new, old).map_err(|e| {
            format!("the new schema cannot read data written with the old one ({e})")
        })?;
    }
    if forward {
        reads(kind, old, new).map_err(|e| {
            format!("the old schema cannot read data written with the new one ({e})")
        })?;
    }
    Ok(())
}

/// Whether a reader with schema `reader` reads what was written with `writer`.
fn reads(kind: Kind, reader: &str, writer: &str) -> Result<(), String> {
    match kind {
        Kind::Avro => {
            let r = apache_avro::Schema::parse_str(reader).map_err(|e| e.to_string())?;
            let w = apache_avro::Schema::parse_str(writer).map_err(|e| e.to_string())?;
            SchemaCompatibility::can_read(&w, &r).map_err(|e| e.to_string())
        }
        Kind::Json => {
            let r: serde_json::Value = serde_json::from_str(reader).map_err(|e| e.to_string())?;
            let w: serde_json::Value = serde_json::from_str(writer).map_err(|e| e.to_string())?;
            json_reads(&r, &w)
        }
    }
}

/// Every object valid under `writer` is valid under `reader`, as far as an object
/// schema's `required`, `properties` types and `additionalProperties` tell.
fn json_reads(reader: &serde_json::Value, writer: &serde_json::Value) -> Result<(), String> {
    let names = |v: &serde_json::Value, key: &str| -> Vec<String> {
        match v.get(key) {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            Some(serde_json::Value::Object(o)) => o.keys().cloned().collect(),
            _ => Vec::new(),
        }
    };
    let writer_required = names(writer, "required");
    if let Some(extra) = names(reader, "required")
        .into_iter()
        .find(|r| !writer_required.contains(r))
    {
        return Err(format!(
            "`{extra}` is required by the reader, optional or absent for the writer"
        ));
    }
    let (rp, wp) = (reader.get("properties"), writer.get("properties"));
    for name in names(writer, "properties") {
        let r_type = rp.and_then(|p| p.get(&name)).and_then(|s| s.get("type"));
        let w_type = wp.and_then(|p| p.get(&name)).and_then(|s| s.get("type"));
        if let (Some(r), Some(w)) = (r_type, w_type) {
            if r != w {
                return Err(format!(
                    "`{name}` is {w} for the writer, {r} for the reader"
                ));
            }
        }
        let closed = reader.get("additionalProperties") == Some(&serde_json::Value::Bool(false));
        if closed && rp.and_then(|p| p.get(&name)).is_none() {
            return Err(format!(
                "`{name}` is written, and the reader allows no property it does not name"
            ));
        }
    }
    let writer_open = writer.get("additionalProperties") != Some(&serde_json::Value::Bool(false));
    let reader_closed = reader.get("additionalProperties") == Some(&serde_json::Value::Bool(false));
    if writer_open && reader_closed {
        return Err("the writer allows any property, the reader none it does not name".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"string"}]}"#;
    const V2_DEFAULT: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"string"},{"name":"nat","type":"string","default":"?"}]}"#;
    const V2_REQUIRED: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"string"},{"name":"nat","type":"string"}]}"#;

    #[test]
    fn a_field_added_with_a_default_is_backward_and_one_without_is_not() {
        assert!(check(Kind::Avro, Level::Backward, V1, V2_DEFAULT).is_ok());
        assert!(check(Kind::Avro, Level::Backward, V1, V2_REQUIRED).is_err());
        assert!(check(Kind::Avro, Level::Forward, V1, V2_REQUIRED).is_ok());
        assert!(check(Kind::Avro, Level::Full, V1, V2_DEFAULT).is_ok());
        assert!(check(Kind::Avro, Level::None, V1, r#""int""#).is_ok());
        let j1 = r#"{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}"#;
        let j2 = r#"{"type":"object","properties":{"id":{"type":"string"},"nat":{"type":"string"}},"required":["id","nat"]}"#;
        assert!(
            check(Kind::Json, Level::Backward, j1, j2).is_err(),
            "nat newly required"
        );
        assert!(check(Kind::Json, Level::Forward, j1, j2).is_ok());
        assert!(Kind::Avro.canonical("{").is_err());
        assert_eq!(Level::parse("FULL_TRANSITIVE"), Some(Level::FullTransitive));
        assert_eq!(Level::Backward.name(), "BACKWARD");
    }
}
