use super::Failure;
use anyhow::{anyhow, Context};
use clap::Subcommand;
use sluice::plugin::{
    inspect, isolate, Isolated, Outcome, Sandbox, StatefulPlugin, TransformPlugin, WindowPlugin,
    WorldKind,
};
use sluice::record::{now_ms, record, Record};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Swap a plugin in a running pipeline, between two batches, without stopping it.
    #[command(
        long_about = "Swap a transform or window plugin in a running pipeline, through the \
            host's admin listener (sluice run --admin). The new component is compiled, \
            checked against the running one's world and init-ed with the stage's config \
            on the host, off the processing path; any failure leaves the old version \
            running and exits 1 with the reason. The swap happens between two batches: \
            every record is processed by exactly one version, and the switch point (per \
            source partition, the first position the new version processes) is printed. \
            A window plugin takes over the open windows' state, if it can read it. A \
            transform's new version is then on probation (its stage's swap.rollback_window \
            records, default 1000): if more than swap.rollback_error_rate of them fail, \
            the old version comes back and processes them instead.",
        after_help = "Examples:\n  sluice plugin swap format_user my/format_user.wasm\n  \
            sluice plugin swap format_user v2.wasm --canary 1000 --pipeline users_to_stores --admin 127.0.0.1:9464"
    )]
    Swap {
        /// The transform's or window's name in the pipeline (its `name`, else the file stem).
        stage: String,
        /// The new .wasm component.
        wasm: PathBuf,
        /// The pipeline, when the host runs several.
        #[arg(long)]
        pipeline: Option<String>,
        /// The host's admin listener.
        #[arg(long, value_name = "ADDR", default_value = sluice::admin::DEFAULT_ADDR, env = "SLUICE_ADMIN")]
        admin: String,
        /// Its bearer token. A swap always needs one: without [admin] token the host
        /// makes one at start and writes it to
        /// ~/.local/state/sluice/admin/<ip>_<port>.token (readable by its user only),
        /// where this command finds it.
        #[arg(long, env = "SLUICE_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// First run the new version beside the running one on the next N records (its
        /// outputs discarded); refuse the swap if it fails more of them.
        #[arg(long, value_name = "N")]
        canary: Option<u64>,
        /// Print the host's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a component's Sluice world, imports, exports and size.
    #[command(
        long_about = "Show which Sluice world a component implements (transform or window), \
            what it imports and exports, and its size. Nothing is run.",
        after_help = "Example:\n  sluice plugin inspect plugins/dist/format_user.wasm"
    )]
    Inspect {
        /// The .wasm component.
        wasm: PathBuf,
    },
    /// Run a plugin offline on sample records and print what comes out.
    #[command(
        long_about = "Run a plugin offline on sample records and print, for each input line, \
            its outputs or its error. Each non-empty line of the input file is one record \
            value. A transform plugin gets the records in one batch; a window plugin gets \
            them added into one accumulator, then finished as one window; a stateful \
            plugin gets them one at a time, each with its key's state as the lines before \
            left it (keys from --key-field), and the keys' states are printed at the end.\n\n\
            Exit code 0 when the plugin ran (record errors and traps are results, and are \
            printed per line), 1 if a window plugin failed, 2 for a bad plugin or config.",
        after_help = "Example:\n  sluice plugin test plugins/dist/format_user.wasm --input tests/fixtures/randomuser/users.jsonl\n  \
            sluice plugin test my.wasm --input in.jsonl --config '{\"field\": \"email\"}'"
    )]
    Test {
        /// The .wasm component.
        wasm: PathBuf,
        /// Records, one value per line (JSON lines).
        #[arg(long, short)]
        input: PathBuf,
        /// The plugin's config: a JSON object, or TOML (`key = "value"`).
        #[arg(long, default_value = "{}")]
        config: String,
        /// Event time given to every record, ms since the epoch (default: now).
        #[arg(long)]
        timestamp_ms: Option<i64>,
        /// Each record's key: this field of its JSON value (a name, or a JSON pointer
        /// such as /location/country), as `[stateful] key_field` sets it. A stateful
        /// plugin keeps a state per key.
        #[arg(long, value_name = "FIELD")]
        key_field: Option<String>,
        /// A stateful plugin's keys' states before the first line: JSON lines
        /// `{"key": "ada", "version": 1, "data": "<base64>"}` (what --state-out writes).
        #[arg(long, value_name = "STATES.jsonl")]
        state: Option<PathBuf>,
        /// Write a stateful plugin's keys' states after the last line, as JSON lines.
        #[arg(long, value_name = "STATES.jsonl")]
        state_out: Option<PathBuf>,
        /// Window length for window plugins (e.g. 1m).
        #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
        window: std::time::Duration,
        /// CPU deadline per call.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        deadline: std::time::Duration,
        /// Memory cap, MiB.
        #[arg(long, default_value_t = 64)]
        memory_mb: usize,
        /// The records that should come out, one per line, in order (compared as JSON
        /// when both sides are JSON); every mismatch is reported by line, exit 1.
        #[arg(long, value_name = "EXPECTED.jsonl")]
        expect: Option<PathBuf>,
    },
    /// Start a new plugin crate: a transform or window wired to the WIT contract, with
    /// a unit test, sample input and the output expected of it.
    #[command(
        long_about = "Write a new plugin crate that builds anywhere: it carries the WIT \
            contract and the small Sluice SDK with it (in sdk/), so it needs nothing of \
            this repository. It has a native unit test (cargo test), sample.jsonl and \
            expected.jsonl for `sluice plugin test --expect`, and a README with the next \
            steps (build, test, swap into a running pipeline).",
        after_help = "Example:\n  sluice plugin new tagger --kind transform\n  \
            sluice plugin build tagger\n  \
            sluice plugin test tagger/dist/tagger.wasm --input tagger/sample.jsonl --expect tagger/expected.jsonl"
    )]
    New {
        /// The crate's name (letters, digits, _ and -).
        name: String,
        #[arg(long, value_enum, default_value = "transform")]
        kind: super::scaffold::Kind,
        /// Rust (any folder, needs rustup) or Python (a transform; needs
        /// componentize-py on PATH: pip install componentize-py==0.25.1).
        #[arg(long, value_enum, default_value = "rust")]
        lang: super::scaffold::Lang,
        /// Where to create it (the crate goes in DIR/NAME).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Build a plugin crate into a wasm32-wasip2 component (drives cargo).
    #[command(
        long_about = "Build the plugin crate at PATH (default: .) with `cargo build --release \
            --target wasm32-wasip2` (adding the target with rustup if it is missing), or a \
            Python plugin (app.py and wit/) with componentize-py. The component is put in \
            PATH/dist/NAME.wasm (NAME: the crate's library name, or the folder's for \
            Python), wherever cargo's own target folder is; on success its path is \
            printed first, then its size, Sluice world and version.",
        after_help = "Example:\n  sluice plugin build tagger      # -> tagger/dist/tagger.wasm"
    )]
    Build {
        /// The crate's folder (with its Cargo.toml).
        #[arg(default_value = ".")]
        path: PathBuf,
    },
}

