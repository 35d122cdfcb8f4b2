//! Closing an open row that no spike or drift step will reach again, because its field lost
//! its rule or its series stopped reporting.

use super::{Anomaly, RowChange, State, StateChange, Timestamp, Transition};

/// Closes an open spike or drift row at `now`. A suspicious row is cleared, as when it meets a
/// normal value. A confirmed row recovers without a notification, because nothing returned to
/// normal. The operator turned the field off or the series went silent, and a recovery message
/// would mislead. A recovered row changes nothing.
pub fn close_row(row: &Anomaly, now: Timestamp) -> Transition {
    match row.state {
        State::Recovered => Transition::UNCHANGED,
        State::Suspicious => Transition::cleared(),
        State::Anomaly => {
            let mut row = row.clone();
            row.recent_samples.clear();
            row.stable_drift_run_count = 0;
            row.mark_recovered(now);
            Transition {
                row: RowChange::Update(row),
                state_change: Some(StateChange::Recovered),
                notification: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Kind;
    use crate::engine::fixtures::{NOW, row, suppressed_at};

    #[test]
    fn suspicious_rows_are_cleared() {
        for kind in [Kind::Spike, Kind::Drift] {
            let suspicious = row(kind, State::Suspicious, 1, 3);
            let transition = close_row(&suspicious, NOW);
            assert_eq!(transition.row, RowChange::Delete, "{kind:?}");
            assert_eq!(
                transition.state_change,
                Some(StateChange::Cleared),
                "{kind:?}"
            );
            assert_eq!(transition.notification, None, "{kind:?}");
        }
    }

    #[test]
    fn confirmed_rows_recover_silently() {
        for kind in [Kind::Spike, Kind::Drift] {
            let mut confirmed = row(kind, State::Anomaly, 3, 3);
            confirmed.recent_samples = vec![200.0, 201.0];
            confirmed.stable_drift_run_count = 1;
            let transition = close_row(&confirmed, NOW);
            let RowChange::Update(closed) = &transition.row else {
                panic!("{kind:?}: expected an update, got {:?}", transition.row);
            };
            assert_eq!(closed.state, State::Recovered, "{kind:?}");
            assert_eq!(closed.recovered_at, Some(NOW), "{kind:?}");
            assert!(!closed.self_resolved, "{kind:?}");
            assert!(closed.recent_samples.is_empty(), "{kind:?}");
            assert_eq!(closed.stable_drift_run_count, 0, "{kind:?}");
            assert_eq!(closed.observed_value, confirmed.observed_value, "{kind:?}");
            assert_eq!(
                transition.state_change,
                Some(StateChange::Recovered),
                "{kind:?}"
            );
            assert_eq!(transition.notification, None, "{kind:?}");
        }
    }

    #[test]
    fn suppressed_row_loses_suppression() {
        let transition = close_row(&suppressed_at(200.0), NOW);
        let RowChange::Update(closed) = &transition.row else {
            panic!("expected an update, got {:?}", transition.row);
        };
        assert_eq!(closed.state, State::Recovered);
        assert_eq!(closed.suppression, None);
    }

    #[test]
    fn recovered_row_is_unchanged() {
        let mut recovered = row(Kind::Spike, State::Anomaly, 3, 3);
        recovered.mark_recovered(NOW);
        assert_eq!(close_row(&recovered, NOW), Transition::UNCHANGED);
    }
}
