//! Connecting to PostgreSQL (a pool, TLS or not) and making the table: shared by the
//! sink, the source and `sluice query postgres`.

use super::{Layout, TlsConfig};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::path::Path;
use std::time::Duration;

/// A pool of up to `size` connections to `url`, its first connection made (so a
/// wrong address, password or database fails here, at start). The server cancels a
/// statement that runs past `timeout` (statement_timeout): a statement given up on
/// must not commit later, behind newer writes.
pub async fn pool(
    url: &str,
    tls: Option<&TlsConfig>,
    base_dir: &Path,
    size: usize,
    timeout: Duration,
) -> Result<Pool, String> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("bad connection string: {e}"))?;
    let limit = format!("-c statement_timeout={}", timeout.as_millis().max(1));
    let options = match config.get_options() {
        Some(given) => format!("{given} {limit}"),
        None => limit,
    };
    config.options(&options);
    pool_of(config, &redact(url), tls, base_dir, size, timeout).await
}

/// The same from a parsed config; `shown` names the server in errors.
pub async fn pool_of(
    mut config: tokio_postgres::Config,
    shown: &str,
    tls: Option<&TlsConfig>,
    base_dir: &Path,
    size: usize,
    timeout: Duration,
) -> Result<Pool, String> {
    config.connect_timeout(timeout);
    let manager_config = ManagerConfig {
        // A connection that broke while idle is found before it is handed out.
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match tls {
        None => Manager::from_config(config.clone(), tokio_postgres::NoTls, manager_config),
        Some(t) => Manager::from_config(
            config.clone(),
            rustls_connector(t, base_dir)?,
            manager_config,
        ),
    };
    let pool = Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .build()
        .map_err(|e| e.to_string())?;
    let first = pool
        .get()
        .await
        .map_err(|e| format!("cannot connect to {shown}: {}", pool_error(&e)))?;
    drop(first);
    Ok(pool)
}

fn rustls_connector(
    tls: &TlsConfig,
    base_dir: &Path,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    let config = crate::tls::client_config(tls.ca_file.as_deref(), base_dir)?;
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A pool's error, said plainly (the server's message where there is one).
pub fn pool_error(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => describe(e),
        other => other.to_string(),
    }
}

/// Whether an error may pass by itself: no answer from the server (a connection lost
/// or refused), or a connection, resource, shutdown, serialization, I/O, standby or
/// lock-timeout error. Anything else needs someone to act.
pub fn is_transient(e: &tokio_postgres::Error) -> bool {
    let Some(db) = e.as_db_error() else {
        return true;
    };
    let code = db.code().code();
    matches!(&code[..2], "08" | "40" | "53" | "57" | "58") || code == "25006" || code == "55P03"
}

/// A driver error with the server's message, code and what it names.
pub fn describe(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return e.to_string();
    };
    let mut out = format!("{} ({})", db.message(), db.code().code());
    if let Some(detail) = db.detail() {
        out.push_str(&format!(": {detail}"));
    }
    if let Some(c) = db.constraint() {
        out.push_str(&format!("; constraint `{c}`"));
    }
    if let Some(c) = db.column() {
        out.push_str(&format!("; column `{c}`"));
    }
    out
}

/// The connection string with its password hidden.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// `"a"."b"`: a name quoted for SQL (names are checked plain at load; quoting keeps
/// reserved words such as `user` working).
pub fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The statements that make the schema and table if they are missing.
pub fn create_statements(schema: &str, table: &str, layout: &Layout) -> Vec<String> {
    let columns: Vec<String> = layout
        .columns
        .iter()
        .map(|(n, t)| {
            let not_null = if layout.key.contains(n) {
                " NOT NULL"
            } else {
                ""
            };
            format!("{} {}{not_null}", quoted(n), t.sql())
        })
        .collect();
    let key: Vec<String> = layout.key.iter().map(|k| quoted(k)).collect();
    vec![
        format!("CREATE SCHEMA IF NOT EXISTS {}", quoted(schema)),
        format!(
            "CREATE TABLE IF NOT EXISTS {}.{} ({}, PRIMARY KEY ({}))",
            quoted(schema),
            quoted(table),
            columns.join(", "),
            key.join(", ")
        ),
    ]
}

/// Check the table's columns against the layout: a column missing or of another type
/// stops the pipeline at start, naming it.
pub async fn check_columns(
    client: &tokio_postgres::Client,
    schema: &str,
    table: &str,
    layout: &Layout,
) -> Result<(), String> {
    let rows = client
        .query(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
            &[&schema, &table],
        )
        .await
        .map_err(|e| describe(&e))?;
    if rows.is_empty() {
        return Err(format!(
            "table {schema}.{table} does not exist (set create = true to make it)"
        ));
    }
    for (name, t) in &layout.columns {
        let found = rows.iter().find(|r| r.get::<_, String>(0) == *name);
        match found {
            None => {
                return Err(format!(
                    "table {schema}.{table} has no column `{name}` (the sink writes it as {})",
                    t.sql()
                ))
            }
            Some(r) => {
                let actual: String = r.get(1);
                let accepted = actual == t.catalog_name()
                    || (*t == super::PgType::Text && actual == "character varying");
                if !accepted {
                    return Err(format!(
                        "column `{name}` of {schema}.{table} is {actual}, but the sink writes it as {}",
                        t.sql()
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_and_names_quoted() {
        assert_eq!(
            redact("postgres://sluice:secret@127.0.0.1:5432/db"),
            "postgres://sluice:***@127.0.0.1:5432/db"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(quoted("user"), "\"user\"");
        let layout = Layout {
            columns: vec![
                ("id".into(), super::super::PgType::Uuid),
                ("n".into(), super::super::PgType::Bigint),
            ],
            key: vec!["id".into()],
        };
        assert_eq!(
            create_statements("public", "t", &layout)[1],
            "CREATE TABLE IF NOT EXISTS \"public\".\"t\" (\"id\" uuid NOT NULL, \"n\" bigint, PRIMARY KEY (\"id\"))"
        );
    }
}
