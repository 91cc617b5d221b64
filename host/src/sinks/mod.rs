//! Sinks: where records go. One module per connector, each a config struct (from a
//! `[[sinks]]` table) and a writer. The engine calls `write` with whole batches and
//! `checkpoint` between batches; a sink must have made everything written so far
//! durable (as far as it can) when `checkpoint` returns, because the engine then tells
//! the source those records are safe (Kafka commits their offsets).
//!
//! Each connector is its folder: a config implementing [`SinkConnector`] and a writer
//! implementing [`Sink`]; [`SinkConfig`] holds the keys every sink has.
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
use futures_util::future::BoxFuture;
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

/// A `[[sinks]]` table: the keys every sink has, and its connector's own (chosen by
/// `type`). Read in two steps because serde's `flatten` cannot be combined with
/// `deny_unknown_fields`: the shared keys are taken out of the table first, then the
/// rest must be exactly the connector's fields.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Which stream the sink takes (`input = "records"` by default).
    pub input: Input,
    /// A JSON Schema file every record must match before it is written (e.g.
    /// `schemas/user.json`); one that does not is a dead letter naming the path and
    /// rule it breaks.
    pub schema: Option<PathBuf>,
    /// The routes whose records it takes (`route = "x"` or `routes = [...]`); none
    /// given: records that name no route ([`DEFAULT_ROUTE`]).
    pub routes: Vec<String>,
    /// The connector and its own keys.
    pub connector: SinkType,
}

/// The route of records that name none: a sink without `route`/`routes` takes it,
/// and `routes = ["default", "x"]` takes it beside `x`.
pub const DEFAULT_ROUTE: &str = "default";

/// The connectors, by their `type` key. Adding a sink is its folder (a config with
/// one [`SinkConnector`] impl, and a writer with one [`Sink`] impl), a line here and
/// a line in [`each_sink`].
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkType {
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

/// `$body` with `$c` bound to the connector's config, whichever it is.
macro_rules! each_sink {
    ($value:expr, $c:ident => $body:expr) => {
        match $value {
            SinkType::Stdout($c) => $body,
            SinkType::File($c) => $body,
            SinkType::Kafka($c) => $body,
            SinkType::Cassandra($c) => $body,
            SinkType::Mongodb($c) => $body,
            SinkType::Postgres($c) => $body,
            SinkType::Null($c) => $body,
        }
    };
}

/// What the engine asks of a sink connector's config: one impl per connector, in
/// its folder.
pub trait SinkConnector {
    /// A short description for names and messages: `file out/users.jsonl`.
    fn describe(&self) -> String;

    /// Field-level checks, knowing which stream the sink takes.
    fn validate(&self, _input: Input) -> Result<(), FieldError> {
        Ok(())
    }

    /// Whether the sink could be opened, checked without writing or connecting
    /// (`sluice validate`).
    fn check(&self, _base_dir: &Path) -> Result<(), String> {
        Ok(())
    }

    /// The registry schema the sink writes values with, if any (a swap's canary
    /// output is checked against it).
    fn value_schema(
        &self,
        _base_dir: &Path,
    ) -> Result<Option<crate::registry::ValueSchema>, String> {
        Ok(None)
    }

    /// Open the sink (files are created here, so a bad path fails before data flows).
    fn open(
        &self,
        ctx: &SinkContext,
    ) -> impl std::future::Future<Output = Result<Box<dyn Sink>, SinkError>> + Send;
}

/// An open sink.
pub trait Sink: Send {
    /// Write the records `delivery` has pending. `Ok` once each is written or
    /// rejected; a retryable error leaves the rest pending for the next attempt.
    fn write<'a>(
        &'a mut self,
        batch: &'a Batch,
        delivery: &'a mut Delivery,
    ) -> BoxFuture<'a, Result<(), SinkError>>;

    /// Make everything written so far durable. Most sinks have nothing left to do:
    /// every write already waited for the store's acknowledgement.
    fn checkpoint(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }
}

/// A write that takes a batch whole or fails it whole, never retryably (stdout, a
/// file, Kafka): once it is done, every pending record is written.
pub(crate) fn whole<'a>(
    write: impl std::future::Future<Output = Result<(), SinkError>> + Send + 'a,
    delivery: &'a mut Delivery,
) -> BoxFuture<'a, Result<(), SinkError>> {
    Box::pin(async move {
        write.await?;
        delivery.all_written();
        Ok(())
    })
}

