//! `type = "postgres"`: a table read incrementally by a column whose values only
//! grow (a serial id, an insertion timestamp), in order, as JSON rows
//! (`row_to_json`): the seeds' staging table on its way to Kafka.
//!
//! A record's position is its column value (a whole number, or a timestamp in
//! microseconds since the epoch). The newest one acknowledged (every sink durable) is
//! saved in the state folder, and a restart reads on after it: rows are neither
//! skipped nor read twice, as long as a row is never committed below one already
//! read (a serial or identity column filled by one writer at a time; with several
//! writers, a lower value may commit after a higher one was read, and is missed).
//! Rows sharing one value are read together (a batch is cut before them), but the
//! sinks tell records apart by position, so values should be unique.

use super::event_time::EventTime;
use super::{Closed, SourceContext, SourceError, SourceEvent, CHUNK};
use crate::dead_letter::DeadLetter;
use crate::duration::Duration;
use crate::field_error::FieldError;
use crate::position::{Ack, Origin, PartitionId, Position};
use crate::postgres::{self as client, check_name, describe, pool_error, quoted, TlsConfig};
use crate::record::{now_ms, record};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSourceConfig {
    /// `postgres://user:${PGPASSWORD}@host:5432/db`.
    pub url: String,
    /// The table, optionally with its schema: `staging.users`.
    pub table: String,
    /// The column rows are read in the order of: whole numbers (`smallint`,
    /// `integer`, `bigint`) or a timestamp, unique and growing.
    pub column: String,
    /// Rows per query.
    #[serde(default = "default_rows")]
    pub batch_rows: i64,
    /// Keep reading rows added later (every `poll_interval`) until stopped; false:
    /// stop once every row there is has been read.
    #[serde(default = "yes")]
    pub follow: bool,
    #[serde(default = "default_poll")]
    pub poll_interval: Duration,
    /// `"message"` (default): the time the row is read; or a field of the row.
    #[serde(default)]
    pub event_time: EventTime,
    pub tls: Option<TlsConfig>,
    /// How long connecting or one query may take.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
}

fn yes() -> bool {
    true
}
fn default_rows() -> i64 {
    1000
}
fn default_poll() -> Duration {
    Duration::from_millis(1000)
}
fn default_timeout() -> Duration {
    Duration::from_millis(10_000)
}

/// Where the position is kept, in the state folder.
const POSITION_FILE: &str = "postgres-source-position.json";

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Saved {
    table: String,
    column: String,
    /// Every row at or before this column value is durable everywhere.
    through: i64,
}

impl PostgresSourceConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        let err = |f: &str, m: String| Err(FieldError::new(f.to_owned(), m));
        if let Err(e) = self.url.parse::<tokio_postgres::Config>() {
            return err(
                "url",
                format!("is not a PostgreSQL connection string ({e})"),
            );
        }
        let (schema, table) = crate::postgres::schema_and_table(&self.table);
        check_name(schema).or_else(|m| err("table", m))?;
        check_name(table).or_else(|m| err("table", m))?;
        check_name(&self.column).or_else(|m| err("column", m))?;
        if !(1..=100_000).contains(&self.batch_rows) {
            return err("batch_rows", "must be between 1 and 100000".into());
        }
        if self.poll_interval.is_zero() || self.timeout.is_zero() {
            return err("poll_interval", "and timeout must be more than 0".into());
        }
        Ok(())
    }
}

/// The column's values as whole numbers: the expression that reads them, and how a
/// saved one is compared.
struct Order {
    /// `t."id"::bigint`, or the timestamp in microseconds.
    value: String,
    /// `t."id" > $1`, or the timestamp after `$1` microseconds.
    after: String,
}

async fn order_of(
    conn: &tokio_postgres::Client,
    schema: &str,
    table: &str,
    column: &str,
) -> Result<Order, String> {
    let row = conn
        .query_opt(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 AND column_name = $3",
            &[&schema, &table, &column],
        )
        .await
        .map_err(|e| describe(&e))?;
    let Some(row) = row else {
        return Err(format!(
            "{schema}.{table} has no column `{column}` (or no such table)"
        ));
    };
    let data_type: String = row.get(0);
    let c = format!("t.{}", quoted(column));
    Ok(match data_type.as_str() {
        "smallint" | "integer" | "bigint" => Order {
            value: format!("{c}::bigint"),
            after: format!("{c} > $1"),
        },
        "timestamp with time zone" => Order {
            value: format!("(extract(epoch from {c}) * 1000000)::bigint"),
            after: format!("{c} > (timestamptz 'epoch' + $1 * interval '1 microsecond')"),
        },
        // Compared as it is written (no time zone, so the session's cannot shift it).
        "timestamp without time zone" => Order {
            value: format!("(extract(epoch from {c}) * 1000000)::bigint"),
            after: format!("{c} > (timestamp 'epoch' + $1 * interval '1 microsecond')"),
        },
        other => {
            return Err(format!(
                "column `{column}` of {schema}.{table} is {other}: read order needs whole numbers or a timestamp"
            ))
        }
    })
}

