//! The process-wide runtime: engine, linker, epoch ticker and compiled-component cache.

use super::bindings::{log, lookup};
use super::cache::ComponentCache;
use super::error::PluginError;
use super::state::PluginState;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

/// How often the epoch advances. A CPU deadline is enforced to within one tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Limits applied to every instance of one plugin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sandbox {
    /// Largest linear memory an instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// Longest one call (a whole batch) may run.
    pub deadline: Duration,
    /// Most bytes of records a transform may hand back for one batch (all its calls,
    /// retries included): what a plugin returns is copied into host memory, outside
    /// its memory cap.
    pub max_output_bytes: usize,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox {
            memory_bytes: 64 * 1024 * 1024,
            deadline: Duration::from_secs(1),
            max_output_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Sandbox {
    /// The epoch deadline for one call, in ticks, rounded up, plus one for the tick
    /// already under way.
    pub(crate) fn deadline_ticks(&self) -> u64 {
        let tick = EPOCH_TICK.as_nanos();
        (self.deadline.as_nanos().div_ceil(tick) as u64).max(1) + 1
    }
}

/// The `wasi:io/poll` that wasmtime-wasi 48 provides; guests built against any
/// `0.2.x` resolve to it.
const WASI_IO_POLL: &str = "wasi:io/poll@0.2.12";

/// Replace the two ways a guest can wait inside the host (`poll`, `pollable.block`:
/// what `std::thread::sleep` and blocking I/O come down to) with a trap. Epoch
/// interruption only stops a guest while it runs wasm code, so a guest blocked in
/// the host would otherwise outlive its deadline and stall the pipeline.
fn forbid_blocking(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut poll = linker.instance(WASI_IO_POLL)?;
    for name in ["poll", "[method]pollable.block"] {
        poll.func_new(name, |_, _, _, _| Err(wasmtime::Error::new(Blocked)))?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// The error a forbidden wait traps with.
#[derive(Debug)]
pub(crate) struct Blocked;

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the plugin tried to wait (sleep or block on a pollable)")
    }
}

impl std::error::Error for Blocked {}

/// The name a plugin goes by (in logs and dead letters) unless the pipeline gives
/// one: its file stem.
pub fn default_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into())
}

/// The version a plugin goes by: the first 12 hex digits of its SHA-256.
pub fn version_of(wasm: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(wasm)
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A compiled plugin, not yet instantiated.
#[derive(Clone)]
pub struct LoadedPlugin {
    pub path: PathBuf,
    /// The file stem, used in logs and dead letters unless the pipeline names it.
    pub name: String,
    pub component: Component,
    pub size_bytes: usize,
    /// The first 12 hex digits of the file's SHA-256: the version metrics, logs and
    /// status pages name.
    pub version: String,
}

pub struct Runtime {
    engine: Engine,
    linker: Linker<PluginState>,
    cache: ComponentCache,
    ticker: Arc<EpochTicker>,
    lookup: Arc<super::lookup::Lookup>,
}

/// The thread that advances the engine's epoch. Every plugin holds it, so deadlines
/// keep being enforced for as long as any plugin lives, even if the `Runtime` is gone.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Runtime {
    pub fn new(cache: ComponentCache) -> Result<Self, PluginError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // Interrupt guests by epoch rather than fuel: ~-19% throughput measured here,
        // against ~-30..50% for fuel, and a deadline is what we want to enforce.
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        if std::env::var_os("SLUICE_PERF_MAP").is_some_and(|v| v == "1") {
            // Names the guests' compiled code for `perf report` (/tmp/perf-PID.map).
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(|e| PluginError::Runtime(format!("{e:#}")))?;

        let mut linker = Linker::new(&engine);
        // wasm32-wasip2 guests import WASI even when they do no I/O; the context
        // in PluginState grants nothing.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| forbid_blocking(&mut linker))
            .map_err(|e| PluginError::Runtime(format!("linking WASI: {e:#}")))?;
        log::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)
            .map_err(|e| PluginError::Runtime(format!("linking sluice:plugin/log: {e:#}")))?;
        lookup::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)
            .map_err(|e| PluginError::Runtime(format!("linking sluice:plugin/lookup: {e:#}")))?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::Builder::new()
                .name("sluice-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| PluginError::Runtime(format!("epoch thread: {e}")))?
        };
        let ticker = Arc::new(EpochTicker {
            stop,
            thread: Some(ticker),
        });
        Ok(Runtime {
            engine,
            linker,
            cache,
            ticker,
            lookup: Arc::default(),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Every running pipeline's lookup tables (what plugins' `lookup` calls read).
    pub fn lookup(&self) -> Arc<super::lookup::Lookup> {
        self.lookup.clone()
    }

    pub(crate) fn ticker(&self) -> Arc<EpochTicker> {
        self.ticker.clone()
    }

    pub(crate) fn linker(&self) -> &Linker<PluginState> {
        &self.linker
    }

    /// Read and compile a plugin (or fetch it from the on-disk cache).
    pub fn load(&self, path: &Path) -> Result<LoadedPlugin, PluginError> {
        let wasm = std::fs::read(path).map_err(|source| PluginError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.load_bytes(path, wasm)
    }

    /// Compile a component from its bytes (sent over the admin listener, say);
    /// `path` names it in messages.
    pub fn load_bytes(&self, path: &Path, wasm: Vec<u8>) -> Result<LoadedPlugin, PluginError> {
        if !wasm.starts_with(b"\0asm") {
            let head: Vec<String> = wasm.iter().take(4).map(|b| format!("{b:02x}")).collect();
            return Err(PluginError::Compile {
                path: path.to_owned(),
                reason: format!(
                    "not a WebAssembly file (it starts with {}, not 00 61 73 6d)",
                    if head.is_empty() {
                        "nothing: it is empty".to_owned()
                    } else {
                        head.join(" ")
                    }
                ),
            });
        }
        let component = self.cache.compile(&self.engine, &wasm).map_err(|e| {
            let mut reason = format!("{e:#}");
            if wasm.get(4..8) == Some(&[1, 0, 0, 0]) {
                reason = format!(
                    "it is a core module, not a component; build it with `--target wasm32-wasip2` ({reason})"
                );
            }
            PluginError::Compile { path: path.to_owned(), reason }
        })?;
        Ok(LoadedPlugin {
            path: path.to_owned(),
            name: default_name(path),
            component,
            size_bytes: wasm.len(),
            version: version_of(&wasm),
        })
    }
}
