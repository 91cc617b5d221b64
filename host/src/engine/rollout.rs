//! Swaps, canaries and probations: a new plugin version put in place between two
//! batches, run beside the old one first (canary) or watched after (probation, its
//! results held back until it has proven itself, or rolled back). The types are in
//! [`super::swap`]; this is what the processor does with them.

use super::batcher::Work;
use super::checkpoint::Progress;
use super::processor::{version_info, ProcessError, Processor};
use super::swap::{
    Canary, Held, NewPlugin, Probation, SwapReport, SwapRequest, DEFAULT_SCHEMA_CANARY,
    WATCH_AT_MOST,
};
use crate::metrics::SwapEvent;
use crate::position::{PartitionId, Position};
use crate::transforms::TransformStage;
use std::collections::BTreeMap;
use std::time::Instant;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

impl Processor {
    /// Per partition, the first position not yet processed.
    pub(super) fn switch_points(&self, progress: &Progress) -> BTreeMap<String, u64> {
        self.label_positions(progress.offsets().iter().map(|(&p, &o)| (p, o + 1)))
    }

    pub(super) fn label_positions(
        &self,
        positions: impl Iterator<Item = (PartitionId, u64)>,
    ) -> BTreeMap<String, u64> {
        let partitions = &self.dead_letter.partitions;
        positions
            .map(|(p, o)| {
                let label = partitions
                    .origin(p)
                    .map_or_else(|| p.0.to_string(), |o| o.label());
                (label, o)
            })
            .collect()
    }

    pub(super) fn event(&self, report: &SwapReport, outcome: &str, detail: String) {
        self.metrics.swap_event(SwapEvent {
            time_ms: crate::record::now_ms(),
            stage: report.stage.clone(),
            plugin: report.plugin.clone(),
            from: report.from.clone(),
            to: report.to.clone(),
            outcome: outcome.into(),
            switch: report.switch.clone(),
            detail,
        });
    }

    /// A swap asked for: done now (between batches), or after a canary; refused with
    /// the reason if it cannot be done, the old version running on.
    pub(super) fn swap(&mut self, request: SwapRequest, progress: &Progress) {
        let started = Instant::now();
        let SwapRequest {
            stage,
            plugin,
            canary,
            reply,
        } = request;
        let refuse = |reply: oneshot::Sender<Result<SwapReport, String>>, why: String| {
            tracing::warn!("swap of `{stage}` refused: {why}");
            let _ = reply.send(Err(why));
        };
        if self.probation.is_some() || self.canary.is_some() {
            return refuse(
                reply,
                "the last swap's new version is still being watched (canary or probation); try again shortly".into(),
            );
        }
        match plugin {
            NewPlugin::Transform(new) => {
                let Some(i) = self
                    .transforms
                    .iter()
                    .position(|t| t.plugin().name() == stage)
                else {
                    let names: Vec<&str> =
                        self.transforms.iter().map(|t| t.plugin().name()).collect();
                    return refuse(
                        reply,
                        format!(
                            "no transform named `{stage}` here (transforms: {})",
                            names.join(", ")
                        ),
                    );
                };
                // A topic's schema is not left to chance: a swap feeding a
                // registry-backed sink always has a canary.
                // (`--canary 0` asks for none, and gets none.)
                let canary = match canary {
                    None if self.checks_sink_fit() => Some(DEFAULT_SCHEMA_CANARY),
                    other => other,
                };
                match canary {
                    Some(n) if n > 0 => {
                        tracing::info!("canary for transform `{stage}`: the new version runs beside the old on the next {n} records");
                        self.canary = Some(Canary {
                            started: Instant::now(),
                            stage: i,
                            // Judged by the stage's schema too: output that breaks
                            // it counts as the new version's failures.
                            plugin: TransformStage::new(new)
                                .with_schema(self.transforms[i].schema()),
                            target: n,
                            seen: 0,
                            old_errors: 0,
                            new_errors: 0,
                            old_misfits: 0,
                            new_misfits: 0,
                            misfit: None,
                            reply,
                        });
                    }
                    _ => {
                        let report = self.install(i, new, started, progress, None);
                        let _ = reply.send(Ok(report));
                    }
                }
            }
            NewPlugin::Stateful(new) => {
                let Some(keyed) = self.keyed.as_mut().filter(|k| k.plugin_name() == stage) else {
                    return refuse(reply, format!("no stateful stage named `{stage}` here"));
                };
                let to = version_info("stateful", &new);
                let from = keyed.plugin().version().0.to_owned();
                match keyed.replace_plugin(new) {
                    Err(why) => refuse(reply, why),
                    Ok(old) => {
                        self.retired_failures += old.failures();
                        self.keyed_metrics = Some(self.metrics.replace_stage(to.clone()));
                        let taken = Taken {
                            stage: "stateful",
                            name: &stage,
                            from,
                            to: to.version,
                        };
                        let report = self.swapped(taken, "state handed over", started, progress);
                        let _ = reply.send(Ok(report));
                    }
                }
            }
            NewPlugin::Window(new) => {
                let Some(window) = self.window.as_mut().filter(|w| w.plugin().name() == stage)
                else {
                    return refuse(reply, format!("no window named `{stage}` here"));
                };
                let to = version_info("window", &new);
                let from = window.plugin().version().0.to_owned();
                match window.replace_plugin(new) {
                    Err(why) => refuse(reply, why),
                    Ok(old) => {
                        self.retired_failures += old.failures();
                        self.window_metrics = Some(self.metrics.replace_stage(to.clone()));
                        let taken = Taken {
                            stage: "window",
                            name: &stage,
                            from,
                            to: to.version,
                        };
                        let report =
                            self.swapped(taken, "open windows handed over", started, progress);
                        self.replicate_window();
                        let _ = reply.send(Ok(report));
                    }
                }
            }
        }
    }

