//! Records as column arrays: each record's JSON fields, converted to their columns'
//! types, appended to one array per column (what `UNNEST` takes). A field that does
//! not convert names the column, the value and the row's key.

use serde::Deserialize;
use serde_json::Value;
use tokio_postgres::types::ToSql;

/// The column types a table may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PgType {
    /// A JSON string (numbers and booleans as their JSON text).
    #[serde(alias = "varchar")]
    Text,
    /// A JSON string holding a UUID.
    Uuid,
    /// An RFC 3339 string or milliseconds since the epoch (`timestamptz`).
    #[serde(alias = "timestamp")]
    Timestamptz,
    /// A whole number that fits 32 bits.
    #[serde(alias = "int")]
    Integer,
    /// A whole number that fits 64 bits.
    Bigint,
    /// Any JSON number.
    #[serde(alias = "double precision", alias = "float8")]
    Double,
    Boolean,
    /// Any JSON value, kept as it is.
    Jsonb,
}

impl PgType {
    pub fn sql(self) -> &'static str {
        match self {
            PgType::Text => "text",
            PgType::Uuid => "uuid",
            PgType::Timestamptz => "timestamptz",
            PgType::Integer => "integer",
            PgType::Bigint => "bigint",
            PgType::Double => "double precision",
            PgType::Boolean => "boolean",
            PgType::Jsonb => "jsonb",
        }
    }

    /// What the server's catalog calls it (`information_schema.columns.data_type`).
    pub fn catalog_name(self) -> &'static str {
        match self {
            PgType::Timestamptz => "timestamp with time zone",
            other => other.sql(),
        }
    }
}

/// One column's values for a statement.
#[derive(Debug)]
pub enum Column {
    Text(Vec<Option<String>>),
    Uuid(Vec<Option<uuid::Uuid>>),
    Timestamptz(Vec<Option<chrono::DateTime<chrono::Utc>>>),
    Integer(Vec<Option<i32>>),
    Bigint(Vec<Option<i64>>),
    Double(Vec<Option<f64>>),
    Boolean(Vec<Option<bool>>),
    Jsonb(Vec<Option<Value>>),
}

impl Column {
    pub fn new(t: PgType, capacity: usize) -> Column {
        match t {
            PgType::Text => Column::Text(Vec::with_capacity(capacity)),
            PgType::Uuid => Column::Uuid(Vec::with_capacity(capacity)),
            PgType::Timestamptz => Column::Timestamptz(Vec::with_capacity(capacity)),
            PgType::Integer => Column::Integer(Vec::with_capacity(capacity)),
            PgType::Bigint => Column::Bigint(Vec::with_capacity(capacity)),
            PgType::Double => Column::Double(Vec::with_capacity(capacity)),
            PgType::Boolean => Column::Boolean(Vec::with_capacity(capacity)),
            PgType::Jsonb => Column::Jsonb(Vec::with_capacity(capacity)),
        }
    }

    pub fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Column::Text(v) => v,
            Column::Uuid(v) => v,
            Column::Timestamptz(v) => v,
            Column::Integer(v) => v,
            Column::Bigint(v) => v,
            Column::Double(v) => v,
            Column::Boolean(v) => v,
            Column::Jsonb(v) => v,
        }
    }

    /// Append `value` (absent or JSON null: SQL NULL), or say why it does not fit.
    fn push(&mut self, value: Option<&Value>) -> Result<(), String> {
        let v = value.filter(|v| !v.is_null());
        let bad = |what: &str| {
            Err(format!(
                "{} does not fit {what}",
                v.map_or("null".into(), |v| v.to_string())
            ))
        };
        match self {
            Column::Text(c) => c.push(v.map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })),
            Column::Uuid(c) => c.push(match v {
                None => None,
                Some(Value::String(s)) => match uuid::Uuid::parse_str(s) {
                    Ok(u) => Some(u),
                    Err(_) => return bad("a uuid"),
                },
                Some(_) => return bad("a uuid"),
            }),
            Column::Timestamptz(c) => c.push(match v {
                None => None,
                Some(Value::String(s)) => match chrono::DateTime::parse_from_rfc3339(s) {
                    Ok(t) => Some(t.to_utc()),
                    Err(_) => return bad("a timestamptz (RFC 3339, or ms since the epoch)"),
                },
                Some(Value::Number(n)) => {
                    match n.as_i64().and_then(chrono::DateTime::from_timestamp_millis) {
                        Some(t) => Some(t),
                        None => return bad("a timestamptz (ms since the epoch)"),
                    }
                }
                Some(_) => return bad("a timestamptz"),
            }),
            Column::Integer(c) => c.push(match v {
                None => None,
                Some(v) => match v.as_i64().and_then(|n| i32::try_from(n).ok()) {
                    Some(n) => Some(n),
                    None => return bad("an integer (32 bits)"),
                },
            }),
            Column::Bigint(c) => c.push(match v {
                None => None,
                Some(v) => match v.as_i64() {
                    Some(n) => Some(n),
                    None => return bad("a bigint"),
                },
            }),
            Column::Double(c) => c.push(match v {
                None => None,
                Some(v) => match v.as_f64() {
                    Some(n) => Some(n),
                    None => return bad("a double precision"),
                },
            }),
            Column::Boolean(c) => c.push(match v {
                None => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(_) => return bad("a boolean"),
            }),
            Column::Jsonb(c) => c.push(v.cloned()),
        }
        Ok(())
    }

    /// The newest value, canonically written (a uuid in any case, a time in any
    /// zone, the same row either way): what tells keys apart.
    fn last_identity(&self) -> String {
        match self {
            Column::Text(v) => format!("{:?}", v.last()),
            Column::Uuid(v) => format!("{:?}", v.last()),
            Column::Timestamptz(v) => format!("{:?}", v.last()),
            Column::Integer(v) => format!("{:?}", v.last()),
            Column::Bigint(v) => format!("{:?}", v.last()),
            Column::Double(v) => format!("{:?}", v.last()),
            Column::Boolean(v) => format!("{:?}", v.last()),
            Column::Jsonb(v) => format!("{:?}", v.last()),
        }
    }

    fn pop(&mut self) {
        match self {
            Column::Text(v) => drop(v.pop()),
            Column::Uuid(v) => drop(v.pop()),
            Column::Timestamptz(v) => drop(v.pop()),
            Column::Integer(v) => drop(v.pop()),
            Column::Bigint(v) => drop(v.pop()),
            Column::Double(v) => drop(v.pop()),
            Column::Boolean(v) => drop(v.pop()),
            Column::Jsonb(v) => drop(v.pop()),
        }
    }
}

