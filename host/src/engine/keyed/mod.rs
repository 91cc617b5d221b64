//! The keyed stage (`[stateful]`): a plugin of the `stateful` world over each batch,
//! after the transforms and before the window, with the state of each record's key
//! that the host keeps ([`store`]). It runs on the processor's thread, batches in
//! source order, so a key's records meet its state one after another.
//!
//! Each call takes the records of one source partition, since the state is kept per
//! partition (that is what lets it be saved with the partition's offsets and move
//! with it). After a restart, a record at or before the offset the restored state
//! covers is not run again: its effect is in the state and its outputs were made
//! durable before that state was saved.

mod store;

use crate::dead_letter::DeadLetter;
use crate::plugin::bindings::KeyState;
use crate::plugin::{isolate, Isolated, Outcome, StatefulPlugin};
use crate::position::PartitionId;
use crate::record::{Batch, Position, Record};
use crate::window_state::{PartitionState, SavedKey};
use std::collections::{BTreeMap, HashMap};
use store::KeyedStore;

pub struct KeyedStage {
    plugin: StatefulPlugin,
    /// The state key: this field of the record's JSON value (which becomes the
    /// record's key), or, without one, the record's key.
    key_field: Option<String>,
    store: KeyedStore,
    /// Per partition restored from a checkpoint: records at or before this offset
    /// are in the state already.
    restored_through: BTreeMap<PartitionId, u64>,
    replays_skipped: u64,
}

impl KeyedStage {
    pub fn new(
        plugin: StatefulPlugin,
        key_field: Option<String>,
        max_bytes: usize,
        ttl_ms: Option<i64>,
    ) -> Self {
        KeyedStage {
            plugin,
            key_field,
            store: KeyedStore::new(max_bytes, ttl_ms),
            restored_through: BTreeMap::new(),
            replays_skipped: 0,
        }
    }

    pub fn plugin(&self) -> &StatefulPlugin {
        &self.plugin
    }

    pub fn plugin_name(&self) -> &str {
        self.plugin.name()
    }

    pub fn plugin_failures(&self) -> u64 {
        self.plugin.failures()
    }

    pub fn log_dropped(&self) -> u64 {
        self.plugin.log_dropped()
    }

    /// Keys held, and the bytes they count for against the cap.
    pub fn state_size(&self) -> (usize, usize) {
        (self.store.keys(), self.store.bytes())
    }

    /// Run the plugin over a batch, a partition at a time; the records that come
    /// out, in each partition's order. An error: the state went past its cap (the
    /// pipeline stops, nothing of the batch acknowledged).
    pub fn apply(&mut self, batch: Batch, dead: &mut Vec<DeadLetter>) -> Result<Batch, String> {
        let mut out = Batch::with_capacity(batch.len());
        out.read_at = batch.read_at;
        let mut runs: BTreeMap<PartitionId, Vec<(Record, Position)>> = BTreeMap::new();
        let mut replays = 0;
        for (record, position) in batch.records.into_iter().zip(batch.positions) {
            if self
                .restored_through
                .get(&position.partition)
                .is_some_and(|&through| position.offset <= through)
            {
                replays += 1;
                continue;
            }
            runs.entry(position.partition)
                .or_default()
                .push((record, position));
        }
        if replays > 0 {
            self.replays_skipped += replays;
            tracing::info!(
                "stateful stage `{}`: {replays} record(s) read again after a restart are in the restored state already, not run again ({} so far)",
                self.plugin.name(),
                self.replays_skipped
            );
        }
        for (p, run) in runs {
            self.apply_run(p, run, &mut out, dead);
        }
        if self.store.over_cap() && (self.store.expire() == 0 || self.store.over_cap()) {
            let (keys, bytes) = self.state_size();
            return Err(format!(
                "the stateful stage `{}` holds {:.1} MiB of state in {keys} keys, past its state_max_mb = {}: raise state_max_mb, or set ttl so that keys not seen for a while are forgotten",
                self.plugin.name(),
                bytes as f64 / (1024.0 * 1024.0),
                self.store.max_bytes() / (1024 * 1024)
            ));
        }
        Ok(out)
    }