    /// A stage whose state the host keeps (window, stateful) took its new version at
    /// once (no canary, no probation): the report, logged and recorded.
    fn swapped(
        &self,
        taken: Taken<'_>,
        handed: &str,
        started: Instant,
        progress: &Progress,
    ) -> SwapReport {
        let report = SwapReport {
            stage: taken.stage.into(),
            plugin: taken.name.to_owned(),
            from: taken.from,
            to: taken.to,
            switch: self.switch_points(progress),
            pause_us: started.elapsed().as_micros() as u64,
            probation_records: 0,
            canary: None,
        };
        tracing::info!(
            "{} `{}` swapped: {} -> {} at {:?} ({handed}; {} µs)",
            taken.stage,
            taken.name,
            report.from,
            report.to,
            report.switch,
            report.pause_us
        );
        self.event(&report, "swapped", String::new());
        report
    }

    /// Put a transform's new version in place; it goes on probation if its stage has
    /// one.
    pub(super) fn install(
        &mut self,
        i: usize,
        new: crate::plugin::TransformPlugin,
        started: Instant,
        progress: &Progress,
        canary: Option<super::swap::CanaryReport>,
    ) -> SwapReport {
        let info = version_info("transform", &new);
        let to = info.version.clone();
        let old = self.transforms[i].replace_plugin(new);
        self.retired_failures += old.failures();
        let new_metrics = self.metrics.replace_stage(info);
        let old_metrics = std::mem::replace(&mut self.stage_metrics[i], new_metrics);
        let config = self.swap_configs[i];
        let report = SwapReport {
            stage: "transform".into(),
            plugin: old.name().to_owned(),
            from: old.version().0.to_owned(),
            to,
            switch: self.switch_points(progress),
            pause_us: started.elapsed().as_micros() as u64,
            probation_records: config.rollback_window,
            canary,
        };
        tracing::info!(
            "transform `{}` swapped: {} -> {} at {:?} ({} µs){}",
            report.plugin,
            report.from,
            report.to,
            report.switch,
            report.pause_us,
            if config.rollback_window > 0 {
                format!("; on probation for {} records", config.rollback_window)
            } else {
                String::new()
            }
        );
        self.event(&report, "swapped", String::new());
        if config.rollback_window > 0 {
            self.probation = Some(Probation {
                started: Instant::now(),
                stage: i,
                old,
                old_metrics,
                window: config.rollback_window,
                max_rate: config.rollback_error_rate,
                seen: 0,
                errors: 0,
                held: Vec::new(),
                report: report.clone(),
            });
        } else {
            self.replicate_transform(i);
        }
        report
    }

    /// The canary has seen its records: swap, or refuse if the new version failed
    /// more of them than the old.
    pub(super) fn finish_canary(&mut self, progress: &Progress) {
        let Some(canary) = self.canary.take() else {
            return;
        };
        let report = canary.report();
        let why = if canary.new_errors > canary.old_errors {
            Some(format!(
                "canary: the new version failed {} of {} records, the running one {}; not swapped",
                canary.new_errors, canary.seen, canary.old_errors
            ))
        } else if canary.new_misfits > canary.old_misfits {
            Some(format!(
                "canary: {} of the new version's {} records would not fit the schema a sink writes (the running version's: {}), e.g. {}; not swapped",
                canary.new_misfits,
                canary.seen,
                canary.old_misfits,
                canary.misfit.as_deref().unwrap_or("?")
            ))
        } else {
            None
        };
        if let Some(why) = why {
            tracing::warn!("{why}");
            let (name, from) = {
                let p = self.transforms[canary.stage].plugin();
                (p.name().to_owned(), p.version().0.to_owned())
            };
            let refused = SwapReport {
                stage: "transform".into(),
                plugin: name,
                from,
                to: canary.plugin.plugin().version().0.to_owned(),
                switch: BTreeMap::new(),
                pause_us: 0,
                probation_records: 0,
                canary: Some(report),
            };
            self.event(&refused, "refused", why.clone());
            let _ = canary.reply.send(Err(why));
            return;
        }
        let started = Instant::now();
        let report = self.install(
            canary.stage,
            canary.plugin.into_plugin(),
            started,
            progress,
            Some(report),
        );
        let _ = canary.reply.send(Ok(report));
    }

