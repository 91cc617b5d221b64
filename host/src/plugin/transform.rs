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

    /// The most bytes of output one batch may bring back.
    pub fn max_output(&self) -> usize {
        self.inner.sandbox().max_output_bytes
    }

    /// One outcome per input record, in order, within the sandbox's output cap.
    pub fn process(&mut self, records: &[Record]) -> Result<Vec<Outcome>, CallFailure> {
        let cap = self.max_output();
        self.process_within(records, cap)
    }

    /// As [`process`](Self::process), failing the call if its outputs come to more
    /// than `budget` bytes (what is left of the batch's cap).
    pub fn process_within(
        &mut self,
        records: &[Record],
        budget: usize,
    ) -> Result<Vec<Outcome>, CallFailure> {
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
        if output_bytes(&outcomes) > budget {
            self.inner.count_failure();
            return Err(CallFailure::Output(self.max_output()));
        }
        Ok(outcomes)
    }
}

/// Bytes of records (keys, values, headers) and error messages in `outcomes`.
pub fn output_bytes(outcomes: &[Outcome]) -> usize {
    let record = |r: &Record| {
        r.key.as_ref().map_or(0, Vec::len)
            + r.value.len()
            + r.headers
                .iter()
                .map(|h| h.name.len() + h.value.len())
                .sum::<usize>()
    };
    outcomes
        .iter()
        .map(|o| match o {
            Ok(records) => records.iter().map(record).sum(),
            Err(message) => message.len(),
        })
        .sum()
}
