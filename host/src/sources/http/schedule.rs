//! `schedule`: when the polling http source polls on the wall clock: a cron
//! expression read in a time zone, rather than every `interval` from the process's
//! start. Ticks fall on whole seconds. Parsing and daylight-saving rules are
//! croner's: a time that a spring-forward gap skips runs at the first time after the
//! gap (nothing is lost); a wall-clock time that a fall-back overlap shows twice runs
//! once, at its first occurrence (so an hourly schedule has one tick fewer that night,
//! and a daily one never runs twice).

use crate::field_error::FieldError;
use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use croner::Cron;

/// At most this many ticks missed while the host was down are run (`catch_up`).
pub const MAX_CATCH_UP: usize = 1000;

#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    /// As written: `* * * * *`.
    pub text: String,
    pub tz: Tz,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
}

impl Schedule {
    /// `text` is 5-field cron, a nickname (`@hourly`, `@daily`, ...), or 6 fields
    /// with seconds first; `timezone` an IANA name (default UTC); `start`/`end` RFC
    /// 3339 times bounding the ticks.
    pub fn parse(
        text: &str,
        timezone: Option<&str>,
        start: Option<&str>,
        end: Option<&str>,
    ) -> Result<Schedule, FieldError> {
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(text)
            .map_err(|e| {
                FieldError::new(
                    "schedule",
                    format!("`{text}` is not a cron schedule ({e}): write 5 fields like \"*/5 * * * *\", @hourly or @daily, or 6 with seconds first"),
                )
            })?;
        let tz = match timezone {
            None => Tz::UTC,
            Some(name) => name.parse().map_err(|_| {
                FieldError::new(
                    "timezone",
                    format!("`{name}` is not an IANA time zone, like \"Europe/Paris\" or \"UTC\""),
                )
            })?,
        };
        let time = |field: &str, value: Option<&str>| {
            value
                .map(|v| {
                    DateTime::parse_from_rfc3339(v)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|e| {
                            FieldError::new(
                                field,
                                format!("`{v}` is not an RFC 3339 time like \"2026-01-01T00:00:00Z\" ({e})"),
                            )
                        })
                })
                .transpose()
        };
        let (start, end) = (time("start", start)?, time("end", end)?);
        if let (Some(s), Some(e)) = (start, end) {
            if e <= s {
                return Err(FieldError::new("end", "must be after start"));
            }
        }
        Ok(Schedule {
            cron,
            text: text.to_owned(),
            tz,
            start,
            end,
        })
    }

    /// The first tick strictly after `after` and not before `start`; `None` once
    /// past `end`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let (from, inclusive) = match self.start {
            Some(start) if start > after => (start, true),
            _ => (after, false),
        };
        // Whole seconds: from 10:00:00.5, "every 2 s" is next at 10:00:02.
        let from = from.with_nanosecond(0).unwrap_or(from);
        let local = from.with_timezone(&self.tz);
        let mut next = self.cron.find_next_occurrence(&local, inclusive).ok()?;
        // Inside a fall-back overlap croner answers the first of the two instants a
        // wall-clock time names, which may be before `after`: step on until later (a
        // bounded walk: an hour of seconds at most).
        let mut steps = 0;
        while next.with_timezone(&Utc) <= after && steps < 4000 {
            next = self.cron.find_next_occurrence(&next, false).ok()?;
            steps += 1;
        }
        let next = next.with_timezone(&Utc);
        if next <= after {
            return None;
        }
        match self.end {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }

    /// The ticks strictly between `after` and `before` (the newest `most` of them),
    /// and how many there were in all.
    pub fn between(
        &self,
        after: DateTime<Utc>,
        before: DateTime<Utc>,
        most: usize,
    ) -> (Vec<DateTime<Utc>>, usize) {
        let mut ticks = std::collections::VecDeque::new();
        let mut count = 0;
        let mut at = after;
        while let Some(tick) = self.next_after(at).filter(|t| *t < before) {
            count += 1;
            ticks.push_back(tick);
            if ticks.len() > most {
                ticks.pop_front();
            }
            at = tick;
            if count > 100_000 {
                break; // a seconds schedule down for days: the count is enough
            }
        }
        (ticks.into(), count)
    }

    /// A time as the schedule's zone shows it.
    pub fn local(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.tz).to_rfc3339()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn every_minute_on_the_minute_and_seconds_forms() {
        let s = Schedule::parse("* * * * *", None, None, None).unwrap();
        let next = s.next_after(at("2026-03-01T10:00:30Z")).unwrap();
        assert_eq!(next, at("2026-03-01T10:01:00Z"));
        assert_eq!(s.next_after(next).unwrap(), at("2026-03-01T10:02:00Z"));
        let secs = Schedule::parse("*/2 * * * * *", None, None, None).unwrap();
        assert_eq!(
            secs.next_after(at("2026-03-01T10:00:00.5Z")).unwrap(),
            at("2026-03-01T10:00:02Z")
        );
        let daily = Schedule::parse("@daily", Some("Europe/Paris"), None, None).unwrap();
        assert_eq!(
            daily.next_after(at("2026-07-01T12:00:00Z")).unwrap(),
            at("2026-07-01T22:00:00Z"),
            "midnight in Paris (UTC+2 in summer)"
        );
    }

    #[test]
    fn daylight_saving_gaps_and_overlaps_in_paris() {
        // 2026-03-29: 02:00 local does not exist (clocks go 02:00 -> 03:00).
        let s = Schedule::parse("30 2 * * *", Some("Europe/Paris"), None, None).unwrap();
        let next = s.next_after(at("2026-03-28T12:00:00Z")).unwrap();
        assert_eq!(
            next.with_timezone(&s.tz).to_rfc3339(),
            "2026-03-29T03:00:00+02:00",
            "a tick in the gap runs at the first time after it"
        );
        // 2026-10-25: 02:30 local happens twice (03:00 -> 02:00); it runs once.
        let s = Schedule::parse("30 2 * * *", Some("Europe/Paris"), None, None).unwrap();
        let first = s.next_after(at("2026-10-24T12:00:00Z")).unwrap();
        assert_eq!(
            first,
            at("2026-10-25T00:30:00Z"),
            "02:30 CEST, the first one"
        );
        let then = s.next_after(first).unwrap();
        assert_eq!(
            then,
            at("2026-10-26T01:30:00Z"),
            "not 02:30 CET an hour later"
        );
        // Asked from inside the repeated hour (01:10Z is 02:10 CET, the second 02:10),
        // the next tick is still after it, never the first 02:15 already past.
        let quarter = Schedule::parse("*/15 * * * *", Some("Europe/Paris"), None, None).unwrap();
        let inside = at("2026-10-25T01:10:00Z");
        assert!(quarter.next_after(inside).unwrap() > inside);
        assert!(
            s.next_after(inside).unwrap() > inside,
            "the daily 02:30 is not run again"
        );
        // Hourly through the fall-back night: 02:00 shows twice and runs once, so five
        // ticks in six real hours, each once.
        let hourly = Schedule::parse("0 * * * *", Some("Europe/Paris"), None, None).unwrap();
        let (ticks, n) = hourly.between(at("2026-10-24T22:00:00Z"), at("2026-10-25T04:00:01Z"), 10);
        assert_eq!(n, 5, "{ticks:?}");
        assert!(!ticks.contains(&at("2026-10-25T01:00:00Z")), "{ticks:?}");
        // And through the spring-forward night: 02:00 does not exist; 03:00 runs once.
        let (ticks, _) = hourly.between(at("2026-03-28T22:00:00Z"), at("2026-03-29T03:00:01Z"), 10);
        assert!(ticks.windows(2).all(|w| w[0] < w[1]), "{ticks:?}");
        assert_eq!(ticks.len(), 5, "{ticks:?}");
    }

    #[test]
    fn start_and_end_bound_the_ticks_and_missed_ones_are_counted() {
        let s = Schedule::parse(
            "0 * * * *",
            None,
            Some("2026-01-01T05:00:00Z"),
            Some("2026-01-01T07:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            s.next_after(at("2025-12-31T00:00:00Z")),
            Some(at("2026-01-01T05:00:00Z"))
        );
        assert_eq!(s.next_after(at("2026-01-01T07:00:00Z")), None);
        let (ticks, n) = s.between(at("2026-01-01T04:59:00Z"), at("2026-01-01T08:00:00Z"), 2);
        assert_eq!((ticks.len(), n), (2, 3));
        assert_eq!(ticks[1], at("2026-01-01T07:00:00Z"), "the newest are kept");
        assert!(Schedule::parse("61 * * * *", None, None, None).is_err());
        assert_eq!(
            Schedule::parse("* * * * *", Some("Mars/Olympus"), None, None)
                .unwrap_err()
                .field,
            "timezone"
        );
    }
}
