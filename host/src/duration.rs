//! A duration written the human way in TOML. A leaf: imports nothing of the crate.

use serde::{Deserialize, Deserializer};
use std::fmt;

/// A duration written the human way in TOML: `"250ms"`, `"5s"`, `"1m"`, `"1h 30m"`.
///
/// Bounded at parse time to [`Duration::MAX`] (one year), so no setting can overflow an
/// `Instant` when added to it: a pipeline that would panic later fails at load instead.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// The longest duration any setting takes: 365 days.
    pub const MAX: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

    pub const fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
    pub fn as_millis_i64(&self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

impl std::ops::Deref for Duration {
    type Target = std::time::Duration;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let parsed = humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?} ({e}); write it like \"250ms\", \"5s\" or \"1m\""
            ))
        })?;
        if parsed > Duration::MAX {
            return Err(serde::de::Error::custom(format!(
                "duration {text:?} is longer than the longest allowed, 365 days"
            )));
        }
        Ok(Duration(parsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        d: Duration,
    }

    #[test]
    fn parses_human_durations_and_bounds_them() {
        let t: T = toml::from_str("d = \"1m 30s\"").unwrap();
        assert_eq!(*t.d, std::time::Duration::from_secs(90));
        let err = toml::from_str::<T>("d = \"400000000000y\"").err().unwrap();
        assert!(err.message().contains("365 days"), "{}", err.message());
        assert!(toml::from_str::<T>("d = \"soon\"").is_err());
    }
}