pub fn run(command: PluginCommand) -> Result<(), Failure> {
    match command {
        PluginCommand::Swap {
            stage,
            wasm,
            pipeline,
            admin,
            token,
            canary,
            json,
        } => super::swap_cmd::swap(
            &stage,
            &wasm,
            pipeline.as_deref(),
            &admin,
            token.as_deref(),
            canary,
            json,
        ),
        PluginCommand::Inspect { wasm } => inspect_cmd(&wasm),
        PluginCommand::New {
            name,
            kind,
            lang,
            dir,
        } => super::scaffold::new(&name, kind, lang, &dir),
        PluginCommand::Build { path } => super::scaffold::build(&path),
        PluginCommand::Test {
            wasm,
            input,
            config,
            timestamp_ms,
            key_field,
            state,
            state_out,
            window,
            deadline,
            memory_mb,
            expect,
        } => {
            let sandbox = Sandbox {
                memory_bytes: memory_mb * 1024 * 1024,
                deadline,
                ..Sandbox::default()
            };
            let config = config_to_json(&config).map_err(Failure::config)?;
            let mut records = read_records(&input, timestamp_ms.unwrap_or_else(now_ms))
                .map_err(Failure::config)?;
            if let Some(field) = &key_field {
                for (line, r) in &mut records {
                    let json: serde_json::Value =
                        serde_json::from_slice(&r.value).map_err(|e| {
                            Failure::config(anyhow!(
                                "{} line {line}: --key-field needs JSON records: {e}",
                                input.display()
                            ))
                        })?;
                    r.key = sluice::record::key_from_json(&json, field);
                }
            }
            let states = StateFiles {
                input: state,
                output: state_out,
            };
            let outputs = test_cmd(&wasm, records, config, sandbox, window, &states)?;
            match expect {
                None => Ok(()),
                Some(path) => compare(&outputs, &path),
            }
        }
    }
}

