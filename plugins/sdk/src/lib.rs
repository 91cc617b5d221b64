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

/// Bindings for the optional `projection` export (the `window-projection` world): a
/// window plugin that reads only some top-level fields of each record's value names
/// them, and the host hands it just those, a batch in one list (see the WIT).
/// Implement `projection::exports::sluice::plugin::projection::Guest` (reading the
/// batch with [`projected`]) and export it with
/// `sluice_plugin_sdk::projection::export_projection!(MyWindow with_types_in
/// sluice_plugin_sdk::projection)` beside `export_window!`.
pub mod projection {
    wit_bindgen::generate!({
        world: "window-projection",
        path: "../../wit",
        with: {
            "sluice:plugin/types@0.1.0": crate::transform::sluice::plugin::types,
        },
        pub_export_macro: true,
        export_macro_name: "export_projection",
        default_bindings_module: "sluice_plugin_sdk::projection",
    });
}

/// The records of an `add-projected` batch: each one's value and event time, in
/// order; `Err` if `ends` and `timestamps` do not describe `values` (a host fault).
pub fn projected<'a>(
    values: &'a [u8],
    ends: &'a [u32],
    timestamps: &'a [i64],
) -> Result<impl Iterator<Item = (&'a [u8], i64)> + 'a, String> {
    let ordered = ends.windows(2).all(|w| w[0] <= w[1]);
    let fits = ends.last().is_none_or(|&end| end as usize == values.len());
    if !ordered || !fits || ends.len() != timestamps.len() {
        return Err(format!(
            "a projected batch of {} bytes with {} ends and {} event times does not add up",
            values.len(),
            ends.len(),
            timestamps.len()
        ));
    }
    let starts = std::iter::once(0).chain(ends.iter().map(|&e| e as usize));
    Ok(starts
        .zip(ends)
        .zip(timestamps)
        .map(|((start, &end), &ts)| (&values[start..end as usize], ts)))
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
            "sluice:plugin/lookup@0.1.0": crate::transform::sluice::plugin::lookup,
        },
        pub_export_macro: true,
        export_macro_name: "export_window",
        default_bindings_module: "sluice_plugin_sdk::window",
    });
}

/// Bindings for the `stateful` world (a transform with a state per record key, kept
/// by the host). Shares the record types and the logger with `transform`.
pub mod stateful {
    wit_bindgen::generate!({
        world: "stateful",
        path: "../../wit",
        with: {
            "sluice:plugin/types@0.1.0": crate::transform::sluice::plugin::types,
            "sluice:plugin/log@0.1.0": crate::transform::sluice::plugin::log,
            "sluice:plugin/lookup@0.1.0": crate::transform::sluice::plugin::lookup,
        },
        pub_export_macro: true,
        export_macro_name: "export_stateful",
        default_bindings_module: "sluice_plugin_sdk::stateful",
    });
}

pub use stateful::exports::sluice::plugin::stateful_transformer::{KeyState, Processed};

pub use transform::sluice::plugin::types::{
    Accumulator, AddResult, Header, Record, Rejected, WindowBounds,
};

/// The header that sends a record down a route: sinks with `route = "..."` take it
/// (the host reads it after the last transform; it is never written out).
pub const ROUTE_HEADER: &str = "sluice.route";

/// Send `record` down `route` (in place of any route it named before).
pub fn set_route(record: &mut Record, route: &str) {
    record.headers.retain(|h| h.name != ROUTE_HEADER);
    record.headers.push(Header {
        name: ROUTE_HEADER.into(),
        value: route.as_bytes().to_vec(),
    });
}

/// The guest trait of the `window` world, for `impl ... for MyWindow`.
pub use window::exports::sluice::plugin::aggregator::Guest as WindowGuest;

/// The pipeline's lookup tables (`[[tables]]`), held by the host.
pub mod lookup {
    /// The row stored under `key` in table `table` (`None`: no such row). A table the
    /// pipeline does not declare traps, naming it.
    pub fn get(table: &str, key: &[u8]) -> Option<Vec<u8>> {
        crate::transform::sluice::plugin::lookup::get(table, key)
    }
}

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