struct Reader {
    ctx: SourceContext,
    config: PostgresSourceConfig,
    id: PartitionId,
    state: PathBuf,
    saved: Option<i64>,
    /// Saved value not written yet.
    dirty: bool,
}

impl Reader {
    fn take(&mut self, ack: Ack) {
        if let Some(&through) = ack.durable.get(&self.id) {
            let through = through as i64;
            if self.saved.is_none_or(|s| through > s) {
                self.saved = Some(through);
                self.dirty = true;
            }
        }
    }

    fn store(&mut self) -> Result<(), SourceError> {
        let Some(through) = self.saved.filter(|_| self.dirty) else {
            return Ok(());
        };
        let saved = Saved {
            table: self.config.table.clone(),
            column: self.config.column.clone(),
            through,
        };
        let bytes = serde_json::to_vec_pretty(&saved).expect("plain data serializes");
        crate::durable::write_atomically(&self.state, &bytes).map_err(|e| {
            SourceError::fatal(
                &self.ctx.name,
                format!("saving {}: {e}", self.state.display()),
            )
        })?;
        self.dirty = false;
        Ok(())
    }

    fn apply_acks(&mut self) -> Result<(), SourceError> {
        for ack in self.ctx.try_acks() {
            self.take(ack);
        }
        self.store()
    }

    fn flush(&mut self, events: Vec<SourceEvent>, end_of_input: bool) -> Result<(), SourceError> {
        for ack in self.ctx.blocking_flush(events, end_of_input) {
            self.take(ack);
        }
        self.store()
    }
}

/// Why a read of the table failed: worth polling again, or not.
enum ReadFailed {
    /// The server away, restarting, or the network.
    Retry(String),
    /// A table dropped, a permission taken away, a value out of range.
    Fatal(String),
}

