//! The analyzer's input: the known series and their hourly summaries.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::ops::RangeInclusive;
use std::sync::Arc;

use crate::detector::HourSummary;
use crate::engine::Timestamp;
use crate::series::SeriesKey;

/// Read access to the hourly summaries of every series. The store implements it on redb, and
/// the in-memory [`MemoryHistory`] serves replay and tests.
pub trait History {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Returns every series that has stored summaries.
    fn series(&self) -> Result<Vec<SeriesKey>, Self::Error>;

    /// Calls `visit` with each hourly summary of `key` whose hour starts within `hours`
    /// (inclusive at both ends), oldest first.
    fn visit_hours(
        &self,
        key: &SeriesKey,
        hours: RangeInclusive<Timestamp>,
        visit: &mut dyn FnMut(&HourSummary),
    ) -> Result<(), Self::Error>;

    /// Returns the hourly summaries of `key` within `hours`, oldest first.
    fn hour_summaries(
        &self,
        key: &SeriesKey,
        hours: RangeInclusive<Timestamp>,
    ) -> Result<Vec<HourSummary>, Self::Error> {
        let mut summaries = Vec::new();
        self.visit_hours(key, hours, &mut |hour| summaries.push(hour.clone()))?;
        Ok(summaries)
    }
}

/// Hourly summaries kept in memory, keyed by series and hour start.
///
/// Summaries are stored behind `Arc`, so a caller that records the same hour for many series
/// (a benchmark, a test) shares one copy.
#[derive(Debug, Clone, Default)]
pub struct MemoryHistory {
    series: BTreeMap<SeriesKey, BTreeMap<Timestamp, Arc<HourSummary>>>,
}

impl MemoryHistory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a summary, replacing the stored one of the same series and hour.
    pub fn record(&mut self, key: &SeriesKey, hour: HourSummary) {
        self.record_shared(key, Arc::new(hour));
    }

    /// Stores a shared summary, replacing the stored one of the same series and hour.
    pub fn record_shared(&mut self, key: &SeriesKey, hour: Arc<HourSummary>) {
        let hours = match self.series.get_mut(key) {
            Some(hours) => hours,
            None => self.series.entry(key.clone()).or_default(),
        };
        hours.insert(hour.hour_start, hour);
    }

    /// Deletes every summary of a series whose hour starts before `cutoff`.
    pub fn prune_before(&mut self, key: &SeriesKey, cutoff: Timestamp) {
        if let Some(hours) = self.series.get_mut(key) {
            *hours = hours.split_off(&cutoff);
        }
    }

    /// Deletes a series and all its summaries.
    pub fn remove(&mut self, key: &SeriesKey) -> bool {
        self.series.remove(key).is_some()
    }
}

impl History for MemoryHistory {
    type Error = Infallible;

    fn series(&self) -> Result<Vec<SeriesKey>, Infallible> {
        Ok(self.series.keys().cloned().collect())
    }

    fn visit_hours(
        &self,
        key: &SeriesKey,
        hours: RangeInclusive<Timestamp>,
        visit: &mut dyn FnMut(&HourSummary),
    ) -> Result<(), Infallible> {
        let Some(stored) = self.series.get(key) else {
            return Ok(());
        };
        for hour in stored.range(hours).map(|(_, hour)| hour) {
            visit(hour);
        }
        Ok(())
    }
}
