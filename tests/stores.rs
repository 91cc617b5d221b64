//! The Cassandra and MongoDB sinks end to end, against real-protocol servers (never a
//! mock of a client): Kafka -> format_user -> both stores and 1-minute gender counts,
//! a replay, a store going away mid-stream, records the stores refuse.
//!
//! Servers: `SLUICE_TEST_KAFKA`, `SLUICE_TEST_CASSANDRA`, `SLUICE_TEST_MONGO`, else
//! the local ones `scripts/servers.sh` starts. Every test has keyspaces, databases,
//! topics and groups of its own, so they share the servers; the outage test stops and
//! restarts a server of its own.

use crate::common;

use common::host::Host;
use common::kafka::{broker, committed, create_topic, read_topic, unique, FAST_GROUP};
use common::stores::{
    cassandra, cql_rows, external, mongo, mongo_docs, pg_rows, postgres, try_cql_rows, unique_name,
    OwnServer, Store,
};
use common::{json_lines, pipeline};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const START: &str = "2026-01-01T00:00:00Z";

/// Generated users -> format_user -> `topic` (4 partitions; event time = message
/// timestamp, 50 ms apart from START), and the same rows to `produced.jsonl`.
fn producer(dir: &Path, topic: &str, count: u64, rate: Option<u64>) -> PathBuf {
    let timed = format!("event_interval = \"50ms\"\nstart_time = \"{START}\"");
    common::kafka::producer(dir, topic, count, rate, &timed)
}

/// Where one consumer pipeline writes.
struct Stores {
    cassandra: String,
    keyspace: String,
    mongo: String,
    database: String,
    postgres: String,
    table: String,
}

impl Stores {
    fn new(cassandra: String, mongo: String) -> Stores {
        Stores {
            cassandra,
            keyspace: unique_name("ks"),
            mongo,
            database: unique_name("db"),
            postgres: postgres(),
            table: unique_name("users"),
        }
    }

    /// The users in PostgreSQL, by id.
    fn postgres_users(&self) -> BTreeMap<String, Map<String, Value>> {
        pg_rows(&self.postgres, &format!("SELECT * FROM {}", self.table))
            .into_iter()
            .map(|r| (r["id"].as_str().unwrap().to_owned(), r))
            .collect()
    }

    /// The users in Cassandra, by id.
    fn cassandra_users(&self) -> BTreeMap<String, Map<String, Value>> {
        let cql = format!("SELECT * FROM {}.created_users", self.keyspace);
        let rows = cql_rows(&self.cassandra, &cql);
        let n = rows.len();
        let by_id: BTreeMap<_, _> = rows
            .into_iter()
            .map(|r| (r["id"].as_str().unwrap().to_owned(), r))
            .collect();
        assert_eq!(by_id.len(), n, "a primary key repeated in a scan");
        by_id
    }