fn inspect_cmd(wasm: &Path) -> Result<(), Failure> {
    let runtime = super::runtime()?;
    let loaded = runtime.load(wasm).map_err(Failure::config)?;
    let info = inspect(&runtime, &loaded);
    println!("{}", wasm.display());
    println!("  size:    {} bytes", info.size_bytes);
    match &info.world {
        Ok(world) => println!("  world:   {}", world.name()),
        Err(why) => println!("  world:   none ({why})"),
    }
    println!("  imports:");
    for (name, kind) in &info.imports {
        println!("    {name} ({kind})");
    }
    println!("  exports:");
    for (name, kind) in &info.exports {
        println!("    {name} ({kind})");
    }
    Ok(())
}

/// `--config` as the JSON text `init` takes.
fn config_to_json(text: &str) -> anyhow::Result<String> {
    if let Ok(v @ serde_json::Value::Object(_)) = serde_json::from_str::<serde_json::Value>(text) {
        return Ok(v.to_string());
    }
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        anyhow!(
            "--config is neither a JSON object nor TOML: {}",
            e.message()
        )
    })?;
    Ok(serde_json::to_string(&table)?)
}

/// Each non-empty line is one record value; returns (line number, record).
fn read_records(path: &Path, timestamp_ms: i64) -> anyhow::Result<Vec<(usize, Record)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, record(l.as_bytes().to_vec(), timestamp_ms)))
        .collect())
}

fn show(r: &Record) -> String {
    String::from_utf8_lossy(&r.value).into_owned()
}

