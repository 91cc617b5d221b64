//! A record's JSON fields as a row's column values, each converted to its column's CQL
//! type; a field that does not convert names the column and the value.

use crate::record::PARTITION_HEADER;
use scylla::value::{CqlTimestamp, CqlValue, MaybeUnset};
use serde::Deserialize;
use serde_json::Value;

/// The CQL types a column may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// A JSON string (numbers and booleans are written as their JSON text).
    #[serde(alias = "varchar")]
    Text,
    /// A JSON string holding a UUID.
    Uuid,
    /// An RFC 3339 string (`"2026-01-01T00:00:00Z"`) or milliseconds since the epoch.
    Timestamp,
    /// A whole JSON number that fits 32 bits.
    Int,
    /// A whole JSON number that fits 64 bits.
    Bigint,
    /// Any JSON number.
    Double,
    /// `true` or `false`.
    Boolean,
}

impl ColumnType {
    pub fn cql(self) -> &'static str {
        match self {
            ColumnType::Text => "text",
            ColumnType::Uuid => "uuid",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Int => "int",
            ColumnType::Bigint => "bigint",
            ColumnType::Double => "double",
            ColumnType::Boolean => "boolean",
        }
    }
}

/// One bound value: unset (the field is absent: the column keeps what it had, and
/// no tombstone is written), null (the field is JSON `null`), or a value.
pub type Bound = MaybeUnset<Option<CqlValue>>;

/// The columns of the INSERT, in its order.
#[derive(Debug, Clone)]
pub struct RowShape {
    columns: Vec<(String, ColumnType, bool)>,
    /// The column that takes the record's source partition (window partials).
    partition: Option<usize>,
}

impl RowShape {
    /// `columns`: name, type, and whether it is part of the primary key.
    pub fn new(columns: impl IntoIterator<Item = (String, ColumnType, bool)>) -> Self {
        RowShape {
            columns: columns.into_iter().collect(),
            partition: None,
        }
    }

    /// Fill `column` from the record's source partition instead of a field: window
    /// partials become rows keyed by (window, partition), one per partition.
    pub fn with_partition_column(mut self, column: &str) -> Self {
        self.partition = self.columns.iter().position(|(n, _, _)| n == column);
        self
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|(n, _, _)| n.as_str())
    }

    /// The values to bind for `json` (and, with a partition column, the record's
    /// source partition), or why the record cannot be a row.
    pub fn values(&self, json: &[u8], partition: Option<&str>) -> Result<Vec<Bound>, String> {
        // Only the columns' fields are parsed into values (the rest are skipped
        // unbuilt), straight into their slots: no map of the whole record.
        let mut fields: Vec<Option<Value>> = vec![None; self.columns.len()];
        let mut de = serde_json::Deserializer::from_slice(json);
        serde::de::DeserializeSeed::deserialize(
            Fields {
                shape: self,
                fields: &mut fields,
            },
            &mut de,
        )
        .and_then(|()| de.end())
        .map_err(|e| format!("the record is not a JSON object: {e}"))?;
        if let Some(slot) = self.partition {
            let partition = partition.ok_or_else(|| {
                format!(
                    "partition_column takes window results with a {PARTITION_HEADER} header ([window] output = \"partials\"); this record has none"
                )
            })?;
            fields[slot] = Some(Value::String(partition.to_owned()));
        }
        self.columns
            .iter()
            .zip(fields)
            .map(|((name, ty, key), field)| match field {
                None if *key => Err(format!("primary key column `{name}` is missing")),
                Some(Value::Null) if *key => Err(format!("primary key column `{name}` is null")),
                None => Ok(MaybeUnset::Unset),
                Some(Value::Null) => Ok(MaybeUnset::Set(None)),
                // The common case, moved rather than copied.
                Some(Value::String(s)) if *ty == ColumnType::Text => {
                    Ok(MaybeUnset::Set(Some(CqlValue::Text(s))))
                }
                Some(v) => convert(*ty, &v)
                    .map(|v| MaybeUnset::Set(Some(v)))
                    .map_err(|why| {
                        format!("column `{name}` ({}): {} {why}", ty.cql(), preview(&v))
                    }),
            })
            .collect()
    }
}

/// Reads a JSON object, keeping the value of each field that is a column (the last,
/// if a key repeats) and skipping the others.
struct Fields<'a> {
    shape: &'a RowShape,
    fields: &'a mut [Option<Value>],
}

