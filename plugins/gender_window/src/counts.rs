//! The counting logic and its compact encoding, independent of the WASM boundary.

use chrono::{DateTime, SecondsFormat};
use serde_json::Value;

/// Bumped whenever the byte layout of [`Counts::encode`] changes.
pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub male: u64,
    pub female: u64,
    pub other: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.male + self.female + self.other
    }

    /// Count one record: a JSON object whose `gender` is `male`, `female` (any case),
    /// or anything else / absent, which counts as other. Non-JSON is refused.
    pub fn add_json(&mut self, value: &[u8]) -> Result<(), String> {
        let parsed: Value = serde_json::from_slice(value)
            .map_err(|e| format!("gender_window: value is not valid JSON: {e}"))?;
        let Value::Object(obj) = parsed else {
            return Err("gender_window: value is not a JSON object".into());
        };
        match obj.get("gender").and_then(Value::as_str) {
            Some(g) if g.eq_ignore_ascii_case("male") => self.male += 1,
            Some(g) if g.eq_ignore_ascii_case("female") => self.female += 1,
            _ => self.other += 1,
        }
        Ok(())
    }

    pub fn merge(&self, other: &Counts) -> Counts {
        Counts {
            male: self.male + other.male,
            female: self.female + other.female,
            other: self.other + other.other,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(6);
        for n in [self.male, self.female, self.other] {
            write_varint(&mut out, n);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Counts, String> {
        let mut rest = bytes;
        let mut next = || read_varint(&mut rest);
        let counts = Counts {
            male: next()?,
            female: next()?,
            other: next()?,
        };
        if !rest.is_empty() {
            return Err(format!(
                "gender_window state has {} trailing bytes",
                rest.len()
            ));
        }
        Ok(counts)
    }
}

fn write_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn read_varint(bytes: &mut &[u8]) -> Result<u64, String> {
    let mut n: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes
            .split_first()
            .ok_or("gender_window state is truncated")?;
        *bytes = rest;
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err("gender_window state has an over-long varint".into())
}

/// The output row for a closed window.
pub fn finish_json(counts: &Counts, start_ms: i64, end_ms: i64) -> Result<String, String> {
    let iso = |ms: i64| {
        DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
            .ok_or_else(|| format!("gender_window: window bound {ms} ms is out of range"))
    };
    Ok(format!(
        r#"{{"window_start":"{}","window_end":"{}","male_count":{},"female_count":{},"other_count":{},"total_count":{}}}"#,
        iso(start_ms)?,
        iso(end_ms)?,
        counts.male,
        counts.female,
        counts.other,
        counts.total()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts_of(genders: &[&str]) -> Counts {
        let mut c = Counts::default();
        for g in genders {
            c.add_json(format!(r#"{{"gender":"{g}"}}"#).as_bytes())
                .unwrap();
        }
        c
    }

    #[test]
    fn counts_male_female_other() {
        let c = counts_of(&["male", "female", "Female", "nonbinary", "male", ""]);
        assert_eq!(
            c,
            Counts {
                male: 2,
                female: 2,
                other: 2
            }
        );
        assert_eq!(c.total(), 6);
        let mut c2 = Counts::default();
        c2.add_json(br#"{"name":"x"}"#).unwrap();
        assert_eq!(c2.other, 1);
    }

    #[test]
    fn non_json_is_refused_and_not_counted() {
        let mut c = Counts::default();
        assert!(c.add_json(b"nope").unwrap_err().contains("not valid JSON"));
        assert!(c.add_json(b"[1]").is_err());
        assert_eq!(c.total(), 0);
    }

    #[test]
    fn encoding_round_trips_and_is_compact() {
        for c in [
            Counts::default(),
            Counts {
                male: 1,
                female: 127,
                other: 128,
            },
            Counts {
                male: u64::MAX,
                female: 300,
                other: 1 << 40,
            },
        ] {
            assert_eq!(Counts::decode(&c.encode()).unwrap(), c);
        }
        assert_eq!(
            Counts {
                male: 5,
                female: 6,
                other: 0
            }
            .encode()
            .len(),
            3
        );
    }

    #[test]
    fn corrupt_state_is_an_error() {
        assert!(Counts::decode(&[0x80]).is_err());
        assert!(Counts::decode(&[1, 2]).is_err());
        assert!(Counts::decode(&[1, 2, 3, 4]).is_err());
    }

    #[test]
    fn merge_is_exact() {
        let all = ["male", "female", "x", "male", "female", "female", "?"];
        for split in 0..=all.len() {
            let (a, b) = all.split_at(split);
            assert_eq!(counts_of(a).merge(&counts_of(b)), counts_of(&all));
        }
    }

    #[test]
    fn finish_prints_iso_utc_bounds() {
        let json = finish_json(
            &counts_of(&["male", "x"]),
            1_700_000_040_000,
            1_700_000_100_000,
        )
        .unwrap();
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["window_start"], "2023-11-14T22:14:00Z");
        assert_eq!(v["window_end"], "2023-11-14T22:15:00Z");
        assert_eq!(v["male_count"], 1);
        assert_eq!(v["female_count"], 0);
        assert_eq!(v["other_count"], 1);
        assert_eq!(v["total_count"], 2);
    }
}
