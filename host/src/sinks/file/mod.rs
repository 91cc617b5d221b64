//! `type = "file"`: JSON lines appended to a file; exact across crashes with a
//! source that resumes ([`checkpoint`]).

mod checkpoint;

use super::{json_line, Delivery, Input, SinkContext, SinkError};
use crate::field_error::FieldError;
use crate::record::Batch;
use checkpoint::Checkpoints;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// JSON lines are appended here; parent directories are created.
    pub path: PathBuf,
}

/// JSON lines, appended; flushed and `fsync`ed at every checkpoint and at shutdown.
/// Every I/O error is fatal: a full disk or a lost permission does not heal by itself.
///
/// With a source that resumes, each checkpoint is recorded ([`checkpoint`]), and a
/// restart cuts the file back to the last one and does not write again the records
/// already in it: after a crash the file holds every record once.
pub struct FileSink {
    name: String,
    path: PathBuf,
    file: tokio::io::BufWriter<tokio::fs::File>,
    buf: Vec<u8>,
    /// Bytes handed to the file so far (written or still buffered).
    length: u64,
    checkpoints: Option<Checkpoints>,
    /// Records skipped as already written, at the last checkpoint (to log news only).
    skipped_told: u64,
    /// The file, locked when checkpointed: a second writer's lines would be taken
    /// by the cut back at a restart.
    _locked: std::fs::File,
}

/// What a restart may do with a file sink's file, which follows from what it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Records: cut back to the last checkpoint, and a record sent again recognised
    /// by its position (positions grow per partition).
    CutAndSkipReplays,
    /// Window results: cut back, not recognised (a window's position does not grow
    /// from one window to the next).
    CutBack,
    /// Dead letters: neither (several hosts may share the file).
    Neither,
}

impl From<Input> for Recovery {
    fn from(input: Input) -> Self {
        match input {
            Input::Records => Recovery::CutAndSkipReplays,
            Input::Windows => Recovery::CutBack,
        }
    }
}

impl FileSink {
    /// `ctx.name` names the sink in errors (e.g. `sinks[0] (file out/users.jsonl)`).
    /// `recovery`: what a restart may do with the file.
    pub async fn open(
        path: &Path,
        ctx: &SinkContext,
        recovery: Recovery,
    ) -> Result<Self, SinkError> {
        let name = ctx.name.as_str();
        let err = |e: std::io::Error| SinkError::fatal(name, format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(err)?;
        }
        let is_new = !path.exists();
        // Dead letters are not checkpointed: hosts of one group may share their file.
        let state_dir = ctx
            .state_dir
            .clone()
            .filter(|_| recovery != Recovery::Neither);
        let (owned, partitions) = (path.to_owned(), ctx.partitions.clone());
        let opened = tokio::task::spawn_blocking(move || {
            open_locked(
                &owned,
                state_dir.as_deref(),
                partitions,
                recovery == Recovery::CutAndSkipReplays,
            )
        })
        .await
        .map_err(|e| SinkError::fatal(name, e))?;
        let (locked, length, checkpoints) = opened.map_err(|e| match e {
            Opened::Io(e) => err(e),
            Opened::Other(m) => SinkError::fatal(name, m),
        })?;
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
        let file = tokio::fs::File::from_std(locked.try_clone().map_err(err)?);
        Ok(FileSink {
            name: name.to_owned(),
            path: path.to_owned(),
            file: tokio::io::BufWriter::with_capacity(256 * 1024, file),
            buf: Vec::new(),
            length,
            checkpoints,
            skipped_told: 0,
            _locked: locked,
        })
    }

    fn err(&self, e: std::io::Error) -> SinkError {
        SinkError::fatal(&self.name, format!("{}: {e}", self.path.display()))
    }

