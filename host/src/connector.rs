//! What sources and sinks have in common: how they report errors. A leaf.

/// Whether retrying could help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Temporary (a timeout, a server restarting): the engine retries with backoff.
    Retryable,
    /// Retrying cannot help (bad path, refused credentials, a disk that is full): the
    /// pipeline stops with exit code 1, naming the connector and the cause.
    Fatal,
}

/// An error of a source or sink, naming it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{connector}: {message}")]
pub struct ConnectorError {
    /// E.g. `sinks[1] (kafka sink users_created)`.
    pub connector: String,
    pub message: String,
    pub kind: ErrorKind,
}

impl ConnectorError {
    pub fn fatal(connector: impl std::fmt::Display, message: impl std::fmt::Display) -> Self {
        ConnectorError {
            connector: connector.to_string(),
            message: message.to_string(),
            kind: ErrorKind::Fatal,
        }
    }

    pub fn retryable(connector: impl std::fmt::Display, message: impl std::fmt::Display) -> Self {
        ConnectorError {
            connector: connector.to_string(),
            message: message.to_string(),
            kind: ErrorKind::Retryable,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Retryable
    }
}