    fn cassandra_ids(&self) -> BTreeSet<String> {
        let cql = format!("SELECT id FROM {}.created_users", self.keyspace);
        cql_rows(&self.cassandra, &cql)
            .into_iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn mongo_users(&self) -> Vec<Value> {
        mongo_docs(&self.mongo, &self.database, "User")
    }

    fn mongo_ids(&self) -> BTreeSet<String> {
        self.mongo_users()
            .iter()
            .map(|d| d["_id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn windows(&self) -> Vec<Value> {
        mongo_docs(&self.mongo, &self.database, "GenderCounts")
    }
}

/// `topic` -> gender_window -> users to the three stores (PostgreSQL's checked
/// against the shipped schema), windows to MongoDB (keyed by the MongoDB sink's
/// default for window results: `window_start`).
fn consumer(
    dir: &Path,
    name: &str,
    topic: &str,
    group: &str,
    stores: &Stores,
    extra: &str,
) -> PathBuf {
    pipeline(
        dir,
        &format!("{name}.toml"),
        &format!(
            r#"
[pipeline]
name = "{name}"
batch_size = 100
checkpoint_interval = "300ms"
linger = "20ms"
retry = {{ backoff = "200ms", max_backoff = "1s", max_retries = 1000 }}
[source]
type = "kafka"
brokers = "{broker}"
topics = ["{topic}"]
group_id = "{group}"
{extra}
{FAST_GROUP}
[window]
plugin = "{{GENDER_WINDOW}}"
size = "1m"
[[sinks]]
type = "cassandra"
contact_points = "{cassandra}"
keyspace = "{keyspace}"
table = "created_users"
timeout = "2s"
create = {{ replication = {{ class = "SimpleStrategy", replication_factor = 1 }} }}
[[sinks]]
type = "postgres"
url = "{postgres}"
table = "{table}"
timeout = "2s"
schema = "{schema}"
[[sinks]]
type = "mongodb"
uri = "{mongo}"
database = "{database}"
collection = "User"
timeout = "2s"
[[sinks]]
type = "mongodb"
input = "windows"
uri = "{mongo}"
database = "{database}"
collection = "GenderCounts"
timeout = "2s"
[dead_letter]
type = "file"
path = "{name}-dead.jsonl"
"#,
            broker = broker(),
            cassandra = stores.cassandra,
            keyspace = stores.keyspace,
            mongo = stores.mongo,
            database = stores.database,
            postgres = stores.postgres,
            table = stores.table,
            schema = common::repo().join("schemas/user.json").display(),
        ),
    )
}

fn run_to_end(path: &Path) -> Host {
    let mut host = Host::start(path);
    let status = host.wait(300);
    assert!(status.success(), "{status}:\n{}", host.log());
    host
}

fn produce(dir: &Path, topic: &str, count: u64) -> BTreeMap<String, Value> {
    run_to_end(&producer(dir, topic, count, None));
    produced(dir)
}

/// What format_user produced, by id.
fn produced(dir: &Path) -> BTreeMap<String, Value> {
    json_lines(&dir.join("produced.jsonl"))
        .into_iter()
        .map(|u| (u["id"].as_str().unwrap().to_owned(), u))
        .collect()
}

/// Gender counts per 1-minute window, counted here from the messages themselves
/// (their timestamps and `gender` fields), as the window documents should have them.
fn independent_counts(topic: &str, count: usize) -> BTreeMap<String, Value> {
    let messages = read_topic(topic, 4, count);
    assert_eq!(messages.len(), count, "messages read back");
    let mut per_window: BTreeMap<i64, [i64; 3]> = BTreeMap::new();
    for (_, _, ts, value) in messages {
        let user: Value = serde_json::from_slice(&value).unwrap();
        let slot = match user["gender"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase()
            .as_str()
        {
            "male" => 0,
            "female" => 1,
            _ => 2,
        };
        per_window
            .entry(ts.div_euclid(60_000) * 60_000)
            .or_default()[slot] += 1;
    }
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    per_window
        .into_iter()
        .map(|(start, [m, f, o])| {
            let doc = json!({
                "_id": time(start),
                "window_start": time(start),
                "window_end": time(start + 60_000),
                "male_count": m,
                "female_count": f,
                "other_count": o,
                "total_count": m + f + o,
            });
            (time(start), doc)
        })
        .collect()
}

/// Both stores hold exactly `expected`, field by field.
fn assert_users_equal(stores: &Stores, expected: &BTreeMap<String, Value>) {
    for (store, rows) in [
        ("Cassandra", stores.cassandra_users()),
        ("PostgreSQL", stores.postgres_users()),
    ] {
        assert_eq!(rows.len(), expected.len(), "rows in {store}");
        for (id, want) in expected {
            let row = rows
                .get(id)
                .unwrap_or_else(|| panic!("{id} is not in {store}"));
            assert_eq!(&Value::Object(row.clone()), want, "{store} row {id}");
        }
    }
    let docs = stores.mongo_users();
    assert_eq!(docs.len(), expected.len(), "documents in MongoDB");
    for doc in docs {
        let mut doc = doc.as_object().unwrap().clone();
        let id = doc.remove("_id").unwrap();
        let id = id.as_str().unwrap();
        assert_eq!(
            Some(&Value::Object(doc)),
            expected.get(id),
            "MongoDB document {id}"
        );
    }
}

#[test]
fn every_user_reaches_both_stores_once_and_the_windows_match_the_input_even_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("stores");
    let expected = produce(dir.path(), &topic, 10_000);
    assert_eq!(expected.len(), 10_000, "distinct generated users");
    let counts = independent_counts(&topic, 10_000);
    assert!(
        counts.len() >= 8,
        "10,000 users 50 ms apart span 9 windows: {counts:?}"
    );

    let stores = Stores::new(cassandra(), mongo());
    let first = consumer(
        dir.path(),
        "first",
        &topic,
        &unique("g"),
        &stores,
        "stop_at_end = true",
    );
    let host = run_to_end(&first);
    assert_users_equal(&stores, &expected);
    let windows = stores.windows();
    let got: BTreeMap<String, Value> = windows
        .iter()
        .map(|w| (w["_id"].as_str().unwrap().to_owned(), w.clone()))
        .collect();
    assert_eq!(
        got, counts,
        "one document per window, counts as the input has them"
    );
    assert_eq!(
        json_lines(&dir.path().join("first-dead.jsonl")),
        Vec::<Value>::new(),
        "{}",
        host.log()
    );

    // The same records delivered again (another group reads the topic from the
    // start): upserts by key, so nothing is added and nothing changes.
    let again = consumer(
        dir.path(),
        "again",
        &topic,
        &unique("g"),
        &stores,
        "stop_at_end = true",
    );
    run_to_end(&again);
    assert_users_equal(&stores, &expected);
    assert_eq!(
        stores.windows(),
        windows,
        "window documents unchanged by the replay"
    );
}

/// Poll `f` until it holds, or panic after `secs` (naming `what`).
fn wait_for(secs: u64, what: &str, host: &mut Host, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        if let Ok(Some(status)) = host.child.try_wait() {
            panic!("sluice exited ({status}) before {what}:\n{}", host.log());
        }
        assert!(
            Instant::now() < deadline,
            "no {what} after {secs}s:\n{}",
            host.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A store goes away mid-stream, twice, for 10 s each time. The first time the host
/// keeps running: the sink retries and the pipeline resumes when the store is back.
/// The second time the host is killed during the outage: every record the group had
/// committed by then must already be in both stores (the commit never ran ahead of
/// the writes), and a new host finishes the job. At the end both stores hold every
/// user exactly once.
fn a_store_goes_away_mid_stream(down: Store) {
    if external(down) {
        eprintln!(
            "skipped: the {down:?} server is external (SLUICE_TEST_*), so this test cannot stop it"
        );
        return;
    }
    let own = OwnServer::start(down);
    let (cassandra_addr, mongo_addr) = match down {
        Store::Cassandra => (own.address(), mongo()),
        Store::Mongo => (cassandra(), own.address()),
        Store::Postgres => unreachable!("tests/postgres.rs stops PostgreSQL"),
    };
    let stores = Stores::new(cassandra_addr, mongo_addr);
    // Users in the store that goes away (none before the sink has created its table).
    let count = |s: &Stores| match down {
        Store::Cassandra => {
            let cql = format!("SELECT id FROM {}.created_users", s.keyspace);
            try_cql_rows(&s.cassandra, &cql).map_or(0, |rows| rows.len())
        }
        Store::Mongo => s.mongo_ids().len(),
        Store::Postgres => unreachable!(),
    };

    let dir = tempfile::tempdir().unwrap();
    let topic = unique("outage");
    create_topic(&topic, 4);
    let group = unique("g");
    let path = consumer(dir.path(), "outage", &topic, &group, &stores, "");
    let mut host = Host::start(&path);
    // 10,000 users over 20 s, so both outages fall mid-stream.
    let mut producing = Host::start(&producer(dir.path(), &topic, 10_000, Some(500)));

    // 1. Down for 10 s with the host running: it retries, then resumes by itself.
    wait_for(60, "1,000 users stored", &mut host, || {
        count(&stores) >= 1_000
    });
    own.stop();
    std::thread::sleep(Duration::from_secs(10));
    assert!(
        host.child.try_wait().unwrap().is_none(),
        "the host gave up:\n{}",
        host.log()
    );
    assert!(
        host.log().contains("still to write: retry"),
        "no retries logged:\n{}",
        host.log()
    );
    own.restart();
    let before = count(&stores);
    wait_for(60, "progress after the store came back", &mut host, || {
        count(&stores) >= before + 500
    });

    // 2. Down again; the host is killed during the outage.
    wait_for(60, "6,000 users stored", &mut host, || {
        count(&stores) >= 6_000
    });
    own.stop();
    std::thread::sleep(Duration::from_secs(10));
    let commit: Vec<i64> = committed(&group, &topic, 4)
        .iter()
        .map(|o| o.unwrap_or(0))
        .collect();
    host.signal("-KILL");
    host.wait(30);
    own.restart();
    assert!(producing.wait(120).success(), "{}", producing.log());
    let messages = read_topic(&topic, 4, 10_000);
    assert_eq!(messages.len(), 10_000);
    let committed_ids: BTreeSet<String> = messages
        .iter()
        .filter(|(p, offset, _, _)| *offset < commit[*p as usize])
        .map(|(_, _, _, v)| {
            serde_json::from_slice::<Value>(v).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(committed_ids.len() >= 1_000, "committed {commit:?}");
    let (in_cassandra, in_mongo) = (stores.cassandra_ids(), stores.mongo_ids());
    let missing: Vec<_> = committed_ids
        .iter()
        .filter(|id| !in_cassandra.contains(*id) || !in_mongo.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} committed users are not in both stores: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );

    // 3. A new host resumes from the commit and finishes.
    let expected = produced(dir.path());
    let mut host = Host::start(&path);
    wait_for(180, "every user in both stores", &mut host, || {
        stores.cassandra_ids().len() == expected.len() && stores.mongo_ids().len() == expected.len()
    });
    host.stop();
    assert_users_equal(&stores, &expected);
}

#[test]
fn cassandra_going_away_mid_stream_loses_nothing() {
    a_store_goes_away_mid_stream(Store::Cassandra);
}

#[test]
fn mongodb_going_away_mid_stream_loses_nothing() {
    a_store_goes_away_mid_stream(Store::Mongo);
}

#[test]
fn records_a_store_refuses_go_to_the_dead_letters_and_the_rest_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let keyspace = unique_name("ks");
    let database = unique_name("db");
    let uri = mongo();
    // A document already holds this email, under a unique index: the server refuses
    // a second one (its message goes to the dead letters).
    {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            use sluice::sinks::mongo::{client, Index};
            let c = client::connect(&uri, Duration::from_secs(30))
                .await
                .unwrap();
            let unique_email = Index {
                fields: vec!["email".into()],
                unique: true,
                name: None,
            };
            client::create_indexes(&c, &database, "people", &[unique_email])
                .await
                .unwrap();
            c.database(&database)
                .collection::<mongodb::bson::Document>("people")
                .insert_one(mongodb::bson::doc! { "_id": "first", "email": "taken@example.com" })
                .await
                .unwrap();
        });
    }
    let id = |n: u32| format!("6a3b2c1d-0000-4000-8000-{n:012}");
    let lines = [
        json!({"id": id(1), "n": 1, "at": "2026-01-01T00:00:00Z", "email": "a@example.com"}),
        json!({"id": "not-a-uuid", "n": 2, "email": "b@example.com"}),
        json!({"id": id(3), "n": 3_000_000_000u64, "email": "c@example.com"}),
        json!({"id": id(4), "n": 4, "at": "yesterday", "email": "d@example.com"}),
        json!({"id": id(5), "n": 5, "email": "taken@example.com"}),
        json!({"n": 6, "email": "f@example.com"}),
        json!({"id": id(7), "n": null, "email": "g@example.com"}),
    ];
    let input = dir.path().join("people.jsonl");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&input, &text).unwrap();
    let offsets: Vec<u64> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i as u64 + 1))
        .take(lines.len())
        .collect();
    let path = pipeline(
        dir.path(),
        "refused.toml",
        &format!(
            r#"
[source]
type = "file"
path = "people.jsonl"
[[sinks]]
type = "cassandra"
contact_points = "{cassandra}"
keyspace = "{keyspace}"
table = "people"
columns = {{ id = "uuid", n = "int", at = "timestamp", email = "text" }}
primary_key = "id"
create = {{ replication = {{ class = "SimpleStrategy", replication_factor = 1 }} }}
[[sinks]]
type = "mongodb"
uri = "{uri}"
database = "{database}"
collection = "people"
indexes = [{{ fields = ["email"], unique = true }}]
[dead_letter]
type = "file"
path = "dead.jsonl"
"#,
            cassandra = cassandra(),
        ),
    );
    run_to_end(&path);

