//! A table from a file: JSON lines (one object a row) or CSV (a header, then rows),
//! checked every `poll_interval` and loaded again once it has changed and then held
//! still for a poll (so a file being written is not taken half-way; writing a new
//! file and renaming it over the old is the surest way).

use super::rows::{Builder, Shape};
use super::{default_max_mb, now_ms, pause, Reporter};
use crate::duration::Duration;
use crate::field_error::FieldError;
use crate::plugin::lookup::Rows;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTable {
    pub name: String,
    /// Relative to the pipeline file.
    pub path: PathBuf,
    /// `jsonl` or `csv`; default: by the file's extension (`.csv`, else JSON lines).
    pub format: Option<Format>,
    /// The key: a field of each JSON row (a name or a JSON pointer), or a CSV column.
    pub key: String,
    /// The value: this field's or column's text; default: the whole row (JSON lines
    /// as written, a CSV row as a JSON object of its columns).
    pub value: Option<String>,
    #[serde(default = "default_poll")]
    pub poll_interval: Duration,
    #[serde(default = "default_max_mb")]
    pub max_mb: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Jsonl,
    Csv,
}

fn default_poll() -> Duration {
    Duration::from_millis(1_000)
}

/// What says a file changed: its modification time, length and inode.
type Stamp = Option<(std::time::SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

impl FileTable {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.key.is_empty() {
            return Err(FieldError::new("key", "must name a field or a column"));
        }
        if self.poll_interval.is_zero() {
            return Err(FieldError::new("poll_interval", "must be more than 0"));
        }
        Ok(())
    }

    fn format(&self) -> Format {
        self.format
            .unwrap_or_else(|| match self.path.extension().and_then(|e| e.to_str()) {
                Some(e) if e.eq_ignore_ascii_case("csv") => Format::Csv,
                _ => Format::Jsonl,
            })
    }

    /// Load it now (an error stops the start), then keep it current until `stop`.
    pub async fn start(
        &self,
        base_dir: &Path,
        max_bytes: usize,
        reporter: Reporter,
        stop: CancellationToken,
    ) -> Result<tokio::task::JoinHandle<()>, String> {
        let path = base_dir.join(&self.path);
        let me = self.clone();
        let load = {
            let (me, path) = (me.clone(), path.clone());
            move || me.load(&path, max_bytes)
        };
        let first = stamp(&path);
        let rows = tokio::task::spawn_blocking(load.clone())
            .await
            .map_err(|e| format!("the load panicked: {e}"))??;
        reporter.table.replace(rows, now_ms());
        Ok(tokio::spawn(async move {
            let (mut loaded, mut seen) = (first, first);
            while pause(me.poll_interval, &stop).await {
                let now = stamp(&path);
                // Changed since loaded, and still since the last look: written.
                let settled = now == seen;
                seen = now;
                if now == loaded || !settled || now.is_none() {
                    continue;
                }
                loaded = now;
                match tokio::task::spawn_blocking(load.clone()).await {
                    Ok(Ok(rows)) => {
                        let n = rows.len();
                        reporter.table.replace(rows, now_ms());
                        reporter.report();
                        tracing::info!(
                            "table `{}` reloaded from {}: {n} rows",
                            me.name,
                            path.display()
                        );
                    }
                    Ok(Err(why)) => reporter.failed(&why),
                    Err(e) => reporter.failed(&format!("the load panicked: {e}")),
                }
            }
        }))
    }

    /// Its rows, loaded now (`sluice validate`).
    pub fn check(&self, base_dir: &Path, max_bytes: usize) -> Result<usize, String> {
        self.load(&base_dir.join(&self.path), max_bytes)
            .map(|rows| rows.len())
    }

    /// Every row of the file, or the first thing wrong, with its line.
    fn load(&self, path: &Path, max_bytes: usize) -> Result<Rows, String> {
        let shape = Shape {
            key: &self.key,
            value: self.value.as_deref(),
            max_bytes,
        };
        let mut rows = Builder::new(shape);
        let shown = path.display();
        match self.format() {
            Format::Jsonl => {
                let text = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
                for (i, line) in text.split(|&b| b == b'\n').enumerate() {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    rows.json(line, &|| format!("{shown}:{}", i + 1))?;
                }
            }
            Format::Csv => {
                let mut reader = csv::Reader::from_path(path)
                    .map_err(|e| format!("cannot read {shown}: {e}"))?;
                let header = reader
                    .headers()
                    .map_err(|e| format!("{shown}: the header: {e}"))?
                    .clone();
                if !header.iter().any(|h| h == self.key) {
                    return Err(format!(
                        "{shown}:1: no column `{}` (the key) among {:?}",
                        self.key,
                        header.iter().collect::<Vec<_>>()
                    ));
                }
                for record in reader.records() {
                    let record = record.map_err(|e| format!("{shown}: {e}"))?;
                    let line = record.position().map_or(0, |p| p.line());
                    rows.csv(&header, &record, &|| format!("{shown}:{line}"))?;
                }
            }
        }
        Ok(rows.finish())
    }
}
