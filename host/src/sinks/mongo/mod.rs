//! `type = "mongodb"`: records to a MongoDB collection, with the official driver.
//!
//! Each batch is one `update` command (upserts by `_id`) or one `insert` command, with
//! many statements and `ordered: false`, which every server from 4.4 on understands
//! (not only 8.0's `bulkWrite`). A document the server refuses goes to the dead
//! letters with the server's message; errors worth retrying (a primary stepping down,
//! a connection lost, a write concern not yet met) leave those documents pending for
//! the pipeline's retry policy. A batch counts as written only when the server has
//! acknowledged every document at the configured write concern.
//!
//! Record values are read as MongoDB Extended JSON (relaxed): plain JSON stays as it
//! is, and `{"$date": "..."}` or `{"$oid": "..."}` become dates and object ids.
//!
//! - config: this file; connecting and indexes: [`client`]; the writer: [`sink`].

pub mod client;
mod sink;

pub use sink::MongoSink;

use super::Input;
use crate::duration::Duration;
use crate::field_error::FieldError;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoConfig {
    /// A connection string: `mongodb://user:${MONGO_PASSWORD}@host:27017/?tls=true`.
    pub uri: String,
    pub database: String,
    pub collection: String,
    #[serde(default)]
    pub mode: Mode,
    /// With `mode = "upsert"`: the field whose value becomes the document's `_id`.
    /// Default: `id` for records (format_user's user id), `window_start` for window
    /// results (what the shipped and scaffolded window plugins emit), so each window
    /// is one document and a replay or a later result replaces it.
    id_field: Option<String>,
    /// `"majority"` (default), a number of members, or a tag set's name.
    #[serde(default)]
    pub write_concern: WriteConcern,
    /// Ask for the write to be in the journal before it is acknowledged.
    pub journal: Option<bool>,
    /// Window results from `[window] output = "partials"`: each upserts its partition's
    /// share under `partials.<topic>-<partition>` of the window's document (`_id` from
    /// `id_field`) and every number field becomes the sum over the partitions', so the
    /// totals are exact whichever host wrote which partition, and a replay changes
    /// nothing. (Sums: right for counts and other additive results.)
    #[serde(default)]
    pub partials: bool,
    /// Indexes created at start (if missing).
    #[serde(default)]
    pub indexes: Vec<Index>,
    /// How long finding a server, connecting, or one write may take.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_millis(10_000)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Replace the document whose `_id` is the record's `id_field`, or insert it: a
    /// replayed record rewrites the same document.
    #[default]
    Upsert,
    /// Insert every record as a new document (its own `_id` if it has one, else one
    /// the server assigns). A record replayed after a crash is inserted again unless
    /// it carries an `_id`.
    Insert,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum WriteConcern {
    Members(u32),
    Tag(String),
}

impl Default for WriteConcern {
    fn default() -> Self {
        WriteConcern::Tag("majority".into())
    }
}

/// `{ fields = ["gender", "-registered_date"], unique = false, name = "..." }`: a
/// field per key in order, `-` in front for descending.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    pub fields: Vec<String>,
    #[serde(default)]
    pub unique: bool,
    /// Default: MongoDB's own (`gender_1_registered_date_-1`).
    pub name: Option<String>,
}

impl MongoConfig {
    /// `id_field`, or its default for the sink's input.
    pub fn id_field(&self, input: Input) -> &str {
        match (&self.id_field, input) {
            (Some(field), _) => field,
            (None, Input::Records) => "id",
            (None, Input::Windows) => "window_start",
        }
    }

