//! Host-side bindings generated from `wit/` by wasmtime's `bindgen!`.

/// The `transform` world. Its `types` and `log` interfaces are the ones the whole host
/// uses.
pub mod transform {
    wasmtime::component::bindgen!({
        world: "transform",
        path: "../wit",
        additional_derives: [PartialEq],
        // A lookup of a table the pipeline does not declare traps, naming it.
        imports: { "sluice:plugin/lookup.get": trappable },
    });
}

/// The `window` world, sharing `types` and `log` with [`transform`] so one `Record`
/// type flows through the whole engine.
pub mod window {
    wasmtime::component::bindgen!({
        world: "window",
        path: "../wit",
        with: {
            "sluice:plugin/types": super::transform::sluice::plugin::types,
            "sluice:plugin/log": super::transform::sluice::plugin::log,
            "sluice:plugin/lookup": super::transform::sluice::plugin::lookup,
        },
    });
}

/// The `stateful` world (keyed state), sharing `types` and `log` likewise.
pub mod stateful {
    wasmtime::component::bindgen!({
        world: "stateful",
        path: "../wit",
        with: {
            "sluice:plugin/types": super::transform::sluice::plugin::types,
            "sluice:plugin/log": super::transform::sluice::plugin::log,
            "sluice:plugin/lookup": super::transform::sluice::plugin::lookup,
        },
    });
}

pub use stateful::exports::sluice::plugin::stateful_transformer::KeyState;
pub use stateful::{Stateful, StatefulPre};
pub use transform::sluice::plugin::log;
pub use transform::sluice::plugin::lookup;
pub use transform::sluice::plugin::types;
pub use transform::{Transform, TransformPre};
pub use window::{Window, WindowPre};
