//! `type = "cassandra"`: records to a Cassandra table, with the ScyllaDB driver (which
//! speaks CQL to Apache Cassandra 4.x/5.x as well).
//!
//! Each record's JSON fields become a row's columns by name, converted to the
//! column's CQL type ([`row`]). Rows are written as prepared `INSERT`s, which are
//! upserts in Cassandra: a replayed record overwrites its row instead of adding one.
//! They run concurrently with at most `concurrency` in flight and never as a
//! multi-partition `BATCH` (an anti-pattern on a real cluster: one coordinator ends up
//! holding every partition's writes). A batch counts as written only when every row
//! is acknowledged at the configured consistency.
//!
//! - config: this file; the writer: [`sink`]; conversion: [`row`]; connecting and
//!   creating the schema: [`client`] (also used by `sluice query cql`).

pub mod client;
pub mod row;
mod sink;

pub use row::ColumnType;
pub use sink::CassandraSink;

use super::Input;
use crate::duration::Duration;
use crate::field_error::FieldError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CassandraConfig {
    /// Nodes to connect to first (`"host:port"`, or several comma-separated); the
    /// driver discovers the rest of the cluster from them.
    #[serde(deserialize_with = "one_or_many")]
    pub contact_points: Vec<String>,
    /// The datacenter whose nodes are preferred (with `local_*` consistency levels,
    /// the one that must acknowledge). Default: no preference.
    pub local_datacenter: Option<String>,
    pub keyspace: String,
    pub table: String,
    #[serde(default)]
    pub consistency: Consistency,
    /// Credentials for PasswordAuthenticator; write them as `${VAR}`.
    pub username: Option<String>,
    pub password: Option<String>,
    /// `tls = {}` (the WebPKI roots) or `tls = { ca_file = "ca.pem" }`.
    pub tls: Option<TlsConfig>,
    /// Create the keyspace and table at start if they do not exist.
    pub create: Option<Create>,
    /// Column name to CQL type. Default: the seeds' `created_users` table (`id uuid`
    /// and eleven `text` columns), with `primary_key = "id"`.
    pub columns: Option<BTreeMap<String, ColumnType>>,
    /// `"id"`, or `["a", "b"]` (partition key `a`, clustering column `b`), or
    /// `[["a", "b"], "c"]` (composite partition key). Needed with `columns`.
    pub primary_key: Option<PrimaryKey>,
    /// Window partials (`[window] output = "partials"`): the `text` column, part of the
    /// primary key, that takes each result's source partition (`users_created-3`, from
    /// its `sluice.partition` header). Rows are then keyed by (window, partition): a
    /// host that takes a partition over rewrites that partition's row, and a window's
    /// total is the sum of its rows, summed by the reader.
    pub partition_column: Option<String>,
    /// Most rows being written at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// How long one write may take before it counts as failed (and is retried).
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
}

fn default_concurrency() -> usize {
    64
}
fn default_timeout() -> Duration {
    Duration::from_millis(10_000)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the certificate authorities to trust; default: the WebPKI roots.
    pub ca_file: Option<PathBuf>,
}

/// `create = { replication = { class = "SimpleStrategy", replication_factor = 1 } }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Create {
    /// The keyspace's replication map, as CQL has it (`class` and its options, e.g.
    /// `{ class = "NetworkTopologyStrategy", datacenter1 = 3 }`).
    pub replication: BTreeMap<String, toml::Value>,
}

/// The consistency level of every write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    Any,
    One,
    Two,
    Three,
    Quorum,
    All,
    #[default]
    LocalQuorum,
    EachQuorum,
    LocalOne,
}

/// `"id"`, `["a", "b"]` or `[["a", "b"], "c"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PrimaryKey {
    One(String),
    Parts(Vec<KeyPart>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum KeyPart {
    Column(String),
    Composite(Vec<String>),
}

/// A table's layout, resolved from the config (defaults applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub columns: BTreeMap<String, ColumnType>,
    pub partition_key: Vec<String>,
    pub clustering: Vec<String>,
}

impl Layout {
    pub fn is_key(&self, column: &str) -> bool {
        self.partition_key.iter().any(|c| c == column)
            || self.clustering.iter().any(|c| c == column)
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(|p| p.trim().to_owned()).collect(),
        OneOrMany::Many(v) => v,
    })
}