    pub fn validate(&self, input: Input) -> Result<(), FieldError> {
        let err = |f: &str, m: &str| Err(FieldError::new(f, m));
        if !self.uri.starts_with("mongodb://") && !self.uri.starts_with("mongodb+srv://") {
            return err(
                "uri",
                "must start with mongodb:// or mongodb+srv://, like \"mongodb://127.0.0.1:27017\"",
            );
        }
        // MongoDB's own rules for names.
        let bad_db = |c: char| "/\\. \"$\0".contains(c);
        if self.database.is_empty() || self.database.contains(bad_db) || self.database.len() > 63 {
            return err(
                "database",
                "must be 1 to 63 characters, none of / \\ . space \" $",
            );
        }
        let c = &self.collection;
        if c.is_empty()
            || c.contains(['$', '\0'])
            || c.starts_with('.')
            || c.ends_with('.')
            || c.starts_with("system.")
        {
            return err(
                "collection",
                "must not be empty, contain $ or a NUL, start or end with a dot, or start with system.",
            );
        }
        // The namespace `database.collection` the server names it by.
        if self.database.len() + 1 + c.len() > 255 {
            return err(
                "collection",
                "is too long: `database.collection` must be at most 255 bytes",
            );
        }
        if self.partials && self.mode != Mode::Upsert {
            return err(
                "partials",
                "needs mode = \"upsert\" (a window's document is updated in place)",
            );
        }
        if self.partials && input != Input::Windows {
            return err(
                "partials",
                "needs input = \"windows\" (it sums window results per partition)",
            );
        }
        if self.mode == Mode::Upsert && self.id_field(input).is_empty() {
            return err("id_field", "must name a field");
        }
        if matches!(&self.write_concern, WriteConcern::Tag(t) if t.is_empty()) {
            return err(
                "write_concern",
                "must be \"majority\", a number or a tag set's name",
            );
        }
        if self.timeout.is_zero() {
            return err("timeout", "must be more than 0");
        }
        for (i, index) in self.indexes.iter().enumerate() {
            if index.fields.is_empty()
                || index
                    .fields
                    .iter()
                    .any(|f| f.trim_start_matches('-').is_empty())
            {
                return Err(FieldError::new(
                    format!("indexes[{i}].fields"),
                    "must name at least one field (\"-field\" for descending)",
                ));
            }
        }
        Ok(())
    }
}

impl super::SinkConnector for MongoConfig {
    fn describe(&self) -> String {
        format!("mongodb {}.{}", self.database, self.collection)
    }

    fn validate(&self, input: Input) -> Result<(), FieldError> {
        MongoConfig::validate(self, input)
    }

    async fn open(
        &self,
        ctx: &super::SinkContext,
    ) -> Result<Box<dyn super::Sink>, super::SinkError> {
        Ok(Box::new(sink::MongoSink::open(self, ctx).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<MongoConfig, toml::de::Error> {
        toml::from_str(&format!(
            "uri = \"mongodb://127.0.0.1:27017\"\ndatabase = \"UserData\"\ncollection = \"User\"\n{extra}"
        ))
    }

    #[test]
    fn defaults_upsert_by_id_with_majority() {
        let c = parse("").unwrap();
        assert_eq!(c.mode, Mode::Upsert);
        assert_eq!(c.id_field(Input::Records), "id");
        assert_eq!(
            c.id_field(Input::Windows),
            "window_start",
            "a window's document is keyed by its start"
        );
        assert_eq!(c.write_concern, WriteConcern::Tag("majority".into()));
        assert!(c.validate(Input::Records).is_ok());
        assert_eq!(
            parse("write_concern = 2").unwrap().write_concern,
            WriteConcern::Members(2)
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let field = |extra: &str| {
            parse(extra)
                .unwrap()
                .validate(Input::Records)
                .unwrap_err()
                .field
        };
        assert_eq!(field("indexes = [{ fields = [] }]"), "indexes[0].fields");
        assert_eq!(field("id_field = \"\""), "id_field");
        let collection = |name: &str| {
            let text = "uri = \"mongodb://h\"\ndatabase = \"d\"\ncollection = \"c\"";
            let mut c = toml::from_str::<MongoConfig>(text).unwrap();
            c.collection = name.to_owned();
            c.validate(Input::Records).err().map(|e| e.field)
        };
        for bad in [".x", "x.", "a\0b", "a$b", "system.x", &"c".repeat(254)] {
            assert_eq!(collection(bad).as_deref(), Some("collection"), "{bad:?}");
        }
        assert_eq!(collection(&"c".repeat(253)), None, "d.ccc... is 255 bytes");
        assert_eq!(collection("User.archive"), None);
        let bad_uri: MongoConfig =
            toml::from_str("uri = \"http://x\"\ndatabase = \"d\"\ncollection = \"c\"").unwrap();
        assert_eq!(bad_uri.validate(Input::Records).unwrap_err().field, "uri");
        assert!(parse("mode = \"append\"")
            .unwrap_err()
            .to_string()
            .contains("unknown variant `append`"));
    }
}
