//! One policy for a plugin call that fails as a whole (trap, deadline, memory cap):
//! one record is usually to blame, so the batch is tried again a record at a time (on
//! fresh instances) to find it, and only the records that fail alone are lost to the
//! dead letters. After [`GIVE_UP_AFTER`] failures in a row the rest of the batch is
//! not tried, so a plugin that fails everything costs a few deadlines per batch, not
//! one per record. Used by the transform stage, the window stage and `plugin test`.

use super::CallFailure;

/// Failures in a row, while trying a batch a record at a time, after which the rest
/// of the batch is given up untried.
pub const GIVE_UP_AFTER: usize = 3;

/// What came of a call over a batch.
pub enum Isolated<R> {
    /// The call over the whole batch ran.
    Whole(R),
    /// It failed; then each item was tried alone: its result, or why it failed alone
    /// (or why it was not tried).
    Each(Vec<Result<R, String>>),
}

/// Run `call` over `items`; if it fails as a whole, run it over each item alone.
pub fn isolate<T, R>(
    plugin: &str,
    items: &[T],
    mut call: impl FnMut(&[T]) -> Result<R, CallFailure>,
) -> Isolated<R> {
    let failure = match call(items) {
        Ok(r) => return Isolated::Whole(r),
        Err(failure) => failure,
    };
    if items.len() == 1 {
        return Isolated::Each(vec![Err(failure.to_string())]);
    }
    tracing::warn!(
        plugin,
        "{failure}; retrying the batch's {} records one at a time",
        items.len()
    );
    let mut failed_in_a_row = 0;
    let mut last_failure = failure;
    let each = items
        .iter()
        .map(|item| {
            if failed_in_a_row >= GIVE_UP_AFTER {
                return Err(format!(
                    "not retried: the plugin failed {GIVE_UP_AFTER} records of this batch in a row ({last_failure})"
                ));
            }
            match call(std::slice::from_ref(item)) {
                Ok(r) => {
                    failed_in_a_row = 0;
                    Ok(r)
                }
                Err(failure) => {
                    failed_in_a_row += 1;
                    let reason = failure.to_string();
                    last_failure = failure;
                    Err(reason)
                }
            }
        })
        .collect();
    Isolated::Each(each)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trap() -> CallFailure {
        CallFailure::Trap("boom".into())
    }

    #[test]
    fn a_bad_item_is_found_and_the_rest_kept() {
        let items = [1, 2, 3, 4];
        let result = isolate("p", &items, |xs: &[i32]| {
            if xs.contains(&3) {
                Err(trap())
            } else {
                Ok(xs.iter().sum::<i32>())
            }
        });
        let Isolated::Each(each) = result else {
            panic!("the whole batch cannot have run")
        };
        assert_eq!(each[0], Ok(1));
        assert_eq!(each[1], Ok(2));
        assert!(each[2].as_ref().unwrap_err().contains("boom"));
        assert_eq!(each[3], Ok(4));
    }

    #[test]
    fn gives_up_after_failures_in_a_row() {
        let mut calls = 0;
        let result = isolate("p", &[0; 10], |_: &[i32]| -> Result<(), _> {
            calls += 1;
            Err(trap())
        });
        let Isolated::Each(each) = result else {
            panic!()
        };
        assert_eq!(calls, 1 + GIVE_UP_AFTER);
        assert!(each[9].as_ref().unwrap_err().starts_with("not retried"));
    }
}
