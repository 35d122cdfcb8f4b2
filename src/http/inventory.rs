//! The inventory anomalyd keeps: systems (configured or only seen in results) with their state
//! badge and counts, healthchecks, and the collector catalogue.

use std::collections::{BTreeMap, BTreeSet};

use http::StatusCode;
use serde::Serialize;
use serde_json::{Value as Json, json};

use super::{AppState, Response, blocking, json_response};
use crate::config::{ConfigSnapshot, Source};
use crate::engine::{Catalogue, State};
use crate::http::ApiError;
use crate::store::read::{self, SeriesEntry, SeriesFilter};
use crate::views::SeriesView;

/// The badge of a system or healthcheck: its worst series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Badge {
    Ok,
    Learning,
    Suspicious,
    Anomaly,
}

/// How many series are in each state.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Counts {
    series: usize,
    anomaly: usize,
    suspicious: usize,
    learning: usize,
    ok: usize,
}

impl Counts {
    fn add(&mut self, badge: Badge) {
        self.series += 1;
        match badge {
            Badge::Anomaly => self.anomaly += 1,
            Badge::Suspicious => self.suspicious += 1,
            Badge::Learning => self.learning += 1,
            Badge::Ok => self.ok += 1,
        }
    }

    fn badge(&self) -> Badge {
        if self.anomaly > 0 {
            Badge::Anomaly
        } else if self.suspicious > 0 {
            Badge::Suspicious
        } else if self.learning > 0 || self.series == 0 {
            Badge::Learning
        } else {
            Badge::Ok
        }
    }
}

fn series_badge(entry: &SeriesEntry) -> Badge {
    let states = [entry.open_spike, entry.open_drift];
    if states.contains(&Some(State::Anomaly)) {
        Badge::Anomaly
    } else if states.contains(&Some(State::Suspicious)) {
        Badge::Suspicious
    } else if entry.baseline.is_none() {
        Badge::Learning
    } else {
        Badge::Ok
    }
}

fn source_json(source: Option<&Source>) -> Json {
    match source {
        None => Json::Null,
        Some(source) => serde_json::to_value(source).expect("a source serializes"),
    }
}

async fn all_series(state: &AppState, filter: SeriesFilter) -> Result<Vec<SeriesEntry>, ApiError> {
    let store = state.store.clone();
    blocking(move || Ok(read::series(store.database(), &filter)?)).await
}

/// `GET /api/v1/systems`
pub async fn systems(state: &AppState) -> Result<Response, ApiError> {
    let entries = all_series(state, SeriesFilter::default()).await?;
    let config = state.config.borrow().clone();
    let mut counts: BTreeMap<&str, Counts> = config
        .systems
        .keys()
        .map(|name| (name.as_str(), Counts::default()))
        .collect();
    for entry in &entries {
        counts
            .entry(entry.key.system.as_str())
            .or_default()
            .add(series_badge(entry));
    }
    let systems: Vec<Json> = counts
        .iter()
        .map(|(name, counts)| {
            let system = config.systems.get(*name);
            let mut healthchecks: BTreeSet<&str> = system
                .map(|s| s.healthchecks.iter().map(String::as_str).collect())
                .unwrap_or_default();
            healthchecks.extend(
                entries
                    .iter()
                    .filter(|e| e.key.system == *name)
                    .map(|e| e.key.healthcheck.as_str()),
            );
            json!({
                "name": name,
                "title": system.and_then(|s| s.title.clone()),
                "source": source_json(system.map(|s| &s.source)),
                "healthchecks": healthchecks,
                "badge": counts.badge(),
                "counts": counts,
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "systems": systems }),
    ))
}

