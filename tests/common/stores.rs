//! The store test servers and bare clients to read back what Sluice wrote. Never a
//! mock: a CQL server and a MongoDB-wire server speaking the real protocols, started
//! and PostgreSQL itself, started by `scripts/servers.sh` on 127.0.0.1, or genuine
//! ones from `SLUICE_TEST_CASSANDRA`, `SLUICE_TEST_MONGO` and `SLUICE_TEST_POSTGRES`
//! (docker-compose.yml's, for instance).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `host:port` of the CQL server every test shares.
pub fn cassandra() -> String {
    static ADDR: OnceLock<String> = OnceLock::new();
    ADDR.get_or_init(|| {
        std::env::var("SLUICE_TEST_CASSANDRA")
            .unwrap_or_else(|_| servers(&["start", "cassandra"], &[]))
    })
    .clone()
}

/// The Schema Registry's URL every test shares: the test registry
/// (tests/servers/registry), or a genuine one from `SLUICE_TEST_REGISTRY`.
pub fn registry() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        std::env::var("SLUICE_TEST_REGISTRY")
            .unwrap_or_else(|_| format!("http://{}", servers(&["start", "registry"], &[])))
    })
    .clone()
}

/// The MongoDB URI every test shares.
pub fn mongo() -> String {
    static URI: OnceLock<String> = OnceLock::new();
    URI.get_or_init(|| {
        std::env::var("SLUICE_TEST_MONGO")
            .unwrap_or_else(|_| format!("mongodb://{}", servers(&["start", "mongo"], &[])))
    })
    .clone()
}

/// The PostgreSQL connection string every test shares (PostgreSQL itself, from
/// Debian's package, or `SLUICE_TEST_POSTGRES`). Tests use tables of their own.
pub fn postgres() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        std::env::var("SLUICE_TEST_POSTGRES").unwrap_or_else(|_| {
            format!(
                "postgres://sluice:sluice@{}/sluice",
                servers(&["start", "postgres"], &[])
            )
        })
    })
    .clone()
}

/// Whether the tests use servers they did not start (and so may not stop).
pub fn external(store: Store) -> bool {
    std::env::var(store.variable()).is_ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Cassandra,
    Mongo,
    Postgres,
}

impl Store {
    fn server(self) -> &'static str {
        match self {
            Store::Cassandra => "cassandra",
            Store::Mongo => "mongo",
            Store::Postgres => "postgres",
        }
    }

    fn variable(self) -> &'static str {
        match self {
            Store::Cassandra => "SLUICE_TEST_CASSANDRA",
            Store::Mongo => "SLUICE_TEST_MONGO",
            Store::Postgres => "SLUICE_TEST_POSTGRES",
        }
    }
}

