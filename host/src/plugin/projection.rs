//! The optional `projection` export of window plugins: the top-level fields of a
//! record's value the plugin reads, and `add-projected`, which takes a batch of just
//! those, packed in one list. A window that counts one field of kilobyte records so
//! no longer has each record copied into it (one allocation each, each a call into
//! the plugin) to be scanned again there: gender_window's stage was 15% of the seeds'
//! job's instructions.

use super::bindings::types::{Accumulator, AddResult, Record};
use super::error::BrokenContract;
use super::state::PluginState;
use crate::json::{value_at, TopLevelKey};
use wasmtime::component::{Func, Instance, TypedFunc};
use wasmtime::Store;

const PROJECTION: &str = "sluice:plugin/projection@0.1.0";

/// The most fields a plugin may name: each is a scan of every record.
pub const MAX_FIELDS: usize = 64;

type AddProjected = TypedFunc<
    (
        &'static Accumulator,
        &'static [u8],
        &'static [u32],
        &'static [i64],
    ),
    (Result<AddResult, String>,),
>;

/// The instance's `projection` export, if it has one: `value-fields` and
/// `add-projected`. One of the wrong shape fails here, at start.
pub(super) fn find(
    instance: &Instance,
    store: &mut Store<PluginState>,
) -> wasmtime::Result<Option<(Func, Func)>> {
    let fields = super::migrator::export_func(instance, store, PROJECTION, "value-fields");
    let add = super::migrator::export_func(instance, store, PROJECTION, "add-projected");
    match (fields, add) {
        (Some(fields), Some(add)) => {
            fields.typed::<(), (Vec<String>,)>(&*store)?;
            typed_add(add, store)?;
            Ok(Some((fields, add)))
        }
        (None, None) => Ok(None),
        _ => Err(wasmtime::format_err!(
            "{PROJECTION} needs both value-fields and add-projected"
        )),
    }
}

fn typed_add(add: Func, store: &Store<PluginState>) -> wasmtime::Result<AddProjected> {
    add.typed(store)
}

/// Ask the plugin for its fields (after `init`). A list the host refuses is a broken
/// contract: the plugin does not start.
pub(super) fn ask(fields: Func, store: &mut Store<PluginState>) -> wasmtime::Result<Projection> {
    let typed = fields.typed::<(), (Vec<String>,)>(&*store)?;
    let (fields,) = typed.call(&mut *store, ())?;
    Projection::new(fields).map_err(|why| {
        BrokenContract(format!(
            "its projection's value-fields answer is refused: {why}"
        ))
        .into()
    })
}

/// Call `add-projected` with `records` in projection.
pub(super) fn add(
    projection: &Projection,
    add: Func,
    store: &mut Store<PluginState>,
    acc: &Accumulator,
    records: &[Record],
) -> wasmtime::Result<Result<AddResult, String>> {
    let mut values = Vec::with_capacity(records.len() * 24);
    let mut ends = Vec::with_capacity(records.len());
    let mut timestamps = Vec::with_capacity(records.len());
    for record in records {
        projection.project_into(&record.value, &mut values);
        let end = u32::try_from(values.len()).map_err(|_| {
            wasmtime::format_err!("a projected batch past 4 GiB (the plugin's memory is smaller)")
        })?;
        ends.push(end);
        timestamps.push(record.timestamp_ms);
    }
    let typed = typed_add(add, store)?;
    let (out,) = typed.call(&mut *store, (acc, &values[..], &ends[..], &timestamps[..]))?;
    Ok(out)
}

/// The fields a window plugin reads, checked.
#[derive(Debug)]
pub struct Projection {
    fields: Vec<TopLevelKey>,
}

impl Projection {
    pub fn new(fields: Vec<String>) -> Result<Self, String> {
        if fields.len() > MAX_FIELDS {
            return Err(format!(
                "{} fields, more than the {MAX_FIELDS} a plugin may name",
                fields.len()
            ));
        }
        for (i, name) in fields.iter().enumerate() {
            if name.is_empty() {
                return Err(format!("field {i} is empty"));
            }
            if let Some(c) = name.chars().find(|&c| c == '"' || c == '\\' || c < ' ') {
                return Err(format!(
                    "field {name:?} holds {c:?}: a name is matched as written, unescaped"
                ));
            }
            if fields[..i].contains(name) {
                return Err(format!("field {name:?} is named twice"));
            }
        }
        Ok(Projection {
            fields: fields.iter().map(|f| TopLevelKey::new(f)).collect(),
        })
    }