fn test_cmd(
    wasm: &Path,
    input: Vec<(usize, Record)>,
    config: String,
    sandbox: Sandbox,
    window: std::time::Duration,
    state_files: &StateFiles,
) -> Result<Vec<String>, Failure> {
    let runtime = super::runtime()?;
    let mut outputs = Vec::new();
    let loaded = runtime.load(wasm).map_err(Failure::config)?;
    let world = inspect(&runtime, &loaded)
        .world
        .map_err(|why| Failure::config(anyhow!("{}: {why}", wasm.display())))?;
    let (lines, records): (Vec<usize>, Vec<Record>) = input.into_iter().unzip();
    let mut failed = 0;
    match world {
        WorldKind::Transform => {
            let mut plugin =
                TransformPlugin::start(&runtime, &loaded, &loaded.name, config, sandbox)
                    .map_err(Failure::config)?;
            // As in a pipeline: if the batch fails as a whole, each line is tried alone
            // so the output says which line is to blame.
            let name = loaded.name.clone();
            let outcomes: Vec<Result<Outcome, String>> =
                match isolate(&name, &records, |rs| plugin.process(rs)) {
                    Isolated::Whole(outcomes) => outcomes.into_iter().map(Ok).collect(),
                    Isolated::Each(each) => {
                        println!("the batch failed as a whole; trying each line alone");
                        each.into_iter()
                            .map(|r| r.map(|mut o| o.remove(0)))
                            .collect()
                    }
                };
            let mut produced = 0;
            for (line, outcome) in lines.iter().zip(outcomes) {
                match outcome {
                    Err(failure) => {
                        failed += 1;
                        println!("line {line}: failed: {failure}");
                    }
                    Ok(Ok(out)) => {
                        println!("line {line}: ok, {} record(s)", out.len());
                        produced += out.len();
                        out.iter().for_each(|r| println!("  {}", show(r)));
                        outputs.extend(out.iter().map(show));
                    }
                    Ok(Err(e)) => {
                        failed += 1;
                        println!("line {line}: error: {e}");
                    }
                }
            }
            println!(
                "{} record(s) in: {} ok ({produced} out), {failed} error(s)",
                records.len(),
                records.len() - failed
            );
        }
        WorldKind::Stateful => {
            let run = StatefulRun {
                runtime: &runtime,
                loaded: &loaded,
                config,
                sandbox,
                files: state_files,
            };
            test_stateful(run, &lines, &records, &mut outputs)?;
        }
        WorldKind::Window => {
            let mut plugin = WindowPlugin::start(&runtime, &loaded, &loaded.name, config, sandbox)
                .map_err(Failure::config)?;
            let acc = plugin.create().map_err(Failure::runtime)?;
            let added = plugin
                .add(&acc, &records)
                .map_err(Failure::runtime)?
                .map_err(|e| Failure::runtime(anyhow!("add: {e}")))?;
            for rejected in &added.rejected {
                failed += 1;
                println!(
                    "line {}: rejected: {}",
                    lines[rejected.index as usize], rejected.reason
                );
            }
            let size = i64::try_from(window.as_millis()).unwrap_or(i64::MAX).max(1);
            let start = records
                .first()
                .map_or(0, |r| r.timestamp_ms.div_euclid(size) * size);
            let bounds = sluice::plugin::bindings::types::WindowBounds {
                start_ms: start,
                end_ms: start + size,
            };
            let out = plugin
                .finish(&added.accumulator, bounds)
                .map_err(Failure::runtime)?
                .map_err(|e| Failure::runtime(anyhow!("finish: {e}")))?;
            println!(
                "window [{start}, {}) of {} record(s), {failed} rejected:",
                start + size,
                records.len()
            );
            out.iter().for_each(|r| println!("  {}", show(r)));
            outputs.extend(out.iter().map(show));
            println!(
                "state: version {}, {} bytes",
                added.accumulator.version,
                added.accumulator.data.len()
            );
        }
    }
    Ok(outputs)
}

/// A stateful plugin over the lines, one record per call, each key's state carried
/// from call to call as the host carries it; the keys' states at the end.
fn test_stateful(
    run: StatefulRun<'_>,
    lines: &[usize],
    records: &[Record],
    outputs: &mut Vec<String>,
) -> Result<(), Failure> {
    use sluice::plugin::bindings::KeyState;
    let StatefulRun {
        runtime,
        loaded,
        config,
        sandbox,
        files,
    } = run;
    let mut plugin = StatefulPlugin::start(runtime, loaded, &loaded.name, config, sandbox)
        .map_err(Failure::config)?;
    let mut states = match &files.input {
        Some(path) => read_states(path).map_err(Failure::config)?,
        None => std::collections::BTreeMap::new(),
    };
    let mut failed = 0;
    for (line, record) in lines.iter().zip(records) {
        let keyed: Vec<KeyState> = record
            .key
            .iter()
            .map(|k| KeyState {
                key: k.clone(),
                state: states.get(k).cloned(),
            })
            .collect();
        let done = match plugin.process(std::slice::from_ref(record), &keyed) {
            Ok(done) => done,
            Err(failure) => {
                failed += 1;
                println!("line {line}: failed: {failure}");
                continue;
            }
        };
        for (key, state) in done.updates {
            match state {
                Some(s) => states.insert(key, s),
                None => states.remove(&key),
            };
        }
        match done.outcomes.into_iter().next() {
            Some(Ok(out)) => {
                println!("line {line}: ok, {} record(s)", out.len());
                out.iter().for_each(|r| println!("  {}", show(r)));
                outputs.extend(out.iter().map(show));
            }
            Some(Err(e)) => {
                failed += 1;
                println!("line {line}: error: {e}");
            }
            None => {}
        }
    }
    println!(
        "{} record(s) in, {failed} error(s); state of {} key(s) at the end:",
        records.len(),
        states.len()
    );
    for (key, state) in &states {
        println!(
            "  {}: version {}, {}",
            String::from_utf8_lossy(key),
            state.version,
            printable(&state.data)
        );
    }
    if let Some(path) = &files.output {
        write_states(path, &states).map_err(Failure::runtime)?;
    }
    Ok(())
}

