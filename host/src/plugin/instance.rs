//! One sandboxed plugin instance, generic over the world it implements, and the rules
//! shared by every call: arm the CPU deadline, classify a failure, and throw the
//! instance away after a trap (a trapped instance cannot be re-entered).

use super::capped::OutputCapExceeded;
use super::error::{BrokenContract, CallFailure, PluginError};
use super::runtime::{Blocked, EpochTicker, LoadedPlugin, Runtime, Sandbox};
use super::state::{PluginLog, PluginState};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::InstancePre;
use wasmtime::{Engine, Store, Trap};

/// A world's generated bindings, as far as the runtime needs to know them: one
/// impl per world (`transform`, `window`), so every plugin is a [`Plugin`] of one.
pub trait World: Sized {
    const NAME: &'static str;
    type Pre: Clone;

    fn pre(pre: InstancePre<PluginState>) -> wasmtime::Result<Self::Pre>;
    fn instantiate(pre: &Self::Pre, store: &mut Store<PluginState>) -> wasmtime::Result<Self>;
    fn init(
        &mut self,
        store: &mut Store<PluginState>,
        config: &str,
    ) -> wasmtime::Result<Result<(), String>>;
}

/// A plugin of world `W` with at most one live instance, re-created on demand. What
/// every plugin has (name, version, failures, log, forks) is here once; what a
/// world's calls are is in its own file ([`super::transform`], [`super::window`]).
pub struct Plugin<W: World> {
    name: Arc<str>,
    engine: Engine,
    pre: W::Pre,
    config_json: String,
    sandbox: Sandbox,
    live: Option<(Store<PluginState>, W)>,
    /// Calls that failed (trap, deadline, memory, blocking) since the start.
    failures: u64,
    /// Tags and rate-limits the plugin's log lines (shared by its instances).
    log: Arc<PluginLog>,
    version: String,
    file: PathBuf,
    /// The tables its `lookup` calls read.
    lookup: Arc<super::lookup::Lookup>,
    _ticker: Arc<EpochTicker>,
}

impl<W: World> Plugin<W> {
    /// Type-check the plugin against world `W`, instantiate it and run its `init`, so a
    /// wrong world or a refused configuration is reported before any data flows.
    pub fn start(
        runtime: &Runtime,
        plugin: &LoadedPlugin,
        name: &str,
        config_json: String,
        sandbox: Sandbox,
    ) -> Result<Self, PluginError> {
        let wrong_world = |e: wasmtime::Error| PluginError::WrongWorld {
            path: plugin.path.clone(),
            world: W::NAME,
            reason: format!("{e:#}"),
        };
        let pre = runtime
            .linker()
            .instantiate_pre(&plugin.component)
            .map_err(wrong_world)?;
        let pre = W::pre(pre).map_err(wrong_world)?;
        let me = Plugin {
            name: name.into(),
            engine: runtime.engine().clone(),
            pre,
            config_json,
            sandbox,
            live: None,
            failures: 0,
            log: Arc::new(PluginLog::new(name, &plugin.version)),
            version: plugin.version.clone(),
            file: plugin.path.clone(),
            lookup: runtime.lookup(),
            _ticker: runtime.ticker(),
        };
        me.started()
    }

    /// This plugin once its first instance is up and `init`ed.
    fn started(mut self) -> Result<Self, PluginError> {
        match self.live() {
            Ok(_) => Ok(self),
            Err(StartFailure::Refused(message)) => Err(PluginError::Init {
                plugin: self.name.to_string(),
                message,
            }),
            Err(StartFailure::Failed(failure)) => Err(PluginError::Start {
                plugin: self.name.to_string(),
                failure,
            }),
        }
    }