pub fn run(config: PostgresSourceConfig, ctx: SourceContext) -> Result<(), SourceError> {
    let name = ctx.name.clone();
    let fatal = |m: String| SourceError::fatal(&name, m);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fatal(e.to_string()))?;
    let state = ctx.state_dir.join(POSITION_FILE);
    let saved = match std::fs::read(&state) {
        Ok(bytes) => {
            let s: Saved = serde_json::from_slice(&bytes).map_err(|e| {
                fatal(format!(
                    "{} is damaged ({e}); delete it to read the table from its start",
                    state.display()
                ))
            })?;
            if (s.table.as_str(), s.column.as_str())
                != (config.table.as_str(), config.column.as_str())
            {
                return Err(fatal(format!(
                    "{} is the position in {}.{}, not {}.{}; move it away to read this table from its start",
                    state.display(), s.table, s.column, config.table, config.column
                )));
            }
            Some(s.through)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(fatal(format!("{}: {e}", state.display()))),
    };
    let pool = rt
        .block_on(client::pool(
            &config.url,
            config.tls.as_ref(),
            &ctx.base_dir,
            1,
            *config.timeout,
        ))
        .map_err(fatal)?;
    let (schema, table) = crate::postgres::schema_and_table(&config.table);
    let (schema, table) = (schema.to_owned(), table.to_owned());
    let order = rt
        .block_on(async {
            let conn = pool.get().await.map_err(|e| pool_error(&e))?;
            order_of(&conn, &schema, &table, &config.column).await
        })
        .map_err(fatal)?;
    let query = format!(
        "SELECT row_to_json(t)::text, {} FROM {}.{} t WHERE t.{col} IS NOT NULL AND ($1::bigint IS NULL OR {}) ORDER BY t.{col} LIMIT $2",
        order.value,
        quoted(&schema),
        quoted(&table),
        order.after,
        col = quoted(&config.column)
    );
    ctx.metrics.set_connected();
    if let Some(through) = saved {
        tracing::info!(source = %name, "resuming {schema}.{table} after {} = {through}", config.column);
    }
    let id = ctx.partition(Origin::Table {
        table: format!("{schema}.{table}"),
    });
    let mut reader = Reader {
        ctx,
        config,
        id,
        state,
        saved,
        dirty: false,
    };
    let mut last = saved;
    loop {
        if reader.ctx.is_stopping() {
            return reader.flush(Vec::new(), false);
        }
        let rows = rt.block_on(async {
            let conn = pool
                .get()
                .await
                .map_err(|e| ReadFailed::Retry(pool_error(&e)))?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
                [&last, &reader.config.batch_rows];
            let run = conn.query(&query, &params);
            let backstop = *reader.config.timeout + std::time::Duration::from_secs(5);
            match tokio::time::timeout(backstop, run).await {
                // A table dropped, a permission taken away, a value out of range:
                // polling again cannot help.
                Ok(Err(e)) if !client::is_transient(&e) => Err(ReadFailed::Fatal(describe(&e))),
                Ok(rows) => rows.map_err(|e| ReadFailed::Retry(describe(&e))),
                Err(_) => Err(ReadFailed::Retry(format!(
                    "no answer to the query within {backstop:?}"
                ))),
            }
        });
        let mut rows: Vec<(String, i64)> = match rows {
            Ok(rows) => rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
            Err(ReadFailed::Fatal(why)) => {
                return Err(fatal(format!("reading {schema}.{table}: {why}")))
            }
            Err(ReadFailed::Retry(why)) => {
                // The server away, restarting, or the network: read again later.
                tracing::warn!(source = %name, "reading {schema}.{table}: {why}; trying again in {}", reader.config.poll_interval);
                if reader
                    .ctx
                    .sleep_unless_stopping(*reader.config.poll_interval)
                {
                    return reader.flush(Vec::new(), false);
                }
                continue;
            }
        };
        let full = rows.len() as i64 == reader.config.batch_rows;
        if full {
            // Rows sharing the last value may go on past the limit: they are read
            // next time, all together (`> value` would skip the rest of them).
            let newest = rows[rows.len() - 1].1;
            match rows.iter().rposition(|r| r.1 != newest) {
                Some(keep) => rows.truncate(keep + 1),
                None => {
                    return Err(fatal(format!(
                        "{schema}.{table}: {} rows have `{}` = {newest}: raise batch_rows above the most rows that share one value",
                        rows.len(),
                        reader.config.column
                    )))
                }
            }
        }
        let mut chunk = Vec::with_capacity(rows.len().min(CHUNK));
        for (json, at) in rows {
            last = Some(at);
            let Ok(offset) = u64::try_from(at) else {
                return Err(fatal(format!(
                    "{schema}.{table}: `{}` = {at} is negative: positions need values of 0 or more",
                    reader.config.column
                )));
            };
            let position = Position::new(id, offset);
            let value = json.into_bytes();
            chunk.push(match reader.config.event_time.of_or_else(&value, now_ms) {
                Ok(ts) => SourceEvent::Record(record(value, ts), position),
                Err(reason) => SourceEvent::Dead(DeadLetter::now(
                    "source",
                    "postgres",
                    record(value, now_ms()),
                    position,
                    reason,
                )),
            });
            if chunk.len() >= CHUNK && send(&reader.ctx, &mut chunk).is_err() {
                return Ok(()); // the engine stopped
            }
        }
        if send(&reader.ctx, &mut chunk).is_err() {
            return Ok(());
        }
        reader.apply_acks()?;
        if !full {
            if !reader.config.follow {
                return reader.flush(Vec::new(), true);
            }
            if reader
                .ctx
                .sleep_unless_stopping(*reader.config.poll_interval)
            {
                return reader.flush(Vec::new(), false);
            }
        }
    }
}

fn send(ctx: &SourceContext, chunk: &mut Vec<SourceEvent>) -> Result<(), Closed> {
    ctx.blocking_emit_many(std::mem::take(chunk))
}

impl super::SourceConnector for PostgresSourceConfig {
    fn type_name(&self) -> &'static str {
        "postgres"
    }

    fn kind(&self) -> super::SourceKind {
        super::SourceKind::Resumable
    }

    fn validate(&self) -> Result<(), FieldError> {
        PostgresSourceConfig::validate(self)
    }

    async fn run(self, ctx: SourceContext) -> Result<(), SourceError> {
        super::on_own_thread(ctx, move |ctx| run(self, ctx)).await
    }
}
