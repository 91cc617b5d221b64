//! JSON reads the host makes natively, on records it does not otherwise parse: the
//! plugin SDK's top-level scan (the same code the plugins run, so host and plugin
//! find the same field), with memchr's searches, which are wider natively than the
//! SDK's 16-byte blocks.

/// Where the value of the top-level `key` of a JSON object starts (the last copy, as
/// a full parse keeps it): `Some(None)` for a well-formed object without it, `None`
/// when the scan cannot tell (see `sluice_plugin_sdk::json::top_level_value`).
///
/// The scan stops at the first copy when nothing after it can be a second: no
/// backslash there (an escaped key might spell it) and not even the bare name (an
/// event time or a window's field near the start of a record of a kilobyte: walking
/// each to its end was 8% of the seeds' job's CPU).
pub fn top_level_value(json: &[u8], key: &[u8]) -> Option<Option<usize>> {
    let may_repeat = |rest: &[u8]| {
        memchr::memchr(b'\\', rest).is_some() || memchr::memmem::find(rest, key).is_some()
    };
    sluice_plugin_sdk::json::top_level_value_quick_with(json, key, may_repeat)
}

/// A top-level key looked up in record after record: [`top_level_value`] with its
/// search built once (memchr's `memmem::find` builds one a call). It reads as the
/// name (`Deref<Target = str>`).
#[derive(Clone)]
pub struct TopLevelKey {
    key: String,
    /// Boxed: a searcher is some 300 bytes, and keys sit in small enums.
    finder: std::sync::Arc<memchr::memmem::Finder<'static>>,
}

impl TopLevelKey {
    pub fn new(key: &str) -> Self {
        TopLevelKey {
            key: key.to_owned(),
            finder: std::sync::Arc::new(memchr::memmem::Finder::new(key.as_bytes()).into_owned()),
        }
    }

    /// As [`top_level_value`].
    pub fn find(&self, json: &[u8]) -> Option<Option<usize>> {
        let may_repeat =
            |rest: &[u8]| memchr::memchr(b'\\', rest).is_some() || self.finder.find(rest).is_some();
        sluice_plugin_sdk::json::top_level_value_quick_with(json, self.key.as_bytes(), may_repeat)
    }
}

impl std::ops::Deref for TopLevelKey {
    type Target = str;
    fn deref(&self) -> &str {
        &self.key
    }
}

impl From<&str> for TopLevelKey {
    fn from(key: &str) -> Self {
        TopLevelKey::new(key)
    }
}

impl PartialEq for TopLevelKey {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl std::fmt::Debug for TopLevelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.key)
    }
}

impl std::fmt::Display for TopLevelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key)
    }
}

/// The text of the JSON value starting at `at` (see
/// `sluice_plugin_sdk::json::value_end`), leading whitespace included.
pub fn value_at(json: &[u8], at: usize) -> Option<&[u8]> {
    let end = sluice_plugin_sdk::json::value_end(json, at)?;
    Some(&json[at..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_last_copy_and_its_text() {
        let j = br#"{"a": {"k": 1}, "k": [1, "]"], "b": "\"k\"", "k": "v" }"#;
        let at = top_level_value(j, b"k").unwrap().unwrap();
        assert_eq!(value_at(j, at), Some(&br#" "v""#[..]));
        let first = br#"{"k": 12, "b": "x"}"#;
        let at = top_level_value(first, b"k").unwrap().unwrap();
        assert_eq!(value_at(first, at), Some(&b" 12"[..]));
        assert_eq!(top_level_value(first, b"z"), Some(None));
        assert_eq!(top_level_value(br#"{"\u006b": 1}"#, b"k"), None);
        assert_eq!(top_level_value(b"[1]", b"k"), None);
        let key = TopLevelKey::new("k");
        for json in [
            &j[..],
            first,
            br#"{"\u006b": 1}"#,
            b"[1]",
            br#"{"k": 1, "k": 2}"#,
        ] {
            assert_eq!(key.find(json), top_level_value(json, b"k"), "{json:?}");
        }
    }
}