impl<'de> serde::de::DeserializeSeed<'de> for Fields<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Fields<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.shape.columns.iter().position(|(n, _, _)| *n == *key) {
                Some(i) => self.fields[i] = Some(map.next_value()?),
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A value as the message shows it: its JSON, cut at 120 characters.
fn preview(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(120) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

fn convert(ty: ColumnType, v: &Value) -> Result<CqlValue, String> {
    let whole = |v: &Value| v.as_i64().ok_or_else(|| "is not a whole number".to_owned());
    Ok(match (ty, v) {
        (ColumnType::Text, Value::String(s)) => CqlValue::Text(s.clone()),
        (ColumnType::Text, Value::Number(_) | Value::Bool(_)) => CqlValue::Text(v.to_string()),
        (ColumnType::Text, _) => return Err("is not text".into()),
        (ColumnType::Uuid, Value::String(s)) => {
            CqlValue::Uuid(uuid::Uuid::parse_str(s).map_err(|e| format!("is not a UUID ({e})"))?)
        }
        (ColumnType::Timestamp, Value::String(s)) => {
            let t = chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|e| format!("is not an RFC 3339 time ({e})"))?;
            CqlValue::Timestamp(CqlTimestamp(t.timestamp_millis()))
        }
        (ColumnType::Timestamp, Value::Number(_)) => CqlValue::Timestamp(CqlTimestamp(
            whole(v).map_err(|_| "is not whole milliseconds since the epoch".to_owned())?,
        )),
        (ColumnType::Int, Value::Number(_)) => CqlValue::Int(
            i32::try_from(whole(v)?).map_err(|_| "does not fit an int (32 bits)".to_owned())?,
        ),
        (ColumnType::Bigint, Value::Number(_)) => CqlValue::BigInt(whole(v)?),
        (ColumnType::Double, Value::Number(n)) => {
            CqlValue::Double(n.as_f64().ok_or("is not a number")?)
        }
        (ColumnType::Boolean, Value::Bool(b)) => CqlValue::Boolean(*b),
        (ColumnType::Uuid, _) => return Err("is not a UUID string".into()),
        (ColumnType::Timestamp, _) => return Err("is not a time".into()),
        (ColumnType::Boolean, _) => return Err("is not true or false".into()),
        (ColumnType::Int | ColumnType::Bigint | ColumnType::Double, _) => {
            return Err("is not a number".into())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `MaybeUnset` has no `PartialEq`: `None` is unset.
    fn plain(row: Vec<Bound>) -> Vec<Option<Option<CqlValue>>> {
        row.into_iter()
            .map(|v| match v {
                MaybeUnset::Unset => None,
                MaybeUnset::Set(v) => Some(v),
            })
            .collect()
    }

    fn shape() -> RowShape {
        RowShape::new([
            ("id".into(), ColumnType::Uuid, true),
            ("name".into(), ColumnType::Text, false),
            ("at".into(), ColumnType::Timestamp, false),
            ("n".into(), ColumnType::Int, false),
            ("big".into(), ColumnType::Bigint, false),
            ("x".into(), ColumnType::Double, false),
            ("ok".into(), ColumnType::Boolean, false),
        ])
    }

    #[test]
    fn fields_convert_to_their_columns_types() {
        let row = shape()
            .values(br#"{"id":"6A3B2C1D-0000-4000-8000-000000000001","name":7,"at":"2026-01-01T00:00:01.5Z","n":-3,"big":9007199254740993,"x":1,"ok":true,"extra":1}"#, None)
            .unwrap();
        let set = |v: CqlValue| Some(Some(v));
        assert_eq!(
            plain(row),
            vec![
                set(CqlValue::Uuid(
                    "6a3b2c1d-0000-4000-8000-000000000001".parse().unwrap()
                )),
                set(CqlValue::Text("7".into())),
                set(CqlValue::Timestamp(CqlTimestamp(1_767_225_601_500))),
                set(CqlValue::Int(-3)),
                set(CqlValue::BigInt(9_007_199_254_740_993)),
                set(CqlValue::Double(1.0)),
                set(CqlValue::Boolean(true)),
            ]
        );
    }

    #[test]
    fn absent_is_unset_and_null_is_null_except_in_the_key() {
        let row = shape()
            .values(
                br#"{"id":"6a3b2c1d-0000-4000-8000-000000000001","name":null}"#,
                None,
            )
            .unwrap();
        let row = plain(row);
        assert_eq!(row[1], Some(None), "null");
        assert_eq!(row[2], None, "unset");
        assert_eq!(
            shape().values(br#"{"name":"x"}"#, None).unwrap_err(),
            "primary key column `id` is missing"
        );
        assert_eq!(
            shape().values(br#"{"id":null}"#, None).unwrap_err(),
            "primary key column `id` is null"
        );
    }

    #[test]
    fn a_partition_column_takes_the_records_partition_not_its_field() {
        let shape = RowShape::new([
            ("window_start".into(), ColumnType::Timestamp, true),
            ("partition".into(), ColumnType::Text, true),
            ("n".into(), ColumnType::Bigint, false),
        ])
        .with_partition_column("partition");
        let json = br#"{"window_start":"2026-01-01T00:00:00Z","partition":"x","n":3}"#;
        let row = plain(shape.values(json, Some("users_created-2")).unwrap());
        assert_eq!(row[1], Some(Some(CqlValue::Text("users_created-2".into()))));
        let err = shape.values(json, None).unwrap_err();
        assert!(err.contains("output = \"partials\""), "{err}");
    }

    #[test]
    fn a_field_that_does_not_convert_names_the_column_and_value() {
        let id = r#""id":"6a3b2c1d-0000-4000-8000-000000000001""#;
        let cases = [
            (
                r#"{"id":"not-a-uuid"}"#.to_owned(),
                "column `id` (uuid): \"not-a-uuid\" is not a UUID",
            ),
            (
                format!(r#"{{{id},"n":3000000000}}"#),
                "column `n` (int): 3000000000 does not fit an int (32 bits)",
            ),
            (
                format!(r#"{{{id},"n":1.5}}"#),
                "column `n` (int): 1.5 is not a whole number",
            ),
            (
                format!(r#"{{{id},"at":"yesterday"}}"#),
                "column `at` (timestamp): \"yesterday\" is not an RFC 3339 time",
            ),
            (
                format!(r#"{{{id},"ok":"yes"}}"#),
                "column `ok` (boolean): \"yes\" is not true or false",
            ),
            (
                format!(r#"{{{id},"name":{{"a":1}}}}"#),
                "column `name` (text): {\"a\":1} is not text",
            ),
            (
                format!(r#"{{{id},"x":"1.5"}}"#),
                "column `x` (double): \"1.5\" is not a number",
            ),
            ("[1,2]".to_owned(), "the record is not a JSON object"),
        ];
        for (json, expected) in cases {
            let err = shape().values(json.as_bytes(), None).unwrap_err();
            assert!(err.starts_with(expected), "{json}: {err}");
        }
    }
}
