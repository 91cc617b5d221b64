//! PostgreSQL sink throughput against a bare tokio-postgres writer on the same server,
//! printed side by side (never asserted).
//!
//! Both write the same kind of rows (formatted users, fresh ids each round) in
//! batches of `SLUICE_BENCH_BATCH` (default 256, the pipeline's default batch), one
//! batch after another on one connection, each batch as one `INSERT ... SELECT FROM
//! UNNEST(...) ON CONFLICT (id) DO UPDATE` (the statement a careful hand-written job
//! uses: one round trip a batch). The bare writer deserializes each JSON record into
//! a typed struct (what a hand-written job does) and builds the column arrays while
//! timed; the sink converts by its column list. Each side writes a table of its own;
//! `SLUICE_BENCH_ROUNDS` rounds (default 3), alternating which goes first, best kept.
//!
//! Needs PostgreSQL: `SLUICE_TEST_POSTGRES=postgres://...`, else `scripts/servers.sh
//! start postgres` starts the local one. `cargo bench -p sluice --bench postgres`;
//! `SLUICE_BENCH_RECORDS` sets the rows per round (default 50000).

mod common;

use common::{server, through_sink, users};
use sluice::record::Record;
use std::time::{Duration, Instant};

fn env_or(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The sink writing `records` into `table`.
async fn sink_time(url: &str, table: &str, records: &[Record], batch: usize) -> Duration {
    let toml = format!("type = \"postgres\"\nurl = \"{url}\"\ntable = \"{table}\"\n");
    through_sink(&toml, records, batch).await
}

/// A formatted user, as a hand-written job would declare it.
#[derive(serde::Deserialize)]
struct User {
    id: uuid::Uuid,
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

const UPSERT: &str = "INSERT INTO {t} (id, first_name, last_name, gender, address, post_code, email, username, dob, registered_date, phone, picture) \
    SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[]) \
    ON CONFLICT (id) DO UPDATE SET first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name, gender = EXCLUDED.gender, address = EXCLUDED.address, \
    post_code = EXCLUDED.post_code, email = EXCLUDED.email, username = EXCLUDED.username, dob = EXCLUDED.dob, registered_date = EXCLUDED.registered_date, \
    phone = EXCLUDED.phone, picture = EXCLUDED.picture";

async fn bare(url: &str, table: &str, records: &[Record], batch: usize) -> Duration {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (id uuid PRIMARY KEY, first_name text, last_name text, gender text, address text, post_code text, email text, username text, dob text, registered_date text, phone text, picture text)"
        ))
        .await
        .unwrap();
    let statement = client.prepare(&UPSERT.replace("{t}", table)).await.unwrap();
    let started = Instant::now();
    for chunk in records.chunks(batch) {
        let mut ids = Vec::with_capacity(chunk.len());
        let mut text: Vec<Vec<String>> = (0..11).map(|_| Vec::with_capacity(chunk.len())).collect();
        for r in chunk {
            let u: User = serde_json::from_slice(&r.value).unwrap();
            ids.push(u.id);
            for (column, value) in text.iter_mut().zip([
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
            ]) {
                column.push(value);
            }
        }
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&ids];
        params.extend(
            text.iter()
                .map(|c| c as &(dyn tokio_postgres::types::ToSql + Sync)),
        );
        client.execute(&statement, &params).await.unwrap();
    }
    started.elapsed()
}

fn main() {
    let n = env_or("SLUICE_BENCH_RECORDS", 50_000);
    let batch = env_or("SLUICE_BENCH_BATCH", 256);
    let rounds = env_or("SLUICE_BENCH_ROUNDS", 3) as u64;
    let url = std::env::var("SLUICE_TEST_POSTGRES").unwrap_or_else(|_| {
        format!(
            "postgres://sluice:sluice@{}/sluice",
            server("SLUICE_TEST_POSTGRES", "postgres")
        )
    });
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (sluice_table, bare_table) = (format!("bench_sink_{stamp}"), format!("bench_bare_{stamp}"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!(
        "{n} users (~{} bytes each) per round, batches of {batch}, best of {rounds} rounds",
        users(1, 1)[0].value.len()
    );
    let (mut best_sink, mut best_bare) = (f64::MIN, f64::MIN);
    for round in 0..rounds {
        let sink_rows = users(n, 1000 + 2 * round);
        let bare_rows = users(n, 1001 + 2 * round);
        let sink_first = round % 2 == 0;
        rt.block_on(async {
            for sink_side in [sink_first, !sink_first] {
                if sink_side {
                    let t = sink_time(&url, &sluice_table, &sink_rows, batch).await;
                    best_sink = best_sink.max(n as f64 / t.as_secs_f64());
                } else {
                    let t = bare(&url, &bare_table, &bare_rows, batch).await;
                    best_bare = best_bare.max(n as f64 / t.as_secs_f64());
                }
            }
        });
        println!("  round {} done", round + 1);
    }
    println!();
    println!("PostgreSQL at {}", sluice::postgres::redact(&url));
    println!("| rows/s     | bare tokio-postgres | sluice sink | sluice / bare |");
    println!("|------------|--------------------:|------------:|--------------:|");
    println!(
        "| PostgreSQL | {best_bare:>19.0} | {best_sink:>11.0} | {:>12.0}% |",
        100.0 * best_sink / best_bare
    );
}
