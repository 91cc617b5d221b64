//! The admin listener: one small HTTP window into a running host, built in and
//! working offline. `/healthz` and `/readyz` for orchestrators, `/metrics` for
//! Prometheus, `/status` (JSON) for `sluice status` and the page at `/`, which polls it.
//!
//! Off unless configured (`[admin] listen`, or `sluice run --admin ADDR`). Loopback
//! by default; listening on any other address needs a bearer token, and then every
//! request without it gets 401. It is also how later commands (plugin swaps) reach a
//! running host: those routes always need a token ([`guard`]).
//!
//! - config: this file; serving and routes: [`server`]; the rates and history that
//!   `/status` adds to the counters: [`history`]; `POST /plugins/swap`: [`swap`].

pub mod guard;
mod history;
mod server;
mod swap;

pub use history::History;
pub use server::{Admin, HEADER_TIMEOUT, MAX_CONNECTIONS};

use std::sync::Arc;

/// What the listener knows of each pipeline: its series, its config (a swap starts
/// the new plugin with the stage's config and sandbox) and its control queue.
pub struct PipelineHandle {
    pub metrics: Arc<crate::metrics::Metrics>,
    pub config: crate::config::PipelineConfig,
    pub control: tokio::sync::mpsc::Sender<crate::engine::Control>,
}

pub use crate::config::admin::{AdminConfig, DEFAULT_ADDR};
