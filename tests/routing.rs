//! Routes: a transform (route_by_field) names a route on each record, and only the
//! sinks that take it get the record; a route no sink takes is a dead letter naming
//! it; one Kafka sink can split routes over topics.

use crate::common;

use common::{json_lines, pipeline, runtime, wasm};
use sluice::engine::Pipeline;
use std::collections::BTreeSet;
use tokio_util::sync::CancellationToken;

async fn run(path: &std::path::Path) -> sluice::engine::Counters {
    let config = sluice::config::load(path).unwrap();
    Pipeline::build(config, &runtime())
        .unwrap()
        .run(CancellationToken::new())
        .await
        .unwrap()
}

fn nats(path: &std::path::Path) -> BTreeSet<String> {
    json_lines(path)
        .iter()
        .map(|u| u["nat"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn records_go_down_their_routes_and_an_untaken_route_is_a_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        "route.toml",
        &format!(
            r#"
[source]
type = "generator"
seed = 3
count = 1000
[[transforms]]
plugin = "{}"
config = {{ field = "nat", routes = {{ BR = "americas", CA = "americas", GB = "europe", DE = "europe", NZ = "nowhere" }} }}
[[sinks]]
type = "file"
route = "americas"
path = "americas.jsonl"
[[sinks]]
type = "file"
routes = ["europe", "default"]
path = "europe_and_rest.jsonl"
[[sinks]]
type = "file"
path = "rest.jsonl"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#,
            wasm("route_by_field").display()
        ),
    );
    let counters = run(&p).await;
    let americas = nats(&dir.path().join("americas.jsonl"));
    assert_eq!(americas, BTreeSet::from(["BR".into(), "CA".into()]));
    let europe_and_rest = json_lines(&dir.path().join("europe_and_rest.jsonl"));
    let rest = json_lines(&dir.path().join("rest.jsonl"));
    assert!(europe_and_rest.len() > rest.len() && !rest.is_empty());
    let rest_nats = nats(&dir.path().join("rest.jsonl"));
    for routed in ["BR", "CA", "GB", "DE", "NZ"] {
        assert!(
            !rest_nats.contains(routed),
            "{routed} went to the default route"
        );
    }
    let dead = json_lines(&dir.path().join("dead.jsonl"));
    assert!(!dead.is_empty());
    for d in &dead {
        assert_eq!(d["stage"], "route", "{d}");
        assert!(
            d["reason"]
                .as_str()
                .unwrap()
                .contains("route `nowhere`: no sink takes it"),
            "{d}"
        );
        assert!(d["record"]["value"].to_string().contains("NZ"), "{d}");
    }
    // Every record went somewhere once: its route's sinks, or the dead letters.
    let americas_n = json_lines(&dir.path().join("americas.jsonl")).len();
    let europe_n = europe_and_rest.len() - rest.len();
    assert_eq!(americas_n + europe_n + rest.len() + dead.len(), 1000);
    assert_eq!(counters.dead_letters, dead.len() as u64);
}

#[test]
fn validate_warns_of_a_route_no_sink_takes() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        "warn.toml",
        &format!(
            r#"
[source]
type = "generator"
count = 1
[[transforms]]
plugin = "{}"
config = {{ field = "nat", routes = {{ US = "americas" }}, otherwise = "elsewhere" }}
[[sinks]]
type = "file"
route = "americas"
path = "a.jsonl"
"#,
            wasm("route_by_field").display()
        ),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("validate")
        .arg(&p)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("route `elsewhere`, which no sink takes"),
        "{stderr}"
    );
    assert!(!stderr.contains("route `americas`"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_kafka_sink_splits_routes_over_topics_and_never_sends_the_route() {
    let broker = common::kafka::broker();
    let (americas, europe, other) = (
        common::kafka::unique("americas"),
        common::kafka::unique("europe"),
        common::kafka::unique("other"),
    );
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        "kafka_route.toml",
        &format!(
            r#"
[source]
type = "generator"
seed = 3
count = 300
[[transforms]]
plugin = "{}"
config = {{ field = "nat", routes = {{ BR = "americas", GB = "europe" }}, otherwise = "other" }}
[[sinks]]
type = "kafka"
brokers = "{broker}"
routes = ["americas", "europe", "other"]
topic = "{other}"
route_topics = {{ americas = "{americas}", europe = "{europe}" }}
create_topic = {{ partitions = 1, replication_factor = 1 }}
[[sinks]]
type = "file"
routes = ["americas", "europe", "other"]
path = "all.jsonl"
"#,
            wasm("route_by_field").display()
        ),
    );
    run(&p).await;
    let all = json_lines(&dir.path().join("all.jsonl"));
    let of = |n: &str| all.iter().filter(|u| u["nat"] == n).count();
    let (us, fr) = (of("BR"), of("GB"));
    let a = common::kafka::read_all(&americas, us);
    let e = common::kafka::read_all(&europe, fr);
    let o = common::kafka::read_all(&other, 300 - us - fr);
    assert_eq!((a.len(), e.len(), o.len()), (us, fr, 300 - us - fr));
    let nat = |v: &Vec<u8>| serde_json::from_slice::<serde_json::Value>(v).unwrap()["nat"].clone();
    assert!(!a.is_empty() && a.iter().all(|(v, _)| nat(v) == "BR"));
    assert!(!e.is_empty() && e.iter().all(|(v, _)| nat(v) == "GB"));
    assert!(o.iter().all(|(v, _)| nat(v) != "BR" && nat(v) != "GB"));
    for (_, headers) in a.iter().chain(&e).chain(&o) {
        assert!(
            headers.iter().all(|(k, _)| k != "sluice.route"),
            "{headers:?}"
        );
    }
}

/// Every records sink takes a route, and the plugin leaves some records with none:
/// those are dead letters (route `default`), not lost; and `sluice validate` says so.
#[tokio::test(flavor = "multi_thread")]
async fn records_naming_no_route_with_no_sink_for_them_are_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        "no_default.toml",
        &format!(
            r#"
[source]
type = "generator"
seed = 3
count = 500
[[transforms]]
plugin = "{}"
config = {{ field = "nat", routes = {{ BR = "americas" }} }}
[[sinks]]
type = "file"
route = "americas"
path = "americas.jsonl"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#,
            wasm("route_by_field").display()
        ),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("validate")
        .arg(&p)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("records that name none would be dead letters"),
        "{stderr}"
    );
    run(&p).await;
    let americas = json_lines(&dir.path().join("americas.jsonl"));
    let dead = json_lines(&dir.path().join("dead.jsonl"));
    assert!(!americas.is_empty() && !dead.is_empty());
    assert_eq!(americas.len() + dead.len(), 500);
    assert!(dead
        .iter()
        .all(|d| d["reason"].as_str().unwrap().contains("route `default`")));
}

/// A route no sink takes, for every record: the run of dead letters stops the
/// pipeline (`max_dead_letter_run`) instead of copying the whole input there.
#[tokio::test(flavor = "multi_thread")]
async fn a_route_no_sink_takes_for_everything_stops_at_the_dead_letter_run() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        "typo.toml",
        &format!(
            r#"
[pipeline]
batch_size = 50
max_dead_letter_run = 200
[source]
type = "generator"
seed = 3
count = 5000
[[transforms]]
plugin = "{}"
config = {{ field = "nat", otherwise = "amercias" }}
[[sinks]]
type = "file"
route = "americas"
path = "americas.jsonl"
[dead_letter]
type = "file"
path = "dead.jsonl"
"#,
            wasm("route_by_field").display()
        ),
    );
    let config = sluice::config::load(&p).unwrap();
    let err = Pipeline::build(config, &runtime())
        .unwrap()
        .run(CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("dead letters in a row"), "{err}");
    assert!(json_lines(&dir.path().join("dead.jsonl")).len() < 5000);
}
