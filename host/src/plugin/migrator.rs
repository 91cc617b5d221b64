//! The optional `migrator` export, for the worlds whose state the host keeps (window,
//! stateful): found once per instance, called when a swap hands over state written
//! in an older format.

use super::bindings::types::Accumulator;
use super::error::CallFailure;
use super::instance::{Plugin, World};
use super::state::PluginState;
use wasmtime::component::{Func, Instance};
use wasmtime::Store;

const MIGRATOR: &str = "sluice:plugin/migrator@0.1.0";

/// A world instance that may carry a `migrate` export.
pub trait Migrates {
    fn migrate_func(&self) -> Option<Func>;
}

/// An export function of `instance`: `name` in `interface`.
pub(super) fn export_func(
    instance: &Instance,
    store: &mut Store<PluginState>,
    interface: &str,
    name: &str,
) -> Option<Func> {
    let i = instance.get_export_index(&mut *store, None, interface)?;
    let f = instance.get_export_index(&mut *store, Some(&i), name)?;
    instance.get_func(&mut *store, f)
}

/// The instance's `migrate`, if it has one; one of the wrong shape fails here, at
/// start.
pub(super) fn find(
    instance: &Instance,
    store: &mut Store<PluginState>,
) -> wasmtime::Result<Option<Func>> {
    let migrate = export_func(instance, store, MIGRATOR, "migrate");
    if let Some(f) = &migrate {
        f.typed::<(u32, &[u8]), (Result<Accumulator, String>,)>(&*store)?;
    }
    Ok(migrate)
}

impl<W: World + Migrates> Plugin<W> {
    /// Convert state written by another build in format `from_version`: `None` if
    /// the plugin has no `migrate` export.
    pub fn migrate(
        &mut self,
        from_version: u32,
        data: &[u8],
    ) -> Option<Result<Result<Accumulator, String>, CallFailure>> {
        let mut has = false;
        let result = self.call(|w, store| {
            let Some(f) = w.migrate_func() else {
                return Ok(Err(String::new()));
            };
            has = true;
            let typed = f.typed::<(u32, &[u8]), (Result<Accumulator, String>,)>(&*store)?;
            let (out,) = typed.call(&mut *store, (from_version, data))?;
            Ok(out)
        });
        has.then_some(result)
    }
}
