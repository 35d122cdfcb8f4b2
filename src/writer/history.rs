//! The analyzer's `History` served from a read snapshot of the data file.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use redb::{Database, ReadTransaction, ReadableDatabase};

use crate::analyzer::History;
use crate::detector::HourSummary;
use crate::engine::Timestamp;
use crate::series::SeriesKey;
use crate::store::{self, StoreError};

/// Hourly summaries of every known series, read from one consistent snapshot.
pub struct StoreHistory<'a> {
    tx: ReadTransaction,
    ids: &'a HashMap<SeriesKey, u64>,
}

impl<'a> StoreHistory<'a> {
    pub fn new(database: &Database, ids: &'a HashMap<SeriesKey, u64>) -> Result<Self, StoreError> {
        let tx = database.begin_read().map_err(store::db)?;
        Ok(Self { tx, ids })
    }
}

impl History for StoreHistory<'_> {
    type Error = StoreError;

    fn series(&self) -> Result<Vec<SeriesKey>, StoreError> {
        let mut keys: Vec<SeriesKey> = self.ids.keys().cloned().collect();
        keys.sort();
        Ok(keys)
    }

    fn visit_hours(
        &self,
        key: &SeriesKey,
        hours: RangeInclusive<Timestamp>,
        visit: &mut dyn FnMut(&HourSummary),
    ) -> Result<(), StoreError> {
        let Some(&id) = self.ids.get(key) else {
            return Ok(());
        };
        store::read::visit_summaries(&self.tx, id, hours, &mut |hour_start, summary| {
            visit(&HourSummary {
                hour_start,
                summary,
            })
        })
    }
}