/// A stateful transform written one record at a time: `stateful_plugin!` turns it
/// into the batched `stateful-transformer` export, carrying each key's state from
/// record to record within a batch and returning what changed.
pub trait KeyedTransform {
    /// Check and keep the plugin's configuration (a JSON object as text).
    fn init(_config: &str) -> Result<(), String> {
        Ok(())
    }

    /// Turn one record into zero, one or many records, given its key's state (`None`:
    /// none yet). Change `state` to update it (`None` deletes it). A record without a
    /// key gets a state of its own that is thrown away afterwards. When this returns
    /// an error, the changes it made to `state` are thrown away too: a record that
    /// failed has no effect on the state.
    fn transform(record: Record, state: &mut Option<Accumulator>) -> Result<Vec<Record>, String>;
}

fn same_state(a: &Option<Accumulator>, b: &Option<Accumulator>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.version == b.version && a.data == b.data,
        _ => false,
    }
}

/// The batched call `stateful_plugin!` exports: each record through `T` with its
/// key's state as it stands after the records before it.
pub fn run_keyed<T: KeyedTransform>(batch: Vec<Record>, states: Vec<KeyState>) -> Processed {
    // By key: its state as it stands, and whether it changed.
    let mut slots: std::collections::HashMap<Vec<u8>, (Option<Accumulator>, bool)> = states
        .into_iter()
        .map(|s| (s.key, (s.state, false)))
        .collect();
    let mut outcomes = Vec::with_capacity(batch.len());
    for record in batch {
        let slot = record.key.as_ref().and_then(|k| slots.get_mut(k));
        let Some((current, changed)) = slot else {
            // No key (or, against the contract, a key the host gave no state for):
            // a state of its own, thrown away after.
            outcomes.push(T::transform(record, &mut None));
            continue;
        };
        let before = current.clone();
        let outcome = T::transform(record, current);
        if outcome.is_err() {
            *current = before;
        } else if !same_state(&before, current) {
            *changed = true;
        }
        outcomes.push(outcome);
    }
    let updates = slots
        .into_iter()
        .filter(|(_, (_, changed))| *changed)
        .map(|(key, (state, _))| KeyState { key, state })
        .collect();
    Processed { outcomes, updates }
}

/// Export a [`KeyedTransform`] as this component's `stateful-transformer` interface.
#[macro_export]
macro_rules! stateful_plugin {
    ($ty:ty) => {
        struct __SluiceStatefulExport;

        impl $crate::stateful::exports::sluice::plugin::stateful_transformer::Guest
            for __SluiceStatefulExport
        {
            fn init(config: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                <$ty as $crate::KeyedTransform>::init(&config)
            }

            fn process(
                batch: ::std::vec::Vec<$crate::Record>,
                states: ::std::vec::Vec<$crate::KeyState>,
            ) -> $crate::Processed {
                $crate::run_keyed::<$ty>(batch, states)
            }
        }

        $crate::stateful::export_stateful!(__SluiceStatefulExport with_types_in $crate::stateful);
    };
}

