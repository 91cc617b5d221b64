//! Sinks: where records go. One module per connector, each a config struct (from a
//! `[[sinks]]` table) and a writer. The engine calls `write` with whole batches and
//! `checkpoint` between batches; a sink must have made everything written so far
//! durable (as far as it can) when `checkpoint` returns, because the engine then tells
//! the source those records are safe (Kafka commits their offsets).
//!
//! A sink is opened with a small [`SinkContext`], not the whole pipeline config, and
//! reports errors as retryable or fatal ([`ConnectorError`]); the engine retries the
//! retryable ones with the pipeline's one [`crate::retry::RetryPolicy`], for the
//! records of the batch still pending ([`Delivery`]). Records a store refuses for a
//! reason of their own go to the dead letters with that reason.

pub mod cassandra;
pub mod dead_letter;
mod delivery;
pub mod file;
pub mod kafka;
pub mod mongo;
pub mod null;
pub mod postgres;
pub mod stdout;

pub use crate::connector::ConnectorError as SinkError;
pub use delivery::Delivery;

use crate::field_error::FieldError;
use crate::metrics::Metrics;
use crate::position::Partitions;
use crate::record::Batch;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// A Kafka topic (librdkafka producer; idempotent, `acks=all`).
    Kafka(kafka::KafkaSinkConfig),
    /// A Cassandra table (prepared upserts, bounded concurrency).
    Cassandra(cassandra::CassandraConfig),
    /// A MongoDB collection (one `update`/`insert` command per batch).
    Mongodb(mongo::MongoConfig),
    /// A PostgreSQL table (one `INSERT ... UNNEST` upsert per batch).
    Postgres(postgres::PostgresConfig),
    /// Discards everything (benchmarks, dry runs).
    Null(null::NullConfig),
}

/// What a sink gets when it opens: its name for messages, the folder its relative
/// paths resolve from, the pipeline's counters, and (with a source that resumes)
/// where it may keep what must outlive the process.
#[derive(Debug, Clone)]
pub struct SinkContext {
    /// E.g. `sinks[0] (file out/users.jsonl)`.
    pub name: String,
    pub base_dir: PathBuf,
    pub metrics: Arc<Metrics>,
    /// The pipeline's state folder, when its source resumes from what was
    /// acknowledged (so a restart sends again what came after the last checkpoint).
    pub state_dir: Option<PathBuf>,
    /// Names the source's partitions (positions saved across restarts go by name).
    pub partitions: Arc<Partitions>,
}

impl SinkContext {
    /// A path from the config; `join` keeps an absolute one as it is.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }
}

impl SinkConfig {
    /// The schema its records must match, as the config names it.
    pub fn schema(&self) -> Option<&std::path::Path> {
        match self {
            SinkConfig::Stdout(c) => c.schema.as_deref(),
            SinkConfig::File(c) => c.schema.as_deref(),
            SinkConfig::Kafka(c) => c.schema.as_deref(),
            SinkConfig::Cassandra(c) => c.schema.as_deref(),
            SinkConfig::Mongodb(c) => c.schema.as_deref(),
            SinkConfig::Null(c) => c.schema.as_deref(),
            SinkConfig::Postgres(c) => c.schema.as_deref(),
        }
    }

    pub fn input(&self) -> Input {
        match self {
            SinkConfig::Stdout(c) => c.input,
            SinkConfig::File(c) => c.input,
            SinkConfig::Kafka(c) => c.input,
            SinkConfig::Cassandra(c) => c.input,
            SinkConfig::Mongodb(c) => c.input,
            SinkConfig::Null(c) => c.input,
            SinkConfig::Postgres(c) => c.input,
        }
    }

