//! The shipped plugins and the misbehaving test plugin, compiled to WASM and loaded
//! through the host runtime: the same path a pipeline takes.

use crate::common;

use common::{fixture, load, runtime, runtime_cached_in};
use sluice::plugin::bindings::types::{Accumulator, WindowBounds};
use sluice::plugin::{CallFailure, PluginError, Sandbox, TransformPlugin, WindowPlugin};
use sluice::record::{record, Batch, PartitionId, Position, Record};
use sluice::transforms::TransformStage;
use std::time::{Duration, Instant};

fn format_user() -> TransformPlugin {
    let rt = runtime();
    TransformPlugin::start(
        &rt,
        &load(&rt, "format_user"),
        "format_user",
        "{}".into(),
        Sandbox::default(),
    )
    .unwrap()
}

fn fields(r: &Record) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_slice(&r.value).unwrap()
}

const FIELDS: [&str; 12] = [
    "id",
    "first_name",
    "last_name",
    "gender",
    "address",
    "post_code",
    "email",
    "username",
    "dob",
    "registered_date",
    "phone",
    "picture",
];

#[test]
fn format_user_wasm_turns_a_whole_response_into_rows_of_exactly_12_fields() {
    let mut plugin = format_user();
    let response = fixture("randomuser/response_results5.json");
    let source: serde_json::Value = serde_json::from_str(&response).unwrap();
    let out = plugin.process(&[record(response, 7)]).unwrap();
    let rows = out.into_iter().next().unwrap().unwrap();
    assert_eq!(rows.len(), 5);
    for (row, user) in rows.iter().zip(source["results"].as_array().unwrap()) {
        let f = fields(row);
        let mut keys: Vec<&str> = f.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(f["id"], user["login"]["uuid"]);
        assert_eq!(
            row.key.as_deref(),
            Some(user["login"]["uuid"].as_str().unwrap().as_bytes())
        );
        assert!(
            f["post_code"].is_string(),
            "post_code must be a string: {f:?}"
        );
        assert_eq!(f["first_name"], user["name"]["first"]);
        assert_eq!(row.timestamp_ms, 7, "event time is carried through");
    }
    let names: Vec<String> = rows
        .iter()
        .map(|r| fields(r)["first_name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        names.contains(&"Lívia".to_owned()) && names.contains(&"Søren".to_owned()),
        "{names:?}"
    );
    let codes: Vec<serde_json::Value> = source["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["location"]["postcode"].clone())
        .collect();
    assert!(codes.iter().any(|c| c.is_number()) && codes.iter().any(|c| c.is_string()));
}

/// The WebAssembly build answers what the native one does, byte for byte, on users
/// whose strings take every length around the SDK's 16-byte blocks and format_user's
/// short copies, with a quote, a backslash, a control character or a non-ASCII
/// letter at every place: its SIMD paths (WebAssembly's own, not SSE2's) are the
/// ones under test.
#[test]
fn format_user_wasm_answers_as_the_native_build_does() {
    let mut plugin = format_user();
    let response = fixture("randomuser/response_results1.json");
    let user = serde_json::from_str::<serde_json::Value>(&response).unwrap()["results"][0].clone();
    let mut values = Vec::new();
    for len in 0..40 {
        for odd in ["", "\"", "\\", "\u{1}", "é", "\u{7f}"] {
            for at in [0, len / 2, len] {
                let mut text: String = "abcdefghijklmnopqrstuvwxyz0123456789ABCD"[..len].into();
                text.insert_str(at, odd);
                for path in [
                    ["name", "first"],
                    ["location", "city"],
                    ["login", "username"],
                ] {
                    let mut u = user.clone();
                    u[path[0]][path[1]] = serde_json::Value::String(text.clone());
                    values.push(u.to_string());
                }
            }
        }
    }
    // Spelled with escapes and raw control bytes as well as serde_json writes them.
    let escaped = response.replace("\"Liam\"", "\"Li\\u00e1m\"");
    let raw_tab = response.replace("\"male\"", "\"ma\tle\"");
    assert!(escaped != response && raw_tab != response);
    values.extend([escaped, raw_tab]);
    let records: Vec<_> = values.iter().map(|v| record(v.as_str(), 1)).collect();
    let mut answers = Vec::new();
    for chunk in records.chunks(256) {
        answers.extend(plugin.process(chunk).unwrap());
    }
    assert_eq!(answers.len(), values.len());
    let mut errors = 0;
    for (value, answer) in values.iter().zip(answers) {
        match (format_user::format(value.as_bytes()), answer) {
            (Ok(rows), Ok(out)) => {
                let want: Vec<&str> = rows.iter().map(|r| r.json.as_str()).collect();
                let got: Vec<&str> = out
                    .iter()
                    .map(|r| std::str::from_utf8(&r.value).unwrap())
                    .collect();
                assert_eq!(got, want, "{value}");
            }
            (Err(native), Err(wasm)) => {
                errors += 1;
                assert_eq!(wasm, native.to_string(), "{value}");
            }
            (native, wasm) => panic!("{value}: natively {native:?}, in WebAssembly {wasm:?}"),
        }
    }
    assert!(errors > 0, "raw control characters are refused");
}

#[test]
fn format_user_wasm_reports_bad_records_per_record_and_keeps_going() {
    let mut plugin = format_user();
    let one = fixture("randomuser/response_results1.json");
    let mut broken: serde_json::Value = serde_json::from_str(&one).unwrap();
    broken["results"][0]["login"]
        .as_object_mut()
        .unwrap()
        .remove("username");
    let batch = [
        record(one.clone(), 1),
        record("{not json", 2),
        record(fixture("randomuser/response_error.json"), 3),
        record(broken.to_string(), 4),
        record(one, 5),
    ];
    let out = plugin.process(&batch).unwrap();
    assert_eq!(out.len(), 5);
    assert_eq!(out[0].as_ref().unwrap().len(), 1);
    assert!(out[1].as_ref().unwrap_err().contains("not valid JSON"));
    assert!(out[2]
        .as_ref()
        .unwrap_err()
        .contains("randomuser.me answered with an error"));
    assert_eq!(
        out[3].as_ref().unwrap_err(),
        "missing required field `results[0].login.username`"
    );
    let (first, last) = (&out[0].as_ref().unwrap()[0], &out[4].as_ref().unwrap()[0]);
    assert_eq!(
        (&first.key, &first.value),
        (&last.key, &last.value),
        "same input, same row and id"
    );
    assert_eq!((first.timestamp_ms, last.timestamp_ms), (1, 5));
}

#[test]
fn format_user_refuses_unknown_config() {
    let rt = runtime();
    let err = TransformPlugin::start(
        &rt,
        &load(&rt, "format_user"),
        "fu",
        r#"{"x":1}"#.into(),
        Sandbox::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(err, PluginError::Init { .. }), "{err}");
}

fn gender_window() -> WindowPlugin {
    let rt = runtime();
    WindowPlugin::start(
        &rt,
        &load(&rt, "gender_window"),
        "gw",
        "{}".into(),
        Sandbox::default(),
    )
    .unwrap()
}

/// Add `records` into a new, empty accumulator.
fn fresh(w: &mut WindowPlugin, records: &[Record]) -> sluice::plugin::bindings::types::AddResult {
    let empty = w.create().unwrap();
    w.add(&empty, records).unwrap().unwrap()
}

fn genders(list: &[&str]) -> Vec<Record> {
    list.iter()
        .map(|g| record(format!(r#"{{"gender":"{g}"}}"#), 0))
        .collect()
}

#[test]
fn gender_window_counts_merges_exactly_and_finishes_to_iso_times() {
    let mut w = gender_window();
    let all = genders(&["male", "female", "female", "other", "male", "female", "?"]);
    let whole = fresh(&mut w, &all).accumulator;
    for split in [0, 3, 7] {
        let a = fresh(&mut w, &all[..split]).accumulator;
        let b = fresh(&mut w, &all[split..]).accumulator;
        assert_eq!(w.merge(&a, &b).unwrap().unwrap(), whole, "split at {split}");
    }
    assert!(
        whole.data.len() <= 8,
        "compact state: {} bytes",
        whole.data.len()
    );
    let bounds = WindowBounds {
        start_ms: 1_767_225_600_000,
        end_ms: 1_767_225_660_000,
    };
    let out = w.finish(&whole, bounds).unwrap().unwrap();
    assert_eq!(out.len(), 1);
    let v: serde_json::Value = serde_json::from_slice(&out[0].value).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-01T00:01:00Z",
            "male_count": 2, "female_count": 3, "other_count": 2, "total_count": 7
        })
    );
}

#[test]
fn gender_window_rejects_non_json_and_unknown_state_versions() {
    let mut w = gender_window();
    let mut batch = genders(&["male"]);
    batch.push(record("garbage", 0));
    let added = fresh(&mut w, &batch);
    assert_eq!(added.rejected.len(), 1);
    assert_eq!(added.rejected[0].index, 1);
    let future = Accumulator {
        version: 99,
        data: vec![],
    };
    let err = w.add(&future, &batch[..1]).unwrap().unwrap_err();
    assert!(err.contains("version 99"), "{err}");
}

fn misbehave(sandbox: Sandbox) -> TransformPlugin {
    let rt = runtime();
    TransformPlugin::start(
        &rt,
        &load(&rt, "misbehave"),
        "misbehave",
        "{}".into(),
        sandbox,
    )
    .unwrap()
}

fn tight() -> Sandbox {
    Sandbox {
        memory_bytes: 32 << 20,
        deadline: Duration::from_millis(200),
        ..Sandbox::default()
    }
}

#[test]
fn a_trap_is_reported_and_the_next_call_gets_a_fresh_instance() {
    let mut p = misbehave(tight());
    match p.process(&[record("trap", 0)]) {
        Err(CallFailure::Trap(why)) => assert!(why.contains("unreachable"), "{why}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    let ok = p.process(&[record("fine", 0)]).unwrap();
    assert_eq!(ok[0].as_ref().unwrap()[0].value, b"fine");
}

#[test]
fn an_endless_loop_is_stopped_at_the_deadline() {
    let mut p = misbehave(tight());
    let started = Instant::now();
    assert_eq!(
        p.process(&[record("loop", 0)]),
        Err(CallFailure::Deadline(Duration::from_millis(200)))
    );
    // Not a timing assertion on performance: only that the deadline fired at all
    // instead of the loop running forever.
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(p.process(&[record("fine", 0)]).is_ok());
}

#[test]
fn unbounded_allocation_hits_the_memory_cap() {
    let mut p = misbehave(tight());
    assert_eq!(
        p.process(&[record("alloc", 0)]),
        Err(CallFailure::Memory(32 << 20))
    );
    assert!(p.process(&[record("fine", 0)]).is_ok());
}

#[test]
fn sleeping_inside_the_host_is_refused_rather_than_outliving_the_deadline() {
    // On a thread with a time limit: should the shadowing of `poll` ever stop
    // applying (a wasmtime upgrade renaming wasi:io), this fails instead of hanging.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut p = misbehave(tight());
        let slept = p.process(&[record("sleep", 0)]);
        let after = p.process(&[record("fine", 0)]).is_ok();
        let _ = tx.send((slept, after));
    });
    let (slept, after) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the plugin slept in the host");
    assert_eq!(slept, Err(CallFailure::Blocked));
    assert!(after);
}

#[test]
fn the_sandbox_grants_no_files_and_no_environment() {
    std::env::set_var("SLUICE_TEST_SECRET", "hunter2");
    let mut p = misbehave(tight());
    let out = p
        .process(&[record("readfile", 0), record("env", 0)])
        .unwrap();
    let text = |i: usize| String::from_utf8(out[i].as_ref().unwrap()[0].value.clone()).unwrap();
    assert!(text(0).starts_with("denied: "), "{}", text(0));
    assert_eq!(text(1), "env+args: 0");
    // A listener the plugin could reach if sockets were granted.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = p.process(&[record(format!("net:{port}"), 0)]).unwrap();
    let reply = String::from_utf8(out[0].as_ref().unwrap()[0].value.clone()).unwrap();
    assert!(reply.starts_with("denied: "), "{reply}");
}

#[test]
fn a_poison_record_in_a_batch_costs_only_itself() {
    let mut stage = TransformStage::new(misbehave(tight()));
    let mut batch = Batch::default();
    for (i, v) in ["a", "trap", "b", "loop", "c", "alloc", "d", "error"]
        .iter()
        .enumerate()
    {
        batch.push(
            record(*v, i as i64),
            Position::new(PartitionId(0), 100 + i as u64),
        );
    }
    let mut dead = Vec::new();
    let out = stage.apply(batch, &mut dead);
    let values: Vec<&[u8]> = out.records.iter().map(|r| r.value.as_slice()).collect();
    assert_eq!(values, [b"a", b"b", b"c", b"d"]);
    let offsets: Vec<u64> = out.positions.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, [100, 102, 104, 106]);
    let dead: Vec<(u64, &str)> = dead
        .iter()
        .map(|d| (d.position.offset, d.reason.as_str()))
        .collect();
    assert_eq!(dead.len(), 4, "{dead:?}");
    assert!(
        dead[0].0 == 101 && dead[0].1.contains("trapped"),
        "{dead:?}"
    );
    assert!(
        dead[1].0 == 103 && dead[1].1.contains("CPU deadline"),
        "{dead:?}"
    );
    assert!(
        dead[2].0 == 105 && dead[2].1.contains("memory cap"),
        "{dead:?}"
    );
    assert!(
        dead[3].0 == 107 && dead[3].1 == "misbehave: asked to fail this record",
        "{dead:?}"
    );
}

#[test]
fn a_shared_cache_folder_keeps_its_permissions_and_gets_a_private_subfolder() {
    use std::os::unix::fs::PermissionsExt;
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    load(&runtime_cached_in(shared.path()), "format_user");
    let mode = std::fs::metadata(shared.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o1777, "the shared folder is left as it was");
    let subfolders: Vec<_> = std::fs::read_dir(shared.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(subfolders.len(), 1, "{subfolders:?}");
    let own = &subfolders[0];
    assert!(own
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("sluice-"));
    assert_eq!(
        std::fs::metadata(own).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::read_dir(own).unwrap().count(),
        1,
        "the entry is in it"
    );
}

#[test]
fn compiled_components_are_cached_on_disk_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime_cached_in(dir.path());
    load(&rt, "format_user");
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].extension().unwrap(), "cwasm");
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(&entries[0]).unwrap().ino();
    // A second runtime loads from the cache (the entry is not rewritten) and the
    // plugin still works.
    let rt2 = runtime_cached_in(dir.path());
    let mut p = TransformPlugin::start(
        &rt2,
        &load(&rt2, "format_user"),
        "fu",
        "{}".into(),
        Sandbox::default(),
    )
    .unwrap();
    let one = fixture("randomuser/response_results1.json");
    assert!(p.process(&[record(one, 0)]).unwrap()[0].is_ok());
    assert_eq!(
        std::fs::metadata(&entries[0]).unwrap().ino(),
        inode,
        "recompiled instead of reused"
    );
    // A corrupt entry is ignored and replaced, not trusted.
    std::fs::write(&entries[0], b"garbage").unwrap();
    load(&runtime_cached_in(dir.path()), "format_user");
    assert_ne!(std::fs::read(&entries[0]).unwrap(), b"garbage");
}

