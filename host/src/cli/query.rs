//! `sluice query`: look at what the Cassandra, MongoDB and PostgreSQL sinks wrote, the
//! way `cqlsh`, `mongosh` and `psql` would, as JSON lines (rows and documents) on
//! stdout.

use super::Failure;
use clap::Subcommand;
use std::io::Write;

#[derive(Subcommand)]
pub enum QueryCommand {
    /// Run a CQL SELECT and print each row as a JSON line.
    #[command(
        long_about = "Run a CQL SELECT and print each row as a JSON object on its own line. \
            Rows are read page by page, so a whole table can be scanned; --count prints \
            only how many rows there are (counted page by page, not with COUNT(*), \
            which times out on large tables).",
        after_help = "Examples:\n  sluice query cql \"SELECT * FROM spark_streams.created_users\" --limit 5\n  \
            sluice query cql \"SELECT id FROM spark_streams.created_users\" --count\n  \
            SLUICE_CASSANDRA=10.0.0.5:9042 sluice query cql \"SELECT ...\""
    )]
    Cql {
        /// The SELECT statement.
        statement: String,
        /// Nodes to connect to (host:port, comma-separated).
        #[arg(long, env = "SLUICE_CASSANDRA", default_value = "127.0.0.1:9042")]
        contact_points: String,
        /// Username (the password comes from SLUICE_CASSANDRA_PASSWORD).
        #[arg(long)]
        username: Option<String>,
        /// Print at most this many rows.
        #[arg(long)]
        limit: Option<u64>,
        /// Print the number of rows instead of the rows.
        #[arg(long)]
        count: bool,
    },
    /// Find documents in a collection and print each as a JSON line.
    #[command(
        long_about = "Find the documents of DATABASE.COLLECTION that match --filter (a JSON \
            query, as in mongosh's find) and print each as relaxed Extended JSON on its \
            own line; --count prints only how many match.",
        after_help = "Examples:\n  sluice query mongo UserData.GenderCounts --sort '{\"_id\": 1}'\n  \
            sluice query mongo UserData.User --filter '{\"gender\": \"female\"}' --count\n  \
            sluice query mongo UserData.User --uri mongodb://user:pw@db:27017 --limit 3"
    )]
    Mongo {
        /// DATABASE.COLLECTION, e.g. UserData.User.
        namespace: String,
        /// The connection string.
        #[arg(
            long,
            env = "SLUICE_MONGO",
            default_value = "mongodb://127.0.0.1:27017"
        )]
        uri: String,
        /// A query document in JSON, e.g. '{"gender": "female"}'.
        #[arg(long, default_value = "{}")]
        filter: String,
        /// A sort document in JSON, e.g. '{"_id": 1}'.
        #[arg(long)]
        sort: Option<String>,
        /// Print at most this many documents.
        #[arg(long)]
        limit: Option<u64>,
        /// Print the number of matching documents instead of the documents.
        #[arg(long)]
        count: bool,
    },
    /// Run a PostgreSQL SELECT and print each row as a JSON line.
    #[command(
        long_about = "Run a PostgreSQL SELECT (or VALUES, or WITH ... SELECT) and print each \
            row as a JSON object on its own line (row_to_json: uuid and text as strings, \
            numbers as numbers, timestamptz in ISO 8601); --count prints only how many \
            rows it returns. The password may be in the URL or in PGPASSWORD.",
        after_help = "Examples:\n  sluice query postgres \"SELECT * FROM created_users\" --limit 5\n  \
            sluice query postgres \"SELECT gender, count(*) FROM created_users GROUP BY 1\"\n  \
            PGPASSWORD=secret sluice query postgres --url postgres://app@db:5432/users \"SELECT ...\""
    )]
    Postgres {
        /// The query.
        statement: String,
        /// The connection string (the default is `scripts/servers.sh start postgres`'s
        /// server).
        #[arg(
            long,
            env = "SLUICE_POSTGRES",
            default_value = "postgres://sluice:sluice@127.0.0.1:5432/sluice"
        )]
        url: String,
        /// Connect with TLS (the WebPKI roots, or --ca-file's).
        #[arg(long)]
        tls: bool,
        /// PEM file of the certificate authorities to trust (implies --tls).
        #[arg(long)]
        ca_file: Option<std::path::PathBuf>,
        /// Print at most this many rows.
        #[arg(long)]
        limit: Option<u64>,
        /// Print the number of rows instead of the rows.
        #[arg(long)]
        count: bool,
    },
}

pub fn run(command: QueryCommand) -> Result<(), Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::runtime)?;
    rt.block_on(async {
        match command {
            QueryCommand::Cql {
                statement,
                contact_points,
                username,
                limit,
                count,
            } => cql(statement, contact_points, username, limit, count).await,
            QueryCommand::Mongo {
                namespace,
                uri,
                filter,
                sort,
                limit,
                count,
            } => mongo(namespace, uri, filter, sort, limit, count).await,
            QueryCommand::Postgres {
                statement,
                url,
                tls,
                ca_file,
                limit,
                count,
            } => postgres(statement, url, tls, ca_file, limit, count).await,
        }
    })
}

/// Prints rows until `limit`, or counts them; the closure the readers call.
struct Printer {
    limit: Option<u64>,
    count: bool,
    seen: u64,
    error: Option<std::io::Error>,
}

impl Printer {
    fn new(limit: Option<u64>, count: bool) -> Self {
        Printer {
            limit,
            count,
            seen: 0,
            error: None,
        }
    }

