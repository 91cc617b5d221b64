use super::{json_line, Delivery, SinkContext, SinkError};
use crate::record::Batch;
use crate::record::Record;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use std::io::IsTerminal;
use tokio::io::AsyncWriteExt;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
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

/// JSON on standard output (or standard error, for dead letters), flushed per batch.
pub struct StdoutSink {
    format: Format,
    name: &'static str,
    out: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
    /// Decided once: whether a live progress line may share the terminal.
    terminal: bool,
    buf: Vec<u8>,
}

impl StdoutSink {
    pub fn stdout(format: Format) -> Self {
        Self::on(
            "stdout",
            Box::new(tokio::io::stdout()),
            std::io::stdout().is_terminal(),
            format,
        )
    }

    pub fn stderr(format: Format) -> Self {
        Self::on(
            "stderr",
            Box::new(tokio::io::stderr()),
            std::io::stderr().is_terminal(),
            format,
        )
    }

    fn on(
        name: &'static str,
        out: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
        terminal: bool,
        format: Format,
    ) -> Self {
        StdoutSink {
            format,
            name,
            out,
            terminal,
            buf: Vec::new(),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub async fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        self.buf.clear();
        if self.terminal {
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
        let written = self.out.write_all(&self.buf).await;
        let flushed = written.and(self.out.flush().await);
        flushed.map_err(|e| SinkError::fatal(self.name, e))
    }
}

impl super::SinkConnector for StdoutConfig {
    fn describe(&self) -> String {
        "stdout".into()
    }

    async fn open(&self, _ctx: &SinkContext) -> Result<Box<dyn super::Sink>, SinkError> {
        Ok(Box::new(StdoutSink::stdout(self.format)))
    }
}

impl super::Sink for StdoutSink {
    fn write<'a>(
        &'a mut self,
        batch: &'a Batch,
        delivery: &'a mut Delivery,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        super::whole(StdoutSink::write(self, &batch.records), delivery)
    }
}
