//! Stateless transform plugins (the `transform` world).

use super::bindings::types::{Header, Record};
use super::bindings::{Transform, TransformPre};
use super::capped::{with_budget, CappedList, CappedString};
use super::error::CallFailure;
use super::instance::{Plugin, World};
use super::state::PluginState;
use wasmtime::component::{ComponentType, Func, InstancePre, Lift};
use wasmtime::Store;

/// What one input record became.
pub type Outcome = Result<Vec<Record>, String>;

/// The export `process` is called through, so that its results are lifted under the
/// output budget (see [`super::capped`]) rather than by the generated bindings.
const INTERFACE: &str = "sluice:plugin/transformer@0.1.0";

/// `header` as lifted under the budget.
#[derive(ComponentType, Lift)]
#[component(record)]
pub(super) struct RawHeader {
    name: CappedString,
    value: CappedList<u8>,
}

/// `record` as lifted under the budget.
#[derive(ComponentType, Lift)]
#[component(record)]
pub(super) struct RawRecord {
    key: Option<CappedList<u8>>,
    value: CappedList<u8>,
    #[component(name = "timestamp-ms")]
    timestamp_ms: i64,
    headers: CappedList<RawHeader>,
}

pub(super) type RawOutcomes = CappedList<Result<CappedList<RawRecord>, CappedString>>;

impl From<RawRecord> for Record {
    fn from(r: RawRecord) -> Self {
        Record {
            key: r.key.map(|k| k.0),
            value: r.value.0,
            timestamp_ms: r.timestamp_ms,
            headers: r
                .headers
                .0
                .into_iter()
                .map(|h| Header {
                    name: h.name.0,
                    value: h.value.0,
                })
                .collect(),
        }
    }
}

/// A live `transform` instance: the generated bindings (for `init`) and `process`.
pub struct TransformInstance {
    bindings: Transform,
    process: Func,
}

impl World for TransformInstance {
    const NAME: &'static str = "transform";
    type Pre = TransformPre<PluginState>;

    fn pre(pre: InstancePre<PluginState>) -> wasmtime::Result<Self::Pre> {
        TransformPre::new(pre)
    }
    fn instantiate(pre: &Self::Pre, store: &mut Store<PluginState>) -> wasmtime::Result<Self> {
        let instance = pre.instance_pre().instantiate(&mut *store)?;
        let bindings = Transform::new(&mut *store, &instance)?;
        let process = super::migrator::export_func(&instance, store, INTERFACE, "process")
            .ok_or_else(|| wasmtime::format_err!("no export {INTERFACE}#process"))?;
        // A plugin whose `process` does not match the lifting types fails here, at
        // start (each call's `typed` repeats the check, cheaply).
        process.typed::<(&[Record],), (RawOutcomes,)>(&*store)?;
        Ok(TransformInstance { bindings, process })
    }
    fn init(
        &mut self,
        store: &mut Store<PluginState>,
        config: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        self.bindings
            .sluice_plugin_transformer()
            .call_init(store, config)
    }
}

/// A plugin of the `transform` world.
pub type TransformPlugin = Plugin<TransformInstance>;

impl Plugin<TransformInstance> {
    /// The most bytes of output one batch may bring back.
    pub fn max_output(&self) -> usize {
        self.sandbox().max_output_bytes
    }

    /// One outcome per input record, in order, within the sandbox's output cap.
    pub fn process(&mut self, records: &[Record]) -> Result<Vec<Outcome>, CallFailure> {
        let cap = self.max_output();
        self.process_within(records, cap)
            .map(|(outcomes, _)| outcomes)
    }

    /// As [`process`](Self::process), failing the call if lifting its outputs would
    /// cost more than `budget` bytes (what is left of the batch's cap); also returns
    /// what is left after it.
    pub fn process_within(
        &mut self,
        records: &[Record],
        budget: usize,
    ) -> Result<(Vec<Outcome>, usize), CallFailure> {
        // The budget is charged while lifting, before anything is copied: a call
        // that would bring back more fails instead.
        let (outcomes, left) = with_budget(budget, || {
            self.call(|w, store| {
                let process = w.process.typed::<(&[Record],), (RawOutcomes,)>(&*store)?;
                let (raw,) = process.call(store, (records,))?;
                Ok(raw.0)
            })
        });
        let outcomes: Vec<Outcome> = outcomes?
            .into_iter()
            .map(|o| match o {
                Ok(records) => Ok(records.0.into_iter().map(Record::from).collect()),
                Err(message) => Err(message.0),
            })
            .collect();
        if outcomes.len() != records.len() {
            self.count_failure();
            return Err(CallFailure::Contract(format!(
                "process returned {} outcomes for {} records",
                outcomes.len(),
                records.len()
            )));
        }
        Ok((outcomes, left))
    }
}
