//! `gender_window`: male / female / other-or-unknown / total counts per window.
//!
//! The accumulator is three LEB128 varints (male, female, other) behind the state
//! format version in the WIT `accumulator` record: a few bytes per window, and `merge`
//! is plain addition, so it is exact. The total is derived, never stored.

mod counts;

pub use counts::{finish_json, Counts, STATE_VERSION};

#[cfg(target_arch = "wasm32")]
mod component {
    use crate::{finish_json, Counts, STATE_VERSION};
    use sluice_plugin_sdk::{Accumulator, AddResult, Record, Rejected, WindowBounds, WindowGuest};

    struct GenderWindow;

    fn decode(acc: &Accumulator) -> Result<Counts, String> {
        if acc.version != STATE_VERSION {
            return Err(format!(
                "gender_window state version {} is not supported (this build reads {STATE_VERSION})",
                acc.version
            ));
        }
        Counts::decode(&acc.data)
    }

    fn encode(counts: &Counts) -> Accumulator {
        Accumulator {
            version: STATE_VERSION,
            data: counts.encode(),
        }
    }

    impl WindowGuest for GenderWindow {
        fn init(config: String) -> Result<(), String> {
            match config.trim() {
                "" | "{}" => Ok(()),
                other => Err(format!("gender_window takes no configuration, got {other}")),
            }
        }

        fn create() -> Accumulator {
            encode(&Counts::default())
        }

        fn add(acc: Accumulator, batch: Vec<Record>) -> Result<AddResult, String> {
            let mut counts = decode(&acc)?;
            let mut rejected = Vec::new();
            for (index, record) in batch.iter().enumerate() {
                if let Err(reason) = counts.add_json(&record.value) {
                    rejected.push(Rejected {
                        index: index as u32,
                        reason,
                    });
                }
            }
            Ok(AddResult {
                accumulator: encode(&counts),
                rejected,
            })
        }

        fn merge(a: Accumulator, b: Accumulator) -> Result<Accumulator, String> {
            Ok(encode(&decode(&a)?.merge(&decode(&b)?)))
        }

        fn finish(acc: Accumulator, window: WindowBounds) -> Result<Vec<Record>, String> {
            let counts = decode(&acc)?;
            let json = finish_json(&counts, window.start_ms, window.end_ms)?;
            Ok(vec![Record {
                key: Some(window.start_ms.to_string().into_bytes()),
                value: json.into_bytes(),
                timestamp_ms: window.start_ms,
                headers: Vec::new(),
            }])
        }
    }

    sluice_plugin_sdk::window::export_window!(GenderWindow with_types_in sluice_plugin_sdk::window);
}
