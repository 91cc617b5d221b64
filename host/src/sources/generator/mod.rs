//! `type = "generator"`: randomuser.me-shaped users made offline, so the quickstart,
//! the tests and the benchmarks run with no network. Seeded: the same seed gives the
//! same records.

mod users;

pub use users::{response, user};

use super::{SourceContext, SourceError, SplitMix64};
use crate::duration::Duration;
use crate::field_error::FieldError;
use crate::position::{Origin, Position};
use crate::record::{now_ms, record};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Same seed, same records.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Records to emit before stopping; unset means until stopped.
    pub count: Option<u64>,
    /// Records per second; unset means as fast as the pipeline takes them.
    pub rate: Option<f64>,
    /// Users per record: 1 emits a bare user object; more emits a whole API response
    /// (`{"results": [...], "info": {...}}`) like `?results=N`.
    #[serde(default = "one")]
    pub users_per_record: usize,
    /// Event time of record `i` is `start_time + i * event_interval`, making windows
    /// reproducible. Unset: each record's event time is the wall clock when emitted.
    pub event_interval: Option<Duration>,
    /// RFC 3339 start of event time when `event_interval` is set; default: now.
    pub start_time: Option<String>,
    /// Every Nth record is deliberately malformed (a field missing, or not JSON at
    /// all), to watch the dead-letter path work. Unset: none.
    pub poison_every: Option<u64>,
}

fn default_seed() -> u64 {
    42
}
fn one() -> usize {
    1
}

impl GeneratorConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        let err = |f: &str, m: &str| Err(FieldError::new(f.to_owned(), m.to_owned()));
        if let Some(rate) = self.rate {
            if !(rate > 0.0 && rate.is_finite()) {
                return err("rate", "must be a positive number of records per second");
            }
        }
        if let Some(rate) = self.rate.filter(|&r| r > 10_000_000.0) {
            return err(
                "rate",
                &format!("{rate} is over the most, 10000000 records per second"),
            );
        }
        // A record of 10,000 users is ~11 MB; more would only fill memory.
        if !(1..=10_000).contains(&self.users_per_record) {
            return err("users_per_record", "must be between 1 and 10000");
        }
        if self.poison_every == Some(0) {
            return err("poison_every", "must be at least 1 (or left out)");
        }
        if let Some(start) = &self.start_time {
            if chrono::DateTime::parse_from_rfc3339(start).is_err() {
                return err(
                    "start_time",
                    "must be an RFC 3339 time like \"2026-01-01T00:00:00Z\"",
                );
            }
        }
        Ok(())
    }

    fn start_ms(&self) -> i64 {
        self.start_time
            .as_deref()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map_or_else(now_ms, |t| t.timestamp_millis())
    }
}

/// The value of record `index`: a user, a response, or (when poisoned) garbage.
pub fn value(config: &GeneratorConfig, rng: &mut SplitMix64, index: u64) -> Vec<u8> {
    let mut v = if config.users_per_record == 1 {
        user(rng)
    } else {
        response(rng, config.users_per_record, config.seed, index + 1)
    };
    if let Some(n) = config.poison_every {
        if (index + 1).is_multiple_of(n) {
            if (index / n).is_multiple_of(2) {
                return b"{\"gender\": \"female\", \"name\": {\"first\": \"Trunc".to_vec();
            }
            let user = if v.get("results").is_some() {
                &mut v["results"][0]
            } else {
                &mut v
            };
            if let Some(obj) = user.as_object_mut() {
                obj.remove("email");
            }
        }
    }
    serde_json::to_vec(&v).expect("a Value always serializes")
}

pub async fn run(config: GeneratorConfig, ctx: SourceContext) {
    let partition = ctx.partition(Origin::Sequence {
        source: "generator".into(),
    });
    let mut rng = SplitMix64::new(config.seed);
    let start_ms = config.start_ms();
    let started = tokio::time::Instant::now();
    let mut index: u64 = 0;
    while config.count.is_none_or(|c| index < c) && !ctx.is_stopping() {
        if let Some(rate) = config.rate {
            // Pace by the clock, not by per-record sleeps: a sleep rounds up to a
            // millisecond or more, which would cap the rate well below what is asked.
            let due = started + std::time::Duration::from_secs_f64(index as f64 / rate);
            if due > tokio::time::Instant::now() {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = ctx.shutdown.cancelled() => break,
                }
            }
        }
        let timestamp = match config.event_interval {
            Some(step) => start_ms + index as i64 * step.as_millis_i64(),
            None => now_ms(),
        };
        let rec = record(value(&config, &mut rng, index), timestamp);
        if ctx
            .emit(rec, Position::new(partition, index))
            .await
            .is_err()
        {
            break;
        }
        index += 1;
    }
}

impl super::SourceConnector for GeneratorConfig {
    fn type_name(&self) -> &'static str {
        "generator"
    }

    fn kind(&self) -> super::SourceKind {
        super::SourceKind::Fresh
    }

    fn validate(&self) -> Result<(), FieldError> {
        GeneratorConfig::validate(self)
    }

    async fn run(self, ctx: SourceContext) -> Result<(), SourceError> {
        // Nothing to connect to.
        ctx.metrics.set_connected();
        run(self, ctx).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> GeneratorConfig {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn same_seed_same_records_other_seed_other_records() {
        let c = config("seed = 7");
        let run = |c: &GeneratorConfig| {
            let mut rng = SplitMix64::new(c.seed);
            (0..20).map(|i| value(c, &mut rng, i)).collect::<Vec<_>>()
        };
        assert_eq!(run(&c), run(&c));
        assert_ne!(run(&c), run(&config("seed = 8")));
    }

    #[test]
    fn users_have_the_api_quirks() {
        let c = config("seed = 1");
        let mut rng = SplitMix64::new(1);
        let users: Vec<serde_json::Value> = (0..400)
            .map(|i| serde_json::from_slice(&value(&c, &mut rng, i)).unwrap())
            .collect();
        let postcodes = users.iter().map(|u| &u["location"]["postcode"]);
        assert!(postcodes.clone().any(|p| p.is_number()));
        assert!(postcodes.clone().any(|p| p.is_string()));
        assert!(users
            .iter()
            .any(|u| !u["name"]["first"].as_str().unwrap().is_ascii()));
        assert!(users.iter().any(|u| u["id"]["value"].is_null()));
        for u in &users {
            let id = uuid::Uuid::parse_str(u["login"]["uuid"].as_str().unwrap()).unwrap();
            assert_eq!(id.get_version_num(), 4);
        }
    }

    #[test]
    fn responses_and_poison() {
        let c = config("users_per_record = 3\npoison_every = 2");
        let mut rng = SplitMix64::new(c.seed);
        let first: serde_json::Value = serde_json::from_slice(&value(&c, &mut rng, 0)).unwrap();
        assert_eq!(first["results"].as_array().unwrap().len(), 3);
        assert_eq!(first["info"]["results"], 3);
        assert!(serde_json::from_slice::<serde_json::Value>(&value(&c, &mut rng, 1)).is_err());
        let third: serde_json::Value = serde_json::from_slice(&value(&c, &mut rng, 3)).unwrap();
        assert!(third["results"][0].get("email").is_none());
    }
}
