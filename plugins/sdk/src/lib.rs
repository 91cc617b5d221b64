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

/// Reading one field of a JSON record without parsing the rest: what a plugin that
/// needs only `gender`, or a host that needs only an event time, does for every
/// record. Strings are skipped with `memchr` (SIMD where the target has it: build
/// with `-C target-feature=+simd128` for WebAssembly).
pub mod json {
    /// Where the value of the top-level key `key` starts in a JSON object (the last
    /// one, if the key repeats, as a full parse keeps it), found by a scan that skips
    /// nested values and strings without checking them. `None` when the scan cannot
    /// tell: not an object, an escaped key (which might be this one), a broken
    /// structure. Then parse the record in full, which also says what is wrong.
    /// `Some(None)`: a well-formed object without the key.
    pub fn top_level_value(json: &[u8], key: &[u8]) -> Option<Option<usize>> {
        let mut i = json.iter().position(|b| !b.is_ascii_whitespace())?;
        if json[i] != b'{' {
            return None;
        }
        i += 1;
        let (mut depth, mut found) = (1usize, None);
        let mut expect_key = true;
        while i < json.len() {
            match json[i] {
                b'"' => {
                    let end = string_end(json, i + 1)?;
                    if depth == 1 && expect_key {
                        let name = &json[i + 1..end];
                        let mut j = end + 1;
                        while json.get(j).is_some_and(u8::is_ascii_whitespace) {
                            j += 1;
                        }
                        if json.get(j) != Some(&b':') {
                            return None;
                        }
                        if name == key {
                            found = Some(j + 1);
                        } else if name.contains(&b'\\') {
                            return None;
                        }
                        expect_key = false;
                        i = j + 1;
                        continue;
                    }
                    i = end + 1;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        let rest = &json[i + 1..];
                        return rest.iter().all(u8::is_ascii_whitespace).then_some(found);
                    }
                }
                b',' if depth == 1 => expect_key = true,
                _ => {}
            }
            i += 1;
        }
        None
    }

    /// The index of the quote that ends the string whose first byte is at `from`.
    pub fn string_end(json: &[u8], mut from: usize) -> Option<usize> {
        loop {
            let at = from + memchr::memchr2(b'"', b'\\', json.get(from..)?)?;
            if json[at] == b'"' {
                return Some(at);
            }
            from = at + 2; // an escape: the escaped byte is not the end
        }
    }

    /// The string value starting at `at` (after optional whitespace), if it has no
    /// escapes.
    pub fn plain_string(json: &[u8], at: usize) -> Option<&[u8]> {
        let start = at
            + json
                .get(at..)?
                .iter()
                .position(|b| !b.is_ascii_whitespace())?;
        if json[start] != b'"' {
            return None;
        }
        let end = string_end(json, start + 1)?;
        let s = &json[start + 1..end];
        (!s.contains(&b'\\')).then_some(s)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn finds_the_top_level_key_and_skips_the_rest() {
            let j = br#" {"a": "}\"{", "n": {"k": 1}, "k": "v", "z": [1, {"k": 2}]} "#;
            let at = top_level_value(j, b"k").unwrap().unwrap();
            assert_eq!(plain_string(j, at), Some(&b"v"[..]));
            assert_eq!(top_level_value(j, b"missing"), Some(None));
            assert_eq!(top_level_value(br#"{"\u006b": 1}"#, b"k"), None);
            assert_eq!(top_level_value(b"[1]", b"k"), None);
            assert_eq!(top_level_value(br#"{"k": 1"#, b"k"), None);
            assert_eq!(top_level_value(br#"{"k": 1} x"#, b"k"), None);
            let last = br#"{"k": "a", "k": "b"}"#;
            assert_eq!(
                plain_string(last, top_level_value(last, b"k").unwrap().unwrap()),
                Some(&b"b"[..])
            );
        }
    }
}
