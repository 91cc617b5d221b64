use super::{json_line, Input, SinkError};
use crate::record::Record;
use serde::Deserialize;
use std::io::IsTerminal;
use tokio::io::AsyncWriteExt;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    #[serde(default)]
    pub input: Input,
    #[serde(default)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// One JSON value per line.
    #[default]
    Json,
    /// Indented JSON, for people.
    Pretty,
}

pub struct StdoutSink {
    format: Format,
    buf: Vec<u8>,
}

impl StdoutSink {
    pub fn new(format: Format) -> Self {
        StdoutSink {
            format,
            buf: Vec::new(),
        }
    }

    pub async fn write(&mut self, records: &[Record], to_stderr: bool) -> Result<(), SinkError> {
        self.buf.clear();
        let terminal = if to_stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        if terminal {
            // Wipe the live progress line (on stderr, same terminal) before printing.
            self.buf.extend_from_slice(b"\r\x1b[2K");
        }
        for r in records {
            match self.format {
                Format::Json => json_line(&r.value, &mut self.buf),
                Format::Pretty => match serde_json::from_slice::<serde_json::Value>(&r.value) {
                    Ok(v) => {
                        serde_json::to_writer_pretty(&mut self.buf, &v).expect("Vec write");
                        self.buf.push(b'\n');
                    }
                    Err(_) => json_line(&r.value, &mut self.buf),
                },
            }
        }
        let name = if to_stderr { "stderr" } else { "stdout" };
        let result = if to_stderr {
            let mut out = tokio::io::stderr();
            out.write_all(&self.buf).await.and(out.flush().await)
        } else {
            let mut out = tokio::io::stdout();
            out.write_all(&self.buf).await.and(out.flush().await)
        };
        result.map_err(|e| SinkError::io(name, e))
    }
}
