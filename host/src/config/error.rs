use std::path::PathBuf;

/// A problem with a pipeline file. Every variant names the file; parse errors also the
/// line and column, validation errors the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}{}: `{field}` {message}", path.display(), at_line(line))]
    Invalid {
        path: PathBuf,
        /// The line the key is on (or its table's, for a key not written), once known.
        line: Option<usize>,
        field: String,
        message: String,
    },
}

fn at_line(line: &Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}
