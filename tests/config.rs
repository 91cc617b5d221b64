//! Pipeline files: parse errors located to file:line:column, validation naming the
//! field, `${VAR}` interpolation, relative paths.

use sluice::config::{parse, ConfigError};
use std::path::Path;

const GOOD: &str = r#"
[pipeline]
batch_size = 10

[source]
type = "generator"
count = 5

[[transforms]]
plugin = "plugins/format_user.wasm"

[[sinks]]
type = "file"
path = "out/users.jsonl"
"#;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse_err(text: &str) -> ConfigError {
    parse(Path::new("dir/p.toml"), text, no_env).unwrap_err()
}

#[test]
fn a_good_file_parses_with_defaults_and_resolves_paths_from_its_folder() {
    let c = parse(Path::new("dir/p.toml"), GOOD, no_env).unwrap();
    assert_eq!(c.pipeline.batch_size, 10);
    assert_eq!(c.pipeline.queue_batches, 4);
    assert_eq!(c.name(), "p");
    assert_eq!(
        c.resolve(&c.transforms[0].plugin),
        Path::new("dir/plugins/format_user.wasm")
    );
    assert_eq!(c.resolve(Path::new("/abs")), Path::new("/abs"));
}

#[test]
fn a_misspelt_key_in_a_tagged_table_is_located_exactly_with_the_expected_keys() {
    let text = GOOD.replace("count = 5", "cuont = 5");
    let err = parse_err(&text);
    let ConfigError::Parse {
        line,
        column,
        message,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!((*line, *column), (7, 1), "{err}");
    assert!(message.contains("unknown field `cuont`"), "{message}");
    assert!(
        message.contains("`count`") && message.contains("`seed`"),
        "{message}"
    );
    assert!(err.to_string().starts_with("dir/p.toml:7:1: "), "{err}");
}

#[test]
fn a_misspelt_key_in_a_plain_table_is_located_too() {
    let text = GOOD.replace("batch_size = 10", "  batch_sise = 10");
    let err = parse_err(&text);
    assert!(
        err.to_string()
            .starts_with("dir/p.toml:3:3: unknown field `batch_sise`"),
        "{err}"
    );
    assert!(err.to_string().contains("`batch_size`"), "{err}");
}

#[test]
fn wrong_types_and_unknown_connectors_are_parse_errors() {
    let err = parse_err(&GOOD.replace("batch_size = 10", "batch_size = \"ten\""));
    assert!(err.to_string().starts_with("dir/p.toml:3:"), "{err}");
    let err = parse_err(&GOOD.replace("type = \"generator\"", "type = \"kafak\""));
    assert!(
        err.to_string().contains("kafak") && err.to_string().contains("generator"),
        "{err}"
    );
    let err = parse_err(&GOOD.replace("[pipeline]", "[pipeline]\nlinger = \"soon\""));
    assert!(
        err.to_string().contains("invalid duration \"soon\""),
        "{err}"
    );
}

#[test]
fn invalid_values_name_the_field() {
    let err = parse_err(&GOOD.replace("batch_size = 10", "batch_size = 0"));
    assert_eq!(
        err.to_string(),
        "dir/p.toml:3: `pipeline.batch_size` must be between 1 and 1000000"
    );
    let err = parse_err(&GOOD.replace("count = 5", "count = 5\nrate = -1.0"));
    assert!(err.to_string().contains("`source.rate`"), "{err}");
    let err = parse_err(
        &GOOD
            .replace("type = \"file\"", "type = \"stdout\"\ninput = \"windows\"")
            .replace("path = \"out/users.jsonl\"", ""),
    );
    assert!(
        err.to_string().contains("`sinks[0].input`") && err.to_string().contains("no [window]"),
        "{err}"
    );
    let err = parse_err(&GOOD.replace(
        "plugin = \"plugins/format_user.wasm\"",
        "plugin = \"a.wasm\"\nsandbox = { memory_mb = 0 }",
    ));
    assert!(
        err.to_string()
            .contains("`transforms[0].sandbox.memory_mb`"),
        "{err}"
    );
    let http = GOOD.replace(
        "type = \"generator\"\ncount = 5",
        "type = \"http\"\nurl = \"ftp://x\"",
    );
    assert!(parse_err(&http)
        .to_string()
        .contains("`source.url` scheme `ftp`"));
}

#[test]
fn env_vars_are_interpolated_and_an_unset_one_is_located() {
    let text = GOOD.replace("out/users.jsonl", "${OUT_DIR}/users.jsonl");
    let env = |k: &str| (k == "OUT_DIR").then(|| "/data/o\"ut".to_owned());
    let c = parse(Path::new("p.toml"), &text, env).unwrap();
    let sluice::sinks::SinkType::File(f) = &c.sinks[0].connector else {
        panic!()
    };
    assert_eq!(f.path, Path::new("/data/o\"ut/users.jsonl"));
    let err = parse_err(&text);
    assert!(
        err.to_string().starts_with(
            "dir/p.toml:14:9: `sinks[0].path`: environment variable `OUT_DIR` is not set"
        ),
        "{err}"
    );
}

#[test]
fn positions_stay_right_on_lines_with_interpolated_values() {
    let text = GOOD.replace(
        "plugin = \"plugins/format_user.wasm\"",
        "plugin = \"plugins/format_user.wasm\"\nsandbox = { deadline = \"${D}\", memroy_mb = 1 }",
    );
    let env = |k: &str| (k == "D").then(|| "1500ms".to_owned());
    let err = parse(Path::new("p.toml"), &text, env)
        .unwrap_err()
        .to_string();
    let line = text.lines().nth(10).unwrap();
    let column = line.find("memroy_mb").unwrap() + 1;
    assert!(
        err.starts_with(&format!(
            "p.toml:11:{column}: `transforms[0].sandbox`: unknown field `memroy_mb`"
        )),
        "{err}"
    );
}

#[test]
fn a_window_shorter_than_a_millisecond_is_refused() {
    let text = format!("{GOOD}\n[window]\nplugin = \"w.wasm\"\nsize = \"500us\"\n");
    assert_eq!(
        parse_err(&text).to_string(),
        "dir/p.toml:18: `window.size` must be at least 1ms"
    );
}

/// A sliding window of `1h` every `1ms` would put each record in 3.6 million windows.
#[test]
fn a_slide_that_puts_a_record_in_too_many_windows_is_refused() {
    let window = |slide: &str| {
        format!("{GOOD}\n[window]\nplugin = \"w.wasm\"\nsize = \"1h\"\nslide = \"{slide}\"\n")
    };
    let err = parse_err(&window("1ms")).to_string();
    assert!(
        err.starts_with("dir/p.toml:19: `window.slide` `1ms` with window.size `1h` puts every record in 3600000 windows"),
        "{err}"
    );
    assert!(err.contains("make slide at least 3s 600ms"), "{err}");
    assert!(parse(Path::new("p.toml"), &window("3600ms"), no_env).is_ok());
    let sub_ms = parse_err(&window("500us")).to_string();
    assert!(
        sub_ms.contains("`window.slide` must be at least 1ms"),
        "{sub_ms}"
    );
    let max_future =
        GOOD.to_owned() + "\n[window]\nplugin = \"w.wasm\"\nsize = \"1m\"\nmax_future = \"2h\"\n";
    let c = parse(Path::new("p.toml"), &max_future, no_env).unwrap();
    assert_eq!(
        c.window.unwrap().max_future.unwrap().as_millis_i64(),
        7_200_000
    );
}

/// In a single-quoted string a value cannot be escaped: `'${X}'` with X = `1s', memory_mb
/// = 4000 } #` would write a key of its own.
#[test]
fn a_variable_in_a_single_quoted_string_is_refused() {
    let text = GOOD.replace("out/users.jsonl", "x").replace(
        "plugin = \"plugins/format_user.wasm\"",
        "plugin = \"plugins/format_user.wasm\"\nsandbox = { deadline = '${D}' }",
    );
    let env = |k: &str| (k == "D").then(|| "1s', memory_mb = 4000 } #".to_owned());
    let err = parse(Path::new("p.toml"), &text, env)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("p.toml:11:25: `transforms[0].sandbox"),
        "{err}"
    );
    assert!(
        err.contains("`${D}` is inside a single-quoted string"),
        "{err}"
    );
    let quoted = text.replace("'${D}'", "\"${D}\"");
    let env = |k: &str| (k == "D").then(|| "1s\", memory_mb = 4000 } #".to_owned());
    let err = parse(Path::new("p.toml"), &quoted, env)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("invalid duration"),
        "escaped, the value stays one string: {err}"
    );
}