/// `scripts/servers.sh ARGS`, its last line of output. The CQL server is the one this
/// build made, when there is one (so no cargo runs inside a test).
fn servers(args: &[&str], env: &[(&str, String)]) -> String {
    let mut cmd = Command::new(super::repo().join("scripts/servers.sh"));
    cmd.args(args);
    if std::env::var_os("SLUICE_CQL_SERVER_BIN").is_none() {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
        for profile in ["release", "debug"] {
            let bin = target.join(profile).join("sluice-cql-test-server");
            if bin.exists() {
                cmd.env("SLUICE_CQL_SERVER_BIN", bin);
                break;
            }
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running scripts/servers.sh");
    assert!(
        out.status.success(),
        "scripts/servers.sh {args:?} failed (set SLUICE_TEST_CASSANDRA / SLUICE_TEST_MONGO to use other servers): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// A server of a test's own, which it may stop and start again (a store going away
/// mid-stream) without disturbing the other tests. Its state folder is its own; the
/// binaries are the shared cache's. Stopped when dropped.
pub struct OwnServer {
    store: Store,
    dir: tempfile::TempDir,
    port: u16,
    /// PostgreSQL's cluster: outside `dir` (run as root, the server is the postgres
    /// user, who cannot enter a private temporary folder), removed on drop.
    data: Option<PathBuf>,
}

impl OwnServer {
    pub fn start(store: Store) -> OwnServer {
        let port = super::free_port();
        let data = (store == Store::Postgres)
            .then(|| PathBuf::from("/var/tmp/sluice-postgres").join(unique_name("test")));
        let server = OwnServer {
            store,
            dir: tempfile::tempdir().unwrap(),
            port,
            data,
        };
        server.run("start");
        server
    }

    fn run(&self, command: &str) {
        let shared_bin = match std::env::var("SLUICE_SERVERS_DIR") {
            Ok(dir) => PathBuf::from(dir).join("bin"),
            Err(_) => {
                PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/sluice/servers/bin")
            }
        };
        let port_var = match self.store {
            Store::Cassandra => "SLUICE_CASSANDRA_PORT",
            Store::Mongo => "SLUICE_MONGO_PORT",
            Store::Postgres => "SLUICE_POSTGRES_PORT",
        };
        let mut env = vec![
            ("SLUICE_SERVERS_DIR", self.dir.path().display().to_string()),
            ("SLUICE_SERVERS_BIN", shared_bin.display().to_string()),
            (port_var, self.port.to_string()),
        ];
        if let Some(data) = &self.data {
            env.push(("SLUICE_POSTGRES_DATA", data.display().to_string()));
        }
        servers(&[command, self.store.server()], &env);
    }

    /// Stop it (its data is kept) ...
    pub fn stop(&self) {
        self.run("stop");
    }

    /// ... and start it again on the same port, with the same data.
    pub fn restart(&self) {
        self.run("start");
    }

    /// Its log, for failure messages.
    pub fn log(&self) -> String {
        let log = self
            .dir
            .path()
            .join(format!("run/{}.log", self.store.server()));
        std::fs::read_to_string(log).unwrap_or_default()
    }

    /// What a sink's config takes: `host:port`, a MongoDB URI or a PostgreSQL URL.
    pub fn address(&self) -> String {
        match self.store {
            Store::Cassandra => format!("127.0.0.1:{}", self.port),
            Store::Mongo => format!("mongodb://127.0.0.1:{}", self.port),
            Store::Postgres => format!("postgres://sluice:sluice@127.0.0.1:{}/sluice", self.port),
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.run("stop");
        if let Some(data) = &self.data {
            let _ = std::fs::remove_dir_all(data);
        }
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Every row `cql` selects, read page by page with a bare driver session.
pub fn cql_rows(contact_point: &str, cql: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    try_cql_rows(contact_point, cql).unwrap()
}

/// The same, or why not (the table does not exist yet, say).
pub fn try_cql_rows(
    contact_point: &str,
    cql: &str,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, String> {
    use sluice::sinks::cassandra::{client, Consistency};
    block_on(async {
        let connection = client::Connection {
            contact_points: vec![contact_point.to_owned()],
            fetch_schema: false,
            local_datacenter: None,
            credentials: None,
            tls: None,
            consistency: Consistency::One,
            timeout: std::time::Duration::from_secs(30),
        };
        let session = client::connect(&connection, Path::new(".")).await?;
        let mut rows = Vec::new();
        client::select_json(&session, cql, 1000, |row| {
            rows.push(row);
            true
        })
        .await?;
        Ok(rows)
    })
}

/// Every document of `database.collection`, sorted by `_id`.
pub fn mongo_docs(uri: &str, database: &str, collection: &str) -> Vec<serde_json::Value> {
    use sluice::sinks::mongo::client;
    block_on(async {
        let c = client::connect(uri, std::time::Duration::from_secs(30))
            .await
            .unwrap();
        let mut docs = Vec::new();
        let sort = mongodb::bson::doc! { "_id": 1 };
        client::find_json(
            &c,
            database,
            collection,
            Default::default(),
            Some(sort),
            None,
            |d| {
                docs.push(d);
                true
            },
        )
        .await
        .unwrap();
        docs
    })
}

/// A name for a keyspace or database no other test (or earlier run) uses: lower case
/// letters, digits and `_`.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000
    )
}

/// Every row `sql` selects, each as its JSON (`SELECT row_to_json(t) FROM ...`
/// wrapped around the query), with a bare tokio-postgres client.
pub fn pg_rows(url: &str, sql: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    try_pg_rows(url, sql).unwrap()
}

/// The same, or the server's error.
pub fn try_pg_rows(
    url: &str,
    sql: &str,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, String> {
    block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let rows = client
            .query(&format!("SELECT row_to_json(q)::text FROM ({sql}) q"), &[])
            .await
            .map_err(|e| sluice::postgres::describe(&e))?;
        Ok(rows
            .iter()
            .map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap())
            .collect())
    })
}

/// Run `sql` (several statements may be given) with a bare client.
pub fn pg_execute(url: &str, sql: &str) {
    block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client.batch_execute(sql).await.unwrap();
    })
}
