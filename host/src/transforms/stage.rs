use crate::dead_letter::DeadLetter;
use crate::plugin::{isolate, Isolated, Outcome, TransformPlugin};
use crate::record::{Batch, Position, Record};
use crate::schema::Schema;
use std::sync::Arc;

/// One transform plugin applied to batches.
pub struct TransformStage {
    plugin: TransformPlugin,
    /// What every record it emits must match (`schema = ...`).
    schema: Option<Arc<Schema>>,
}

impl TransformStage {
    pub fn new(plugin: TransformPlugin) -> Self {
        TransformStage {
            plugin,
            schema: None,
        }
    }

    pub fn with_schema(mut self, schema: Option<Arc<Schema>>) -> Self {
        self.schema = schema;
        self
    }

    pub fn schema(&self) -> Option<Arc<Schema>> {
        self.schema.clone()
    }

    pub fn plugin_failures(&self) -> u64 {
        self.plugin.failures()
    }

    pub fn log_dropped(&self) -> u64 {
        self.plugin.log_dropped()
    }

    pub fn plugin(&self) -> &TransformPlugin {
        &self.plugin
    }

    pub fn into_plugin(self) -> TransformPlugin {
        self.plugin
    }

    /// Run `new` from the next batch on; returns the plugin replaced.
    pub fn replace_plugin(&mut self, new: TransformPlugin) -> TransformPlugin {
        std::mem::replace(&mut self.plugin, new)
    }

    /// Why an input's output breaks the schema, if it does.
    fn off_schema(&self, records: &[Record]) -> Option<String> {
        let schema = self.schema.as_ref()?;
        records.iter().enumerate().find_map(|(n, r)| {
            schema.check(&r.value).err().map(|why| match records.len() {
                1 => format!("its output {why}"),
                _ => format!("its output record {} of {} {why}", n + 1, records.len()),
            })
        })
    }

    fn dead(&self, record: Record, position: Position, reason: String) -> DeadLetter {
        DeadLetter::now("transform", self.plugin.name(), record, position, reason)
    }

    /// Run the batch through the plugin. Records that fail go to `dead`, with the
    /// plugin's own message or the reason the call failed; a call that fails as a
    /// whole is retried a record at a time ([`isolate`]).
    pub fn apply(&mut self, batch: Batch, dead: &mut Vec<DeadLetter>) -> Batch {
        let name = self.plugin.name().to_owned();
        let plugin = &mut self.plugin;
        // One output budget for the whole batch, whichever calls spend it: a plugin
        // cannot make the host hold more than its cap, retries included.
        let mut left = plugin.max_output();
        let outcomes: Vec<Result<Outcome, String>> = match isolate(&name, &batch.records, |rs| {
            let (outcomes, after) = plugin.process_within(rs, left)?;
            left = after;
            Ok(outcomes)
        }) {
            Isolated::Whole(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Isolated::Each(each) => each
                .into_iter()
                .map(|r| r.map(|mut o| o.pop().expect("one outcome per record")))
                .collect(),
        };
        let mut out = Batch::with_capacity(batch.len());
        out.read_at = batch.read_at;
        for ((record, position), outcome) in
            batch.records.into_iter().zip(batch.positions).zip(outcomes)
        {
            match outcome {
                Ok(Ok(records)) => match self.off_schema(&records) {
                    // An input whose output breaks the schema is a dead letter whole
                    // (none of its output goes on), so a replay after the fix
                    // repeats nothing.
                    Some(reason) => dead.push(self.dead(record, position, reason)),
                    None => records.into_iter().for_each(|r| out.push(r, position)),
                },
                Ok(Err(reason)) | Err(reason) => dead.push(self.dead(record, position, reason)),
            }
        }
        out
    }
}
