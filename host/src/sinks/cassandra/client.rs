//! Connecting to a Cassandra cluster, creating the keyspace and table, and preparing
//! the INSERT; shared by the sink and `sluice query cql`.

use super::{CassandraConfig, ColumnType, Consistency, Create, Layout, TlsConfig};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::frame::response::result::{ColumnType as CqlType, NativeType};
use scylla::policies::retry::FallthroughRetryPolicy;
use scylla::statement::prepared::PreparedStatement;
use std::path::Path;
use std::sync::Arc;

/// How to reach a cluster: what the sink's config and `sluice query cql`'s flags say.
#[derive(Debug, Clone)]
pub struct Connection {
    pub contact_points: Vec<String>,
    /// Whether the driver reads the schema (token-aware routing needs it; `sluice
    /// query` does not).
    pub fetch_schema: bool,
    pub local_datacenter: Option<String>,
    pub credentials: Option<(String, String)>,
    pub tls: Option<TlsConfig>,
    pub consistency: Consistency,
    pub timeout: std::time::Duration,
}

impl CassandraConfig {
    pub fn connection(&self) -> Connection {
        Connection {
            contact_points: self.contact_points.clone(),
            fetch_schema: true,
            local_datacenter: self.local_datacenter.clone(),
            credentials: self.username.clone().zip(self.password.clone()),
            tls: self.tls.clone(),
            consistency: self.consistency,
            timeout: *self.timeout,
        }
    }
}

impl Consistency {
    fn driver(self) -> scylla::statement::Consistency {
        use scylla::statement::Consistency as C;
        match self {
            Consistency::Any => C::Any,
            Consistency::One => C::One,
            Consistency::Two => C::Two,
            Consistency::Three => C::Three,
            Consistency::Quorum => C::Quorum,
            Consistency::All => C::All,
            Consistency::LocalQuorum => C::LocalQuorum,
            Consistency::EachQuorum => C::EachQuorum,
            Consistency::LocalOne => C::LocalOne,
        }
    }
}

/// Open a session. Retries are Sluice's (one policy for every connector), so the
/// driver's own retry policy is off; each request has `timeout`.
pub async fn connect(c: &Connection, base_dir: &Path) -> Result<Session, String> {
    let profile = ExecutionProfile::builder()
        .consistency(c.consistency.driver())
        .request_timeout(Some(c.timeout))
        .retry_policy(Arc::new(FallthroughRetryPolicy::new()))
        .build();
    let mut builder = SessionBuilder::new()
        .known_nodes(&c.contact_points)
        .fetch_schema_metadata(c.fetch_schema)
        .fetch_full_schema_metadata(c.fetch_schema)
        .connection_timeout(c.timeout)
        .default_execution_profile_handle(profile.into_handle());
    if let Some(dc) = &c.local_datacenter {
        builder = builder.prefer_datacenter(dc.clone());
    }
    if let Some((user, password)) = &c.credentials {
        builder = builder.user(user, password);
    }
    if let Some(tls) = &c.tls {
        builder = builder.tls_context(Some(Arc::new(tls_config(tls, base_dir)?)));
    }
    builder.build().await.map_err(|e| {
        format!(
            "cannot connect to Cassandra at {}: {e}",
            c.contact_points.join(", ")
        )
    })
}

fn tls_config(tls: &TlsConfig, base_dir: &Path) -> Result<rustls::ClientConfig, String> {
    crate::tls::client_config(tls.ca_file.as_deref(), base_dir)
}

/// `CREATE KEYSPACE IF NOT EXISTS` and `CREATE TABLE IF NOT EXISTS`.
pub fn create_statements(
    keyspace: &str,
    table: &str,
    create: &Create,
    layout: &Layout,
) -> [String; 2] {
    let columns: Vec<String> = layout
        .columns
        .iter()
        .map(|(name, ty)| format!("{name} {}", ty.cql()))
        .collect();
    let partition = match layout.partition_key.as_slice() {
        [one] => one.clone(),
        many => format!("({})", many.join(", ")),
    };
    let key: Vec<&str> = std::iter::once(partition.as_str())
        .chain(layout.clustering.iter().map(String::as_str))
        .collect();
    [
        format!(
            "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {}",
            create.replication_cql()
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.{table} ({}, PRIMARY KEY ({}))",
            columns.join(", "),
            key.join(", ")
        ),
    ]
}

