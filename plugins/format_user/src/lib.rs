//! `format_user`: a randomuser.me API user object -> one flat JSON row with exactly the
//! 12 fields the Cassandra table `spark_streams.created_users` and the Mongo collection
//! `UserData.User` expect.
//!
//! The logic lives in [`format`] as plain Rust so it has native unit tests and the host
//! can benchmark it natively against the same code compiled to WASM; the component
//! export is only wired up when built for `wasm32`.

// Talc in place of the wasm32 default (dlmalloc, by way of wasi-libc's malloc): the
// plugin allocates and frees some ten times a user, and Talc's smaller paths took the
// seeds' job's instructions down 1.0%.
#[cfg(all(not(target_feature = "atomics"), target_family = "wasm"))]
#[global_allocator]
static TALC: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

mod fast;
mod fields;
mod shape;

pub use fields::{format, format_each, format_value, FormatError, Row, USER_FIELDS};

#[cfg(target_arch = "wasm32")]
mod component {
    use sluice_plugin_sdk::{Record, RecordTransform};

    struct FormatUser;

    impl RecordTransform for FormatUser {
        fn init(config: &str) -> Result<(), String> {
            if cfg!(feature = "refuse_init") {
                return Err("format_user (refuse_init test build) refuses every config".into());
            }
            match config.trim() {
                "" | "{}" => Ok(()),
                other => Err(format!("format_user takes no configuration, got {other}")),
            }
        }

        fn transform(record: Record) -> Result<Vec<Record>, String> {
            if cfg!(feature = "trap_all") {
                panic!("format_user (trap_all test build) traps on every record");
            }
            let mut records = Vec::with_capacity(1);
            crate::format_each(&record.value, &mut |row| {
                records.push(Record {
                    key: Some(row.id.into_bytes()),
                    value: if cfg!(feature = "v2") {
                        // The same row with one more field.
                        let mut json = row.json;
                        json.pop();
                        json.push_str(",\"format_version\":2}");
                        json.into_bytes()
                    } else {
                        row.json.into_bytes()
                    },
                    timestamp_ms: record.timestamp_ms,
                    headers: record.headers.clone(),
                })
            })
            .map_err(|e| e.to_string())?;
            Ok(records)
        }
    }

    sluice_plugin_sdk::transform_plugin!(FormatUser);
}
