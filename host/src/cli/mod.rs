mod plugin_cmd;
mod progress;
mod query;
mod replay;
mod run;
mod scaffold;
mod status;
mod swap_cmd;
mod validate;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
pub const EXIT_RUNTIME: u8 = 1;
pub const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Run streaming pipelines whose transforms are WebAssembly components",
    long_about = "Run streaming pipelines whose transforms are WebAssembly components.\n\n\
        A pipeline (TOML) names a source, transform plugins (.wasm components of the \
        sluice:plugin WIT worlds), an optional event-time window, sinks and a \
        dead-letter output.\n\n\
        Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.",
    after_help = "Example:\n  sluice run pipelines/quickstart.toml\n\n\
        Logs go to stderr; set SLUICE_LOG (e.g. SLUICE_LOG=debug) for more."
)]
struct Cli {
    /// More log output (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Log lines as text for people (pretty) or one JSON object each (json).
    #[arg(
        long,
        value_enum,
        default_value = "pretty",
        global = true,
        env = "SLUICE_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline until its source is done or Ctrl-C / SIGTERM.
    #[command(
        long_about = "Run a pipeline until its source is done, or until Ctrl-C or SIGTERM.\n\n\
            On a signal the source stops, batches already read are processed, open \
            windows are closed (unless the source resumes: Kafka, file; then they are \
            saved with the window state and taken up on restart) and every sink is \
            flushed and synced before exit, and the source is told what is safe (Kafka \
            commits). A second Ctrl-C on a terminal, or a second signal more than 2 s \
            after the first, quits at once. On a terminal a live progress line shows records in and \
            out per second, dead letters, closed windows and consumer lag.",
        after_help = "Examples:\n  sluice run pipelines/quickstart.toml\n  \
            sluice run pipelines/ingest_users.toml pipelines/users_to_stores.toml\n  \
            SLUICE_LOG=debug sluice run --no-progress my.toml"
    )]
    Run {
        /// The pipeline file(s): several run in one process (one plugin engine and
        /// cache, one progress line each, one shutdown for all).
        #[arg(required = true, num_args = 1..)]
        pipelines: Vec<PathBuf>,
        /// No live progress line, even on a terminal.
        #[arg(long)]
        no_progress: bool,
        /// Serve the admin listener here (ip:port, e.g. 127.0.0.1:9464; port 0 takes a
        /// free one): / (status page), /status, /metrics, /healthz, /readyz. Overrides
        /// a file's [admin] listen.
        #[arg(long, value_name = "ADDR")]
        admin: Option<String>,
        /// The bearer token the admin listener requires (needed beyond loopback).
        #[arg(
            long,
            value_name = "TOKEN",
            env = "SLUICE_ADMIN_TOKEN",
            hide_env_values = true
        )]
        admin_token: Option<String>,
    },
    /// Show a running host: each pipeline's rates, lag, errors, dead letters, plugin
    /// versions and last windows (from its admin listener's /status).
    #[command(
        after_help = "Examples:\n  sluice run pipelines/quickstart.toml --admin 127.0.0.1:9464 &\n  \
        sluice status\n  sluice status --watch --admin 10.0.0.5:9464 --token \"$SLUICE_ADMIN_TOKEN\""
    )]
    Status {
        /// The host's admin listener.
        #[arg(long, value_name = "ADDR", default_value = sluice::admin::DEFAULT_ADDR, env = "SLUICE_ADMIN")]
        admin: String,
        /// Its bearer token, if it has one.
        #[arg(long, env = "SLUICE_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Redraw every second until Ctrl-C.
        #[arg(long)]
        watch: bool,
        /// Print /status's JSON as it is.
        #[arg(long)]
        json: bool,
        /// Only ask /readyz: exit 0 if every pipeline runs with its source connected,
        /// 1 if not (a healthcheck for images without curl).
        #[arg(long, conflicts_with_all = ["watch", "json"])]
        ready: bool,
    },
    /// Check a pipeline without running it.
    #[command(
        long_about = "Check a pipeline without running it: the TOML against the schema \
            (errors give file:line:column and the keys expected), every value, every \
            plugin loaded and its exports checked against its WIT world, and each \
            plugin's init run with its config. Nothing is read from the source and \
            nothing is written.",
        after_help = "Example:\n  sluice validate pipelines/quickstart.toml"
    )]
    Validate {
        /// The pipeline file(s).
        #[arg(required = true, num_args = 1..)]
        pipelines: Vec<PathBuf>,
    },
    /// Work with plugins: start, build, inspect and test them, swap them into a running pipeline.
    #[command(
        after_help = "Examples:\n  sluice plugin new tagger --kind transform\n  \
        sluice plugin build tagger\n  \
        sluice plugin test tagger/dist/tagger.wasm --input tagger/sample.jsonl --expect tagger/expected.jsonl\n  \
        sluice plugin inspect plugins/dist/format_user.wasm\n  \
        sluice plugin swap format_user tagger/dist/tagger.wasm --admin 127.0.0.1:9464"
    )]
    Plugin {
        #[command(subcommand)]
        command: plugin_cmd::PluginCommand,
    },
    /// Look at what the Cassandra and MongoDB sinks wrote (rows and documents as JSON).
    #[command(
        after_help = "Examples:\n  sluice query cql \"SELECT * FROM spark_streams.created_users\" --limit 5\n  \
        sluice query mongo UserData.GenderCounts --sort '{\"_id\": 1}'"
    )]
    Query {
        #[command(subcommand)]
        command: query::QueryCommand,
    },
    /// Work with dead letters: replay them through a fixed plugin.
    #[command(
        name = "dead-letters",
        after_help = "Example:\n  sluice dead-letters replay pipelines/out/quickstart/dead_letter.jsonl \\\n    --pipeline pipelines/quickstart.toml --plugin format_user=fixed.wasm"
    )]
    DeadLetters {
        #[command(subcommand)]
        command: replay::DeadLettersCommand,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.log_format);
    let result = match cli.command {
        Command::Run {
            pipelines,
            no_progress,
            admin,
            admin_token,
        } => run::run(&pipelines, no_progress, admin, admin_token),
        Command::Status {
            admin,
            token,
            watch,
            json,
            ready,
        } => match ready {
            true => status::ready(&admin, token.as_deref()),
            false => status::run(&admin, token.as_deref(), watch, json),
        },
        Command::Validate { pipelines } => validate::validate(&pipelines),
        Command::Plugin { command } => plugin_cmd::run(command),
        Command::Query { command } => query::run(command),
        Command::DeadLetters { command } => replay::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}