#[test]
fn a_core_module_or_wrong_world_is_a_clear_load_error() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let err = rt.load(&core).err().unwrap().to_string();
    assert!(
        err.contains("core module") && err.contains("wasm32-wasip2"),
        "{err}"
    );
    let elf = dir.path().join("elf.wasm");
    std::fs::write(&elf, b"\x7fELF\x02\x01\x01\0").unwrap();
    let err = rt.load(&elf).err().unwrap().to_string();
    assert!(
        err.contains("not a WebAssembly file (it starts with 7f 45 4c 46"),
        "{err}"
    );
    assert!(!err.contains("0x7f"), "no byte-array dump: {err}");
    let err = TransformPlugin::start(
        &rt,
        &load(&rt, "gender_window"),
        "gw",
        "{}".into(),
        Sandbox::default(),
    )
    .err()
    .unwrap();
    assert!(
        matches!(
            err,
            PluginError::WrongWorld {
                world: "transform",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_plugin_failing_every_record_costs_a_few_deadlines_not_one_per_record() {
    let mut stage = TransformStage::new(misbehave(tight()));
    let mut batch = Batch::default();
    for (i, v) in ["loop", "trap", "loop", "loop", "a"].iter().enumerate() {
        batch.push(record(*v, 0), Position::new(PartitionId(0), i as u64));
    }
    let mut dead = Vec::new();
    let out = stage.apply(batch, &mut dead);
    assert!(out.is_empty());
    let reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    assert!(
        reasons[..3].iter().all(|r| r.starts_with("plugin ")),
        "{reasons:?}"
    );
    assert!(
        reasons[3..].iter().all(|r| r.starts_with("not retried: ")),
        "{reasons:?}"
    );
    assert_eq!(
        stage.plugin_failures(),
        4,
        "the batch, then three records alone"
    );
}
