//! The plugin-author side of Sluice, kept thin on purpose: the wit-bindgen bindings for the
//! `sluice:plugin` worlds, the shared record types, a logger, and `transform_plugin!`,
//! which lets an author write one function per record instead of one per batch.
//!
//! ```ignore
//! struct Upper;
//! impl sluice_plugin_sdk::RecordTransform for Upper {
//!     fn transform(mut record: Record) -> Result<Vec<Record>, String> {
//!         record.value.make_ascii_uppercase();
//!         Ok(vec![record])
//!     }
//! }
//! sluice_plugin_sdk::transform_plugin!(Upper);
//! ```

/// Bindings for the `transform` world (stateless record transforms).
pub mod transform {
    wit_bindgen::generate!({
        world: "transform",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_transform",
        default_bindings_module: "sluice_plugin_sdk::transform",
    });
}

/// Bindings for the optional `migrator` export (the `window-migrator` world): a window
/// plugin that also converts older builds' state can be swapped in over open windows.
/// Implement `migrate::exports::sluice::plugin::migrator::Guest` and export it with
/// `sluice_plugin_sdk::migrate::export_migrator!(MyWindow with_types_in
/// sluice_plugin_sdk::migrate)` beside `export_window!`.
pub mod migrate {
    wit_bindgen::generate!({
        world: "window-migrator",
        path: "../../wit",
        with: {
            "sluice:plugin/types@0.1.0": crate::transform::sluice::plugin::types,
        },
        pub_export_macro: true,
        export_macro_name: "export_migrator",
        default_bindings_module: "sluice_plugin_sdk::migrate",
    });
}

/// Bindings for the `window` world (windowed aggregates). Shares the record types and
/// the logger with `transform`, so one `Record` type serves both.
pub mod window {
    wit_bindgen::generate!({
        world: "window",
        path: "../../wit",
        with: {
            "sluice:plugin/types@0.1.0": crate::transform::sluice::plugin::types,
            "sluice:plugin/log@0.1.0": crate::transform::sluice::plugin::log,
        },
        pub_export_macro: true,
        export_macro_name: "export_window",
        default_bindings_module: "sluice_plugin_sdk::window",
    });
}

pub use transform::sluice::plugin::types::{
    Accumulator, AddResult, Header, Record, Rejected, WindowBounds,
};

/// The guest trait of the `window` world, for `impl ... for MyWindow`.
pub use window::exports::sluice::plugin::aggregator::Guest as WindowGuest;

/// Logging through the host (`tracing`, tagged with the plugin's name).
pub mod log {
    use crate::transform::sluice::plugin::log::{log, Level};

    pub fn debug(message: &str) {
        log(Level::Debug, message)
    }
    pub fn info(message: &str) {
        log(Level::Info, message)
    }
    pub fn warn(message: &str) {
        log(Level::Warn, message)
    }
    pub fn error(message: &str) {
        log(Level::Error, message)
    }
}

/// A transform written one record at a time; `transform_plugin!` turns it into the
/// batched `transformer` export.
pub trait RecordTransform {
    /// Check and keep the plugin's configuration (a JSON object as text).
    fn init(_config: &str) -> Result<(), String> {
        Ok(())
    }

    /// Turn one record into zero, one or many records, or say why it can't.
    fn transform(record: Record) -> Result<Vec<Record>, String>;
}

/// Export a [`RecordTransform`] as this component's `transformer` interface.
#[macro_export]
macro_rules! transform_plugin {
    ($ty:ty) => {
        struct __SluiceTransformExport;

        impl $crate::transform::exports::sluice::plugin::transformer::Guest
            for __SluiceTransformExport
        {
            fn init(config: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                <$ty as $crate::RecordTransform>::init(&config)
            }

            fn process(
                batch: ::std::vec::Vec<$crate::Record>,
            ) -> ::std::vec::Vec<
                ::std::result::Result<::std::vec::Vec<$crate::Record>, ::std::string::String>,
            > {
                batch
                    .into_iter()
                    .map(<$ty as $crate::RecordTransform>::transform)
                    .collect()
            }
        }

        $crate::transform::export_transform!(__SluiceTransformExport with_types_in $crate::transform);
    };
}
