//! `type = "postgres"`: records to a PostgreSQL table, with tokio-postgres and a
//! deadpool pool.
//!
//! Each batch is one statement, one round trip: `INSERT INTO t (cols) SELECT * FROM
//! UNNEST($1::uuid[], $2::text[], ...) ON CONFLICT (key) DO UPDATE SET ...` (an upsert
//! by the primary key: a replayed record rewrites its row), prepared once, with one
//! array per column, whatever the batch's size. A batch over `rows_per_statement` is
//! split, the parts written at once on up to `concurrency` connections. A statement
//! the server refuses for a row's sake (a constraint, a value of the wrong type) is
//! tried again a row at a time, so that only the refused rows go to the dead letters,
//! each with the server's message, the constraint or column, and the row's key.
//! Lost connections, a server shutting down or starting, serialization failures and
//! deadlocks are retried with the pipeline's retry policy; anything else stops the
//! pipeline. A batch counts as written once its statement has committed.
//!
//! - config: this file; connecting, TLS and the table: [`client`] (also `sluice
//!   query postgres`); values: [`row`]; the writer: [`sink`].

pub mod row;
mod sink;
pub mod table;

pub use crate::postgres::{check_name, schema_and_table, TlsConfig};
pub use row::PgType;
pub use sink::PostgresSink;

use super::Input;
use crate::duration::Duration;
use crate::field_error::FieldError;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user:${PGPASSWORD}@host:5432/db` (or libpq's `host=... user=...`).
    pub url: String,
    /// The table, optionally with its schema: `created_users`, `staging.users`.
    pub table: String,
    /// Column name to type. Default: the seeds' `created_users` (`id uuid` and eleven
    /// `text` columns, as format_user emits them), with `primary_key = "id"`.
    pub columns: Option<BTreeMap<String, PgType>>,
    /// The key upserts go by: `"id"` or `["a", "b"]`. Needed with `columns`.
    pub primary_key: Option<KeyColumns>,
    /// `CREATE TABLE IF NOT EXISTS` (and its schema) at start. Default true.
    #[serde(default = "yes")]
    pub create: bool,
    #[serde(default)]
    pub mode: Mode,
    /// `tls = {}` (the WebPKI roots) or `tls = { ca_file = "ca.pem" }`.
    pub tls: Option<TlsConfig>,
    /// Connections (and statements in flight) at most.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Rows per statement at most (a bigger batch is split).
    #[serde(default = "default_rows")]
    pub rows_per_statement: usize,
    /// How long connecting or one statement may take.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
}

fn yes() -> bool {
    true
}
fn default_concurrency() -> usize {
    4
}
fn default_rows() -> usize {
    5000
}
fn default_timeout() -> Duration {
    Duration::from_millis(10_000)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `INSERT ... ON CONFLICT (key) DO UPDATE`: a replayed record rewrites its row.
    #[default]
    Upsert,
    /// Plain `INSERT`: a row whose key exists is refused (a dead letter).
    Insert,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum KeyColumns {
    One(String),
    Many(Vec<String>),
}

/// A table's columns and key, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// In the statement's order.
    pub columns: Vec<(String, PgType)>,
    pub key: Vec<String>,
}

impl PostgresConfig {
    pub fn layout(&self) -> Layout {
        let columns = match &self.columns {
            Some(c) => c.iter().map(|(n, t)| (n.clone(), *t)).collect(),
            None => crate::schema::SEED_COLUMNS
                .iter()
                .map(|&c| {
                    let t = if c == "id" {
                        PgType::Uuid
                    } else {
                        PgType::Text
                    };
                    (c.to_owned(), t)
                })
                .collect(),
        };
        let key = match &self.primary_key {
            None => vec!["id".to_owned()],
            Some(KeyColumns::One(c)) => vec![c.clone()],
            Some(KeyColumns::Many(cs)) => cs.clone(),
        };
        Layout { columns, key }
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        let err = |f: &str, m: String| Err(FieldError::new(f, m));
        if let Err(e) = self.url.parse::<tokio_postgres::Config>() {
            return err(
                "url",
                format!("is not a PostgreSQL connection string ({e}); write it like \"postgres://user:${{PGPASSWORD}}@127.0.0.1:5432/db\""),
            );
        }
        let (schema, table) = schema_and_table(&self.table);
        check_name(schema).or_else(|m| err("table", m))?;
        check_name(table).or_else(|m| err("table", m))?;
        match (&self.columns, &self.primary_key) {
            (Some(_), None) => {
                return err(
                    "primary_key",
                    "is needed with `columns` (e.g. primary_key = \"id\")".into(),
                )
            }
            (None, Some(_)) => {
                return err(
                    "columns",
                    "are needed with `primary_key` (name every column and its type)".into(),
                )
            }
            _ => {}
        }
        let layout = self.layout();
        for (name, _) in &layout.columns {
            check_name(name).or_else(|m| err(&format!("columns.{name}"), m))?;
        }
        if layout.key.is_empty() {
            return err("primary_key", "needs at least one column".into());
        }
        for k in &layout.key {
            if !layout.columns.iter().any(|(n, _)| n == k) {
                return err(
                    "primary_key",
                    format!("names `{k}`, which is not in `columns`"),
                );
            }
        }
        if !(1..=64).contains(&self.concurrency) {
            return err("concurrency", "must be between 1 and 64".into());
        }
        if !(1..=100_000).contains(&self.rows_per_statement) {
            return err("rows_per_statement", "must be between 1 and 100000".into());
        }
        if self.timeout.is_zero() {
            return err("timeout", "must be more than 0".into());
        }
        Ok(())
    }
}

impl super::SinkConnector for PostgresConfig {
    fn describe(&self) -> String {
        format!("postgres {}", self.table)
    }

    fn validate(&self, _input: Input) -> Result<(), FieldError> {
        Self::validate(self)
    }

    async fn open(
        &self,
        ctx: &super::SinkContext,
    ) -> Result<Box<dyn super::Sink>, super::SinkError> {
        Ok(Box::new(sink::PostgresSink::open(self, ctx).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> PostgresConfig {
        toml::from_str(&format!(
            "url = \"postgres://u:p@127.0.0.1:5432/db\"\ntable = \"created_users\"\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn defaults_are_the_seeds_table_upserted_by_id() {
        let c = parse("");
        assert!(c.validate().is_ok());
        assert_eq!(schema_and_table(&c.table), ("public", "created_users"));
        let layout = c.layout();
        assert_eq!(layout.columns.len(), 12);
        assert_eq!(layout.columns[0], ("id".to_owned(), PgType::Uuid));
        assert_eq!(layout.key, ["id"]);
        assert!(c.create);
        assert_eq!(c.mode, Mode::Upsert);
    }

    #[test]
    fn bad_settings_are_named() {
        let field = |extra: &str| parse(extra).validate().unwrap_err().field;
        assert_eq!(field("columns = { a = \"text\" }"), "primary_key");
        assert_eq!(
            field("columns = { a = \"text\" }\nprimary_key = \"b\""),
            "primary_key"
        );
        assert_eq!(
            field("columns = { A = \"text\" }\nprimary_key = \"A\""),
            "columns.A"
        );
        assert_eq!(field("concurrency = 0"), "concurrency");
        let c: PostgresConfig = toml::from_str("url = \"mysql://x\"\ntable = \"t\"").unwrap();
        assert_eq!(c.validate().unwrap_err().field, "url");
        let c: PostgresConfig =
            toml::from_str("url = \"postgres://h/db\"\ntable = \"a.b.c\"").unwrap();
        assert_eq!(c.validate().unwrap_err().field, "table");
    }
}
