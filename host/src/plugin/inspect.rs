//! `sluice plugin inspect`: what a component is, without running it.

use super::bindings::{StatefulPre, TransformPre, WindowPre};
use super::runtime::{LoadedPlugin, Runtime};
use wasmtime::component::types::{ComponentExtern, ComponentItem};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorldKind {
    Transform,
    Window,
    Stateful,
}

impl WorldKind {
    pub fn name(self) -> &'static str {
        match self {
            WorldKind::Transform => "sluice:plugin/transform@0.1.0",
            WorldKind::Window => "sluice:plugin/window@0.1.0",
            WorldKind::Stateful => "sluice:plugin/stateful@0.1.0",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Inspection {
    pub size_bytes: usize,
    /// Which Sluice world the component satisfies, or why none.
    pub world: Result<WorldKind, String>,
    pub imports: Vec<(String, &'static str)>,
    pub exports: Vec<(String, &'static str)>,
}

fn item_kind(item: &ComponentItem) -> &'static str {
    match item {
        ComponentItem::ComponentFunc(_) => "function",
        ComponentItem::CoreFunc(_) => "core function",
        ComponentItem::Module(_) => "module",
        ComponentItem::Component(_) => "component",
        ComponentItem::ComponentInstance(_) => "instance",
        ComponentItem::Type(_) => "type",
        ComponentItem::Resource(_) => "resource",
    }
}

pub fn inspect(runtime: &Runtime, plugin: &LoadedPlugin) -> Inspection {
    let engine = runtime.engine();
    let ty = plugin.component.component_type();
    let list = |items: &mut dyn Iterator<Item = (&str, ComponentExtern<'_>)>| {
        items
            .map(|(name, item)| (name.to_owned(), item_kind(&item.ty)))
            .collect::<Vec<_>>()
    };
    let imports = list(&mut ty.imports(engine));
    let exports = list(&mut ty.exports(engine));

    let world = match runtime.linker().instantiate_pre(&plugin.component) {
        Err(e) => Err(format!(
            "imports something the sandbox does not grant: {e:#}"
        )),
        Ok(pre) => {
            if TransformPre::new(pre.clone()).is_ok() {
                Ok(WorldKind::Transform)
            } else if StatefulPre::new(pre.clone()).is_ok() {
                Ok(WorldKind::Stateful)
            } else {
                match WindowPre::new(pre) {
                    Ok(_) => Ok(WorldKind::Window),
                    Err(e) => Err(format!("exports match no sluice world: {e:#}")),
                }
            }
        }
    };
    Inspection {
        size_bytes: plugin.size_bytes,
        world,
        imports,
        exports,
    }
}
