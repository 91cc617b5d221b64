//! Kafka with a Schema Registry (`format = "avro"` / `"json_schema"`), end to end on
//! a real broker and the test registry: values written by Confluent's own Python
//! serializers read by Sluice, and Sluice's read by Confluent's deserializers, with a
//! schema evolved on the way; what cannot be decoded a dead letter with its position;
//! the registry down for a while (waited for, nothing lost); a schema the registry
//! refuses stopping the start; records that do not fit the schema dead letters
//! naming the field.

use crate::common;

use common::host::Host;
use common::kafka::{broker, create_topic, produce, unique, FAST_GROUP};
use common::registry::{call, own_registry, python};
use common::stores::registry;
use common::{free_port, json_lines, pipeline, repo};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// tests/servers/registry/clients.py with `args`: its stdout lines.
fn clients(args: &[&str]) -> Vec<String> {
    let out = Command::new(python())
        .arg(repo().join("tests/servers/registry/clients.py"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/test.sh makes the venv)", python()));
    assert!(
        out.status.success(),
        "clients.py {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `n` user rows (the twelve fields), numbered from `from`, fitting schemas/user.json.
fn users(from: usize, n: usize) -> Vec<Value> {
    (from..from + n)
        .map(|i| {
            json!({
                "id": format!("6f1c2a4e-8b1d-4c55-9a77-{i:012x}"),
                "first_name": format!("Ann{i}"), "last_name": "Smith", "gender": if i % 2 == 0 { "female" } else { "male" },
                "address": format!("{i} High Street, Leeds"), "post_code": "LS1 4AP",
                "email": format!("ann{i}@example.com"), "username": format!("ann{i}"),
                "dob": "1990-05-17T10:00:00.000Z", "registered_date": "2015-01-02T03:04:05.000Z",
                "phone": "0113 496 0000", "picture": format!("https://randomuser.me/api/portraits/med/women/{}.jpg", i % 100)
            })
        })
        .collect()
}

fn write_lines(path: &Path, values: &[Value]) {
    let text: String = values.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// The shipped Avro row with a thirteenth field, `nat`, defaulted: v2 of the schema.
fn user_v2(dir: &Path) -> std::path::PathBuf {
    let mut schema: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("schemas/user.avsc")).unwrap())
            .unwrap();
    schema["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "nat", "type": "string", "default": "??"}));
    let path = dir.join("user_v2.avsc");
    std::fs::write(&path, schema.to_string()).unwrap();
    path
}

/// Kafka `from` (read with `format`) -> Kafka or file sinks, to the end of the topic.
fn relay(dir: &Path, from: &str, format: &str, sinks: &str) -> std::path::PathBuf {
    let registry = format!("{{ url = \"{}\" }}", registry());
    relay_with(dir, from, format, &registry, sinks)
}

/// As [`relay`], with the source's `registry` table as given.
fn relay_with(
    dir: &Path,
    from: &str,
    format: &str,
    registry: &str,
    sinks: &str,
) -> std::path::PathBuf {
    pipeline(
        dir,
        "relay.toml",
        &format!(
            r#"
[pipeline]
batch_size = 64
checkpoint_interval = "300ms"
[source]
type = "kafka"
brokers = "{broker}"
topics = ["{from}"]
group_id = "{group}"
stop_at_end = true
format = "{format}"
registry = {registry}
{FAST_GROUP}
{sinks}
[dead_letter]
type = "file"
path = "dead.jsonl"
"#,
            broker = broker(),
            group = unique("g"),
        ),
    )
}

fn kafka_sink(topic: &str, format: &str, schema: &Path) -> String {
    let registry = format!("{{ url = \"{}\" }}", registry());
    kafka_sink_with(topic, format, schema, &registry)
}

/// As [`kafka_sink`], with the sink's `registry` table as given.
fn kafka_sink_with(topic: &str, format: &str, schema: &Path, registry: &str) -> String {
    format!(
        r#"[[sinks]]
type = "kafka"
brokers = "{broker}"
topic = "{topic}"
format = "{format}"
registry = {registry}
value_schema = "{schema}"
"#,
        broker = broker(),
        schema = schema.display()
    )
}

/// `dir`/users.jsonl -> `sink` (its topic made with one partition), dead letters to
/// dead.jsonl; `head` goes first (a `[pipeline]` table).
fn users_to_kafka(dir: &Path, name: &str, head: &str, sink: &str) -> std::path::PathBuf {
    pipeline(
        dir,
        name,
        &format!(
            "{head}\n[source]\ntype = \"file\"\npath = \"users.jsonl\"\n{sink}create_topic = {{ partitions = 1 }}\n[dead_letter]\ntype = \"file\"\npath = \"dead.jsonl\"\n"
        ),
    )
}

fn run_to_end(path: &Path) {
    let mut host = Host::start(path);
    let status = host.wait(180);
    assert!(status.success(), "{}", host.log());
}

/// A JSON object's text with its keys in order (for comparing values in sets).
fn canon(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let sorted: std::collections::BTreeMap<&String, String> =
                m.iter().map(|(k, v)| (k, canon(v))).collect();
            let fields: Vec<String> = sorted.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
            format!("{{{}}}", fields.join(","))
        }
        other => other.to_string(),
    }
}

fn parsed(lines: &[String]) -> BTreeSet<String> {
    lines
        .iter()
        .map(|l| canon(&serde_json::from_str::<Value>(l).unwrap()))
        .collect()
}

fn set_of(values: impl IntoIterator<Item = Value>) -> BTreeSet<String> {
    values.into_iter().map(|v| canon(&v)).collect()
}

#[test]
fn avro_from_confluents_serializer_through_sluice_to_confluents_deserializer_across_a_schema_change(
) {
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = (unique("avro-in"), unique("avro-out"));
    create_topic(&from, 2);
    create_topic(&to, 2);
    let v1 = repo().join("schemas/user.avsc");
    let v2 = user_v2(dir.path());
    // 60 users written with v1 of the schema, then 40 with v2 (a field added, with a
    // default): one topic, two schema ids.
    let old = users(0, 60);
    let new: Vec<Value> = users(60, 40)
        .into_iter()
        .map(|mut u| {
            u["nat"] = json!("FR");
            u
        })
        .collect();
    write_lines(&dir.path().join("old.jsonl"), &old);
    write_lines(&dir.path().join("new.jsonl"), &new);
    let (reg, kafka) = (registry(), broker());
    let produce = |schema: &Path, file: &str| {
        let file = dir.path().join(file);
        let id = clients(&[
            "produce",
            &reg,
            &kafka,
            &from,
            "avro",
            schema.to_str().unwrap(),
            file.to_str().unwrap(),
        ]);
        id[0].parse::<u32>().unwrap()
    };
    let (old_id, new_id) = (produce(&v1, "old.jsonl"), produce(&v2, "new.jsonl"));
    assert_ne!(old_id, new_id);
    // The output topic's subject has v1 already: Sluice registers v2 over it (an
    // evolution the registry accepts).
    let v1_text = std::fs::read_to_string(&v1).unwrap();
    let (status, body) = call(
        "POST",
        &format!("{reg}/subjects/{to}-value/versions"),
        Some(json!({ "schema": v1_text })),
    );
    assert_eq!(status, 200, "{body}");

    let path = relay(dir.path(), &from, "avro", &kafka_sink(&to, "avro", &v2));
    run_to_end(&path);
    assert!(
        !dir.path().join("dead.jsonl").exists()
            || json_lines(&dir.path().join("dead.jsonl")).is_empty()
    );

    // A new reader (v2, the writer's schema): v1's users got the default.
    let read = clients(&["consume", &reg, &kafka, &to, "avro", "100"]);
    let mut want: Vec<Value> = old
        .iter()
        .cloned()
        .map(|mut u| {
            u["nat"] = json!("??");
            u
        })
        .collect();
    want.extend(new.iter().cloned());
    assert_eq!(parsed(&read), set_of(want));
    // An old reader (v1): every user, without the new field.
    let read = clients(&[
        "consume",
        &reg,
        &kafka,
        &to,
        "avro",
        "100",
        v1.to_str().unwrap(),
    ]);
    assert_eq!(parsed(&read), set_of(users(0, 100)));
}

#[test]
fn json_schema_from_confluents_serializer_through_sluice_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = (unique("js-in"), unique("js-out"));
    create_topic(&from, 2);
    create_topic(&to, 2);
    let schema = repo().join("schemas/user.json");
    write_lines(&dir.path().join("users.jsonl"), &users(0, 50));
    let (reg, kafka) = (registry(), broker());
    clients(&[
        "produce",
        &reg,
        &kafka,
        &from,
        "json_schema",
        schema.to_str().unwrap(),
        dir.path().join("users.jsonl").to_str().unwrap(),
    ]);
    let path = relay(
        dir.path(),
        &from,
        "json_schema",
        &kafka_sink(&to, "json_schema", &schema),
    );
    run_to_end(&path);
    let read = clients(&["consume", &reg, &kafka, &to, "json_schema", "50"]);
    assert_eq!(parsed(&read), set_of(users(0, 50)));
}

