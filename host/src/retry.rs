//! The one retry policy every connector shares: exponential backoff with full jitter.
//! A leaf: imports nothing of the crate but the RNG.

use crate::duration::Duration;
use crate::field_error::FieldError;
use crate::rng::SplitMix64;
use serde::Deserialize;

/// `retry = { backoff = "200ms", max_backoff = "30s", max_retries = 10 }`.
///
/// Attempt `n` (1-based) waits a uniformly random time in `[0, min(max_backoff,
/// backoff * 2^(n-1)))` ("full jitter": many clients retrying one server spread out
/// instead of arriving together).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// The first wait; doubles each retry.
    pub backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
    /// Retries after the first attempt before the error is final.
    pub max_retries: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_millis(30_000),
            max_retries: 10,
        }
    }
}

impl RetryPolicy {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.backoff.is_zero() {
            return Err(FieldError::new("backoff", "must be more than 0"));
        }
        if self.max_backoff < self.backoff {
            return Err(FieldError::new(
                "max_backoff",
                format!("must be at least `backoff` ({})", self.backoff),
            ));
        }
        if self.max_retries > 1000 {
            return Err(FieldError::new("max_retries", "must be at most 1000"));
        }
        Ok(())
    }

    /// A fresh sequence of waits for one operation.
    pub fn start(&self) -> Backoff {
        Backoff {
            policy: *self,
            retries: 0,
            jitter: SplitMix64::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
            ),
        }
    }
}

/// The waits of one operation's retries.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    retries: u32,
    jitter: SplitMix64,
}

impl Backoff {
    /// How long to wait before the next retry, or `None` once the retries are spent.
    pub fn next_wait(&mut self) -> Option<std::time::Duration> {
        if self.retries >= self.policy.max_retries {
            return None;
        }
        self.retries += 1;
        let exp = self
            .policy
            .backoff
            .saturating_mul(1 << (self.retries - 1).min(20));
        Some(
            exp.min(*self.policy.max_backoff)
                .mul_f64(self.jitter.unit()),
        )
    }

    /// Retries made so far.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    pub fn max_retries(&self) -> u32 {
        self.policy.max_retries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_stay_under_the_cap_and_run_out() {
        let policy = RetryPolicy {
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            max_retries: 5,
        };
        let mut b = policy.start();
        let caps = [100, 200, 350, 350, 350];
        for cap in caps {
            let wait = b.next_wait().unwrap();
            assert!(
                wait < std::time::Duration::from_millis(cap),
                "{wait:?} >= {cap}ms"
            );
        }
        assert_eq!(b.next_wait(), None);
        assert_eq!(b.retries(), 5);
    }
}
