//! One batch on its way into a sink, across retries: which records are still to be
//! written and which the store refused for good. A leaf.
//!
//! A store that writes record by record (Cassandra) or reports per-document errors
//! (MongoDB) can fail part of a batch. Retrying the whole batch would write the rest
//! again; dropping the failures would lose them. So the sink task hands the sink a
//! `Delivery`: the sink writes what is [`pending`](Delivery::pending), marks what it
//! wrote, [`reject`](Delivery::reject)s what the store refused for a reason of that
//! record's own (those go to the dead letters), and returns a retryable error while
//! anything is left; the task retries with backoff until nothing is pending.

/// The state of one batch in one sink.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Indices into the batch of the records not written yet, ascending.
    pending: Vec<usize>,
    /// Refused by the store for a reason of the record's own: index and reason.
    rejected: Vec<(usize, String)>,
    /// Attempts before the current one (0 on the first).
    attempt: u32,
}

impl Delivery {
    /// A batch of `len` records, none written.
    pub fn new(len: usize) -> Self {
        Delivery {
            pending: (0..len).collect(),
            rejected: Vec::new(),
            attempt: 0,
        }
    }

    /// The records still to write, as indices into the batch.
    pub fn pending(&self) -> &[usize] {
        &self.pending
    }

    pub fn is_done(&self) -> bool {
        self.pending.is_empty()
    }

    /// Attempts before this one: a sink may treat "already exists" on a retry as
    /// its own earlier write (an attempt whose outcome it never heard).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Every pending record is written.
    pub fn all_written(&mut self) {
        self.pending.clear();
    }

    /// Settle the pending records: `outcome(index)` says whether each is written
    /// (`Some(Ok(()))`), refused for good (`Some(Err(reason))`) or still to retry
    /// (`None`).
    pub fn settle(&mut self, mut outcome: impl FnMut(usize) -> Option<Result<(), String>>) {
        let rejected = &mut self.rejected;
        self.pending.retain(|&i| match outcome(i) {
            None => true,
            Some(Ok(())) => false,
            Some(Err(reason)) => {
                rejected.push((i, reason));
                false
            }
        });
    }

    /// The next attempt begins.
    pub fn next_attempt(&mut self) {
        self.attempt += 1;
    }

    /// What the store refused, in batch order, leaving none.
    pub fn take_rejected(&mut self) -> Vec<(usize, String)> {
        self.rejected.sort_by_key(|&(i, _)| i);
        std::mem::take(&mut self.rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settling_keeps_what_to_retry_and_collects_refusals() {
        let mut d = Delivery::new(5);
        d.settle(|i| match i {
            0 | 3 => Some(Ok(())),
            1 => Some(Err("bad uuid".into())),
            _ => None,
        });
        assert_eq!(d.pending(), &[2, 4]);
        assert!(!d.is_done());
        d.next_attempt();
        d.settle(|i| (i == 4).then(|| Err("too big".into())));
        assert_eq!(d.pending(), &[2]);
        d.all_written();
        assert!(d.is_done());
        assert_eq!(d.attempt(), 1);
        assert_eq!(
            d.take_rejected(),
            vec![(1, "bad uuid".into()), (4, "too big".into())]
        );
    }
}
