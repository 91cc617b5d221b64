//! Every integration test, in one binary: each area a module, so that a change to the
//! host relinks the tests once (each binary links wasmtime, librdkafka and four store
//! drivers), and every test shares one process's servers and caches.
//!
//! Run one area or one test: `cargo test -p sluice --test integration cli::` or
//! `... --test integration kafka::poison`.

mod common;

mod admin;
mod author;
mod cli;
mod config;
mod http_source;
mod ingest;
mod kafka;
mod keyed;
mod pipeline;
mod plugins;
mod postgres;
mod python;
mod registry;
mod registry_kafka;
mod routing;
mod stores;
mod swap;
mod tables;
