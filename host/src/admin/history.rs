//! What `/status` adds to a pipeline's counters: samples taken every second, for
//! rates and the page's sparklines.

use crate::metrics::{Counters, Metrics};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// Samples kept per pipeline: five minutes at one a second.
const KEEP: usize = 300;
/// Rates are over about this many seconds.
const RATE_OVER: usize = 5;

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// ms since the epoch.
    pub t_ms: i64,
    pub records_in: u64,
    pub records_out: u64,
    pub dead_letters: u64,
    pub lag: i64,
}

/// Per second, over the last few seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rates {
    pub records_in: f64,
    pub records_out: f64,
    pub dead_letters: f64,
}

/// Samples with the instant each was taken (rates are over real time).
type Samples = VecDeque<(Instant, Sample)>;

/// Every pipeline's samples.
pub struct History {
    pipelines: Vec<(Arc<Metrics>, Samples)>,
}

impl History {
    pub fn new(pipelines: Vec<Arc<Metrics>>) -> Self {
        let mut me = History {
            pipelines: pipelines
                .into_iter()
                .map(|m| (m, VecDeque::new()))
                .collect(),
        };
        me.sample();
        me
    }

    pub fn sample(&mut self) {
        let now = Instant::now();
        let t_ms = crate::record::now_ms();
        for (metrics, samples) in &mut self.pipelines {
            let s: Counters = metrics.snapshot();
            if samples.len() == KEEP {
                samples.pop_front();
            }
            samples.push_back((
                now,
                Sample {
                    t_ms,
                    records_in: s.records_in,
                    records_out: s.records_out,
                    dead_letters: s.dead_letters,
                    lag: s.total_lag(),
                },
            ));
        }
    }

    pub fn metrics(&self) -> impl Iterator<Item = &Arc<Metrics>> {
        self.pipelines.iter().map(|(m, _)| m)
    }

    /// A pipeline's samples, oldest first, and its rates now.
    pub fn of(&self, index: usize) -> (Vec<Sample>, Rates) {
        let Some((metrics, samples)) = self.pipelines.get(index) else {
            return (Vec::new(), Rates::default());
        };
        // Against the live counters, so a rate is never a second stale.
        let now = metrics.snapshot();
        let back = samples.len().saturating_sub(RATE_OVER);
        let rates = match samples.get(back) {
            Some((at, then)) if at.elapsed().as_secs_f64() > 0.2 => {
                let secs = at.elapsed().as_secs_f64();
                let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
                Rates {
                    records_in: per(now.records_in, then.records_in),
                    records_out: per(now.records_out, then.records_out),
                    dead_letters: per(now.dead_letters, then.dead_letters),
                }
            }
            _ => Rates::default(),
        };
        (samples.iter().map(|(_, s)| s.clone()).collect(), rates)
    }
}