/// The schema id of `schema` registered under `subject`.
fn register(subject: &str, schema: &str) -> u32 {
    let (status, body) = call(
        "POST",
        &format!("{}/subjects/{subject}/versions", registry()),
        Some(json!({ "schema": schema })),
    );
    assert_eq!(status, 200, "{body}");
    body["id"].as_u64().unwrap() as u32
}

/// A user as Avro of schemas/user.avsc, framed with `id` (Sluice's encoder; the
/// Python tests above hold it to Confluent's).
fn framed_user(id: u32, user: &Value) -> Vec<u8> {
    AvroSchemaFile::read(&repo().join("schemas/user.avsc")).framed(id, user)
}

#[test]
fn values_that_cannot_be_decoded_are_dead_letters_naming_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("avro-bad");
    create_topic(&topic, 1);
    let avsc = std::fs::read_to_string(repo().join("schemas/user.avsc")).unwrap();
    let id = register(&format!("{topic}-value"), &avsc);
    let u = users(0, 3);
    let good = framed_user(id, &u[0]);
    let mut unknown = good.clone();
    unknown[1..5].copy_from_slice(&999_999u32.to_be_bytes());
    let corrupt = good[..good.len() - 7].to_vec();
    produce(
        &topic,
        &[
            (None, Some(good)),                          // offset 0
            (None, Some(u[1].to_string().into_bytes())), // 1: plain JSON, unframed
            (None, Some(unknown)),                       // 2
            (None, Some(corrupt)),                       // 3
            (None, Some(framed_user(id, &u[2]))),        // 4
        ],
    );
    let path = relay(
        dir.path(),
        &topic,
        "avro",
        "[[sinks]]\ntype = \"file\"\npath = \"out.jsonl\"\n",
    );
    run_to_end(&path);
    let out = json_lines(&dir.path().join("out.jsonl"));
    assert_eq!(
        out,
        vec![u[0].clone(), u[2].clone()],
        "decoded as JSON, in order"
    );
    let dead = json_lines(&dir.path().join("dead.jsonl"));
    let by_offset: Vec<(u64, String, String)> = dead
        .iter()
        .map(|d| {
            (
                d["offset"].as_u64().unwrap(),
                d["position"].to_string(),
                d["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(by_offset.len(), 3, "{dead:#?}");
    for (offset, position, _) in &by_offset {
        assert!(position.contains(&topic), "{position} names the topic");
        assert!([1, 2, 3].contains(offset));
    }
    assert!(by_offset[0].2.contains("magic byte"), "{}", by_offset[0].2);
    assert!(
        by_offset[1].2.contains("schema id 999999"),
        "{}",
        by_offset[1].2
    );
    assert!(
        by_offset[2]
            .2
            .contains(&format!("not Avro of schema id {id}")),
        "{}",
        by_offset[2].2
    );
    // The dead letter keeps the bytes as they came.
    assert_eq!(dead[0]["record"]["value"], json!(u[1].to_string()));
}

#[test]
fn a_registry_stopped_mid_stream_is_waited_for_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("avro-down");
    create_topic(&topic, 1);
    let port = free_port();
    let data = dir.path().join("registry.json");
    let (mut up, url) = own_registry(&data, port, &[]);
    let subject = format!("{url}/subjects/{topic}-value/versions");
    let register = |schema: &Path| {
        let text = std::fs::read_to_string(schema).unwrap();
        let (status, body) = call("POST", &subject, Some(json!({ "schema": text })));
        assert_eq!(status, 200, "{body}");
        body["id"].as_u64().unwrap() as u32
    };
    let v1 = register(&repo().join("schemas/user.avsc"));
    let v2_path = user_v2(dir.path());
    let v2 = register(&v2_path);
    let first = users(0, 100);
    let framed: Vec<_> = first
        .iter()
        .map(|u| (None, Some(framed_user(v1, u))))
        .collect();
    produce(&topic, &framed);
    let path = relay_with(
        dir.path(),
        &topic,
        "avro",
        &format!("{{ url = \"{url}\", timeout = \"2s\" }}"),
        "[[sinks]]\ntype = \"file\"\npath = \"out.jsonl\"\n",
    );
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("stop_at_end = true", "stop_at_end = false");
    std::fs::write(&path, text).unwrap();
    let mut host = Host::start(&path);
    let out = dir.path().join("out.jsonl");
    host.wait_lines(&out, 100);
    // Mid-stream, the registry goes away; then come values of a schema id Sluice has
    // not seen yet (v2 of the row, a field added).
    up.kill().unwrap();
    up.wait().unwrap();
    let v2_schema = AvroSchemaFile::read(&v2_path);
    let second: Vec<Value> = users(100, 100)
        .into_iter()
        .map(|mut u| {
            u["nat"] = json!("NL");
            u
        })
        .collect();
    let framed: Vec<_> = second
        .iter()
        .map(|u| (None, Some(v2_schema.framed(v2, u))))
        .collect();
    produce(&topic, &framed);
    host.wait_log(120, "a retry of the schema fetch", |l| {
        l.contains(&format!("fetching schema id {v2}")) && l.contains("asking again")
    });
    assert_eq!(
        common::host::lines(&out),
        100,
        "nothing handed on past the wait"
    );
    assert!(host.try_exit().is_none(), "{}", host.log());
    let (mut back, _) = own_registry(&data, port, &[]);
    host.wait_lines(&out, 200);
    host.stop();
    back.kill().unwrap();
    back.wait().unwrap();
    let mut all = first;
    all.extend(second);
    assert_eq!(json_lines(&out), all, "every user once, in order");
    assert!(json_lines(&dir.path().join("dead.jsonl")).is_empty());
}

/// An Avro schema file, for values framed by hand.
struct AvroSchemaFile(sluice::registry::AvroSchema);

impl AvroSchemaFile {
    fn read(path: &Path) -> Self {
        AvroSchemaFile(
            sluice::registry::AvroSchema::parse(&std::fs::read_to_string(path).unwrap()).unwrap(),
        )
    }

    fn framed(&self, id: u32, value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        sluice::registry::frame(id, &mut out);
        self.0.from_json(value, &mut out).unwrap();
        out
    }
}

#[test]
fn a_value_schema_the_registry_refuses_stops_the_start_and_misfits_are_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("avro-refused");
    // The subject's history: v1 of the user row.
    let avsc = std::fs::read_to_string(repo().join("schemas/user.avsc")).unwrap();
    register(&format!("{topic}-value"), &avsc);
    // A new field without a default cannot read the old data: BACKWARD refuses it.
    let mut broken: Value = serde_json::from_str(&avsc).unwrap();
    broken["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "nat", "type": "string"}));
    let broken_path = dir.path().join("broken.avsc");
    std::fs::write(&broken_path, broken.to_string()).unwrap();
    let users_file = dir.path().join("users.jsonl");
    let mut rows = users(0, 5);
    rows[2].as_object_mut().unwrap().remove("email");
    rows[3]["gender"] = json!(3);
    write_lines(&users_file, &rows);
    let file_to_kafka = |schema: &Path| {
        users_to_kafka(
            dir.path(),
            "out.toml",
            "",
            &kafka_sink(&topic, "avro", schema),
        )
    };
    let mut host = Host::start(&file_to_kafka(&broken_path));
    let status = host.wait(60);
    let log = host.log();
    assert!(!status.success(), "{log}");
    assert!(
        log.contains(&format!("{topic}-value")) && log.contains("409"),
        "{log}"
    );
    assert!(log.contains("broken.avsc"), "{log}");

    // The schema it has: written, and what does not fit it is a dead letter.
    let mut host = Host::start(&file_to_kafka(&repo().join("schemas/user.avsc")));
    let status = host.wait(120);
    assert!(status.success(), "{}", host.log());
    let dead = json_lines(&dir.path().join("dead.jsonl"));
    let reasons: Vec<&str> = dead.iter().map(|d| d["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("/email: is missing"), "{}", reasons[0]);
    assert!(
        reasons[1].contains("/gender: expected a string"),
        "{}",
        reasons[1]
    );
    let read = clients(&["consume", &registry(), &broker(), &topic, "avro", "3"]);
    assert_eq!(
        parsed(&read),
        set_of([rows[0].clone(), rows[1].clone(), rows[4].clone()])
    );
}

/// `sluice run` of `pipeline` with `env`, to its end: (success, stderr).
fn run_with_env(pipeline: &Path, env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--no-progress"])
        .arg(pipeline)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn credentials_from_the_environment_reach_the_registry_and_refused_ones_stop_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("avro-auth");
    let (data, port) = (dir.path().join("registry.json"), free_port());
    let url = format!("http://127.0.0.1:{port}");
    // user:s3cret, as HTTP Basic has it.
    let registry_with = |authorization: &str| {
        let (mut child, _) = own_registry(&data, port, &["--authorization", authorization]);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(child.try_wait().unwrap().is_none());
        child
    };
    let mut basic = registry_with("Basic dXNlcjpzM2NyZXQ=");
    write_lines(&dir.path().join("users.jsonl"), &users(0, 20));
    let auth = format!("{{ url = \"{url}\", auth = {{ type = \"basic\", username = \"${{SR_USER}}\", password = \"${{SR_PASSWORD}}\" }} }}");
    let avsc = repo().join("schemas/user.avsc");
    let sink = users_to_kafka(
        dir.path(),
        "in.toml",
        "",
        &kafka_sink_with(&topic, "avro", &avsc, &auth),
    );
    let (ok, log) = run_with_env(&sink, &[("SR_USER", "user"), ("SR_PASSWORD", "wrong")]);
    assert!(!ok, "{log}");
    assert!(
        log.contains("refused the credentials") && log.contains("401"),
        "{log}"
    );
    let (ok, log) = run_with_env(&sink, &[("SR_USER", "user"), ("SR_PASSWORD", "s3cret")]);
    assert!(ok, "{log}");
    basic.kill().unwrap();
    basic.wait().unwrap();

    // The same registry, now asking for a bearer token: the source reads with one.
    let mut bearer = registry_with("Bearer t0ken");
    let source = relay_with(
        dir.path(),
        &topic,
        "avro",
        &format!(
            "{{ url = \"{url}\", auth = {{ type = \"bearer\", token = \"${{SR_TOKEN}}\" }} }}"
        ),
        "[[sinks]]\ntype = \"file\"\npath = \"out.jsonl\"\n",
    );
    let (ok, log) = run_with_env(&source, &[("SR_TOKEN", "nope")]);
    assert!(!ok && log.contains("refused the credentials"), "{log}");
    let (ok, log) = run_with_env(&source, &[("SR_TOKEN", "t0ken")]);
    assert!(ok, "{log}");
    bearer.kill().unwrap();
    bearer.wait().unwrap();
    assert_eq!(json_lines(&dir.path().join("out.jsonl")), users(0, 20));
}

#[test]
fn the_shipped_demo_writes_avro_that_confluents_deserializer_reads() {
    let topic = unique("users-created-avro");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--no-progress"])
        .arg(repo().join("pipelines/local_demo.toml"))
        .env("SLUICE_KAFKA", broker())
        .env("SLUICE_TOPIC", &topic)
        .env("SLUICE_FORMAT", "avro")
        .env("SLUICE_REGISTRY", registry())
        .env(
            "SLUICE_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    // 10,000 generated, one in a thousand poison (a dead letter at format_user).
    let read = clients(&["consume", &registry(), &broker(), &topic, "avro", "9990"]);
    let ids: BTreeSet<String> = read
        .iter()
        .map(|l| {
            let user: Value = serde_json::from_str(l).unwrap();
            assert_eq!(user.as_object().unwrap().len(), 12, "{user}");
            user["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 9990, "every user once");
    let (status, body) = call(
        "GET",
        &format!("{}/subjects/{topic}-value/versions/latest", registry()),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body["schema"].as_str().unwrap().contains("sluice.users"));
}

/// A TLS front for the plain-HTTP registry at `upstream` (host:port), presenting
/// `dir`/server.pem: its port. It runs until the test process ends.
fn tls_front(dir: &Path, upstream: String) -> u16 {
    let config =
        sluice::tls::server_config(Path::new("server.pem"), Path::new("server.key"), dir).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    if let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    }
                });
            }
        });
    });
    port
}

#[test]
fn an_https_registry_is_trusted_by_its_ca_file_and_refused_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    std::fs::write(dir.path().join("server.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("server.key"), cert.key_pair.serialize_pem()).unwrap();
    let (mut registry_child, url) = own_registry(&dir.path().join("registry.json"), 0, &[]);
    let port = tls_front(dir.path(), url.trim_start_matches("http://").to_owned());
    write_lines(&dir.path().join("users.jsonl"), &users(0, 5));
    let topic = unique("avro-tls");
    let file_to_kafka = |tls: &str| {
        let registry = format!("{{ url = \"https://127.0.0.1:{port}\"{tls} }}");
        let avsc = repo().join("schemas/user.avsc");
        users_to_kafka(
            dir.path(),
            "tls.toml",
            "",
            &kafka_sink_with(&topic, "avro", &avsc, &registry),
        )
    };
    // The WebPKI roots do not know the certificate: refused at once, not retried.
    let started = std::time::Instant::now();
    let (ok, log) = run_with_env(&file_to_kafka(""), &[]);
    assert!(!ok && log.contains("certificate is refused"), "{log}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{log}"
    );
    let (ok, log) = run_with_env(&file_to_kafka(", tls = { ca_file = \"server.pem\" }"), &[]);
    assert!(ok, "{log}");
    let (status, body) = call(
        "GET",
        &format!("{url}/subjects/{topic}-value/versions/latest"),
        None,
    );
    assert_eq!(status, 200, "registered through TLS: {body}");
    registry_child.kill().unwrap();
    registry_child.wait().unwrap();
}

#[test]
fn the_record_subject_strategies_register_under_the_records_name() {
    let dir = tempfile::tempdir().unwrap();
    write_lines(&dir.path().join("users.jsonl"), &users(0, 3));
    for (strategy, subject) in [
        ("record", "sluice.users.User".to_owned()),
        ("topic_record", "{topic}-sluice.users.User".to_owned()),
    ] {
        let topic = unique("avro-strategy");
        let sink = kafka_sink(&topic, "avro", &repo().join("schemas/user.avsc"))
            + &format!("subject_strategy = \"{strategy}\"\n");
        // A pipeline each: the file source resumes where the same name left off.
        let path = users_to_kafka(dir.path(), &format!("{strategy}.toml"), "", &sink);
        let (ok, log) = run_with_env(&path, &[]);
        assert!(ok, "{log}");
        let subject = subject.replace("{topic}", &topic);
        let (status, body) = call(
            "GET",
            &format!("{}/subjects/{subject}/versions/latest", registry()),
            None,
        );
        assert_eq!(status, 200, "{strategy}: {subject}: {body}");
        let read = clients(&["consume", &registry(), &broker(), &topic, "avro", "3"]);
        assert_eq!(parsed(&read), set_of(users(0, 3)));
    }
}

#[test]
fn a_registry_down_when_the_sink_starts_is_retried_with_the_pipelines_policy() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("avro-late-registry");
    let port = free_port();
    write_lines(&dir.path().join("users.jsonl"), &users(0, 5));
    let registry = format!("{{ url = \"http://127.0.0.1:{port}\" }}");
    let sink = kafka_sink_with(&topic, "avro", &repo().join("schemas/user.avsc"), &registry);
    let retry =
        "[pipeline]\nretry = { backoff = \"100ms\", max_backoff = \"400ms\", max_retries = 100 }";
    let path = users_to_kafka(dir.path(), "late.toml", retry, &sink);
    let mut host = Host::start(&path);
    host.wait_log(60, "a retry of the registration", |l| {
        l.contains("registering the value schema") && l.contains("trying again")
    });
    let (mut up, _) = own_registry(&dir.path().join("registry.json"), port, &[]);
    let status = host.wait(120);
    up.kill().unwrap();
    up.wait().unwrap();
    assert!(status.success(), "{}", host.log());
    assert_eq!(common::kafka::read_payloads(&topic, 5).len(), 5);
}
