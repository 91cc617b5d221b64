//! The PostgreSQL sink and source end to end, against PostgreSQL itself (Debian's
//! package, started by `scripts/servers.sh` on 127.0.0.1, or `SLUICE_TEST_POSTGRES`):
//! users written field by field and replayed, kill -9 mid-stream, the server stopped
//! for 20 s mid-stream, rows the server refuses, and a staging table read
//! incrementally across a kill. Every test has tables of its own; the outage test
//! stops a server of its own.

use crate::common;

use common::host::{lines, Host};
use common::stores::{
    external, pg_execute, pg_rows, postgres, try_pg_rows, unique_name, OwnServer, Store,
};
use common::{json_lines, pipeline};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

fn run_to_end(path: &Path) -> Host {
    let mut host = Host::start(path);
    let status = host.wait(300);
    assert!(status.success(), "{status}:\n{}", host.log());
    host
}

/// The rows of `table` by id.
fn rows_by_id(url: &str, table: &str) -> BTreeMap<String, Map<String, Value>> {
    let rows = pg_rows(url, &format!("SELECT * FROM {table}"));
    let n = rows.len();
    let by_id: BTreeMap<_, _> = rows
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap().to_owned(), r))
        .collect();
    assert_eq!(by_id.len(), n, "an id twice in {table}");
    by_id
}

fn count(url: &str, table: &str) -> u64 {
    try_pg_rows(url, &format!("SELECT count(*) AS n FROM {table}"))
        .ok()
        .and_then(|r| r[0]["n"].as_u64())
        .unwrap_or(0)
}

/// The table holds exactly the users of `produced` (JSON lines, as format_user
/// emitted them), each field equal: text columns hold strings as they are.
fn assert_table_is(url: &str, table: &str, produced: &[Value]) {
    let rows = rows_by_id(url, table);
    let expected: BTreeMap<String, &Value> = produced
        .iter()
        .map(|u| (u["id"].as_str().unwrap().to_owned(), u))
        .collect();
    assert_eq!(
        rows.len(),
        expected.len(),
        "rows in {table} (users: {})",
        produced.len()
    );
    for (id, user) in &expected {
        let row = rows
            .get(id)
            .unwrap_or_else(|| panic!("user {id} is not in {table}"));
        let user = user.as_object().unwrap();
        assert_eq!(row.len(), 12, "{row:?}");
        for (field, value) in user {
            let text = match value {
                Value::String(s) => Value::String(s.clone()),
                Value::Null => Value::Null,
                other => Value::String(other.to_string()),
            };
            assert_eq!(row[field], text, "{table} row {id}, column {field}");
        }
    }
}

fn users_pipeline(
    dir: &Path,
    name: &str,
    url: &str,
    table: &str,
    source: &str,
) -> std::path::PathBuf {
    pipeline(
        dir,
        name,
        &format!(
            r#"
[pipeline]
checkpoint_interval = "200ms"
retry = {{ backoff = "200ms", max_backoff = "2s", max_retries = 60 }}
[source]
type = "generator"
seed = 5
{source}
[[transforms]]
plugin = "{{FORMAT_USER}}"
[[sinks]]
type = "postgres"
url = "{url}"
table = "{table}"
[[sinks]]
type = "file"
path = "produced.jsonl"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#
        ),
    )
}

