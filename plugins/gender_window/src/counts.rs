//! The counting logic and its compact encoding, independent of the WASM boundary.

use chrono::{DateTime, SecondsFormat};

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
        match gender_of(value)? {
            Gender::Male => self.male += 1,
            Gender::Female => self.female += 1,
            Gender::Other => self.other += 1,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gender {
    Male,
    Female,
    Other,
}

/// What nearly every record is, as the host's projection writes it:
/// `{"gender":"male"}` or `{"gender":"female"}`, told by its length and two or three
/// 8-byte words (in WebAssembly, the scan below costs calls and loop heads, each
/// checking the CPU deadline). Anything else: `None`, and the scan decides.
fn usual(value: &[u8]) -> Option<Gender> {
    const MALE: &[u8; 17] = b"{\"gender\":\"male\"}";
    const FEMALE: &[u8; 19] = b"{\"gender\":\"female\"}";
    fn word(bytes: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
    }
    // The last word overlaps the one before it: every byte is compared.
    let same = |want: &[u8]| {
        let last = want.len() - 8;
        word(value, 0) == word(want, 0)
            && word(value, 8) == word(want, 8)
            && word(value, last) == word(want, last)
    };
    match value.len() {
        17 if same(MALE) => Some(Gender::Male),
        19 if same(FEMALE) => Some(Gender::Female),
        _ => None,
    }
}

/// The top-level `gender` of a JSON object (the last, if it repeats): found by a scan
/// that skips the other fields unparsed, or, where the scan cannot tell (an escaped
/// key or value, something that is not an object), by a full parse that says what
/// is wrong.
fn gender_of(value: &[u8]) -> Result<Gender, String> {
    use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
    use std::fmt;

    if let Some(gender) = usual(value) {
        return Ok(gender);
    }

    struct Top;
    impl<'de> Visitor<'de> for Top {
        type Value = Gender;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Gender, A::Error> {
            let mut gender = Gender::Other;
            while let Some(key) = map.next_key::<Key>()? {
                match key {
                    Key::Gender => gender = map.next_value::<GenderValue>()?.0,
                    Key::Other => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(gender)
        }
    }
    enum Key {
        Gender,
        Other,
    }
    impl<'de> serde::Deserialize<'de> for Key {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct K;
            impl<'de> Visitor<'de> for K {
                type Value = Key;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a key")
                }
                fn visit_str<E: de::Error>(self, k: &str) -> Result<Key, E> {
                    Ok(if k == "gender" {
                        Key::Gender
                    } else {
                        Key::Other
                    })
                }
            }
            d.deserialize_str(K)
        }
    }
    /// `gender`'s value: any JSON, a string compared without case.
    struct GenderValue(Gender);
    impl<'de> serde::Deserialize<'de> for GenderValue {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct G;
            impl<'de> Visitor<'de> for G {
                type Value = Gender;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_str<E: de::Error>(self, g: &str) -> Result<Gender, E> {
                    Ok(if g.eq_ignore_ascii_case("male") {
                        Gender::Male
                    } else if g.eq_ignore_ascii_case("female") {
                        Gender::Female
                    } else {
                        Gender::Other
                    })
                }
                fn visit_bool<E: de::Error>(self, _: bool) -> Result<Gender, E> {
                    Ok(Gender::Other)
                }
                fn visit_i64<E: de::Error>(self, _: i64) -> Result<Gender, E> {
                    Ok(Gender::Other)
                }
                fn visit_u64<E: de::Error>(self, _: u64) -> Result<Gender, E> {
                    Ok(Gender::Other)
                }
                fn visit_f64<E: de::Error>(self, _: f64) -> Result<Gender, E> {
                    Ok(Gender::Other)
                }
                fn visit_unit<E: de::Error>(self) -> Result<Gender, E> {
                    Ok(Gender::Other)
                }
                fn visit_seq<A: de::SeqAccess<'de>>(self, mut s: A) -> Result<Gender, A::Error> {
                    while s.next_element::<IgnoredAny>()?.is_some() {}
                    Ok(Gender::Other)
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Gender, A::Error> {
                    while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                    Ok(Gender::Other)
                }
            }
            Ok(GenderValue(d.deserialize_any(G)?))
        }
    }

    // The common case: the key found by a scan that skips the rest (the bytes of the
    // other fields are not parsed, and those after `gender` not even walked when no
    // second `gender` can be among them).
    match sluice_plugin_sdk::json::top_level_value_quick(value, b"gender") {
        Some(None) => return Ok(Gender::Other),
        Some(Some(at)) => {
            let rest = &value[at..];
            let start = rest.iter().position(|b| !b.is_ascii_whitespace());
            match start.map(|s| rest[s]) {
                Some(b'"') => {
                    if let Some(g) = sluice_plugin_sdk::json::plain_string(value, at) {
                        return Ok(if g.eq_ignore_ascii_case(b"male") {
                            Gender::Male
                        } else if g.eq_ignore_ascii_case(b"female") {
                            Gender::Female
                        } else {
                            Gender::Other
                        });
                    }
                }
                Some(b'{' | b'[' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
                    return Ok(Gender::Other)
                }
                _ => {}
            }
        }
        None => {}
    }
    let not_json = |e: serde_json::Error| format!("gender_window: value is not valid JSON: {e}");
    let first = value.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some() && first != Some(&b'{') {
        // Valid JSON that is not an object, or not JSON at all: say which.
        serde_json::from_slice::<IgnoredAny>(value).map_err(not_json)?;
        return Err("gender_window: value is not a JSON object".into());
    }
    let mut d = serde_json::Deserializer::from_slice(value);
    let gender = d.deserialize_map(Top).map_err(not_json)?;
    d.end().map_err(not_json)?;
    Ok(gender)
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
    use serde_json::Value;

    fn counts_of(genders: &[&str]) -> Counts {
        let mut c = Counts::default();
        for g in genders {
            c.add_json(format!(r#"{{"gender":"{g}"}}"#).as_bytes())
                .unwrap();
        }
        c
    }

    #[test]
    fn the_usual_projection_is_told_at_once_and_nothing_else_is() {
        assert_eq!(usual(br#"{"gender":"male"}"#), Some(Gender::Male));
        assert_eq!(usual(br#"{"gender":"female"}"#), Some(Gender::Female));
        for usual_one in [&br#"{"gender":"male"}"#[..], br#"{"gender":"female"}"#] {
            for at in 0..usual_one.len() {
                for byte in [b' ', b'x', b'M', b'"', b'\\', b'}'] {
                    let mut other = usual_one.to_vec();
                    if other[at] == byte {
                        continue;
                    }
                    other[at] = byte;
                    assert_eq!(usual(&other), None, "{}", String::from_utf8_lossy(&other));
                }
            }
        }
        for other in [
            &br#"{"gender": "male"}"#[..],
            br#"{"gender":"Male"}"#,
            b"",
            b"{}",
        ] {
            assert_eq!(usual(other), None);
        }
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
        // Only the top level counts; a non-string gender is other; the last one wins.
        let mut c3 = Counts::default();
        c3.add_json(br#"{"name":{"gender":"male"},"gender":"Female"}"#)
            .unwrap();
        c3.add_json(br#"{"gender":7,"x":[{"gender":"male"}]}"#)
            .unwrap();
        c3.add_json(br#"{"gender":"male","gender":"female"}"#)
            .unwrap();
        c3.add_json(br#" {"gend\u0065r":"MALE"}"#).unwrap();
        assert_eq!(
            c3,
            Counts {
                male: 1,
                female: 2,
                other: 1
            }
        );
    }

    #[test]
    fn non_json_is_refused_and_not_counted() {
        let mut c = Counts::default();
        assert!(c.add_json(b"nope").unwrap_err().contains("not valid JSON"));
        assert!(c
            .add_json(b"[1]")
            .unwrap_err()
            .contains("not a JSON object"));
        assert!(c.add_json(br#"{"gender":"male"} x"#).is_err());
        assert!(c.add_json(br#"{"gender":"male","#).is_err());
        assert!(c.add_json(b"").is_err());
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