/// `GET /api/v1/systems/{name}`
pub async fn system(name: &str, state: &AppState) -> Result<Response, ApiError> {
    let filter = SeriesFilter {
        system: Some(name.to_owned()),
        ..SeriesFilter::default()
    };
    let entries = all_series(state, filter).await?;
    let config = state.config.borrow().clone();
    let system = config.systems.get(name);
    if system.is_none() && entries.is_empty() {
        return Err(ApiError::NotFound(format!(
            "system {name} is neither configured nor seen in results"
        )));
    }
    let mut names: BTreeSet<&str> = system
        .map(|s| s.healthchecks.iter().map(String::as_str).collect())
        .unwrap_or_default();
    names.extend(entries.iter().map(|e| e.key.healthcheck.as_str()));
    let mut total = Counts::default();
    let healthchecks: Vec<Json> = names
        .iter()
        .map(|hc| healthcheck_of_system(&config, name, hc, &entries, &mut total))
        .collect();
    let body = json!({
        "name": name,
        "title": system.and_then(|s| s.title.clone()),
        "description": system.and_then(|s| s.description.clone()),
        "source": source_json(system.map(|s| &s.source)),
        "badge": total.badge(),
        "counts": total,
        "healthchecks": healthchecks,
    });
    Ok(json_response(StatusCode::OK, &body))
}

fn healthcheck_of_system(
    config: &ConfigSnapshot,
    system: &str,
    healthcheck: &str,
    entries: &[SeriesEntry],
    total: &mut Counts,
) -> Json {
    let mut counts = Counts::default();
    let managed =
        config.systems.contains_key(system) && config.healthchecks.contains_key(healthcheck);
    let series: Vec<SeriesView> = entries
        .iter()
        .filter(|e| e.key.healthcheck == healthcheck)
        .inspect(|e| {
            counts.add(series_badge(e));
            total.add(series_badge(e));
        })
        .map(|e| SeriesView::new(e, managed))
        .collect();
    let template = config.healthchecks.get(healthcheck);
    json!({
        "name": healthcheck,
        "title": template.and_then(|h| h.title.clone()),
        "source": source_json(template.map(|h| &h.source)),
        "badge": counts.badge(),
        "counts": counts,
        "series": series,
    })
}

/// `GET /api/v1/healthchecks`
pub async fn healthchecks(state: &AppState) -> Result<Response, ApiError> {
    let entries = all_series(state, SeriesFilter::default()).await?;
    let config = state.config.borrow().clone();
    let mut systems: BTreeMap<&str, BTreeSet<&str>> = config
        .healthchecks
        .keys()
        .map(|name| (name.as_str(), BTreeSet::new()))
        .collect();
    for system in config.systems.values() {
        for hc in &system.healthchecks {
            systems.entry(hc).or_default().insert(&system.name);
        }
    }
    for entry in &entries {
        systems
            .entry(&entry.key.healthcheck)
            .or_default()
            .insert(&entry.key.system);
    }
    let list: Vec<Json> = systems
        .iter()
        .map(|(name, used_by)| {
            let hc = config.healthchecks.get(*name);
            json!({
                "name": name,
                "title": hc.and_then(|h| h.title.clone()),
                "strategy": hc.map(|h| h.strategy.clone()),
                "intervalSecs": hc.map(|h| h.interval_secs),
                "source": source_json(hc.map(|h| &h.source)),
                "systems": used_by,
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "healthchecks": list }),
    ))
}

/// `GET /api/v1/catalogue`: the built-in collectors and the ones the config folder declares.
pub fn catalogue(state: &AppState) -> Result<Response, ApiError> {
    let config = state.config.borrow().clone();
    let mut collectors: Vec<Json> = Catalogue::builtin()
        .collectors()
        .filter(|c| !config.collectors.contains_key(&c.id))
        .map(|c| {
            json!({
                "id": c.id,
                "fields": c.fields,
                "notes": c.notes,
                "source": {"type": "builtin"},
            })
        })
        .collect();
    collectors.extend(config.collectors.values().map(|c| {
        json!({
            "id": c.id,
            "fields": c.fields,
            "notes": {},
            "source": c.source,
        })
    }));
    collectors.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Ok(json_response(
        StatusCode::OK,
        &json!({ "collectors": collectors }),
    ))
}
