//! Schema enforcement: a JSON Schema file a transform's output or a sink's input must
//! match (`schema = "schemas/user.json"`). A record that does not match is a dead
//! letter whose reason names the schema, the failing path (a JSON pointer) and the
//! rule (the schema keyword, at its place in the schema). A leaf: imports nothing
//! of the crate.
//!
//! Schemas are compiled once, when the pipeline loads (so `sluice validate` finds a
//! broken one), and shared by every worker. `format` is asserted (an `"email"` that
//! is no address fails), and no `$ref` is fetched from the network.

use std::path::{Path, PathBuf};

/// The columns of the seeds' user row (`spark_streams.created_users` in Cassandra,
/// `created_users` in PostgreSQL): what format_user emits and `schemas/user.json`
/// describes. The stores' sinks make these columns by default.
pub const SEED_COLUMNS: [&str; 12] = [
    "id",
    "first_name",
    "last_name",
    "gender",
    "address",
    "post_code",
    "email",
    "username",
    "dob",
    "registered_date",
    "phone",
    "picture",
];

/// A compiled schema and the file it came from.
pub struct Schema {
    /// As the config names it, for messages.
    shown: String,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Schema({})", self.shown)
    }
}

impl Schema {
    /// Read and compile `file` (relative to `base_dir`); an error names the file and
    /// what is wrong (not JSON, at which line; not a schema, at which keyword).
    pub fn load(file: &Path, base_dir: &Path) -> Result<Schema, SchemaError> {
        Schema::load_with_value(file, base_dir).map(|(schema, _)| schema)
    }

    /// As [`Schema::load`], with the schema's JSON (what a registry is sent).
    pub fn load_with_value(
        file: &Path,
        base_dir: &Path,
    ) -> Result<(Schema, serde_json::Value), SchemaError> {
        let path: PathBuf = base_dir.join(file);
        let shown = file.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|source| SchemaError::Read {
            path: path.clone(),
            source,
        })?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| SchemaError::NotJson {
                path: path.clone(),
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            })?;
        let schema = Schema::compile(shown, &value).map_err(|e| match e {
            SchemaError::Invalid { reason, .. } => SchemaError::Invalid {
                schema: path.display().to_string(),
                reason,
            },
            other => other,
        })?;
        Ok((schema, value))
    }

    /// Compile a schema given as a value; `shown` names it in reasons.
    pub fn compile(shown: String, schema: &serde_json::Value) -> Result<Schema, SchemaError> {
        let invalid = |reason: String| SchemaError::Invalid {
            schema: shown.clone(),
            reason,
        };
        if !schema.is_object() && !schema.is_boolean() {
            return Err(invalid(
                "is not a JSON Schema: a schema is an object (or true/false)".into(),
            ));
        }
        if let Some(cycle) = vacuous_cycle(schema) {
            return Err(invalid(format!(
                "is a schema that only refers to itself (`$ref` {cycle}), so it would match every record: give it rules"
            )));
        }
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(schema)
            .map_err(|e| {
                let at = e.schema_path().as_str();
                invalid(if at.is_empty() {
                    format!("is not a valid JSON Schema: {e}")
                } else {
                    format!("is not a valid JSON Schema (at {at}): {e}")
                })
            })?;
        Ok(Schema { shown, validator })
    }

    pub fn name(&self) -> &str {
        &self.shown
    }

    /// Whether `json` matches; if not, why, naming the first failing path and rule:
    /// ``does not match schemas/user.json at /email: "x" is not a "email" (rule
    /// /properties/email/format)``.
    pub fn check(&self, json: &[u8]) -> Result<(), Mismatch> {
        let value: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| Mismatch::NotJson {
                schema: self.shown.clone(),
                reason: e.to_string(),
            })?;
        self.check_value(&value)
    }

    pub fn check_value(&self, value: &serde_json::Value) -> Result<(), Mismatch> {
        if self.validator.is_valid(value) {
            return Ok(());
        }
        let mut errors = self.validator.iter_errors(value);
        let Some(first) = errors.next() else {
            return Ok(());
        };
        let more = errors.count();
        let pointer = first.instance_path().as_str();
        Err(Mismatch::Rule {
            schema: self.shown.clone(),
            pointer: pointer.to_owned(),
            message: first.to_string(),
            rule: first.schema_path().as_str().to_owned(),
            more,
        })
    }
}

/// A schema file that cannot be used: named with what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: is not JSON ({message})", path.display())]
    NotJson {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// Not a schema, or one that would match everything.
    #[error("{schema} {reason}")]
    Invalid { schema: String, reason: String },
}

/// Why a value does not match a schema: where (a JSON pointer into the value) and
/// which rule (a pointer into the schema). Its text is the reason a dead letter
/// carries: ``does not match schemas/user.json at /email: "x" is not a "email" (rule
/// /properties/email/format)``.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("does not match {schema}: not JSON ({reason})")]
    NotJson { schema: String, reason: String },
    #[error("does not match {schema} at {}: {message} (rule {rule}){}", shown(pointer), and_more(*more))]
    Rule {
        schema: String,
        /// A JSON pointer into the value (`` for the whole value).
        pointer: String,
        message: String,
        rule: String,
        /// Other rules the value breaks besides this first one.
        more: usize,
    },
}

/// The whole value's pointer (``) is shown as `/`.
fn shown(pointer: &str) -> &str {
    if pointer.is_empty() {
        "/"
    } else {
        pointer
    }
}

