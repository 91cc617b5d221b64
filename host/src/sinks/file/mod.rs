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
        let owned = path.to_owned();
        let dropped = tokio::task::spawn_blocking(move || cut_torn_tail(&owned))
            .await
            .map_err(|e| SinkError::fatal(name, e))?
            .map_err(err)?;
        if dropped > 0 {
            tracing::warn!(
                sink = name,
                "{} ended in a torn line (a crash or a full disk during a write): dropped its last {dropped} bytes; those records were never acknowledged, so the source sends them again",
                path.display()
            );
        }
        let is_new = !path.exists();
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .map_err(err)?;
        if is_new {
            // A new file's name is durable only once its folder is synced: without
            // this a crash could lose the file with records already acknowledged.
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let folder = tokio::fs::File::open(dir).await.map_err(err)?;
            folder.sync_all().await.map_err(err)?;
        }
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

/// If the regular file at `path` does not end with a newline, cut it back to just after
/// its last one, so appending starts on a line of its own; returns the bytes dropped.
/// Everything before the last complete line was synced at a checkpoint, so what is
/// dropped was never acknowledged to the source.
fn cut_torn_tail(path: &Path) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() == 0 {
        return Ok(0);
    }
    let len = meta.len();
    let mut end = len;
    let mut block = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(block.len() as u64);
        let chunk = &mut block[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            let keep = start + i as u64 + 1;
            if keep == len {
                return Ok(0);
            }
            file.set_len(keep)?;
            file.sync_all()?;
            return Ok(len - keep);
        }
        end = start;
    }
    file.set_len(0)?;
    file.sync_all()?;
    Ok(len)
}

/// Whether a file sink could write `path`, checked without writing anything (for
/// `sluice validate`): not a folder; its nearest existing parent a folder this user
/// may create files in (and the file itself writable, if it exists), on a filesystem
/// mounted writable.
pub fn check_writable(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!("{} is a folder, not a file", path.display()));
    }
    let writable = |p: &Path| {
        use std::os::unix::ffi::OsStrExt;
        let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: a valid NUL-terminated path; access(2) only reads it.
        unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
    };
    if path.exists() {
        return if writable(path) {
            Ok(())
        } else {
            Err(format!(
                "{} cannot be written: {}",
                path.display(),
                std::io::Error::last_os_error()
            ))
        };
    }
    let mut parent = path.parent();
    while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
        if dir.exists() {
            if !dir.is_dir() {
                return Err(format!("{} is not a folder", dir.display()));
            }
            return if writable(dir) {
                Ok(())
            } else {
                Err(format!(
                    "cannot create {} in {}: {}",
                    path.display(),
                    dir.display(),
                    std::io::Error::last_os_error()
                ))
            };
        }
        parent = dir.parent();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_cut_back_to_the_last_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.jsonl");
        std::fs::write(&path, "{\"a\":1}\n{\"b\":2}\n{\"dob\":\"1949-08-24").unwrap();
        assert_eq!(cut_torn_tail(&path).unwrap(), 18);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n"
        );
        assert_eq!(
            cut_torn_tail(&path).unwrap(),
            0,
            "whole lines are left alone"
        );
        std::fs::write(&path, "no newline at all").unwrap();
        assert_eq!(cut_torn_tail(&path).unwrap(), 17);
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        assert_eq!(cut_torn_tail(&dir.path().join("missing")).unwrap(), 0);
    }
}