    /// Another plugin of the same component, config and sandbox, with an instance of
    /// its own (`init`ed now): for a worker thread, since an instance runs on one
    /// thread at a time. It shares the log (and its rate limit) with this one.
    pub fn fork(&self) -> Result<Self, PluginError> {
        let other = Plugin {
            name: self.name.clone(),
            engine: self.engine.clone(),
            pre: self.pre.clone(),
            config_json: self.config_json.clone(),
            sandbox: self.sandbox,
            live: None,
            failures: 0,
            log: self.log.clone(),
            version: self.version.clone(),
            file: self.file.clone(),
            lookup: self.lookup.clone(),
            _ticker: self._ticker.clone(),
        };
        other.started()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn sandbox(&self) -> Sandbox {
        self.sandbox
    }

    pub fn failures(&self) -> u64 {
        self.failures
    }

    pub fn version(&self) -> (&str, &Path) {
        (&self.version, &self.file)
    }

    pub fn log(&self) -> &PluginLog {
        &self.log
    }

    /// Name the pipeline and stage its log lines are tagged with.
    pub fn set_log_context(&self, pipeline: &str, stage: &'static str) {
        self.log.set_context(pipeline, stage);
    }

    /// Log lines dropped by the rate limit.
    pub fn log_dropped(&self) -> u64 {
        self.log.dropped()
    }

    /// The live instance, creating (and initialising) one if the last call trapped.
    fn live(&mut self) -> Result<&mut (Store<PluginState>, W), StartFailure> {
        if self.live.is_none() {
            let mut store = Store::new(
                &self.engine,
                PluginState::new(
                    self.log.clone(),
                    self.sandbox.memory_bytes,
                    self.lookup.clone(),
                ),
            );
            store.limiter(|s| &mut s.limiter);
            store.set_epoch_deadline(self.sandbox.deadline_ticks());
            let mut bindings = W::instantiate(&self.pre, &mut store)
                .map_err(|e| StartFailure::Failed(classify(&store, self.sandbox, e)))?;
            store.set_epoch_deadline(self.sandbox.deadline_ticks());
            match bindings.init(&mut store, &self.config_json) {
                Ok(Ok(())) => {}
                Ok(Err(message)) => return Err(StartFailure::Refused(message)),
                Err(e) => return Err(StartFailure::Failed(classify(&store, self.sandbox, e))),
            }
            self.live = Some((store, bindings));
        }
        Ok(self.live.as_mut().expect("just created"))
    }

    /// Run one call under the deadline. On any failure the instance is dropped and
    /// the failure counted.
    pub(crate) fn call<R>(
        &mut self,
        f: impl FnOnce(&W, &mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallFailure> {
        let result = self.call_uncounted(f);
        if result.is_err() {
            self.failures += 1;
        }
        result
    }

    /// Count a failure the caller found in a call's results (a broken contract).
    pub(crate) fn count_failure(&mut self) {
        self.failures += 1;
    }

    fn call_uncounted<R>(
        &mut self,
        f: impl FnOnce(&W, &mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallFailure> {
        let sandbox = self.sandbox;
        let (store, bindings) = self.live().map_err(|e| match e {
            StartFailure::Refused(m) => CallFailure::Trap(format!("re-initialising failed: {m}")),
            StartFailure::Failed(f) => f,
        })?;
        store.set_epoch_deadline(sandbox.deadline_ticks());
        match f(bindings, store) {
            Ok(r) => Ok(r),
            Err(e) => {
                let failure = classify(store, sandbox, e);
                self.live = None;
                Err(failure)
            }
        }
    }
}

enum StartFailure {
    Refused(String),
    Failed(CallFailure),
}

fn classify(store: &Store<PluginState>, sandbox: Sandbox, e: wasmtime::Error) -> CallFailure {
    if store.data().limiter.exceeded {
        return CallFailure::Memory(sandbox.memory_bytes);
    }
    if let Some(Trap::Interrupt) = e.downcast_ref::<Trap>() {
        return CallFailure::Deadline(sandbox.deadline);
    }
    if e.downcast_ref::<Blocked>().is_some() {
        return CallFailure::Blocked;
    }
    if let Some(BrokenContract(why)) = e.downcast_ref::<BrokenContract>() {
        return CallFailure::Contract(why.clone());
    }
    if e.downcast_ref::<OutputCapExceeded>().is_some() {
        return CallFailure::Output(sandbox.max_output_bytes);
    }
    // The first line names the trap; the rest is a wasm backtrace, useful in the log
    // but too long for every dead letter.
    let full = format!("{e:#}");
    tracing::debug!("plugin trap detail: {full}");
    // A host call that refused (a lookup of a table not declared) says why in the
    // error it returned: the root of the chain, under the backtrace's context.
    let summary = match e.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => match e.chain().last() {
            Some(root) => root.to_string(),
            None => full.lines().next().unwrap_or_default().to_owned(),
        },
    };
    CallFailure::Trap(summary)
}
