//! `gender_window`: male / female / other-or-unknown / total counts per window.
//!
//! The accumulator is three LEB128 varints (male, female, other) behind the state
//! format version in the WIT `accumulator` record: a few bytes per window, and `merge`
//! is plain addition, so it is exact. The total is derived, never stored.

mod counts;

pub use counts::{finish_json, Counts, STATE_VERSION};

#[cfg(target_arch = "wasm32")]
mod component {
    use crate::{finish_json, Counts};
    use sluice_plugin_sdk::{Accumulator, AddResult, Record, Rejected, WindowBounds};

    struct GenderWindow;

    /// The state format this build writes: [`crate::STATE_VERSION`], or 2 in the test
    /// builds `state_v2` / `state_v2_no_migrate` (three little-endian u64s), which try
    /// swaps over open windows.
    const VERSION: u32 = if cfg!(any(feature = "state_v2", feature = "state_v2_no_migrate")) {
        2
    } else {
        crate::STATE_VERSION
    };

    fn to_bytes(counts: &Counts) -> Vec<u8> {
        if VERSION == 2 {
            [counts.male, counts.female, counts.other]
                .iter()
                .flat_map(|n| n.to_le_bytes())
                .collect()
        } else {
            counts.encode()
        }
    }

    fn from_bytes(data: &[u8]) -> Result<Counts, String> {
        if VERSION != 2 {
            return Counts::decode(data);
        }
        if data.len() != 24 {
            return Err(format!(
                "gender_window state v2 is 24 bytes, not {}",
                data.len()
            ));
        }
        let n = |i: usize| u64::from_le_bytes(data[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        Ok(Counts {
            male: n(0),
            female: n(1),
            other: n(2),
        })
    }

    fn decode(acc: &Accumulator) -> Result<Counts, String> {
        if acc.version != VERSION {
            return Err(format!(
                "gender_window state version {} is not supported (this build reads {VERSION})",
                acc.version
            ));
        }
        from_bytes(&acc.data)
    }

    fn encode(counts: &Counts) -> Accumulator {
        Accumulator {
            version: VERSION,
            data: to_bytes(counts),
        }
    }

    /// The `aggregator` export, for whichever world this build exports.
    macro_rules! aggregator {
        ($guest:path) => {
            impl $guest for GenderWindow {
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
                    add_values(acc, batch.iter().map(|r| &r.value[..]))
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
        };
    }

    aggregator!(sluice_plugin_sdk::WindowGuest);
    sluice_plugin_sdk::window::export_window!(GenderWindow with_types_in sluice_plugin_sdk::window);

    // `add` reads `gender` and nothing else: the host hands over just that field.
    #[cfg(not(feature = "no_projection"))]
    impl sluice_plugin_sdk::projection::exports::sluice::plugin::projection::Guest for GenderWindow {
        fn value_fields() -> Vec<String> {
            if cfg!(feature = "projection_twice") {
                return vec!["gender".into(), "gender".into()];
            }
            vec!["gender".into()]
        }

        fn add_projected(
            acc: Accumulator,
            values: Vec<u8>,
            ends: Vec<u32>,
            timestamps: Vec<i64>,
        ) -> Result<AddResult, String> {
            let batch = sluice_plugin_sdk::projected(&values, &ends, &timestamps)?;
            add_values(acc, batch.map(|(value, _)| value))
        }
    }
    #[cfg(not(feature = "no_projection"))]
    sluice_plugin_sdk::projection::export_projection!(GenderWindow with_types_in sluice_plugin_sdk::projection);

    /// Count each value's gender into `acc`; a value that cannot be read is rejected.
    fn add_values<'a>(
        acc: Accumulator,
        values: impl Iterator<Item = &'a [u8]>,
    ) -> Result<AddResult, String> {
        let mut counts = decode(&acc)?;
        let mut rejected = Vec::new();
        for (index, value) in values.enumerate() {
            if let Err(reason) = counts.add_json(value) {
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

    // The state_v2 test build also converts the shipped build's state.
    #[cfg(feature = "state_v2")]
    impl sluice_plugin_sdk::migrate::exports::sluice::plugin::migrator::Guest for GenderWindow {
        fn migrate(from_version: u32, data: Vec<u8>) -> Result<Accumulator, String> {
            match from_version {
                1 => Ok(encode(&Counts::decode(&data)?)),
                v => Err(format!("gender_window cannot migrate state version {v}")),
            }
        }
    }
    #[cfg(feature = "state_v2")]
    sluice_plugin_sdk::migrate::export_migrator!(GenderWindow with_types_in sluice_plugin_sdk::migrate);
}