/// A row appended: its key as messages show it, and as its converted values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub key: String,
    pub identity: String,
}

/// A record as a row: its key (for messages and for keeping the last of a batch's
/// records per key) and its values appended to `columns`.
pub struct Rows<'a> {
    layout: &'a [(String, PgType)],
    key: &'a [usize],
    pub columns: Vec<Column>,
}

impl<'a> Rows<'a> {
    pub fn new(layout: &'a [(String, PgType)], key: &'a [usize], capacity: usize) -> Self {
        Rows {
            layout,
            key,
            columns: layout
                .iter()
                .map(|(_, t)| Column::new(*t, capacity))
                .collect(),
        }
    }

    /// Append the record whose value is `json`; returns its key as text (`id=...`)
    /// and as the converted values (two records with the same one are the same row),
    /// or why it cannot be a row (naming the column, the value and the key).
    pub fn push(&mut self, json: &[u8]) -> Result<Pushed, String> {
        let object: serde_json::Map<String, Value> = serde_json::from_slice(json)
            .map_err(|e| format!("the record is not a JSON object: {e}"))?;
        let key = describe_key(self.layout, self.key, &object);
        for (i, (name, t)) in self.layout.iter().enumerate() {
            let value = object.get(name);
            if self.key.contains(&i) && value.is_none_or(Value::is_null) {
                self.truncate(i);
                return Err(format!("row {key}: key column `{name}` is missing or null"));
            }
            if let Err(why) = self.columns[i].push(value) {
                self.truncate(i);
                return Err(format!("row {key}: column `{name}` ({}): {why}", t.sql()));
            }
        }
        let identity = self
            .key
            .iter()
            .map(|&k| self.columns[k].last_identity())
            .collect::<Vec<_>>()
            .join("\u{0}");
        Ok(Pushed { key, identity })
    }

    /// Undo a half-appended row: the first `filled` columns got a value.
    fn truncate(&mut self, filled: usize) {
        for c in &mut self.columns[..filled] {
            c.pop();
        }
    }

    pub fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.columns.iter().map(Column::as_sql).collect()
    }
}

/// `id=5f2...` (or `a=1,b=x`): how messages name a row.
fn describe_key(
    layout: &[(String, PgType)],
    key: &[usize],
    object: &serde_json::Map<String, Value>,
) -> String {
    key.iter()
        .map(|&i| {
            let name = &layout[i].0;
            match object.get(name) {
                Some(Value::String(s)) => format!("{name}={s}"),
                Some(v) => format!("{name}={v}"),
                None => format!("{name}=(missing)"),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_that_does_not_fit_names_its_column_value_and_key() {
        let layout = vec![
            ("id".to_owned(), PgType::Uuid),
            ("n".to_owned(), PgType::Integer),
            ("at".to_owned(), PgType::Timestamptz),
        ];
        let key = [0];
        let mut rows = Rows::new(&layout, &key, 4);
        let id = "0b7b7a2e-6a7e-4d6e-9a2b-7c1d2e3f4a5b";
        let first = rows
            .push(format!(r#"{{"id":"{id}","n":7,"at":1000}}"#).as_bytes())
            .unwrap();
        assert_eq!(first.key, format!("id={id}"));
        let err = rows
            .push(format!(r#"{{"id":"{id}","n":3000000000}}"#).as_bytes())
            .unwrap_err();
        assert!(
            err.contains(&format!(
                "row id={id}: column `n` (integer): 3000000000 does not fit"
            )),
            "{err}"
        );
        let err = rows.push(br#"{"n":1}"#).unwrap_err();
        assert!(err.contains("key column `id` is missing"), "{err}");
        assert!(rows.push(b"[1]").unwrap_err().contains("not a JSON object"));
        // The same uuid in capitals is the same row.
        let again = rows
            .push(format!(r#"{{"id":"{}","n":8}}"#, id.to_uppercase()).as_bytes())
            .unwrap();
        assert_eq!(again.identity, first.identity);
        rows.truncate(3);
        // The refused rows left nothing behind: every column holds one row.
        match (&rows.columns[0], &rows.columns[1], &rows.columns[2]) {
            (Column::Uuid(a), Column::Integer(b), Column::Timestamptz(c)) => {
                assert_eq!((a.len(), b.len(), c.len()), (1, 1, 1));
                assert_eq!(b[0], Some(7));
                assert_eq!(c[0].unwrap().timestamp_millis(), 1000);
            }
            _ => panic!(),
        }
    }
}