impl<'de> Deserialize<'de> for SinkConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(d)?;
        // The message alone: the loader finds the line by the refused value.
        let shared = |e: toml::de::Error| D::Error::custom(e.message());
        let input = match table.remove("input") {
            Some(v) => Input::deserialize(v).map_err(shared)?,
            None => Input::default(),
        };
        let schema = match table.remove("schema") {
            Some(v) => Some(PathBuf::deserialize(v).map_err(shared)?),
            None => None,
        };
        let routes = match (table.remove("route"), table.remove("routes")) {
            (Some(_), Some(_)) => {
                return Err(D::Error::custom(
                    "`route` and `routes` both given: use `routes = [...]` for several",
                ))
            }
            (Some(v), None) => vec![String::deserialize(v).map_err(shared)?],
            (None, Some(v)) => Vec::<String>::deserialize(v).map_err(shared)?,
            (None, None) => Vec::new(),
        };
        let connector = SinkType::deserialize(toml::Value::Table(table))
            .map_err(|e| D::Error::custom(with_shared_keys(e.message())))?;
        Ok(SinkConfig {
            input,
            schema,
            routes,
            connector,
        })
    }
}

/// serde's `unknown field `x`, expected ...` lists the connector's keys only; a
/// user should also read of the keys every sink has.
fn with_shared_keys(message: &str) -> String {
    if !message.starts_with("unknown field `") {
        return message.to_owned();
    }
    message
        .replacen(", expected one of `", ", expected `", 1)
        .replacen(
            ", expected `",
            ", expected one of `input`, `schema`, `route`, `routes`, `",
            1,
        )
}

/// What a sink gets when it opens: its name for messages, the stream it takes, the
/// folder its relative paths resolve from, the pipeline's counters, and (with a
/// source that resumes) where it may keep what must outlive the process.
#[derive(Debug, Clone)]
pub struct SinkContext {
    /// E.g. `sinks[0] (file out/users.jsonl)`.
    pub name: String,
    pub input: Input,
    pub base_dir: PathBuf,
    pub metrics: Arc<Metrics>,
    /// The pipeline's state folder, when its source resumes from what was
    /// acknowledged (so a restart sends again what came after the last checkpoint).
    pub state_dir: Option<PathBuf>,
    /// Names the source's partitions (positions saved across restarts go by name).
    pub partitions: Arc<Partitions>,
    /// The pipeline's retry policy, for what a sink retries itself while it opens
    /// (a schema registry that is down at start).
    pub retry: crate::retry::RetryPolicy,
}

impl SinkContext {
    /// A path from the config; `join` keeps an absolute one as it is.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }
}

impl SinkConfig {
    /// The schema its records must match, as the config names it.
    pub fn schema(&self) -> Option<&Path> {
        self.schema.as_deref()
    }

    pub fn input(&self) -> Input {
        self.input
    }

    /// The routes it takes; [`DEFAULT_ROUTE`] alone when none are named.
    pub fn routes(&self) -> Vec<String> {
        if self.routes.is_empty() {
            vec![DEFAULT_ROUTE.to_owned()]
        } else {
            self.routes.clone()
        }
    }

    /// A short description for names and messages: `file out/users.jsonl`.
    pub fn describe(&self) -> String {
        each_sink!(&self.connector, c => SinkConnector::describe(c))
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        for (i, r) in self.routes.iter().enumerate() {
            let plain = !r.is_empty()
                && r.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
            if !plain {
                let field = if self.routes.len() == 1 {
                    "route".to_owned()
                } else {
                    format!("routes[{i}]")
                };
                return Err(FieldError::new(
                    field,
                    format!("`{r}` is not a route name (letters, digits, _ - .)"),
                ));
            }
        }
        if !self.routes.is_empty() && self.input == Input::Windows {
            return Err(FieldError::new(
                "routes",
                "are for records: window results name no route",
            ));
        }
        if let SinkType::Kafka(k) = &self.connector {
            let routes = self.routes();
            if let Some(r) = k.route_topics.keys().find(|r| !routes.contains(r)) {
                return Err(FieldError::new(
                    format!("route_topics.{r}"),
                    format!(
                        "is not a route this sink takes (it takes {}): add it to `routes`",
                        routes.join(", ")
                    ),
                ));
            }
        }
        each_sink!(&self.connector, c => SinkConnector::validate(c, self.input))
    }

    /// Whether the sink could be opened, checked without writing or connecting
    /// (`sluice validate`): file paths are not folders and can be created.
    /// The registry schema its values are written with (records sinks only).
    pub fn value_schema(
        &self,
        base_dir: &Path,
    ) -> Result<Option<crate::registry::ValueSchema>, String> {
        if self.input != Input::Records {
            return Ok(None);
        }
        each_sink!(&self.connector, c => SinkConnector::value_schema(c, base_dir))
    }

    pub fn check(&self, base_dir: &Path) -> Result<(), String> {
        each_sink!(&self.connector, c => SinkConnector::check(c, base_dir))
    }

    /// Open the sink; `ctx.input` is this table's.
    pub async fn open(&self, ctx: &SinkContext) -> Result<Box<dyn Sink>, SinkError> {
        each_sink!(&self.connector, c => SinkConnector::open(c, ctx).await)
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