    /// A short description for names and messages: `file out/users.jsonl`.
    pub fn describe(&self) -> String {
        match self {
            SinkConfig::Stdout(_) => "stdout".into(),
            SinkConfig::File(c) => format!("file {}", c.path.display()),
            SinkConfig::Kafka(c) => format!("kafka topic {}", c.topic),
            SinkConfig::Cassandra(c) => format!("cassandra {}.{}", c.keyspace, c.table),
            SinkConfig::Mongodb(c) => format!("mongodb {}.{}", c.database, c.collection),
            SinkConfig::Null(_) => "null".into(),
            SinkConfig::Postgres(c) => format!("postgres {}", c.table),
        }
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        match self {
            SinkConfig::File(c) if c.path.as_os_str().is_empty() => {
                Err(FieldError::new("path", "must not be empty"))
            }
            SinkConfig::Kafka(c) => c.validate(),
            SinkConfig::Cassandra(c) => c.validate(),
            SinkConfig::Mongodb(c) => c.validate(),
            SinkConfig::Postgres(c) => c.validate(),
            _ => Ok(()),
        }
    }

    /// Whether the sink could be opened, checked without writing or connecting
    /// (`sluice validate`): file paths are not folders and can be created.
    pub fn check(&self, base_dir: &Path) -> Result<(), String> {
        match self {
            // `join` keeps an absolute path as it is.
            SinkConfig::File(c) => file::check_writable(&base_dir.join(&c.path)),
            _ => Ok(()),
        }
    }

    /// Open the sink (files are created here, so a bad path fails before data flows).
    pub async fn open(&self, ctx: &SinkContext) -> Result<Sink, SinkError> {
        Ok(match self {
            SinkConfig::Stdout(c) => Sink::Stdout(stdout::StdoutSink::stdout(c.format)),
            SinkConfig::File(c) => {
                Sink::File(file::FileSink::open(&ctx.resolve(&c.path), ctx, c.input.into()).await?)
            }
            SinkConfig::Kafka(c) => Sink::Kafka(kafka::KafkaSink::open(c, ctx).await?),
            SinkConfig::Cassandra(c) => {
                Sink::Cassandra(Box::new(cassandra::CassandraSink::open(c, ctx).await?))
            }
            SinkConfig::Mongodb(c) => Sink::Mongodb(mongo::MongoSink::open(c, ctx).await?),
            SinkConfig::Null(_) => Sink::Null(null::NullSink::default()),
            SinkConfig::Postgres(c) => {
                Sink::Postgres(Box::new(postgres::PostgresSink::open(c, ctx).await?))
            }
        })
    }
}

/// An open sink. An enum rather than a trait object: the set is closed, and each
/// arm is a plain `async fn`.
pub enum Sink {
    /// Standard output, or standard error (dead letters).
    Stdout(stdout::StdoutSink),
    File(file::FileSink),
    Kafka(kafka::KafkaSink),
    /// Boxed: a prepared statement and a session are large beside the others.
    Cassandra(Box<cassandra::CassandraSink>),
    Mongodb(mongo::MongoSink),
    Postgres(Box<postgres::PostgresSink>),
    Null(null::NullSink),
}

impl Sink {
    /// Write the records `delivery` has pending. `Ok` once each is written or
    /// rejected; a retryable error leaves the rest pending for the next attempt.
    pub async fn write(&mut self, batch: &Batch, delivery: &mut Delivery) -> Result<(), SinkError> {
        let records = &batch.records;
        match self {
            Sink::Cassandra(s) => return s.write(records, delivery).await,
            Sink::Mongodb(s) => return s.write(records, delivery).await,
            Sink::Postgres(s) => return s.write(records, delivery).await,
            // The others write a batch whole or fail it whole, never retryably.
            Sink::Stdout(s) => s.write(records).await?,
            Sink::File(s) => s.write(batch).await?,
            Sink::Kafka(s) => s.write(records).await?,
            Sink::Null(s) => s.write(records),
        }
        delivery.all_written();
        Ok(())
    }

    /// Make everything written so far durable.
    pub async fn checkpoint(&mut self) -> Result<(), SinkError> {
        match self {
            Sink::Stdout(_) | Sink::Null(_) => Ok(()),
            Sink::File(s) => s.sync().await,
            // Every write already waited for all its delivery reports, every row
            // and document for the store's acknowledgement.
            Sink::Kafka(_) | Sink::Cassandra(_) | Sink::Mongodb(_) | Sink::Postgres(_) => Ok(()),
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
