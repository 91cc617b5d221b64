//! Windowed-aggregate plugins (the `window` world). The host keeps the accumulators;
//! these calls only ever see one window's state at a time.

use super::bindings::types::{Accumulator, AddResult, Record, WindowBounds};
use super::bindings::{Window, WindowPre};
use super::error::CallFailure;
use super::instance::{Plugin, World};
use super::projection::Projection;
use super::state::PluginState;
use wasmtime::component::{Func, InstancePre};
use wasmtime::Store;

/// A live `window` instance: the generated bindings, `migrate` if it has one, and
/// the fields `add` reads if it names them (asked after `init`).
pub struct WindowInstance {
    bindings: Window,
    migrate: Option<Func>,
    /// `value-fields` and `add-projected`.
    projects: Option<(Func, Func)>,
    projection: Option<Projection>,
}

impl World for WindowInstance {
    const NAME: &'static str = "window";
    type Pre = WindowPre<PluginState>;

    fn pre(pre: InstancePre<PluginState>) -> wasmtime::Result<Self::Pre> {
        WindowPre::new(pre)
    }
    fn instantiate(pre: &Self::Pre, store: &mut Store<PluginState>) -> wasmtime::Result<Self> {
        let instance = pre.instance_pre().instantiate(&mut *store)?;
        let bindings = Window::new(&mut *store, &instance)?;
        let migrate = super::migrator::find(&instance, store)?;
        let projects = super::projection::find(&instance, store)?;
        Ok(WindowInstance {
            bindings,
            migrate,
            projects,
            projection: None,
        })
    }
    fn init(
        &mut self,
        store: &mut Store<PluginState>,
        config: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        let aggregator = self.bindings.sluice_plugin_aggregator();
        if let Err(refused) = aggregator.call_init(&mut *store, config)? {
            return Ok(Err(refused));
        }
        if let Some((f, _)) = self.projects {
            self.projection = Some(super::projection::ask(f, store)?);
        }
        Ok(Ok(()))
    }
}

impl super::migrator::Migrates for WindowInstance {
    fn migrate_func(&self) -> Option<Func> {
        self.migrate
    }
}

/// A plugin of the `window` world.
pub type WindowPlugin = Plugin<WindowInstance>;

/// A call that ran, but in which the plugin reported an error of its own.
pub type PluginResult<T> = Result<T, String>;

impl Plugin<WindowInstance> {
    pub fn create(&mut self) -> Result<Accumulator, CallFailure> {
        self.call(|b, store| b.bindings.sluice_plugin_aggregator().call_create(store))
    }

    pub fn add(
        &mut self,
        acc: &Accumulator,
        records: &[Record],
    ) -> Result<PluginResult<AddResult>, CallFailure> {
        let result = self.call(|b, store| match (&b.projection, b.projects) {
            (Some(projection), Some((_, add))) => {
                super::projection::add(projection, add, store, acc, records)
            }
            _ => b
                .bindings
                .sluice_plugin_aggregator()
                .call_add(store, acc, records),
        })?;
        if let Ok(added) = &result {
            let mut seen = std::collections::HashSet::new();
            let broken = added
                .rejected
                .iter()
                .find(|r| r.index as usize >= records.len() || !seen.insert(r.index));
            if let Some(bad) = broken {
                self.count_failure();
                return Err(CallFailure::Contract(format!(
                    "add rejected record index {} of a batch of {} (out of range, or twice)",
                    bad.index,
                    records.len()
                )));
            }
        }
        Ok(result)
    }

    pub fn merge(
        &mut self,
        a: &Accumulator,
        b: &Accumulator,
    ) -> Result<PluginResult<Accumulator>, CallFailure> {
        self.call(|w, store| {
            w.bindings
                .sluice_plugin_aggregator()
                .call_merge(store, a, b)
        })
    }

    pub fn finish(
        &mut self,
        acc: &Accumulator,
        window: WindowBounds,
    ) -> Result<PluginResult<Vec<Record>>, CallFailure> {
        self.call(|b, store| {
            b.bindings
                .sluice_plugin_aggregator()
                .call_finish(store, acc, window)
        })
    }
}
