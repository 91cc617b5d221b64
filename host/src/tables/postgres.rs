//! A table from a PostgreSQL query, run again every `interval`: each row (as
//! `row_to_json`) keyed by one of its columns. The whole result is the table's next
//! version; a query that fails (the server away, a column dropped) is logged and the
//! rows before it kept.

use super::rows::{Builder, Shape};
use super::{default_max_mb, now_ms, pause, Reporter};
use crate::duration::Duration;
use crate::field_error::FieldError;
use crate::plugin::lookup::Rows;
use crate::postgres::TlsConfig;
use serde::Deserialize;
use std::path::Path;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresTable {
    pub name: String,
    /// `postgres://user:${PGPASSWORD}@host:5432/db`, or libpq's `host=... user=...`.
    pub url: String,
    pub tls: Option<TlsConfig>,
    /// A SELECT; its rows are the table's (wrapped: `SELECT row_to_json(q) FROM (query) q`).
    pub query: String,
    /// The column that is the key.
    pub key: String,
    /// The value: this column's text; default: the whole row as a JSON object.
    pub value: Option<String>,
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// Longest the query may run (the server cancels it past this).
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    #[serde(default = "default_max_mb")]
    pub max_mb: u64,
}

fn default_interval() -> Duration {
    Duration::from_millis(60_000)
}

fn default_timeout() -> Duration {
    Duration::from_millis(30_000)
}

impl PostgresTable {
    pub fn validate(&self) -> Result<(), FieldError> {
        if let Err(e) = self.url.parse::<tokio_postgres::Config>() {
            return Err(FieldError::new(
                "url",
                format!("is not a connection string: {e}"),
            ));
        }
        if self.query.trim().is_empty() || self.query.contains(';') {
            return Err(FieldError::new(
                "query",
                "must be one SELECT (no `;`): its rows are the table's",
            ));
        }
        if self.key.is_empty() {
            return Err(FieldError::new("key", "must name a column"));
        }
        for (field, d) in [("interval", self.interval), ("timeout", self.timeout)] {
            if d.is_zero() {
                return Err(FieldError::new(field, "must be more than 0"));
            }
        }
        Ok(())
    }

    /// Run the query now (an error stops the start), then every `interval` until `stop`.
    pub async fn start(
        &self,
        base_dir: &Path,
        max_bytes: usize,
        reporter: Reporter,
        stop: CancellationToken,
    ) -> Result<tokio::task::JoinHandle<()>, String> {
        let pool =
            crate::postgres::pool(&self.url, self.tls.as_ref(), base_dir, 1, *self.timeout).await?;
        let rows = self.load(&pool, max_bytes).await?;
        reporter.table.replace(rows, now_ms());
        let me = self.clone();
        Ok(tokio::spawn(async move {
            while pause(me.interval, &stop).await {
                match me.load(&pool, max_bytes).await {
                    Ok(rows) => {
                        reporter.table.replace(rows, now_ms());
                        reporter.report();
                    }
                    Err(why) => reporter.failed(&why),
                }
            }
        }))
    }

    async fn load(&self, pool: &deadpool_postgres::Pool, max_bytes: usize) -> Result<Rows, String> {
        let conn = pool
            .get()
            .await
            .map_err(|e| crate::postgres::pool_error(&e))?;
        let sql = format!("SELECT row_to_json(q)::text FROM ({}) AS q", self.query);
        let found = conn
            .query(&sql, &[])
            .await
            .map_err(|e| format!("the query failed: {}", crate::postgres::describe(&e)))?;
        let mut rows = Builder::new(Shape {
            key: &self.key,
            value: self.value.as_deref(),
            max_bytes,
        });
        for (i, row) in found.iter().enumerate() {
            let text: String = row.get(0);
            rows.json(text.as_bytes(), &|| format!("row {}", i + 1))?;
        }
        Ok(rows.finish())
    }
}
