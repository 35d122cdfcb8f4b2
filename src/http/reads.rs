//! The read API (anomaly feed, one anomaly, baselines, series, samples) and suppression.

use http::StatusCode;
use hyper::body::Incoming;
use serde::Serialize;

use super::query::Query;
use super::{AppState, Response, blocking, json_response};
use crate::engine::Timestamp;
use crate::http::ApiError;
use crate::series::SeriesKey;
use crate::store::read::{self, AnomalyQuery, SeriesFilter, SuppressionFilter};
use crate::views::{AnomalyView, BaselineView, SampleView, SeriesView};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;
const DEFAULT_SAMPLES: usize = 10_000;
const MAX_SAMPLES: usize = 100_000;
/// Values of the `state` parameter, as `engine::State` serializes them.
const STATE_NAMES: &[&str] = &["suspicious", "anomaly", "recovered"];
/// Values of the `kind` parameter, as `engine::Kind` serializes them.
const KIND_NAMES: &[&str] = &["spike", "drift"];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AnomalyList {
    anomalies: Vec<AnomalyView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    next_cursor: Option<String>,
}

/// Query parameters that select series.
const SERIES_PARAMETERS: &[&str] = &["system", "healthcheck", "environment", "field"];
/// Query parameters of `GET /api/v1/anomalies`.
const ANOMALY_PARAMETERS: &[&str] = &[
    "system",
    "healthcheck",
    "environment",
    "field",
    "state",
    "kind",
    "suppression",
    "limit",
    "cursor",
];
/// Query parameters of `GET /api/v1/series/samples`.
const SAMPLE_PARAMETERS: &[&str] = &[
    "system",
    "healthcheck",
    "environment",
    "field",
    "from",
    "to",
    "limit",
];

fn series_filter(q: &Query) -> Result<SeriesFilter, ApiError> {
    Ok(SeriesFilter {
        system: q.name("system")?,
        healthcheck: q.name("healthcheck")?,
        environment: q.name("environment")?,
        field: q.field_path("field")?,
    })
}

fn suppression(q: &Query) -> Result<SuppressionFilter, ApiError> {
    match q.text("suppression").as_deref() {
        None | Some("active") => Ok(SuppressionFilter::Active),
        Some("suppressed") => Ok(SuppressionFilter::Suppressed),
        Some("all") => Ok(SuppressionFilter::All),
        Some(other) => Err(ApiError::bad_request(
            "invalid-parameter",
            format!(
                "invalid query parameter suppression={other:?}: use one of active, suppressed, all"
            ),
        )),
    }
}

fn cursor(q: &Query) -> Result<Option<(i64, u64)>, ApiError> {
    let Some(text) = q.text("cursor") else {
        return Ok(None);
    };
    let parsed = text
        .split_once('.')
        .and_then(|(t, id)| Some((t.parse().ok()?, id.parse().ok()?)));
    parsed.map(Some).ok_or_else(|| {
        ApiError::bad_request(
            "invalid-parameter",
            format!(
                "invalid query parameter cursor={text:?}: pass the nextCursor of the previous \
                 page unchanged, or leave cursor out for the first page"
            ),
        )
    })
}

pub async fn anomalies(
    req: http::Request<Incoming>,
    state: &AppState,
) -> Result<Response, ApiError> {
    let q = Query::parse_allowed(req.uri().query(), ANOMALY_PARAMETERS)?;
    let query = AnomalyQuery {
        series: series_filter(&q)?,
        state: q.enumerated("state", STATE_NAMES)?,
        kind: q.enumerated("kind", KIND_NAMES)?,
        suppression: suppression(&q)?,
        limit: q.count("limit", DEFAULT_LIMIT, MAX_LIMIT)?,
        before: cursor(&q)?,
    };
    let store = state.store.clone();
    let page = blocking(move || Ok(read::anomalies(store.database(), &query)?)).await?;
    let list = AnomalyList {
        anomalies: page.rows.iter().map(AnomalyView::from).collect(),
        next_cursor: page.next.map(|(t, id)| format!("{t}.{id}")),
    };
    Ok(json_response(StatusCode::OK, &list))
}