/// A name CQL takes unquoted and keeps as written: lower-case letters, digits and
/// `_`, not starting with a digit. (Cassandra folds unquoted names to lower case, so
/// a name with capitals would silently become another.)
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let starts_well = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    if starts_well
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 48
    {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a plain CQL name: use lower-case letters, digits and _ (at most 48, not starting with a digit)"
        ))
    }
}

impl CassandraConfig {
    /// The columns and key, defaults applied.
    pub fn layout(&self) -> Layout {
        let columns = self.columns.clone().unwrap_or_else(|| {
            crate::schema::SEED_COLUMNS
                .iter()
                .map(|&c| {
                    let t = if c == "id" {
                        ColumnType::Uuid
                    } else {
                        ColumnType::Text
                    };
                    (c.to_owned(), t)
                })
                .collect()
        });
        let (partition_key, clustering) = match &self.primary_key {
            None => (vec!["id".to_owned()], Vec::new()),
            Some(PrimaryKey::One(c)) => (vec![c.clone()], Vec::new()),
            Some(PrimaryKey::Parts(parts)) => {
                let mut parts = parts.iter().map(|p| match p {
                    KeyPart::Column(c) => vec![c.clone()],
                    KeyPart::Composite(cs) => cs.clone(),
                });
                let partition = parts.next().unwrap_or_default();
                (partition, parts.flatten().collect())
            }
        };
        Layout {
            columns,
            partition_key,
            clustering,
        }
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        let err = |field: &str, m: String| Err(FieldError::new(field, m));
        if self.contact_points.iter().all(|c| c.trim().is_empty()) {
            return err(
                "contact_points",
                "must name at least one node, like \"127.0.0.1:9042\"".into(),
            );
        }
        check_name(&self.keyspace).or_else(|m| err("keyspace", m))?;
        check_name(&self.table).or_else(|m| err("table", m))?;
        if self.username.is_some() != self.password.is_some() {
            return err(
                "username",
                "`username` and `password` go together: give both or neither".into(),
            );
        }
        if !(1..=4096).contains(&self.concurrency) {
            return err("concurrency", "must be between 1 and 4096".into());
        }
        if self.timeout.is_zero() {
            return err("timeout", "must be more than 0".into());
        }
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
                    "are needed with `primary_key` (name every column and its CQL type)".into(),
                )
            }
            _ => {}
        }
        let layout = self.layout();
        for name in layout.columns.keys() {
            check_name(name).or_else(|m| err(&format!("columns.{name}"), m))?;
        }
        if layout.partition_key.is_empty() {
            return err(
                "primary_key",
                "needs at least one partition key column".into(),
            );
        }
        for key in layout.partition_key.iter().chain(&layout.clustering) {
            if !layout.columns.contains_key(key) {
                return err(
                    "primary_key",
                    format!("names `{key}`, which is not in `columns`"),
                );
            }
        }
        if let Some(column) = &self.partition_column {
            let field = "partition_column";
            match layout.columns.get(column) {
                None => {
                    return err(
                        field,
                        format!("names `{column}`, which is not in `columns`"),
                    )
                }
                Some(ColumnType::Text) => {}
                Some(other) => {
                    return err(
                        field,
                        format!("`{column}` is {}: it must be a text column", other.cql()),
                    )
                }
            }
            if !layout.is_key(column) {
                return err(
                    field,
                    format!(
                        "`{column}` must be part of the primary key, or the partitions' results overwrite each other"
                    ),
                );
            }
        }
        if let Some(create) = &self.create {
            create.validate()?;
        }
        Ok(())
    }
}

impl Create {
    fn validate(&self) -> Result<(), FieldError> {
        let field = "create.replication";
        match self.replication.get("class") {
            Some(toml::Value::String(c)) if !c.trim().is_empty() => {}
            _ => {
                return Err(FieldError::new(
                    field,
                    "needs a `class`, e.g. { class = \"SimpleStrategy\", replication_factor = 1 }",
                ))
            }
        }
        for (k, v) in &self.replication {
            let plain = !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !plain {
                return Err(FieldError::new(
                    format!("{field}.{k}"),
                    "is not a plain option name",
                ));
            }
            match v {
                toml::Value::String(s) if !s.contains('\'') => {}
                toml::Value::Integer(_) => {}
                _ => {
                    return Err(FieldError::new(
                        format!("{field}.{k}"),
                        "must be a string (without quotes in it) or a whole number",
                    ))
                }
            }
        }
        Ok(())
    }

