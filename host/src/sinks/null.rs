use super::Input;
use crate::record::Record;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NullConfig {
    #[serde(default)]
    pub input: Input,
    /// A JSON Schema file every record must match before it is written (e.g.
    /// `schemas/user.json`); one that does not is a dead letter naming the path and
    /// rule it breaks.
    #[serde(default)]
    pub schema: Option<std::path::PathBuf>,
}

/// Counts and drops.
#[derive(Debug, Default)]
pub struct NullSink {
    pub records: u64,
}

impl NullSink {
    pub fn write(&mut self, records: &[Record]) {
        self.records += records.len() as u64;
    }
}
