use super::{Delivery, SinkContext, SinkError};
use crate::record::{Batch, Record};
use futures_util::future::BoxFuture;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NullConfig {}

/// Counts and drops.
#[derive(Debug, Default)]
pub struct NullSink {
    pub records: u64,
}

impl NullSink {
    pub fn write(&mut self, records: &[Record]) {
        self.records += records.len() as u64;
    }
}

impl super::SinkConnector for NullConfig {
    fn describe(&self) -> String {
        "null".into()
    }

    async fn open(&self, _ctx: &SinkContext) -> Result<Box<dyn super::Sink>, SinkError> {
        Ok(Box::new(NullSink::default()))
    }
}

impl super::Sink for NullSink {
    fn write<'a>(
        &'a mut self,
        batch: &'a Batch,
        delivery: &'a mut Delivery,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        NullSink::write(self, &batch.records);
        delivery.all_written();
        Box::pin(async { Ok(()) })
    }
}
