//! Lookup tables (`[[tables]]`): rows a plugin reads by key through the `lookup`
//! import, loaded by the host from a JSON-lines or CSV file (reloaded when it
//! changes), a PostgreSQL query (run again every interval) or a compacted Kafka topic
//! (followed). Each table is held in memory under its own cap (`max_mb`) and a reload
//! is built beside the rows in use and swapped in whole ([`crate::plugin::lookup`]), so
//! a plugin never reads half a reload. A first load that fails stops the pipeline at
//! start, naming the table and what is wrong (file:line, the column, the query's
//! error); a later one that fails is logged and counted, and the rows before it stay.

mod file;
mod kafka;
mod postgres;
mod rows;

use crate::duration::Duration;
use crate::field_error::FieldError;
use crate::metrics::{Metrics, TableStatus};
use crate::plugin::lookup::{Table, TableStats, Tables};
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub use file::FileTable;
pub use kafka::KafkaTable;
pub use postgres::PostgresTable;

/// A `[[tables]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TableConfig {
    File(FileTable),
    Postgres(PostgresTable),
    Kafka(KafkaTable),
}

/// What every table has.
#[derive(Debug, Clone, Copy)]
pub struct Common<'a> {
    pub name: &'a str,
    pub max_mb: u64,
}

fn default_max_mb() -> u64 {
    64
}

impl TableConfig {
    fn common(&self) -> Common<'_> {
        match self {
            TableConfig::File(t) => Common {
                name: &t.name,
                max_mb: t.max_mb,
            },
            TableConfig::Postgres(t) => Common {
                name: &t.name,
                max_mb: t.max_mb,
            },
            TableConfig::Kafka(t) => Common {
                name: &t.name,
                max_mb: t.max_mb,
            },
        }
    }

    pub fn name(&self) -> &str {
        self.common().name
    }

    /// The most bytes the table may hold.
    pub fn max_bytes(&self) -> usize {
        (self.common().max_mb as usize).saturating_mul(1024 * 1024)
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        let c = self.common();
        if c.name.is_empty()
            || !c
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        {
            return Err(FieldError::new(
                "name",
                "must be letters, digits, _ and - (what a plugin passes to lookup.get)",
            ));
        }
        if !(1..=65_536).contains(&c.max_mb) {
            return Err(FieldError::new("max_mb", "must be between 1 and 65536"));
        }
        match self {
            TableConfig::File(t) => t.validate(),
            TableConfig::Postgres(t) => t.validate(),
            TableConfig::Kafka(t) => t.validate(),
        }
    }

    /// What `sluice validate` can know without connecting: a file table is loaded
    /// (its rows, or the first thing wrong with file:line); the others are not.
    pub fn check(&self, base_dir: &Path) -> Result<Option<usize>, String> {
        match self {
            TableConfig::File(t) => t.check(base_dir, self.max_bytes()).map(Some),
            TableConfig::Postgres(_) | TableConfig::Kafka(_) => Ok(None),
        }
    }

    /// Where the rows come from, for messages and `/status`.
    pub fn describe(&self) -> String {
        match self {
            TableConfig::File(t) => format!("file {}", t.path.display()),
            TableConfig::Postgres(t) => format!("postgres {}", crate::postgres::redact(&t.url)),
            TableConfig::Kafka(t) => format!("kafka topic {}", t.topic),
        }
    }
}

/// A running table's handle on its loader's reports.
#[derive(Clone)]
pub struct Reporter {
    pub name: String,
    pub source: String,
    pub table: Arc<Table>,
    pub metrics: Arc<Metrics>,
}

impl Reporter {
    /// The table's figures to the metrics (after every load, good or bad).
    pub fn report(&self) {
        let TableStats {
            rows,
            bytes,
            loaded_ms,
            reloads,
            failures,
        } = self.table.stats();
        self.metrics.set_table(TableStatus {
            name: self.name.clone(),
            source: self.source.clone(),
            rows,
            bytes,
            loaded_ms,
            reloads,
            reload_failures: failures,
        });
    }

    /// A reload failed: logged, counted; the rows before it stay.
    pub fn failed(&self, why: &str) {
        tracing::error!(
            "table `{}` ({}): reload failed, its rows before it kept: {why}",
            self.name,
            self.source
        );
        self.table.failed();
        self.report();
    }
}

/// Load every table (a failure stops the start, naming it), then keep each current
/// in a task of its own until `stop`.
pub async fn start(
    configs: &[TableConfig],
    base_dir: &Path,
    metrics: &Arc<Metrics>,
    stop: CancellationToken,
) -> Result<(Arc<Tables>, Vec<tokio::task::JoinHandle<()>>), String> {
    let mut tables = Tables::new();
    let mut tasks = Vec::new();
    for config in configs {
        let table = Arc::new(Table::default());
        let reporter = Reporter {
            name: config.name().to_owned(),
            source: config.describe(),
            table: table.clone(),
            metrics: metrics.clone(),
        };
        let started = std::time::Instant::now();
        let task = match config {
            TableConfig::File(t) => {
                t.start(base_dir, config.max_bytes(), reporter.clone(), stop.clone())
                    .await
            }
            TableConfig::Postgres(t) => {
                t.start(base_dir, config.max_bytes(), reporter.clone(), stop.clone())
                    .await
            }
            TableConfig::Kafka(t) => {
                t.start(config.max_bytes(), reporter.clone(), stop.clone())
                    .await
            }
        }
        .map_err(|why| format!("table `{}` ({}): {why}", config.name(), config.describe()))?;
        reporter.report();
        let stats = table.stats();
        tracing::info!(
            "table `{}` loaded from {}: {} rows, {:.1} MiB, in {:.0} ms",
            config.name(),
            config.describe(),
            stats.rows,
            stats.bytes as f64 / (1024.0 * 1024.0),
            started.elapsed().as_secs_f64() * 1e3
        );
        tasks.push(task);
        tables.insert(config.name().to_owned(), table);
    }
    Ok((Arc::new(tables), tasks))
}

/// Now, in ms since the epoch.
fn now_ms() -> i64 {
    crate::record::now_ms()
}

/// A wait that ends early when `stop` is cancelled; false then.
async fn pause(every: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(*every) => true,
    }
}
