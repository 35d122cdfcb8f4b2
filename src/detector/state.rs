//! The detection state of one series and the steps that change it.

use serde::{Deserialize, Serialize};

use crate::clock::hour_start;
use crate::engine::{
    self, Anomaly, Baseline, DriftReading, Kind, Outcome, RowChange, Rule, Sample, SpikeContext,
    State, Summary, Timestamp, Transition, Value,
};

/// Running statistics of one UTC hour of a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HourSummary {
    /// Start of the UTC hour the samples fall in.
    pub hour_start: Timestamp,
    pub summary: Summary,
}

/// The latest value a series received, healthy or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastSample {
    pub value: Value,
    pub at: Timestamp,
    pub healthy: bool,
}

/// A spike or drift step: the transition and the row it wrote or deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct RowStep {
    pub transition: Transition,
    /// The row as inserted or updated, or the row that was deleted; `None` when unchanged.
    pub anomaly: Option<Anomaly>,
}

/// Everything the detector remembers about one series. Rows are boxed because few series have
/// one open, which keeps the common state small.
#[derive(Debug, Clone, Default)]
pub(crate) struct SeriesState {
    pub baseline: Option<Baseline>,
    pub spike_row: Option<Box<Anomaly>>,
    pub drift_row: Option<Box<Anomaly>>,
    pub last_self_resolution: Option<Timestamp>,
    pub hour: Option<HourSummary>,
    /// Samples collected until the first baseline exists; `None` once there is one.
    pub learning: Option<Box<Summary>>,
    pub last: Option<LastSample>,
    pub invalid_samples: u64,
}

impl SeriesState {
    /// Adds a valid sample to the running hour, starting a new hour when `at` enters one.
    ///
    /// A sample from an hour before the running one (a late arrival) is added to the running
    /// hour, because summaries follow arrival order and the earlier hour may already be persisted.
    pub fn add_to_hour(&mut self, sample: &Sample, at: Timestamp) -> &HourSummary {
        let start = hour_start(at);
        let hour = match self.hour.take() {
            Some(hour) if hour.hour_start >= start => hour,
            _ => HourSummary {
                hour_start: start,
                summary: Summary::default(),
            },
        };
        let hour = self.hour.insert(hour);
        hour.summary.push(sample);
        hour
    }

    /// Adds a sample to the learning summary while there is no baseline. Returns the baseline
    /// learned when this sample completes the minimum sample count.
    pub fn learn(&mut self, sample: &Sample, at: Timestamp) -> Option<Baseline> {
        if self.baseline.is_some() {
            return None;
        }
        let learning = self.learning.get_or_insert_with(Box::default);
        learning.push(sample);
        let baseline = learning.to_baseline(at)?;
        self.install_baseline(baseline.clone());
        Some(baseline)
    }

    pub fn install_baseline(&mut self, baseline: Baseline) {
        self.baseline = Some(baseline);
        self.learning = None;
    }

    /// Evaluates a value against the baseline and steps the spike state machine.
    pub fn step_spike(
        &mut self,
        value: &Value,
        rule: &Rule,
        now: Timestamp,
        ids: &mut dyn FnMut() -> u64,
    ) -> Option<RowStep> {
        let baseline = self.baseline.as_ref()?;
        let outcome = engine::evaluate(value, baseline, rule);
        let row = self.spike_row.as_deref();
        let ctx = SpikeContext {
            baseline,
            rule,
            value,
            now,
            new_id: draw_id_if_inserting(row, matches!(outcome, Outcome::Anomalous { .. }), ids),
            last_self_resolution: self.last_self_resolution,
        };
        let transition = engine::step_spike(row, &outcome, &ctx);
        let anomaly = apply_row_change(&mut self.spike_row, &transition.row);
        if let Some(recovered) = anomaly.as_ref().filter(|row| is_self_resolution(row)) {
            self.last_self_resolution = Some(recovered.recovered_at.unwrap_or(now));
        }
        Some(RowStep {
            transition,
            anomaly,
        })
    }

    /// Steps the drift state machine with a baseline the analyzer just computed.
    pub fn step_drift(
        &mut self,
        baseline: &Baseline,
        rule: &Rule,
        now: Timestamp,
        ids: &mut dyn FnMut() -> u64,
    ) -> (DriftReading, RowStep) {
        let reading = engine::detect_drift(baseline, rule);
        let row = self.drift_row.as_deref();
        let new_id = draw_id_if_inserting(row, reading.drifting, ids);
        let transition = engine::step_drift(row, &reading, baseline, now, new_id);
        let anomaly = apply_row_change(&mut self.drift_row, &transition.row);
        let step = RowStep {
            transition,
            anomaly,
        };
        (reading, step)
    }

    /// Closes the open row of `kind` (see [`engine::close_row`]). Returns `None` when there is
    /// none.
    pub fn close_row(&mut self, kind: Kind, now: Timestamp) -> Option<RowStep> {
        let slot = self.row_slot(kind);
        let transition = engine::close_row(slot.as_deref()?, now);
        let anomaly = apply_row_change(slot, &transition.row);
        Some(RowStep {
            transition,
            anomaly,
        })
    }

    /// Returns the slot of the open spike or drift row.
    pub fn row_slot(&mut self, kind: Kind) -> &mut Option<Box<Anomaly>> {
        match kind {
            Kind::Spike => &mut self.spike_row,
            Kind::Drift => &mut self.drift_row,
        }
    }
}

/// Draws a fresh id only when the step can insert a row: no open row and an anomalous reading.
/// Other steps get id 0, which they never use, so ids are not spent on normal samples.
fn draw_id_if_inserting(
    row: Option<&Anomaly>,
    anomalous: bool,
    ids: &mut dyn FnMut() -> u64,
) -> u64 {
    if row.is_none() && anomalous { ids() } else { 0 }
}

fn is_self_resolution(row: &Anomaly) -> bool {
    row.state == State::Recovered && row.self_resolved
}

/// Applies a row change to the open-row slot. A recovered row leaves the slot, because only
/// open rows (suspicious or anomaly) are looked up.
fn apply_row_change(slot: &mut Option<Box<Anomaly>>, change: &RowChange) -> Option<Anomaly> {
    match change {
        RowChange::Unchanged => None,
        RowChange::Delete => slot.take().map(|row| *row),
        RowChange::Insert(row) | RowChange::Update(row) => {
            *slot = (row.state != State::Recovered).then(|| Box::new(row.clone()));
            Some(row.clone())
        }
    }
}