    /// The field names, as the plugin gave them.
    pub fn names(&self) -> Vec<String> {
        self.fields.iter().map(|k| k.to_string()).collect()
    }

    /// Append `value` as the plugin takes it: `{"name": value, ...}` of the fields it
    /// has, or the whole value where the scan cannot read it.
    pub fn project_into(&self, value: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        if self.write(value, out).is_none() {
            out.truncate(start);
            out.extend_from_slice(value);
        }
    }

    fn write(&self, value: &[u8], out: &mut Vec<u8>) -> Option<()> {
        out.push(b'{');
        let mut first = true;
        for key in &self.fields {
            let Some(at) = key.find(value)? else {
                continue;
            };
            if !first {
                out.push(b',');
            }
            first = false;
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(value_at(value, at)?);
        }
        out.push(b'}');
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn projected(fields: &[&str], value: &[u8]) -> String {
        let p = Projection::new(fields.iter().map(|f| f.to_string()).collect()).unwrap();
        let mut out = b"before|".to_vec();
        p.project_into(value, &mut out);
        let out = String::from_utf8(out).unwrap();
        out.strip_prefix("before|").unwrap().to_owned()
    }

    #[test]
    fn keeps_the_named_fields_as_written() {
        let user = br#"{"id": 1, "gender": "female", "tags": ["a", "}"], "n": {"x": null}}"#;
        assert_eq!(projected(&["gender"], user), r#"{"gender": "female"}"#);
        assert_eq!(
            projected(&["n", "missing", "tags"], user),
            r#"{"n": {"x": null},"tags": ["a", "}"]}"#
        );
        // The last copy, as a full parse keeps it; an escaped value as written.
        let twice = br#"{"gender": "male", "gender": "fe\u006dale"}"#;
        assert_eq!(
            projected(&["gender"], twice),
            r#"{"gender": "fe\u006dale"}"#
        );
        for json in [
            &br#"{"gender": "male", "n": 1}"#[..],
            br#"{"gender":"male"}"#,
            twice,
        ] {
            let whole: serde_json::Value = serde_json::from_slice(json).unwrap();
            let part: serde_json::Value =
                serde_json::from_str(&projected(&["gender"], json)).unwrap();
            assert_eq!(part["gender"], whole["gender"], "{json:?}");
        }
        assert_eq!(projected(&["gender"], b"{}"), "{}");
    }

    #[test]
    fn what_the_scan_cannot_read_goes_whole() {
        for value in [
            &b"not json"[..],
            b"[1, 2]",
            br#"{"\u0067ender": "male"}"#,
            br#"{"gender": "male""#,
            br#"{"gender": }"#,
            b"",
        ] {
            let whole = String::from_utf8(value.to_vec()).unwrap();
            assert_eq!(projected(&["gender"], value), whole, "{value:?}");
        }
    }

    #[test]
    fn refuses_names_it_cannot_match() {
        let new = |names: &[&str]| Projection::new(names.iter().map(|n| n.to_string()).collect());
        assert!(new(&[]).is_ok());
        assert_eq!(new(&["a", "b"]).unwrap().names(), ["a", "b"]);
        for (names, why) in [
            (&[""][..], "empty"),
            (&["a\"b"], "unescaped"),
            (&["a\\b"], "unescaped"),
            (&["a\nb"], "unescaped"),
            (&["a", "a"], "twice"),
        ] {
            let err = new(names).unwrap_err();
            assert!(err.contains(why), "{names:?}: {err}");
        }
        let many: Vec<String> = (0..=MAX_FIELDS).map(|i| format!("f{i}")).collect();
        assert!(Projection::new(many).unwrap_err().contains("more than"));
    }
}