/// An error with the exit code it deserves.
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn config(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: EXIT_CONFIG,
            error: error.into(),
        }
    }
    pub fn runtime(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: EXIT_RUNTIME,
            error: error.into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

fn init_logging(verbose: u8, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn,sluice=info",
        1 => "info,sluice=debug",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Pretty => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().with_current_span(false).init(),
    }
}

/// Load a pipeline and build it (plugins loaded and initialised): the part `run` and
/// `validate` share. Every error here is a configuration error.
pub fn build(
    path: &std::path::Path,
    runtime: &sluice::plugin::Runtime,
) -> Result<sluice::engine::Pipeline, Failure> {
    let config = sluice::config::load(path).map_err(Failure::config)?;
    sluice::engine::Pipeline::build(config, runtime).map_err(|e| {
        Failure::config(anyhow::Error::new(e).context(format!("in {}", path.display())))
    })
}

/// Several pipeline files, built with one runtime; their names must differ (they
/// name logs, progress lines and state folders).
pub fn build_all(paths: &[PathBuf]) -> Result<Vec<sluice::engine::Pipeline>, Failure> {
    build_all_with(paths, &runtime()?)
}

/// The same with a runtime of the caller's (kept for plugin swaps).
pub fn build_all_with(
    paths: &[PathBuf],
    runtime: &sluice::plugin::Runtime,
) -> Result<Vec<sluice::engine::Pipeline>, Failure> {
    let mut pipelines: Vec<sluice::engine::Pipeline> = Vec::new();
    for path in paths {
        let p = build(path, runtime)?;
        if let Some(same) = pipelines
            .iter()
            .find(|q| q.config().name() == p.config().name())
        {
            return Err(Failure::config(anyhow::anyhow!(
                "{} and {} are both named `{}`: give one a [pipeline] name",
                same.config().file.display(),
                path.display(),
                p.config().name()
            )));
        }
        pipelines.push(p);
    }
    Ok(pipelines)
}

pub fn runtime() -> Result<sluice::plugin::Runtime, Failure> {
    sluice::plugin::Runtime::new(sluice::plugin::ComponentCache::from_env())
        .map_err(Failure::runtime)
}