#[test]
fn users_reach_postgres_field_by_field_and_a_replay_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = postgres();
    let table = unique_name("users");
    let path = users_pipeline(dir.path(), "users.toml", &url, &table, "count = 3000");
    run_to_end(&path);
    let produced = json_lines(&dir.path().join("produced.jsonl"));
    assert_eq!(produced.len(), 3000);
    assert!(json_lines(&dir.path().join("dead.jsonl")).is_empty());
    assert_table_is(&url, &table, &produced);
    // The columns the sink made: the seeds' created_users.
    let columns = pg_rows(
        &url,
        &format!(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = '{table}' ORDER BY column_name"
        ),
    );
    let types: BTreeMap<String, String> = columns
        .iter()
        .map(|c| {
            (
                c["column_name"].as_str().unwrap().to_owned(),
                c["data_type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(types.len(), 12);
    assert_eq!(types["id"], "uuid");
    assert_eq!(types["email"], "text");
    let before = rows_by_id(&url, &table);

    // The same users again (a replay): upserts rewrite the same rows.
    std::fs::remove_file(dir.path().join("produced.jsonl")).unwrap();
    run_to_end(&path);
    assert_eq!(rows_by_id(&url, &table), before, "a replay changed rows");

    // `sluice query postgres` reads them back.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["query", "postgres", "--url", &url])
        .arg(format!("SELECT id, email FROM {table} ORDER BY id"))
        .args(["--limit", "5"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let first: Vec<&String> = before.keys().take(5).collect();
    assert_eq!(printed.len(), 5);
    for (p, id) in printed.iter().zip(first) {
        assert_eq!(p["id"].as_str().unwrap(), id);
        assert_eq!(p["email"], before[id]["email"]);
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["query", "postgres", "--url", &url, "--count"])
        .arg(format!("SELECT id FROM {table}"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3000");
}

/// 60,000 users from a file (a source that resumes) to PostgreSQL; the host is
/// SIGKILLed three times part-way and started again; at the end the table holds
/// every user once, each field equal.
#[test]
fn killed_three_times_mid_stream_the_table_ends_exact() {
    let dir = tempfile::tempdir().unwrap();
    let url = postgres();
    let table = unique_name("killed");
    let total = 60_000u64;
    let make = pipeline(
        dir.path(),
        "make.toml",
        &format!(
            "[source]\ntype = \"generator\"\nseed = 9\ncount = {total}\n[[transforms]]\nplugin = \"{{FORMAT_USER}}\"\n[[sinks]]\ntype = \"file\"\npath = \"users.jsonl\"\n"
        ),
    );
    run_to_end(&make);
    let users = json_lines(&dir.path().join("users.jsonl"));
    assert_eq!(users.len() as u64, total);
    let path = pipeline(
        dir.path(),
        "kills.toml",
        &format!(
            r#"
[pipeline]
batch_size = 256
checkpoint_interval = "50ms"
[source]
type = "file"
path = "users.jsonl"
[[sinks]]
type = "postgres"
url = "{url}"
table = "{table}"
rows_per_statement = 100
[dead_letter]
type = "file"
path = "dead.jsonl"
"#
        ),
    );
    let mut kills = 0;
    for round in 1..=3u64 {
        let mut host = Host::start(&path);
        let deadline = Instant::now() + Duration::from_secs(180);
        while count(&url, &table) < round * total / 5 {
            assert!(
                Instant::now() < deadline,
                "round {round}: too slow\n{}",
                host.log()
            );
            if host.child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if host.child.try_wait().unwrap().is_none() {
            host.signal("-KILL");
            kills += 1;
        }
        host.wait(30);
    }
    assert!(kills >= 2, "killed mid-stream ({kills} times)");
    let host = run_to_end(&path);
    assert!(
        json_lines(&dir.path().join("dead.jsonl")).is_empty(),
        "{}",
        host.log()
    );
    assert_table_is(&url, &table, &users);
}

/// PostgreSQL stopped for 20 s mid-stream: the sink retries (the host keeps
/// running), writes on once the server is back, and the table ends with every user.
#[test]
fn postgres_stopped_for_20s_mid_stream_is_retried_and_nothing_is_lost() {
    if external(Store::Postgres) {
        eprintln!("skipped: SLUICE_TEST_POSTGRES is external, so this test cannot stop it");
        return;
    }
    let own = OwnServer::start(Store::Postgres);
    let url = own.address();
    let dir = tempfile::tempdir().unwrap();
    let table = unique_name("outage");
    // 12,000 users over ~30 s, so the outage falls mid-stream.
    let path = users_pipeline(
        dir.path(),
        "outage.toml",
        &url,
        &table,
        "count = 12000\nrate = 400",
    );
    let mut host = Host::start(&path);
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&url, &table) < 1000 {
        assert!(Instant::now() < deadline, "no rows:\n{}", host.log());
        assert!(host.child.try_wait().unwrap().is_none(), "{}", host.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    own.stop();
    std::thread::sleep(Duration::from_secs(20));
    assert!(
        host.child.try_wait().unwrap().is_none(),
        "the host gave up while PostgreSQL was away:\n{}",
        host.log()
    );
    assert!(
        host.log().contains("still to write: retry"),
        "no retries logged:\n{}",
        host.log()
    );
    own.restart();
    let status = host.wait(180);
    assert!(status.success(), "{status}:\n{}\n{}", host.log(), own.log());
    let produced = json_lines(&dir.path().join("produced.jsonl"));
    assert_eq!(produced.len(), 12_000);
    assert!(json_lines(&dir.path().join("dead.jsonl")).is_empty());
    assert_table_is(&url, &table, &produced);
}

#[test]
fn rows_postgres_refuses_go_to_the_dead_letters_naming_key_and_constraint() {
    let dir = tempfile::tempdir().unwrap();
    let url = postgres();
    let table = unique_name("people");
    // A table of the user's own: a check, a length and a unique email.
    pg_execute(
        &url,
        &format!(
            "CREATE TABLE {table} (id uuid PRIMARY KEY, n integer CHECK (n >= 0), email varchar(20) UNIQUE, at timestamptz);
             INSERT INTO {table} VALUES ('00000000-0000-4000-8000-000000000000', 0, 'taken@example.com', NULL);"
        ),
    );
    let id = |n: u32| format!("6a3b2c1d-0000-4000-8000-{n:012}");
    let lines = [
        json!({"id": id(1), "n": 1, "at": "2026-01-01T00:00:00Z", "email": "a@example.com"}),
        json!({"id": "not-a-uuid", "n": 2, "email": "b@example.com"}),
        json!({"id": id(3), "n": -3, "email": "c@example.com"}),
        json!({"id": id(4), "n": 4, "email": "a-very-long-address@example.com"}),
        json!({"id": id(5), "n": 5, "email": "taken@example.com"}),
        json!({"n": 6, "email": "f@example.com"}),
        json!({"id": id(7), "n": 7, "at": "yesterday"}),
        json!({"id": id(8), "n": null, "email": "h@example.com"}),
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
type = "postgres"
url = "{url}"
table = "{table}"
columns = {{ id = "uuid", n = "integer", email = "text", at = "timestamptz" }}
primary_key = "id"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#
        ),
    );
    run_to_end(&path);
    let dead = json_lines(&dir.path().join("dead.jsonl"));
    let mut reasons: BTreeMap<usize, String> = BTreeMap::new();
    for d in &dead {
        assert_eq!(d["stage"], "sink", "{d}");
        let line = offsets
            .iter()
            .position(|&o| o == d["position"]["offset"].as_u64().unwrap())
            .unwrap();
        assert_eq!(
            d["record"]["value"].as_str().unwrap(),
            lines[line].to_string()
        );
        reasons.insert(line + 1, d["reason"].as_str().unwrap().to_owned());
    }
    let reason = |line: usize| reasons.get(&line).cloned().unwrap_or_default();
    let has = |line: usize, parts: &[&str]| {
        let r = reason(line);
        for p in parts {
            assert!(
                r.contains(p),
                "line {line}: {p:?} not in {r:?} (all: {reasons:?})"
            );
        }
    };
    has(2, &[&table, "column `id` (uuid)", "not-a-uuid"]);
    has(
        3,
        &[
            &table,
            &format!("row id={}", id(3)),
            "check constraint",
            "23514",
            &format!("{table}_n_check"),
        ],
    );
    has(
        4,
        &[
            &table,
            &format!("row id={}", id(4)),
            "value too long",
            "22001",
        ],
    );
    has(
        5,
        &[
            &table,
            &format!("row id={}", id(5)),
            "23505",
            &format!("{table}_email_key"),
        ],
    );
    has(6, &[&table, "key column `id` is missing"]);
    has(7, &[&table, "column `at` (timestamptz)", "yesterday"]);
    assert_eq!(dead.len(), 6, "{reasons:?}");

    let rows = rows_by_id(&url, &table);
    let ids: BTreeSet<&str> = rows.keys().map(String::as_str).collect();
    let want = [
        id(1),
        id(8),
        "00000000-0000-4000-8000-000000000000".to_owned(),
    ];
    assert_eq!(ids, want.iter().map(String::as_str).collect());
    assert_eq!(rows[&id(1)]["n"], 1);
    assert_eq!(rows[&id(1)]["at"], "2026-01-01T00:00:00+00:00");
    assert_eq!(rows[&id(8)]["n"], Value::Null, "JSON null is SQL NULL");
}

/// Seed 001's staging table on its way on: a table read by its serial id, the host
/// SIGKILLed part-way, started again while more rows arrive. The output holds every
/// row once, in id order, and the position is in the state folder.
#[test]
fn a_table_is_read_incrementally_and_resumes_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let url = postgres();
    let table = unique_name("staging");
    pg_execute(
        &url,
        &format!(
            "CREATE TABLE {table} (id bigserial PRIMARY KEY, name text, ts bigint);
             INSERT INTO {table} (name, ts) SELECT 'user ' || g, 1767225600000 + g FROM generate_series(1, 100000) g;"
        ),
    );
    let path = pipeline(
        dir.path(),
        "staging.toml",
        &format!(
            r#"
[pipeline]
batch_size = 256
checkpoint_interval = "50ms"
[source]
type = "postgres"
url = "{url}"
table = "{table}"
column = "id"
batch_rows = 500
poll_interval = "100ms"
event_time = {{ field = "ts", format = "epoch_ms" }}
[[sinks]]
type = "file"
path = "out.jsonl"
"#
        ),
    );
    let out = dir.path().join("out.jsonl");
    let position = dir
        .path()
        .join(".sluice/staging/postgres-source-position.json");
    let mut host = Host::start(&path);
    // Killed once a position is saved (a checkpoint came back), part-way.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !position.exists() {
        assert!(
            Instant::now() < deadline,
            "no position saved:\n{}",
            host.log()
        );
        assert!(host.child.try_wait().unwrap().is_none(), "{}", host.log());
        std::thread::sleep(Duration::from_millis(2));
    }
    host.signal("-KILL");
    host.wait(30);
    assert!(lines(&out) < 100_000, "killed before the end");

    let mut host = Host::start(&path);
    pg_execute(
        &url,
        &format!(
            "INSERT INTO {table} (name, ts) SELECT 'user ' || g, 1767225600000 + g FROM generate_series(100001, 105000) g;"
        ),
    );
    host.wait_log(60, "the resume", |l| l.contains("resuming"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while lines(&out) < 105_000 {
        assert!(
            Instant::now() < deadline,
            "{} lines:\n{}",
            lines(&out),
            host.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Time to read anything twice, if it would.
    std::thread::sleep(Duration::from_millis(500));
    host.stop();
    let rows = json_lines(&out);
    let ids: Vec<u64> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(
        ids,
        (1..=105_000).collect::<Vec<u64>>(),
        "every row once, in order"
    );
    assert_eq!(rows[41]["name"], "user 42");
    assert_eq!(rows[41]["ts"], 1767225600042u64);
    let saved: Value = serde_json::from_slice(&std::fs::read(&position).unwrap()).unwrap();
    assert_eq!(saved["through"], 105_000, "{saved}");
}

/// Two records for one row in a batch (the same uuid, in capitals once): the last is
/// written, the statement does not touch the row twice. When the last is refused,
/// the earlier one is written on the next attempt, not counted as written unseen.
#[test]
fn one_key_twice_in_a_batch_writes_the_last_and_never_drops_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let url = postgres();
    let table = unique_name("twice");
    pg_execute(
        &url,
        &format!("CREATE TABLE {table} (id uuid PRIMARY KEY, n integer CHECK (n >= 0))"),
    );
    let x = "6a3b2c1d-0000-4000-8000-0000000000aa";
    let y = "6a3b2c1d-0000-4000-8000-0000000000bb";
    let lines = [
        json!({"id": x, "n": 1}),
        json!({"id": x.to_uppercase(), "n": 2}),
        json!({"id": y, "n": 1}),
        json!({"id": y, "n": -1}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.path().join("in.jsonl"), text).unwrap();
    let path = pipeline(
        dir.path(),
        "twice.toml",
        &format!(
            r#"
[pipeline]
retry = {{ backoff = "10ms", max_backoff = "50ms", max_retries = 5 }}
[source]
type = "file"
path = "in.jsonl"
[[sinks]]
type = "postgres"
url = "{url}"
table = "{table}"
columns = {{ id = "uuid", n = "integer" }}
primary_key = "id"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#
        ),
    );
    run_to_end(&path);
    let rows = rows_by_id(&url, &table);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[x]["n"], 2, "the last of x");
    assert_eq!(
        rows[y]["n"], 1,
        "y's first, written after its last was refused"
    );
    let dead = json_lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0]["reason"].as_str().unwrap().contains("23514"),
        "{dead:?}"
    );
}

/// A table read by a timestamp column (no time zone, whatever the session's) whose
/// values repeat across the batch limit, with a NULL among them: every row once,
/// the NULL one left out.
#[test]
fn rows_sharing_a_value_across_the_batch_limit_are_all_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = postgres();
    let table = unique_name("shared");
    pg_execute(
        &url,
        &format!(
            "CREATE TABLE {table} (n integer, at timestamp);
             INSERT INTO {table} SELECT g, timestamp '2026-01-01 00:00:00' + (g / 5) * interval '1 second' FROM generate_series(0, 24) g;
             INSERT INTO {table} VALUES (99, NULL);"
        ),
    );
    let path = pipeline(
        dir.path(),
        "shared.toml",
        &format!(
            r#"
[source]
type = "postgres"
url = "{url}?options=-c%20TimeZone%3DAmerica%2FNew_York"
table = "{table}"
column = "at"
batch_rows = 7
follow = false
[[sinks]]
type = "file"
path = "out.jsonl"
"#
        ),
    );
    run_to_end(&path);
    let mut ns: Vec<u64> = json_lines(&dir.path().join("out.jsonl"))
        .iter()
        .map(|r| r["n"].as_u64().unwrap())
        .collect();
    ns.sort();
    assert_eq!(ns, (0..25).collect::<Vec<u64>>());
}
