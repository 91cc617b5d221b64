//! A table's rows from text: JSON lines, CSV, or JSON objects one by one (a query's
//! rows as `row_to_json`), each keyed by a field (a name or a JSON pointer) and
//! stored whole, or as one field's value.

use crate::plugin::lookup::Rows;

/// Which field is the key, and which (if any) the value.
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    pub key: &'a str,
    pub value: Option<&'a str>,
    pub max_bytes: usize,
}

/// Rows being built, each checked against the cap as it comes.
pub struct Builder<'a> {
    shape: Shape<'a>,
    rows: Rows,
}

impl<'a> Builder<'a> {
    pub fn new(shape: Shape<'a>) -> Self {
        Builder {
            shape,
            rows: Rows::default(),
        }
    }

    /// One row, a JSON object (`text` is stored as it is when the whole row is the
    /// value). `at` says where it is, for messages.
    pub fn json(&mut self, text: &[u8], at: &dyn Fn() -> String) -> Result<(), String> {
        let row: serde_json::Value =
            serde_json::from_slice(text).map_err(|e| format!("{}: not JSON ({e})", at()))?;
        if !row.is_object() {
            return Err(format!("{}: not a JSON object", at()));
        }
        let value = match self.shape.value {
            None => text.to_vec(),
            Some(field) => match crate::record::key_from_json(&row, field) {
                Some(v) => v,
                None => return Err(format!("{}: no `{field}` (the value field)", at())),
            },
        };
        self.insert(&row, value, at)
    }

    /// One CSV record, given the header: stored as a JSON object of its columns (all
    /// text), or as the `value` column's text.
    pub fn csv(
        &mut self,
        header: &csv::StringRecord,
        record: &csv::StringRecord,
        at: &dyn Fn() -> String,
    ) -> Result<(), String> {
        let mut object = serde_json::Map::new();
        for (name, cell) in header.iter().zip(record.iter()) {
            object.insert(name.to_owned(), cell.into());
        }
        let row = serde_json::Value::Object(object);
        let value = match self.shape.value {
            None => row.to_string().into_bytes(),
            Some(field) => match row.get(field).and_then(|v| v.as_str()) {
                Some(v) => v.as_bytes().to_vec(),
                None => return Err(format!("{}: no column `{field}` (the value column)", at())),
            },
        };
        self.insert(&row, value, at)
    }

    fn insert(
        &mut self,
        row: &serde_json::Value,
        value: Vec<u8>,
        at: &dyn Fn() -> String,
    ) -> Result<(), String> {
        let key = crate::record::key_from_json(row, self.shape.key)
            .ok_or_else(|| format!("{}: no `{}` (the key field)", at(), self.shape.key))?;
        self.rows.set(key, Some(value));
        if self.rows.bytes() > self.shape.max_bytes {
            return Err(format!(
                "{}: the table passes its max_mb = {} ({} rows so far): raise max_mb, or keep fewer or smaller rows (value = \"...\" keeps one field)",
                at(),
                self.shape.max_bytes / (1024 * 1024),
                self.rows.len()
            ));
        }
        Ok(())
    }

    pub fn finish(self) -> Rows {
        self.rows
    }
}
