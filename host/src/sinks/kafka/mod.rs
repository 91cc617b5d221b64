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
use futures_util::future::BoxFuture;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message as _, OwnedHeaders};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use serde::Deserialize;
use std::collections::VecDeque;

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
        Ok(())
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
}

impl KafkaSink {
    pub async fn open(config: &KafkaSinkConfig, ctx: &SinkContext) -> Result<Self, SinkError> {
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
        })
    }

    /// Produce every record (with `exact`, but those in the topic already), then wait
    /// for every delivery report.
    pub async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let records = &batch.records;
        // Each delivery, and (with `exact`) its topic, for the offsets it reports.
        let mut pending: VecDeque<(DeliveryFuture, Option<String>)> =
            VecDeque::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let position = batch.positions.get(i).copied();
            let mut stamp = None;
            if let (Some(exact), Some(position)) = (self.exact.as_mut(), position) {
                if exact.written(position) {
                    continue;
                }
                stamp = exact.stamp(position);
                exact.wrote(position);
            }
            let tombstone = is_null_value(r);
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
            let route = route_of(r);
            let route = route.as_deref().unwrap_or(super::DEFAULT_ROUTE);
            let topic = self.route_topics.get(route).unwrap_or(&self.topic);
            let mut message = FutureRecord::to(topic).headers(headers);
            if !tombstone {
                message = message.payload(&r.value);
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
        super::whole(KafkaSink::write(self, batch), delivery)
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
