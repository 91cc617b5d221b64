//! What the Kafka source, the Kafka sink and the window-state changelog share: client
//! settings from the pipeline file, and creating a topic.

pub mod changelog;

use crate::field_error::FieldError;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `properties = { "security.protocol" = "SASL_SSL", "session.timeout.ms" = 10000 }`:
/// handed to librdkafka as they are, after Sluice's own settings (so they win).
/// Values may be strings, numbers or booleans; secrets go in as `${VAR}`.
pub type Properties = BTreeMap<String, toml::Value>;

/// Check `brokers` and `properties`; a [`FieldError`] naming the field.
pub fn validate(brokers: &str, properties: &Properties) -> Result<(), FieldError> {
    if brokers.trim().is_empty() {
        return Err(FieldError::new(
            "brokers",
            "must name at least one broker, like \"127.0.0.1:9092\"",
        ));
    }
    for (name, value) in properties {
        property_text(value).map_err(|m| FieldError::new(format!("properties.\"{name}\""), m))?;
    }
    Ok(())
}

fn property_text(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => Err("must be a string, a number or a boolean".into()),
    }
}

/// A librdkafka config: Sluice's settings (`ours`), then the user's `properties`.
pub fn client_config(
    brokers: &str,
    ours: &[(&str, String)],
    properties: &Properties,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (k, v) in ours {
        config.set(*k, v);
    }
    for (k, v) in properties {
        if let Ok(text) = property_text(v) {
            config.set(k, text);
        }
    }
    config
}

/// `create_topic = { partitions = 4, replication_factor = 1 }`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    pub partitions: i32,
    #[serde(default = "one")]
    pub replication_factor: i32,
}

fn one() -> i32 {
    1
}

impl CreateTopic {
    pub fn validate(&self) -> Result<(), FieldError> {
        if !(1..=100_000).contains(&self.partitions) {
            return Err(FieldError::new(
                "create_topic.partitions",
                "must be between 1 and 100000",
            ));
        }
        if !(1..=1000).contains(&self.replication_factor) {
            return Err(FieldError::new(
                "create_topic.replication_factor",
                "must be between 1 and 1000",
            ));
        }
        Ok(())
    }
}

/// Create `topic` unless it exists, with these topic settings (`cleanup.policy`...).
pub async fn create_topic(
    config: &ClientConfig,
    topic: &str,
    create: CreateTopic,
    settings: &[(&str, &str)],
) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .map_err(|e| format!("cannot create a Kafka admin client: {e}"))?;
    let mut new = NewTopic::new(
        topic,
        create.partitions,
        TopicReplication::Fixed(create.replication_factor),
    );
    for (k, v) in settings {
        new = new.set(k, v);
    }
    let options = AdminOptions::new().operation_timeout(Some(std::time::Duration::from_secs(30)));
    let results = admin
        .create_topics([&new], &options)
        .await
        .map_err(|e| format!("creating topic {topic}: {e}"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(format!("creating topic {name}: {code}")),
        }
    }
    Ok(())
}

/// The partition ids of `topic` (none: it does not exist), by the client's metadata.
pub fn partitions_of<C: rdkafka::client::ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
    timeout: std::time::Duration,
) -> Result<Vec<i32>, String> {
    let metadata = client
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| format!("cannot read the metadata of topic {topic}: {e}"))?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect())
}
