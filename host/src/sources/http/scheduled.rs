//! The polling loop on a schedule: wait for each tick, poll (every `interval` while
//! the tick's `active_for` lasts, or once), never two ticks' runs at once, and, at
//! start, the ticks missed while the host was down: run (`catch_up`) or skipped.

use super::schedule::{Schedule, MAX_CATCH_UP};
use super::{Polled, Poller};
use crate::sources::SourceError;
use chrono::{DateTime, Utc};
use std::path::Path;

/// Where the last tick run is kept, in the pipeline's state folder.
const LAST_TICK: &str = "http-schedule-last-tick.txt";

pub(super) async fn on_schedule(p: &mut Poller<'_>, s: &Schedule) -> Result<(), SourceError> {
    let metrics = p.ctx.metrics.clone();
    metrics.update_schedule(|st| {
        st.schedule = s.text.clone();
        st.timezone = s.tz.name().to_owned();
    });
    let kept = p.ctx.state_dir.join(LAST_TICK);
    if let Some(last) = read_last(&kept) {
        let (missed, count) = s.between(last, Utc::now(), MAX_CATCH_UP);
        if count > 0 && p.config.catch_up {
            tracing::info!(url = %p.config.url, "{count} tick(s) missed while the host was down (since {}): polling for {} of them now (catch_up = true)", s.local(last), missed.len());
            for tick in missed {
                if run_tick(p, s, tick, true).await? == Polled::Done {
                    return Ok(());
                }
                save_last(&kept, tick);
            }
        } else if count > 0 {
            tracing::info!(url = %p.config.url, "{count} tick(s) missed while the host was down (since {}) are skipped (catch_up = false)", s.local(last));
        }
    }
    let mut after = Utc::now();
    loop {
        let Some(tick) = s.next_after(after) else {
            tracing::info!(url = %p.config.url, "the schedule has ended (end = {:?})", p.config.end);
            metrics.update_schedule(|st| st.next_tick = None);
            return Ok(());
        };
        metrics.update_schedule(|st| st.next_tick = Some(s.local(tick)));
        if p.finished()
            || p.deadline
                .is_some_and(|d| tokio::time::Instant::now() + until(tick) >= d)
        {
            return Ok(());
        }
        if !p
            .sleep_until(tokio::time::Instant::now() + until(tick))
            .await
        {
            return Ok(());
        }
        if run_tick(p, s, tick, false).await? == Polled::Done {
            return Ok(());
        }
        save_last(&kept, tick);
        let done = Utc::now();
        let (_, overlapped) = s.between(tick, done, 0);
        if overlapped > 0 {
            tracing::warn!(url = %p.config.url, "{overlapped} tick(s) came while the run of {} was still going: skipped (a tick never overlaps a running one)", s.local(tick));
        }
        after = done.max(tick);
    }
}

/// One tick's run: a poll at the tick, then every `interval` until `active_for` has
/// passed (`once`: only the first, for a missed tick caught up).
async fn run_tick(
    p: &mut Poller<'_>,
    s: &Schedule,
    tick: DateTime<Utc>,
    once: bool,
) -> Result<Polled, SourceError> {
    let active = p.config.active_for.filter(|_| !once).map(|d| *d);
    let interval = chrono::Duration::from_std(*p.config.interval).unwrap_or(chrono::Duration::MAX);
    let ends =
        active.map(|a| tick + chrono::Duration::from_std(a).unwrap_or(chrono::Duration::MAX));
    let before = p.emitted;
    let mut slot = tick;
    let mut outcome = Polled::Nothing;
    loop {
        if p.finished() {
            outcome = Polled::Done;
            break;
        }
        if !p
            .sleep_until(tokio::time::Instant::now() + until(slot))
            .await
        {
            outcome = Polled::Done;
            break;
        }
        match p.poll().await? {
            Polled::Done => {
                outcome = Polled::Done;
                break;
            }
            polled => outcome = outcome.max_with(polled),
        }
        let Some(ends) = ends else { break };
        // The next slot not yet passed (a slow poll skips slots, never bunches them).
        let now = Utc::now();
        slot += interval;
        while slot <= now {
            slot += interval;
        }
        if slot >= ends {
            break;
        }
    }
    let records = p.emitted - before;
    p.ctx.metrics.update_schedule(|st| {
        st.last_tick = Some(s.local(tick));
        st.last_outcome = Some(match records {
            0 => "nothing (see the log)".to_owned(),
            n => format!("{n} record(s)"),
        });
    });
    Ok(outcome)
}

impl Polled {
    /// `Record` if either is.
    fn max_with(self, other: Polled) -> Polled {
        if self == Polled::Record || other == Polled::Record {
            Polled::Record
        } else {
            other
        }
    }
}

/// How long until `t` on the wall clock (zero if passed).
fn until(t: DateTime<Utc>) -> std::time::Duration {
    (t - Utc::now()).to_std().unwrap_or_default()
}

fn read_last(path: &Path) -> Option<DateTime<Utc>> {
    let text = std::fs::read_to_string(path).ok()?;
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Kept so that a restart knows which ticks it missed; losing it only loses that.
fn save_last(path: &Path, tick: DateTime<Utc>) {
    let saved = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| crate::durable::write_atomically(path, tick.to_rfc3339().as_bytes()));
    if let Err(e) = saved {
        tracing::warn!("cannot keep the last tick in {}: {e}", path.display());
    }
}
