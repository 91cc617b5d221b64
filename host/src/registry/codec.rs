//! What a framed value becomes on its way in (JSON text for the plugins), and what a
//! record becomes on its way out (a framed value under the sink's schema).

use super::{frame, unframe, AvroSchema, Client, Format, Registered, RegistryError};
use crate::schema::Schema as JsonSchema;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The most schema ids remembered at once.
const MAX_KNOWN: usize = 10_000;

/// A schema id's decoder, or why its values cannot be read.
enum Known {
    Avro(AvroSchema),
    Json(JsonSchema),
    Unusable(String),
    /// The registry did not have it when asked: asked again after [`ASK_AGAIN`] (a
    /// follower behind its leader, another of `url`'s registries may have it since).
    Missing(String, std::time::Instant),
}

/// How long an id the registry did not have stays a dead letter without asking.
const ASK_AGAIN: std::time::Duration = std::time::Duration::from_secs(30);

/// The Kafka source's side: framed values to JSON text, schemas fetched by id once.
pub struct Decoder {
    format: Format,
    client: Client,
    known: HashMap<u32, Arc<Known>>,
}

/// One value's outcome.
pub enum Decoded {
    /// JSON text.
    Value(Vec<u8>),
    /// Not decodable: why (the message becomes a dead letter).
    Dead(String),
    /// The schema id is not known yet: [`Decoder::learn`] it, then decode again.
    Unknown(u32),
}

impl Decoder {
    pub fn new(format: Format, client: Client) -> Decoder {
        Decoder {
            format,
            client,
            known: HashMap::new(),
        }
    }

    pub fn decode(&self, value: &[u8]) -> Decoded {
        let (id, body) = match unframe(value) {
            Ok(framed) => framed,
            Err(why) => return Decoded::Dead(why),
        };
        let Some(known) = self.known.get(&id) else {
            return Decoded::Unknown(id);
        };
        match &**known {
            Known::Unusable(why) => Decoded::Dead(format!("schema id {id}: {why}")),
            Known::Missing(_, asked) if asked.elapsed() >= ASK_AGAIN => Decoded::Unknown(id),
            Known::Missing(why, _) => Decoded::Dead(why.clone()),
            Known::Avro(schema) => {
                let mut out = Vec::with_capacity(body.len() * 2 + 16);
                match schema.to_json(body, &mut out) {
                    Ok(()) => Decoded::Value(out),
                    Err(why) => Decoded::Dead(format!("not Avro of schema id {id}: {why}")),
                }
            }
            Known::Json(schema) => match schema.check(body) {
                Ok(()) => Decoded::Value(body.to_vec()),
                Err(why) => Decoded::Dead(format!("schema id {id}: {why}")),
            },
        }
    }

    /// Fetch schema `id`. An id the registry does not have, or a schema of another
    /// format, is remembered as unusable (ids never change); only an unavailable
    /// registry or refused credentials are errors.
    pub async fn learn(&mut self, id: u32) -> Result<(), RegistryError> {
        let known = match self.client.schema_by_id(id).await {
            Ok(registered) => self.compile(id, &registered),
            Err(RegistryError::NotFound(why)) => Known::Missing(why, std::time::Instant::now()),
            Err(RegistryError::Refused(why)) => Known::Unusable(why),
            Err(e) => return Err(e),
        };
        if self.known.len() >= MAX_KNOWN {
            // Values naming ever new ids (hostile, or broken): forget the unusable
            // ones rather than grow without bound; a usable schema is kept.
            self.known
                .retain(|_, k| !matches!(**k, Known::Unusable(_) | Known::Missing(..)));
            if self.known.len() >= MAX_KNOWN {
                self.known.clear();
            }
        }
        self.known.insert(id, Arc::new(known));
        Ok(())
    }

    fn compile(&self, id: u32, registered: &Registered) -> Known {
        match (self.format, registered.schema_type.as_str()) {
            (Format::Avro, "AVRO") => match AvroSchema::parse(&registered.schema) {
                Ok(s) => Known::Avro(s),
                Err(e) => {
                    Known::Unusable(format!("the registry's Avro schema cannot be used: {e}"))
                }
            },
            (Format::JsonSchema, "JSON") => {
                let compiled = serde_json::from_str(&registered.schema)
                    .map_err(|e| e.to_string())
                    .and_then(|v| {
                        JsonSchema::compile(format!("schema id {id}"), &v)
                            .map_err(|e| e.to_string())
                    });
                match compiled {
                    Ok(s) => Known::Json(s),
                    Err(e) => {
                        Known::Unusable(format!("the registry's JSON Schema cannot be used: {e}"))
                    }
                }
            }
            (format, other) => Known::Unusable(format!(
                "is a {other} schema, and this source reads format = \"{}\"",
                format.name()
            )),
        }
    }
}

