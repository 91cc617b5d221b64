//! What a config's `validate` returns: the field that is wrong and why. The loader
//! puts the section in front (`sinks[1].`) and finds the key's line, so a user reads
//! `pipeline.toml:14: `sinks[1].topic` must not be empty`. A leaf.

/// A field of a config table that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {message}")]
pub struct FieldError {
    /// The key as written in its table: `topic`, `create.replication`, `indexes[0].fields`.
    pub field: String,
    /// What is wrong, as the rest of a sentence: "must not be empty".
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error for a table nested under `table` (`create` + `partitions` →
    /// `create.partitions`).
    pub fn within(self, table: &str) -> Self {
        FieldError {
            field: format!("{table}.{}", self.field),
            ..self
        }
    }
}