#[test]
fn a_refused_value_names_its_key_and_line() {
    // A duration past the longest allowed: serde's message alone names no key.
    let err = parse_err(&GOOD.replace(
        "batch_size = 10",
        "batch_size = 10\nlinger = \"400000000000y\"",
    ));
    assert!(
        err.to_string()
            .starts_with("dir/p.toml:4:10: `pipeline.linger`: duration \"400000000000y\""),
        "{err}"
    );
    let err = parse_err(&GOOD.replace("count = 5", "count = 5\nevent_interval = \"soon\""));
    assert!(
        err.to_string()
            .starts_with("dir/p.toml:8:1: `source.event_interval`: invalid duration"),
        "{err}"
    );
}

/// A window sink that keys its results otherwise than `[window] output` emits them
/// would refuse every result, or let one partition's overwrite another's.
#[test]
fn window_sinks_must_match_the_window_output() {
    let window = |output: &str, sink: &str| {
        format!(
            "{GOOD}\n[window]\nplugin = \"w.wasm\"\nsize = \"1m\"\n{output}\n[[sinks]]\n{sink}\n"
        )
    };
    let mongo = "type = \"mongodb\"\ninput = \"windows\"\nuri = \"mongodb://h\"\ndatabase = \"d\"\ncollection = \"c\"";
    assert!(parse(Path::new("p.toml"), &window("", mongo), no_env).is_ok());
    let err = parse_err(&window("output = \"partials\"", mongo)).to_string();
    assert!(
        err.starts_with("dir/p.toml:20: `sinks[1].partials` is needed"),
        "{err}"
    );
    let err = parse_err(&window("", &format!("{mongo}\npartials = true"))).to_string();
    assert!(
        err.starts_with("dir/p.toml:26: `sinks[1].partials` needs [window] output = \"partials\""),
        "{err}"
    );
    let cql = "type = \"cassandra\"\ninput = \"windows\"\ncontact_points = \"h:9042\"\nkeyspace = \"k\"\ntable = \"t\"";
    let err = parse_err(&window("", cql)).to_string();
    assert!(
        err.contains("`sinks[1].columns` are needed with input = \"windows\""),
        "{err}"
    );
}

