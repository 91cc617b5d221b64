use crate::dead_letter::DeadLetter;
use crate::engine::GIVE_UP_AFTER;
use crate::plugin::TransformPlugin;
use crate::record::{Batch, Record};

/// One transform plugin applied to batches.
pub struct TransformStage {
    plugin: TransformPlugin,
}

impl TransformStage {
    pub fn new(plugin: TransformPlugin) -> Self {
        TransformStage { plugin }
    }

    pub fn plugin_failures(&self) -> u64 {
        self.plugin.failures()
    }

    fn dead(&self, record: Record, offset: u64, reason: String) -> DeadLetter {
        DeadLetter::now("transform", self.plugin.name(), record, offset, reason)
    }

    /// Run the batch through the plugin. Records that fail go to `dead`, with the
    /// plugin's own message or the reason the call failed.
    ///
    /// When a whole call fails (trap, deadline, memory), one record is usually to
    /// blame, so the batch is retried a record at a time on fresh instances: only the
    /// records that fail alone become dead letters.
    pub fn apply(&mut self, batch: Batch, dead: &mut Vec<DeadLetter>) -> Batch {
        let mut out = Batch::with_capacity(batch.len());
        match self.plugin.process(&batch.records) {
            Ok(outcomes) => {
                for ((record, offset), outcome) in
                    batch.records.into_iter().zip(batch.offsets).zip(outcomes)
                {
                    self.sort(record, offset, outcome, &mut out, dead);
                }
            }
            Err(failure) if batch.len() == 1 => {
                let (record, offset) =
                    (batch.records.into_iter().next().unwrap(), batch.offsets[0]);
                dead.push(self.dead(record, offset, failure.to_string()));
            }
            Err(failure) => {
                tracing::warn!(
                    plugin = self.plugin.name(),
                    "{failure}; retrying the batch's {} records one at a time",
                    batch.len()
                );
                let mut failed_in_a_row = 0;
                let mut last_failure = failure;
                for (record, offset) in batch.records.into_iter().zip(batch.offsets) {
                    if failed_in_a_row >= GIVE_UP_AFTER {
                        // A plugin that fails every record alone would otherwise cost a
                        // deadline per record: the rest go to dead letters untried.
                        let reason = format!(
                            "not retried: the plugin failed {GIVE_UP_AFTER} records of this batch in a row ({last_failure})"
                        );
                        dead.push(self.dead(record, offset, reason));
                        continue;
                    }
                    match self.plugin.process(std::slice::from_ref(&record)) {
                        Ok(mut outcomes) => {
                            failed_in_a_row = 0;
                            let outcome = outcomes.pop().expect("one outcome per record");
                            self.sort(record, offset, outcome, &mut out, dead);
                        }
                        Err(failure) => {
                            failed_in_a_row += 1;
                            dead.push(self.dead(record, offset, failure.to_string()));
                            last_failure = failure;
                        }
                    }
                }
            }
        }
        out
    }

    fn sort(
        &self,
        input: Record,
        offset: u64,
        outcome: Result<Vec<Record>, String>,
        out: &mut Batch,
        dead: &mut Vec<DeadLetter>,
    ) {
        match outcome {
            Ok(records) => records.into_iter().for_each(|r| out.push(r, offset)),
            Err(reason) => dead.push(self.dead(input, offset, reason)),
        }
    }
}