    /// One partition's records through the plugin, the state updated as each call
    /// (or, when a call fails as a whole, each record alone) returns.
    fn apply_run(
        &mut self,
        p: PartitionId,
        run: Vec<(Record, Position)>,
        out: &mut Batch,
        dead: &mut Vec<DeadLetter>,
    ) {
        let name = self.plugin.name().to_owned();
        let dead_letter =
            |record, position, reason| DeadLetter::now("stateful", &name, record, position, reason);
        let mut records = Vec::with_capacity(run.len());
        let mut positions = Vec::with_capacity(run.len());
        for (mut record, position) in run {
            if let Some(field) = &self.key_field {
                match key_of(&record.value, field) {
                    Ok(key) => record.key = key,
                    Err(reason) => {
                        dead.push(dead_letter(record, position, reason));
                        continue;
                    }
                }
            }
            records.push(record);
            positions.push(position);
        }
        // The ttl clock moves after the batch: a record's key is judged by the clock
        // as the records before its batch left it, however batches are cut. A time
        // from a wrong clock (over a day ahead) does not move it.
        let sane = latest_sane();
        let newest = records
            .iter()
            .map(|r| r.timestamp_ms)
            .filter(|&t| t <= sane)
            .max();
        let (plugin, store) = (&mut self.plugin, &mut self.store);
        let outcomes: Vec<Result<Outcome, String>> = match isolate(&name, &records, |rs| {
            let (states, latest) = states_of(store, p, rs);
            let done = plugin.process(rs, &states)?;
            for (key, state) in done.updates {
                let at_ms = latest.get(&key[..]).copied().unwrap_or_default();
                store.set(p, key, state, at_ms);
            }
            Ok(done.outcomes)
        }) {
            Isolated::Whole(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Isolated::Each(each) => each
                .into_iter()
                .map(|r| r.map(|mut o| o.pop().expect("one outcome per record")))
                .collect(),
        };
        if let Some(t) = newest {
            self.store.saw(p, t);
        }
        for ((record, position), outcome) in records.into_iter().zip(positions).zip(outcomes) {
            match outcome {
                Ok(Ok(made)) => made.into_iter().for_each(|r| out.push(r, position)),
                Ok(Err(reason)) | Err(reason) => dead.push(dead_letter(record, position, reason)),
            }
        }
    }

    /// Hand the state to a new version of the plugin; returns the old one. The state
    /// is the host's, so it goes over as it is, unless the new version has a
    /// `migrate` export: that is asked once per state format version held, with one
    /// key's state; handed back unchanged, the version is read as it is; otherwise
    /// every key of that version is converted (on copies: if any conversion fails the
    /// swap is refused, with the plugin's message, and nothing changes).
    pub fn replace_plugin(&mut self, mut new: StatefulPlugin) -> Result<StatefulPlugin, String> {
        let mut converted = Vec::new();
        for (version, sample) in self.store.versions() {
            let as_is = match new.migrate(version, &sample.data) {
                None => break, // no `migrate`: every version goes over as it is
                Some(Ok(Ok(acc))) => acc.version == version && acc.data == sample.data,
                Some(Ok(Err(why))) => {
                    return Err(format!(
                        "the new plugin's migrate refused state version {version}: {why}"
                    ))
                }
                Some(Err(failure)) => {
                    return Err(format!(
                        "the new plugin's migrate failed on state version {version}: {failure}"
                    ))
                }
            };
            if as_is {
                continue;
            }
            for (p, key, data) in self.store.of_version(version) {
                match new.migrate(version, &data) {
                    Some(Ok(Ok(acc))) => converted.push((p, key, acc)),
                    Some(Ok(Err(why))) => {
                        return Err(format!(
                            "the new plugin's migrate refused the state of key {:?} (version {version}): {why}",
                            String::from_utf8_lossy(&key)
                        ))
                    }
                    Some(Err(failure)) => {
                        return Err(format!(
                            "the new plugin's migrate failed on the state of key {:?} (version {version}): {failure}",
                            String::from_utf8_lossy(&key)
                        ))
                    }
                    None => unreachable!("it answered for the sample"),
                }
            }
        }
        let migrated = converted.len();
        for (p, key, acc) in converted {
            self.store.replace(p, key, acc);
        }
        if migrated > 0 {
            tracing::info!("{migrated} key(s) migrated to the new plugin's state format");
        }
        Ok(std::mem::replace(&mut self.plugin, new))
    }

    /// Forget the keys whose `ttl` has run out (at a checkpoint); how many.
    pub fn expire(&mut self) -> usize {
        self.store.expire()
    }

    /// The partitions the stage holds state (or an event time) for.
    pub fn partitions(&self) -> Vec<PartitionId> {
        let mut all: Vec<PartitionId> = self.store.partitions().collect();
        all.extend(self.restored_through.keys());
        all.sort_unstable();
        all.dedup();
        all
    }

    /// A partition's share, into the checkpoint's state of it.
    pub fn save_into(&self, p: PartitionId, state: &mut PartitionState) {
        state.keys = self.store.save(p);
        state.keys_newest_ms = self.store.newest_ms(p);
    }

    /// The oldest offset a restored partition's state covers (for a checkpoint that
    /// comes before any new record of it).
    pub fn restored_through(&self, p: PartitionId) -> Option<u64> {
        self.restored_through.get(&p).copied()
    }

    /// Take a partition's saved share up; records at or before `state.covered` that
    /// arrive again are not run again.
    pub fn restore(&mut self, p: PartitionId, state: &PartitionState) {
        let keys: Vec<SavedKey> = state.keys.clone();
        self.store
            .restore(p, keys, state.keys_newest_ms.filter(|&t| !too_far(t)));
        self.restored_through.insert(p, state.covered);
    }

    /// A partition left this host (the next owner takes its share up).
    pub fn forget(&mut self, p: PartitionId) {
        self.store.forget(p);
        self.restored_through.remove(&p);
    }
}

/// An event time over a day ahead of the host's clock (as `[window] max_future` says
/// by default): from a wrong clock, it must not move the ttl clock.
fn too_far(t: i64) -> bool {
    t > latest_sane()
}

/// The newest event time taken as sane now.
fn latest_sane() -> i64 {
    crate::record::now_ms().saturating_add(super::window::DEFAULT_MAX_FUTURE_MS)
}

/// Each distinct key of `records` once, with its state; and each key's newest event
/// time among them (what an update of it is stamped with, for `ttl`).
fn states_of<'a>(
    store: &KeyedStore,
    p: PartitionId,
    records: &'a [Record],
) -> (Vec<KeyState>, HashMap<&'a [u8], i64>) {
    let mut states: Vec<KeyState> = Vec::new();
    let mut newest: HashMap<&[u8], i64> = HashMap::with_capacity(records.len());
    let sane = latest_sane();
    for r in records {
        let Some(key) = r.key.as_deref() else {
            continue;
        };
        // A key's updates are stamped with its newest sane time (its ttl runs from
        // it); a time from a wrong clock counts as the partition's clock.
        let t = match r.timestamp_ms {
            t if t > sane => store.newest_ms(p).unwrap_or(i64::MIN),
            t => t,
        };
        match newest.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let at = e.get_mut();
                *at = (*at).max(t);
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(t);
                states.push(KeyState {
                    key: key.to_vec(),
                    state: store.get(p, key).cloned(),
                });
            }
        }
    }
    (states, newest)
}

/// The state key `field` picks from a JSON value (a top-level name, or a JSON
/// pointer starting with `/`): its text for a string, its JSON otherwise; `None` when
/// it is missing or null.
pub fn key_of(value: &[u8], field: &str) -> Result<Option<Vec<u8>>, String> {
    crate::record::key_from_json_text(value, field)
        .map_err(|e| format!("key_field `{field}`: the record is not JSON ({e})"))
}