    pub async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        self.buf.clear();
        for (r, &position) in batch.records.iter().zip(&batch.positions) {
            if let Some(c) = &mut self.checkpoints {
                if c.written_before(position) {
                    continue;
                }
                c.wrote(position);
            }
            json_line(&r.value, &mut self.buf);
        }
        self.length += self.buf.len() as u64;
        let result = self.file.write_all(&self.buf).await;
        result.map_err(|e| self.err(e))
    }

    pub async fn sync(&mut self) -> Result<(), SinkError> {
        let flushed = self.file.flush().await;
        flushed.map_err(|e| self.err(e))?;
        let synced = self.file.get_ref().sync_data().await;
        synced.map_err(|e| self.err(e))?;
        let Some(c) = &self.checkpoints else {
            return Ok(());
        };
        // Only once the data is synced: the record must never promise more.
        let (state, bytes) = c.record(self.length);
        let saved = tokio::task::spawn_blocking(move || {
            crate::durable::write_atomically(&state, &bytes)
                .map_err(|e| format!("{}: {e}", state.display()))
        })
        .await
        .map_err(|e| SinkError::fatal(&self.name, e))?;
        saved
            .map_err(|m| SinkError::fatal(&self.name, format!("recording the checkpoint: {m}")))?;
        if c.skipped() > self.skipped_told {
            tracing::info!(
                sink = self.name,
                "{} record(s) sent again since the restart were in {} already: not written twice",
                c.skipped(),
                self.path.display()
            );
            self.skipped_told = c.skipped();
        }
        Ok(())
    }
}

enum Opened {
    Io(std::io::Error),
    Other(String),
}

impl From<std::io::Error> for Opened {
    fn from(e: std::io::Error) -> Self {
        Opened::Io(e)
    }
}

/// Open `path` for appending; with checkpoints (a state folder), under an exclusive
/// lock and cut back to its last checkpoint, else cut to its last whole line. Returns
/// the file, its length and its checkpoints.
fn open_locked(
    path: &Path,
    state_dir: Option<&Path>,
    partitions: std::sync::Arc<crate::position::Partitions>,
    records: bool,
) -> Result<(std::fs::File, u64, Option<Checkpoints>), Opened> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)?;
    let meta = file.metadata()?;
    let Some(state_dir) = state_dir else {
        cut_torn_tail_and_tell(path)?;
        let length = file.metadata()?.len();
        return Ok((file, length, None));
    };
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => Opened::Other(format!(
                "{} is being written by another sink or sluice process: a restart cuts the file back to its own last checkpoint, which would take the other's lines; give each a file of its own",
                path.display()
            )),
            _ => Opened::Io(e),
        });
    }
    let resumed = Checkpoints::open(
        state_dir,
        path,
        (meta.dev(), meta.ino()),
        meta.len(),
        partitions,
        records,
    )
    .map_err(Opened::Other)?;
    match resumed.cut_to {
        Some(length) if length < meta.len() => {
            file.set_len(length)?;
            file.sync_all()?;
            tracing::info!(
                "{}: cut back to its last checkpoint ({length} bytes), dropping {} bytes written after it: those records were never acknowledged, so the source sends them again",
                path.display(),
                meta.len() - length
            );
        }
        Some(_) => {}
        None => cut_torn_tail_and_tell(path)?,
    }
    let length = file.metadata()?.len();
    if resumed.cut_to.is_none() {
        resumed
            .checkpoints
            .starting(length)
            .map_err(Opened::Other)?;
    }
    Ok((file, length, Some(resumed.checkpoints)))
}

fn cut_torn_tail_and_tell(path: &Path) -> std::io::Result<()> {
    let dropped = cut_torn_tail(path)?;
    if dropped > 0 {
        tracing::warn!(
            "{} ended in a torn line (a crash or a full disk during a write): dropped its last {dropped} bytes; those records were never acknowledged, so the source sends them again",
            path.display()
        );
    }
    Ok(())
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

impl super::SinkConnector for FileConfig {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn validate(&self, _input: Input) -> Result<(), FieldError> {
        if self.path.as_os_str().is_empty() {
            return Err(FieldError::new("path", "must not be empty"));
        }
        Ok(())
    }

    fn check(&self, base_dir: &Path) -> Result<(), String> {
        // `join` keeps an absolute path as it is.
        check_writable(&base_dir.join(&self.path))
    }

    async fn open(&self, ctx: &SinkContext) -> Result<Box<dyn super::Sink>, SinkError> {
        let sink = FileSink::open(&ctx.resolve(&self.path), ctx, ctx.input.into()).await?;
        Ok(Box::new(sink))
    }
}

impl super::Sink for FileSink {
    fn write<'a>(
        &'a mut self,
        batch: &'a Batch,
        delivery: &'a mut Delivery,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        super::whole(FileSink::write(self, batch), delivery)
    }

    fn checkpoint(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(self.sync())
    }
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
