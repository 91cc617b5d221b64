//! Whether records fit what the registry-backed sinks write (a Kafka sink with
//! `format = "avro"`/`"json_schema"` and its `value_schema`): a swap's canary output is
//! held to it, so that a new version that would break a topic's schema is refused
//! before it writes a record, not found out in the dead letters.

use super::processor::SinkHandle;
use crate::record::{is_null_value, route_of, Batch};
use crate::sinks::{Input, DEFAULT_ROUTE};

/// Whether any sink has a value schema (else there is nothing to check).
pub(super) fn any(sinks: &[SinkHandle]) -> bool {
    sinks.iter().any(|s| s.value_schema.is_some())
}

/// How many of the batch's records a sink that takes them could not write, and the
/// first one's reason (naming the sink and the field).
pub(super) fn misfits(sinks: &[SinkHandle], batch: &Batch) -> (u64, Option<String>) {
    let mut count = 0;
    let mut first = None;
    let mut scratch = Vec::new();
    for record in &batch.records {
        if is_null_value(record) {
            continue;
        }
        let route = route_of(record);
        let route = route.as_deref().unwrap_or(DEFAULT_ROUTE);
        let fits = sinks
            .iter()
            .filter(|s| s.input == Input::Records && s.takes(route))
            .filter_map(|s| s.value_schema.as_ref().map(|schema| (s, schema)))
            .try_for_each(|(s, schema)| {
                scratch.clear();
                schema
                    .encode(&record.value, &mut scratch)
                    .map_err(|why| format!("{}: {why}", s.name))
            });
        if let Err(why) = fits {
            count += 1;
            first.get_or_insert(why);
        }
    }
    (count, first)
}