    let dead = json_lines(&dir.path().join("dead.jsonl"));
    let mut reasons: BTreeMap<(String, u64), String> = BTreeMap::new();
    for d in &dead {
        assert_eq!(d["stage"], "sink", "{d}");
        let position = &d["position"];
        assert_eq!(
            position["file"].as_str().unwrap(),
            input.display().to_string(),
            "{d}"
        );
        let sink = d["plugin"].as_str().unwrap();
        let store = if sink.contains("cassandra") {
            "cassandra"
        } else {
            "mongodb"
        };
        let line = offsets
            .iter()
            .position(|&o| o == position["offset"].as_u64().unwrap())
            .unwrap();
        assert_eq!(
            d["record"]["value"].as_str().unwrap(),
            lines[line].to_string(),
            "the original record"
        );
        reasons.insert(
            (store.to_owned(), line as u64 + 1),
            d["reason"].as_str().unwrap().to_owned(),
        );
    }
    let reason = |store: &str, line: u64| {
        reasons
            .get(&(store.to_owned(), line))
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        reason("cassandra", 2).starts_with("column `id` (uuid): \"not-a-uuid\" is not a UUID"),
        "{reasons:?}"
    );
    assert!(
        reason("cassandra", 3).starts_with("column `n` (int): 3000000000 does not fit"),
        "{reasons:?}"
    );
    assert!(
        reason("cassandra", 4).starts_with("column `at` (timestamp): \"yesterday\""),
        "{reasons:?}"
    );
    assert_eq!(
        reason("cassandra", 6),
        "primary key column `id` is missing",
        "{reasons:?}"
    );
    assert!(
        reason("mongodb", 5).contains("code 11000"),
        "the server's message: {reasons:?}"
    );
    assert!(
        reason("mongodb", 6).starts_with("field `id` is missing"),
        "{reasons:?}"
    );
    assert_eq!(dead.len(), 6, "{reasons:?}");

