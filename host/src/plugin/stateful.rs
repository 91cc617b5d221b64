//! Stateful transform plugins (the `stateful` world): a batch goes in with the state
//! of each of its keys, outcomes and state updates come back. The host keeps the
//! state ([`crate::engine`]'s keyed stage); these calls only see a batch's keys.

use super::bindings::types::{Accumulator, Record};
use super::bindings::{KeyState, Stateful, StatefulPre};
use super::capped::{with_budget, CappedList};
use super::error::CallFailure;
use super::instance::{Plugin, World};
use super::state::PluginState;
use super::transform::{Outcome, RawOutcomes};
use wasmtime::component::{ComponentType, Func, InstancePre, Lift};
use wasmtime::Store;

const INTERFACE: &str = "sluice:plugin/stateful-transformer@0.1.0";

/// `accumulator` as lifted under the budget.
#[derive(ComponentType, Lift)]
#[component(record)]
struct RawAccumulator {
    version: u32,
    data: CappedList<u8>,
}

/// `key-state` as lifted under the budget.
#[derive(ComponentType, Lift)]
#[component(record)]
struct RawKeyState {
    key: CappedList<u8>,
    state: Option<RawAccumulator>,
}

/// `processed` as lifted under the budget.
#[derive(ComponentType, Lift)]
#[component(record)]
struct RawProcessed {
    outcomes: RawOutcomes,
    updates: CappedList<RawKeyState>,
}

/// What a batch did: an outcome per record, and the keys whose state changed
/// (`None`: deleted).
pub struct Processed {
    pub outcomes: Vec<Outcome>,
    pub updates: Vec<(Vec<u8>, Option<Accumulator>)>,
}

/// A live `stateful` instance: the generated bindings (for `init`), `process`, and
/// `migrate` if it has one.
pub struct StatefulInstance {
    bindings: Stateful,
    process: Func,
    migrate: Option<Func>,
}

type ProcessParams<'a> = (&'a [Record], &'a [KeyState]);

impl World for StatefulInstance {
    const NAME: &'static str = "stateful";
    type Pre = StatefulPre<PluginState>;

    fn pre(pre: InstancePre<PluginState>) -> wasmtime::Result<Self::Pre> {
        StatefulPre::new(pre)
    }
    fn instantiate(pre: &Self::Pre, store: &mut Store<PluginState>) -> wasmtime::Result<Self> {
        let instance = pre.instance_pre().instantiate(&mut *store)?;
        let bindings = Stateful::new(&mut *store, &instance)?;
        let process = super::migrator::export_func(&instance, store, INTERFACE, "process")
            .ok_or_else(|| wasmtime::format_err!("no export {INTERFACE}#process"))?;
        process.typed::<ProcessParams, (RawProcessed,)>(&*store)?;
        let migrate = super::migrator::find(&instance, store)?;
        Ok(StatefulInstance {
            bindings,
            process,
            migrate,
        })
    }
    fn init(
        &mut self,
        store: &mut Store<PluginState>,
        config: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        self.bindings
            .sluice_plugin_stateful_transformer()
            .call_init(store, config)
    }
}

impl super::migrator::Migrates for StatefulInstance {
    fn migrate_func(&self) -> Option<Func> {
        self.migrate
    }
}

/// A plugin of the `stateful` world.
pub type StatefulPlugin = Plugin<StatefulInstance>;

impl Plugin<StatefulInstance> {
    /// One outcome per record and the state updates, within the sandbox's output cap.
    /// An update naming a key not among `states` breaks the contract (the host could
    /// not tell which partition's state it belongs to).
    pub fn process(
        &mut self,
        records: &[Record],
        states: &[KeyState],
    ) -> Result<Processed, CallFailure> {
        let cap = self.sandbox().max_output_bytes;
        let (raw, _) = with_budget(cap, || {
            self.call(|w, store| {
                let process = w.process.typed::<ProcessParams, (RawProcessed,)>(&*store)?;
                let (raw,) = process.call(store, (records, states))?;
                Ok(raw)
            })
        });
        let raw = raw?;
        let outcomes: Vec<Outcome> = raw
            .outcomes
            .0
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
        let mut updates = Vec::with_capacity(raw.updates.0.len());
        let known: std::collections::HashSet<&[u8]> = states.iter().map(|s| &s.key[..]).collect();
        for u in raw.updates.0 {
            let key = u.key.0;
            if !known.contains(&key[..]) {
                self.count_failure();
                return Err(CallFailure::Contract(format!(
                    "process updated the state of key {:?}, which is not a key of the batch",
                    String::from_utf8_lossy(&key)
                )));
            }
            let state = u.state.map(|a| Accumulator {
                version: a.version,
                data: a.data.0,
            });
            updates.push((key, state));
        }
        Ok(Processed { outcomes, updates })
    }
}
