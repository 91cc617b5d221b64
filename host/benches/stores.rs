//! Store sink throughput, printed side by side (never asserted): rows/s written by
//! Sluice's Cassandra and MongoDB sinks vs the bare driver writing the same rows with
//! the same concurrency.
//!
//! - Cassandra: batches of 256 formatted users; each batch as prepared INSERTs with 64
//!   in flight (`buffer_unordered`), batch after batch. Both start from the same JSON
//!   records: the bare driver deserializes each into a `User` struct (what a
//!   hand-written job does), the sink converts it by its column list. Also printed:
//!   the bare driver with its values built before the clock starts (the driver alone).
//! - MongoDB: the same batches, each one `update` command of 256 upserts by `_id`
//!   (`ordered: false`, write concern majority). The bare driver's documents are
//!   built before the clock starts; the sink builds them from JSON while timed.
//!
//! Each side writes its own table or collection, fresh rows (no overwrites); each runs
//! `SLUICE_BENCH_ROUNDS` times (default 3) alternately and the best is printed.
//!
//! Needs the servers: `SLUICE_TEST_CASSANDRA=host:port` and
//! `SLUICE_TEST_MONGO=mongodb://host:port`, else `scripts/servers.sh start` starts the
//! local ones. `cargo bench -p sluice --bench stores`; `SLUICE_BENCH_RECORDS` sets the
//! rows per round (default 20000).

mod common;

use common::{server, through_sink, users};
use futures_util::stream::{self, StreamExt};
use mongodb::bson::{doc, Bson, Document};
use scylla::value::{CqlValue, MaybeUnset};
use sluice::record::Record;
use sluice::schema::SEED_COLUMNS;
use sluice::sinks::cassandra::{client, row::ColumnType, CassandraConfig};
use std::path::Path;
use std::time::{Duration, Instant};

const BATCH: usize = 256;
const CONCURRENCY: usize = 64;

fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

/// The 12 fields of a formatted user, as a hand-written job would declare them.
#[derive(serde::Deserialize)]
struct User {
    id: String,
    first_name: String,
    last_name: String,
    gender: String,
    address: String,
    post_code: String,
    email: String,
    username: String,
    dob: String,
    registered_date: String,
    phone: String,
    picture: String,
}

type Values = Vec<MaybeUnset<Option<CqlValue>>>;

/// A user's values in SEED_COLUMNS order.
fn bind(json: &[u8]) -> Values {
    let u: User = serde_json::from_slice(json).unwrap();
    let id = CqlValue::Uuid(u.id.parse().unwrap());
    let texts = [
        u.first_name,
        u.last_name,
        u.gender,
        u.address,
        u.post_code,
        u.email,
        u.username,
        u.dob,
        u.registered_date,
        u.phone,
        u.picture,
    ];
    std::iter::once(id)
        .chain(texts.into_iter().map(CqlValue::Text))
        .map(|v| MaybeUnset::Set(Some(v)))
        .collect()
}

/// The bare driver: prepared INSERTs, CONCURRENCY in flight, batch after batch. With
/// `prebuilt`, the values are converted before the clock starts; otherwise each row is
/// deserialized from the same JSON (into a `User`) while timed, as a hand-written job
/// would.
async fn cassandra_bare(
    contact: &str,
    keyspace: &str,
    table: &str,
    records: &[Record],
    prebuilt: bool,
) -> Duration {
    let connection = CassandraConfig::connection(&cassandra_config(contact, keyspace, table));
    let session = client::connect(&connection, Path::new(".")).await.unwrap();
    // The sink's default layout, in the order `bind` gives the values.
    let layout = cassandra_config(contact, keyspace, table).layout();
    let columns: Vec<(String, ColumnType)> = SEED_COLUMNS
        .iter()
        .map(|&c| (c.to_owned(), layout.columns[c]))
        .collect();
    let insert = client::prepare_insert(&session, keyspace, table, &columns)
        .await
        .unwrap();
    let ready: Vec<Values> = if prebuilt {
        records.iter().map(|r| bind(&r.value)).collect()
    } else {
        Vec::new()
    };
    let (session, insert, ready) = (&session, &insert, &ready);
    let started = Instant::now();
    for (b, batch) in records.chunks(BATCH).enumerate() {
        let writes = (0..batch.len()).map(|i| async move {
            if prebuilt {
                session.execute_unpaged(insert, &ready[b * BATCH + i]).await
            } else {
                session.execute_unpaged(insert, bind(&batch[i].value)).await
            }
        });
        let mut done = stream::iter(writes).buffer_unordered(CONCURRENCY);
        while let Some(result) = done.next().await {
            result.unwrap();
        }
    }
    started.elapsed()
}

fn cassandra_config(contact: &str, keyspace: &str, table: &str) -> CassandraConfig {
    toml::from_str(&cassandra_toml(contact, keyspace, table, false)).unwrap()
}

fn cassandra_toml(contact: &str, keyspace: &str, table: &str, tagged: bool) -> String {
    format!(
        r#"{tag}
contact_points = "{contact}"
keyspace = "{keyspace}"
table = "{table}"
concurrency = {CONCURRENCY}
create = {{ replication = {{ class = "SimpleStrategy", replication_factor = 1 }} }}
"#,
        tag = if tagged { "type = \"cassandra\"" } else { "" }
    )
}

