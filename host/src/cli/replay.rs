//! `sluice dead-letters replay`: a dead-letter file's records through a fixed plugin
//! into the pipeline's sinks.

use super::Failure;
use anyhow::{anyhow, Context};
use clap::Subcommand;
use sluice::sinks::dead_letter::DeadLetterConfig;
use sluice::sources::dead_letters::DeadLettersConfig;
use sluice::sources::SourceConfig;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum DeadLettersCommand {
    /// Run dead letters again, through a fixed plugin, into the pipeline's sinks.
    #[command(
        long_about = "Take the failed records of a dead-letter file (the file output's JSON \
            lines) as they were (key, value, event time, headers) and run them, from the \
            stage that refused them on, through the pipeline's stages and into its sinks, \
            with that stage's plugin replaced by --plugin. Only that stage's dead letters \
            are replayed; records that fail again go to a new dead-letter file \
            (--dead-letters, default: beside the input, .replayed.jsonl), never to the \
            one being read.",
        after_help = "Example:\n  sluice dead-letters replay pipelines/out/quickstart/dead_letter.jsonl \\\n    \
            --pipeline pipelines/quickstart.toml --plugin format_user=fixed/format_user.wasm"
    )]
    Replay {
        /// The dead-letter file.
        file: PathBuf,
        /// The pipeline whose stages and sinks the records go through.
        #[arg(long)]
        pipeline: PathBuf,
        /// `NAME=new.wasm`, or just `new.wasm` when the dead letters are all one
        /// plugin's: the fixed plugin for that stage.
        #[arg(long, value_name = "[NAME=]WASM")]
        plugin: String,
        /// Where records that fail again go.
        #[arg(long, value_name = "FILE")]
        dead_letters: Option<PathBuf>,
    },
}

pub fn run(command: DeadLettersCommand) -> Result<(), Failure> {
    let DeadLettersCommand::Replay {
        file,
        pipeline,
        plugin,
        dead_letters,
    } = command;
    let absolute = |p: &Path| {
        std::path::absolute(p)
            .with_context(|| format!("resolving {}", p.display()))
            .map_err(Failure::config)
    };
    let file = absolute(&file)?;
    let mut config = sluice::config::load(&pipeline).map_err(Failure::config)?;
    let (name, wasm) = match plugin.split_once('=') {
        Some((n, w)) => (n.to_owned(), absolute(Path::new(w))?),
        None => (only_plugin(&file)?, absolute(Path::new(&plugin))?),
    };
    if let Some(st) = &config.stateful {
        return Err(Failure::config(anyhow!(
            "{} has a [stateful] stage (`{}`) whose state is the running pipeline's: a replay would run it from no state (dedup would pass repeats, a running count start again at 1); replay through a copy of the pipeline file without [stateful], into sinks that take it",
            pipeline.display(),
            st.name()
        )));
    }
    if let Some(k) = config.transforms.iter().position(|t| t.name() == name) {
        config.transforms.drain(..k);
        config.transforms[0].plugin = wasm;
    } else if config.window.as_ref().is_some_and(|w| w.name() == name) {
        config.transforms.clear();
        if let Some(w) = &mut config.window {
            w.plugin = wasm;
        }
    } else {
        return Err(Failure::config(anyhow!(
            "{} has no transform or window named `{name}`",
            pipeline.display()
        )));
    }
    config.source = SourceConfig::DeadLetters(DeadLettersConfig {
        path: file.clone(),
        plugin: Some(name.clone()),
    });
    let again = match dead_letters {
        Some(p) => absolute(&p)?,
        None => file.with_extension("replayed.jsonl"),
    };
    config.dead_letter = DeadLetterConfig::File {
        path: again.clone(),
    };
    config.admin = None;

    let runtime = super::runtime()?;
    let built = sluice::engine::Pipeline::build(config, &runtime).map_err(|e| {
        Failure::config(anyhow::Error::new(e).context(format!("in {}", pipeline.display())))
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .map_err(Failure::runtime)?;
    let s = rt
        .block_on(built.run(Default::default()))
        .map_err(|e| Failure::runtime(anyhow::Error::new(e).context("replay")))?;
    eprintln!(
        "replayed {} dead letter(s) of `{name}` from {}: {} out to the sinks, {} failed again{}",
        s.records_in,
        file.display(),
        s.records_out,
        s.dead_letters,
        if s.dead_letters > 0 {
            format!(" (in {})", again.display())
        } else {
            String::new()
        }
    );
    Ok(())
}

/// The one plugin (or sink) every transform/window dead letter in `file` names.
fn only_plugin(file: &Path) -> Result<String, Failure> {
    use std::io::BufRead;
    let opened = std::fs::File::open(file)
        .with_context(|| format!("reading {}", file.display()))
        .map_err(Failure::config)?;
    // A line at a time: a dead-letter file may be larger than memory.
    let names: BTreeSet<String> = std::io::BufReader::new(opened)
        .split(b'\n')
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_slice::<serde_json::Value>(&l).ok())
        .filter(|d| matches!(d["stage"].as_str(), Some("transform" | "window")))
        .filter_map(|d| d["plugin"].as_str().map(str::to_owned))
        .collect();
    match names.len() {
        1 => Ok(names.into_iter().next().expect("one")),
        0 => Err(Failure::config(anyhow!(
            "{} has no transform or window dead letters",
            file.display()
        ))),
        _ => Err(Failure::config(anyhow!(
            "{} has dead letters of several plugins ({}): say which with --plugin NAME=new.wasm",
            file.display(),
            names.into_iter().collect::<Vec<_>>().join(", ")
        ))),
    }
}
