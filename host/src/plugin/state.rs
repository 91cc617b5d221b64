//! What each plugin instance's `Store` carries: a WASI context that grants nothing,
//! the memory limiter, and the plugin's name for its log lines.

use super::bindings::log::{Host as LogHost, Level};
use super::bindings::lookup::Host as LookupHost;
use super::lookup::{Lookup, Tables};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Longest log message kept from a plugin; a plugin that logs whole records per call
/// must not be able to flood the host's log.
const MAX_LOG_MESSAGE: usize = 4096;

pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryCap,
    log: Arc<PluginLog>,
    /// Every pipeline's tables; this plugin's, once looked up.
    lookup: Arc<Lookup>,
    tables: Option<Arc<Tables>>,
}

/// Lines a plugin may log per second, on average; a burst of [`LOG_BURST`] passes.
pub const LOG_RATE: f64 = 50.0;
pub const LOG_BURST: f64 = 200.0;

/// A plugin's log lines: tagged with its pipeline, stage, name and version, and
/// rate-limited (a token bucket shared by its instances), so that a chatty or hostile
/// plugin cannot flood the host's log. Lines over the limit are dropped and counted;
/// the next line let through says how many went.
pub struct PluginLog {
    plugin: Arc<str>,
    version: String,
    context: OnceLock<(String, &'static str)>,
    /// Tokens left and when they were counted.
    bucket: Mutex<(f64, Instant)>,
    dropped: AtomicU64,
    /// Dropped lines not yet reported in the log.
    unreported: AtomicU64,
}

impl PluginLog {
    pub fn new(plugin: &str, version: &str) -> Self {
        PluginLog {
            plugin: plugin.into(),
            version: version.to_owned(),
            context: OnceLock::new(),
            bucket: Mutex::new((LOG_BURST, Instant::now())),
            dropped: AtomicU64::new(0),
            unreported: AtomicU64::new(0),
        }
    }

    /// The pipeline the plugin runs in, once told.
    pub fn pipeline(&self) -> Option<&str> {
        self.context.get().map(|(p, _)| p.as_str())
    }

    /// The pipeline and stage (`transform`, `window`) the plugin runs in (once).
    pub fn set_context(&self, pipeline: &str, stage: &'static str) {
        let _ = self.context.set((pipeline.to_owned(), stage));
    }

    /// Lines dropped so far. Drops not yet announced are announced now: the processor
    /// asks after every batch, so a burst is reported even if the plugin logs nothing
    /// more.
    pub fn dropped(&self) -> u64 {
        self.announce();
        self.dropped.load(Relaxed)
    }

    fn announce(&self) {
        let gone = self.unreported.swap(0, Relaxed);
        if gone > 0 {
            let (pipeline, stage) = self
                .context
                .get()
                .map_or(("", ""), |(p, s)| (p.as_str(), *s));
            let (plugin, version) = (&*self.plugin, self.version.as_str());
            tracing::warn!(
                pipeline,
                stage,
                plugin,
                version,
                "{gone} log line(s) of the plugin dropped (over {LOG_RATE} a second)"
            );
        }
    }

    /// Whether one more line may go out now.
    fn admit(&self) -> bool {
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(bucket.1).as_secs_f64() * LOG_RATE;
        *bucket = ((bucket.0 + refill).min(LOG_BURST), now);
        if bucket.0 >= 1.0 {
            bucket.0 -= 1.0;
            true
        } else {
            self.dropped.fetch_add(1, Relaxed);
            self.unreported.fetch_add(1, Relaxed);
            false
        }
    }

    fn emit(&self, level: Level, message: &str) {
        if !self.admit() {
            return;
        }
        let (pipeline, stage) = self
            .context
            .get()
            .map_or(("", ""), |(p, s)| (p.as_str(), *s));
        let plugin = &*self.plugin;
        let version = self.version.as_str();
        self.announce();
        match level {
            Level::Trace => tracing::trace!(pipeline, stage, plugin, version, "{message}"),
            Level::Debug => tracing::debug!(pipeline, stage, plugin, version, "{message}"),
            Level::Info => tracing::info!(pipeline, stage, plugin, version, "{message}"),
            Level::Warn => tracing::warn!(pipeline, stage, plugin, version, "{message}"),
            Level::Error => tracing::error!(pipeline, stage, plugin, version, "{message}"),
        }
    }
}

impl PluginState {
    pub fn new(log: Arc<PluginLog>, memory_cap: usize, lookup: Arc<Lookup>) -> Self {
        PluginState {
            // No preopened directories, no environment, no arguments, no network, no
            // stdin; stdout/stderr go nowhere. Clocks and random stay available.
            // Random bytes are capped at 64 KiB a call: a guest asking for more would
            // otherwise make the host fill a buffer outside the memory cap.
            //
            // Note for whoever grants more: stream `blocking-*` calls wait inside the
            // host without going through `poll` (see `forbid_blocking`). They cannot
            // wait here (stdin is closed, stdout/stderr are sinks always ready), but
            // would as soon as stdin, files or sockets are granted.
            wasi: WasiCtx::builder().max_random_size(64 << 10).build(),
            table: ResourceTable::new(),
            limiter: MemoryCap {
                cap: memory_cap,
                used: 0,
                exceeded: false,
            },
            log,
            lookup,
            tables: None,
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl LogHost for PluginState {
    fn log(&mut self, level: Level, mut message: String) {
        if message.len() > MAX_LOG_MESSAGE {
            let mut end = MAX_LOG_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        self.log.emit(level, &message);
    }
}

impl super::bindings::types::Host for PluginState {}

impl LookupHost for PluginState {
    fn get(&mut self, table: String, key: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
        if self.tables.is_none() {
            let Some(pipeline) = self.log.pipeline() else {
                return Err(wasmtime::format_err!(
                    "lookup of table `{table}` in init: tables are read while records are processed, not in init"
                ));
            };
            self.tables = self.lookup.tables(pipeline);
        }
        match self.tables.as_ref().and_then(|t| t.get(&table)) {
            Some(t) => Ok(t.get(&key)),
            None => {
                let mut declared: Vec<&str> = self
                    .tables
                    .iter()
                    .flat_map(|t| t.keys().map(String::as_str))
                    .collect();
                declared.sort_unstable();
                Err(wasmtime::format_err!(
                    "lookup of table `{table}`, which the pipeline does not declare ([[tables]]: {})",
                    if declared.is_empty() { "none".into() } else { declared.join(", ") }
                ))
            }
        }
    }
}

/// Caps the linear memory of a whole instance (all its memories together: a
/// component may have several) and remembers that it did, so a failure can be
/// reported as "memory cap" rather than as whatever the guest's allocator did next.
pub struct MemoryCap {
    cap: usize,
    /// Bytes across every memory of the instance.
    used: usize,
    pub(crate) exceeded: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Called for a memory's creation too (current = 0), so the sum is exact.
        let total = self.used - current + desired;
        if total > self.cap {
            self.exceeded = true;
            wasmtime::bail!(
                "memory would grow to {total} bytes, over the cap of {}",
                self.cap
            );
        }
        self.used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}