fn mongo_toml(uri: &str, database: &str, collection: &str) -> String {
    format!(
        r#"type = "mongodb"
uri = "{uri}"
database = "{database}"
collection = "{collection}"
"#
    )
}

async fn mongo_bare(uri: &str, database: &str, collection: &str, records: &[Record]) -> Duration {
    let c = sluice::sinks::mongo::client::connect(uri, Duration::from_secs(30))
        .await
        .unwrap();
    let db = c.database(database);
    // The commands a hand-written writer would send, built before the clock starts.
    let commands: Vec<Document> = records
        .chunks(BATCH)
        .map(|batch| {
            let updates: Vec<Document> = batch
                .iter()
                .map(|r| {
                    let json: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
                    let Bson::Document(mut user) = Bson::try_from(json).unwrap() else { unreachable!() };
                    let id = user.get("id").unwrap().clone();
                    user.insert("_id", id.clone());
                    doc! { "q": { "_id": id }, "u": user, "upsert": true }
                })
                .collect();
            doc! { "update": collection, "updates": updates, "ordered": false, "writeConcern": { "w": "majority" } }
        })
        .collect();
    let started = Instant::now();
    for command in commands {
        let reply = db.run_command(command).await.unwrap();
        assert!(reply.get_array("writeErrors").is_err(), "{reply}");
    }
    started.elapsed()
}

fn main() {
    // `cargo bench` passes --bench; criterion-style filters are not supported here.
    let n: usize = std::env::var("SLUICE_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rounds: u64 = std::env::var("SLUICE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let contact = server("SLUICE_TEST_CASSANDRA", "cassandra");
    let uri = std::env::var("SLUICE_TEST_MONGO")
        .unwrap_or_else(|_| format!("mongodb://{}", server("SLUICE_TEST_MONGO", "mongo")));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let keyspace = format!("bench_{stamp}");
    let database = format!("bench_{stamp}");
    println!(
        "{n} users (~{} bytes each) per round, batches of {BATCH}, best of {rounds} rounds",
        users(1, 1)[0].value.len()
    );

    let (mut best, mut best_bare) = ([f64::MIN; 2], [f64::MIN; 2]);
    let mut best_prebuilt = f64::MIN;
    for round in 0..rounds {
        // Fresh rows for each side and round.
        let sluice_rows = users(n, 1000 + 2 * round);
        let bare_rows = users(n, 1001 + 2 * round);
        let prebuilt_rows = users(n, 5001 + round);
        // Which side goes first alternates: a store may slow down as it fills.
        let sluice_first = round % 2 == 0;
        rt.block_on(async {
            // Both tables are made by the sink's statements, before any clock starts.
            through_sink(
                &cassandra_toml(&contact, &keyspace, "bare", true),
                &[],
                BATCH,
            )
            .await;
            through_sink(
                &cassandra_toml(&contact, &keyspace, "sluice", true),
                &[],
                BATCH,
            )
            .await;
            for sluice_side in [sluice_first, !sluice_first] {
                if sluice_side {
                    // The table exists: timed without the schema change.
                    let toml = cassandra_toml(&contact, &keyspace, "sluice", true)
                        .replace("create = ", "# create = ");
                    let t = through_sink(&toml, &sluice_rows, BATCH).await;
                    best[0] = best[0].max(rate(n, t));
                    let t =
                        through_sink(&mongo_toml(&uri, &database, "sluice"), &sluice_rows, BATCH)
                            .await;
                    best[1] = best[1].max(rate(n, t));
                } else {
                    let t = cassandra_bare(&contact, &keyspace, "bare", &bare_rows, false).await;
                    best_bare[0] = best_bare[0].max(rate(n, t));
                    let t = cassandra_bare(&contact, &keyspace, "bare", &prebuilt_rows, true).await;
                    best_prebuilt = best_prebuilt.max(rate(n, t));
                    let t = mongo_bare(&uri, &database, "bare", &bare_rows).await;
                    best_bare[1] = best_bare[1].max(rate(n, t));
                }
            }
        });
        println!("  round {} done", round + 1);
    }
    // How much of the gap is the sink turning JSON into typed values (the bare side
    // did that before its clock started).
    let shape = sluice::sinks::cassandra::row::RowShape::new(
        cassandra_config(&contact, &keyspace, "x")
            .layout()
            .columns
            .into_iter()
            .map(|(c, t)| {
                let key = c == "id";
                (c, t, key)
            }),
    );
    let rows = users(n, 7);
    let started = Instant::now();
    for r in &rows {
        std::hint::black_box(shape.values(&r.value, None).unwrap());
    }
    let convert = rate(n, started.elapsed());
    println!();
    println!("JSON -> typed CQL values alone (one core): {convert:.0} rows/s");
    println!("Cassandra at {contact} ({CONCURRENCY} writes in flight), MongoDB at {uri} (one command a batch)");
    println!("| rows/s    | bare driver | sluice sink | sluice / bare |");
    println!("|-----------|------------:|------------:|--------------:|");
    let names = ["Cassandra", "MongoDB"];
    for i in 0..2 {
        println!(
            "| {:<9} | {:>11.0} | {:>11.0} | {:>12.0}% |",
            names[i],
            best_bare[i],
            best[i],
            100.0 * best[i] / best_bare[i]
        );
    }
    println!(
        "| (Cassandra, bare driver with its values built before the clock: {best_prebuilt:.0} rows/s; sluice {:.0}% of it) |",
        100.0 * best[0] / best_prebuilt
    );
}
