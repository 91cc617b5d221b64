//! Sinks: where records go. One module per connector, each a config struct (from a
//! `[[sinks]]` table) and a writer. The engine calls `write` with whole batches and
//! `checkpoint` between batches; a sink must have made everything written so far
//! durable (as far as it can) when `checkpoint` returns, because that is when the
//! engine will, later, commit source offsets.

pub mod file;
pub mod null;
pub mod stdout;

use crate::config::PipelineConfig;
use crate::record::Record;
use serde::Deserialize;

/// Which stream a sink takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// Records out of the last transform.
    #[default]
    Records,
    /// Results of closed windows (needs a `[window]`).
    Windows,
}

/// A `[[sinks]]` table, chosen by its `type` key.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    Stdout(stdout::StdoutConfig),
    File(file::FileConfig),
    /// Discards everything (benchmarks, dry runs).
    Null(null::NullConfig),
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{sink}: {message}")]
    Io { sink: String, message: String },
}

impl SinkError {
    pub fn io(sink: impl std::fmt::Display, e: impl std::fmt::Display) -> Self {
        SinkError::Io {
            sink: sink.to_string(),
            message: e.to_string(),
        }
    }
}

impl SinkConfig {
    pub fn input(&self) -> Input {
        match self {
            SinkConfig::Stdout(c) => c.input,
            SinkConfig::File(c) => c.input,
            SinkConfig::Null(c) => c.input,
        }
    }

    pub fn validate(&self) -> Result<(), (String, String)> {
        match self {
            SinkConfig::File(c) if c.path.as_os_str().is_empty() => {
                Err(("path".into(), "must not be empty".into()))
            }
            _ => Ok(()),
        }
    }

    /// Open the sink (files are created here, so a bad path fails before data flows).
    pub async fn open(&self, pipeline: &PipelineConfig) -> Result<Sink, SinkError> {
        Ok(match self {
            SinkConfig::Stdout(c) => Sink::Stdout(stdout::StdoutSink::stdout(c.format)),
            SinkConfig::File(c) => {
                Sink::File(file::FileSink::open(&pipeline.resolve(&c.path)).await?)
            }
            SinkConfig::Null(_) => Sink::Null(null::NullSink::default()),
        })
    }
}

/// An open sink. An enum rather than a trait object: the set is closed, and each
/// arm is a plain `async fn`.
pub enum Sink {
    /// Standard output, or standard error (dead letters).
    Stdout(stdout::StdoutSink),
    File(file::FileSink),
    Null(null::NullSink),
}

impl Sink {
    pub fn describe(&self) -> String {
        match self {
            Sink::Stdout(s) => format!("{} sink", s.name()),
            Sink::File(f) => format!("file sink {}", f.path().display()),
            Sink::Null(_) => "null sink".into(),
        }
    }

    pub async fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        match self {
            Sink::Stdout(s) => s.write(records).await,
            Sink::File(s) => s.write(records).await,
            Sink::Null(s) => {
                s.write(records);
                Ok(())
            }
        }
    }

    /// Make everything written so far durable.
    pub async fn checkpoint(&mut self) -> Result<(), SinkError> {
        match self {
            Sink::Stdout(_) | Sink::Null(_) => Ok(()),
            Sink::File(s) => s.sync().await,
        }
    }
}

/// A record's value as one JSON line: as it is when it already is single-line JSON
/// (the common case: checked without building anything, and not re-encoded), else
/// as a JSON string, so every line of the output parses.
pub fn json_line(value: &[u8], out: &mut Vec<u8>) {
    let first = value.iter().find(|b| !b.is_ascii_whitespace());
    if matches!(first, Some(b'{' | b'['))
        && !value.contains(&b'\n')
        && serde_json::from_slice::<serde::de::IgnoredAny>(value).is_ok()
    {
        out.extend_from_slice(value);
    } else {
        let text = String::from_utf8_lossy(value);
        serde_json::to_writer(&mut *out, &text).expect("writing to a Vec cannot fail");
    }
    out.push(b'\n');
}