/// `input` and `schema` are read apart from a sink's own keys (one struct for every
/// sink): their errors still name the key and its line, and an unknown key's message
/// lists them beside the connector's.
#[test]
fn the_keys_every_sink_has_are_located_like_its_own() {
    let bad_input = GOOD.replace(
        "path = \"out/users.jsonl\"",
        "path = \"o\"\ninput = \"windowz\"",
    );
    assert!(
        parse_err(&bad_input)
            .to_string()
            .starts_with("dir/p.toml:15:1: `sinks[0].input`: unknown variant `windowz`"),
        "{}",
        parse_err(&bad_input)
    );
    let typo = GOOD.replace(
        "path = \"out/users.jsonl\"",
        "path = \"o\"\ninptu = \"records\"",
    );
    let err = parse_err(&typo).to_string();
    assert!(
        err.starts_with("dir/p.toml:15:1: unknown field `inptu`"),
        "{err}"
    );
    assert!(
        err.contains("`input`, `schema`, `route`, `routes`, `path`"),
        "{err}"
    );
    // The schema is taken (and, missing, refused at its own line).
    let schema = GOOD.replace(
        "path = \"out/users.jsonl\"",
        "path = \"o\"\ninput = \"records\"\nschema = \"missing.json\"",
    );
    let err = parse_err(&schema).to_string();
    assert!(
        err.starts_with("dir/p.toml:16: `sinks[0].schema` cannot read"),
        "{err}"
    );
    let dead_kafka = format!(
        "{GOOD}\n[dead_letter]\ntype = \"kafka\"\nbrokers = \"127.0.0.1:9092\"\ntopic = \"dl\"\nschema = \"s.json\"\n"
    );
    assert!(parse_err(&dead_kafka)
        .to_string()
        .contains("unknown field `schema`"));
}