fn and_more(more: usize) -> String {
    match more {
        0 => String::new(),
        n => format!("; and {n} more"),
    }
}

/// Keywords that say nothing about a value.
const ANNOTATIONS: &[&str] = &[
    "$ref",
    "$schema",
    "$id",
    "$comment",
    "$defs",
    "definitions",
    "title",
    "description",
    "default",
    "examples",
    "$anchor",
];

/// A chain of local `$ref`s from the root that comes back to where it was without any
/// rule on the way (`{"$ref": "#"}`): the validator takes it, and it matches anything.
/// Returns the chain (`# -> #`), if there is one.
fn vacuous_cycle(schema: &serde_json::Value) -> Option<String> {
    let mut seen: Vec<String> = vec!["#".into()];
    let mut node = schema;
    loop {
        let obj = node.as_object()?;
        if obj.keys().any(|k| !ANNOTATIONS.contains(&k.as_str())) {
            return None; // a rule of its own
        }
        let target = obj.get("$ref")?.as_str()?;
        let pointer = target.strip_prefix('#')?;
        if seen.iter().any(|s| s == target) {
            seen.push(target.to_owned());
            return Some(seen.join(" -> "));
        }
        seen.push(target.to_owned());
        node = schema.pointer(pointer)?;
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_mismatch_says_where_and_which_rule() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": { "email": { "type": "string", "format": "email" } }
        });
        let schema = Schema::compile("s.json".into(), &schema).unwrap();
        match schema.check(br#"{"email": "x"}"#).unwrap_err() {
            Mismatch::Rule {
                pointer,
                rule,
                more,
                ..
            } => {
                assert_eq!(pointer, "/email");
                assert_eq!(rule, "/properties/email/format");
                assert_eq!(more, 0);
            }
            other => panic!("{other}"),
        }
        assert!(matches!(
            schema.check(b"{").unwrap_err(),
            Mismatch::NotJson { .. }
        ));
    }

    use super::*;
    use serde_json::json;

    fn user_schema() -> Schema {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        Schema::load(Path::new("schemas/user.json"), &repo).unwrap()
    }

    fn user() -> serde_json::Value {
        json!({
            "id": "0b7b7a2e-6a7e-4d6e-9a2b-7c1d2e3f4a5b",
            "first_name": "Ada", "last_name": "Lovelace", "gender": "female",
            "address": "12 Long Street, London, England, United Kingdom",
            "post_code": "N1 9GU", "email": "ada@example.com", "username": "ada",
            "dob": "1815-12-10T00:00:00.000Z", "registered_date": "2020-01-01T00:00:00.000Z",
            "phone": "020 7946 0000", "picture": "https://randomuser.me/api/portraits/women/1.jpg"
        })
    }

    #[test]
    fn the_shipped_user_schema_takes_a_user_and_names_what_breaks_it() {
        let schema = user_schema();
        assert_eq!(schema.check(user().to_string().as_bytes()), Ok(()));
        let mut bad = user();
        bad["email"] = json!("not an address");
        let why = schema
            .check(bad.to_string().as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            why.starts_with("does not match schemas/user.json at /email: "),
            "{why}"
        );
        assert!(why.contains("(rule /properties/email/pattern)"), "{why}");
        let mut bad = user();
        bad.as_object_mut().unwrap().remove("id");
        let why = schema
            .check(bad.to_string().as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            why.contains("at /: ") && why.contains("\"id\" is a required property"),
            "{why}"
        );
        assert!(why.contains("rule /required"), "{why}");
        let mut bad = user();
        bad["id"] = json!("nope");
        bad["gender"] = json!(3);
        let why = schema
            .check(bad.to_string().as_bytes())
            .unwrap_err()
            .to_string();
        assert!(why.ends_with("; and 1 more"), "{why}");
        assert!(schema
            .check(b"[1")
            .unwrap_err()
            .to_string()
            .contains("not JSON"));
    }

    #[test]
    fn a_schema_that_only_refers_to_itself_is_refused() {
        for cyclic in [
            serde_json::json!({"$ref": "#"}),
            serde_json::json!({"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}}),
        ] {
            let why = Schema::compile("s.json".into(), &cyclic)
                .unwrap_err()
                .to_string();
            assert!(why.contains("only refers to itself"), "{why}");
        }
        // A recursive schema with rules on the way is a real one.
        let tree = serde_json::json!({"type": "object", "properties": {"child": {"$ref": "#"}}});
        assert!(Schema::compile("tree.json".into(), &tree).is_ok());
        let via_def = serde_json::json!({"$ref": "#/$defs/u", "$defs": {"u": {"type": "string"}}});
        assert!(Schema::compile("u.json".into(), &via_def).is_ok());
    }

    #[test]
    fn a_broken_schema_file_is_named_with_its_fault() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.json"),
            "{\n  \"type\": \"object\",\n  oops\n}",
        )
        .unwrap();
        let why = Schema::load(Path::new("a.json"), dir.path())
            .unwrap_err()
            .to_string();
        assert!(why.contains("a.json:3:"), "{why}");
        std::fs::write(dir.path().join("b.json"), r#"{"type": "objekt"}"#).unwrap();
        let why = Schema::load(Path::new("b.json"), dir.path())
            .unwrap_err()
            .to_string();
        assert!(why.contains("not a valid JSON Schema"), "{why}");
        let why = Schema::load(Path::new("missing.json"), dir.path())
            .unwrap_err()
            .to_string();
        assert!(why.contains("missing.json"), "{why}");
    }
}
