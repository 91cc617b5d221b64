use super::{json_line, Input, SinkError};
use crate::record::Record;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub input: Input,
    /// JSON lines are appended here; parent directories are created.
    pub path: PathBuf,
}

/// JSON lines, appended; flushed and `fsync`ed at every checkpoint and at shutdown.
/// Every I/O error is fatal: a full disk or a lost permission does not heal by itself.
pub struct FileSink {
    name: String,
    path: PathBuf,
    file: tokio::io::BufWriter<tokio::fs::File>,
    buf: Vec<u8>,
}

impl FileSink {
    /// `name` names the sink in errors (e.g. `sinks[0] (file out/users.jsonl)`).
    pub async fn open(path: &Path, name: &str) -> Result<Self, SinkError> {
        let err = |e: std::io::Error| SinkError::fatal(name, format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(err)?;
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .map_err(err)?;
        Ok(FileSink {
            name: name.to_owned(),
            path: path.to_owned(),
            file: tokio::io::BufWriter::with_capacity(256 * 1024, file),
            buf: Vec::new(),
        })
    }

    fn err(&self, e: std::io::Error) -> SinkError {
        SinkError::fatal(&self.name, format!("{}: {e}", self.path.display()))
    }

    pub async fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        self.buf.clear();
        for r in records {
            json_line(&r.value, &mut self.buf);
        }
        let result = self.file.write_all(&self.buf).await;
        result.map_err(|e| self.err(e))
    }

    pub async fn sync(&mut self) -> Result<(), SinkError> {
        let flushed = self.file.flush().await;
        flushed.map_err(|e| self.err(e))?;
        let synced = self.file.get_ref().sync_data().await;
        synced.map_err(|e| self.err(e))
    }
}
