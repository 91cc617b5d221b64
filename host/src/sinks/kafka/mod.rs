//! `type = "kafka"`: records to a Kafka topic, with librdkafka's idempotent producer
//! (`acks=all`). The message key is the record key (format_user sets the user id, so
//! one user always lands in one partition), headers are carried, the message
//! timestamp is the record's event time.
//!
//! A batch counts as written only when every delivery report is back; a delivery that
//! fails after librdkafka's own retries (`message.timeout.ms`) is a fatal pipeline
//! error naming the topic and the cause, never a silent drop. With `exact = true`, a
//! record the source sends again after a crash is not produced twice ([`exact`]).

mod exact;

use super::{Delivery, Input, SinkContext, SinkError};
use crate::duration::Duration;
use crate::field_error::FieldError;
use crate::kafka::{self, CreateTopic, Properties};
use crate::record::Batch;
use crate::record::{is_null_value, route_of, NULL_VALUE_HEADER, ROUTE_HEADER};
use crate::registry::{Encoder, Format, RegistryConfig, SubjectStrategy, ValueSchema};
use futures_util::future::BoxFuture;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message as _, OwnedHeaders};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use serde::Deserialize;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// Bootstrap brokers, comma-separated: `"127.0.0.1:9092"`.
    pub brokers: String,
    pub topic: String,
    /// A topic per route: a record whose route is here goes to that topic, any other
    /// to `topic` (`route_topics = { quarantine = "users_quarantine" }`).
    #[serde(default)]
    pub route_topics: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub compression: Compression,
    /// How long librdkafka waits to fill a batch (`linger.ms`).
    #[serde(default = "default_linger")]
    pub linger: Duration,
    /// Most messages in one produce request (`batch.num.messages`).
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Create the topic at start if it does not exist.
    pub create_topic: Option<CreateTopic>,
    /// Exact across a crash (with a source that resumes): each message carries its
    /// record's source position (header `sluice.position`); after a restart, the
    /// records the source sends again that are in the topic already are not produced
    /// again. One host per state folder.
    #[serde(default)]
    pub exact: bool,
    /// How values are written: `json` (as the records are), or Confluent-framed
    /// `avro` or `json_schema` under `value_schema`, registered in `registry`.
    #[serde(default)]
    pub format: Format,
    /// The Confluent Schema Registry (`format = "avro"` or `"json_schema"`).
    pub registry: Option<RegistryConfig>,
    /// The schema values are written with: an Avro schema (`.avsc`) for `avro`, a
    /// JSON Schema (`.json`) for `json_schema`. Registered at start; a schema the
    /// registry refuses as incompatible stops the start with its reasons.
    pub value_schema: Option<PathBuf>,
    /// The subject the schema is registered under: `topic` (`<topic>-value`),
    /// `record` (the record's full name) or `topic_record`.
    #[serde(default)]
    pub subject_strategy: SubjectStrategy,
    #[serde(default)]
    pub properties: Properties,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    #[default]
    Lz4,
    Zstd,
}

