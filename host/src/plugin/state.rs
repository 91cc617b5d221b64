//! What each plugin instance's `Store` carries: a WASI context that grants nothing,
//! the memory limiter, and the plugin's name for its log lines.

use super::bindings::log::{Host as LogHost, Level};
use std::sync::Arc;
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
    plugin: Arc<str>,
}

impl PluginState {
    pub fn new(plugin: Arc<str>, memory_cap: usize) -> Self {
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
            plugin,
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
        let plugin = &*self.plugin;
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl super::bindings::types::Host for PluginState {}

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