    /// A batch while a new version is on probation: through the transforms, then
    /// held back; once the probation's records are seen, it ends.
    pub(super) fn hold(
        &mut self,
        work: Work,
        progress: &mut Progress,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        let Some(stage) = self.probation.as_ref().map(|p| p.stage) else {
            return Ok(());
        };
        self.metrics.add_batch(work.batch.len());
        let positions: Vec<Position> = work
            .batch
            .positions
            .iter()
            .chain(work.dead.iter().map(|d| &d.position))
            .copied()
            .collect();
        // The stages before the new version run once; its input is kept for a
        // rollback, its output for the stages after it, run when it is released.
        let (input, input_dead) = self.run_transforms(work.batch, work.dead, 0..stage);
        let (output, output_dead) =
            self.run_transforms(input.clone(), input_dead.clone(), stage..stage + 1);
        self.publish_stage_counts();
        let Some(p) = self.probation.as_mut() else {
            return Ok(());
        };
        p.held.push(Held {
            positions,
            input,
            input_dead,
            output,
            output_dead,
        });
        if p.seen >= p.window {
            self.end_probation(progress, rt, true)?;
        }
        Ok(())
    }

    /// Keep the new version (its held results go on), or, if too many of its records
    /// failed, put the old one back and run the held records through it instead. With
    /// `finished` false (a barrier or a rebalance is waiting) and too few records seen
    /// to judge, the held results go on and the probation goes on after.
    pub(super) fn end_probation(
        &mut self,
        progress: &mut Progress,
        rt: &Handle,
        finished: bool,
    ) -> Result<(), ProcessError> {
        let Some(mut p) = self.probation.take() else {
            return Ok(());
        };
        let stage = p.stage;
        let after = stage + 1..self.transforms.len();
        let rate = p.error_rate();
        if rate > p.max_rate {
            let back = self.label_positions(p.first_held().into_iter());
            let detail = format!(
                "{} of {} records failed on the new version ({:.0}%, more than {:.0}%); rolled back to {} at {:?}, and they were processed again on it",
                p.errors,
                p.seen,
                rate * 100.0,
                p.max_rate * 100.0,
                p.report.from,
                back
            );
            tracing::warn!("transform `{}` {}", p.report.plugin, detail);
            let rolled = SwapReport {
                from: p.report.to.clone(),
                to: p.report.from.clone(),
                switch: back,
                ..p.report.clone()
            };
            let info = version_info("transform", &p.old);
            // Counted as retired when it was swapped out; live again now.
            self.retired_failures = self.retired_failures.saturating_sub(p.old.failures());
            let gone = self.transforms[stage].replace_plugin(p.old);
            self.retired_failures += gone.failures();
            self.metrics.replace_stage(info);
            self.stage_metrics[stage] = p.old_metrics;
            self.event(&rolled, "rolled_back", detail);
            for h in p.held {
                progress.note(&h.positions);
                let (batch, dead) =
                    self.run_transforms(h.input, h.input_dead, stage..self.transforms.len());
                self.downstream(batch, dead, rt)?;
            }
        } else {
            let judged = finished || p.seen >= p.window;
            for h in std::mem::take(&mut p.held) {
                progress.note(&h.positions);
                let (batch, dead) = self.run_transforms(h.output, h.output_dead, after.clone());
                self.downstream(batch, dead, rt)?;
            }
            if judged {
                tracing::info!(
                    "transform `{}` version {} kept: {} of {} records failed on probation",
                    p.report.plugin,
                    p.report.to,
                    p.errors,
                    p.seen
                );
                self.event(
                    &p.report,
                    "kept",
                    format!("{} of {} records failed", p.errors, p.seen),
                );
                drop(p);
                self.replicate_transform(stage);
            } else {
                self.probation = Some(p);
            }
        }
        self.publish_stage_counts();
        Ok(())
    }

    /// A probation or canary that cannot finish (its stage sees too few records)
    /// ends at its deadline.
    pub(super) fn on_deadlines(
        &mut self,
        progress: &mut Progress,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        if self
            .probation
            .as_ref()
            .is_some_and(|p| p.started.elapsed() >= WATCH_AT_MOST)
        {
            self.end_probation(progress, rt, true)?;
        }
        if self
            .canary
            .as_ref()
            .is_some_and(|c| c.started.elapsed() >= WATCH_AT_MOST)
        {
            if let Some(c) = self.canary.take() {
                let _ = c.reply.send(Err(format!(
                    "the canary saw {} of its {} records in {WATCH_AT_MOST:?}; nothing swapped",
                    c.seen, c.target
                )));
            }
        }
        Ok(())
    }
}

/// Which stage took which version, for [`Processor::swapped`].
struct Taken<'a> {
    stage: &'static str,
    name: &'a str,
    from: String,
    to: String,
}