    // The rest are written.
    let rows = cql_rows(&cassandra(), &format!("SELECT * FROM {keyspace}.people"));
    let ids: BTreeSet<_> = rows
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, [id(1), id(5), id(7)].into_iter().collect());
    let first = rows.iter().find(|r| r["id"] == id(1).as_str()).unwrap();
    assert_eq!(first["n"], 1);
    assert_eq!(first["at"], "2026-01-01T00:00:00.000Z");
    let seventh = rows.iter().find(|r| r["id"] == id(7).as_str()).unwrap();
    assert_eq!(seventh["n"], Value::Null, "JSON null is CQL null");
    let docs: BTreeSet<String> = mongo_docs(&uri, &database, "people")
        .iter()
        .map(|d| d["_id"].as_str().unwrap().to_owned())
        .collect();
    let want: BTreeSet<String> = [
        "first".to_owned(),
        id(1),
        "not-a-uuid".into(),
        id(3),
        id(4),
        id(7),
    ]
    .into_iter()
    .collect();
    assert_eq!(docs, want);
}

/// Issue 7's crash test: 50,000 users through Kafka -> format_user -> both stores, and
/// gender_window -> MongoDB; the host is SIGKILLed at random moments 5 times and
/// started again each time. At the end the user stores hold every id exactly once and
/// every window's counts equal the ones computed here from the input.
#[test]
fn killed_five_times_the_stores_and_windows_end_exact() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("crash");
    let count = 50_000;
    let expected = produce(dir.path(), &topic, count);
    assert_eq!(expected.len() as u64, count, "distinct generated users");
    let counts = independent_counts(&topic, count as usize);

    let stores = Stores::new(cassandra(), mongo());
    let group = unique("g");
    let path = consumer(dir.path(), "crash", &topic, &group, &stores, "");
    let mut rng = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    for kill in 1..=5 {
        let mut host = Host::start(&path);
        host.wait_log(120, "partition assignment", |l| {
            Host::assigned(l) == Some(4)
        });
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let after = Duration::from_millis(500 + (rng >> 33) % 4000);
        std::thread::sleep(after);
        host.signal("-KILL");
        host.wait(30);
        println!(
            "kill {kill} after {after:?}: {} users in MongoDB so far",
            stores.mongo_ids().len()
        );
    }
    // The same pipeline (same name, so the same window state), reading to the end.
    let end = consumer(
        dir.path(),
        "crash",
        &topic,
        &group,
        &stores,
        "stop_at_end = true",
    );
    run_to_end(&end);

    assert_users_equal(&stores, &expected);
    let got: BTreeMap<String, Value> = stores
        .windows()
        .into_iter()
        .map(|w| (w["_id"].as_str().unwrap().to_owned(), w))
        .collect();
    assert_eq!(got, counts, "every window exact after 5 kills");
}

