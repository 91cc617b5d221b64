//! Connecting to PostgreSQL (a pool, TLS or not), its errors and its names: shared by
//! the sink, the source and `sluice query postgres`, beside [`crate::kafka`].

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `tls = { ... }` on a PostgreSQL sink or source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the certificate authorities to trust; default: the WebPKI roots.
    pub ca_file: Option<PathBuf>,
}

/// A name PostgreSQL keeps as written unquoted: lower-case letters, digits, `_`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a plain PostgreSQL name: use lower-case letters, digits and _ (at most 63, not starting with a digit)"
        ))
    }
}

/// `schema.table` as `(schema, table)`; the schema defaults to `public`.
pub fn schema_and_table(table: &str) -> (&str, &str) {
    table.split_once('.').unwrap_or(("public", table))
}

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
    }
}
