//! The cap on dead-letter volume: a pipeline whose every record fails (a source
//! pointed at binary data, a plugin that refuses everything, a schema that matches
//! nothing) would otherwise write dead letters as fast as it reads, filling the disk
//! with copies of its input. After `[pipeline] max_dead_letter_run` dead letters in a
//! row with no record getting through to the sinks, the pipeline stops with an error
//! saying so, as Kafka Connect stops past its `errors.tolerance`. A batch with a record
//! that gets through starts the count again (its own dead letters not counted, since
//! their order among its records is not kept), so poison in a stream never trips it.

/// Dead letters since the last record that got through.
#[derive(Debug, Clone)]
pub struct DeadRun {
    /// Stop at this many in a row (0: never).
    limit: u64,
    run: u64,
}

impl DeadRun {
    pub fn new(limit: u64) -> Self {
        DeadRun { limit, run: 0 }
    }

    /// Records got through to the sinks (or the window).
    pub fn passed(&mut self) {
        self.run = 0;
    }

    /// `n` more dead letters; `Err` with the reason once the run reaches the limit.
    pub fn failed(&mut self, n: usize) -> Result<(), String> {
        self.run += n as u64;
        if self.limit > 0 && self.run >= self.limit {
            return Err(format!(
                "stopped after {} dead letters in a row with no record getting through ([pipeline] max_dead_letter_run = {}): the input or a stage refuses everything; the dead letters say why (fix that, or raise the limit, then run again)",
                self.run, self.limit
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unbroken_run_stops_it() {
        let mut r = DeadRun::new(10);
        for _ in 0..100 {
            r.failed(9).unwrap();
            r.passed();
        }
        r.failed(4).unwrap();
        let why = r.failed(6).unwrap_err();
        assert!(why.contains("10 dead letters in a row"), "{why}");
        let mut never = DeadRun::new(0);
        never.failed(usize::MAX / 2).unwrap();
    }
}