/// Two hosts share a topic's 4 partitions; one is SIGKILLed mid-stream and not
/// restarted. Windows are emitted per partition (`output = "partials"`), their state
/// lives in a compacted topic (`state = "kafka"`), and MongoDB sums the partials
/// (`partials = true`) while Cassandra keeps one row per (window, partition)
/// (`partition_column`) for the reader to sum: once the other host has taken over the
/// dead one's partitions (and their open windows), every window's totals equal the
/// input's counts, in both stores.
#[test]
fn two_hosts_one_killed_the_window_totals_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("hosts");
    create_topic(&topic, 4);
    let group = unique("g");
    let uri = mongo();
    let database = unique_name("db");
    let keyspace = unique_name("ks");
    let contact = cassandra();
    let host = |name: &str| {
        pipeline(
            dir.path(),
            &format!("{name}.toml"),
            &format!(
                r#"
[pipeline]
name = "{name}"
batch_size = 100
checkpoint_interval = "300ms"
linger = "20ms"
[source]
type = "kafka"
brokers = "{broker}"
topics = ["{topic}"]
group_id = "{group}"
{FAST_GROUP}
[window]
plugin = "{{GENDER_WINDOW}}"
size = "1m"
idle_timeout = "3s"
output = "partials"
state = "kafka"
[[sinks]]
type = "mongodb"
input = "windows"
uri = "{uri}"
database = "{database}"
collection = "GenderCounts"
id_field = "window_start"
partials = true
[[sinks]]
type = "cassandra"
input = "windows"
contact_points = "{contact}"
keyspace = "{keyspace}"
table = "gender_partials"
create = {{ replication = {{ class = "SimpleStrategy", replication_factor = 1 }} }}
columns = {{ window_start = "timestamp", partition = "text", window_end = "timestamp", male_count = "bigint", female_count = "bigint", other_count = "bigint", total_count = "bigint" }}
primary_key = ["window_start", "partition"]
partition_column = "partition"
[dead_letter]
type = "file"
path = "{name}-dead.jsonl"
"#,
                broker = broker()
            ),
        )
    };
    let mut a = Host::start(&host("a"));
    let mut b = Host::start(&host("b"));
    // Both in the group, two partitions each (the second join rebalances the first).
    a.wait_log(120, "an even split", |l| Host::assigned(l) == Some(2));
    b.wait_log(120, "an even split", |l| Host::assigned(l) == Some(2));
    let mut producing = Host::start(&producer(dir.path(), &topic, 20_000, Some(2_000)));
    let windows = || mongo_docs(&uri, &database, "GenderCounts");
    wait_for(120, "windows written by both hosts", &mut a, || {
        windows().len() >= 3
    });
    a.signal("-KILL");
    a.wait(30);
    assert!(producing.wait(120).success(), "{}", producing.log());

    let expected = independent_counts(&topic, 20_000);
    let totals = |w: &Value| {
        let mut w = w.as_object().unwrap().clone();
        w.remove("partials");
        (w["_id"].as_str().unwrap().to_owned(), Value::Object(w))
    };
    // B takes over A's partitions (after A's session times out) and their windows.
    let got = || windows().iter().map(totals).collect::<BTreeMap<_, _>>();
    let deadline = Instant::now() + Duration::from_secs(180);
    while got() != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    let got = got();
    let wrong: Vec<_> = expected
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(*v))
        .map(|(k, v)| (v.clone(), got.get(k).cloned()))
        .collect();
    assert!(
        wrong.is_empty(),
        "windows not as the input has them (expected, got): {wrong:#?}\n{} dead letters\n{}",
        common::host::lines(&dir.path().join("b-dead.jsonl")),
        b.log()
    );
    let log = b.log();
    b.stop();
    assert!(
        log.contains("state of 4 assigned partition(s) taken up from"),
        "{log}"
    );
    for w in windows() {
        let partials = w["partials"].as_object().unwrap();
        assert!(!partials.is_empty() && partials.len() <= 4, "{w}");
    }
    // Cassandra: the reader sums each window's per-partition rows (written by the
    // same hosts beside MongoDB's, so at most a batch behind).
    let cassandra_sums = || {
        let rows = cql_rows(
            &contact,
            &format!("SELECT * FROM {keyspace}.gender_partials"),
        );
        let mut summed: BTreeMap<String, [i64; 4]> = BTreeMap::new();
        let mut partitions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for row in &rows {
            let start = chrono::DateTime::parse_from_rfc3339(row["window_start"].as_str().unwrap())
                .unwrap()
                .to_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let sums = summed.entry(start.clone()).or_default();
            for (i, c) in ["male_count", "female_count", "other_count", "total_count"]
                .iter()
                .enumerate()
            {
                sums[i] += row[*c].as_i64().unwrap();
            }
            let partition = row["partition"].as_str().unwrap().to_owned();
            assert!(
                partitions.entry(start).or_default().insert(partition),
                "one row per window and partition"
            );
        }
        summed
    };
    let expected_sums: BTreeMap<String, [i64; 4]> = expected
        .iter()
        .map(|(k, w)| {
            let n = |c: &str| w[c].as_i64().unwrap();
            (
                k.clone(),
                [
                    n("male_count"),
                    n("female_count"),
                    n("other_count"),
                    n("total_count"),
                ],
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut summed = cassandra_sums();
    while summed != expected_sums && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        summed = cassandra_sums();
    }
    assert_eq!(
        summed, expected_sums,
        "Cassandra's partials sum to the input's counts"
    );
    assert!(
        json_lines(&dir.path().join("b-dead.jsonl")).is_empty(),
        "no record late or lost"
    );
}
