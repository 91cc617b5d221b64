//! Stateless transform plugins (the `transform` world).

use super::bindings::types::Record;
use super::bindings::{Transform, TransformPre};
use super::error::{CallFailure, PluginError};
use super::instance::{Sandboxed, World};
use super::runtime::{LoadedPlugin, Runtime, Sandbox};
use super::state::PluginState;
use wasmtime::component::InstancePre;
use wasmtime::Store;

/// What one input record became.
pub type Outcome = Result<Vec<Record>, String>;

impl World for Transform {
    const NAME: &'static str = "transform";
    type Pre = TransformPre<PluginState>;

    fn pre(pre: InstancePre<PluginState>) -> wasmtime::Result<Self::Pre> {
        TransformPre::new(pre)
    }
    fn instantiate(pre: &Self::Pre, store: &mut Store<PluginState>) -> wasmtime::Result<Self> {
        pre.instantiate(store)
    }
    fn init(
        &self,
        store: &mut Store<PluginState>,
        config: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        self.sluice_plugin_transformer().call_init(store, config)
    }
}

pub struct TransformPlugin {
    inner: Sandboxed<Transform>,
}

impl TransformPlugin {
    /// Check the plugin against the `transform` world and run its `init` with
    /// `config_json` (a JSON object).
    pub fn start(
        runtime: &Runtime,
        plugin: &LoadedPlugin,
        name: &str,
        config_json: String,
        sandbox: Sandbox,
    ) -> Result<Self, PluginError> {
        Ok(TransformPlugin {
            inner: Sandboxed::start(runtime, plugin, name, config_json, sandbox)?,
        })
    }

    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// Calls that failed (trap, deadline, memory cap, blocking) since the start.
    pub fn failures(&self) -> u64 {
        self.inner.failures()
    }

    /// One outcome per input record, in order.
    pub fn process(&mut self, records: &[Record]) -> Result<Vec<Outcome>, CallFailure> {
        let outcomes = self
            .inner
            .call(|b, store| b.sluice_plugin_transformer().call_process(store, records))?;
        if outcomes.len() != records.len() {
            self.inner.count_failure();
            return Err(CallFailure::Contract(format!(
                "process returned {} outcomes for {} records",
                outcomes.len(),
                records.len()
            )));
        }
        Ok(outcomes)
    }
}