/// Prepare `INSERT INTO keyspace.table (columns...) VALUES (?...)` and check that the
/// table's column types are the config's, so a mismatch stops the pipeline at start
/// instead of refusing every row.
pub async fn prepare_insert(
    session: &Session,
    keyspace: &str,
    table: &str,
    columns: &[(String, ColumnType)],
) -> Result<PreparedStatement, String> {
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    let marks = vec!["?"; names.len()].join(", ");
    let cql = format!(
        "INSERT INTO {keyspace}.{table} ({}) VALUES ({marks})",
        names.join(", ")
    );
    let mut prepared = session
        .prepare(cql.as_str())
        .await
        .map_err(|e| format!("cannot prepare `{cql}`: {e}"))?;
    // No `IF NOT EXISTS`: a retried INSERT writes the same row again.
    prepared.set_is_idempotent(true);
    for (spec, (name, ty)) in prepared.get_variable_col_specs().iter().zip(columns) {
        if !same_type(spec.typ(), *ty) {
            return Err(format!(
                "column `{name}` of {keyspace}.{table} is {:?} in the table but `{}` in the pipeline's `columns`",
                spec.typ(),
                ty.cql()
            ));
        }
    }
    Ok(prepared)
}

fn same_type(table: &CqlType<'_>, ours: ColumnType) -> bool {
    let CqlType::Native(native) = table else {
        return false;
    };
    matches!(
        (native, ours),
        (NativeType::Text | NativeType::Ascii, ColumnType::Text)
            | (NativeType::Uuid, ColumnType::Uuid)
            | (NativeType::Timestamp, ColumnType::Timestamp)
            | (NativeType::Int, ColumnType::Int)
            | (NativeType::BigInt, ColumnType::Bigint)
            | (NativeType::Double, ColumnType::Double)
            | (NativeType::Boolean, ColumnType::Boolean)
    )
}

/// Each row `cql` selects, as a JSON object, read page by page (`page_size` rows a
/// request: a whole-table scan never asks the cluster for everything at once).
/// `each` returns whether to go on.
pub async fn select_json(
    session: &Session,
    cql: &str,
    page_size: i32,
    mut each: impl FnMut(serde_json::Map<String, serde_json::Value>) -> bool,
) -> Result<(), String> {
    use futures_util::TryStreamExt;
    let mut statement = scylla::statement::Statement::new(cql);
    statement.set_page_size(page_size);
    let pager = session
        .query_iter(statement, ())
        .await
        .map_err(|e| format!("`{cql}`: {e}"))?;
    let names: Vec<String> = pager
        .column_specs()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let mut rows = pager
        .rows_stream::<scylla::value::Row>()
        .map_err(|e| format!("`{cql}`: {e}"))?;
    while let Some(row) = rows.try_next().await.map_err(|e| format!("`{cql}`: {e}"))? {
        let object = names
            .iter()
            .cloned()
            .zip(
                row.columns
                    .into_iter()
                    .map(|v| v.map_or(serde_json::Value::Null, json)),
            )
            .collect();
        if !each(object) {
            break;
        }
    }
    Ok(())
}

/// A CQL value as JSON: times as RFC 3339, UUIDs as text, collections as arrays and
/// objects.
pub fn json(v: scylla::value::CqlValue) -> serde_json::Value {
    use scylla::value::CqlValue as V;
    use serde_json::Value as J;
    match v {
        V::Text(s) | V::Ascii(s) => J::String(s),
        V::Boolean(b) => J::Bool(b),
        V::Int(n) => n.into(),
        V::BigInt(n) => n.into(),
        V::SmallInt(n) => n.into(),
        V::TinyInt(n) => n.into(),
        V::Double(f) => f.into(),
        V::Float(f) => f64::from(f).into(),
        V::Uuid(u) => J::String(u.to_string()),
        V::Timeuuid(u) => J::String(u.to_string()),
        V::Timestamp(t) => chrono::DateTime::from_timestamp_millis(t.0)
            .map(|t| J::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
            .unwrap_or_else(|| t.0.into()),
        V::List(items) | V::Set(items) => J::Array(items.into_iter().map(json).collect()),
        V::Map(pairs) => J::Object(
            pairs
                .into_iter()
                .map(|(k, v)| {
                    let key = match json(k) {
                        J::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, json(v))
                })
                .collect(),
        ),
        other => J::String(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_statements_spell_the_key() {
        let create: Create =
            toml::from_str("replication = { class = \"SimpleStrategy\", replication_factor = 1 }")
                .unwrap();
        let layout = Layout {
            columns: [
                ("w".to_owned(), ColumnType::Timestamp),
                ("p".to_owned(), ColumnType::Int),
                ("n".to_owned(), ColumnType::Bigint),
            ]
            .into(),
            partition_key: vec!["w".into(), "p".into()],
            clustering: vec!["n".into()],
        };
        let [ks, table] = create_statements("k", "t", &create, &layout);
        assert_eq!(
            ks,
            "CREATE KEYSPACE IF NOT EXISTS k WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
        );
        assert_eq!(
            table,
            "CREATE TABLE IF NOT EXISTS k.t (n bigint, p int, w timestamp, PRIMARY KEY ((w, p), n))"
        );
    }
}
