//! Lookup tables (`[[tables]]`) read by a plugin through the `lookup` import, as a user
//! runs them: a file reloaded while records flow (each record enriched from the rows
//! of its moment, none lost), a PostgreSQL query re-run and a compacted Kafka topic
//! followed (against the real servers), and what is refused clearly: a table past its
//! cap, a row that is not JSON (file:line), a table the pipeline does not declare.
//! (`sluice validate` of pipelines/enrich_users.toml: tests/cli.rs.)

use crate::common;

use common::host::{lines, Host};
use common::kafka::{broker, create_topic, unique};
use common::stores::{pg_execute, postgres, unique_name};
use common::{json_lines, pipeline, wasm};
use std::path::Path;
use std::time::{Duration, Instant};

/// A followed file of `{"nat": ...}` records -> enrich (nat -> region, from table
/// `regions`) -> out.jsonl; `table` is the `[[tables]]` entry.
fn enriching(dir: &Path, table: &str) -> std::path::PathBuf {
    pipeline(
        dir,
        "enrich.toml",
        &format!(
            r#"
[pipeline]
linger = "10ms"
[source]
type = "file"
path = "in.jsonl"
follow = true
poll_interval = "20ms"
{table}
[[transforms]]
plugin = "{}"
config = {{ table = "regions", field = "nat", into = "region" }}
[[sinks]]
type = "file"
path = "out.jsonl"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#,
            wasm("enrich").display()
        ),
    )
}

fn append(path: &Path, records: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    std::io::Write::write_all(&mut f, records.as_bytes()).unwrap();
}

/// `n` records, `{"nat": "FR", "i": from..from+n}`.
fn records(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("{{\"nat\":\"FR\",\"i\":{i}}}\n"))
        .collect()
}

/// Append records until one comes out with `region` = `want` (the table's new rows in
/// use); every record out, in order, none lost.
fn until_region(host: &Host, dir: &Path, sent: &mut usize, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        append(&dir.join("in.jsonl"), &records(*sent, 10));
        *sent += 10;
        host.wait_lines(&dir.join("out.jsonl"), *sent);
        let out = json_lines(&dir.join("out.jsonl"));
        if out.last().is_some_and(|r| r["region"] == want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no `{want}` yet:\n{}",
            host.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_file_table_reloaded_mid_stream_enriches_each_record_from_its_moments_rows() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("regions.csv");
    std::fs::write(&table, "country,region\nFR,europe\nUS,americas\n").unwrap();
    append(&dir.path().join("in.jsonl"), "");
    let path = enriching(
        dir.path(),
        r#"
[[tables]]
name = "regions"
type = "file"
path = "regions.csv"
key = "country"
value = "region"
poll_interval = "50ms"
"#,
    );
    let mut host = Host::start(&path);
    let mut sent = 0;
    until_region(&host, dir.path(), &mut sent, "europe");
    // A new version, written beside and renamed over the old (as a deploy would).
    let next = dir.path().join("regions.csv.new");
    std::fs::write(&next, "country,region\nFR,western-europe\nUS,americas\n").unwrap();
    std::fs::rename(&next, &table).unwrap();
    until_region(&host, dir.path(), &mut sent, "western-europe");
    // A broken version: refused, logged, the rows before it kept.
    std::fs::write(&table, "country,region\nFR\n").unwrap();
    host.wait_log(30, "the failed reload", |l| {
        l.contains("reload failed, its rows before it kept")
    });
    append(&dir.path().join("in.jsonl"), &records(sent, 5));
    sent += 5;
    host.wait_lines(&dir.path().join("out.jsonl"), sent);
    let out = json_lines(&dir.path().join("out.jsonl"));
    assert_eq!(out.len(), sent, "every record out");
    for (i, r) in out.iter().enumerate() {
        assert_eq!(r["i"], i, "in order, none lost or doubled");
    }
    // Each record has the region of one version: the old ones, then the new ones.
    let first_new = out
        .iter()
        .position(|r| r["region"] == "western-europe")
        .unwrap();
    assert!(out[..first_new].iter().all(|r| r["region"] == "europe"));
    assert!(out[first_new..]
        .iter()
        .all(|r| r["region"] == "western-europe"));
    assert!(
        host.log().contains("table `regions` reloaded"),
        "{}",
        host.log()
    );
    host.stop();
}

#[test]
fn a_table_past_its_cap_or_with_a_bad_row_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    append(&dir.path().join("in.jsonl"), &records(0, 1));
    let big: String = (0..30_000)
        .map(|i| {
            format!(
                "{{\"country\":\"c{i}\",\"region\":\"{}\"}}\n",
                "r".repeat(40)
            )
        })
        .collect();
    std::fs::write(dir.path().join("big.jsonl"), big).unwrap();
    let path = enriching(
        dir.path(),
        r#"
[[tables]]
name = "regions"
type = "file"
path = "big.jsonl"
key = "country"
max_mb = 1
"#,
    );
    let mut host = Host::start(&path);
    assert!(!host.wait(60).success());
    let log = host.log();
    assert!(
        log.contains("table `regions` (file big.jsonl)")
            && log.contains("the table passes its max_mb = 1"),
        "{log}"
    );
    std::fs::write(
        dir.path().join("big.jsonl"),
        "{\"country\":\"FR\",\"region\":\"europe\"}\n\n{\"country\": oops}\n",
    )
    .unwrap();
    let mut host = Host::start(&path);
    assert!(!host.wait(60).success());
    let log = host.log();
    assert!(log.contains("big.jsonl:3: not JSON"), "{log}");
    assert!(!dir.path().join("out.jsonl").exists() || lines(&dir.path().join("out.jsonl")) == 0);
}