pub async fn anomaly(id: u64, state: &AppState) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let entry = blocking(move || Ok(read::anomaly(store.database(), id)?)).await?;
    let entry = entry.ok_or_else(|| ApiError::NotFound(format!("anomaly {id} does not exist")))?;
    Ok(json_response(StatusCode::OK, &AnomalyView::from(&entry)))
}

pub async fn suppress(id: u64, on: bool, state: &AppState) -> Result<Response, ApiError> {
    if on {
        let now = Timestamp::from_millis(jiff::Timestamp::now().as_millisecond());
        state.writer.suppress(id, now).await?;
    } else {
        state.writer.unsuppress(id).await?;
    }
    anomaly(id, state).await
}

pub async fn baselines(
    req: http::Request<Incoming>,
    state: &AppState,
) -> Result<Response, ApiError> {
    let filter = series_filter(&Query::parse_allowed(req.uri().query(), SERIES_PARAMETERS)?)?;
    let store = state.store.clone();
    let entries = blocking(move || Ok(read::series(store.database(), &filter)?)).await?;
    let views: Vec<BaselineView> = entries
        .iter()
        .filter_map(|e| Some(BaselineView::new(&e.key, e.baseline.as_ref()?)))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "baselines": views }),
    ))
}

pub async fn series(req: http::Request<Incoming>, state: &AppState) -> Result<Response, ApiError> {
    let filter = series_filter(&Query::parse_allowed(req.uri().query(), SERIES_PARAMETERS)?)?;
    let store = state.store.clone();
    let entries = blocking(move || Ok(read::series(store.database(), &filter)?)).await?;
    let config = state.config.borrow().clone();
    let views: Vec<SeriesView> = entries
        .iter()
        .map(|e| {
            let managed = config.systems.contains_key(&e.key.system)
                && config.healthchecks.contains_key(&e.key.healthcheck);
            SeriesView::new(e, managed)
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "series": views }),
    ))
}

pub async fn samples(req: http::Request<Incoming>, state: &AppState) -> Result<Response, ApiError> {
    let q = Query::parse_allowed(req.uri().query(), SAMPLE_PARAMETERS)?;
    let key = SeriesKey {
        system: q.required_name("system")?,
        healthcheck: q.required_name("healthcheck")?,
        environment: q.name("environment")?,
        field_path: q.required_field_path("field")?,
    };
    let from = q.time("from")?.unwrap_or(Timestamp::from_millis(i64::MIN));
    let to = q.time("to")?.unwrap_or(Timestamp::from_millis(i64::MAX));
    let limit = q.count("limit", DEFAULT_SAMPLES, MAX_SAMPLES)?;
    let key_text = format!("{}/{}/{}", key.system, key.healthcheck, key.field_path);
    let environment_given = key.environment.is_some();
    let store = state.store.clone();
    let samples = blocking(move || {
        let Some(id) = read::series_id(store.database(), &key)? else {
            return Ok(None);
        };
        // One sample past the limit shows whether the list was cut.
        Ok(Some(read::samples(
            store.database(),
            id,
            from,
            to,
            limit + 1,
        )?))
    })
    .await?;
    let samples = samples.ok_or_else(|| {
        let hint = match environment_given {
            true => "",
            false => "; a series of an environment also needs environment=NAME",
        };
        ApiError::NotFound(format!(
            "series {key_text} not found: list the stored series with GET /api/v1/series{hint}"
        ))
    })?;
    let more = samples.len() > limit;
    let views: Vec<SampleView> = samples.iter().take(limit).map(SampleView::from).collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "samples": views, "more": more }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Kind, State};

    #[test]
    fn listed_names_parse() {
        for name in STATE_NAMES {
            let parsed: Result<State, _> = serde_json::from_value(serde_json::json!(name));
            assert!(parsed.is_ok(), "{name}");
        }
        for name in KIND_NAMES {
            let parsed: Result<Kind, _> = serde_json::from_value(serde_json::json!(name));
            assert!(parsed.is_ok(), "{name}");
        }
    }
}