impl Compression {
    fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

fn default_linger() -> Duration {
    Duration::from_millis(5)
}
fn default_batch_size() -> u32 {
    10_000
}

impl KafkaSinkConfig {
    /// Field-level checks (also for a Kafka `[dead_letter]`).
    pub fn validate(&self) -> Result<(), FieldError> {
        kafka::validate(&self.brokers, &self.properties)?;
        if self.topic.trim().is_empty() {
            return Err(FieldError::new("topic", "must not be empty"));
        }
        if let Some((route, _)) = self.route_topics.iter().find(|(_, t)| t.trim().is_empty()) {
            return Err(FieldError::new(
                format!("route_topics.{route}"),
                "must name a topic",
            ));
        }
        if self.linger > Duration::from_millis(900_000) {
            return Err(FieldError::new("linger", "must be at most 15m"));
        }
        if !(1..=1_000_000).contains(&self.batch_size) {
            return Err(FieldError::new(
                "batch_size",
                "must be between 1 and 1000000",
            ));
        }
        if let Some(c) = &self.create_topic {
            c.validate()?;
        }
        if let Some(r) = &self.registry {
            r.validate()?;
        }
        if self.format.uses_registry() {
            let f = self.format.name();
            if self.registry.is_none() {
                return Err(FieldError::new(
                    "registry",
                    format!("is needed with format = \"{f}\" (registry = {{ url = \"http://127.0.0.1:8081\" }})"),
                ));
            }
            let want = if self.format == Format::Avro {
                "avsc"
            } else {
                "json"
            };
            match &self.value_schema {
                None => {
                    return Err(FieldError::new(
                        "value_schema",
                        format!("is needed with format = \"{f}\": the schema file values are written with (a .{want} file)"),
                    ))
                }
                Some(p) if p.extension().and_then(|e| e.to_str()) != Some(want) => {
                    return Err(FieldError::new(
                        "value_schema",
                        format!("must be a .{want} file with format = \"{f}\" (it is {})", p.display()),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The value schema, parsed (`None` with `format = "json"`).
    pub fn load_value_schema(&self, base_dir: &Path) -> Result<Option<ValueSchema>, String> {
        match (&self.value_schema, self.format.uses_registry()) {
            (Some(file), true) => ValueSchema::load(file, base_dir, self.format).map(Some),
            _ => Ok(None),
        }
    }

    /// The registry client and schema of a registry-backed sink.
    async fn register(&self, ctx: &SinkContext) -> Result<Option<Encoder>, SinkError> {
        let (Some(registry), Some(schema)) = (
            &self.registry,
            self.load_value_schema(&ctx.base_dir)
                .map_err(|e| SinkError::fatal(&ctx.name, format!("value_schema: {e}")))?,
        ) else {
            return Ok(None);
        };
        let client = crate::registry::Client::new(registry, &ctx.base_dir)
            .map_err(|e| SinkError::fatal(&ctx.name, e))?;
        let topics: Vec<String> = std::iter::once(&self.topic)
            .chain(self.route_topics.values())
            .cloned()
            .collect();
        let mut waits = ctx.retry.start();
        loop {
            match Encoder::register(&client, schema.clone(), &topics, self.subject_strategy).await {
                Ok(encoder) => return Ok(Some(encoder)),
                Err(e) if e.is_retryable() => match waits.next_wait() {
                    Some(wait) => {
                        tracing::warn!(
                            "{}: registering the value schema: {e}; trying again in {wait:?}",
                            ctx.name
                        );
                        tokio::time::sleep(wait).await;
                    }
                    None => {
                        return Err(SinkError::fatal(
                            &ctx.name,
                            format!("registering the value schema: {e}"),
                        ))
                    }
                },
                Err(e) => {
                    return Err(SinkError::fatal(
                        &ctx.name,
                        format!(
                            "value_schema {}: {e}",
                            self.value_schema
                                .as_deref()
                                .unwrap_or(Path::new(""))
                                .display()
                        ),
                    ))
                }
            }
        }
    }

    fn client_config(&self) -> rdkafka::ClientConfig {
        let ours = [
            ("enable.idempotence", "true".to_owned()),
            ("acks", "all".to_owned()),
            ("compression.type", self.compression.name().to_owned()),
            ("linger.ms", self.linger.as_millis().to_string()),
            ("batch.num.messages", self.batch_size.to_string()),
        ];
        kafka::client_config(&self.brokers, &ours, &self.properties)
    }
}

pub struct KafkaSink {
    name: String,
    topic: String,
    route_topics: std::collections::BTreeMap<String, String>,
    producer: FutureProducer,
    exact: Option<exact::Exact>,
    /// Frames values in the registry's format (`format = "avro"`/`"json_schema"`).
    encoder: Option<Encoder>,
}

impl KafkaSink {
    pub async fn open(config: &KafkaSinkConfig, ctx: &SinkContext) -> Result<Self, SinkError> {
        // Before anything is written: a schema the registry refuses stops the start.
        let encoder = config.register(ctx).await?;
        let client = config.client_config();
        if let Some(create) = config.create_topic {
            for topic in std::iter::once(&config.topic).chain(config.route_topics.values()) {
                kafka::create_topic(&client, topic, create, &[])
                    .await
                    .map_err(|e| SinkError::fatal(&ctx.name, e))?;
            }
        }
        let producer: FutureProducer = client.create().map_err(|e| {
            SinkError::fatal(&ctx.name, format!("cannot create a Kafka producer: {e}"))
        })?;
        let exact = match (config.exact, &ctx.state_dir) {
            (false, _) => None,
            (true, None) => {
                return Err(SinkError::fatal(
                    &ctx.name,
                    "exact = true needs a source that resumes (Kafka, file): it is what sends the records again after a crash",
                ))
            }
            (true, Some(dir)) => {
                let topics: Vec<String> = std::iter::once(&config.topic)
                    .chain(config.route_topics.values())
                    .cloned()
                    .collect();
                let (name, dir, partitions) = (ctx.name.clone(), dir.clone(), ctx.partitions.clone());
                // A consumer's settings: the brokers and the user's, not the producer's.
                let reader = kafka::client_config(&config.brokers, &[], &config.properties);
                let opened = tokio::task::spawn_blocking(move || {
                    exact::Exact::open(&name, reader, topics, &dir, partitions)
                })
                .await
                .map_err(|e| SinkError::fatal(&ctx.name, format!("reading back panicked: {e}")))?;
                Some(opened.map_err(|e| SinkError::fatal(&ctx.name, e))?)
            }
        };
        Ok(KafkaSink {
            name: ctx.name.clone(),
            topic: config.topic.clone(),
            route_topics: config.route_topics.clone(),
            producer,
            exact,
            encoder,
        })
    }

    /// Produce every record (with `exact`, but those in the topic already), then wait
    /// for every delivery report.
    pub async fn write(&mut self, batch: &Batch, delivery: &mut Delivery) -> Result<(), SinkError> {
        let records = &batch.records;
        // Records that do not fit the value schema: never produced, dead letters.
        let mut misfits: Vec<(usize, String)> = Vec::new();
        // Each delivery, and (with `exact`) its topic, for the offsets it reports.
        let mut pending: VecDeque<(DeliveryFuture, Option<String>)> =
            VecDeque::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let position = batch.positions.get(i).copied();
            let tombstone = is_null_value(r);
            let route = route_of(r);
            let route = route.as_deref().unwrap_or(super::DEFAULT_ROUTE);
            let topic = self.route_topics.get(route).unwrap_or(&self.topic);
            // Fitted first: a record that does not fit is a dead letter every time it
            // comes, even when `exact` would take it for written (its dead letter may
            // not have been durable when a later record's write was).
            let encoded = match (&self.encoder, tombstone) {
                (Some(encoder), false) => match encoder.encode(topic, &r.value) {
                    Ok(v) => Some(v),
                    Err(why) => {
                        misfits.push((i, format!("{}: {why}", self.name)));
                        continue;
                    }
                },
                _ => None,
            };
            if let (Some(exact), Some(position)) = (self.exact.as_mut(), position) {
                if exact.written(position) {
                    continue;
                }
            }
            let mut stamp = None;
            if let (Some(exact), Some(position)) = (self.exact.as_mut(), position) {
                stamp = exact.stamp(position);
                exact.wrote(position);
            }
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len() + 1);
            if let Some(stamp) = &stamp {
                headers = headers.insert(Header {
                    key: exact::POSITION_HEADER,
                    value: Some(stamp),
                });
            }
            for h in &r.headers {
                if h.name == NULL_VALUE_HEADER
                    || h.name == ROUTE_HEADER
                    || (stamp.is_some() && h.name == exact::POSITION_HEADER)
                {
                    continue; // the host's own marks, never sent (the stamp is new)
                }
                headers = headers.insert(Header {
                    key: &h.name,
                    value: Some(&h.value),
                });
            }
            let mut message = FutureRecord::to(topic).headers(headers);
            if !tombstone {
                message = message.payload(encoded.as_deref().unwrap_or(&r.value));
            }
            if r.timestamp_ms >= 0 {
                message = message.timestamp(r.timestamp_ms);
            }
            if let Some(key) = &r.key {
                message = message.key(key);
            }
            let noted = self.exact.is_some().then(|| topic.clone());
            loop {
                match self.producer.send_result(message) {
                    Ok(delivery) => {
                        pending.push_back((delivery, noted));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // librdkafka's queue is full: wait for the oldest delivery.
                        message = back;
                        match pending.pop_front() {
                            Some((delivery, t)) => {
                                delivered(&self.name, &mut self.exact, delivery.await, t)?
                            }
                            None => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
                        }
                    }
                    Err((e, _)) => {
                        return Err(SinkError::fatal(
                            &self.name,
                            format!("cannot produce to {}: {e}", self.topic),
                        ))
                    }
                }
            }
        }
        while let Some((delivery, topic)) = pending.pop_front() {
            delivered(&self.name, &mut self.exact, delivery.await, topic)?;
        }
        let mut misfits = misfits.into_iter().peekable();
        delivery.settle(|i| match misfits.peek() {
            Some((at, _)) if *at == i => misfits.next().map(|(_, why)| Err(why)),
            _ => Some(Ok(())),
        });
        Ok(())
    }
}

/// A delivery report (the outer error: the producer dropped the report); with
/// `exact`, its offset noted. A free function: the record being produced still
/// borrows the sink's topics.
fn delivered<E>(
    name: &str,
    exact: &mut Option<exact::Exact>,
    report: Result<OwnedDeliveryResult, E>,
    topic: Option<String>,
) -> Result<(), SinkError> {
    match report {
        Ok(Ok(d)) => {
            if let (Some(exact), Some(topic)) = (exact.as_mut(), topic) {
                exact.delivered(&topic, d.partition, d.offset);
            }
            Ok(())
        }
        Ok(Err((e, m))) => Err(SinkError::fatal(
            name,
            format!(
                "delivery to {} failed after librdkafka's retries: {e}",
                m.topic()
            ),
        )),
        Err(_) => Err(SinkError::fatal(
            name,
            "the producer went away before reporting a delivery",
        )),
    }
}

impl super::SinkConnector for KafkaSinkConfig {
    fn describe(&self) -> String {
        format!("kafka topic {}", self.topic)
    }

    fn validate(&self, _input: Input) -> Result<(), FieldError> {
        KafkaSinkConfig::validate(self)
    }

    fn value_schema(&self, base_dir: &Path) -> Result<Option<ValueSchema>, String> {
        self.load_value_schema(base_dir)
    }

    fn check(&self, base_dir: &Path) -> Result<(), String> {
        self.load_value_schema(base_dir)
            .map(drop)
            .map_err(|e| format!("value_schema: {e}"))
    }

    async fn open(&self, ctx: &SinkContext) -> Result<Box<dyn super::Sink>, SinkError> {
        Ok(Box::new(KafkaSink::open(self, ctx).await?))
    }
}

impl super::Sink for KafkaSink {
    fn write<'a>(
        &'a mut self,
        batch: &'a Batch,
        delivery: &'a mut Delivery,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(KafkaSink::write(self, batch, delivery))
    }

    fn checkpoint(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let Some(exact) = self.exact.take() else {
                return Ok(());
            };
            // Every write waited for its deliveries: the topics' ends cover them.
            let (done, exact) = tokio::task::spawn_blocking(move || {
                let mut exact = exact;
                (exact.checkpoint(), exact)
            })
            .await
            .map_err(|e| SinkError::fatal(&self.name, format!("the checkpoint panicked: {e}")))?;
            if exact.skipped() > 0 {
                tracing::debug!(
                    "{}: {} record(s) sent again were in the topic already",
                    self.name,
                    exact.skipped()
                );
            }
            self.exact = Some(exact);
            done.map_err(|e| SinkError::retryable(&self.name, e))
        })
    }
}
