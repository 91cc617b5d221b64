//! The HTTP ingest source's series (requests by status, their latency, records
//! accepted and refused) and what `/status` shows of it.

use super::families::*;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An HTTP ingest source as `/status` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestStatus {
    /// `http://127.0.0.1:5000/api/data`.
    pub url: String,
    /// `durable` or `accepted`.
    pub ack: String,
    /// Answers by status code (`"200"`, `"422"`, `"503"`, ...).
    pub requests: BTreeMap<String, u64>,
    pub records_accepted: u64,
    pub records_refused: u64,
    /// Requests being read, checked or waiting for their records to be stored.
    pub in_flight: u64,
}

/// Hands to an ingest source's series, taken once at its start.
#[derive(Clone)]
pub struct IngestMetrics {
    families: Arc<Families>,
    pipeline: String,
    seconds: Histogram,
    accepted: Counter,
    refused: Counter,
    shown: Arc<Shown>,
}

/// What `/status` reads.
#[derive(Default)]
pub(super) struct Shown {
    status: Mutex<IngestStatus>,
    in_flight: AtomicU64,
}

impl Shown {
    pub(super) fn status(&self) -> IngestStatus {
        let mut s = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        s.in_flight = self.in_flight.load(Relaxed);
        s
    }
}

impl IngestMetrics {
    pub(super) fn new(families: Arc<Families>, pipeline: &str, url: &str, ack: &str) -> Self {
        let p = PipelineLabels {
            pipeline: pipeline.to_owned(),
        };
        let outcome = |o: &str| {
            families
                .ingest_records
                .get_or_create(&IngestRecordLabels {
                    pipeline: pipeline.to_owned(),
                    outcome: o.to_owned(),
                })
                .clone()
        };
        let shown = Shown::default();
        {
            let mut s = shown.status.lock().unwrap_or_else(|e| e.into_inner());
            s.url = url.to_owned();
            s.ack = ack.to_owned();
        }
        IngestMetrics {
            seconds: families.ingest_seconds.get_or_create(&p).clone(),
            accepted: outcome("accepted"),
            refused: outcome("refused"),
            families: families.clone(),
            pipeline: pipeline.to_owned(),
            shown: Arc::new(shown),
        }
    }

    pub(super) fn shown(&self) -> Arc<Shown> {
        self.shown.clone()
    }

    /// A request answered with `status`, `took` after its headers arrived.
    pub fn answered(&self, status: u16, took: Duration) {
        self.families
            .ingest_requests
            .get_or_create(&IngestStatusLabels {
                pipeline: self.pipeline.clone(),
                status: status.to_string(),
            })
            .inc();
        self.seconds.observe(took.as_secs_f64());
        let mut s = self.shown.status.lock().unwrap_or_else(|e| e.into_inner());
        *s.requests.entry(status.to_string()).or_default() += 1;
    }

    pub fn accepted(&self, records: u64) {
        self.accepted.inc_by(records);
        let mut s = self.shown.status.lock().unwrap_or_else(|e| e.into_inner());
        s.records_accepted += records;
    }

    pub fn refused(&self, records: u64) {
        self.refused.inc_by(records);
        let mut s = self.shown.status.lock().unwrap_or_else(|e| e.into_inner());
        s.records_refused += records;
    }

    /// A request started (`true`) or was answered (`false`).
    pub fn in_flight(&self, started: bool) {
        if started {
            self.shown.in_flight.fetch_add(1, Relaxed);
        } else {
            self.shown.in_flight.fetch_sub(1, Relaxed);
        }
    }
}