/// `--state` and `--state-out`.
pub struct StateFiles {
    input: Option<PathBuf>,
    output: Option<PathBuf>,
}

/// What a stateful plugin's test runs with.
struct StatefulRun<'a> {
    runtime: &'a sluice::plugin::Runtime,
    loaded: &'a sluice::plugin::LoadedPlugin,
    config: String,
    sandbox: Sandbox,
    files: &'a StateFiles,
}

type States = std::collections::BTreeMap<Vec<u8>, sluice::plugin::bindings::types::Accumulator>;

/// One key's state as `--state` reads it and `--state-out` writes it.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StateLine {
    key: String,
    version: u32,
    /// Base64.
    data: String,
}

fn read_states(path: &Path) -> anyhow::Result<States> {
    use base64::Engine as _;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut states = States::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = || format!("{}:{}", path.display(), i + 1);
        let s: StateLine = serde_json::from_str(line).with_context(|| {
            format!(
                "{}: expected {{\"key\": \"...\", \"version\": 1, \"data\": \"<base64>\"}}",
                at()
            )
        })?;
        let data = base64::engine::general_purpose::STANDARD
            .decode(&s.data)
            .with_context(|| format!("{}: `data` is not base64", at()))?;
        states.insert(
            s.key.into_bytes(),
            sluice::plugin::bindings::types::Accumulator {
                version: s.version,
                data,
            },
        );
    }
    Ok(states)
}

fn write_states(path: &Path, states: &States) -> anyhow::Result<()> {
    use base64::Engine as _;
    let mut text = String::new();
    for (key, state) in states {
        let line = StateLine {
            key: String::from_utf8_lossy(key).into_owned(),
            version: state.version,
            data: base64::engine::general_purpose::STANDARD.encode(&state.data),
        };
        text.push_str(&serde_json::to_string(&line)?);
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// State bytes for a person: the text when they are printable UTF-8, else hex.
fn printable(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(text) if !text.chars().any(char::is_control) => text.to_owned(),
        _ => {
            let hex: String = data.iter().take(32).map(|b| format!("{b:02x}")).collect();
            let more = if data.len() > 32 { "..." } else { "" };
            format!("{} bytes 0x{hex}{more}", data.len())
        }
    }
}

/// `--expect`: the outputs against the expected lines, each mismatch reported.
fn compare(outputs: &[String], expected: &Path) -> Result<(), Failure> {
    let text = std::fs::read_to_string(expected)
        .with_context(|| format!("reading {}", expected.display()))
        .map_err(Failure::config)?;
    let wanted: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let same = |a: &str, b: &str| match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.trim() == b.trim(),
    };
    let mut mismatches = 0;
    for i in 0..wanted.len().max(outputs.len()) {
        match (wanted.get(i), outputs.get(i)) {
            (Some(w), Some(g)) if same(w, g) => {}
            (Some(w), Some(g)) => {
                mismatches += 1;
                println!(
                    "mismatch at output {}:\n  expected {w}\n  got      {g}",
                    i + 1
                );
            }
            (Some(w), None) => {
                mismatches += 1;
                println!("missing output {}: expected {w}", i + 1);
            }
            (None, Some(g)) => {
                mismatches += 1;
                println!("extra output {}: {g}", i + 1);
            }
            (None, None) => {}
        }
    }
    if mismatches == 0 {
        println!(
            "all {} output(s) as in {}",
            outputs.len(),
            expected.display()
        );
        Ok(())
    } else {
        Err(Failure::runtime(anyhow!(
            "{mismatches} output(s) differ from {}",
            expected.display()
        )))
    }
}