    /// The replication map as a CQL literal: `{'class': 'SimpleStrategy', ...}`.
    pub fn replication_cql(&self) -> String {
        let entries: Vec<String> = self
            .replication
            .iter()
            .map(|(k, v)| match v {
                toml::Value::String(s) => format!("'{k}': '{s}'"),
                other => format!("'{k}': {other}"),
            })
            .collect();
        format!("{{{}}}", entries.join(", "))
    }
}

impl super::SinkConnector for CassandraConfig {
    fn describe(&self) -> String {
        format!("cassandra {}.{}", self.keyspace, self.table)
    }

    fn validate(&self, _input: Input) -> Result<(), FieldError> {
        Self::validate(self)
    }

    async fn open(
        &self,
        ctx: &super::SinkContext,
    ) -> Result<Box<dyn super::Sink>, super::SinkError> {
        Ok(Box::new(sink::CassandraSink::open(self, ctx).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> CassandraConfig {
        toml::from_str(&format!(
            "contact_points = \"127.0.0.1:9042, 10.0.0.2:9042\"\nkeyspace = \"ks\"\ntable = \"t\"\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn the_default_layout_is_the_seeds_table() {
        let c = parse("");
        assert_eq!(c.contact_points, ["127.0.0.1:9042", "10.0.0.2:9042"]);
        let l = c.layout();
        assert_eq!(l.columns.len(), 12);
        assert_eq!(l.columns["id"], ColumnType::Uuid);
        assert_eq!(l.columns["dob"], ColumnType::Text);
        assert_eq!(l.partition_key, ["id"]);
        assert!(c.validate().is_ok());
        assert_eq!(c.consistency, Consistency::LocalQuorum);
    }

    #[test]
    fn keys_and_columns_are_checked() {
        let c = parse(
            "columns = { w = \"timestamp\", p = \"int\", n = \"bigint\" }\nprimary_key = [[\"w\", \"p\"], \"n\"]",
        );
        let l = c.layout();
        assert_eq!(
            (l.partition_key.clone(), l.clustering.clone()),
            (vec!["w".into(), "p".into()], vec!["n".into()])
        );
        assert!(c.validate().is_ok());

        let missing = parse("columns = { w = \"timestamp\" }\nprimary_key = \"x\"");
        assert_eq!(
            missing.validate().unwrap_err().message,
            "names `x`, which is not in `columns`"
        );
        let upper = parse("columns = { Name = \"text\" }\nprimary_key = \"Name\"");
        assert_eq!(upper.validate().unwrap_err().field, "columns.Name");
        let no_key = parse("columns = { a = \"text\" }");
        assert_eq!(no_key.validate().unwrap_err().field, "primary_key");
        let half = parse("username = \"u\"");
        assert_eq!(half.validate().unwrap_err().field, "username");
        let bad_type: Result<CassandraConfig, _> = toml::from_str(
            "contact_points = \"a:1\"\nkeyspace = \"k\"\ntable = \"t\"\ncolumns = { a = \"blob\" }\nprimary_key = \"a\"",
        );
        assert!(bad_type
            .unwrap_err()
            .to_string()
            .contains("unknown variant `blob`"));
    }

    #[test]
    fn a_partition_column_is_a_text_key_column() {
        let cols =
            "columns = { window_start = \"timestamp\", partition = \"text\", n = \"bigint\" }";
        let good = parse(&format!(
            "{cols}\nprimary_key = [\"window_start\", \"partition\"]\npartition_column = \"partition\""
        ));
        assert!(good.validate().is_ok());
        let not_key = parse(&format!(
            "{cols}\nprimary_key = \"window_start\"\npartition_column = \"partition\""
        ));
        assert!(not_key
            .validate()
            .unwrap_err()
            .message
            .contains("primary key"));
        let not_text = parse(&format!(
            "{cols}\nprimary_key = [\"window_start\", \"n\"]\npartition_column = \"n\""
        ));
        assert!(not_text
            .validate()
            .unwrap_err()
            .message
            .contains("text column"));
    }

    #[test]
    fn replication_becomes_a_cql_map() {
        let c = parse(
            "create = { replication = { class = \"SimpleStrategy\", replication_factor = 1 } }",
        );
        let create = c.create.as_ref().unwrap();
        assert_eq!(
            create.replication_cql(),
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        );
        assert!(c.validate().is_ok());
        let bad = parse("create = { replication = { replication_factor = 1 } }");
        assert_eq!(bad.validate().unwrap_err().field, "create.replication");
    }
}
