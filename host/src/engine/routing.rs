//! Routes: a transform names one on a record (the `sluice.route` header), and only
//! the sinks that take it (`[[sinks]] route = "..."`) get the record. Records with no
//! route go to the sinks that take none (or `"default"`), as before routes existed; a
//! route no sink takes is a dead letter naming it.

use super::processor::SinkHandle;
use crate::dead_letter::DeadLetter;
use crate::record::{route_of, Batch};
use crate::sinks::DEFAULT_ROUTE;

impl SinkHandle {
    /// Whether this sink takes `route` ([`DEFAULT_ROUTE`]: records with none).
    pub fn takes(&self, route: &str) -> bool {
        self.routes.iter().any(|r| r == route)
    }
}

/// The batch's records by the route they name, each route's in their order. The
/// common case, no record naming one, is the batch as it is.
pub fn split(batch: Batch) -> Vec<(Option<String>, Batch)> {
    if !batch.records.iter().any(|r| route_of(r).is_some()) {
        return vec![(None, batch)];
    }
    let mut routes: Vec<(Option<String>, Batch)> = Vec::new();
    let read_at = batch.read_at;
    for (record, position) in batch.records.into_iter().zip(batch.positions) {
        let route = route_of(&record).map(|r| r.into_owned());
        let route = route.filter(|r| r != DEFAULT_ROUTE);
        let at = match routes.iter().position(|(r, _)| *r == route) {
            Some(at) => at,
            None => {
                let b = Batch {
                    read_at,
                    ..Batch::default()
                };
                routes.push((route, b));
                routes.len() - 1
            }
        };
        routes[at].1.push(record, position);
    }
    routes
}

/// Dead letters for records down a route no records sink takes (`windowed`: the
/// window has counted them already, which a replay of the dead letters would repeat).
pub fn untaken(route: &str, batch: Batch, sinks: &[SinkHandle], windowed: bool) -> Vec<DeadLetter> {
    let mut taken: Vec<&str> = sinks
        .iter()
        .filter(|s| s.input == crate::sinks::Input::Records)
        .flat_map(|s| s.routes.iter().map(String::as_str))
        .collect();
    taken.sort_unstable();
    taken.dedup();
    let mut reason = format!(
        "route `{route}`: no sink takes it (the sinks take {})",
        taken
            .iter()
            .map(|r| format!("`{r}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if windowed {
        reason.push_str(
            "; the window has counted the record already (a replay would count it again)",
        );
    }
    batch
        .records
        .into_iter()
        .zip(batch.positions)
        .map(|(record, position)| DeadLetter::now("route", route, record, position, reason.clone()))
        .collect()
}