/// Reading one field of a JSON record without parsing the rest: what a plugin that
/// needs only `gender`, or a host that needs only an event time, does for every
/// record. Strings are skipped 16 bytes at a time (SSE2 natively, SIMD128 in
/// WebAssembly: build with `-C target-feature=+simd128`).
#[cfg(test)]
mod projected_tests {
    #[test]
    fn a_projected_batch_reads_back_or_is_refused() {
        let values = b"{}{\"a\":1}x";
        let read: Vec<(&[u8], i64)> = super::projected(values, &[2, 9, 10], &[5, 6, 7])
            .unwrap()
            .collect();
        assert_eq!(
            read,
            [(&b"{}"[..], 5), (&br#"{"a":1}"#[..], 6), (&b"x"[..], 7)]
        );
        assert_eq!(super::projected(b"", &[], &[]).unwrap().count(), 0);
        for (ends, timestamps) in [
            (&[2, 9][..], &[5, 6][..]),
            (&[9, 2, 10], &[5, 6, 7]),
            (&[2, 9, 11], &[5, 6, 7]),
            (&[2, 9, 10], &[5, 6]),
        ] {
            assert!(super::projected(values, ends, timestamps).is_err());
        }
    }
}

pub mod json {
    /// Where the value of the top-level key `key` starts in a JSON object (the last
    /// one, if the key repeats, as a full parse keeps it), found by a scan that skips
    /// nested values and strings without checking them. `None` when the scan cannot
    /// tell: not an object, an escaped key (which might be this one), a broken
    /// structure. Then parse the record in full, which also says what is wrong.
    /// `Some(None)`: a well-formed object without the key.
    pub fn top_level_value(json: &[u8], key: &[u8]) -> Option<Option<usize>> {
        scan(json, key, false)
    }

    /// [`top_level_value`], quicker for the usual record: the scan stops at the first
    /// top-level `key` when nothing after it can be a second copy, that is when the
    /// bytes after it hold no `"key"` at all and no backslash (an escaped key might
    /// spell it), and the record ends as an object does (`}`, then whitespace). One
    /// SIMD pass rules that out. The bytes after the key are then not checked for
    /// their structure (the strings and numbers of a record never are here); anything
    /// else takes [`top_level_value`]'s whole scan. gender_window reads `gender` so
    /// (the whole scan was 5% of the seeds' job's CPU), and the host its event times.
    pub fn top_level_value_quick(json: &[u8], key: &[u8]) -> Option<Option<usize>> {
        top_level_value_quick_with(json, key, |rest| may_repeat(rest, key))
    }

    /// [`top_level_value_quick`] with the caller's own test for a second copy in the
    /// bytes after the first: it must say yes whenever they hold a backslash or
    /// `"key"`. A native host has wider searches than these 16-byte blocks (the
    /// memchr crate's: 2.5% fewer instructions for the seeds' job's event times).
    pub fn top_level_value_quick_with(
        json: &[u8],
        key: &[u8],
        may_repeat: impl FnOnce(&[u8]) -> bool,
    ) -> Option<Option<usize>> {
        match scan(json, key, true) {
            Some(Some(at)) => {
                let rest = &json[at..];
                if rest.trim_ascii_end().ends_with(b"}") && !may_repeat(rest) {
                    return Some(Some(at));
                }
                top_level_value(json, key)
            }
            // Scanned to the end: a well-formed object without the key.
            Some(None) => Some(None),
            None => top_level_value(json, key),
        }
    }

    /// Whether `rest` holds a backslash or `"key"` (a quote, the key, a quote).
    fn may_repeat(rest: &[u8], key: &[u8]) -> bool {
        // The quote `key.len() + 1` bytes after a quote closes a `"key"`: two blocks,
        // that far apart, compared at once; each hit then checked byte by byte.
        let gap = key.len() + 1;
        let hit = |at: usize| {
            rest[at] == b'\\'
                || (rest[at] == b'"'
                    && rest.get(at + gap) == Some(&b'"')
                    && &rest[at + 1..at + gap] == key)
        };
        let mut at = 0;
        if block::SIMD {
            while let (Some(a), Some(b)) =
                (rest.get(at..at + 16), rest.get(at + gap..at + gap + 16))
            {
                let mut mask = block::backslash_or_quote_pair(
                    a.try_into().expect("16 bytes"),
                    b.try_into().expect("16 bytes"),
                );
                while mask != 0 {
                    if hit(at + mask.trailing_zeros() as usize) {
                        return true;
                    }
                    mask &= mask - 1;
                }
                at += 16;
            }
        }
        (at..rest.len()).any(hit)
    }

    fn scan(json: &[u8], key: &[u8], first: bool) -> Option<Option<usize>> {
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
                            if first {
                                return Some(Some(j + 1));
                            }
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

    /// Where the JSON value starting at `at` (after optional whitespace) ends, one past
    /// its last byte, found as [`top_level_value`]'s scan finds it: strings skipped to
    /// their closing quote, brackets counted, nothing else checked. A scalar (a
    /// number, `true`, `false`, `null`) runs to the next comma, bracket or whitespace.
    /// `None`: no value there, or one that does not end.
    pub fn value_end(json: &[u8], at: usize) -> Option<usize> {
        let mut i = at
            + json
                .get(at..)?
                .iter()
                .position(|b| !b.is_ascii_whitespace())?;
        let mut depth = 0usize;
        loop {
            match *json.get(i)? {
                b'"' => i = string_end(json, i + 1)? + 1,
                b'{' | b'[' => {
                    depth += 1;
                    i += 1;
                }
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    i += 1;
                }
                b',' | b':' if depth == 0 => return None,
                _ if depth == 0 => {
                    let len = json[i..]
                        .iter()
                        .position(|&b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                        .unwrap_or(json.len() - i);
                    return Some(i + len);
                }
                _ => i += 1,
            }
            if depth == 0 {
                return Some(i);
            }
        }
    }

    /// The index of the quote that ends the string whose first byte is at `from`.
    pub fn string_end(json: &[u8], mut from: usize) -> Option<usize> {
        loop {
            let at = from + find_quote_or_backslash(json.get(from..)?)?;
            if json[at] == b'"' {
                return Some(at);
            }
            from = at + 2; // an escape: the escaped byte is not the end
        }
    }

    /// Where the first `"` or `\\` in `s` is.
    #[inline]
    pub fn find_quote_or_backslash(s: &[u8]) -> Option<usize> {
        found(s, quote_or_backslash_at(s))
    }

    /// Where the first `"`, `\\` or control character (below 0x20: never raw in a
    /// JSON string) in `s` is: the end of a string, or a place that needs a closer look.
    #[inline]
    pub fn find_string_special(s: &[u8]) -> Option<usize> {
        found(s, string_special_at(s))
    }

    // The searches themselves stay out of line (inlined into every caller, the job
    // ran 11.5% more instructions), and answer a plain index, `s.len()` for none: an
    // `Option<usize>` comes back from a WebAssembly function through memory, a
    // `usize` in a register (1.9% fewer instructions for the seeds' job).

    #[inline]
    fn found(s: &[u8], at: usize) -> Option<usize> {
        (at < s.len()).then_some(at)
    }

    // Each search looks at the first block in a function of its own, with no loop:
    // most strings end there, and such a function is short in WebAssembly (no
    // registers saved, no CPU-deadline check at a loop's head). The rest, out of line.

    #[inline(never)]
    fn quote_or_backslash_at(s: &[u8]) -> usize {
        if let Some(first) = s.first_chunk::<16>() {
            let mask = block::quote_or_backslash(first);
            if block::SIMD {
                if mask != 0 {
                    return mask.trailing_zeros() as usize;
                }
                // The first block is done with: the search goes on after it.
                return 16 + quote_or_backslash_after(&s[16..]);
            }
        }
        quote_or_backslash_after(s)
    }

    #[inline(never)]
    fn quote_or_backslash_after(s: &[u8]) -> usize {
        find(s, block::quote_or_backslash, |b| b == b'"' || b == b'\\').unwrap_or(s.len())
    }

    #[inline(never)]
    fn string_special_at(s: &[u8]) -> usize {
        if let Some(first) = s.first_chunk::<16>() {
            let mask = block::string_special(first);
            if block::SIMD {
                if mask != 0 {
                    return mask.trailing_zeros() as usize;
                }
                // The first block is done with: the search goes on after it.
                return 16 + string_special_after(&s[16..]);
            }
        }
        string_special_after(s)
    }

    #[inline(never)]
    fn string_special_after(s: &[u8]) -> usize {
        find(s, block::string_special, |b| {
            b == b'"' || b == b'\\' || b < 0x20
        })
        .unwrap_or(s.len())
    }

    /// Blocks of 16 with `block` (a bit per byte that matches), the rest one by one.
    /// Inlined: strings are short, and most searches end in their first block.
    #[inline(always)]
    fn find(s: &[u8], block: impl Fn(&[u8; 16]) -> u32, one: impl Fn(u8) -> bool) -> Option<usize> {
        if !block::SIMD {
            return s.iter().position(|&b| one(b));
        }
        let mut at = 0;
        while let Some(chunk) = s.get(at..at + 16) {
            let mask = block(chunk.try_into().expect("16 bytes"));
            if mask != 0 {
                return Some(at + mask.trailing_zeros() as usize);
            }
            at += 16;
        }
        s[at..].iter().position(|&b| one(b)).map(|i| at + i)
    }

    /// One comparison of each kind for 16 bytes at once.
    mod block {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        mod imp {
            use core::arch::wasm32::*;

            pub const SIMD: bool = true;

            fn load(b: &[u8; 16]) -> v128 {
                // SAFETY: 16 readable bytes; v128_load takes them unaligned.
                unsafe { v128_load(b.as_ptr().cast()) }
            }

            #[inline(always)]
            pub fn quote_or_backslash(b: &[u8; 16]) -> u32 {
                let v = load(b);
                let hit = v128_or(
                    u8x16_eq(v, u8x16_splat(b'"')),
                    u8x16_eq(v, u8x16_splat(b'\\')),
                );
                u8x16_bitmask(hit) as u32
            }

            /// `v < 0x20` as `min(v, 0x1f) == v`: x86 has no unsigned compare, and
            /// `u8x16_lt` costs two more instructions there.
            #[inline(always)]
            fn below_0x20(v: v128) -> v128 {
                u8x16_eq(u8x16_min(v, u8x16_splat(0x1f)), v)
            }

            /// One mask for a quote, a backslash or a control character.
            #[inline(always)]
            pub fn string_special(b: &[u8; 16]) -> u32 {
                let v = load(b);
                let hit = v128_or(
                    v128_or(
                        u8x16_eq(v, u8x16_splat(b'"')),
                        u8x16_eq(v, u8x16_splat(b'\\')),
                    ),
                    below_0x20(v),
                );
                u8x16_bitmask(hit) as u32
            }

            #[inline(always)]
            pub fn backslash_or_quote_pair(a: &[u8; 16], b: &[u8; 16]) -> u32 {
                let (a, b) = (load(a), load(b));
                let quote = u8x16_splat(b'"');
                let hit = v128_or(
                    u8x16_eq(a, u8x16_splat(b'\\')),
                    v128_and(u8x16_eq(a, quote), u8x16_eq(b, quote)),
                );
                u8x16_bitmask(hit) as u32
            }
        }

        #[cfg(target_arch = "x86_64")]
        mod imp {
            use core::arch::x86_64::*;

            pub const SIMD: bool = true;

            // SAFETY (all below): SSE2 is part of x86_64; 16 readable bytes, loaded
            // unaligned.
            #[inline(always)]
            pub fn quote_or_backslash(b: &[u8; 16]) -> u32 {
                unsafe {
                    let v = _mm_loadu_si128(b.as_ptr().cast());
                    let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
                    let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
                    _mm_movemask_epi8(_mm_or_si128(quote, backslash)) as u32
                }
            }

            #[inline(always)]
            pub fn control(b: &[u8; 16]) -> u32 {
                unsafe {
                    let v = _mm_loadu_si128(b.as_ptr().cast());
                    // v <= 0x1f, unsigned: max(v, 0x1f) == 0x1f.
                    let low = _mm_set1_epi8(0x1f);
                    _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(v, low), low)) as u32
                }
            }

            #[inline(always)]
            pub fn backslash_or_quote_pair(a: &[u8; 16], b: &[u8; 16]) -> u32 {
                unsafe {
                    let a = _mm_loadu_si128(a.as_ptr().cast());
                    let b = _mm_loadu_si128(b.as_ptr().cast());
                    let quote = _mm_set1_epi8(b'"' as i8);
                    let backslash = _mm_cmpeq_epi8(a, _mm_set1_epi8(b'\\' as i8));
                    let pair = _mm_and_si128(_mm_cmpeq_epi8(a, quote), _mm_cmpeq_epi8(b, quote));
                    _mm_movemask_epi8(_mm_or_si128(backslash, pair)) as u32
                }
            }
        }

        #[cfg(not(any(
            all(target_arch = "wasm32", target_feature = "simd128"),
            target_arch = "x86_64"
        )))]
        mod imp {
            /// Without SIMD, a byte at a time beats building masks: `find` does that,
            /// and these only keep its one code path compiling.
            pub const SIMD: bool = false;

            fn mask(b: &[u8; 16], hit: impl Fn(u8) -> bool) -> u32 {
                b.iter()
                    .enumerate()
                    .fold(0, |m, (i, &c)| m | (u32::from(hit(c)) << i))
            }
            pub fn quote_or_backslash(b: &[u8; 16]) -> u32 {
                mask(b, |c| c == b'"' || c == b'\\')
            }
            pub fn control(b: &[u8; 16]) -> u32 {
                mask(b, |c| c < 0x20)
            }
            pub fn backslash_or_quote_pair(a: &[u8; 16], b: &[u8; 16]) -> u32 {
                mask(a, |c| c == b'\\') | (mask(a, |c| c == b'"') & mask(b, |c| c == b'"'))
            }
        }

        pub use imp::{backslash_or_quote_pair, quote_or_backslash, SIMD};

        /// A quote, a backslash or a control character (below 0x20).
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        pub use imp::string_special;

        /// A quote, a backslash or a control character (below 0x20).
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        #[inline(always)]
        pub fn string_special(b: &[u8; 16]) -> u32 {
            quote_or_backslash(b) | imp::control(b)
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
        fn finders_see_every_position_and_the_tail() {
            for len in 0..40 {
                for at in 0..len {
                    for (byte, special_only) in [(b'"', false), (b'\\', false), (0x1f, true)] {
                        let mut s = vec![b'a'; len];
                        s[at] = byte;
                        assert_eq!(find_string_special(&s), Some(at), "{len} {at} {byte}");
                        let want = (!special_only).then_some(at);
                        assert_eq!(find_quote_or_backslash(&s), want, "{len} {at} {byte}");
                    }
                }
                let plain = vec![0x20u8; len];
                assert_eq!(find_string_special(&plain), None);
                assert_eq!(find_quote_or_backslash(&[0xffu8; 40][..len]), None);
            }
        }

        #[test]
        fn a_value_ends_where_its_text_does() {
            let j = br#"{"s": "a\"}", "n": -1.5e3, "t": true, "o": {"k": [1, "]"]}, "a": [], "z":null}"#;
            let value = |key: &[u8]| {
                let at = top_level_value(j, key).unwrap().unwrap();
                let end = value_end(j, at).unwrap();
                std::str::from_utf8(&j[at..end])
                    .unwrap()
                    .trim_start()
                    .to_owned()
            };
            assert_eq!(value(b"s"), r#""a\"}""#);
            assert_eq!(value(b"n"), "-1.5e3");
            assert_eq!(value(b"t"), "true");
            assert_eq!(value(b"o"), r#"{"k": [1, "]"]}"#);
            assert_eq!(value(b"a"), "[]");
            assert_eq!(value(b"z"), "null");
            for broken in [
                &b""[..],
                b"  ",
                b"\"abc",
                b"{\"k\": [1",
                b"]",
                b",",
                b"[1]]",
            ] {
                let end = value_end(broken, 0);
                assert!(end.is_none() || broken == b"[1]]", "{broken:?}: {end:?}");
            }
            assert_eq!(value_end(b"[1]]", 0), Some(3));
            assert_eq!(value_end(b"7", 0), Some(1));
        }

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
            for quick in [
                &br#"{"k": "v", "a": "}\"{", "z": [1, {"k": 2}]}"#[..],
                br#"{"k": 1, "b": "\u006b"}"#,
                br#"{"k": 1, "k": 2}"#,
                br#"{"k":"a","xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx":"k","k":"b"}"#,
                br#"{"k": 1} x"#,
                br#"{"a": 1}"#,
                br#"{"a": {"k": 1}}"#,
                br#"{"k": 1"#,
                br#"[1]"#,
            ] {
                let whole = top_level_value(quick, b"k");
                assert_eq!(top_level_value_quick(quick, b"k"), whole, "{quick:?}");
            }
            // Every place a backslash or a second "k" can take, across block bounds.
            for len in 0..48 {
                for at in 0..len {
                    let mut rest = vec![b' '; len];
                    rest[at] = b'\\';
                    assert!(may_repeat(&rest, b"k"), "{len} {at}");
                    if at + 3 <= len {
                        let mut rest = vec![b' '; len];
                        rest[at..at + 3].copy_from_slice(b"\"k\"");
                        assert!(may_repeat(&rest, b"k"), "{len} {at}");
                        rest[at + 1] = b'j';
                        assert!(!may_repeat(&rest, b"k"), "{len} {at}");
                    }
                }
            }
            let last = br#"{"k": "a", "k": "b"}"#;
            assert_eq!(
                plain_string(last, top_level_value(last, b"k").unwrap().unwrap()),
                Some(&b"b"[..])
            );
        }
    }
}
