//! What a running pipeline counts and measures, in Prometheus' data model
//! (prometheus-client): served at the admin listener's `/metrics`, read by the
//! progress line, the summary line and `/status`. A leaf: imports nothing of the
//! crate.
//!
//! The hot counters are handles taken once (an atomic add each, as plain atomics
//! would be); labelled series are looked up per batch, never per record. With
//! detail off ([`Metrics::set_detailed`], no admin listener) the histograms and the
//! clock reads behind them are skipped, the counters kept.
//!
//! - [`families`]: the Prometheus families and their labels;
//! - [`live`]: one pipeline's handles ([`Metrics`]) and its stages' and sinks';
//! - [`status`]: the plain data `/status` and the summary line show;
//! - [`ingest`]: the HTTP ingest source's series and status.

mod families;
mod ingest;
mod live;
mod status;

pub use families::*;
pub use ingest::{IngestMetrics, IngestStatus};
pub use live::*;
pub use status::*;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    #[test]
    fn two_pipelines_share_one_family_per_name() {
        let families = Arc::new(Families::new());
        let a = Metrics::new("a", families.clone());
        let b = Metrics::new("b", families.clone());
        a.add_in(3);
        b.add_in(5);
        a.add_dead("transform", "plugin_error", 2, None);
        let text = families.encode();
        assert_eq!(text.matches("# TYPE sluice_records_in counter").count(), 1);
        assert!(
            text.contains("sluice_records_in_total{pipeline=\"a\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("sluice_records_in_total{pipeline=\"b\"} 5"),
            "{text}"
        );
        assert!(text.contains(
            "sluice_dead_letters_total{pipeline=\"a\",stage=\"transform\",reason=\"plugin_error\"} 2"
        ));
        assert_eq!(a.snapshot().dead_letters, 2);
    }

    #[test]
    fn partitions_gone_leave_the_gauges() {
        let m = Metrics::default();
        m.set_lag(BTreeMap::from([("t[0]".into(), 5), ("t[1]".into(), 7)]));
        m.set_lag(BTreeMap::from([("t[1]".into(), 2)]));
        let text = m.families.encode();
        assert!(!text.contains("partition=\"t[0]\""), "{text}");
        assert!(text.contains("partition=\"t[1]\"} 2"), "{text}");
    }
}