    fn take(&mut self, row: &serde_json::Value) -> bool {
        if self.limit.is_some_and(|l| self.seen >= l) {
            return false;
        }
        self.seen += 1;
        if !self.count {
            if let Err(e) = writeln!(std::io::stdout().lock(), "{row}") {
                self.error = Some(e); // e.g. a closed pipe: stop quietly
                return false;
            }
        }
        true
    }

    fn finish(self) -> Result<(), Failure> {
        if self.count {
            println!("{}", self.seen);
        }
        match self.error {
            Some(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::runtime(e)),
            _ => Ok(()),
        }
    }
}

async fn cql(
    statement: String,
    contact_points: String,
    username: Option<String>,
    limit: Option<u64>,
    count: bool,
) -> Result<(), Failure> {
    use sluice::sinks::cassandra::{client, Consistency};
    let credentials = match username {
        None => None,
        Some(user) => {
            let password = std::env::var("SLUICE_CASSANDRA_PASSWORD").map_err(|_| {
                Failure::config(anyhow::anyhow!(
                    "--username needs the password in SLUICE_CASSANDRA_PASSWORD"
                ))
            })?;
            Some((user, password))
        }
    };
    let connection = client::Connection {
        contact_points: contact_points
            .split(',')
            .map(|c| c.trim().to_owned())
            .collect(),
        fetch_schema: false,
        local_datacenter: None,
        credentials,
        tls: None,
        consistency: Consistency::LocalQuorum,
        timeout: std::time::Duration::from_secs(10),
    };
    let session = client::connect(&connection, std::path::Path::new("."))
        .await
        .map_err(|e| Failure::runtime(anyhow::anyhow!(e)))?;
    let mut printer = Printer::new(limit, count);
    client::select_json(&session, &statement, 1000, |row| {
        printer.take(&serde_json::Value::Object(row))
    })
    .await
    .map_err(|e| Failure::runtime(anyhow::anyhow!(e)))?;
    printer.finish()
}

async fn mongo(
    namespace: String,
    uri: String,
    filter: String,
    sort: Option<String>,
    limit: Option<u64>,
    count: bool,
) -> Result<(), Failure> {
    use sluice::sinks::mongo::client;
    let Some((database, collection)) = namespace.split_once('.') else {
        return Err(Failure::config(anyhow::anyhow!(
            "`{namespace}` is not DATABASE.COLLECTION (e.g. UserData.User)"
        )));
    };
    let document = |what: &str, text: &str| -> Result<mongodb::bson::Document, Failure> {
        let json: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| Failure::config(anyhow::anyhow!("--{what} is not a JSON object: {e}")))?;
        mongodb::bson::Document::try_from(json)
            .map_err(|e| Failure::config(anyhow::anyhow!("--{what}: {e}")))
    };
    let filter = document("filter", &filter)?;
    let sort = sort.map(|s| document("sort", &s)).transpose()?;
    let client = client::connect(&uri, std::time::Duration::from_secs(10))
        .await
        .map_err(|e| Failure::runtime(anyhow::anyhow!(e)))?;
    let mut printer = Printer::new(limit, count);
    let server_limit = if count { None } else { limit.map(|l| l as i64) };
    client::find_json(
        &client,
        database,
        collection,
        filter,
        sort,
        server_limit,
        |doc| printer.take(&doc),
    )
    .await
    .map_err(|e| Failure::runtime(anyhow::anyhow!(e)))?;
    printer.finish()
}

async fn postgres(
    statement: String,
    url: String,
    tls: bool,
    ca_file: Option<std::path::PathBuf>,
    limit: Option<u64>,
    count: bool,
) -> Result<(), Failure> {
    use futures_util::{pin_mut, TryStreamExt};
    use sluice::postgres::{self as client, TlsConfig};
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
        Failure::config(anyhow::anyhow!(
            "--url is not a PostgreSQL connection string: {e}"
        ))
    })?;
    if config.get_password().is_none() {
        if let Ok(password) = std::env::var("PGPASSWORD") {
            config.password(password);
        }
    }
    let tls = (tls || ca_file.is_some()).then_some(TlsConfig { ca_file });
    let pool = client::pool_of(
        config,
        &client::redact(&url),
        tls.as_ref(),
        std::path::Path::new("."),
        1,
        std::time::Duration::from_secs(10),
    )
    .await
    .map_err(|e| Failure::runtime(anyhow::anyhow!(e)))?;
    let conn = pool
        .get()
        .await
        .map_err(|e| Failure::runtime(anyhow::anyhow!(client::pool_error(&e))))?;
    // Each row as its JSON, made by the server.
    let query = statement.trim().trim_end_matches(';');
    let sql = format!("SELECT row_to_json(q)::text FROM ({query}) q");
    let no_params: [&(dyn tokio_postgres::types::ToSql + Sync); 0] = [];
    let rows = conn.query_raw(&sql, no_params).await.map_err(|e| {
        Failure::runtime(anyhow::anyhow!(
            "{} (sluice query postgres runs a query that returns rows: SELECT, VALUES or WITH ... SELECT)",
            client::describe(&e)
        ))
    })?;
    pin_mut!(rows);
    let mut printer = Printer::new(limit, count);
    while let Some(row) = rows
        .try_next()
        .await
        .map_err(|e| Failure::runtime(anyhow::anyhow!(client::describe(&e))))?
    {
        let text: &str = row.get(0);
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Failure::runtime(anyhow::anyhow!(e)))?;
        if !printer.take(&value) {
            break;
        }
    }
    printer.finish()
}