/// A sink's `value_schema`: an Avro schema (`.avsc`) or a JSON Schema (`.json`).
#[derive(Clone)]
pub enum ValueSchema {
    Avro(AvroSchema),
    Json {
        schema: Arc<JsonSchema>,
        text: String,
        title: Option<String>,
    },
}

impl std::fmt::Debug for ValueSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.schema_type())
    }
}

impl ValueSchema {
    /// Read and parse `file` (relative to `base_dir`) for `format`; an error names
    /// the file and what is wrong.
    pub fn load(file: &Path, base_dir: &Path, format: Format) -> Result<ValueSchema, String> {
        match format {
            Format::Avro => {
                let path = base_dir.join(file);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                AvroSchema::parse(&text)
                    .map(ValueSchema::Avro)
                    .map_err(|e| format!("{}: {e}", path.display()))
            }
            Format::JsonSchema => {
                let (schema, value) =
                    JsonSchema::load_with_value(file, base_dir).map_err(|e| e.to_string())?;
                Ok(ValueSchema::Json {
                    schema: Arc::new(schema),
                    title: value["title"].as_str().map(str::to_owned),
                    text: value.to_string(),
                })
            }
            Format::Json => Err("format = \"json\" takes no value_schema".into()),
        }
    }

    /// The registry's `schemaType`.
    pub fn schema_type(&self) -> &'static str {
        match self {
            ValueSchema::Avro(_) => "AVRO",
            ValueSchema::Json { .. } => "JSON",
        }
    }

    /// The text registered.
    pub fn text(&self) -> &str {
        match self {
            ValueSchema::Avro(s) => s.text(),
            ValueSchema::Json { text, .. } => text,
        }
    }

    /// The name the record subject strategies use.
    pub fn record_name(&self) -> Option<&str> {
        match self {
            ValueSchema::Avro(s) => s.record_name(),
            ValueSchema::Json { title, .. } => title.as_deref(),
        }
    }

    /// A record's JSON text as the schema's encoding (JSON text is checked and kept
    /// as it is); `Err`: why it does not fit, naming the field.
    pub fn encode(&self, json: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            ValueSchema::Avro(s) => {
                let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| {
                    format!("the record is not JSON, so it cannot be written as Avro: {e}")
                })?;
                s.from_json(&value, out)
                    .map_err(|m| format!("does not fit the Avro schema: {m}"))
            }
            ValueSchema::Json { schema, .. } => {
                schema.check(json).map_err(|m| m.to_string())?;
                out.extend_from_slice(json);
                Ok(())
            }
        }
    }
}

/// The Kafka sink's side: per topic, the id its schema was registered under.
pub struct Encoder {
    schema: ValueSchema,
    ids: HashMap<String, u32>,
}

impl Encoder {
    /// Register `schema` for each topic (its subject by `strategy`): the first refusal
    /// is the error, with the registry's reasons.
    pub async fn register(
        client: &Client,
        schema: ValueSchema,
        topics: &[String],
        strategy: super::SubjectStrategy,
    ) -> Result<Encoder, RegistryError> {
        let mut ids = HashMap::new();
        for topic in topics {
            let subject = strategy
                .subject(topic, schema.record_name())
                .map_err(RegistryError::Refused)?;
            let id = client
                .register(&subject, schema.schema_type(), schema.text())
                .await?;
            tracing::info!("value schema registered under subject {subject}: id {id}");
            ids.insert(topic.clone(), id);
        }
        Ok(Encoder { schema, ids })
    }

    pub fn schema(&self) -> &ValueSchema {
        &self.schema
    }

    /// A record's value framed for `topic`.
    pub fn encode(&self, topic: &str, json: &[u8]) -> Result<Vec<u8>, String> {
        let id = *self
            .ids
            .get(topic)
            .ok_or_else(|| format!("no schema registered for topic {topic}"))?;
        let mut out = Vec::with_capacity(json.len() + 5);
        frame(id, &mut out);
        self.schema.encode(json, &mut out)?;
        Ok(out)
    }
}