#[test]
fn a_lookup_of_a_table_not_declared_is_a_dead_letter_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    append(&dir.path().join("in.jsonl"), &records(0, 3));
    std::fs::write(dir.path().join("other.csv"), "country,region\nFR,europe\n").unwrap();
    let path = enriching(
        dir.path(),
        r#"
[[tables]]
name = "other"
type = "file"
path = "other.csv"
key = "country"
"#,
    );
    let host = Host::start(&path);
    host.wait_lines(&dir.path().join("dead.jsonl"), 3);
    let dead = json_lines(&dir.path().join("dead.jsonl"));
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains(
            "lookup of table `regions`, which the pipeline does not declare ([[tables]]: other)"
        ),
        "{reason}"
    );
    host.stop();
}

#[test]
fn a_postgres_table_is_queried_again_and_its_changes_show() {
    let url = postgres();
    let name = unique_name("regions");
    pg_execute(
        &url,
        &format!("CREATE TABLE {name} (country text PRIMARY KEY, region text); INSERT INTO {name} VALUES ('FR', 'europe'), ('US', 'americas');"),
    );
    let dir = tempfile::tempdir().unwrap();
    append(&dir.path().join("in.jsonl"), "");
    let path = enriching(
        dir.path(),
        &format!(
            r#"
[[tables]]
name = "regions"
type = "postgres"
url = "{url}"
query = "SELECT country, region FROM {name}"
key = "country"
value = "region"
interval = "100ms"
"#
        ),
    );
    let host = Host::start(&path);
    let mut sent = 0;
    until_region(&host, dir.path(), &mut sent, "europe");
    pg_execute(
        &url,
        &format!("UPDATE {name} SET region = 'eu' WHERE country = 'FR'"),
    );
    until_region(&host, dir.path(), &mut sent, "eu");
    host.stop();
    pg_execute(&url, &format!("DROP TABLE {name}"));
}

#[test]
fn a_compacted_kafka_topic_is_followed() {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let topic = unique("regions");
    create_topic(&topic, 2);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .create()
        .unwrap();
    let send = |key: &str, value: Option<&str>| {
        let mut r = BaseRecord::<str, str>::to(&topic).key(key);
        if let Some(v) = value {
            r = r.payload(v);
        }
        producer.send(r).map_err(|(e, _)| e).unwrap();
        producer.flush(Duration::from_secs(30)).unwrap();
    };
    send("US", Some("\"americas\""));
    send("FR", Some("\"old\""));
    send("FR", Some("\"europe\""));
    let dir = tempfile::tempdir().unwrap();
    append(&dir.path().join("in.jsonl"), "");
    let path = enriching(
        dir.path(),
        &format!(
            r#"
[[tables]]
name = "regions"
type = "kafka"
brokers = "{}"
topic = "{topic}"
"#,
            broker()
        ),
    );
    let host = Host::start(&path);
    let mut sent = 0;
    // The newest value of each key, read before the first record.
    until_region(&host, dir.path(), &mut sent, "europe");
    assert_eq!(
        json_lines(&dir.path().join("out.jsonl"))[0]["region"],
        "europe"
    );
    send("FR", Some("\"followed\""));
    until_region(&host, dir.path(), &mut sent, "followed");
    // A tombstone deletes the row: the records pass without the field.
    send("FR", None);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        append(&dir.path().join("in.jsonl"), &records(sent, 5));
        sent += 5;
        host.wait_lines(&dir.path().join("out.jsonl"), sent);
        let out = json_lines(&dir.path().join("out.jsonl"));
        if out.last().is_some_and(|r| r.get("region").is_none()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the tombstone not applied:\n{}",
            host.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    host.stop();
}
